"""HTTP endpoints of releases and the opening (PROTOCOL §6, §9; rulebook C1–C6).

Thin views: parse, touch the tender's closing (it happens on the first request at or
after the deadline), call one service, commit, dump. A refused release is logged in its
own transaction after the refused work is rolled back, so the refusal is on the record
while nothing of the attempt is.
"""
from __future__ import annotations

from typing import Any, Callable

from flask import Response, send_file, url_for
from flask_smorest import Api, Blueprint
from marshmallow import Schema, fields, validate

from bidding import opening as service
from bidding import releases
from core.db import db
from core.errors import AppError, NotFound
from core.runtime import runtime
from core.web import request_now
from crypto.canonical import b64encode
from trading import projects
from trading.models import Project
from trading.web import current_actor

blp = Blueprint("opening", __name__, url_prefix="/api/v1/tenders",
                description="Share releases and the opening ceremony (开标)")
BEARER = [{"bearer": []}]


class ReleaseBatchIn(Schema):
    data = fields.List(fields.Dict(), required=True,
                       validate=validate.Length(min=1, max=releases.MAX_RELEASES_PER_REQUEST))


class OpeningTextIn(Schema):
    class OpeningText(Schema):
        text = fields.String(required=True, validate=validate.Length(min=1, max=4000))

    data = fields.Nested(OpeningText, required=True)


class ReleaseResultOut(Schema):
    lot = fields.String()
    bidder = fields.String()
    file = fields.String()
    i = fields.Integer()
    status = fields.String()
    digest_match = fields.Boolean()


class ReleaseBatchOut(Schema):
    data = fields.List(fields.Nested(ReleaseResultOut))


class OpeningObjectionOut(Schema):
    id = fields.Integer()
    bidder = fields.String(allow_none=True)
    text = fields.String()
    raised_at = fields.DateTime()
    answer = fields.String(allow_none=True)
    answered_at = fields.DateTime(allow_none=True)


class OpeningObjectionEnvelope(Schema):
    data = fields.Nested(OpeningObjectionOut)


class OpeningEnvelope(Schema):
    data = fields.Dict()


class BidKeyOut(Schema):
    lot = fields.String()
    bidder = fields.String()
    file = fields.String()
    key = fields.String()
    ebid = fields.String()


class BidKeyListOut(Schema):
    data = fields.List(fields.Nested(BidKeyOut))


def _touch(tender: int) -> Project:
    """The tender, closed first if its deadline has passed (closing commits on its own, so
    a refusal rolled back later never undoes it)."""
    from bidding.closing import LogSigner, ensure_closed
    actor, now, rt = current_actor(optional=True), request_now(), runtime()
    project = projects.get_project(db.session, actor, tender)
    ensure_closed(db.session, project.id, now, LogSigner(rt.log_origin, rt.keys.log_key),
                  trigger=actor.log_name)
    db.session.commit()
    # the service re-reads what it acts on under its own locks, never this snapshot
    # (another agent may have moved the project on meanwhile)
    db.session.expire_all()
    return project


def _logged(project: Project, action: str, work: Callable[[], Any]) -> Any:
    """Run ``work`` and commit; on a refusal roll it back, log the refusal, and re-raise."""
    actor, now = current_actor(optional=True), request_now()
    try:
        result = work()
        db.session.commit()
        return result
    except AppError as exc:
        db.session.rollback()
        if action == "share.release_refused":
            releases.log_refusal(db.session, actor, now, project, exc.code, exc.details)
        else:
            service.log_refusal(db.session, actor, now, project, action, exc.code)
        db.session.commit()
        raise


@blp.route("/<int:tender>/releases", methods=["POST"])
@blp.arguments(ReleaseBatchIn)
@blp.response(201, ReleaseBatchOut)
@blp.doc(security=BEARER)
def post_releases(body: dict[str, Any], tender: int) -> dict[str, Any]:
    """Post signed share releases (custodians after closing; role bidder: the bidder)."""
    actor = current_actor()
    project, now = _touch(tender), request_now()
    accepted = _logged(project, "share.release_refused", lambda: releases.accept_releases(
        db.session, actor, now, project, body["data"]))
    return {"data": [a.as_dict() for a in accepted]}


def _manager_action(name: str, call: Callable[..., Any]) -> None:
    @blp.route(f"/<int:tender>/opening/{name}", methods=["POST"], endpoint=f"opening_{name}")
    @blp.response(200, OpeningEnvelope)
    @blp.doc(security=BEARER, summary=f"Opening: {name} (the project's agent)")
    def action(tender: int) -> dict[str, Any]:
        actor = current_actor()
        project = _touch(tender)
        return {"data": _logged(project, name, lambda: call(actor, request_now(), tender))}


def _start(actor: Any, now: Any, tender: int) -> dict[str, Any]:
    opening = service.start_opening(db.session, actor, now, tender)
    if opening.status == "failed":
        return {"tender": str(tender), "status": "failed", "started_at": opening.started_at,
                "reason": "C2", "files": []}
    return service.opening_view(db.session, actor, now, tender)


def _decrypt(actor: Any, now: Any, tender: int) -> dict[str, Any]:
    return service.decrypt(db.session, actor, now, tender, runtime().blobs)


def _finish(actor: Any, now: Any, tender: int) -> dict[str, Any]:
    service.finish(db.session, actor, now, tender, runtime().blobs)
    return service.published_record(db.session, actor, tender)


_manager_action("start", _start)
_manager_action("decrypt", _decrypt)
_manager_action("finish", _finish)


@blp.route("/<int:tender>/opening", methods=["GET"])
@blp.response(200, OpeningEnvelope)
def get_opening(tender: int) -> dict[str, Any]:
    """The opening's progress; its results once they may be disclosed."""
    actor = current_actor(optional=True)
    _touch(tender)
    return {"data": service.opening_view(db.session, actor, request_now(), tender)}


@blp.route("/<int:tender>/opening/objections", methods=["POST"])
@blp.arguments(OpeningTextIn)
@blp.response(201, OpeningObjectionEnvelope)
@blp.doc(security=BEARER)
def post_objection(body: dict[str, Any], tender: int) -> dict[str, Any]:
    """A bidder raises an objection during the opening (C5)."""
    actor = current_actor()
    project = _touch(tender)
    objection = _logged(project, "objection", lambda: service.raise_objection(
        db.session, actor, request_now(), tender, body["data"]["text"]))
    return {"data": service.objection_out(objection, actor.org_code)}


@blp.route("/<int:tender>/opening/objections/<int:objection_id>/answer", methods=["POST"])
@blp.arguments(OpeningTextIn)
@blp.response(200, OpeningObjectionEnvelope)
@blp.doc(security=BEARER)
def post_answer(body: dict[str, Any], tender: int, objection_id: int) -> dict[str, Any]:
    """The agent answers an objection on the spot (C5)."""
    actor = current_actor()
    project = _touch(tender)
    objection = _logged(project, "answer", lambda: service.answer_objection(
        db.session, actor, request_now(), tender, objection_id, body["data"]["text"]))
    return {"data": service.objection_out(objection, service.bidder_code_of(db.session, objection))}


@blp.route("/<int:tender>/opening-record", methods=["GET"])
@blp.response(200, OpeningEnvelope)
def get_record(tender: int) -> dict[str, Any]:
    """The published opening record (public, C6)."""
    return {"data": service.published_record(db.session, current_actor(optional=True), tender)}


@blp.route("/<int:tender>/bid-keys", methods=["GET"])
@blp.response(200, BidKeyListOut)
def get_bid_keys(tender: int) -> dict[str, Any]:
    """K and the .ebid of every opened bid-form.json, so anyone can re-check them (§6)."""
    rows = service.bid_keys(db.session, current_actor(optional=True), tender)
    return {"data": [{"lot": r.lot_code, "bidder": r.bidder_code, "file": r.file,
                      "key": b64encode(bytes(r.bid_key)),
                      "ebid": url_for("opening.get_opened_ebid", tender=tender, lot=r.lot_code,
                                      bidder=r.bidder_code, _external=True)} for r in rows]}


@blp.route("/<int:tender>/bid-keys/<string:lot>/<string:bidder>/bid-form.json.ebid", methods=["GET"])
@blp.doc(responses={"200": {"description": "The sealed bid form",
                            "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                "format": "binary"}}}}})
def get_opened_ebid(tender: int, lot: str, bidder: str) -> Response:
    """The .ebid bytes of an opened bid-form.json, public after publication."""
    submission = service.opened_bid_form(db.session, current_actor(optional=True), tender, lot, bidder)
    blobs = runtime().blobs
    if not blobs.exists(submission.ciphertext_sha256):
        raise NotFound("The stored file is missing", code="stored_file_missing")
    return send_file(blobs.path(submission.ciphertext_sha256), mimetype="application/octet-stream",
                     as_attachment=True, download_name=f"{lot}-{bidder}-bid-form.json.ebid")


def register(api: Api) -> None:
    api.register_blueprint(blp)
