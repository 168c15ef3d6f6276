"""HTTP endpoints of trading projects: thin views over trading.projects."""
from __future__ import annotations

import base64
import re
from typing import Any, Iterator
from urllib.parse import quote

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Api, Blueprint
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from core.blobs import CHUNK, BlobTooLarge, read_chunks
from core.db import db
from core.errors import AppError, BadRequest, ValidationFailed
from core.runtime import runtime
from core.schemas import envelope_of
from core.web import request_now, too_large
from trading import projects
from trading.schemas import (ClarificationIn, ClarificationOut, DocumentArgs, DocumentOut, NoticeOut,
                             ProjectCreate, ProjectFilter, ProjectOut, ProjectUpdate, ReasonIn, ResumeIn)
from trading.web import current_actor

blp = Blueprint("projects", __name__, url_prefix="/api/v1/projects",
                description="Trading projects: construction tenders, government procurement, state assets")
BEARER = [{"bearer": []}]
_OCTETS = {200: {"description": "The document's bytes",
                 "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}
# Form encodings would be parsed by the framework, not stored as sent.
_REFUSED_UPLOAD_TYPES = re.compile(r"^(multipart/|application/x-www-form-urlencoded$)")
_MIME = re.compile(r"^[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*$")


def _view(project: Any, now: Any) -> dict[str, Any]:
    return projects.project_view(db.session, project, now, runtime().rulebook.calendar)


@blp.route("")
class ProjectsView(MethodView):
    @blp.arguments(ProjectFilter, location="query")
    @blp.response(200, envelope_of(ProjectOut, many=True, paged=True))
    def get(self, filters: dict[str, Any]) -> dict[str, Any]:
        """List projects (public ones, plus the caller's drafts), filtered and paginated."""
        actor, now = current_actor(optional=True), request_now()
        rows, total = projects.list_projects(db.session, actor, now, filters)
        return {"data": [_view(p, now) for p in rows],
                "meta": {"page": filters["page"], "per_page": filters["per_page"], "total": total}}

    @blp.arguments(ProjectCreate)
    @blp.response(201, envelope_of(ProjectOut))
    @blp.doc(security=BEARER)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a draft project."""
        actor, now = current_actor(), request_now()
        project = projects.create_project(db.session, actor, now, body, runtime().rulebook)
        db.session.commit()
        return {"data": _view(project, now)}


@blp.route("/<int:project_id>")
class ProjectView(MethodView):
    @blp.response(200, envelope_of(ProjectOut))
    def get(self, project_id: int) -> dict[str, Any]:
        """One project with its derived status and legal limits."""
        actor, now = current_actor(optional=True), request_now()
        project = projects.get_project(db.session, actor, project_id)
        return {"data": _view(project, now)}

    @blp.arguments(ProjectUpdate)
    @blp.response(200, envelope_of(ProjectOut))
    @blp.doc(security=BEARER)
    def patch(self, body: dict[str, Any], project_id: int) -> dict[str, Any]:
        """Edit a draft project."""
        actor, now = current_actor(), request_now()
        project = projects.update_project(db.session, actor, now, project_id, body, runtime().rulebook)
        db.session.commit()
        return {"data": _view(project, now)}


@blp.route("/<int:project_id>/publish", methods=["POST"])
@blp.response(200, envelope_of(ProjectOut))
@blp.doc(security=BEARER)
def publish(project_id: int) -> dict[str, Any]:
    """Publish a draft: the rulebook checks its schedule and money and is pinned on it."""
    actor, now = current_actor(), request_now()
    project = projects.publish_project(db.session, actor, now, project_id, runtime().rulebook)
    db.session.commit()
    return {"data": _view(project, now)}


def _reasoned(name: str, service: Any, summary: str) -> None:
    @blp.route(f"/<int:project_id>/{name}", methods=["POST"], endpoint=name)
    @blp.arguments(ReasonIn)
    @blp.response(200, envelope_of(ProjectOut))
    @blp.doc(security=BEARER, summary=summary)
    def view(body: dict[str, Any], project_id: int) -> dict[str, Any]:
        actor, now = current_actor(), request_now()
        project = service(db.session, actor, now, project_id, body["reason"])
        db.session.commit()
        return {"data": _view(project, now)}


_reasoned("cancel", projects.cancel, "Cancel the project (the agent), with a reason")
_reasoned("suspend", projects.suspend, "Suspend the project (a supervisor, RULES H3), with a reason")


@blp.route("/<int:project_id>/resume", methods=["POST"])
@blp.arguments(ResumeIn)
@blp.response(200, envelope_of(ProjectOut))
@blp.doc(security=BEARER)
def resume(body: dict[str, Any], project_id: int) -> dict[str, Any]:
    """Lift a suspension (a supervisor), with new dates for those that passed meanwhile."""
    actor, now = current_actor(), request_now()
    project = projects.resume(db.session, actor, now, project_id, body["reason"], body.get("schedule"),
                              runtime().rulebook)
    db.session.commit()
    return {"data": _view(project, now)}


@blp.route("/<int:project_id>/clarifications")
class ClarificationsView(MethodView):
    @blp.response(200, envelope_of(ClarificationOut, many=True))
    def get(self, project_id: int) -> dict[str, Any]:
        """Clarifications and amendments of a project."""
        return {"data": projects.list_clarifications(db.session, current_actor(optional=True), project_id)}

    @blp.arguments(ClarificationIn)
    @blp.response(201, envelope_of(ClarificationOut))
    @blp.doc(security=BEARER)
    def post(self, body: dict[str, Any], project_id: int) -> dict[str, Any]:
        """Issue a clarification or amendment (RULES A3)."""
        actor, now = current_actor(), request_now()
        clar = projects.clarify(db.session, actor, now, project_id, body, runtime().rulebook)
        db.session.commit()
        return {"data": clar}


@blp.route("/<int:project_id>/notices")
class NoticesView(MethodView):
    @blp.response(200, envelope_of(NoticeOut, many=True))
    def get(self, project_id: int) -> dict[str, Any]:
        """Public notices of a project."""
        return {"data": projects.list_notices(db.session, current_actor(optional=True), project_id)}


# --------------------------------------------------------------------------- documents


def _body_chunks() -> Iterator[bytes]:
    """The request body in chunks, straight from the socket (never read whole)."""
    try:
        yield from read_chunks(request.stream, CHUNK)  # type: ignore[arg-type]
    except RequestEntityTooLarge:
        raise too_large(request.max_content_length or 0) from None
    except ClientDisconnected:
        raise BadRequest("The upload ended before its last byte", code="upload_incomplete",
                         message_zh="上传未完成即中断") from None


@blp.route("/<int:project_id>/documents")
class DocumentsView(MethodView):
    @blp.response(200, envelope_of(DocumentOut, many=True))
    def get(self, project_id: int) -> dict[str, Any]:
        """The project's documents: names, sizes and SHA-256 hashes."""
        return {"data": projects.list_documents(db.session, current_actor(optional=True), project_id)}

    @blp.arguments(DocumentArgs, location="query")
    @blp.response(201, envelope_of(DocumentOut))
    @blp.doc(security=BEARER, requestBody={"required": True, "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}})
    def post(self, args: dict[str, Any], project_id: int) -> dict[str, Any]:
        """Upload a tender document to a draft: the raw bytes as the body, the file name in
        ``?name=``. Stored content-addressed; the response gives its SHA-256."""
        limit = runtime().config["EBID_MAX_UPLOAD_BYTES"]
        request.max_content_length = limit
        actor, now = current_actor(), request_now()
        mimetype = request.mimetype
        if not _MIME.match(mimetype or "") or _REFUSED_UPLOAD_TYPES.match(mimetype):
            raise AppError("Send the document's bytes as the body with its content type "
                           "(e.g. application/pdf or application/octet-stream)", code="unsupported_media_type",
                           message_zh="请以文件本身的内容类型（如 application/pdf）上传文件字节", status=415)
        projects.check_document_upload(db.session, actor, now, project_id)
        # End the read transaction before the body streams in: on SQLite a transaction
        # holds the database's write lock from its first statement.
        db.session.commit()
        try:
            blob = runtime().blobs.put_stream(_body_chunks(), max_size=limit)
        except BlobTooLarge:
            raise too_large(limit) from None
        if blob.size == 0:
            raise ValidationFailed("The document is empty", code="empty_document", message_zh="文件为空",
                                   field="body")
        doc = projects.add_document(db.session, actor, now, project_id, name=args["name"],
                                    content_type=mimetype, blob=blob)
        db.session.commit()
        return {"data": doc}


def _content_disposition(name: str) -> str:
    # The name was checked at upload (no quotes, no control characters); the ASCII
    # fallback is for clients that ignore RFC 6266's filename*.
    fallback = "".join(ch if 32 <= ord(ch) < 127 else "_" for ch in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


@blp.route("/<int:project_id>/documents/<int:document_id>", methods=["GET"])
@blp.doc(responses=_OCTETS)
def document_download(project_id: int, document_id: int) -> Response:
    """Download a document, streamed; always as an attachment, never rendered inline."""
    actor, now = current_actor(optional=True), request_now()
    doc = projects.document_for_download(db.session, actor, now, project_id, document_id)
    db.session.commit()
    handle = runtime().blobs.open(doc.sha256)

    def stream() -> Iterator[bytes]:
        with handle:
            yield from read_chunks(handle, CHUNK)

    resp = Response(stream(), mimetype="application/octet-stream")
    resp.headers["Content-Length"] = str(doc.size)
    resp.headers["Content-Disposition"] = _content_disposition(doc.name)
    resp.headers["ETag"] = f'"{doc.sha256}"'
    resp.headers["Repr-Digest"] = f"sha-256=:{base64.b64encode(bytes.fromhex(doc.sha256)).decode()}:"
    return resp


def register(api: Api) -> None:
    api.register_blueprint(blp)
