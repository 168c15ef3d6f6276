"""HTTP endpoints of electronic supervision (电子监察) and of complaints and objections.

Thin views over ``bidding.supervision``: parse, call one service, commit, dump. Supervision
endpoints are for supervisors only; every refusal is logged in its own transaction after
the refused one rolled back (``supervision.refused`` / ``complaint.refused``).
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Iterator

from flask_smorest import Api, Blueprint
from marshmallow import Schema, fields, validate

from audits import supervision_rules as sr
from audits.supervision_models import OUTCOMES
from bidding import closing, supervision, supervision_complaints as complaints
from core.actor import Actor
from core.db import db
from core.errors import AppError
from core.runtime import runtime
from core.schemas import Identifier, InstantField, PageArgs, envelope_of
from core.web import language, request_now
from trading.domain import Role
from trading.models import Project
from trading.web import current_actor

blp = Blueprint("supervision", __name__, url_prefix="/api/v1",
                description="Electronic supervision: time limits, yellow and red cards, collusion "
                            "indicators, suspensions, complaints and objections")
BEARER = [{"bearer": []}]


# --------------------------------------------------------------------------- schemas


class CardArgs(PageArgs):
    severity = fields.String(validate=validate.OneOf(sr.SEVERITIES))
    project = fields.Integer(validate=validate.Range(min=1))
    rule = fields.String(validate=validate.Length(min=1, max=8))


class CardOut(Schema):
    key = fields.String()
    project = fields.Integer()
    step = fields.String()
    rule = fields.String()
    citation = fields.String()
    severity = fields.String()
    state = fields.String()
    subject = fields.String(allow_none=True)
    due_at = InstantField(allow_none=True)
    done_at = InstantField(allow_none=True)
    provisional = fields.Boolean()
    message = fields.String()
    message_zh = fields.String()
    message_en = fields.String()


class StepOut(Schema):
    step = fields.String()
    title_zh = fields.String()
    title_en = fields.String()
    subject = fields.String(allow_none=True)
    rule = fields.String(allow_none=True)
    citation = fields.String(allow_none=True)
    sense = fields.String()
    start = InstantField(allow_none=True)
    due_at = InstantField(allow_none=True)
    last_day = fields.String(allow_none=True)
    paused_days = fields.Integer()
    provisional = fields.Boolean()
    done_at = InstantField(allow_none=True)
    state = fields.String()
    card = fields.Nested(CardOut, allow_none=True)


class ScheduledOut(Schema):
    name = fields.String()
    due_at = InstantField()
    overdue = fields.Boolean()


class UntrackedOut(Schema):
    step = fields.String()
    rule = fields.String()
    from_event = fields.String(data_key="from", attribute="from")
    to_event = fields.String(data_key="to", attribute="to")


class SuspensionOut(Schema):
    at = InstantField()
    reason = fields.String()
    resumed_at = InstantField(allow_none=True)
    resume_reason = fields.String(allow_none=True)
    active = fields.Boolean()
    days = fields.Float()
    by_complaint = fields.Integer(allow_none=True)
    max_until = InstantField(allow_none=True)
    state = fields.String(allow_none=True)


class LimitOut(Schema):
    step = fields.String()
    rule = fields.String(allow_none=True)
    citation = fields.String(allow_none=True)
    due_at = InstantField(allow_none=True)
    provisional = fields.Boolean()
    done_at = InstantField(allow_none=True)
    state = fields.String()
    severity = fields.String(allow_none=True)


class ComplaintOut(Schema):
    id = fields.Integer()
    project = fields.Integer()
    lot = fields.String(allow_none=True)
    kind = fields.String()
    rule = fields.String()
    status = fields.String()
    text = fields.String()
    known_at = InstantField(allow_none=True)
    filed_at = InstantField()
    accepted_at = InstantField(allow_none=True)
    answered_at = InstantField(allow_none=True)
    decided_at = InstantField(allow_none=True)
    answer = fields.String(allow_none=True)
    outcome = fields.String(allow_none=True)
    paused_process_at = InstantField(allow_none=True)
    resumed_at = InstantField(allow_none=True)
    pause_note = fields.String(allow_none=True)
    limits = fields.List(fields.Nested(LimitOut))


class ProjectSummaryOut(Schema):
    id = fields.Integer()
    title = fields.String()
    domain = fields.String()
    procedure = fields.String()
    status = fields.String()
    rulebook_version = fields.String(allow_none=True)


class ProjectSupervisionOut(Schema):
    project = fields.Nested(ProjectSummaryOut)
    steps = fields.List(fields.Nested(StepOut))
    scheduled = fields.List(fields.Nested(ScheduledOut))
    untracked = fields.List(fields.Nested(UntrackedOut))
    suspensions = fields.List(fields.Nested(SuspensionOut))
    complaints = fields.List(fields.Nested(ComplaintOut))
    winner_known = fields.Boolean()
    cards = fields.List(fields.Nested(CardOut))
    next_check = InstantField(allow_none=True)


class IndicatorOut(Schema):
    lot = fields.String()
    kind = fields.String()
    bidders = fields.List(fields.String())
    detail = fields.Dict()
    source = fields.String()
    found_at = InstantField(allow_none=True)
    log_index = fields.Integer(allow_none=True)


class CollusionOut(Schema):
    project = fields.Integer()
    closed_at = InstantField()
    indicators = fields.List(fields.Nested(IndicatorOut))


class ComplaintIn(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(sorted(sr.COMPLAINT_KINDS)))
    text = fields.String(required=True, validate=validate.Length(min=1, max=20000))
    lot = Identifier()
    known_at = InstantField()


class ComplaintFilter(PageArgs):
    project = fields.Integer(validate=validate.Range(min=1))
    kind = fields.String(validate=validate.OneOf(sorted(sr.COMPLAINT_KINDS)))
    status = fields.String(validate=validate.Length(max=16))


class AcceptIn(Schema):
    note = fields.String(validate=validate.Length(max=2000))


class AnswerIn(Schema):
    answer = fields.String(required=True, validate=validate.Length(min=1, max=20000))


class DecideIn(Schema):
    decision = fields.String(required=True, validate=validate.Length(min=1, max=20000))
    outcome = fields.String(required=True, validate=validate.OneOf(OUTCOMES))


# --------------------------------------------------------------------------- plumbing


def _yellow() -> timedelta:
    return timedelta(hours=runtime().config["EBID_YELLOW_CARD_HOURS"])


def _calendar() -> Any:
    return getattr(runtime().rulebook, "calendar", None)


@contextmanager
def refusals_logged(actor: Actor, action: str, what: str, project_id: int | None = None) -> Iterator[None]:
    """Log a refused attempt after rolling its transaction back, then let the error out."""
    try:
        yield
    except AppError as exc:
        db.session.rollback()
        now = request_now()
        project = db.session.get(Project, project_id) if project_id else None
        # a bidder's interest in a tender is not told before it closes (A6)
        hidden = project is not None and actor.has(Role.BIDDER) and supervision.bids_secret(db.session, project, now)
        supervision.log_refusal(db.session, actor, now, action, what, exc,
                                project.id if project is not None else None, hidden=hidden)
        db.session.commit()
        raise


def _card(card: sr.Card) -> dict[str, Any]:
    data = card.to_dict()
    data["message"] = card.message_en if language() == "en" else card.message_zh
    return data


# --------------------------------------------------------------------------- supervision


@blp.route("/supervision/cards", methods=["GET"])
@blp.arguments(CardArgs, location="query")
@blp.response(200, envelope_of(CardOut, many=True, paged=True))
@blp.doc(security=BEARER)
def cards(args: dict[str, Any]) -> dict[str, Any]:
    """Yellow and red cards of every project, derived now (supervisors only), red first."""
    actor = current_actor()
    with refusals_logged(actor, "supervision.refused", "cards", args.get("project")):
        rows, total = supervision.cards(db.session, actor, request_now(), _yellow(), args, calendar=_calendar())
    return {"data": [_card(c) for c in rows],
            "meta": {"page": args["page"], "per_page": args["per_page"], "total": total}}


@blp.route("/supervision/projects/<int:project_id>", methods=["GET"])
@blp.response(200, envelope_of(ProjectSupervisionOut))
@blp.doc(security=BEARER)
def project_view(project_id: int) -> dict[str, Any]:
    """One project's steps, each with its legal limit and state, its suspensions,
    complaints and cards (supervisors only)."""
    actor = current_actor()
    with refusals_logged(actor, "supervision.refused", "project", project_id):
        data = supervision.project_supervision(db.session, actor, request_now(), project_id, _yellow(),
                                               calendar=_calendar())
    english = language() == "en"
    for card in [*data["cards"], *(s["card"] for s in data["steps"] if s["card"])]:
        card["message"] = card["message_en"] if english else card["message_zh"]
    return {"data": data}


@blp.route("/supervision/projects/<int:project_id>/collusion", methods=["GET"])
@blp.response(200, envelope_of(CollusionOut))
@blp.doc(security=BEARER)
def collusion_view(project_id: int) -> dict[str, Any]:
    """Collusion indicators (RULES B6), only once the tender has closed (A6)."""
    actor = current_actor()
    with refusals_logged(actor, "supervision.refused", "collusion", project_id):
        supervision.require_supervisor(actor)
        # the first touch at or after the deadline closes the tender (PROTOCOL §6)
        rt = runtime()
        closing.ensure_closed(db.session, project_id, request_now(),
                              closing.LogSigner(rt.log_origin, rt.keys.log_key), trigger=actor.log_name)
        db.session.commit()
        data = supervision.collusion(db.session, actor, request_now(), project_id)
    return {"data": data}


# --------------------------------------------------------------------------- complaints


@blp.route("/projects/<int:project_id>/complaints", methods=["POST"])
@blp.arguments(ComplaintIn)
@blp.response(201, envelope_of(ComplaintOut))
@blp.doc(security=BEARER)
def file_complaint(body: dict[str, Any], project_id: int) -> dict[str, Any]:
    """A bidder files a complaint (投诉), a GP question (质疑) or an objection (异议) to
    the documents (A4) or the candidates (E4); objections pause the process."""
    actor, now = current_actor(), request_now()
    with refusals_logged(actor, "complaint.refused", "file", project_id):
        row = complaints.file_complaint(db.session, actor, now, project_id, body, calendar=_calendar())
        db.session.commit()
    return {"data": complaints.complaint_views(db.session, [row], now, _yellow(), calendar=_calendar())[0]}


@blp.route("/complaints", methods=["GET"])
@blp.arguments(ComplaintFilter, location="query")
@blp.response(200, envelope_of(ComplaintOut, many=True, paged=True))
@blp.doc(security=BEARER)
def list_complaints(filters: dict[str, Any]) -> dict[str, Any]:
    """Complaints and objections with their statutory limits: all to supervisors, a
    project's to its agent and tenderee, a bidder's own to the bidder."""
    actor, now = current_actor(), request_now()
    rows, total = complaints.list_complaints(db.session, actor, filters)
    return {"data": complaints.complaint_views(db.session, rows, now, _yellow(), calendar=_calendar()),
            "meta": {"page": filters["page"], "per_page": filters["per_page"], "total": total}}


@blp.route("/complaints/<int:complaint_id>", methods=["GET"])
@blp.response(200, envelope_of(ComplaintOut))
@blp.doc(security=BEARER)
def get_complaint(complaint_id: int) -> dict[str, Any]:
    """One complaint or objection with its limits."""
    actor, now = current_actor(), request_now()
    row, _ = complaints.get_complaint(db.session, actor, complaint_id)
    return {"data": complaints.complaint_views(db.session, [row], now, _yellow(), calendar=_calendar())[0]}


def _complaint_action(name: str, schema: type[Schema], service: Any, summary: str) -> None:
    @blp.route(f"/complaints/<int:complaint_id>/{name}", methods=["POST"], endpoint=f"complaint_{name}")
    @blp.arguments(schema)
    @blp.response(200, envelope_of(ComplaintOut))
    @blp.doc(security=BEARER, summary=summary)
    def view(body: dict[str, Any], complaint_id: int) -> dict[str, Any]:
        actor, now = current_actor(), request_now()
        from audits.supervision_models import Complaint
        found = db.session.get(Complaint, complaint_id)
        with refusals_logged(actor, "complaint.refused", name, found.project_id if found else None):
            row = service(db.session, actor, now, complaint_id, body)
            db.session.commit()
        return {"data": complaints.complaint_views(db.session, [row], now, _yellow(), calendar=_calendar())[0]}


def _decide(session: Any, actor: Actor, now: Any, complaint_id: int, body: dict[str, Any]) -> Any:
    return complaints.decide_complaint(session, actor, now, complaint_id, body, calendar=_calendar())


_complaint_action("accept", AcceptIn, complaints.accept_complaint,
                  "Accept a complaint (supervisor; E8: within its acceptance limit)")
_complaint_action("answer", AnswerIn, complaints.answer_complaint,
                  "Answer a question or objection (the project's agent or tenderee)")
_complaint_action("decide", DecideIn, _decide, "Decide a complaint (supervisor)")


def register(api: Api) -> None:
    api.register_blueprint(blp)
