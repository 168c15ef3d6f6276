"""Time limits watched on real projects: the clock moves past each limit and the
supervisor's cards follow, derived on every read (nothing runs in between).

Projects are created and published over HTTP; the later steps whose services do not exist
yet are recorded through ``trading.projects.apply_transition``, the lifecycle's one door.
"""
from __future__ import annotations

from datetime import timedelta

from core.clock import parse_instant
from tests.supervision.supervision_helpers import DAY, HOUR, T0, Desk

YELLOW = timedelta(hours=72)  # EBID_YELLOW_CARD_HOURS's default


def step(view: dict, name: str, subject: str | None = None) -> dict:
    [found] = [s for s in view["steps"] if s["step"] == name and (subject is None or s["subject"] == subject)]
    return found


def awarded_construction(desk: Desk, **award: object) -> tuple[int, object]:
    """A construction tender awarded after a full 5-day publicity; returns (id, award instant)."""
    d = desk.deadline
    pid = desk.project(publicity_end=d + 8 * DAY)
    awarded = d + 8 * DAY + HOUR
    desk.to_award(pid, report_at=d + 2 * DAY, publicity_at=d + 3 * DAY, awarded_at=awarded, **award)
    return pid, awarded


def test_rule_E6_contract_not_signed_within_30_days_is_red(desk: Desk):
    pid, awarded = awarded_construction(desk)
    desk.at(awarded + DAY)
    contract = step(desk.view(pid), "contract")
    due = parse_instant(contract["due_at"])
    assert (contract["rule"], contract["state"], contract["card"]) == ("E6", "pending", None)
    assert parse_instant(contract["start"]) == awarded and due - awarded > timedelta(days=30)

    desk.at(due - YELLOW - HOUR)
    assert desk.card(pid, "E6", "contract") is None
    desk.at(due - YELLOW + HOUR)
    card = desk.card(pid, "E6", "contract")
    assert card["severity"] == "yellow" and card["due_at"] == contract["due_at"] and not card["provisional"]
    desk.at(due + HOUR)
    card = desk.card(pid, "E6", "contract")
    assert card["severity"] == "red" and card["state"] == "overdue"
    assert card["citation"].startswith("招标投标法") and "已逾期" in card["message_zh"]

    # signed late: still red, now as "late"; the record of the breach does not go away
    desk.act(pid, "sign_contract", due + 2 * DAY)
    card = desk.card(pid, "E6", "contract")
    assert card["severity"] == "red" and card["state"] == "late"
    # read as of an instant before the limit, the same data shows no red card
    desk.at(awarded + DAY)
    assert desk.card(pid, "E6", "contract") is None


def test_rule_E6_report_to_the_supervisor_within_15_days(desk: Desk):
    pid, awarded = awarded_construction(desk)
    report = step(desk.view(pid), "report")
    due = parse_instant(report["due_at"])
    desk.at(due + HOUR)
    assert desk.card(pid, "E6", "report")["severity"] == "red"
    # the award module records the written report (its service is not written yet)
    from bidding import award_models as award

    def file(session):
        session.add(award.SupervisorReport(project_id=pid, text="书面报告", filed_at=due - DAY,
                                           filed_by="agent1", log_index=0))
    desk.db(file, commit=True)
    assert desk.card(pid, "E6", "report") is None
    assert step(desk.view(pid), "report")["state"] == "done"


def test_rule_E4_publicity_must_start_within_three_days_of_the_report(desk: Desk):
    d = desk.deadline
    pid = desk.project(publicity_end=d + 12 * DAY)
    desk.act(pid, "start_opening", d + HOUR)
    desk.act(pid, "finish_opening", d + 2 * HOUR)
    desk.act(pid, "submit_report", d + DAY)
    start = step(desk.view(pid), "publicity_start")
    due = parse_instant(start["due_at"])
    assert start["rule"] == "E4" and start["state"] == "pending"
    desk.at(due - HOUR)
    assert desk.card(pid, "E4", "publicity_start")["severity"] == "yellow"
    desk.at(due + HOUR)
    assert desk.card(pid, "E4", "publicity_start")["severity"] == "red"


def test_rule_E4_publicity_shorter_than_three_days_is_red(desk: Desk):
    d = desk.deadline
    started = d + 3 * DAY
    pid = desk.project(publicity_end=started + 2 * DAY)  # two days: one short
    desk.act(pid, "start_opening", d + HOUR)
    desk.act(pid, "finish_opening", d + 2 * HOUR)
    desk.act(pid, "submit_report", d + 2 * DAY)
    assert desk.card(pid, "E4", "publicity") is None  # not started: nothing to judge yet
    desk.act(pid, "start_publicity", started)
    card = desk.card(pid, "E4", "publicity")  # red at once: the window is scheduled too short
    assert card["severity"] == "red" and card["state"] == "breached"
    assert "shorter" in card["message_en"] or "短于" in card["message_zh"]
    assert step(desk.view(pid), "publicity")["state"] == "breached"


def test_rule_E4_publicity_of_three_days_is_fine(desk: Desk):
    d = desk.deadline
    pid = desk.project(publicity_end=d + 8 * DAY)
    desk.to_award(pid, report_at=d + 2 * DAY, publicity_at=d + 3 * DAY, awarded_at=d + 8 * DAY + HOUR)
    view = desk.view(pid)
    assert step(view, "publicity")["state"] == "ok" and step(view, "publicity_start")["state"] == "done"
    assert not [c for c in view["cards"] if c["rule"] == "E4"]


def test_rule_H3_gp_suspension_over_30_days_is_red(desk: Desk):
    pid = desk.project("gp", "open_tender", "goods")
    suspended = desk.at(T0 + DAY)
    resp = desk.post(f"/api/v1/projects/{pid}/suspend", "supervisor", {"reason": "投诉处理期间暂停采购活动"})
    assert resp.status_code == 200, resp.get_json()
    view = desk.view(pid)
    [suspension] = view["suspensions"]
    assert suspension["reason"] == "投诉处理期间暂停采购活动" and suspension["active"]
    limit = parse_instant(suspension["max_until"])
    assert limit - suspended > timedelta(days=30)
    desk.at(limit - HOUR)
    assert desk.card(pid, "H3", "suspension")["severity"] == "yellow"
    desk.at(limit + HOUR)
    card = desk.card(pid, "H3", "suspension")
    assert card["severity"] == "red" and card["subject"] == "suspension:1"
    assert card["citation"] == "政府采购法 Art 57"
    # the tender's own limits stand still while it is suspended: no A-rule card appears
    assert {c["rule"] for c in desk.cards(project=pid)} == {"H3"}


def test_rule_H3_construction_suspension_has_no_maximum_but_is_shown(desk: Desk):
    pid = desk.project()
    desk.at(T0 + DAY)
    assert desk.post(f"/api/v1/projects/{pid}/suspend", "supervisor", {"reason": "责令暂停"}).status_code == 200
    desk.at(T0 + 60 * DAY)
    view = desk.view(pid)
    assert view["project"]["status"] == "suspended"
    [suspension] = view["suspensions"]
    assert suspension["max_until"] is None and suspension["days"] > 58
    assert desk.card(pid, "H3", "suspension") is None


def test_a_suspension_moves_the_contract_limit_by_the_days_paused(desk: Desk):
    pid, awarded = awarded_construction(desk)
    before = parse_instant(step(desk.view(pid), "contract")["due_at"])
    desk.at(awarded + 2 * DAY)
    assert desk.post(f"/api/v1/projects/{pid}/suspend", "supervisor", {"reason": "核查"}).status_code == 200
    desk.at(before + HOUR)  # past the original limit while suspended: paused, no card
    assert step(desk.view(pid), "contract")["state"] == "paused"
    assert desk.card(pid, "E6", "contract") is None
    assert desk.post(f"/api/v1/projects/{pid}/resume", "supervisor", {"reason": "核查完毕"}).status_code == 200
    contract = step(desk.view(pid), "contract")
    assert contract["paused_days"] >= 28 and parse_instant(contract["due_at"]) > before + 27 * DAY
    assert desk.card(pid, "E6", "contract") is None


def pay(desk: Desk, pid: int, who: str, account: str) -> None:
    resp = desk.post(f"/api/v1/tenders/{pid}/securities", who,
                     {"lot": "L1", "amount": "20000.00", "payer_account": account})
    assert resp.status_code == 201, resp.get_json()


def test_rule_B8_security_not_refunded_within_5_days_of_the_contract_is_red(desk: Desk):
    d = desk.deadline
    # a construction tender requiring a security (RULES B1: at most 2% of the estimate)
    pid = _project_with_security(desk, {"bid_security": "20000.00"})
    desk.at(T0 + DAY)
    pay(desk, pid, "bidder", "6222-0001")
    pay(desk, pid, "bidder2", "6222-0002")
    awarded = d + 8 * DAY + HOUR
    desk.to_award(pid, report_at=d + 2 * DAY, publicity_at=d + 3 * DAY, awarded_at=awarded,
                  data={"winner": "BIDDER1"})
    signed = awarded + 3 * DAY
    desk.act(pid, "sign_contract", signed)
    view = desk.view(pid)
    refunds = {s["subject"]: s for s in view["steps"] if s["step"] in ("loser_refund", "winner_refund")}
    assert sorted(s["step"] for s in refunds.values()) == ["loser_refund", "winner_refund"]
    due = max(parse_instant(s["due_at"]) for s in refunds.values())
    assert all(parse_instant(s["start"]) == signed for s in refunds.values())

    # the winner's security is refunded in time (no refund service yet: the row is settled)
    from bidding.models import BidSecurity
    from trading.models import Organisation

    def refund_winner(session):
        import sqlalchemy as sa
        org = session.execute(sa.select(Organisation).where(Organisation.code == "BIDDER1")).scalar_one()
        row = session.execute(sa.select(BidSecurity).where(BidSecurity.bidder_org_id == org.id)).scalar_one()
        row.status, row.settled_at = "refunded", signed + DAY
    desk.db(refund_winner, commit=True)
    desk.at(due + HOUR)
    [card] = [c for c in desk.cards(project=pid) if c["rule"] == "B8"]
    assert card["step"] == "loser_refund" and card["severity"] == "red"
    assert "BIDDER2" in card["message_en"]


def _project_with_security(desk: Desk, extra: dict) -> int:
    from tests.supervision.supervision_helpers import iso
    d = desk.at(T0) and desk.deadline
    body = {"title": "保证金项目", "domain": "construction", "procedure": "open_tender", "category": "works",
            "tenderee": "TENDEREE1", "supervisor": "SUPERVISION1", "estimate": "1000000.00",
            "budget": "1000000.00", "max_price": "1000000.00", **extra,
            "schedule": {"documents_from": iso(T0), "documents_until": iso(T0 + 10 * DAY),
                         "bid_deadline": iso(d), "publicity_end": iso(d + 8 * DAY)},
            "lots": [{"code": "L1", "title": "标段 L1"}]}
    resp = desk.client.post("/api/v1/projects", headers=desk.headers("agent"), json=body)
    assert resp.status_code == 201, resp.get_json()
    pid = resp.get_json()["data"]["id"]
    assert desk.post(f"/api/v1/projects/{pid}/publish", "agent").status_code == 200
    return pid


def test_a_cancelled_project_owes_no_more_steps(desk: Desk):
    d = desk.deadline
    pid = desk.project(publicity_end=d + 12 * DAY)
    desk.act(pid, "start_opening", d + HOUR)
    desk.act(pid, "finish_opening", d + 2 * HOUR)
    desk.act(pid, "submit_report", d + DAY)
    desk.act(pid, "cancel", d + 2 * DAY, reason="招标人终止招标")
    desk.at(d + 30 * DAY)
    assert desk.cards(project=pid) == []
    assert step(desk.view(pid), "publicity_start")["state"] == "not_required"
