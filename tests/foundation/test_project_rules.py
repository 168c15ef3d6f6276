"""The rulebook through HTTP: one test per rule the publication and clarification path
checks, each broken by the smallest step (one day, one cent) and then met exactly.

Dates are Asia/Shanghai. The clock starts at tests.conftest.T0 = Monday 2026-03-02 09:00;
2026 has an official holiday table (Spring Festival 15–23 February, working Saturdays
14 and 28 February); 2027 has none yet, so its days are provisional.
"""
from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa


def login(client: Any, party: Any) -> dict[str, str]:
    """Fresh bearer headers at the clock's current time (tokens live 15 minutes)."""
    resp = client.post("/api/v1/auth/token", json={"username": party.username, "password": party.password})
    assert resp.status_code == 200, resp.get_json()
    return {"Authorization": f"Bearer {resp.get_json()['data']['access_token']}"}


def construction(**overrides: Any) -> dict[str, Any]:
    """A construction open tender for works: documents from Wed 4 March, bids until
    Tue 24 March (exactly 20 days)."""
    body: dict[str, Any] = {
        "title": "城区道路改造工程", "domain": "construction", "procedure": "open_tender",
        "category": "works", "tenderee": "TENDEREE1", "supervisor": "SUPERVISION1",
        "estimate": "1000000.00", "max_price": "1000000.00",
        "schedule": {"documents_from": "2026-03-04T09:00:00+08:00",
                     "bid_deadline": "2026-03-24T09:30:00+08:00"}}
    schedule = overrides.pop("schedule", {})
    body.update(overrides)
    body["schedule"] = {**body["schedule"], **schedule}
    return {k: v for k, v in body.items() if v is not None}


def gp(procedure: str = "open_tender", **overrides: Any) -> dict[str, Any]:
    return construction(domain="gp", procedure=procedure, category="goods", estimate=None,
                        max_price=None, budget="1000000.00", **overrides)


def draft(client: Any, headers: dict[str, str], body: dict[str, Any]) -> int:
    resp = client.post("/api/v1/projects", headers=headers, json=body)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["data"]["id"]


def publish(client: Any, headers: dict[str, str], body: dict[str, Any]) -> Any:
    """Create a draft from ``body`` and try to publish it."""
    project_id = draft(client, headers, body)
    return client.post(f"/api/v1/projects/{project_id}/publish", headers=headers)


def refused(resp: Any, rule: str) -> dict[str, Any]:
    """Assert the refusal names ``rule``; return its details."""
    body = resp.get_json()
    assert resp.status_code == 422, body
    assert body["error"]["code"] == "rule_violation", body
    assert body["error"]["details"]["rule"] == rule, body
    assert body["error"]["message"]
    return body["error"]["details"]


def published(resp: Any) -> dict[str, Any]:
    assert resp.status_code == 200, resp.get_json()
    data = resp.get_json()["data"]
    assert data["published_at"] and data["rulebook_version"]
    return data


@pytest.fixture
def parties(world: Any) -> dict[str, Any]:
    return world.standard()


@pytest.fixture
def agent(parties: dict[str, Any]) -> dict[str, str]:
    return parties["agent"].headers


# ----------------------------------------------------------------- A1: 20 days to bid


def test_rule_A1_bid_deadline_nineteen_days_after_documents_is_refused(client, agent, backend):
    resp = publish(client, agent, construction(schedule={"bid_deadline": "2026-03-23T09:30:00+08:00"}))
    details = refused(resp, "A1")
    assert "招标投标法 Art 24" in details["citation"]
    assert details["limit"]["last_day"] == "2026-03-24" and details["provisional"] is False
    # The draft stays a draft: nothing pinned, nothing published.
    project = client.get("/api/v1/projects?status=draft", headers=agent).get_json()["data"][0]
    assert project["status"] == "draft" and project["rulebook_version"] is None


def test_rule_A1_bid_deadline_exactly_twenty_days_after_documents_is_allowed(client, agent, backend):
    data = published(publish(client, agent, construction()))
    assert data["status"] == "published"  # documents are issued from 4 March
    assert data["limits"]["bid_preparation"]["last_day"] == "2026-03-24"
    assert data["limits"]["bid_preparation"]["rule"] == "A1"


def test_rule_A1_in_government_procurement_cites_the_procurement_law(client, agent, backend):
    details = refused(publish(client, agent, gp(schedule={"bid_deadline": "2026-03-23T17:00:00+08:00"})), "A1")
    assert "政府采购法 Art 35" in details["citation"]


def test_rule_A1_counts_from_publication_when_no_issue_date_is_given(client, agent, backend):
    # Published Monday 2 March 09:00: 20 days end on Sunday 22 March, which moves to Monday 23.
    body = construction(schedule={"documents_from": None})
    body["schedule"] = {"bid_deadline": "2026-03-22T09:30:00+08:00"}
    details = refused(publish(client, agent, body), "A1")
    assert details["limit"]["last_day"] == "2026-03-23" and details["limit"]["moved_from"] == "2026-03-22"
    body["schedule"] = {"bid_deadline": "2026-03-23T09:30:00+08:00"}
    assert published(publish(client, agent, body))["status"] == "bidding"


# ----------------------------------------------------------------- A2: documents available


def test_rule_A2_documents_available_less_than_five_days_is_refused(client, agent, backend):
    short = construction(schedule={"documents_until": "2026-03-09T23:59:00+08:00"})
    details = refused(publish(client, agent, short), "A2")
    assert "招标投标法实施条例 Art 16" in details["citation"]
    exact = construction(schedule={"documents_until": "2026-03-10T00:00:00+08:00"})  # 24:00 of the 5th day
    assert published(publish(client, agent, exact))["limits"]["document_availability"]["last_day"] == "2026-03-09"


def test_rule_A2_gp_documents_five_working_days_across_the_2026_spring_festival(client, clock, world, backend):
    # Thursday 12 February: Fri 13, Sat 14 (a swapped working day), then the holiday
    # 15-23 February, Tue 24, Wed 25, Thu 26: the fifth working day is 26 February.
    clock.set("2026-02-12T01:00:00Z")
    agent = world.standard()["agent"].headers
    schedule = {"documents_from": "2026-02-12T09:00:00+08:00", "bid_deadline": "2026-03-04T09:30:00+08:00"}
    late = gp(schedule={**schedule, "documents_until": "2026-02-26T17:00:00+08:00"})
    details = refused(publish(client, agent, late), "A2")
    assert "政府采购法实施条例 Art 31" in details["citation"]
    assert details["limit"]["last_day"] == "2026-02-26" and details["limit"]["kind"] == "working"
    ok = gp(schedule={**schedule, "documents_until": "2026-02-27T00:00:00+08:00"})
    data = published(publish(client, agent, ok))
    assert data["limits"]["document_availability"]["last_day"] == "2026-02-26"
    assert data["provisional"] is False


def test_rule_A2_gp_documents_count_the_swapped_working_saturday(client, clock, world, backend):
    # Tuesday 24 February: Wed 25, Thu 26, Fri 27, Sat 28 (worked in exchange for the
    # holiday), Mon 2 March. Without the swap the fifth working day would be 3 March.
    clock.set("2026-02-24T01:00:00Z")
    agent = world.standard()["agent"].headers
    schedule = {"documents_from": "2026-02-24T09:00:00+08:00", "bid_deadline": "2026-03-16T09:30:00+08:00"}
    refused(publish(client, agent, gp(schedule={**schedule, "documents_until": "2026-03-02T17:00:00+08:00"})), "A2")
    data = published(publish(client, agent, gp(schedule={**schedule,
                                                         "documents_until": "2026-03-03T00:00:00+08:00"})))
    assert data["limits"]["document_availability"]["last_day"] == "2026-03-02"


def test_gp_deadlines_in_2027_are_computed_on_a_provisional_calendar(client, clock, world, backend):
    # 2027 has no official table yet: the Spring Festival is computed from the statutory
    # list (eve 5 February + 3 days, no swaps) and every limit through it is provisional.
    clock.set("2027-02-04T01:00:00Z")
    agent = world.standard()["agent"].headers
    schedule = {"documents_from": "2027-02-04T09:00:00+08:00", "bid_deadline": "2027-02-24T09:30:00+08:00"}
    details = refused(publish(client, agent, gp(schedule={**schedule,
                                                          "documents_until": "2027-02-15T17:00:00+08:00"})), "A2")
    assert details["provisional"] is True and details["limit"]["last_day"] == "2027-02-15"
    data = published(publish(client, agent, gp(schedule={**schedule,
                                                         "documents_until": "2027-02-16T00:00:00+08:00"})))
    assert data["provisional"] is True
    assert data["limits"]["document_availability"]["provisional"] is True
    assert data["limits"]["bid_preparation"]["provisional"] is True
    assert data["limits"]["bid_preparation"]["last_day"] == "2027-02-24"


# ----------------------------------------------------------------- A3: clarifications


def _published_construction(client: Any, agent: dict[str, str]) -> int:
    project_id = draft(client, agent, construction())
    assert client.post(f"/api/v1/projects/{project_id}/publish", headers=agent).status_code == 200
    return project_id


def test_rule_A3_substantive_clarification_less_than_fifteen_days_before_deadline_is_refused(
        client, clock, parties, backend):
    project_id = _published_construction(client, parties["agent"].headers)
    clock.set("2026-03-10T02:00:00Z")  # 10 March 10:00, 14 days before 24 March
    agent = login(client, parties["agent"])
    url = f"/api/v1/projects/{project_id}/clarifications"
    details = refused(client.post(url, headers=agent, json={"text": "第三章技术参数修改"}), "A3")
    assert "招标投标法实施条例 Art 21" in details["citation"]
    earliest = details["earliest_bid_deadline"]
    assert earliest == "2026-03-25T01:30:00Z"  # 25 March 09:30, the same time of day
    assert client.get(url).get_json()["data"] == []  # nothing stored
    # A deadline moved, but not far enough, is refused the same way.
    refused(client.post(url, headers=agent, json={"text": "修改", "new_bid_deadline": "2026-03-24T17:00:00+08:00"}),
            "A3")
    # Moved to the earliest allowed deadline, it is accepted and the deadline moves.
    resp = client.post(url, headers=agent, json={"text": "第三章技术参数修改", "new_bid_deadline": earliest})
    assert resp.status_code == 201, resp.get_json()
    clar = resp.get_json()["data"]
    assert clar["old_bid_deadline"] == "2026-03-24T01:30:00.000Z"
    assert clar["new_bid_deadline"] == "2026-03-25T01:30:00.000Z"
    project = client.get(f"/api/v1/projects/{project_id}").get_json()["data"]
    assert project["schedule"]["bid_deadline"] == "2026-03-25T01:30:00.000Z"
    assert [n["kind"] for n in client.get(f"/api/v1/projects/{project_id}/notices").get_json()["data"]] == [
        "tender", "clarification"]


def test_rule_A3_clarification_fifteen_days_ahead_or_not_substantive_is_allowed(client, clock, parties, backend):
    project_id = _published_construction(client, parties["agent"].headers)
    url = f"/api/v1/projects/{project_id}/clarifications"
    clock.set("2026-03-09T15:59:00Z")  # 9 March 23:59: 15 days before 24 March
    assert client.post(url, headers=login(client, parties["agent"]), json={"text": "答疑一"}).status_code == 201
    clock.set("2026-03-20T02:00:00Z")  # 4 days before: only a non-substantive one
    agent = login(client, parties["agent"])
    refused(client.post(url, headers=agent, json={"text": "答疑二"}), "A3")
    resp = client.post(url, headers=agent, json={"text": "会议室变更", "affects_bids": False})
    assert resp.status_code == 201, resp.get_json()
    limits = client.get(f"/api/v1/projects/{project_id}").get_json()["data"]["limits"]
    assert limits["clarification"]["last_day"] == "2026-03-09"


def test_rule_A3_moving_the_deadline_moves_the_later_dates_with_it(client, clock, parties, backend):
    agent = parties["agent"].headers
    project_id = draft(client, agent, construction(schedule={"evaluation_due": "2026-03-27T17:00:00+08:00"}))
    assert client.post(f"/api/v1/projects/{project_id}/publish", headers=agent).status_code == 200
    clock.set("2026-03-20T02:00:00Z")
    resp = client.post(f"/api/v1/projects/{project_id}/clarifications", headers=login(client, parties["agent"]),
                       json={"text": "延期", "new_bid_deadline": "2026-04-07T09:30:00+08:00"})
    assert resp.status_code == 201, resp.get_json()
    schedule = client.get(f"/api/v1/projects/{project_id}").get_json()["data"]["schedule"]
    assert schedule["bid_deadline"] == "2026-04-07T01:30:00.000Z"
    assert schedule["evaluation_due"] == "2026-04-10T09:00:00.000Z"  # moved by the same 14 days


# ----------------------------------------------------------------- A4, A7


def test_rule_A4_objection_deadline_less_than_ten_days_before_the_bid_deadline_is_refused(client, agent, backend):
    details = refused(publish(client, agent, construction(
        schedule={"objection_deadline": "2026-03-15T09:00:00+08:00"})), "A4")
    assert "招标投标法实施条例 Art 22" in details["citation"]
    data = published(publish(client, agent, construction(schedule={"objection_deadline": "2026-03-14T17:00:00+08:00"})))
    assert data["limits"]["objection"]["last_day"] == "2026-03-14"


def test_rule_A7_construction_tender_needs_a_maximum_price(client, agent, backend):
    details = refused(publish(client, agent, construction(max_price=None)), "A7")
    assert "招标投标法实施条例 Arts 27, 50" in details["citation"]
    # A maximum price on every lot is a published maximum price too.
    lots = [{"code": "A", "title": "一标段", "max_price": "600000.00"},
            {"code": "B", "title": "二标段", "max_price": "400000.00"}]
    published(publish(client, agent, construction(max_price=None, lots=lots)))
    # Government procurement may go without one.
    published(publish(client, agent, gp()))


@pytest.mark.parametrize("body", [construction, gp], ids=["construction", "gp"])
def test_rule_A7_a_minimum_price_is_forbidden(client, agent, app, body, backend):
    from core.db import db
    from trading.models import Project
    resp = client.post("/api/v1/projects", headers=agent, json=body(min_price="500000.00"))
    refused(resp, "A7")
    project_id = draft(client, agent, body())
    refused(client.patch(f"/api/v1/projects/{project_id}", headers=agent, json={"min_price": "1.00"}), "A7")
    with app.app_context():
        assert db.session.execute(sa.select(sa.func.count()).select_from(Project)).scalar_one() == 1


def test_a_minimum_price_in_a_state_asset_transfer_is_refused_too(client, agent, backend):
    resp = client.post("/api/v1/projects", headers=agent, json=assets(min_price="1.00"))
    assert resp.status_code == 422 and resp.get_json()["error"]["code"] == "min_price_not_allowed"
    assert resp.get_json()["error"]["details"]["field"] == "min_price"


# ----------------------------------------------------------------- B1, B7: securities


def test_rule_B1_bid_security_above_two_percent_is_refused_at_publication(client, agent, backend):
    details = refused(publish(client, agent, construction(bid_security="20000.01")), "B1")
    assert "招标投标法实施条例 Art 26" in details["citation"]
    assert details["amount"] == "20000.01" and details["max_ratio"] == "0.02"
    published(publish(client, agent, construction(bid_security="20000.00")))


def test_rule_B1_a_lot_security_is_judged_against_the_lot_budget(client, agent, backend):
    lots = [{"code": "A", "title": "一标段", "budget": "100000.00", "bid_security": "2000.01"}]
    details = refused(publish(client, agent, construction(lots=lots)), "B1")
    assert details["lot"] == "A" and details["base"] == "100000.00"


def test_rule_B1_construction_works_security_is_capped_at_800k(client, agent, backend):
    big = {"estimate": "100000000.00", "max_price": "100000000.00"}
    details = refused(publish(client, agent, construction(bid_security="800000.01", **big)), "B1")
    assert details["max_amount"] == "800000"
    published(publish(client, agent, construction(bid_security="800000.00", **big)))


def test_rule_B1_gp_security_is_two_percent_of_the_budget(client, agent, backend):
    details = refused(publish(client, agent, gp(bid_security="20000.01")), "B1")
    assert "政府采购法实施条例 Art 33" in details["citation"] and details["base"] == "1000000.00"


def test_rule_B1_needs_the_amount_the_security_is_a_share_of(client, agent, backend):
    resp = publish(client, agent, construction(estimate=None, bid_security="100.00"))
    assert resp.status_code == 422 and resp.get_json()["error"]["details"]["field"] == "estimate"


def test_rule_B7_performance_security_above_ten_percent_is_refused(client, agent, backend):
    details = refused(publish(client, agent, construction(performance_security="100000.01")), "B7")
    assert "招标投标法实施条例 Art 58" in details["citation"]
    published(publish(client, agent, construction(performance_security="100000.00")))


# ----------------------------------------------------------------- E7: GP price weight


def _criteria(price: str, technical: str) -> dict[str, Any]:
    return {"method": "comprehensive", "criteria": [{"id": "price", "max_score": price, "is_price": True},
                                                    {"id": "technical", "max_score": technical}]}


def test_rule_E7_gp_goods_price_weight_below_thirty_percent_is_refused(client, agent, backend):
    details = refused(publish(client, agent, gp(evaluation_method=_criteria("29", "71"))), "E7")
    assert "87号令" in details["citation"] and details["weight"] == "0.29"
    refused(publish(client, agent, gp(evaluation_method={"method": "comprehensive"})), "E7")
    published(publish(client, agent, gp(evaluation_method=_criteria("30", "70"))))
    published(publish(client, agent, gp(evaluation_method={"method": "comprehensive", "price_weight": "0.30"})))


# ----------------------------------------------------------------- F3: GP inquiry


def test_rule_F3_gp_inquiry_response_time_counts_working_days_across_the_spring_festival(
        client, clock, world, backend):
    # From Thursday 12 February: Fri 13, Sat 14 (a swapped working day), Tue 24 after the
    # holiday: bids may close on 24 February at the earliest, 11 calendar days later.
    clock.set("2026-02-12T01:00:00Z")
    agent = world.standard()["agent"].headers
    schedule = {"documents_from": "2026-02-12T09:00:00+08:00"}
    details = refused(publish(client, agent, gp("inquiry", schedule={
        **schedule, "bid_deadline": "2026-02-23T17:00:00+08:00"})), "F3")
    assert "74号令" in details["citation"] and details["limit"]["last_day"] == "2026-02-24"
    data = published(publish(client, agent, gp("inquiry", schedule={
        **schedule, "bid_deadline": "2026-02-24T09:30:00+08:00"})))
    assert data["limits"]["response"]["rule"] == "F3"


# ----------------------------------------------------------------- G: state assets


def assets(**overrides: Any) -> dict[str, Any]:
    """A listing (挂牌) of property rights published Monday 2 March: 20 working days end
    on Monday 30 March, so the listing may close from 31 March 00:00."""
    body: dict[str, Any] = {
        "title": "某国有企业股权转让", "domain": "assets", "procedure": "listing",
        "category": "property_rights", "tenderee": "TENDEREE1", "supervisor": "SUPERVISION1",
        "appraisal_value": "5000000.00", "floor_price": "5000000.00",
        "schedule": {"bid_deadline": "2026-03-31T09:30:00+08:00"}}
    body.update(overrides)
    return body


def test_rule_G2_first_floor_price_below_the_appraised_value_is_refused(client, agent, backend):
    details = refused(publish(client, agent, assets(floor_price="4999999.99")), "G2")
    assert "32号令" in details["citation"]
    published(publish(client, agent, assets()))
    without_floor = assets()
    del without_floor["floor_price"]
    resp = publish(client, agent, without_floor)
    assert resp.status_code == 422 and resp.get_json()["error"]["details"]["field"] == "floor_price"


def test_rule_G3_listing_shorter_than_twenty_working_days_is_refused(client, agent, backend):
    details = refused(publish(client, agent, assets(schedule={"bid_deadline": "2026-03-30T17:00:00+08:00"})), "G3")
    assert details["limit"]["last_day"] == "2026-03-30" and details["limit"]["kind"] == "working"
    assert published(publish(client, agent, assets()))["limits"]["listing"]["last_day"] == "2026-03-30"


def test_rule_G3_no_changes_during_a_listing_and_extensions_of_five_working_days(client, clock, parties, backend):
    agent = parties["agent"].headers
    project_id = published(publish(client, agent, assets()))["id"]
    clock.set("2026-03-20T02:00:00Z")
    agent = login(client, parties["agent"])
    url = f"/api/v1/projects/{project_id}/clarifications"
    refused(client.post(url, headers=agent, json={"text": "变更转让条件"}), "G3")
    # From 31 March, 5 working days skip Qingming (4-6 April): 1, 2, 3, 7, 8 April, so
    # the extended listing runs at least until 24:00 on 8 April.
    refused(client.post(url, headers=agent, json={"text": "延期", "affects_bids": False,
                                                   "new_bid_deadline": "2026-04-08T17:00:00+08:00"}), "G3")
    resp = client.post(url, headers=agent, json={"text": "延期", "affects_bids": False,
                                                  "new_bid_deadline": "2026-04-09T09:30:00+08:00"})
    assert resp.status_code == 201, resp.get_json()
