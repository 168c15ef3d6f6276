"""Rules of the evaluation and of the GP variants, over HTTP: scores within range and only
by seated members (E1, D5), an abnormally low price explained in writing (E2), failure when
every bid is above the budget (F5), the inquiry's one price (F4), and negotiation rounds
with final offers (F2, F3)."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from bidding.award_models import Score
from tests.award.award_kit import COMPREHENSIVE, LOT, AwardKit, at
from tests.bidding.helpers import bid_form

PRICES = ["900000.00", "880000.00", "910000.00"]
GOOD = {"tech": "15.00", "service": "8.00"}


def _error(resp: Any) -> dict[str, Any]:
    return resp.get_json()["error"]


def _scores(bids: list[str], values: dict[str, str] = GOOD) -> dict[str, Any]:
    return {"scores": [{"bid": b, "criterion": c, "value": v} for b in bids for c, v in values.items()]}


def test_scores_outside_range_or_criteria_refused(kit: AwardKit):
    tender, orgs = kit.opened(PRICES, evaluation_method=COMPREHENSIVE)
    kit.clock.set(at(hours=1))
    kit.post(tender, "evaluation/start", "agent")
    member = kit.experts[0]
    for item, code in (({"criterion": "tech", "value": "20.01"}, "score_out_of_range"),
                       ({"criterion": "price", "value": "50.00"}, "price_criterion_scored"),
                       ({"criterion": "design", "value": "5.00"}, "unpublished_criterion")):
        resp = kit.post(tender, "evaluation/scores", member, {"scores": [{"bid": orgs[0], **item}]})
        assert (resp.status_code, _error(resp)["code"]) == (422, code), resp.get_json()
    as_float = kit.client.post(f"{tender.base}/evaluation/scores", headers=kit.h(member),
                               data='{"scores": [{"bid": "%s", "criterion": "tech", "value": 18.5}]}' % orgs[0],
                               content_type="application/json")
    assert as_float.status_code == 422 and _error(as_float)["code"] == "validation_failed"
    outsider = kit.post(tender, "evaluation/scores", "tenderee", _scores(orgs[:1]))
    assert outsider.status_code == 403 and _error(outsider)["code"] == "not_a_member"
    # a member's refusals are logged without its name (D4)
    refused = kit.entries("award.refused")
    assert len(refused) == 4 and all(e["actor"] == "hidden" for e in refused[:3])
    assert refused[-1]["actor"] == "tenderee1" and refused[-1]["data"]["code"] == "not_a_member"
    # the boundaries are inside the range
    edge = kit.post(tender, "evaluation/scores", member, {"scores": [
        {"bid": orgs[0], "criterion": "tech", "value": "20.00"}, {"bid": orgs[0], "criterion": "service", "value": "0"}]})
    assert edge.status_code == 200, edge.get_json()
    incomplete = kit.post(tender, "evaluation/report", "agent")
    assert incomplete.status_code == 422 and _error(incomplete)["code"] == "scores_incomplete"


def test_rule_D5_replaced_expert_scores_void(kit: AwardKit):
    tender, orgs = kit.opened(PRICES, evaluation_method=COMPREHENSIVE)
    kit.clock.set(at(hours=1))
    kit.post(tender, "evaluation/start", "agent")
    replaced, *others = kit.experts
    # the member who will be replaced scores wildly in favour of the dearest bid
    kit.score_all(tender, orgs, {orgs[0]: GOOD, orgs[1]: {"tech": "0", "service": "0"},
                                 orgs[2]: {"tech": "20.00", "service": "10.00"}}, [replaced])
    removed = kit.post(tender, "committee/replace", "agent",
                       {"lot": LOT, "expert": f"E{replaced[-2:]}", "reason": "与投标人存在利害关系（事后发现）"})
    assert removed.status_code == 200, removed.get_json()
    again = kit.post(tender, "evaluation/scores", replaced, _scores(orgs))
    assert again.status_code == 403
    assert (_error(again)["code"], _error(again)["details"]["rule"]) == ("member_replaced", "D5")
    newcomer = kit.seat(tender, 1, first=6)             # the replacement draw's pick, seated
    kit.score_all(tender, orgs, {b: GOOD for b in orgs}, others + newcomer)
    computed = kit.post(tender, "evaluation/report", "agent")
    assert computed.status_code == 200, computed.get_json()
    result = computed.get_json()["data"]["result"]
    assert result["members"] == 5
    # equal technical scores: the price decides, as if the replaced member never scored
    assert result["candidates"] == [orgs[1], orgs[0], orgs[2]]
    assert {b["bid"]: b["technical_score"] for b in result["bids"]} == {o: "23.00" for o in orgs}

    def void_rows(session: Any) -> list[tuple[str, bool, str | None]]:
        rows = session.execute(sa.select(Score.expert_id, Score.void, Score.void_reason)
                               .where(Score.void.is_(True))).all()
        return [tuple(r) for r in rows]
    voided = kit.bench.db(void_rows)
    assert len(voided) == 6 and {r[0] for r in voided} == {f"E{replaced[-2:]}"}
    assert all(r[2].startswith("D5") for r in voided)
    assert kit.entries("evaluation.computed")[0]["data"]["void_scores"] == 6


def test_rule_E2_abnormally_low_price_needs_a_written_explanation(kit: AwardKit):
    tender = kit.tender()
    orgs = [kit.bid(tender, 1, "900000.00"), kit.bid(tender, 2, "880000.00"), kit.bid(tender, 3, "500000.00")]
    kit.open(tender)
    kit.seat(tender)

    # The threshold is published with the method; the project schema does not take it yet,
    # so this test writes it the way a published method would hold it.
    def publish_threshold(session: Any) -> None:
        from trading.models import Project
        project = session.get(Project, tender.id)
        project.evaluation_method = {**project.evaluation_method, "abnormally_low_ratio": "0.70"}
        session.commit()
    kit.bench.db(publish_threshold)
    kit.clock.set(at(hours=1))
    kit.post(tender, "evaluation/start", "agent")
    waiting = kit.post(tender, "evaluation/report", "agent")
    assert (_error(waiting)["code"], _error(waiting)["details"]["bids"]) == ("explanation_required", [orgs[2]])
    asked = kit.client.get(f"{tender.base}/evaluation", headers=kit.h("bidder3")).get_json()["data"]
    assert asked["explanation_required"] is True
    not_asked = kit.post(tender, "evaluation/explanations", "bidder", {"text": "我方报价合理"})
    assert not_asked.status_code == 409
    assert kit.post(tender, "evaluation/explanations", "bidder3", {"text": "自有设备，材料库存"}).status_code == 201
    decided = kit.post(tender, "evaluation/explanations/decision", kit.experts[0], {"bid": orgs[2], "accepted": False})
    assert decided.status_code == 200
    result = kit.post(tender, "evaluation/report", "agent").get_json()["data"]["result"]
    low = {b["bid"]: b for b in result["bids"]}[orgs[2]]
    assert low["rejections"][0]["code"] == "below_cost" and low["status"] == "rejected"
    assert result["candidates"] == [orgs[1], orgs[0]]


GP = {"domain": "gp", "category": "goods", "title": "办公设备采购"}


def test_rule_F5_all_bids_above_budget_fail(kit: AwardKit):
    tender, _ = kit.opened(["1100000.00", "1200000.00", "1050000.00"], procedure="open_tender",
                           max_price="2000000.00", **GP)
    kit.clock.set(at(hours=1))
    started = kit.post(tender, "evaluation/start", "agent")
    assert started.status_code == 201, started.get_json()
    data = started.get_json()["data"]
    assert data["status"] == "failed"
    assert {"code": "every_bid_above_budget", "rule": "F5"} in [
        {k: f[k] for k in ("code", "rule")} for f in data["failure"]]
    assert kit.status(tender) == "failed"
    fail = kit.entries("project.fail")
    assert len(fail) == 1 and "F5" in fail[0]["data"]["rules"]
    later = kit.post(tender, "evaluation/report", "agent")
    assert later.status_code == 409


def test_rule_F4_inquiry_price_unchangeable(kit: AwardKit):
    tender = kit.tender(procedure="inquiry", evaluation_method={"method": "inquiry"}, **GP)
    orgs = [kit.bid(tender, n, price) for n, price in ((1, "900000.00"), (2, "880000.00"), (3, "910000.00"))]
    # bidder 4 sends a price, then another before the deadline: an inquiry allows one
    name, org = kit.opening.bidder(4), kit.bench.org(kit.opening.bidder(4))
    kit.post(tender, "securities", name, {"lot": LOT, "amount": "10000.00", "payer_account": "ACCT-4"})
    first = kit.bench.seal(tender, name, price="870000.00")
    receipt = kit.bench.submit(tender, name, first)
    kit.opening.bid(tender, 4, "800000.00", supersedes=receipt["receipt"]["receipt"],
                    plaintext=bid_form(tender.tender, LOT, org, "800000.00"))
    kit.open(tender)
    kit.seat(tender, 3)

    second_price = kit.post(tender, "negotiation/offers", "bidder", {"price": "850000.00"})
    assert second_price.status_code == 422
    assert (_error(second_price)["code"], _error(second_price)["details"]["rule"]) == ("rule_violation", "F4")

    kit.clock.set(at(hours=1))
    started = kit.post(tender, "evaluation/start", "agent")
    assert started.status_code == 201, started.get_json()
    result = kit.post(tender, "evaluation/report", "agent").get_json()["data"]["result"]
    changed = {b["bid"]: b for b in result["bids"]}[org]
    assert [(r["code"], r["rule"]) for r in changed["rejections"]] == [("price_changed", "F4")]
    assert result["method"] == "inquiry" and result["candidates"][0] == orgs[1]   # lowest compliant
    kit.sign_all(tender)
    kit.clock.set(at(days=1))
    assert kit.post(tender, "negotiation/offers", "bidder2", {"price": "700000.00"}).status_code == 422
    awarded = kit.post(tender, "award", "agent", {"bidder": orgs[1]})
    assert awarded.status_code == 201, awarded.get_json()


def test_negotiation_rounds_and_final_offers(kit: AwardKit):
    tender, orgs = kit.opened(PRICES, members=3, procedure="negotiation", **GP)
    kit.clock.set(at(hours=1))
    few = kit.post(tender, "negotiation/rounds", "agent",
                   {"response_due_at": at(days=1).isoformat(), "suppliers": orgs[:2]})
    assert few.status_code == 422 and _error(few)["details"]["rule"] == "F2"
    rushed = kit.post(tender, "negotiation/rounds", "agent",
                      {"response_due_at": at(days=1).isoformat(), "changes_requirements": True})
    assert rushed.status_code == 422 and _error(rushed)["details"]["rule"] == "F3"
    first = kit.post(tender, "negotiation/rounds", "agent", {"response_due_at": at(days=1).isoformat(),
                                                            "note": "技术参数澄清"})
    assert first.status_code == 201 and first.get_json()["data"]["round"] == 1
    too_soon = kit.post(tender, "negotiation/rounds", "agent", {"response_due_at": at(days=2).isoformat(),
                                                               "final": True})
    assert too_soon.status_code == 409 and _error(too_soon)["code"] == "round_open"

    kit.clock.set(at(days=1, hours=1))
    due = at(days=2)
    final = kit.post(tender, "negotiation/rounds", "agent", {"response_due_at": due.isoformat(), "final": True})
    assert final.status_code == 201, final.get_json()
    offers = {"bidder": "870000.00", "bidder2": "860000.00", "bidder3": "855000.00"}
    for party, price in offers.items():
        made = kit.post(tender, "negotiation/offers", party, {"price": price})
        assert made.status_code == 201, made.get_json()
    changed = kit.post(tender, "negotiation/offers", "bidder", {"price": "800000.00"})
    assert changed.status_code == 409 and _error(changed)["code"] == "offer_already_made"
    seen = kit.client.get(f"{tender.base}/negotiation/rounds", headers=kit.h("bidder2")).get_json()["data"]
    assert [o["price"] for o in seen[-1]["offers"]] == ["860000.00"]          # its own only, until the deadline
    early = kit.post(tender, "evaluation/start", "agent")
    assert early.status_code == 409 and _error(early)["code"] == "final_offers_open"
    assert all(e["actor"] == "hidden" for e in kit.entries("negotiation.final_offer"))

    kit.clock.set(due + timedelta(minutes=1))
    late = kit.post(tender, "negotiation/offers", "bidder", {"price": "1.00"})
    assert late.status_code == 409
    started = kit.post(tender, "evaluation/start", "agent")
    assert started.status_code == 201, started.get_json()
    assert started.get_json()["data"]["price_source"] == "final_offers:2"
    result = kit.post(tender, "evaluation/report", "agent").get_json()["data"]["result"]
    assert result["candidates"] == [orgs[2], orgs[1], orgs[0]]              # lowest final offer first
    assert {b["bid"]: Decimal(b["price"]) for b in result["bids"]}[orgs[2]] == Decimal("855000.00")
    kit.sign_all(tender)
    awarded = kit.post(tender, "award", "agent", {"bidder": orgs[2]})
    assert awarded.status_code == 201 and awarded.get_json()["data"][0]["price"] == "855000.00"
    contract = kit.post(tender, "contracts", "agent", {"amount": "855000.00"})
    assert contract.status_code == 201, contract.get_json()


def test_a_changed_score_after_computing_sends_the_report_back(kit: AwardKit):
    tender, orgs = kit.opened(PRICES, evaluation_method=COMPREHENSIVE)
    kit.clock.set(at(hours=1))
    kit.post(tender, "evaluation/start", "agent")
    kit.score_all(tender, orgs, {b: GOOD for b in orgs})
    assert kit.post(tender, "evaluation/report", "agent").status_code == 200
    kit.sign_all(tender, kit.experts[:2])
    rescored = kit.post(tender, "evaluation/scores", kit.experts[2],
                        {"scores": [{"bid": orgs[2], "criterion": "tech", "value": "20.00"}]})
    assert rescored.status_code == 200
    view = kit.client.get(f"{tender.base}/evaluation", headers=kit.h("agent")).get_json()["data"]
    assert (view["status"], view["signatures"], view["result"]) == ("scoring", 0, None)
    assert kit.entries("evaluation.reopened")[0]["actor"] == "hidden"
    unsigned = kit.post(tender, "evaluation/report/sign", kit.experts[0])
    assert unsigned.status_code == 409 and _error(unsigned)["code"] == "report_not_computed"
    assert kit.post(tender, "evaluation/report", "agent").status_code == 200
    kit.sign_all(tender)
    assert kit.status(tender) == "evaluation"
    assert kit.client.get(f"{tender.base}/evaluation", headers=kit.h("agent")).get_json()["data"]["status"] == "submitted"
