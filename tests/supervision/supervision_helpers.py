"""Helpers for the supervision tests: projects created and published over HTTP, later
steps recorded through ``trading.projects.apply_transition`` (their own services may not
exist yet), the clock moved past each limit, and the supervisor's view read over HTTP.

Usage::

    desk = Desk(world, clock)
    pid = desk.construction()                 # published at T0, deadline T0 + 30 days
    desk.at(desk.deadline + HOUR); desk.act(pid, "start_opening") ...
    desk.cards(project=pid)                   # the supervisor's cards, as JSON
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Callable

import sqlalchemy as sa

from core.clock import format_instant
from tests.conftest import T0

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
DEADLINE = T0 + timedelta(days=30)


def iso(instant: datetime) -> str:
    return format_instant(instant)


class Desk:
    """Drives projects as agents, bidders and supervisors would, and reads supervision."""

    def __init__(self, world: Any, clock: Any) -> None:
        self.world, self.client, self.app, self.clock = world, world.client, world.app, clock
        self.parties = world.standard()
        self.deadline = DEADLINE
        self._tokens: dict[str, tuple[datetime, str]] = {}

    # ------------------------------------------------------------------ clock and login

    def at(self, instant: datetime) -> datetime:
        self.clock.set(instant)
        return instant

    def headers(self, name: str) -> dict[str, str]:
        """Bearer headers valid at the clock's now (tokens last 15 minutes: log in again)."""
        party, now = self.parties[name], self.clock.now()
        issued = self._tokens.get(name)
        if issued is None or not timedelta(0) <= now - issued[0] < timedelta(minutes=10):
            resp = self.client.post("/api/v1/auth/token", json={"username": party.username,
                                                                "password": party.password})
            assert resp.status_code == 200, resp.get_json()
            issued = (now, resp.get_json()["data"]["access_token"])
            self._tokens[name] = issued
        return {"Authorization": f"Bearer {issued[1]}"}

    # ------------------------------------------------------------------ projects

    def project(self, domain: str = "construction", procedure: str = "open_tender", category: str = "works",
                publish: bool = True, **schedule: datetime) -> int:
        """A project created and published over HTTP at T0 (the clock is set to T0)."""
        self.at(T0)
        dates = {"documents_from": T0, "documents_until": T0 + 10 * DAY, "bid_deadline": DEADLINE, **schedule}
        body = {"title": "城区道路改造工程", "domain": domain, "procedure": procedure, "category": category,
                "tenderee": "TENDEREE1", "supervisor": "SUPERVISION1", "estimate": "1000000.00",
                "budget": "1000000.00", "max_price": "1000000.00",
                "schedule": {k: iso(v) for k, v in dates.items()},
                "lots": [{"code": "L1", "title": "标段 L1"}]}
        resp = self.client.post("/api/v1/projects", headers=self.headers("agent"), json=body)
        assert resp.status_code == 201, resp.get_json()
        project_id = resp.get_json()["data"]["id"]
        if publish:
            resp = self.client.post(f"/api/v1/projects/{project_id}/publish", headers=self.headers("agent"))
            assert resp.status_code == 200, resp.get_json()
        return project_id

    def act(self, project_id: int, action: str, at: datetime | None = None, **kw: Any) -> str:
        """Record a later step through the lifecycle's one door (``apply_transition``)."""
        from core.actor import Actor
        from core.db import db
        from trading import projects
        from trading.models import Project
        if at is not None:
            self.at(at)
        agent = self.parties["agent"]
        actor = Actor(agent.user_id, agent.username, frozenset(agent.roles), None, agent.org)
        with self.app.app_context():
            project = db.session.get(Project, project_id)
            status = projects.apply_transition(db.session, actor, self.clock.now(), project, action, **kw)
            db.session.commit()
        return str(status)

    def to_award(self, project_id: int, report_at: datetime, publicity_at: datetime | None,
                 awarded_at: datetime, **award: Any) -> None:
        """Opening, report, publicity (when given) and award, each at its instant."""
        self.act(project_id, "start_opening", self.deadline + HOUR)
        self.act(project_id, "finish_opening", self.deadline + 2 * HOUR)
        self.act(project_id, "submit_report", report_at)
        if publicity_at is not None:
            self.act(project_id, "start_publicity", publicity_at)
        self.act(project_id, "award", awarded_at, **award)

    def db(self, fn: Callable[[Any], Any], commit: bool = False) -> Any:
        from core.db import db
        with self.app.app_context():
            try:
                result = fn(db.session)
                if commit:
                    db.session.commit()
                return result
            finally:
                db.session.rollback()

    # ------------------------------------------------------------------ supervision

    def get(self, path: str, who: str = "supervisor", **query: Any) -> Any:
        return self.client.get(path, headers=self.headers(who), query_string=query)

    def cards(self, who: str = "supervisor", **query: Any) -> list[dict[str, Any]]:
        resp = self.get("/api/v1/supervision/cards", who, per_page=100, **query)
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()["data"]

    def card(self, project_id: int, rule: str, step: str, subject: str | None = None) -> dict[str, Any] | None:
        """The one card of ``project_id`` for ``rule``/``step`` (and subject), or None."""
        found = [c for c in self.cards(project=project_id)
                 if c["rule"] == rule and c["step"] == step and (subject is None or c["subject"] == subject)]
        assert len(found) <= 1, found
        return found[0] if found else None

    def view(self, project_id: int) -> dict[str, Any]:
        resp = self.get(f"/api/v1/supervision/projects/{project_id}")
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()["data"]

    def post(self, path: str, who: str, body: dict[str, Any] | None = None) -> Any:
        return self.client.post(path, headers=self.headers(who), json=body or {})

    def entries(self, action: str) -> list[dict[str, Any]]:
        from audits.entries import parse_entry
        from audits.models import LogEntry
        rows = self.db(lambda s: [bytes(r) for r in s.execute(
            sa.select(LogEntry.entry).where(LogEntry.action == action).order_by(LogEntry.index)).scalars()])
        return [parse_entry(r) for r in rows]
