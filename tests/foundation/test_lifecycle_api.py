"""Every lifecycle transition trading serves, through the API, and its refusal.

draft → published (publish) → bidding (documents issued: time) → closed (deadline: time);
cancel from any live state; suspend and resume by the project's supervisor. Timed steps
are derived from the schedule and the clock, so the tests move the clock, at named
instants: just before, exactly at, and after each one. Refusals are 409 with a stable code.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

DOCUMENTS_FROM = datetime(2026, 3, 4, 1, 0, tzinfo=timezone.utc)    # Wed 4 March 09:00 Shanghai
DEADLINE = datetime(2026, 3, 24, 1, 30, tzinfo=timezone.utc)        # Tue 24 March 09:30 Shanghai
ONE_MS = timedelta(milliseconds=1)


def iso(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def login(client: Any, party: Any) -> dict[str, str]:
    """Fresh bearer headers at the clock's current time (tokens live 15 minutes)."""
    resp = client.post("/api/v1/auth/token", json={"username": party.username, "password": party.password})
    assert resp.status_code == 200, resp.get_json()
    return {"Authorization": f"Bearer {resp.get_json()['data']['access_token']}"}


def tender(**schedule: Any) -> dict[str, Any]:
    return {"title": "城区道路改造工程", "domain": "construction", "procedure": "open_tender",
            "category": "works", "tenderee": "TENDEREE1", "supervisor": "SUPERVISION1",
            "estimate": "1000000.00", "max_price": "1000000.00",
            "schedule": {"documents_from": iso(DOCUMENTS_FROM), "bid_deadline": iso(DEADLINE), **schedule}}


def refused(resp: Any, code: str, status: int = 409) -> dict[str, Any]:
    body = resp.get_json()
    assert resp.status_code == status, body
    assert body["error"]["code"] == code, body
    return body["error"]["details"]


def status(client: Any, project_id: int, headers: dict[str, str] | None = None) -> str:
    resp = client.get(f"/api/v1/projects/{project_id}", headers=headers or {})
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["data"]["status"]


def log_actions(app: Any, project_id: int) -> list[str]:
    from audits.models import LogEntry
    from core.db import db
    with app.app_context():
        return list(db.session.execute(sa.select(LogEntry.action).where(
            LogEntry.subject == f"project:{project_id}").order_by(LogEntry.index)).scalars())


@pytest.fixture
def parties(world: Any) -> dict[str, Any]:
    return world.standard()


@pytest.fixture
def draft(client: Any, parties: dict[str, Any]) -> int:
    resp = client.post("/api/v1/projects", headers=parties["agent"].headers, json=tender())
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["data"]["id"]


@pytest.fixture
def live(client: Any, parties: dict[str, Any], draft: int) -> int:
    """The draft, published at T0 (2 March), bids from 4 March."""
    resp = client.post(f"/api/v1/projects/{draft}/publish", headers=parties["agent"].headers)
    assert resp.status_code == 200, resp.get_json()
    return draft


def test_draft_published_bidding_closed_at_named_instants(client, clock, parties, draft, app, backend):
    agent = parties["agent"].headers
    data = client.get(f"/api/v1/projects/{draft}", headers=agent).get_json()["data"]
    assert data["status"] == "draft" and data["next_check"] is None
    resp = client.post(f"/api/v1/projects/{draft}/publish", headers=agent)
    data = resp.get_json()["data"]
    assert data["status"] == "published" and data["next_check"] == "2026-03-04T01:00:00.000Z"
    assert data["milestones"]["published_at"] == "2026-03-02T01:00:00Z"
    # Each instant, and what the next check will be.
    for at, expected, next_check in (
            (DOCUMENTS_FROM - ONE_MS, "published", "2026-03-04T01:00:00.000Z"),
            (DOCUMENTS_FROM, "bidding", "2026-03-24T01:30:00.000Z"),
            (DEADLINE - ONE_MS, "bidding", "2026-03-24T01:30:00.000Z"),
            (DEADLINE, "closed", None),
            (DEADLINE + timedelta(days=3), "closed", None)):
        clock.set(at)
        data = client.get(f"/api/v1/projects/{draft}").get_json()["data"]  # public once published
        assert (data["status"], data["next_check"]) == (expected, next_check), at
        listed = client.get(f"/api/v1/projects?status={expected}").get_json()
        assert [p["id"] for p in listed["data"]] == [draft] and listed["meta"]["total"] == 1
    # Only the acts are logged; the timed steps need no job and leave no entries.
    # (Publication also commits the platform's secret for the expert draw, PROTOCOL §8.)
    assert log_actions(app, draft) == ["project.created", "project.publish", "draw.committed"]


def test_without_an_issue_date_bidding_opens_at_publication(client, parties, backend):
    agent = parties["agent"].headers
    body = tender()
    del body["schedule"]["documents_from"]
    project_id = client.post("/api/v1/projects", headers=agent, json=body).get_json()["data"]["id"]
    assert client.post(f"/api/v1/projects/{project_id}/publish", headers=agent).get_json()["data"]["status"] == "bidding"


def test_a_listing_without_an_opening_goes_to_evaluation_at_its_deadline(client, clock, parties, backend):
    agent = parties["agent"].headers
    body = {"title": "股权转让", "domain": "assets", "procedure": "listing", "category": "property_rights",
            "tenderee": "TENDEREE1", "appraisal_value": "100.00", "floor_price": "100.00",
            "schedule": {"bid_deadline": "2026-03-31T09:30:00+08:00"}}
    project_id = client.post("/api/v1/projects", headers=agent, json=body).get_json()["data"]["id"]
    assert client.post(f"/api/v1/projects/{project_id}/publish", headers=agent).status_code == 200
    clock.set("2026-03-31T01:29:59.999Z")
    assert status(client, project_id) == "bidding"
    clock.set("2026-03-31T01:30:00Z")
    assert status(client, project_id) == "evaluation"


def test_publish_refusals(client, clock, parties, live, backend):
    agent = parties["agent"].headers
    refused(client.post(f"/api/v1/projects/{live}/publish", headers=agent), "wrong_state")
    details = refused(client.patch(f"/api/v1/projects/{live}", headers=agent, json={"title": "改名"}), "not_draft")
    assert details == {}
    # A draft without a deadline, and one whose documents were "issued" in the past.
    body = tender()
    del body["schedule"]["bid_deadline"]
    no_deadline = client.post("/api/v1/projects", headers=agent, json=body).get_json()["data"]["id"]
    details = refused(client.post(f"/api/v1/projects/{no_deadline}/publish", headers=agent), "schedule_incomplete", 422)
    assert details["field"] == "schedule.bid_deadline"
    clock.set(DOCUMENTS_FROM + timedelta(hours=1))
    agent = login(client, parties["agent"])
    stale = client.post("/api/v1/projects", headers=agent, json=tender()).get_json()["data"]["id"]
    details = refused(client.post(f"/api/v1/projects/{stale}/publish", headers=agent), "schedule_in_past", 422)
    assert details["field"] == "schedule.documents_from"
    assert status(client, stale, agent) == "draft"


def test_cancel_a_draft_and_a_published_project_and_refuse_it_twice(client, parties, draft, app, backend):
    agent = parties["agent"].headers
    refused(client.post(f"/api/v1/projects/{draft}/cancel", headers=agent, json={}), "validation_failed", 422)
    refused(client.post(f"/api/v1/projects/{draft}/cancel", headers=agent, json={"reason": "   "}),
            "validation_failed", 422)
    resp = client.post(f"/api/v1/projects/{draft}/cancel", headers=agent, json={"reason": "立项撤销"})
    assert resp.status_code == 200 and resp.get_json()["data"]["status"] == "cancelled"
    assert resp.get_json()["data"]["milestones"]["cancel_reason"] == "立项撤销"
    refused(client.post(f"/api/v1/projects/{draft}/cancel", headers=agent, json={"reason": "again"}), "wrong_state")
    refused(client.post(f"/api/v1/projects/{draft}/publish", headers=agent), "wrong_state")

    other = client.post("/api/v1/projects", headers=agent, json=tender()).get_json()["data"]["id"]
    assert client.post(f"/api/v1/projects/{other}/publish", headers=agent).status_code == 200
    resp = client.post(f"/api/v1/projects/{other}/cancel", headers=agent, json={"reason": "资金未落实"})
    assert resp.get_json()["data"]["status"] == "cancelled"
    notices = client.get(f"/api/v1/projects/{other}/notices").get_json()["data"]
    assert [n["kind"] for n in notices] == ["tender", "cancellation"] and notices[1]["body"] == "资金未落实"
    refused(client.post(f"/api/v1/projects/{other}/clarifications", headers=agent, json={"text": "x"}),
            "wrong_state")
    assert log_actions(app, other) == ["project.created", "project.publish", "draw.committed",
                                     "project.cancel"]


def test_supervisor_suspends_and_resumes_with_reasons(client, clock, parties, live, app, backend):
    supervisor, agent = parties["supervisor"].headers, parties["agent"].headers
    refused(client.post(f"/api/v1/projects/{live}/resume", headers=supervisor, json={"reason": "无"}),
            "not_suspended")
    refused(client.post(f"/api/v1/projects/{live}/suspend", headers=supervisor, json={}), "validation_failed", 422)
    resp = client.post(f"/api/v1/projects/{live}/suspend", headers=supervisor, json={"reason": "收到投诉"})
    data = resp.get_json()["data"]
    assert resp.status_code == 200 and data["status"] == "suspended" and data["next_check"] is None
    assert data["milestones"]["suspensions"][0]["reason"] == "收到投诉"
    details = refused(client.post(f"/api/v1/projects/{live}/suspend", headers=supervisor, json={"reason": "again"}),
                      "suspended")
    assert details["from_status"] == "suspended"
    refused(client.post(f"/api/v1/projects/{live}/clarifications", headers=agent, json={"text": "x"}), "wrong_state")
    # Time runs on but nothing moves while suspended.
    clock.set(DOCUMENTS_FROM - timedelta(hours=1))
    assert status(client, live) == "suspended"
    supervisor = login(client, parties["supervisor"])
    resp = client.post(f"/api/v1/projects/{live}/resume", headers=supervisor, json={"reason": "投诉不成立"})
    assert resp.status_code == 200 and resp.get_json()["data"]["status"] == "published"
    clock.set(DOCUMENTS_FROM)
    assert status(client, live) == "bidding"
    assert log_actions(app, live) == ["project.created", "project.publish", "draw.committed",
                                    "project.suspend", "project.resume"]


def test_a_deadline_passed_during_a_suspension_must_be_rescheduled_to_resume(client, clock, parties, live, backend):
    clock.set("2026-03-10T02:00:00Z")  # bidding since 4 March
    supervisor = login(client, parties["supervisor"])
    assert client.post(f"/api/v1/projects/{live}/suspend", headers=supervisor,
                       json={"reason": "责令暂停"}).status_code == 200
    clock.set(DEADLINE + timedelta(days=1))
    assert status(client, live) == "suspended"  # not closed: the deadline is frozen
    supervisor = login(client, parties["supervisor"])
    url = f"/api/v1/projects/{live}/resume"
    details = refused(client.post(url, headers=supervisor, json={"reason": "恢复"}), "schedule_required")
    assert details["passed"] == ["bid_deadline"]
    # The new dates must fit the dates kept: a deadline before the documents' issue is refused.
    details = refused(client.post(url, headers=supervisor, json={
        "reason": "恢复", "schedule": {"bid_deadline": "2026-03-03T09:30:00+08:00"}}), "schedule_inconsistent", 422)
    assert details["field"] == "schedule.bid_deadline"
    resp = client.post(url, headers=supervisor, json={"reason": "恢复",
                                                      "schedule": {"bid_deadline": "2026-04-10T09:30:00+08:00"}})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["data"]["status"] == "bidding"
    assert resp.get_json()["data"]["schedule"]["bid_deadline"] == "2026-04-10T01:30:00.000Z"
    clock.set("2026-04-10T01:30:00Z")
    assert status(client, live) == "closed"


def test_rescheduling_on_resume_is_held_to_the_rulebook(client, clock, parties, live, backend):
    # Suspended before the documents were issued: they must be issued later, and the
    # bidders still get their 20 days from that issue (RULES A1).
    assert client.post(f"/api/v1/projects/{live}/suspend", headers=parties["supervisor"].headers,
                       json={"reason": "责令暂停"}).status_code == 200
    clock.set("2026-03-05T01:00:00Z")
    supervisor = login(client, parties["supervisor"])
    url = f"/api/v1/projects/{live}/resume"
    details = refused(client.post(url, headers=supervisor, json={"reason": "恢复"}), "schedule_required")
    assert details["passed"] == ["documents_from"]
    short = {"documents_from": "2026-03-06T09:00:00+08:00", "bid_deadline": "2026-03-24T09:30:00+08:00"}
    details = refused(client.post(url, headers=supervisor, json={"reason": "恢复", "schedule": short}),
                      "rule_violation", 422)
    assert details["rule"] == "A1"
    enough = {**short, "bid_deadline": "2026-03-26T09:30:00+08:00"}
    resp = client.post(url, headers=supervisor, json={"reason": "恢复", "schedule": enough})
    assert resp.status_code == 200 and resp.get_json()["data"]["status"] == "published"


def test_suspend_and_resume_are_refused_outside_their_states_and_to_others(client, world, parties, live, backend):
    supervisor = parties["supervisor"].headers
    draft = client.post("/api/v1/projects", headers=parties["agent"].headers, json=tender()).get_json()["data"]["id"]
    refused(client.post(f"/api/v1/projects/{draft}/suspend", headers=supervisor, json={"reason": "x"}), "wrong_state")
    world.org("SUPERVISION2", "supervisory_body")
    elsewhere = world.user("supervisor2", "supervisor", org="SUPERVISION2").headers
    refused(client.post(f"/api/v1/projects/{live}/suspend", headers=elsewhere, json={"reason": "x"}), "forbidden", 403)
    refused(client.post(f"/api/v1/projects/{live}/suspend", headers=parties["agent"].headers, json={"reason": "x"}),
            "forbidden", 403)
    assert status(client, live) == "published"


def test_closed_projects_take_no_clarification_and_cancel_still_works(client, clock, parties, live, backend):
    clock.set(DEADLINE)
    agent = login(client, parties["agent"])
    details = refused(client.post(f"/api/v1/projects/{live}/clarifications", headers=agent, json={"text": "迟到的澄清"}),
                      "wrong_state")
    assert details["from_status"] == "closed"
    resp = client.post(f"/api/v1/projects/{live}/cancel", headers=agent, json={"reason": "投标人不足"})
    assert resp.get_json()["data"]["status"] == "cancelled"
