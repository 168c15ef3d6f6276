"""Rules of the award, one test each, over HTTP: review (E2), candidates (E3), publicity
(E4), award (E5, E6), contract (E6), refunds (B8), and two award decisions at once."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

from bidding.award_models import AwardNotice
from tests.award.award_kit import AwardKit, at

PRICES = ["900000.00", "880000.00", "910000.00"]


def _error(resp: Any) -> dict[str, Any]:
    return resp.get_json()["error"]


def test_rule_E2_price_above_maximum_rejected_in_review(kit: AwardKit):
    tender, (b1, b2, b3, b4) = kit.opened([*PRICES, "1000000.01"])
    kit.clock.set(at(hours=1))
    started = kit.post(tender, "evaluation/start", "agent")
    assert started.status_code == 201, started.get_json()
    result = kit.post(tender, "evaluation/report", "agent").get_json()["data"]["result"]
    rejected = {b["bid"]: b for b in result["bids"]}[b4]
    assert rejected["status"] == "rejected" and rejected["rank"] is None
    assert rejected["rejections"] == [{"code": "price_above_maximum", "rule": "E2",
                                       "detail": "1000000.01 > 1000000.00"}]
    assert result["candidates"] == [b2, b1, b3]        # lowest evaluated price first


def test_rule_E2_every_bid_rejected_fails_the_tender(kit: AwardKit):
    tender, _ = kit.opened(["1000000.01", "1200000.00", "1100000.00"])
    kit.clock.set(at(hours=1))
    started = kit.post(tender, "evaluation/start", "agent")
    assert started.status_code == 201
    assert started.get_json()["data"]["status"] == "failed"
    assert kit.status(tender) == "failed"
    assert "all_bids_rejected" in kit.entries("project.fail")[0]["data"]["reason"]


def test_rule_E3_at_most_three_candidates(kit: AwardKit):
    tender, orgs = kit.reported(["950000.00", "900000.00", "920000.00", "880000.00", "990000.00"])
    view = kit.client.get(f"{tender.base}/evaluation", headers=kit.h("agent")).get_json()["data"]
    assert view["status"] == "submitted"
    assert [c["bidder"] for c in view["candidates"]] == [orgs[3], orgs[1], orgs[2]]
    assert [b["rank"] for b in view["result"]["bids"]] == [1, 2, 3, 4, 5]  # all ranked, three candidates


def test_rule_E3_every_member_signs_before_the_report_is_in(kit: AwardKit):
    tender, _ = kit.opened(PRICES)
    kit.clock.set(at(hours=1))
    kit.post(tender, "evaluation/start", "agent")
    kit.post(tender, "evaluation/report", "agent")
    kit.sign_all(tender, kit.experts[:4])
    assert kit.client.get(f"{tender.base}/evaluation", headers=kit.h("agent")).get_json()["data"]["status"] == "signing"
    twice = kit.post(tender, "evaluation/report/sign", kit.experts[0])
    assert twice.status_code == 409 and _error(twice)["code"] == "already_signed"
    early = kit.post(tender, "publicity", "agent", {"ends_at": at(days=6).isoformat()})
    assert early.status_code == 409 and _error(early)["code"] == "report_missing"
    kit.post(tender, "evaluation/report/sign", kit.experts[4], {"dissent": "不同意第二名排序"})
    assert kit.entries("evaluation.report_submitted")[0]["data"]["dissents"] == 1
    outsider = kit.post(tender, "evaluation/report/sign", "bidder")
    assert outsider.status_code == 403 and _error(outsider)["code"] == "not_a_member"


def test_rule_E4_publicity_shortened_refused(kit: AwardKit):
    tender, _ = kit.reported(PRICES)
    kit.clock.set(at(hours=2))
    ends = kit.limit(tender, "publicity", kit.clock.now())
    short = kit.post(tender, "publicity", "agent", {"ends_at": (ends - timedelta(hours=1)).isoformat()})
    assert short.status_code == 422
    assert _error(short)["details"]["rule"] == "E4"
    assert kit.status(tender) == "evaluation"
    refused = kit.entries("award.refused")
    assert refused[-1]["data"] == {"attempt": "publicity_start", "code": "rule_violation", "rule": "E4",
                                   "status": 422}
    assert kit.post(tender, "publicity", "agent", {"ends_at": ends.isoformat()}).status_code == 201


def test_rule_E4_publicity_starting_late_is_recorded_late(kit: AwardKit):
    tender, _ = kit.reported(PRICES)
    kit.clock.set(at(days=10))
    resp = kit.post(tender, "publicity", "agent",
                    {"ends_at": kit.limit(tender, "publicity", at(days=10)).isoformat()})
    assert resp.status_code == 201
    steps = {s["step"]: s for s in kit.client.get(f"{tender.base}/award/steps").get_json()["data"]}
    assert steps["publicity_start"]["state"] == "late" and steps["publicity_start"]["rule"] == "E4"


def test_rule_E5_award_to_non_candidate_refused(kit: AwardKit):
    tender, orgs = kit.publicised(["950000.00", "900000.00", "920000.00", "880000.00"])
    # ranks: orgs[3], orgs[1], orgs[2] are candidates; orgs[0] is ranked 4th, not a candidate
    outsider = kit.post(tender, "award", "agent", {"bidder": orgs[0]})
    assert outsider.status_code == 422
    assert (_error(outsider)["code"], _error(outsider)["details"]["rule"]) == ("award_to_non_candidate", "E5")
    second = kit.post(tender, "award", "agent", {"bidder": orgs[1]})
    assert _error(second)["code"] == "not_first_candidate"
    assert _error(second)["details"]["expected"] == orgs[3]
    # a listed fallback: the first declines, so the second is awarded
    fallback = kit.post(tender, f"candidates/{orgs[3]}/fallback", "agent",
                        {"reason": "declined", "note": "书面放弃中标"})
    assert fallback.status_code == 200, fallback.get_json()
    unlisted = kit.post(tender, f"candidates/{orgs[1]}/fallback", "agent", {"reason": "price_too_high", "note": "x"})
    assert unlisted.status_code == 422
    awarded = kit.post(tender, "award", "agent", {"bidder": orgs[1]})
    assert awarded.status_code == 201, awarded.get_json()
    assert all(n["fallback"] for n in awarded.get_json()["data"])
    assert kit.entries("award.fallback")[0]["data"]["rule"] == "E5"


def test_rule_E6_award_and_result_notices_same_instant(kit: AwardKit):
    tender, orgs = kit.publicised(PRICES)
    awarded = kit.post(tender, "award", "agent", {"bidder": orgs[1]})
    assert awarded.status_code == 201
    notices = kit.client.get(f"{tender.base}/award").get_json()["data"]["notices"]
    assert sorted((n["bidder"], n["kind"]) for n in notices) == sorted(
        [(orgs[1], "award"), (orgs[0], "result"), (orgs[2], "result")])
    assert {n["issued_at"] for n in notices} == {kit.clock.now().strftime("%Y-%m-%dT%H:%M:%S.000Z")}
    assert {n["winner"] for n in notices} == {orgs[1]}
    entry = kit.entries("award.issued")[0]
    assert entry["at"] == notices[0]["issued_at"] and entry["data"]["result_notices"] == 2
    again = kit.post(tender, "award", "agent", {"bidder": orgs[1]})
    assert again.status_code == 409


def test_rule_E6_contract_terms_must_match_bid(kit: AwardKit):
    tender = kit.tender()
    orgs = [kit.bid(tender, 1, "900000.00", duration_days="180", warranty_years="2"),
            kit.bid(tender, 2, "880000.00", duration_days="200", warranty_years="1"),
            kit.bid(tender, 3, "910000.00", duration_days="170", warranty_years="3")]
    kit.open(tender)
    kit.seat(tender)
    kit.clock.set(at(hours=1))
    kit.post(tender, "evaluation/start", "agent")
    kit.post(tender, "evaluation/report", "agent")
    kit.sign_all(tender)
    kit.clock.set(at(hours=2))
    ends = kit.limit(tender, "publicity", kit.clock.now())
    kit.post(tender, "publicity", "agent", {"ends_at": ends.isoformat()})
    kit.clock.set(ends + timedelta(hours=1))
    assert kit.post(tender, "award", "agent", {"bidder": orgs[1]}).status_code == 201

    terms = {"duration_days": "200", "warranty_years": "1"}
    for body, reason in (({"amount": "870000.00", "terms": terms}, "contract_amount_mismatch"),
                         ({"amount": "880000.00", "terms": {**terms, "duration_days": "260"}}, "contract_terms_mismatch"),
                         ({"amount": "880000.00", "terms": {"duration_days": "200"}}, "contract_terms_mismatch")):
        resp = kit.post(tender, "contracts", "tenderee", body)
        assert resp.status_code == 422, resp.get_json()
        assert (_error(resp)["code"], _error(resp)["details"]["rule"]) == (reason, "E6")
    assert _error(resp)["details"]["missing"] == ["warranty_years"]
    assert kit.status(tender) == "awarded"
    signed = kit.post(tender, "contracts", "tenderee", {"amount": "880000.00", "terms": {**terms, "site": "城区"}})
    assert signed.status_code == 201 and kit.status(tender) == "contracted"
    bidder = kit.post(tender, "contracts", "bidder2", {"amount": "880000.00", "terms": terms})
    assert bidder.status_code in (403, 409)


def test_rule_E6_contract_after_thirty_days_is_recorded_late(kit: AwardKit):
    tender, orgs = kit.publicised(PRICES)
    kit.post(tender, "award", "agent", {"bidder": orgs[1]})
    kit.clock.set(kit.clock.now() + timedelta(days=31))
    signed = kit.post(tender, "contracts", "agent", {"amount": "880000.00"})
    assert signed.status_code == 201 and signed.get_json()["data"]["late"] is True
    assert kit.entries("contract.signed")[0]["data"]["late"] is True


def test_rule_B8_security_refund_deadline(kit: AwardKit):
    tender, orgs = kit.publicised(PRICES)
    kit.post(tender, "award", "agent", {"bidder": orgs[1]})
    assert kit.client.get(f"{tender.base}/award").get_json()["data"]["refunds"] == []  # construction: from the contract
    kit.clock.set(kit.clock.now() + timedelta(days=1))
    kit.post(tender, "contracts", "agent", {"amount": "880000.00"})
    contract_at = kit.clock.now()
    refunds = kit.client.get(f"{tender.base}/award").get_json()["data"]["refunds"]
    due = kit.limit(tender, "loser_refund", contract_at)
    assert len(refunds) == 3 and {r["due_at"] for r in refunds} == {due.strftime("%Y-%m-%dT%H:%M:%S.000Z")}
    first, *rest = refunds
    kit.clock.set(due - timedelta(minutes=1))
    no_interest = kit.post(tender, f"refunds/{first['id']}", "agent")
    assert no_interest.status_code == 422 and _error(no_interest)["details"]["rule"] == "B8"
    assert kit.post(tender, f"refunds/{first['id']}", "agent", {"interest": "3.10"}).get_json()["data"]["late"] is False
    kit.clock.set(due)
    steps = kit.client.get(f"{tender.base}/award/steps").get_json()["data"]
    overdue = [s for s in steps if s["step"] in ("loser_refund", "winner_refund") and s["state"] == "overdue"]
    assert len(overdue) == 2 and all(s["rule"] == "B8" for s in overdue)
    late = kit.post(tender, f"refunds/{rest[0]['id']}", "agent", {"interest": "3.10"})
    assert late.status_code == 200 and late.get_json()["data"]["late"] is True
    assert [e["data"]["late"] for e in kit.entries("security.refunded")] == [False, True]
    again = kit.post(tender, f"refunds/{first['id']}", "agent", {"interest": "3.10"})
    assert again.status_code == 409 and _error(again)["code"] == "already_refunded"


def test_two_award_decisions_at_once_exactly_one_wins(kit: AwardKit):
    tender, orgs = kit.publicised(PRICES)
    second = kit.bench.world.user("agent2", "agent", org="AGENT1")
    app = kit.bench.world.app
    barrier = threading.Barrier(2)
    answers: list[tuple[int, str | None]] = []

    def decide(headers: dict[str, str]) -> None:
        client = app.test_client()
        barrier.wait()
        resp = client.post(f"{tender.base}/award", headers=headers, json={"bidder": orgs[1]})
        answers.append((resp.status_code, (resp.get_json().get("error") or {}).get("code")))

    threads = [threading.Thread(target=decide, args=(h,)) for h in (kit.h("agent"), second.headers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [(201, None), (409, "already_awarded")]
    assert kit.bench.count(AwardNotice, kind="award") == 1
    assert len(kit.entries("award.issued")) == 1 and len(kit.entries("project.award")) == 1


def test_rule_E4_objection_pauses_the_award_until_answered(kit: AwardKit):
    """Objections are supervision's complaints (kind candidate_objection): the project is
    suspended while one is open, so no award; answered, it resumes with its end moved."""
    tender, orgs = kit.reported(PRICES)
    kit.clock.set(at(hours=2))
    ends = kit.limit(tender, "publicity", kit.clock.now())
    assert kit.post(tender, "publicity", "agent", {"ends_at": ends.isoformat()}).status_code == 201
    kit.clock.set(at(days=1))
    filed = kit.client.post(f"/api/v1/projects/{tender.id}/complaints", headers=kit.h("bidder3"),
                            json={"kind": "candidate_objection", "lot": "L1", "text": "第一名业绩不实"})
    assert filed.status_code == 201, filed.get_json()
    assert kit.status(tender) == "suspended"
    kit.clock.set(ends + timedelta(days=1))
    paused = kit.post(tender, "award", "agent", {"bidder": orgs[1]})
    assert paused.status_code == 409
    assert (_error(paused)["code"], _error(paused)["details"]["rule"]) == ("objection_pending", "E4")
    answered = kit.client.post(f"/api/v1/complaints/{filed.get_json()['data']['id']}/answer",
                               headers=kit.h("agent"), json={"answer": "经核查业绩属实"})
    assert answered.status_code == 200, answered.get_json()
    assert kit.status(tender) == "publicity"          # the end moved by the days paused
    moved = kit.client.get(f"/api/v1/projects/{tender.id}").get_json()["data"]["schedule"]["publicity_end"]
    kit.clock.set(datetime.fromisoformat(moved.replace("Z", "+00:00")) + timedelta(minutes=1))
    awarded = kit.post(tender, "award", "agent", {"bidder": orgs[1]})
    assert awarded.status_code == 201, awarded.get_json()
