"""A government procurement (open tender, goods) end to end over HTTP, the clock moved by
the test: publication, sealed bids with securities, the expert draw, the opening,
comprehensive scoring with the E7 price weight, the signed report, the award within the
rule's working days with the committee published (D4), the losers' refunds from the award
notice and the winner's from the contract (B8)."""
from __future__ import annotations

from datetime import timedelta

from tests.award.award_kit import COMPREHENSIVE, AwardKit, at

GP = {"domain": "gp", "procedure": "open_tender", "category": "goods", "title": "办公设备采购"}


def test_gp_procurement_from_publication_to_refunds(kit: AwardKit):
    tender = kit.tender(evaluation_method=COMPREHENSIVE, **GP)
    kit.import_pool(6)
    secret = kit.commit_supervisor(tender)
    b1 = kit.bid(tender, 1, "700000.00")
    b2 = kit.bid(tender, 2, "650000.00")
    b3 = kit.bid(tender, 3, "820000.00")
    b4 = kit.bid(tender, 4, "1000000.01")                       # above the budget (F5)

    kit.opening.close(tender)
    experts = kit.draw(tender, secret, pool=6)
    kit.open(tender)

    kit.clock.set(at(hours=1))
    assert kit.post(tender, "evaluation/start", "agent").status_code == 201
    scores = {b1: {"tech": "19.00", "service": "9.00"}, b2: {"tech": "12.00", "service": "6.00"},
              b3: {"tech": "20.00", "service": "10.00"}, b4: {"tech": "20.00", "service": "10.00"}}
    kit.score_all(tender, [b1, b2, b3, b4], scores)
    computed = kit.post(tender, "evaluation/report", "agent")
    assert computed.status_code == 200, computed.get_json()
    result = computed.get_json()["data"]["result"]
    by_bid = {b["bid"]: b for b in result["bids"]}
    # the budget is also the published maximum price: both rules reject it
    assert [(r["code"], r["rule"]) for r in by_bid[b4]["rejections"]] == [
        ("price_above_maximum", "E2"), ("price_above_budget", "F5")]
    # b1: 28 + 650000/700000 × 70 = 28 + 65.00; b2: 18 + 70; b3: 30 + 55.49
    assert [by_bid[b]["total"] for b in (b1, b2, b3)] == ["93.00", "88.00", "85.49"]
    assert result["candidates"] == [b1, b2, b3]

    kit.clock.set(at(hours=2))
    kit.sign_all(tender)
    assert kit.status(tender) == "evaluation"          # GP: no candidate publicity
    no_publicity = kit.post(tender, "publicity", "agent", {"ends_at": at(days=5).isoformat()})
    assert no_publicity.status_code == 409
    assert no_publicity.get_json()["error"]["code"] == "no_publicity_in_procedure"

    # -- award within 5 working days of the report (E6 for GP), the committee published (D4)
    kit.clock.set(at(days=1))
    awarded = kit.post(tender, "award", "agent", {"bidder": b1})
    assert awarded.status_code == 201, awarded.get_json()
    assert len({n["issued_at"] for n in awarded.get_json()["data"]}) == 1
    assert kit.status(tender) == "awarded"
    published = kit.entries("committee.published")
    assert len(published) == 1
    drawn_ids = {f"E{name[-2:]}" for name in experts}
    assert {m["expert"] for m in published[0]["data"]["members"]} == drawn_ids

    # -- the losers' refunds run from the award notice (5 working days), the winner's not yet
    view = kit.client.get(f"{tender.base}/award").get_json()["data"]
    assert sorted(r["bidder"] for r in view["refunds"]) == sorted([b2, b3, b4])
    assert not any(r["with_interest"] for r in view["refunds"])
    award_at = kit.clock.now()
    due = kit.limit(tender, "loser_refund", award_at)
    assert all(r["due_at"] == due.strftime("%Y-%m-%dT%H:%M:%S.000Z") for r in view["refunds"])
    kit.clock.set(award_at + timedelta(days=3))
    for refund in view["refunds"]:
        done = kit.post(tender, f"refunds/{refund['id']}", "agent")
        assert done.status_code == 200 and done.get_json()["data"]["late"] is False

    # -- contract at the awarded price, then the winner's refund
    kit.clock.set(award_at + timedelta(days=7))
    contract = kit.post(tender, "contracts", "agent", {"amount": "700000.00"})
    assert contract.status_code == 201, contract.get_json()
    assert kit.status(tender) == "contracted"
    winner = [r for r in kit.client.get(f"{tender.base}/award").get_json()["data"]["refunds"] if r["winner"]]
    assert [r["bidder"] for r in winner] == [b1]
    kit.clock.set(award_at + timedelta(days=8))
    assert kit.post(tender, f"refunds/{winner[0]['id']}", "agent").status_code == 200

    steps = kit.client.get(f"{tender.base}/award/steps").get_json()["data"]
    assert {s["step"] for s in steps} == {"award", "contract", "loser_refund", "winner_refund"}
    assert all(s["state"] == "done" for s in steps), steps
