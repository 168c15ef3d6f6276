"""HTTP endpoints of sealed bidding (PROTOCOL §9), under /api/v1/tenders/{tender}/.

Thin views: parse, call a service, commit, dump. Two habits are particular to this file:
every endpoint first closes the tender if its deadline has come (:func:`touch_tender`,
PROTOCOL §6), and every refusal of a bidding action is logged in its own transaction after
the refused one rolled back (:func:`refusals_logged`), hidden while the tender is open.
"""
from __future__ import annotations

import socket
import threading

from contextlib import contextmanager
from typing import Any, Iterator

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Api, Blueprint
from marshmallow import Schema, fields, validate
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from bidding import closing, policy, submission
from bidding.models import Submission
from core.actor import Actor
from core.blobs import CHUNK, read_chunks
from core.db import db
from core.errors import AppError, BadRequest
from core.runtime import runtime
from core.schemas import Identifier, MoneyField, envelope_of
from core.web import client_address, request_now, request_now_at_lock, too_large
from crypto.canonical import b64encode, loads_strict
from crypto.errors import CryptoError
from trading.models import Project
from trading.web import current_actor

blp = Blueprint("bidding", __name__, url_prefix="/api/v1/tenders",
                description="Sealed bidding: opening policy, submissions, receipts, withdrawals, closing, shares")
BEARER = [{"bearer": []}]
_JSON_BODY = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
_RAW_JSON = {"200": {"description": "The canonical policy bytes",
                     "content": {"application/json": {"schema": {"type": "object"}}}}}
_OCTETS = {"200": {"description": "The .ebid bytes",
                   "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


# --------------------------------------------------------------------------- schemas


class PolicyIn(Schema):
    threshold = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=255))
    release_window_s = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    custodians = fields.List(fields.Dict(), required=True, validate=validate.Length(min=1, max=255))


class PolicyOut(Schema):
    policy_sha256 = fields.String()
    mode = fields.String()
    threshold = fields.Integer()
    n = fields.Integer()
    release_window_s = fields.Integer()
    log_index = fields.Integer(allow_none=True)
    policy = fields.Dict()


class UploadOut(Schema):
    upload = fields.String()


class SignedReceiptOut(Schema):
    receipt = fields.Dict()
    signature = fields.String()
    kid = fields.String()


class ReceiptListOut(Schema):
    data = fields.List(fields.Nested(SignedReceiptOut), required=True)
    meta = fields.Dict()  # {"states": {receipt id: live | superseded | withdrawn}}


class WithdrawalOut(Schema):
    withdrawal = fields.String()
    receipts = fields.List(fields.String())
    withdrawn_at = fields.String()
    log_index = fields.Integer()
    detail_salt = fields.String()


class SecurityIn(Schema):
    lot = Identifier(required=True)
    amount = MoneyField(required=True)
    payer_account = fields.String(required=True, validate=validate.Length(min=1, max=64))


class SecurityOut(Schema):
    lot = fields.String(attribute="lot_code")
    amount = MoneyField()
    payer_account = fields.String()
    paid_at = fields.String()
    status = fields.String()
    log_index = fields.Integer()


class ClosingOut(Schema):
    index = fields.Integer()
    leaf = fields.String()
    checkpoint = fields.String()
    inclusion = fields.List(fields.String())


class SharesArgs(Schema):
    i = fields.Integer(required=True, validate=validate.Range(min=1, max=255))


class ShareOut(Schema):
    lot = fields.String()
    bidder = fields.String()
    file = fields.String()
    manifest_sha256 = fields.String()
    header = fields.String()
    sealed = fields.String()
    digest = fields.String()


class ListedFileOut(Schema):
    lot = fields.String()
    bidder = fields.String()
    file = fields.String()
    header_sha256 = fields.String()
    manifest_sha256 = fields.String()
    ciphertext_sha256 = fields.String()
    size = fields.Integer()
    received_at = fields.String()


# --------------------------------------------------------------------------- plumbing


def log_signer() -> closing.LogSigner:
    rt = runtime()
    return closing.LogSigner(origin=rt.log_origin, key=rt.keys.log_key)


def touch_tender(project_id: int, actor: Actor) -> None:
    """Close the tender if its deadline has come, in its own transaction (PROTOCOL §6:
    the first request that touches the tender at or after the deadline closes it).

    The opening endpoints call this too, before anything else.
    """
    closing.ensure_closed(db.session, project_id, request_now(), log_signer(), trigger=actor.log_name)
    db.session.commit()


@contextmanager
def refusals_logged(actor: Actor, project_id: int, stage: str) -> Iterator[None]:
    """Log a refused attempt after rolling its transaction back, then let the error out."""
    try:
        yield
    except AppError as exc:
        db.session.rollback()
        if db.session.get(Project, project_id) is not None:
            submission.log_refusal(db.session, actor, request_now(), project_id, stage, exc)
            db.session.commit()
        raise


def _json_body() -> Any:
    """The request body parsed strictly (no duplicate keys, no floats): signed objects are
    re-encoded canonically to verify, so anything outside §1 must fail here."""
    if not request.is_json:
        raise AppError("Send the body as application/json", code="unsupported_media_type",
                       message_zh="请以 application/json 发送请求体", status=415)
    try:
        return loads_strict(request.get_data(cache=True))
    except CryptoError as exc:
        raise BadRequest(f"Body is not valid JSON: {exc.message}", code="malformed_json",
                         message_zh="请求体不是合法的 JSON") from None


def _body_chunks() -> Iterator[bytes]:
    """The request body in chunks, straight from the socket (never read whole).

    A client that stalls is cut off by the socket's receive timeout (wsgi.py); one that
    trickles its body would still hold a worker thread, so the upload gets a budget of the
    client timeout plus its length at ``EBID_MIN_UPLOAD_BYTES_PER_SECOND``, after which a
    timer shuts the socket for reading. (That budget runs on the monotonic clock: it is not
    a deadline of the procedure, which only the injected clock decides.)
    """
    config = runtime().config
    sock = request.environ.get("gunicorn.socket")
    budget = config["EBID_CLIENT_TIMEOUT_SECONDS"] + (request.content_length or 0) / max(
        1, config["EBID_MIN_UPLOAD_BYTES_PER_SECOND"])
    cut = threading.Event()

    def cut_off() -> None:
        cut.set()
        try:
            sock.shutdown(socket.SHUT_RD)  # the blocked read returns: the upload ends short
        except OSError:
            pass

    timer = threading.Timer(budget, cut_off) if sock is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        yield from read_chunks(request.stream, CHUNK)  # type: ignore[arg-type]
    except (ClientDisconnected, TimeoutError):
        if cut.is_set():
            raise AppError("The upload was too slow", code="upload_too_slow", status=408,
                           message_zh="上传速度过慢，连接已断开") from None
        raise BadRequest("The upload ended before its last byte", code="upload_incomplete",
                         message_zh="上传未完成即中断") from None
    except RequestEntityTooLarge:
        raise too_large(request.max_content_length or 0) from None
    finally:
        if timer is not None:
            timer.cancel()


def _signed(receipt: dict[str, Any]) -> dict[str, Any]:
    return submission.sign_receipt(receipt, runtime().keys.receipt_key)


# --------------------------------------------------------------------------- policy


@blp.route("/<int:project_id>/policy")
class PolicyView(MethodView):
    @blp.doc(responses=_RAW_JSON)
    def get(self, project_id: int) -> Response:
        """The opening policy: the exact canonical bytes sealing tools hash (no envelope)."""
        actor = current_actor(optional=True)
        touch_tender(project_id, actor)
        raw = policy.published_policy(db.session, actor, project_id)
        return Response(raw, mimetype="application/json")

    @blp.arguments(PolicyIn)
    @blp.response(200, envelope_of(PolicyOut))
    @blp.doc(security=BEARER)
    def put(self, body: dict[str, Any], project_id: int) -> dict[str, Any]:
        """Set or replace the opening policy (the project's manager; frozen once a bid is in)."""
        actor, now = current_actor(), request_now()
        touch_tender(project_id, actor)
        row = policy.set_policy(db.session, actor, now, project_id, body)
        db.session.commit()
        return {"data": {"policy_sha256": row.sha256, "mode": row.mode, "threshold": row.threshold,
                         "n": row.n, "release_window_s": row.release_window_s, "log_index": row.log_index}}

    @blp.arguments(PolicyIn)
    @blp.response(200, envelope_of(PolicyOut))
    @blp.doc(security=BEARER)
    def post(self, body: dict[str, Any], project_id: int) -> dict[str, Any]:
        """Check a policy exactly as PUT would, storing nothing (a dry run for the manager)."""
        actor, now = current_actor(), request_now()
        checked = policy.validate_policy(db.session, actor, now, project_id, body)
        db.session.rollback()
        parsed = checked.parsed
        return {"data": {"policy_sha256": parsed.sha256, "mode": checked.mode, "threshold": parsed.threshold,
                         "n": parsed.n, "release_window_s": parsed.release_window_s, "log_index": None,
                         "policy": loads_strict(checked.raw)}}


# --------------------------------------------------------------------------- submissions


@blp.route("/<int:project_id>/submissions")
class SubmissionsView(MethodView):
    @blp.doc(security=BEARER, requestBody=_JSON_BODY,
             responses={"200": {"description": "Already stored: the signed receipt"}})
    @blp.response(201, envelope_of(UploadOut))
    def post(self, project_id: int) -> Any:
        """Post a signed manifest; upload its .ebid file to the URL returned."""
        actor = current_actor()
        touch_tender(project_id, actor)
        with refusals_logged(actor, project_id, "manifest"):
            started = submission.start_submission(db.session, actor, request_now(), project_id, _json_body(),
                                                  runtime().config["EBID_MAX_UPLOAD_BYTES"])
            db.session.commit()
        if started.receipt is not None:
            return Response(_dump({"data": _signed(started.receipt)}), status=200, mimetype="application/json")
        return {"data": {"upload": submission.upload_path(project_id, started.manifest_sha256)}}

    @blp.response(200, envelope_of(ListedFileOut, many=True))
    @blp.doc(security=BEARER)
    def get(self, project_id: int) -> dict[str, Any]:
        """The files the closing listed (agent, tenderee, supervisors; after closing only)."""
        actor = current_actor()
        touch_tender(project_id, actor)
        with refusals_logged(actor, project_id, "list"):
            rows = closing.listed_files(db.session, actor, request_now(), project_id)
            db.session.commit()
        return {"data": rows}


def _dump(body: Any) -> str:
    from flask import json
    return json.dumps(body)


@blp.route("/<int:project_id>/uploads/<string:manifest_sha256>", methods=["PUT"])
@blp.doc(security=BEARER, requestBody={"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}})
@blp.response(201, envelope_of(SignedReceiptOut))
def upload(project_id: int, manifest_sha256: str) -> Any:
    """Upload the .ebid bytes of a posted manifest; 201 with the signed receipt."""
    actor = current_actor()
    request.max_content_length = runtime().config["EBID_MAX_UPLOAD_BYTES"]
    touch_tender(project_id, actor)
    with refusals_logged(actor, project_id, "upload"):
        if request.mimetype != "application/octet-stream":
            raise AppError("Send the file as application/octet-stream", code="unsupported_media_type",
                           message_zh="请以 application/octet-stream 上传文件", status=415)
        found = submission.find_upload(db.session, actor, request_now(), project_id, manifest_sha256)
        # End the read transaction before the body streams in: on SQLite a transaction
        # holds the database's write lock from its first statement.
        db.session.commit()
        if isinstance(found, dict):
            return Response(_dump({"data": _signed(found)}), status=200, mimetype="application/json")
        received = submission.receive_file(runtime().blobs, _body_chunks(), found.size)
        submission.check_file(db.session, found, received)
        stored = submission.store_submission(db.session, actor, request_now_at_lock, found, received,
                                             client_address())
        db.session.commit()
    if not stored.created:
        return Response(_dump({"data": _signed(stored.receipt)}), status=200, mimetype="application/json")
    # signed only now that the bid is committed: an acknowledged bid is never lost
    return {"data": _signed(stored.receipt)}


@blp.route("/<int:project_id>/receipts", methods=["GET"])
@blp.response(200, ReceiptListOut)
@blp.doc(security=BEARER)
def receipts(project_id: int) -> dict[str, Any]:
    """The caller's own signed receipts (all of its organisation's files, any state)."""
    actor = current_actor()
    touch_tender(project_id, actor)
    with refusals_logged(actor, project_id, "receipts"):
        rows: list[Submission] = submission.own_receipts(db.session, actor, project_id)
    return {"data": [_signed(r.receipt) for r in rows],
            "meta": {"states": {r.manifest_sha256: r.state for r in rows}}}


@blp.route("/<int:project_id>/withdrawals", methods=["POST"])
@blp.doc(security=BEARER, requestBody=_JSON_BODY)
@blp.response(201, envelope_of(WithdrawalOut))
def withdrawals(project_id: int) -> dict[str, Any]:
    """Withdraw live receipts with a signed withdrawal (before the deadline)."""
    actor = current_actor()
    touch_tender(project_id, actor)
    with refusals_logged(actor, project_id, "withdrawal"):
        done = submission.withdraw(db.session, actor, request_now_at_lock, project_id, _json_body())
        db.session.commit()
    return {"data": {"withdrawal": done.withdrawal_sha256, "receipts": done.receipts,
                     "withdrawn_at": _instant(done.withdrawn_at), "log_index": done.log_index,
                     "detail_salt": b64encode(done.detail_salt)}}


def _instant(value: Any) -> str:
    from core.clock import format_instant
    return format_instant(value)


@blp.route("/<int:project_id>/securities")
class SecuritiesView(MethodView):
    @blp.arguments(SecurityIn)
    @blp.response(201, envelope_of(SecurityOut))
    @blp.doc(security=BEARER)
    def post(self, body: dict[str, Any], project_id: int) -> dict[str, Any]:
        """Record the bidder's bid security payment (hidden until closing)."""
        actor = current_actor()
        touch_tender(project_id, actor)
        with refusals_logged(actor, project_id, "security"):
            row = submission.pay_security(db.session, actor, request_now_at_lock, project_id, body)
            db.session.commit()
        return {"data": _security(row)}

    @blp.response(200, envelope_of(SecurityOut, many=True))
    @blp.doc(security=BEARER)
    def get(self, project_id: int) -> dict[str, Any]:
        """Bid securities: a bidder's own; all of them to the manager and supervisors after closing."""
        actor = current_actor()
        touch_tender(project_id, actor)
        with refusals_logged(actor, project_id, "securities"):
            rows = submission.list_securities(db.session, actor, project_id)
        return {"data": [_security(r) for r in rows]}


def _security(row: Any) -> dict[str, Any]:
    return {"lot_code": row.lot_code, "amount": row.amount, "payer_account": row.payer_account,
            "paid_at": _instant(row.paid_at), "status": row.status, "log_index": row.log_index}


# --------------------------------------------------------------------------- after closing


@blp.route("/<int:project_id>/closing", methods=["GET"])
@blp.response(200, envelope_of(ClosingOut))
def closing_view(project_id: int) -> dict[str, Any]:
    """The tender.closed entry, the checkpoint that includes it, and the inclusion proof."""
    actor = current_actor(optional=True)
    touch_tender(project_id, actor)
    from trading import projects
    projects.get_project(db.session, actor, project_id)
    return {"data": closing.closing_proof(db.session, project_id)}


@blp.route("/<int:project_id>/shares", methods=["GET"])
@blp.arguments(SharesArgs, location="query")
@blp.response(200, envelope_of(ShareOut, many=True))
@blp.doc(security=BEARER)
def shares(args: dict[str, Any], project_id: int) -> dict[str, Any]:
    """Custodian i's sealed shares of the listed files (after closing only)."""
    actor = current_actor()
    touch_tender(project_id, actor)
    with refusals_logged(actor, project_id, "shares"):
        rows = closing.shares_for(db.session, actor, request_now(), project_id, args["i"])
        db.session.commit()
    return {"data": rows}


@blp.route("/<int:project_id>/files/<string:manifest_sha256>", methods=["GET"])
@blp.doc(security=BEARER, responses=_OCTETS)
def file_download(project_id: int, manifest_sha256: str) -> Response:
    """A sealed .ebid file, streamed (after closing: custodians, the agent, supervisors)."""
    actor = current_actor()
    touch_tender(project_id, actor)
    with refusals_logged(actor, project_id, "download"):
        sub = closing.file_for_download(db.session, actor, request_now(), project_id, manifest_sha256)
        db.session.commit()
    handle = runtime().blobs.open(sub.ciphertext_sha256)

    def stream() -> Iterator[bytes]:
        with handle:
            yield from read_chunks(handle, CHUNK)

    resp = Response(stream(), mimetype="application/octet-stream")
    resp.headers["Content-Length"] = str(sub.size)
    resp.headers["Content-Disposition"] = f'attachment; filename="{sub.file}.ebid"'
    return resp


def register(api: Api) -> None:
    api.register_blueprint(blp)
    __import__("bidding.api_award").api_award.register(api)  # evaluation and award (bidding/api_award.py)
    __import__("bidding.api_supervision", fromlist=["register"]).register(api)  # 电子监察, complaints
    try:
        from bidding import api_opening
    except ModuleNotFoundError as exc:  # the opening endpoints may not exist yet
        if exc.name != "bidding.api_opening":
            raise
        return
    api_opening.register(api)
