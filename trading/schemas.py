"""Input and output schemas of trading projects (separate: ProjectCreate vs ProjectOut)."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from core.schemas import Identifier, InstantField, MoneyField
from trading.domain import CATEGORIES_BY_DOMAIN, PROCEDURES_BY_DOMAIN, Category, Domain, Procedure

SCHEDULE_FIELDS = ("documents_from", "documents_until", "clarification_deadline",
                   "objection_deadline", "bid_deadline", "evaluation_due", "publicity_start",
                   "publicity_end", "award_due", "contract_due")
MONEY_FIELDS = ("budget", "estimate", "max_price", "appraisal_value", "floor_price",
                "bid_security", "performance_security")


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
    evaluation_method = fields.Dict()
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
    evaluation_method = fields.Dict()
    schedule = fields.Nested(ScheduleIn)
    lots = fields.List(fields.Nested(LotIn), validate=validate.Length(max=50))


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


class ProjectFilter(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    domain = fields.String(validate=validate.OneOf([d.value for d in Domain]))
    procedure = fields.String(validate=validate.OneOf([p.value for p in Procedure]))
    status = fields.String()
    region = fields.String(validate=validate.Length(max=32))
    q = fields.String(validate=validate.Length(max=100))
    published_from = InstantField()
    published_to = InstantField()


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


class DocumentOut(Schema):
    id = fields.Integer()
    name = fields.String()
    sha256 = fields.String()
    size = fields.Integer()
    content_type = fields.String()
    uploaded_at = InstantField()
