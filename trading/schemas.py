"""Input and output schemas of trading projects (separate: ProjectCreate vs ProjectOut).

Input schemas refuse unknown fields (marshmallow's default), floats and signs in money
(:class:`~core.schemas.MoneyField`), instants without an offset, and schedules that run
backwards, so a service only ever sees values it can trust.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from core.schemas import IDENT_RE, InstantField, MoneyField
from trading.domain import (CATEGORIES_BY_DOMAIN, PROCEDURES_BY_DOMAIN, Category, Domain, Procedure,
                            Status)
from trading.evaluation import Aggregation, Method, PriceFormula, TieBreak

SCHEDULE_FIELDS = ("documents_from", "documents_until", "clarification_deadline",
                   "objection_deadline", "bid_deadline", "evaluation_due", "publicity_start",
                   "publicity_end", "award_due", "contract_due")
MONEY_FIELDS = ("budget", "estimate", "max_price", "appraisal_value", "floor_price",
                "bid_security", "performance_security")


# A share such as a price weight: "0.30" (0 to 1, at most 4 decimals), never a float.
RATIO_RE = re.compile(r"^(0(\.[0-9]{1,4})?|1(\.0{1,4})?)$")
# Points of a scoring criterion: "30" or "12.5".
POINTS_RE = re.compile(r"^(0|[1-9][0-9]{0,5})(\.[0-9]{1,2})?$")


def Identifier(**kwargs: Any) -> fields.String:
    """A protocol identifier (lot code, criterion id). The message carries no braces:
    marshmallow formats it, and core.schemas.Identifier's ``{0,127}`` breaks that."""
    return fields.String(validate=validate.Regexp(IDENT_RE, error="Use 1 to 128 of A-Z a-z 0-9 . _ -, "
                                                  "starting with a letter or digit."), **kwargs)


class DecimalText(fields.String):
    """A decimal written as a string matching ``pattern`` (floats are refused, as for money)."""

    def __init__(self, pattern: re.Pattern[str], example: str, **kwargs: Any) -> None:
        super().__init__(validate=validate.Regexp(pattern, error=f"Give a decimal string like \"{example}\"."),
                         **kwargs)


class CriterionIn(Schema):
    """A published scoring criterion (评分因素); the price criterion is computed, not scored."""

    id = Identifier(required=True)
    max_score = DecimalText(POINTS_RE, "30", required=True)
    is_price = fields.Boolean(load_default=False)


class EvaluationMethodIn(Schema):
    """The evaluation method published with the documents (RULES E1, E7). Only what is
    published here may be used by the committee."""

    method = fields.String(required=True, validate=validate.OneOf([m.value for m in Method]))
    price_weight = DecimalText(RATIO_RE, "0.30")
    criteria = fields.List(fields.Nested(CriterionIn), validate=validate.Length(max=100))
    aggregation = fields.String(validate=validate.OneOf([a.value for a in Aggregation]))
    price_formula = fields.String(validate=validate.OneOf([f.value for f in PriceFormula]))
    tie_break = fields.List(fields.String(validate=validate.OneOf([t.value for t in TieBreak])),
                            validate=validate.Length(max=10))
    alternative_bids_allowed = fields.Boolean()
    # Prices below this share of the mean are flagged for a written explanation (E2).
    abnormally_low_ratio = DecimalText(RATIO_RE, "0.70")

    @validates_schema
    def _criteria_consistent(self, data: dict[str, Any], **kwargs: Any) -> None:
        criteria = data.get("criteria") or []
        if len({c["id"] for c in criteria}) != len(criteria):
            raise ValidationError("criterion ids must be unique", "criteria")
        if sum(1 for c in criteria if c["is_price"]) > 1:
            raise ValidationError("at most one price criterion", "criteria")
        if criteria and "price_weight" in data:
            # The price criterion's points already fix the weight; two sources could disagree.
            raise ValidationError("give the criteria or a price_weight, not both", "price_weight")


class LotIn(Schema):
    code = Identifier(required=True)
    title = fields.String(required=True, validate=validate.Length(min=1, max=300))
    budget = MoneyField()
    max_price = MoneyField()
    bid_security = MoneyField()


class LotOut(Schema):
    code = fields.String()
    title = fields.String()
    budget = MoneyField()
    max_price = MoneyField()
    bid_security = MoneyField()


class ScheduleIn(Schema):
    documents_from = InstantField()
    documents_until = InstantField()
    clarification_deadline = InstantField()
    objection_deadline = InstantField()
    bid_deadline = InstantField()
    evaluation_due = InstantField()
    publicity_start = InstantField()
    publicity_end = InstantField()
    award_due = InstantField()
    contract_due = InstantField()

    @validates_schema
    def _ordered(self, data: dict[str, Any], **kwargs: Any) -> None:
        order = [f for f in SCHEDULE_FIELDS if data.get(f) is not None]
        for earlier, later in zip(order, order[1:]):
            if data[later] < data[earlier] and not (earlier == "documents_until" and later in
                                                    ("clarification_deadline", "objection_deadline")):
                raise ValidationError(f"{later} must not be before {earlier}", later)


_RESERVED_NAMES = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                   *(f"lpt{i}" for i in range(1, 10))}


def check_document_name(name: str) -> str:
    """A document's file name, safe to store and to send back in Content-Disposition:
    NFC-normalised, no path (``/``, ``\\``, ``..``, a drive letter), no control or
    format characters, no leading dot, not a reserved device name. Raises ValueError."""
    name = unicodedata.normalize("NFC", name)
    if not name or len(name) > 255 or name.strip() != name:
        raise ValueError("a name of 1 to 255 characters without surrounding spaces")
    if any(ch in name for ch in "/\\:") or name in (".", "..") or ".." in name:
        raise ValueError("a file name, not a path")
    if name.startswith("."):
        raise ValueError("no hidden file names")
    if any(unicodedata.category(ch)[0] == "C" for ch in name):  # control, format (bidi), unassigned
        raise ValueError("no control or formatting characters")
    if any(ch in name for ch in '<>"|?*'):
        raise ValueError('none of < > " | ? *')
    if name.split(".")[0].lower() in _RESERVED_NAMES:
        raise ValueError("a reserved device name")
    return name


class DocumentArgs(Schema):
    """Query arguments of a document upload."""

    name = fields.String(required=True)

    @validates("name")
    def _safe(self, value: str, **kwargs: Any) -> None:
        try:
            check_document_name(value)
        except ValueError as exc:
            raise ValidationError(f"Unsafe document name: {exc}") from None


class ProjectCreate(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=300))
    description = fields.String(validate=validate.Length(max=20000))
    domain = fields.String(required=True, validate=validate.OneOf([d.value for d in Domain]))
    procedure = fields.String(required=True, validate=validate.OneOf([p.value for p in Procedure]))
    category = fields.String(required=True, validate=validate.OneOf([c.value for c in Category]))
    region = fields.String(validate=validate.Length(max=32))
    tenderee = fields.String(required=True, validate=validate.Length(min=1, max=128))
    supervisor = fields.String(validate=validate.Length(max=128))
    currency = fields.String(load_default="CNY", validate=validate.OneOf(["CNY"]))
    budget = MoneyField()
    estimate = MoneyField()
    max_price = MoneyField()
    appraisal_value = MoneyField()
    floor_price = MoneyField()
    bid_security = MoneyField()
    performance_security = MoneyField()
    # Never stored: accepted only so the law's refusal (RULES A7) names the rule.
    min_price = MoneyField()
    evaluation_method = fields.Nested(EvaluationMethodIn)
    schedule = fields.Nested(ScheduleIn, load_default=dict)
    lots = fields.List(fields.Nested(LotIn), load_default=list, validate=validate.Length(max=50))

    @validates_schema
    def _domain_fits(self, data: dict[str, Any], **kwargs: Any) -> None:
        domain = Domain(data["domain"])
        if Procedure(data["procedure"]) not in PROCEDURES_BY_DOMAIN[domain]:
            raise ValidationError(f"procedure {data['procedure']} is not used in {domain.value}", "procedure")
        if Category(data["category"]) not in CATEGORIES_BY_DOMAIN[domain]:
            raise ValidationError(f"category {data['category']} is not used in {domain.value}", "category")
        codes = [lot["code"] for lot in data.get("lots", [])]
        if len(codes) != len(set(codes)):
            raise ValidationError("lot codes must be unique", "lots")


class ProjectUpdate(Schema):
    title = fields.String(validate=validate.Length(min=1, max=300))
    description = fields.String(validate=validate.Length(max=20000))
    region = fields.String(validate=validate.Length(max=32))
    budget = MoneyField(allow_none=True)
    estimate = MoneyField(allow_none=True)
    max_price = MoneyField(allow_none=True)
    appraisal_value = MoneyField(allow_none=True)
    floor_price = MoneyField(allow_none=True)
    bid_security = MoneyField(allow_none=True)
    performance_security = MoneyField(allow_none=True)
    min_price = MoneyField()  # refused by RULES A7, see ProjectCreate
    evaluation_method = fields.Nested(EvaluationMethodIn, allow_none=True)
    schedule = fields.Nested(ScheduleIn)
    lots = fields.List(fields.Nested(LotIn), validate=validate.Length(min=1, max=50))

    @validates_schema
    def _lots_unique(self, data: dict[str, Any], **kwargs: Any) -> None:
        codes = [lot["code"] for lot in data.get("lots", [])]
        if len(codes) != len(set(codes)):
            raise ValidationError("lot codes must be unique", "lots")


class ScheduleOut(Schema):
    documents_from = InstantField()
    documents_until = InstantField()
    clarification_deadline = InstantField()
    objection_deadline = InstantField()
    bid_deadline = InstantField()
    evaluation_due = InstantField()
    publicity_start = InstantField()
    publicity_end = InstantField()
    award_due = InstantField()
    contract_due = InstantField()


class ProjectOut(Schema):
    id = fields.Integer()
    title = fields.String()
    description = fields.String()
    domain = fields.String()
    procedure = fields.String()
    category = fields.String()
    region = fields.String(allow_none=True)
    status = fields.String()
    tenderee = fields.String()
    agent = fields.String(allow_none=True)
    supervisor = fields.String(allow_none=True)
    currency = fields.String()
    budget = MoneyField(allow_none=True)
    estimate = MoneyField(allow_none=True)
    max_price = MoneyField(allow_none=True)
    appraisal_value = MoneyField(allow_none=True)
    floor_price = MoneyField(allow_none=True)
    bid_security = MoneyField(allow_none=True)
    performance_security = MoneyField(allow_none=True)
    evaluation_method = fields.Dict(allow_none=True)
    schedule = fields.Nested(ScheduleOut)
    lots = fields.List(fields.Nested(LotOut))
    published_at = InstantField(allow_none=True)
    rulebook_version = fields.String(allow_none=True)
    next_check = InstantField(allow_none=True)
    milestones = fields.Dict()
    # The legal limits of the pinned rules, by step (e.g. ``bid_preparation``: the
    # earliest day the bid deadline could fall on), each marked ``provisional`` when a
    # year without an official holiday table was counted.
    limits = fields.Dict()
    provisional = fields.Boolean()
    documents = fields.List(fields.Nested(lambda: DocumentOut()))


class ProjectFilter(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    domain = fields.String(validate=validate.OneOf([d.value for d in Domain]))
    procedure = fields.String(validate=validate.OneOf([p.value for p in Procedure]))
    category = fields.String(validate=validate.OneOf([c.value for c in Category]))
    status = fields.String(validate=validate.OneOf([s.value for s in Status]))
    region = fields.String(validate=validate.Length(max=32))
    q = fields.String(validate=validate.Length(min=1, max=100))
    published_from = InstantField()
    published_to = InstantField()
    deadline_from = InstantField()
    deadline_to = InstantField()

    @validates_schema
    def _ranges(self, data: dict[str, Any], **kwargs: Any) -> None:
        for start, end in (("published_from", "published_to"), ("deadline_from", "deadline_to")):
            if data.get(start) and data.get(end) and data[end] < data[start]:
                raise ValidationError(f"{end} must not be before {start}", end)


class ClarificationIn(Schema):
    text = fields.String(required=True, validate=validate.Length(min=1, max=20000))
    affects_bids = fields.Boolean(load_default=True)
    new_bid_deadline = InstantField()


class ClarificationOut(Schema):
    id = fields.Integer()
    text = fields.String()
    affects_bids = fields.Boolean()
    issued_at = InstantField()
    old_bid_deadline = InstantField(allow_none=True)
    new_bid_deadline = InstantField(allow_none=True)


class NoticeOut(Schema):
    id = fields.Integer()
    kind = fields.String()
    title = fields.String()
    body = fields.String()
    published_at = InstantField()


class ReasonIn(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))

    @validates("reason")
    def _not_blank(self, value: str, **kwargs: Any) -> None:
        if not value.strip():
            raise ValidationError("A reason is required.")


class ResumeIn(ReasonIn):
    """Resuming may bring a new schedule for dates that passed during the suspension."""

    schedule = fields.Nested(ScheduleIn)


class DocumentOut(Schema):
    """A tender document; download it from ``/projects/{id}/documents/{document_id}``."""

    id = fields.Integer()
    name = fields.String()
    sha256 = fields.String()
    size = fields.Integer()
    content_type = fields.String()
    uploaded_at = InstantField()
