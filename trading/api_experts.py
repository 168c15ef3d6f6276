"""HTTP endpoints of the expert pool and the expert draw: thin views over
:mod:`trading.experts` and :mod:`trading.expert_draw`.

Every refusal a service raises is logged (``<area>.refused`` with its code) in its own
transaction after the attempt is rolled back; an error marked ``persist`` (a void draw,
a refused look at the committee) carries a state change that is committed first.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Response, request, stream_with_context
from flask.views import MethodView
from flask_smorest import Api, Blueprint
from marshmallow import Schema, fields, post_load, validate

from core.db import db
from core.errors import AppError, BadRequest
from core.schemas import Identifier, InstantField, PageArgs, envelope_of
from core.web import request_now
from trading import expert_draw, experts
from trading.experts_models import EXPERT_STATUSES
from trading.web import current_actor

BEARER = [{"bearer": []}]
#: An import of 100,000 experts with their histories is some tens of megabytes.
IMPORT_MAX_BYTES = 64 * 1024 * 1024
_HEX64 = validate.Regexp(re.compile(r"^[0-9a-fA-F]{64}$"), error="64 hexadecimal digits")

pool = Blueprint("experts", __name__, url_prefix="/api/v1/experts",
                 description="The expert pool (专家库): import, export, credit records")
draws = Blueprint("expert_draws", __name__, url_prefix="/api/v1/tenders",
                  description="The expert draw (专家抽取, PROTOCOL §8) and the committee")


# --------------------------------------------------------------------------- schemas

class DrawLotArgs(Schema):
    lot = Identifier()


class DrawGroupIn(Schema):
    specialty = fields.String(required=True, validate=validate.Regexp(
        r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$", error="a specialty code"))
    count = fields.Integer(required=True, strict=True, validate=validate.Range(1, 99))
    regions = fields.List(Identifier(), load_default=list, validate=validate.Length(max=50))


class DrawRequestIn(DrawLotArgs):
    groups = fields.List(fields.Nested(DrawGroupIn), required=True, validate=validate.Length(1, 20))
    alternates = fields.Integer(load_default=0, strict=True, validate=validate.Range(0, 50))
    tenderee_representatives = fields.Integer(load_default=0, strict=True,
                                              validate=validate.Range(0, 20))
    exclude = fields.List(Identifier(), load_default=list, validate=validate.Length(max=10000))


class DrawReplacementIn(DrawLotArgs):
    alternates = fields.Integer(load_default=0, strict=True, validate=validate.Range(0, 50))


class DrawCommitmentIn(DrawLotArgs):
    attempt = fields.Integer(load_default=1, strict=True, validate=validate.Range(min=1))
    commitment = fields.String(required=True, validate=_HEX64)

    @post_load
    def _lower(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {**data, "commitment": data["commitment"].lower()}


class DrawRevealIn(DrawLotArgs):
    secret = fields.String(required=True, validate=_HEX64)

    @post_load
    def _lower(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {**data, "secret": data["secret"].lower()}


class DrawReasonIn(DrawLotArgs):
    reason = fields.String(required=True, validate=validate.Length(1, 2000))


class CommitteeDeclineIn(DrawLotArgs):
    reason = fields.String(load_default="", validate=validate.Length(max=2000))


class CommitteeDeclarationIn(DrawLotArgs):
    # Only JSON true/false: "no" or 0 must not slip through as a declaration.
    conflict = fields.Boolean(required=True, truthy={True}, falsy={False})
    note = fields.String(load_default="", validate=validate.Length(max=2000))


class CommitteeMemberReasonIn(DrawReasonIn):
    expert = Identifier(required=True)


class CommitteeNamedIn(CommitteeMemberReasonIn):
    basis = fields.String(required=True, validate=validate.Length(1, 500),
                          metadata={"description": "The special-project listing that allows "
                                                   "naming (RULES D2, 条例 47)"})


class DrawCommitmentOut(Schema):
    lot = fields.String()
    attempt = fields.Integer()
    party = fields.String()
    commitment = fields.String()
    status = fields.String()
    committed_at = InstantField()
    commit_log_index = fields.Integer()


class DrawOut(Schema):
    tender = fields.String()
    lot = fields.String()
    attempt = fields.Integer()
    kind = fields.String()
    status = fields.String()
    public = fields.Boolean()
    request_sha256 = fields.String()
    eligible_lists_sha256 = fields.String()
    requested_at = InstantField()
    drawn_at = InstantField(allow_none=True)
    outcome = fields.Dict(allow_none=True)
    tenderee_representatives = fields.Integer()
    commitments = fields.Dict()
    log = fields.Dict()
    request = fields.Dict()
    seed = fields.String(allow_none=True)
    eligible_lists = fields.List(fields.List(fields.String()))
    result = fields.Dict(allow_none=True)
    closing = fields.Dict()


class CommitteeMemberOut(Schema):
    lot = fields.String()
    expert = fields.String()
    name = fields.String(allow_none=True)
    role = fields.String()
    status = fields.String()
    seat_group = fields.Integer(allow_none=True)
    attempt = fields.Integer(allow_none=True)
    named_directly = fields.Boolean()
    confirmed_at = InstantField(allow_none=True)
    declared_conflict = fields.Boolean(allow_none=True)
    replaced_in_attempt = fields.Integer(allow_none=True)


class CommitteeOut(Schema):
    tender = fields.String()
    lot = fields.String()
    public = fields.Boolean()
    members = fields.List(fields.Nested(CommitteeMemberOut))


class CommitteeSeatOut(Schema):
    project_id = fields.Integer(data_key="tender")
    lot = fields.String()
    expert_id = fields.String(data_key="expert")
    status = fields.String()
    attempt = fields.Integer(allow_none=True)
    confirmed_at = InstantField(allow_none=True)
    conflict = fields.Boolean(allow_none=True, data_key="declared_conflict")


class CommitteeBidderOut(Schema):
    code = fields.String()
    name = fields.String()


class ExpertFilter(PageArgs):
    specialty = fields.String(validate=validate.Length(max=32))
    region = fields.String(validate=validate.Length(max=32))
    status = fields.String(validate=validate.OneOf(EXPERT_STATUSES))
    title = fields.String(validate=validate.OneOf(sorted(experts.TITLES)))


class ExpertOut(Schema):
    id = fields.String()
    name = fields.String()
    region = fields.String(allow_none=True)
    employer = fields.String(allow_none=True)
    title = fields.String()
    field_since = fields.Date()
    status = fields.String()
    unavailable_until = fields.Date(allow_none=True)
    supervisory_staff = fields.Boolean()
    username = fields.String(allow_none=True)
    specialties = fields.List(fields.String())


class ExpertExportArgs(Schema):
    format = fields.String(load_default="csv", validate=validate.OneOf(["csv", "xlsx"]))


class ExpertImportOut(Schema):
    rows = fields.Integer()
    created = fields.Integer()
    updated = fields.Integer()
    sha256 = fields.String()
    format = fields.String()
    log_index = fields.Integer()


class ExpertCreditIn(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(experts.CREDIT_KINDS))
    points = fields.Integer(load_default=0, strict=True, validate=validate.Range(-1000, 1000))
    note = fields.String(load_default="", validate=validate.Length(max=2000))
    project_id = fields.Integer(allow_none=True, load_default=None)
    suspended_until = fields.Date(allow_none=True, load_default=None)


class ExpertCreditOut(Schema):
    id = fields.Integer()
    expert_id = fields.String(data_key="expert")
    kind = fields.String()
    points = fields.Integer()
    note = fields.String()
    project_id = fields.Integer(allow_none=True)
    suspended_until = fields.Date(allow_none=True)
    recorded_at = InstantField()
    log_index = fields.Integer(allow_none=True)


# --------------------------------------------------------------------------- plumbing

def _run(refused: str, subject: str, service: Callable[..., Any], *args: Any,
         anonymous: bool = False) -> Any:
    """Call ``service(session, actor, now, *args)`` and commit; on a refusal roll back, log
    it as ``refused`` and re-raise (committing first an error that carries a change).
    ``anonymous``: the service also serves callers without a token."""
    actor, now = current_actor(optional=anonymous), request_now()
    try:
        result = service(db.session, actor, now, *args)
    except AppError as exc:
        if getattr(exc, "persist", False):
            db.session.commit()
        else:
            db.session.rollback()
            # An anonymous refusal identifies nobody and reveals nothing; logging it would
            # only let anyone grow the log.
            if actor.user_id is not None:
                expert_draw.log_refusal(db.session, actor, now, refused, subject, exc)
                db.session.commit()
        raise
    db.session.commit()
    return result


def _tender(tender: int) -> str:
    return f"project:{tender}"


# --------------------------------------------------------------------------- the pool

@pool.route("")
class ExpertsView(MethodView):
    @pool.arguments(ExpertFilter, location="query")
    @pool.response(200, envelope_of(ExpertOut, many=True, paged=True))
    @pool.doc(security=BEARER)
    def get(self, filters: dict[str, Any]) -> dict[str, Any]:
        """Experts of the pool (pool keepers and supervisors), by specialty prefix and region."""
        rows, total = experts.list_experts(db.session, current_actor(), filters)
        return {"data": experts.expert_views(db.session, rows), "meta": {"page": filters["page"], "per_page": filters["per_page"],
                                       "total": total}}


@pool.route("/<string:expert_id>")
class ExpertView(MethodView):
    @pool.response(200, envelope_of(ExpertOut))
    @pool.doc(security=BEARER)
    def get(self, expert_id: str) -> dict[str, Any]:
        """One expert of the pool."""
        expert = experts.get_expert(db.session, current_actor(), expert_id)
        return {"data": experts.expert_views(db.session, [expert])[0]}


@pool.route("/import", methods=["POST"])
@pool.response(201, envelope_of(ExpertImportOut))
@pool.doc(security=BEARER, summary="Import experts from CSV or XLSX (all or nothing)",
          description="Send the file as multipart form field `file`, or as the raw body with "
                      "Content-Type text/csv or the XLSX type. Errors name rows (header = row 1).")
def import_experts() -> dict[str, Any]:
    request.max_content_length = IMPORT_MAX_BYTES
    upload = request.files.get("file") if request.mimetype == "multipart/form-data" else None
    if upload is not None:
        fmt = experts.file_format(upload.mimetype, upload.filename)
        data = upload.read()
    else:
        fmt = experts.file_format(request.mimetype, None)
        data = request.get_data(cache=False)
    if not data:
        raise BadRequest("The file is empty", code="empty_file", message_zh="文件为空")
    actor, now = current_actor(), request_now()
    try:
        report = experts.import_experts(db.session, actor, now, data, fmt)
    except AppError as exc:
        db.session.rollback()
        experts.log_import_refused(db.session, actor, now, exc, data)
        db.session.commit()
        raise
    db.session.commit()
    return {"data": report}


@pool.route("/export", methods=["GET"])
@pool.arguments(ExpertExportArgs, location="query")
@pool.doc(security=BEARER, summary="Export the pool as CSV or XLSX (streamed)",
          responses={"200": {"description": "The file"}})
def export_experts(args: dict[str, Any]) -> Response:
    fmt = args["format"]
    _run("experts.export_refused", "experts", experts.log_export, fmt)
    stamp = request_now().strftime("%Y%m%d")
    if fmt == "xlsx":
        body, mimetype = experts.export_xlsx(db.session, release_between_pages=True), experts.XLSX_TYPE
    else:
        body = experts.export_csv(db.session, release_between_pages=True)
        mimetype = "text/csv; charset=utf-8"
    return Response(stream_with_context(body), mimetype=mimetype, headers={
        "Content-Disposition": f'attachment; filename="experts-{stamp}.{fmt}"',
        "Cache-Control": "no-store"})


@pool.route("/<string:expert_id>/credits", methods=["POST"])
@pool.arguments(ExpertCreditIn)
@pool.response(201, envelope_of(ExpertCreditOut))
@pool.doc(security=BEARER, summary="Record a performance or credit entry (RULES H4)")
def record_credit(body: dict[str, Any], expert_id: str) -> dict[str, Any]:
    return {"data": _run("expert.credit_refused", f"expert:{expert_id}", experts.record_credit,
                         expert_id, body)}


@pool.route("/me/committees", methods=["GET"])
@pool.response(200, envelope_of(CommitteeSeatOut, many=True))
@pool.doc(security=BEARER, summary="The acting expert's invitations and seats")
def my_committees() -> dict[str, Any]:
    return {"data": expert_draw.my_committees(db.session, current_actor())}


# --------------------------------------------------------------------------- draws

@draws.route("/<int:tender>/draws/platform-commitment", methods=["POST"])
@draws.response(201, envelope_of(DrawCommitmentOut, many=True))
@draws.doc(security=BEARER, summary="Have the platform commit to its secret (before closing)")
def platform_commitment(tender: int) -> dict[str, Any]:
    return {"data": _run("draw.refused", _tender(tender), expert_draw.request_platform_commitment,
                         tender)}


@draws.route("/<int:tender>/draws/commitments")
class CommitmentsView(MethodView):
    @draws.response(200, envelope_of(DrawCommitmentOut, many=True))
    def get(self, tender: int) -> dict[str, Any]:
        """Every commitment of the tender's draws (public)."""
        return {"data": expert_draw.list_commitments(db.session, current_actor(optional=True), tender)}

    @draws.arguments(DrawCommitmentIn)
    @draws.response(201, envelope_of(DrawCommitmentOut))
    @draws.doc(security=BEARER)
    def post(self, body: dict[str, Any], tender: int) -> dict[str, Any]:
        """The supervising body's commitment, printed by `ebid draw commit`."""
        return {"data": _run("draw.refused", _tender(tender), expert_draw.commit_supervisor,
                             tender, body)}


@draws.route("/<int:tender>/draws")
class DrawsView(MethodView):
    @draws.response(200, envelope_of(DrawOut, many=True))
    def get(self, tender: int) -> dict[str, Any]:
        """The tender's draws (names and lists only after the result)."""
        actor, now = current_actor(optional=True), request_now()
        return {"data": expert_draw.list_draws(db.session, actor, now, tender)}

    @draws.arguments(DrawRequestIn)
    @draws.response(201, envelope_of(DrawOut))
    @draws.doc(security=BEARER)
    def post(self, body: dict[str, Any], tender: int) -> dict[str, Any]:
        """The agent requests a committee for a lot (checked against RULES D1)."""
        record = _run("draw.refused", _tender(tender), expert_draw.request_draw, tender, body)
        return {"data": _draw(tender, record.attempt, record.lot)}


@draws.route("/<int:tender>/draws/replacements", methods=["POST"])
@draws.arguments(DrawReplacementIn)
@draws.response(201, envelope_of(DrawOut))
@draws.doc(security=BEARER, summary="Request a replacement draw for the vacated seats (§8)")
def replacement(body: dict[str, Any], tender: int) -> dict[str, Any]:
    record = _run("draw.refused", _tender(tender), expert_draw.request_replacement, tender, body)
    return {"data": _draw(tender, record.attempt, record.lot)}


@draws.route("/<int:tender>/draws/<int:attempt>", methods=["GET"])
@draws.arguments(DrawLotArgs, location="query")
@draws.response(200, envelope_of(DrawOut))
def get_draw(args: dict[str, Any], tender: int, attempt: int) -> dict[str, Any]:
    """One draw; after the result everything needed to re-run it."""
    return {"data": _draw(tender, attempt, args.get("lot"))}


def _draw(tender: int, attempt: int, lot: str | None) -> dict[str, Any]:
    actor = current_actor(optional=True)
    return expert_draw.draw_view(db.session, actor, request_now(), tender, attempt, lot)


@draws.route("/<int:tender>/draws/<int:attempt>/reveal", methods=["POST"])
@draws.arguments(DrawRevealIn)
@draws.response(200, envelope_of(DrawOut))
@draws.doc(security=BEARER, summary="The supervisor reveals its secret; the draw runs")
def reveal(body: dict[str, Any], tender: int, attempt: int) -> dict[str, Any]:
    record = _run("draw.refused", _tender(tender), expert_draw.reveal, tender, attempt, body)
    return {"data": _draw(tender, record.attempt, record.lot)}


@draws.route("/<int:tender>/draws/<int:attempt>/refusal", methods=["POST"])
@draws.arguments(DrawReasonIn)
@draws.response(200, envelope_of(DrawOut))
@draws.doc(security=BEARER, summary="Record that the supervisor refuses to reveal (voids the draw)")
def refusal(body: dict[str, Any], tender: int, attempt: int) -> dict[str, Any]:
    record = _run("draw.refused", _tender(tender), expert_draw.refuse_reveal, tender, attempt, body)
    return {"data": _draw(tender, record.attempt, record.lot)}


# --------------------------------------------------------------------------- the committee

@draws.route("/<int:tender>/committee", methods=["GET"])
@draws.arguments(DrawLotArgs, location="query")
@draws.response(200, envelope_of(CommitteeOut))
@draws.doc(security=BEARER, summary="The committee (public after the result; before it "
                                    "supervisors, the agent without names, each expert its seat)")
def committee(args: dict[str, Any], tender: int) -> dict[str, Any]:
    return {"data": _run("committee.refused", _tender(tender), _committee_view, tender,
                         args.get("lot"), anonymous=True)}


def _committee_view(session: Any, actor: Any, now: datetime, tender: int, lot: str | None) -> Any:
    return expert_draw.committee_view(session, actor, now, tender, lot)


def _member_action(name: str, schema: type[Schema], service: Callable[..., Any], summary: str) -> None:
    @draws.route(f"/<int:tender>/committee/{name}", methods=["POST"], endpoint=f"committee_{name}")
    @draws.arguments(schema)
    @draws.response(200, envelope_of(CommitteeSeatOut))
    @draws.doc(security=BEARER, summary=summary)
    def view(body: dict[str, Any], tender: int) -> dict[str, Any]:
        return {"data": _run("committee.refused", _tender(tender), service, tender, body)}


_member_action("confirm", DrawLotArgs, expert_draw.confirm, "A drawn expert accepts")
_member_action("decline", CommitteeDeclineIn, expert_draw.decline,
               "A drawn expert declines (a replacement draw follows)")
_member_action("declaration", CommitteeDeclarationIn, expert_draw.declare,
               "A confirmed member declares a conflict (true) or none (false)")
_member_action("replace", CommitteeMemberReasonIn, expert_draw.replace_member,
               "Remove a member with cause (RULES D5); its conclusions are void")
_member_action("named", CommitteeNamedIn, expert_draw.name_directly,
               "Name an expert directly: special projects only, flagged (RULES D2)")


@draws.route("/<int:tender>/committee/bidders", methods=["GET"])
@draws.arguments(DrawLotArgs, location="query")
@draws.response(200, envelope_of(CommitteeBidderOut, many=True))
@draws.doc(security=BEARER, summary="The bidders, for a member who has accepted")
def committee_bidders(args: dict[str, Any], tender: int) -> dict[str, Any]:
    return {"data": _run("committee.refused", _tender(tender), expert_draw.bidders_for_member,
                         tender, args.get("lot"))}


@draws.route("/<int:tender>/committee/publish", methods=["POST"])
@draws.response(200, envelope_of(DrawOut, many=True))
@draws.doc(security=BEARER, summary="Publish the draws and the committee (after the award)")
def publish(tender: int) -> dict[str, Any]:
    records = _run("committee.refused", _tender(tender), expert_draw.publish_committee_request, tender)
    return {"data": [_draw(tender, r.attempt, r.lot) for r in records]}


def register(api: Api) -> None:
    api.register_blueprint(pool)
    api.register_blueprint(draws)

