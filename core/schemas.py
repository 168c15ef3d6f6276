"""Marshmallow building blocks shared by every package: money as decimal strings,
instants with an explicit offset, identifiers, and the ``{"data": ...}`` envelope."""
from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from core.clock import ClockConfigError, format_instant, parse_instant

MONEY_RE = re.compile(r"^(0|[1-9][0-9]{0,15})(\.[0-9]{1,2})?$")
IDENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class MoneyField(fields.Field):
    """Money as a decimal string (``"1234.50"``); numbers, floats and negatives refused."""

    default_error_messages = {"invalid": "Money is a decimal string like \"1234.50\" (at most 2 decimals, no sign)."}

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        return f"{Decimal(value):.2f}"

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        if not isinstance(value, str) or not MONEY_RE.match(value):
            raise self.make_error("invalid")
        return Decimal(value)

    def _jsonschema_type_mapping(self) -> dict[str, Any]:
        return {"type": "string", "pattern": MONEY_RE.pattern}


class InstantField(fields.Field):
    """An RFC 3339 instant with an explicit offset; returned as UTC with milliseconds."""

    default_error_messages = {"invalid": "Give an RFC 3339 time with an offset, e.g. 2026-05-01T09:30:00+08:00."}

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else format_instant(value)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if not isinstance(value, str) or not re.search(r"(Z|z|[+-]\d\d:\d\d)$", value) or "T" not in value:
            raise self.make_error("invalid")
        try:
            return parse_instant(value)
        except ClockConfigError:
            raise self.make_error("invalid") from None


def Identifier(**kwargs: Any) -> fields.String:
    """A protocol identifier (tender, lot, bidder, file)."""
    from marshmallow import validate
    # Braces doubled: marshmallow formats the error text with str.format.
    return fields.String(validate=validate.Regexp(IDENT_RE, error="Identifier must match "
                                                  "^[A-Za-z0-9][A-Za-z0-9._-]{{0,127}}$"), **kwargs)


class PageArgs(Schema):
    # Validators must raise, not return False: marshmallow 4 ignores a False return.
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class PageMeta(Schema):
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer()


_ENVELOPES: dict[tuple[str, bool, bool], type[Schema]] = {}


def envelope_of(schema: type[Schema], many: bool = False, paged: bool = False) -> type[Schema]:
    """A response schema ``{"data": schema}`` (and ``meta`` for paged lists)."""
    key = (schema.__name__, many, paged)
    if key not in _ENVELOPES:
        attrs: dict[str, Any] = {"data": fields.Nested(schema, many=many, required=True)}
        if paged:
            attrs["meta"] = fields.Nested(PageMeta)
        name = schema.__name__.removesuffix("Schema").removesuffix("Out")
        name = f"{name}{'List' if many else ''}{'Page' if paged else ''}Envelope"
        _ENVELOPES[key] = type(name, (Schema,), attrs)
    return _ENVELOPES[key]


class ErrorBody(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Dict(required=True)


class ErrorResponse(Schema):
    error = fields.Nested(ErrorBody, required=True)


def reject(field: str, message: str) -> ValidationError:
    return ValidationError({field: [message]})
