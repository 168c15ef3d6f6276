"""A construction tender end to end over HTTP, the clock moved by the test: publication,
sealed bids with securities, closing, the expert draw, the opening, compliance review and
comprehensive scoring, the signed report, candidate publicity, award, the report to the
supervisor, the contract and the refunds (RULES A–E, B8, D1–D5)."""
from __future__ import annotations

from datetime import timedelta

from tests.award.award_kit import COMPREHENSIVE, LOT, AwardKit, at, shanghai_midnight_after

SCORES = {"tech": "18.00", "service": "9.00"}


def test_construction_tender_from_publication_to_refunds(kit: AwardKit):
    tender = kit.tender(evaluation_method=COMPREHENSIVE)
    kit.import_pool(7)
    secret = kit.commit_supervisor(tender)
    b1 = kit.bid(tender, 1, "900000.00", duration_days="180")
    b2 = kit.bid(tender, 2, "880000.50", duration_days="200")
    b3 = kit.bid(tender, 3, "910000.00", duration_days="170")
    b4 = kit.bid(tender, 4, "1050000.00", duration_days="150")    # above the maximum price (E2)

    kit.opening.close(tender)
    experts = kit.draw(tender, secret, pool=7)
    record = kit.open(tender)
    assert {b["bidder"]: b["price"] for b in record["bids"]}[b2] == "880000.50"
    assert kit.status(tender) == "evaluation"

    # -- evaluation: the agent opens it, members score, the result is computed and signed
    kit.clock.set(at(hours=2))
    started = kit.post(tender, "evaluation/start", "agent")
    assert started.status_code == 201, started.get_json()
    assert started.get_json()["data"]["status"] == "scoring"
    scores = {b1: SCORES, b2: {"tech": "15.00", "service": "8.00"}, b3: {"tech": "20.00", "service": "10.00"},
              b4: SCORES}
    kit.score_all(tender, [b1, b2, b3, b4], scores)
    computed = kit.post(tender, "evaluation/report", "agent")
    assert computed.status_code == 200, computed.get_json()
    result = computed.get_json()["data"]["result"]
    by_bid = {b["bid"]: b for b in result["bids"]}
    assert by_bid[b4]["status"] == "rejected"
    assert by_bid[b4]["rejections"][0]["code"] == "price_above_maximum"
    # price score: lowest / price × 70; b2 is the lowest and scores full marks
    assert by_bid[b2]["price_score"] == "70.00"
    assert by_bid[b1]["price_score"] == "68.44"                  # 880000.50 / 900000 × 70
    assert result["candidates"] == [b3, b1, b2]                  # 97.69, 95.44, 93.00
    assert by_bid[b3]["total"] == "97.69"

    # bidders see nothing of the result before the publicity
    hidden = kit.client.get(f"{tender.base}/evaluation", headers=kit.h("bidder")).get_json()["data"]
    assert "result" not in hidden

    kit.clock.set(at(hours=3))
    kit.sign_all(tender, experts[:-1])
    assert kit.status(tender) == "evaluation"
    dissent = kit.post(tender, "evaluation/report/sign", experts[-1], {"dissent": "技术分偏高"})
    assert dissent.status_code == 200, dissent.get_json()
    report_at = at(hours=3)
    view = kit.client.get(f"{tender.base}/evaluation", headers=kit.h("agent")).get_json()["data"]
    assert view["status"] == "submitted" and view["signatures"] == 5

    # committee names are hidden in the log until the result (D4)
    scored = kit.entries("evaluation.scored")
    assert len(scored) == 5 and all(e["actor"] == "hidden" and e["data"] == {} for e in scored)

    # -- publicity (E4): within 3 days of the report, at least 3 days long
    kit.clock.set(report_at + timedelta(days=1))
    ends = kit.limit(tender, "publicity", kit.clock.now())   # 3 days, Qingming moves the last one
    assert ends > shanghai_midnight_after(kit.clock.now(), 3)
    publicity = kit.post(tender, "publicity", "agent", {"ends_at": ends.isoformat()})
    assert publicity.status_code == 201, publicity.get_json()
    assert kit.status(tender) == "publicity"
    public = kit.client.get(f"{tender.base}/evaluation").get_json()["data"]
    assert [c["bidder"] for c in public["candidates"]] == [b3, b1, b2]

    early = kit.post(tender, "award", "agent", {"bidder": b3})
    assert early.status_code == 409 and early.get_json()["error"]["code"] == "publicity_not_over"

    # -- award (E5, E6): rank 1, every notice at one instant
    kit.clock.set(ends + timedelta(hours=1))
    awarded = kit.post(tender, "award", "agent", {"bidder": b3})
    assert awarded.status_code == 201, awarded.get_json()
    notices = awarded.get_json()["data"]
    assert {n["kind"] for n in notices} == {"award", "result"} and len(notices) == 4
    assert len({n["issued_at"] for n in notices}) == 1
    assert kit.status(tender) == "awarded"
    award_at = kit.clock.now()

    # -- the report to the supervisor (E6, 15 days)
    kit.clock.set(award_at + timedelta(days=2))
    filed = kit.post(tender, "supervisor-report", "agent", {"text": "招标投标情况书面报告"})
    assert filed.status_code == 201, filed.get_json()

    # -- the contract (E6): the awarded price and the bid's declared items
    kit.clock.set(award_at + timedelta(days=10))
    wrong = kit.post(tender, "contracts", "tenderee", {"amount": "905000.00", "terms": {"duration_days": "170"}})
    assert wrong.status_code == 422 and wrong.get_json()["error"]["details"]["rule"] == "E6"
    signed = kit.post(tender, "contracts", "tenderee",
                      {"amount": "910000.00", "terms": {"duration_days": "170", "payment": "按月支付"}})
    assert signed.status_code == 201, signed.get_json()
    assert signed.get_json()["data"]["late"] is False
    assert kit.status(tender) == "contracted"

    # -- refunds (B8): construction, every security within 5 days of the contract, with interest
    award_view = kit.client.get(f"{tender.base}/award", headers=kit.h("agent")).get_json()["data"]
    refunds = award_view["refunds"]
    assert sorted(r["bidder"] for r in refunds) == sorted([b1, b2, b3, b4])
    assert all(r["with_interest"] for r in refunds)
    kit.clock.set(award_at + timedelta(days=12))
    for refund in refunds:
        done = kit.post(tender, f"refunds/{refund['id']}", "agent", {"interest": "12.30"})
        assert done.status_code == 200, done.get_json()
        assert done.get_json()["data"]["late"] is False

    steps = kit.client.get(f"{tender.base}/award/steps").get_json()["data"]
    by_step = {}
    for step in steps:
        by_step.setdefault(step["step"], []).append(step)
    assert set(by_step) >= {"publicity_start", "publicity", "contract", "report", "winner_refund", "loser_refund"}
    assert all(s["state"] == "done" for s in steps), steps
    assert by_step["contract"][0]["lot"] == LOT and by_step["contract"][0]["rule"] == "E6"
    assert kit.entries("award.issued")[0]["data"]["winner"] == b3
    assert kit.entries("project.award")[0]["data"]["winners"] == [b3]
