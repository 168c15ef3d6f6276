"""HTTP endpoints of trading projects: thin views over trading.projects."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask.views import MethodView
from flask_smorest import Api, Blueprint

from core.db import db
from core.runtime import runtime
from core.schemas import envelope_of
from core.web import request_now
from trading import projects
from trading.models import Clarification, Notice
from trading.schemas import (ClarificationIn, ClarificationOut, NoticeOut, ProjectCreate,
                             ProjectFilter, ProjectOut, ProjectUpdate, ReasonIn)
from trading.web import current_actor

blp = Blueprint("projects", __name__, url_prefix="/api/v1/projects",
                description="Trading projects: construction tenders, government procurement, state assets")
BEARER = [{"bearer": []}]


@blp.route("")
class ProjectsView(MethodView):
    @blp.arguments(ProjectFilter, location="query")
    @blp.response(200, envelope_of(ProjectOut, many=True, paged=True))
    def get(self, filters: dict[str, Any]) -> dict[str, Any]:
        """List projects (public ones, plus the caller's drafts), filtered and paginated."""
        actor, now = current_actor(optional=True), request_now()
        rows, total = projects.list_projects(db.session, actor, now, filters)
        return {"data": [projects.project_view(db.session, p, now) for p in rows],
                "meta": {"page": filters["page"], "per_page": filters["per_page"], "total": total}}

    @blp.arguments(ProjectCreate)
    @blp.response(201, envelope_of(ProjectOut))
    @blp.doc(security=BEARER)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a draft project."""
        actor, now = current_actor(), request_now()
        project = projects.create_project(db.session, actor, now, body)
        db.session.commit()
        return {"data": projects.project_view(db.session, project, now)}


@blp.route("/<int:project_id>")
class ProjectView(MethodView):
    @blp.response(200, envelope_of(ProjectOut))
    def get(self, project_id: int) -> dict[str, Any]:
        """One project with its derived status."""
        actor, now = current_actor(optional=True), request_now()
        project = projects.get_project(db.session, actor, project_id)
        return {"data": projects.project_view(db.session, project, now)}

    @blp.arguments(ProjectUpdate)
    @blp.response(200, envelope_of(ProjectOut))
    @blp.doc(security=BEARER)
    def patch(self, body: dict[str, Any], project_id: int) -> dict[str, Any]:
        """Edit a draft project."""
        actor, now = current_actor(), request_now()
        project = projects.update_project(db.session, actor, now, project_id, body)
        db.session.commit()
        return {"data": projects.project_view(db.session, project, now)}


def _action(name: str, service: Any, with_reason: bool) -> None:
    if with_reason:
        @blp.route(f"/<int:project_id>/{name}", methods=["POST"], endpoint=name)
        @blp.arguments(ReasonIn)
        @blp.response(200, envelope_of(ProjectOut))
        @blp.doc(security=BEARER, summary=f"{name.capitalize()} the project")
        def view(body: dict[str, Any], project_id: int) -> dict[str, Any]:
            actor, now = current_actor(), request_now()
            project = service(db.session, actor, now, project_id, body["reason"])
            db.session.commit()
            return {"data": projects.project_view(db.session, project, now)}
    else:
        @blp.route(f"/<int:project_id>/{name}", methods=["POST"], endpoint=name)
        @blp.response(200, envelope_of(ProjectOut))
        @blp.doc(security=BEARER, summary=f"{name.capitalize()} the project")
        def view(project_id: int) -> dict[str, Any]:  # type: ignore[misc]
            actor, now = current_actor(), request_now()
            project = service(db.session, actor, now, project_id, runtime().rulebook)
            db.session.commit()
            return {"data": projects.project_view(db.session, project, now)}


_action("publish", projects.publish_project, with_reason=False)
_action("cancel", projects.cancel, with_reason=True)
_action("suspend", projects.suspend, with_reason=True)
_action("resume", projects.resume, with_reason=True)


@blp.route("/<int:project_id>/clarifications")
class ClarificationsView(MethodView):
    @blp.response(200, envelope_of(ClarificationOut, many=True))
    def get(self, project_id: int) -> dict[str, Any]:
        """Clarifications and amendments of a project."""
        projects.get_project(db.session, current_actor(optional=True), project_id)
        rows = db.session.execute(sa.select(Clarification).where(Clarification.project_id == project_id)
                                  .order_by(Clarification.id)).scalars().all()
        return {"data": rows}

    @blp.arguments(ClarificationIn)
    @blp.response(201, envelope_of(ClarificationOut))
    @blp.doc(security=BEARER)
    def post(self, body: dict[str, Any], project_id: int) -> dict[str, Any]:
        """Issue a clarification or amendment (RULES A3)."""
        actor, now = current_actor(), request_now()
        clar = projects.clarify(db.session, actor, now, project_id, body)
        db.session.commit()
        return {"data": clar}


@blp.route("/<int:project_id>/notices")
class NoticesView(MethodView):
    @blp.response(200, envelope_of(NoticeOut, many=True))
    def get(self, project_id: int) -> dict[str, Any]:
        """Public notices of a project."""
        projects.get_project(db.session, current_actor(optional=True), project_id)
        rows = db.session.execute(sa.select(Notice).where(Notice.project_id == project_id)
                                  .order_by(Notice.id)).scalars().all()
        return {"data": rows}


def register(api: Api) -> None:
    api.register_blueprint(blp)
