"""Who may supervise, what the collusion view shows and when, breaches of the committee
and the opening, and the periodic scan that only raises alerts."""
from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from click.testing import CliRunner

from tests.supervision.supervision_helpers import DAY, HOUR, T0, Desk, iso


def test_a_bidder_asking_for_the_cards_is_refused_and_logged(desk: Desk):
    pid = desk.project()
    resp = desk.get("/api/v1/supervision/cards", "bidder")
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "supervisor_only"
    resp = desk.get(f"/api/v1/supervision/projects/{pid}", "agent")
    assert resp.status_code == 403
    resp = desk.get(f"/api/v1/supervision/projects/{pid}/collusion", "bidder2")
    assert resp.status_code == 403
    refusals = desk.entries("supervision.refused")
    assert [e["data"].get("what") for e in refusals[:2]] == ["cards", "project"]
    assert refusals[0]["actor"] == "bidder1" and refusals[0]["data"]["code"] == "supervisor_only"
    assert refusals[1]["actor"] == "agent1" and refusals[1]["subject"] == f"project:{pid}"
    assert refusals[2]["actor"] == "hidden"  # bidder2's interest in an open tender stays hidden (A6)
    assert desk.get("/api/v1/supervision/cards").status_code == 200


def test_cards_are_paged_and_filtered(desk: Desk):
    d = desk.deadline
    first = desk.project(publicity_end=d + 12 * DAY)
    second = desk.project(publicity_end=d + 12 * DAY)
    for pid in (first, second):
        desk.act(pid, "start_opening", d + HOUR)
        desk.act(pid, "finish_opening", d + 2 * HOUR)
        desk.act(pid, "submit_report", d + DAY)
    desk.at(d + 10 * DAY)  # publicity never started: E4 red on both
    resp = desk.get("/api/v1/supervision/cards", severity="red", rule="E4", per_page=1, page=2)
    body = resp.get_json()
    assert resp.status_code == 200 and body["meta"] == {"page": 2, "per_page": 1, "total": 2}
    assert [c["project"] for c in body["data"]] == [second]
    assert desk.get("/api/v1/supervision/cards", severity="yellow", rule="E4").get_json()["data"] == []
    assert {c["project"] for c in desk.cards(project=first)} == {first}
    english = desk.client.get("/api/v1/supervision/cards", headers={**desk.headers("supervisor"),
                                                                    "Accept-Language": "en"}).get_json()
    assert english["data"][0]["message"] == english["data"][0]["message_en"]


def _seat(desk: Desk, pid: int, drawn: int, named: int) -> None:
    from trading.experts_models import CONFIRMED, MEMBER, CommitteeMember, Expert

    def run(session):
        for i in range(drawn + named):
            expert = f"E{pid}-{i}"
            session.add(Expert(id=expert, name=f"专家{i}", title="senior", field_since=date(2000, 1, 1),
                               created_at=T0, updated_at=T0))
            session.flush()
            session.add(CommitteeMember(project_id=pid, lot="L1", expert_id=expert, attempt=None if i >= drawn else 1,
                                        role=MEMBER, status=CONFIRMED, named_directly=i >= drawn, slot=i,
                                        created_at=desk.clock.now()))
    desk.db(run, commit=True)


def test_rule_D1_committee_without_enough_experts_and_D2_named_expert_are_red(desk: Desk):
    d = desk.deadline
    pid = desk.project()
    desk.at(d + HOUR)
    _seat(desk, pid, drawn=3, named=1)  # four members: fewer than the rule's minimum
    card = desk.card(pid, "D1", "committee")
    assert card["severity"] == "yellow"  # short while being formed
    assert desk.card(pid, "D2", "expert_selection")["severity"] == "red"
    desk.act(pid, "start_opening", d + HOUR)
    desk.act(pid, "finish_opening", d + 2 * HOUR)
    card = desk.card(pid, "D1", "committee")
    assert card["severity"] == "red" and card["subject"] == "lot:L1" and "4" in card["message_en"]
    ok = desk.project()
    desk.at(d + 3 * HOUR)
    _seat(desk, ok, drawn=5, named=0)
    assert desk.cards(project=ok) == []


def _securities(bench, tender, who: str, account: str) -> None:
    resp = bench.client.post(f"{tender.base}/securities", headers=bench.headers(who),
                             json={"lot": "L1", "amount": "20000.00", "payer_account": account})
    assert resp.status_code == 201, resp.get_json()


def test_collusion_indicators_only_after_closing_and_C2_B2_cards(desk: Desk, world, clock):
    from bidding.models import OpeningResult, OpeningSession, Submission
    from tests.bidding.helpers import Bench

    world.org("BIDDER3", "bidder", legal_representative="张一")  # BIDDER1's legal representative too
    desk.parties["bidder3"] = world.user("bidder3", "bidder", org="BIDDER3")
    bench = Bench(world, clock, parties=desk.parties)
    tender = bench.tender(mode="bidder", bid_security="20000.00")
    sealed = {}
    for who, account in (("bidder", "6222-0001"), ("bidder3", "6222-0001"), ("bidder2", "6222-0002")):
        sealed[who] = bench.seal(tender, who)
        bench.submit(tender, who, sealed[who])
        _securities(bench, tender, who, account)
    withdrawn = bench.withdraw(tender, "bidder2", bench.withdrawal(tender, "bidder2", [sealed["bidder2"].manifest_sha256]))
    assert withdrawn.status_code == 201, withdrawn.get_json()
    pid = tender.id

    # before the deadline: no indicator is shown, even to a supervisor (A6)
    resp = desk.get(f"/api/v1/supervision/projects/{pid}/collusion")
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "tender_not_closed"
    assert not [c for c in desk.cards(project=pid) if c["rule"] == "B6"]
    # the withdrawn bid's security is owed back within 5 days (B2); the fifth day is a
    # Saturday, so the limit moves to the end of Monday (民法典 Art 203)
    desk.at(T0 + 7 * DAY)
    card = desk.card(pid, "B2", "withdrawal_refund")
    assert card["severity"] == "yellow" and card["due_at"] == "2026-03-09T16:00:00.000Z"
    desk.at(T0 + 8 * DAY)
    card = desk.card(pid, "B2", "withdrawal_refund")
    assert card["severity"] == "red" and "BIDDER2" in card["message_en"]

    desk.at(tender.deadline + HOUR)
    resp = desk.get(f"/api/v1/supervision/projects/{pid}/collusion")
    assert resp.status_code == 200, resp.get_json()
    found = {(i["kind"], tuple(i["bidders"])) for i in resp.get_json()["data"]["indicators"]}
    assert found == {("same_legal_representative", ("BIDDER1", "BIDDER3")),
                     ("same_payer_account", ("BIDDER1", "BIDDER3")),
                     ("same_client_address", ("BIDDER1", "BIDDER3"))}
    cards = {(c["rule"], c["step"], c["severity"]) for c in desk.cards(project=pid) if c["rule"] == "B6"}
    assert cards == {("B6", "related_bidders", "red"), ("B6", "collusion", "yellow")}

    # C2: an opening that went on with fewer than the minimum of bids opened
    def opening(session):
        subs = session.execute(sa.select(Submission).where(Submission.project_id == pid,
                                                           Submission.state == "live")).scalars().all()
        done = OpeningSession(project_id=pid, started_at=tender.deadline, finished_at=tender.deadline + HOUR,
                              status="finished")
        session.add(done)
        session.flush()
        for sub in subs:
            session.add(OpeningResult(project_id=pid, opening_id=done.id, submission_id=sub.id, lot_code="L1",
                                      bidder_code=sub.bidder_code, file=sub.file, status="opened",
                                      decided_at=tender.deadline + HOUR))
    desk.db(opening, commit=True)
    card = desk.card(pid, "C2", "opening")
    assert card["severity"] == "red" and "only 2 bids opened" in card["message_en"]


def test_scan_logs_each_new_red_card_once_and_changes_no_card(desk: Desk, app, monkeypatch):
    from bidding import supervision_cli
    d = desk.deadline
    pid = desk.project(publicity_end=d + 12 * DAY)
    desk.act(pid, "start_opening", d + HOUR)
    desk.act(pid, "finish_opening", d + 2 * HOUR)
    desk.act(pid, "submit_report", d + DAY)
    now = desk.at(d + 10 * DAY)
    before = desk.cards()
    monkeypatch.setenv("EBID_DATABASE_URL", app.config["SQLALCHEMY_DATABASE_URI"])
    monkeypatch.setenv("EBID_INSTANCE_PATH", app.instance_path)
    monkeypatch.setenv("EBID_TESTING", "1")
    monkeypatch.setenv("EBID_CLOCK", f"fixed:{iso(now)}")
    runner = CliRunner()
    first = runner.invoke(supervision_cli.supervise, ["scan"])
    assert first.exit_code == 0, first.output
    assert "RED" in first.output and "E4/publicity_start" in first.output and "NEW" in first.output
    logged = desk.entries("supervision.card")
    assert [e["data"]["key"] for e in logged] == [c["key"] for c in before if c["severity"] == "red"]
    again = runner.invoke(supervision_cli.supervise, ["scan"])
    assert again.exit_code == 0 and "NEW" not in again.output and "0 new red card(s)" in again.output
    assert len(desk.entries("supervision.card")) == len(logged)
    assert desk.cards() == before  # alerts only: the cards are derived, not changed by the scan
