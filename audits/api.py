"""The public audit-log endpoints of PROTOCOL §7, under /api/v1/audit/."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Response
from flask_smorest import Api, Blueprint
from marshmallow import Schema, fields, validate

from audits import log, merkle, notes
from audits.models import Checkpoint, LogDetail, LogEntry
from core.db import db
from core.errors import BadRequest, Forbidden, NotFound
from core.runtime import runtime
from core.schemas import envelope_of
from crypto.canonical import b64encode

blp = Blueprint("audit", __name__, url_prefix="/api/v1/audit",
                description="The tamper-evident audit log (RFC 9162 Merkle tree, signed checkpoints)")

PAGE_LIMIT = 1000
_TEXT = {"200": {"description": "Plain text", "content": {"text/plain": {"schema": {"type": "string"}}}}}


def _text(body: str, immutable: bool = False) -> Response:
    resp = Response(body, mimetype="text/plain")
    resp.headers["Cache-Control"] = "public, max-age=31536000, immutable" if immutable else "no-cache"
    return resp


class CheckpointArgs(Schema):
    size = fields.Integer(validate=validate.Range(min=0))


class KeyArgs(Schema):
    kind = fields.String(validate=validate.OneOf(["log", "receipt"]))
    kid = fields.String(validate=validate.Regexp(r"^[0-9a-f]{16}$"))


class EntriesArgs(Schema):
    start = fields.Integer(required=True, validate=validate.Range(min=0))
    end = fields.Integer(required=True, validate=validate.Range(min=0))


class InclusionArgs(Schema):
    index = fields.Integer(required=True, validate=validate.Range(min=0))
    size = fields.Integer(required=True, validate=validate.Range(min=1))


class ConsistencyArgs(Schema):
    first = fields.Integer(required=True, validate=validate.Range(min=0))
    second = fields.Integer(required=True, validate=validate.Range(min=0))


class LeafOut(Schema):
    index = fields.Integer()
    leaf = fields.String()


class InclusionOut(Schema):
    index = fields.Integer()
    size = fields.Integer()
    path = fields.List(fields.String())


class ConsistencyOut(Schema):
    first = fields.Integer()
    second = fields.Integer()
    path = fields.List(fields.String())


class DetailOut(Schema):
    index = fields.Integer()
    detail = fields.Dict()
    salt = fields.String()


@blp.route("/checkpoint", methods=["GET"])
@blp.arguments(CheckpointArgs, location="query")
@blp.doc(responses=_TEXT)
def checkpoint(args: dict[str, Any]) -> Response:
    """The latest signed checkpoint, or the one issued at ``size``."""
    if "size" in args:
        found = db.session.get(Checkpoint, args["size"])
        if found is None:
            raise NotFound("No checkpoint was issued at that size", code="no_checkpoint")
        return _text(found.note, immutable=True)
    latest = log.latest_checkpoint(db.session)
    if latest is None:
        raise NotFound("No checkpoint yet", code="no_checkpoint")
    return _text(latest.note)


@blp.route("/key", methods=["GET"])
@blp.arguments(KeyArgs, location="query")
@blp.doc(responses=_TEXT)
def key(args: dict[str, Any]) -> Response:
    """The log verifier key line, or a receipt public key (current or retired by ``kid``)."""
    rt = runtime()
    if args.get("kind", "log") == "log":
        return _text(notes.verifier_key_line(rt.log_origin, rt.keys.log_public))
    if "kid" in args:
        public = rt.keys.receipt_public_by_kid(args["kid"])
        if public is None:
            raise NotFound("No receipt key with that kid", code="unknown_kid")
        return _text(b64encode(public), immutable=True)
    return _text(b64encode(rt.keys.receipt_public))


@blp.route("/entries", methods=["GET"])
@blp.arguments(EntriesArgs, location="query")
@blp.response(200, envelope_of(LeafOut, many=True))
def entries(args: dict[str, Any]) -> dict[str, Any]:
    """Entries [start, end), clipped to the log size and to one page."""
    current = log.size(db.session)
    start, end = args["start"], args["end"]
    if start >= current:
        raise BadRequest(f"start must be below the log size {current}", code="start_beyond_end",
                         size=current)
    if end <= start:
        raise BadRequest("end must be greater than start", code="bad_range", field="end")
    end = min(end, current, start + PAGE_LIMIT)
    rows = db.session.execute(sa.select(LogEntry.index, LogEntry.entry)
                              .where(LogEntry.index >= start, LogEntry.index < end)
                              .order_by(LogEntry.index)).all()
    return {"data": [{"index": i, "leaf": b64encode(bytes(e))} for i, e in rows]}


@blp.route("/proof/inclusion", methods=["GET"])
@blp.arguments(InclusionArgs, location="query")
@blp.response(200, envelope_of(InclusionOut))
def inclusion(args: dict[str, Any]) -> dict[str, Any]:
    """The inclusion proof of entry ``index`` in the tree of ``size`` entries."""
    index, size = args["index"], args["size"]
    current = log.size(db.session)
    if size > current:
        raise BadRequest(f"size beyond the log size {current}", code="size_beyond_log", size=current)
    if index >= size:
        raise BadRequest("index must be below size", code="index_beyond_size", field="index")
    path = merkle.inclusion_proof(index, size, log.DbNodeReader(db.session))
    return {"data": {"index": index, "size": size, "path": [b64encode(p) for p in path]}}


@blp.route("/proof/consistency", methods=["GET"])
@blp.arguments(ConsistencyArgs, location="query")
@blp.response(200, envelope_of(ConsistencyOut))
def consistency(args: dict[str, Any]) -> dict[str, Any]:
    """The consistency proof between the trees of ``first`` and ``second`` entries."""
    first, second = args["first"], args["second"]
    current = log.size(db.session)
    if second > current:
        raise BadRequest(f"second beyond the log size {current}", code="size_beyond_log", size=current)
    if first == 0 or first > second:
        # No proof relates the empty tree (RFC 9162 verifiers reject one): 1 <= first <= second.
        raise BadRequest("need 1 <= first <= second", code="bad_range", field="first")
    path = merkle.consistency_proof(first, second, log.DbNodeReader(db.session))
    return {"data": {"first": first, "second": second, "path": [b64encode(p) for p in path]}}


@blp.route("/entries/<int:index>/detail", methods=["GET"])
@blp.response(200, envelope_of(DetailOut))
@blp.doc(security=[{"bearer": []}])
def detail(index: int) -> dict[str, Any]:
    """The hidden detail of an entry and its salt: supervisors, or the readers it names."""
    from core.web import request_now
    from trading.web import current_actor
    actor = current_actor()
    row = db.session.get(LogDetail, index)
    if row is None:
        raise NotFound("That entry has no detail", code="no_detail")
    allowed = actor.has("supervisor") or (actor.user_id is not None
                                          and actor.user_id in row.readers.get("users", []))
    if not allowed:
        db.session.rollback()
        log.append(db.session, now=request_now(), actor=actor.log_name, action="audit.detail_refused",
                   subject=f"log:{index}", data={})
        db.session.commit()
        raise Forbidden("Only supervisors and the parties named may read this detail",
                        code="detail_forbidden", message_zh="仅监督人员及相关方可查看此详情")
    return {"data": {"index": index, "detail": row.detail, "salt": b64encode(bytes(row.salt))}}


def register(api: Api) -> None:
    api.register_blueprint(blp)
