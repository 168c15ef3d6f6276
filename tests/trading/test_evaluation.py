"""Evaluation: compliance review, scoring and ranking (RULES E1, E2, E3, E7, F4, F5)."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest

from trading.evaluation import (
    Aggregation, Bid, BidStatus, Criterion, EvaluationError, EvaluationRules, Method,
    Outcome, Rejection, Score, TenderTerms, TieBreak, aggregate, check_criteria, evaluate,
    price_score, price_weight, review_compliance, round_score,
)

T0 = datetime(2026, 5, 1, 1, 0, tzinfo=timezone.utc)


def bid(bid_id: str, price: str, minutes: int = 0, bidder: str | None = None, **kw) -> Bid:
    return Bid(bid_id, bidder or f"org-{bid_id}", D(price), T0 + timedelta(minutes=minutes), **kw)


CONSTRUCTION = EvaluationRules(max_candidates=3)
GP_GOODS = EvaluationRules(max_candidates=3, reject_above_budget=True, min_compliant_bids=3,
                           price_weight_min=D("0.30"), abnormally_low_ratio=D("0.80"))
LOWEST = TenderTerms(method=Method.LOWEST_EVALUATED_PRICE, maximum_price=D("1000000"))
CRITERIA = (Criterion("tech", D("50")), Criterion("service", D("20")),
            Criterion("price", D("30"), is_price=True))
COMPREHENSIVE = TenderTerms(method=Method.COMPREHENSIVE, criteria=CRITERIA,
                            budget=D("1000000"))
MEMBERS = ("m1", "m2", "m3")


def full_scores(table: dict[str, dict[str, list[str]]], members=MEMBERS) -> list[Score]:
    """{bid: {criterion: [value per member]}} → Score objects."""
    return [Score(m, b, c, D(v)) for b, per in table.items() for c, values in per.items()
            for m, v in zip(members, values)]


# --------------------------------------------------------------------------- E2 / F5

def test_rule_E2_price_above_maximum_is_rejected() -> None:
    reviews = review_compliance([bid("b1", "1000000.01"), bid("b2", "1000000")],
                                LOWEST, CONSTRUCTION)
    assert reviews[0].status is BidStatus.REJECTED
    assert reviews[0].rejections[0].code == "price_above_maximum"
    assert reviews[0].rejections[0].rule == "E2"
    assert reviews[1].status is BidStatus.COMPLIANT   # at the maximum is allowed


def test_rule_E2_two_bids_from_one_bidder_rejects_both() -> None:
    bids = [bid("b1", "900", bidder="ACME"), bid("b2", "950", bidder="ACME"), bid("b3", "990")]
    reviews = {r.bid_id: r for r in review_compliance(bids, LOWEST, CONSTRUCTION)}
    for bid_id in ("b1", "b2"):
        assert reviews[bid_id].rejections == (Rejection("two_bids_from_one_bidder", "E2"),)
    assert reviews["b3"].status is BidStatus.COMPLIANT


def test_rule_E2_two_bids_allowed_when_alternative_bids_are_published() -> None:
    terms = replace(LOWEST, alternative_bids_allowed=True)
    bids = [bid("b1", "900", bidder="ACME"), bid("b2", "950", bidder="ACME")]
    assert all(r.status is BidStatus.COMPLIANT for r in review_compliance(bids, terms,
                                                                          CONSTRUCTION))


def test_rule_E2_abnormally_low_price_needs_a_written_explanation() -> None:
    bids = [bid("low", "500"), bid("b2", "1000"), bid("b3", "1000")]
    reviews = {r.bid_id: r for r in review_compliance(bids, LOWEST, GP_GOODS)}
    # 500 < 0.80 × mean(1000, 1000)
    assert reviews["low"].status is BidStatus.EXPLANATION_REQUIRED
    assert reviews["low"].flags == ("abnormally_low",)
    with pytest.raises(EvaluationError) as caught:
        evaluate(bids, LOWEST, GP_GOODS)
    assert caught.value.code == "explanation_required"
    assert caught.value.details["bids"] == ["low"]


def test_rule_E2_unjustified_abnormally_low_price_is_rejected_as_below_cost() -> None:
    bids = [bid("low", "500"), bid("b2", "1000"), bid("b3", "1000"), bid("b4", "990")]
    result = evaluate(bids, LOWEST, GP_GOODS, explanations={"low": False})
    assert result.bid("low").status is BidStatus.REJECTED
    assert result.bid("low").rejections[0].code == "below_cost"
    assert result.winner == "b4"


def test_rule_E2_explained_abnormally_low_price_stays_and_can_win() -> None:
    bids = [bid("low", "500"), bid("b2", "1000"), bid("b3", "1000")]
    result = evaluate(bids, LOWEST, GP_GOODS, explanations={"low": True})
    assert result.bid("low").flags == ("abnormally_low_explained",)
    assert result.winner == "low"


def test_rule_E2_threshold_is_a_parameter() -> None:
    bids = [bid("low", "500"), bid("b2", "1000"), bid("b3", "1000")]
    lenient = replace(GP_GOODS, abnormally_low_ratio=D("0.40"))
    assert all(r.status is BidStatus.COMPLIANT for r in review_compliance(bids, LOWEST, lenient))
    assert all(r.status is BidStatus.COMPLIANT
               for r in review_compliance(bids, LOWEST, CONSTRUCTION))   # no check at all


def test_rule_E2_committee_findings_reject_with_their_rule() -> None:
    finding = Rejection("qualification_not_met", "E2", "licence expired")
    result = evaluate([bid("b1", "900", rejections=(finding,)), bid("b2", "950")],
                      LOWEST, CONSTRUCTION)
    assert result.bid("b1").rejections == (finding,)
    assert result.candidates == ("b2",)


def test_rule_E2_all_rejected_means_re_tender() -> None:
    result = evaluate([bid("b1", "2000000"), bid("b2", "3000000")], LOWEST, CONSTRUCTION)
    assert result.outcome is Outcome.FAILED
    assert result.failure == (Rejection("all_bids_rejected", "E2", "法 42: re-tender"),)
    assert result.next_step == "re_tender"
    assert result.candidates == () and result.winner is None


def test_rule_F5_price_above_budget_is_rejected_in_gp() -> None:
    terms = TenderTerms(method=Method.LOWEST_EVALUATED_PRICE, budget=D("1000"))
    reviews = review_compliance([bid("b1", "1000.01"), bid("b2", "999")], terms, GP_GOODS)
    assert reviews[0].rejections == (Rejection("price_above_budget", "F5", "1000.01 > 1000"),)
    # Construction does not reject on the budget (it has a maximum price instead).
    assert review_compliance([bid("b1", "1000.01")], terms, CONSTRUCTION)[0].status \
        is BidStatus.COMPLIANT


def test_rule_F5_every_bid_above_budget_fails() -> None:
    terms = TenderTerms(method=Method.LOWEST_EVALUATED_PRICE, budget=D("1000"))
    result = evaluate([bid("b1", "1001"), bid("b2", "1200"), bid("b3", "1300")], terms,
                      GP_GOODS)
    assert result.outcome is Outcome.FAILED
    assert Rejection("every_bid_above_budget", "F5") in result.failure
    assert all(b.status is BidStatus.REJECTED for b in result.bids)


def test_rule_C2_too_few_compliant_bids_fail_gp() -> None:
    terms = TenderTerms(method=Method.LOWEST_EVALUATED_PRICE, budget=D("1000"))
    result = evaluate([bid("b1", "900"), bid("b2", "950"), bid("b3", "1100")], terms,
                      GP_GOODS)
    assert result.outcome is Outcome.FAILED
    assert [f.code for f in result.failure] == ["too_few_compliant_bids"]


def test_no_bids_fails() -> None:
    result = evaluate([], LOWEST, CONSTRUCTION)
    assert result.outcome is Outcome.FAILED
    assert result.failure[0].code == "no_bids"


def test_non_positive_price_is_rejected() -> None:
    reviews = review_compliance([bid("b1", "0")], LOWEST, CONSTRUCTION)
    assert reviews[0].rejections[0].code == "non_positive_price"


def test_float_prices_are_refused() -> None:
    with pytest.raises(EvaluationError) as caught:
        review_compliance([Bid("b1", "o", 900.0, T0)], LOWEST, CONSTRUCTION)
    assert caught.value.code == "not_a_decimal"


# --------------------------------------------------------------------------- E1 lowest price

def test_rule_E1_lowest_evaluated_price_ranks_by_evaluated_price() -> None:
    bids = [bid("b1", "900", evaluated_price=D("960")), bid("b2", "950"), bid("b3", "990")]
    result = evaluate(bids, LOWEST, CONSTRUCTION)
    assert result.candidates == ("b2", "b1", "b3")
    assert [b.rank for b in result.bids] == [1, 2, 3]
    assert result.bid("b1").evaluated_price == D("960")


def test_rule_E3_at_most_three_candidates() -> None:
    bids = [bid(f"b{i}", str(900 + i)) for i in range(6)]
    result = evaluate(bids, LOWEST, CONSTRUCTION)
    assert result.candidates == ("b0", "b1", "b2")
    assert [b.rank for b in result.bids] == [1, 2, 3, 4, 5, 6]   # all ranked, 3 candidates


def test_rule_E3_candidate_count_comes_from_the_rules() -> None:
    bids = [bid(f"b{i}", str(900 + i)) for i in range(6)]
    assert evaluate(bids, LOWEST, EvaluationRules(max_candidates=1)).candidates == ("b0",)


def test_rule_E3_tie_broken_by_earlier_receipt() -> None:
    terms = replace(LOWEST, tie_break=(TieBreak.EARLIER_RECEIPT,))
    bids = [bid("late", "900", minutes=5), bid("early", "900", minutes=1), bid("b3", "990")]
    result = evaluate(bids, terms, CONSTRUCTION)
    assert result.candidates == ("early", "late", "b3")
    assert result.unresolved_tie == ()


def test_rule_E3_unresolved_tie_at_the_cutoff_is_not_decided_silently() -> None:
    terms = replace(LOWEST, tie_break=())
    bids = [bid("a", "800"), bid("b", "900"), bid("c", "950"), bid("d", "950")]
    result = evaluate(bids, terms, CONSTRUCTION)
    assert result.candidates == ("a", "b")
    assert set(result.unresolved_tie) == {"c", "d"}
    assert result.bid("c").rank == result.bid("d").rank == 3   # 并列


# --------------------------------------------------------------------------- F4 inquiry

def test_rule_F4_inquiry_lowest_compliant_price_wins() -> None:
    terms = TenderTerms(method=Method.INQUIRY, budget=D("1000"),
                        tie_break=(TieBreak.EARLIER_RECEIPT,))
    bids = [bid("cheap-but-late-form", "700", rejections=(Rejection("not_responsive", "E2"),)),
            bid("b2", "800", evaluated_price=D("1")),   # inquiry ignores adjustments
            bid("b3", "750"), bid("b4", "990")]
    result = evaluate(bids, terms, replace(GP_GOODS, abnormally_low_ratio=None))
    assert result.outcome is Outcome.RANKED
    assert result.winner == "b3"
    assert result.candidates == ("b3", "b2", "b4")


def test_rule_F4_inquiry_all_rejected_fails() -> None:
    terms = TenderTerms(method=Method.INQUIRY, budget=D("1000"))
    result = evaluate([bid("b1", "1100"), bid("b2", "1200"), bid("b3", "1300")], terms,
                      GP_GOODS)
    assert result.outcome is Outcome.FAILED
    assert result.next_step == "re_tender"


# --------------------------------------------------------------------------- E7 / comprehensive

def test_rule_E7_price_weight_below_thirty_percent_refused_for_goods() -> None:
    criteria = (Criterion("tech", D("75")), Criterion("price", D("25"), is_price=True))
    terms = replace(COMPREHENSIVE, criteria=criteria)
    with pytest.raises(EvaluationError) as caught:
        check_criteria(terms, GP_GOODS)
    assert caught.value.code == "price_weight_out_of_range"
    assert caught.value.details["rule"] == "E7"
    assert price_weight(criteria) == D("0.25")


def test_rule_E7_price_weight_bounds_are_inclusive_and_from_the_rules() -> None:
    check_criteria(COMPREHENSIVE, GP_GOODS)                        # exactly 30%: allowed
    services = EvaluationRules(max_candidates=3, price_weight_min=D("0.10"))
    criteria = (Criterion("tech", D("90")), Criterion("price", D("10"), is_price=True))
    check_criteria(replace(COMPREHENSIVE, criteria=criteria), services)
    consultation = EvaluationRules(max_candidates=3, price_weight_min=D("0.30"),
                                   price_weight_max=D("0.60"))
    heavy = (Criterion("tech", D("30")), Criterion("price", D("70"), is_price=True))
    with pytest.raises(EvaluationError):
        check_criteria(replace(COMPREHENSIVE, criteria=heavy), consultation)


def test_rule_E7_low_price_first_formula() -> None:
    assert price_score(D("800"), D("800"), D("30")) == D("30.00")
    assert price_score(D("900"), D("800"), D("30")) == D("26.67")   # 26.666…
    assert price_score(D("960"), D("800"), D("30")) == D("25.00")


def test_rule_E1_comprehensive_scoring_full_example() -> None:
    bids = [bid("b1", "800"), bid("b2", "900"), bid("b3", "960", minutes=3)]
    scores = full_scores({
        "b1": {"tech": ["40", "42", "41"], "service": ["15", "16", "17"]},
        "b2": {"tech": ["48", "47", "49"], "service": ["18", "18", "19"]},
        "b3": {"tech": ["45", "45", "46"], "service": ["17", "17", "17"]},
    })
    result = evaluate(bids, COMPREHENSIVE, GP_GOODS, members=MEMBERS, scores=scores)
    b1, b2, b3 = result.bid("b1"), result.bid("b2"), result.bid("b3")
    assert b1.criterion_scores == {"tech": D("41.00"), "service": D("16.00"),
                                   "price": D("30.00")}
    assert b1.total == D("87.00")
    # b2: tech 48, service 18.33 (18.333…), price 26.67 → 93.00
    assert b2.criterion_scores == {"tech": D("48.00"), "service": D("18.33"),
                                   "price": D("26.67")}
    assert b2.technical_score == D("66.33")
    assert b2.total == D("93.00")
    # b3: tech 45.33, service 17, price 25 → 87.33
    assert b3.total == D("87.33")
    assert result.candidates == ("b2", "b3", "b1")
    assert [b.rank for b in result.bids] == [1, 2, 3]


def test_rule_E1_score_out_of_range_is_refused() -> None:
    bids = [bid("b1", "800"), bid("b2", "900"), bid("b3", "960")]
    table = {b.bid_id: {"tech": ["40", "40", "40"], "service": ["10", "10", "10"]}
             for b in bids}
    table["b2"]["service"][1] = "20.01"
    with pytest.raises(EvaluationError) as caught:
        evaluate(bids, COMPREHENSIVE, GP_GOODS, members=MEMBERS, scores=full_scores(table))
    assert caught.value.code == "score_out_of_range"
    assert caught.value.details["member"] == "m2"
    table["b2"]["service"][1] = "-1"
    with pytest.raises(EvaluationError):
        evaluate(bids, COMPREHENSIVE, GP_GOODS, members=MEMBERS, scores=full_scores(table))


def test_rule_E1_only_published_criteria_may_be_scored() -> None:
    bids = [bid("b1", "800"), bid("b2", "900"), bid("b3", "960")]
    scores = full_scores({b.bid_id: {"tech": ["40"] * 3, "service": ["10"] * 3}
                          for b in bids})
    scores.append(Score("m1", "b1", "brand", D("5")))
    with pytest.raises(EvaluationError) as caught:
        evaluate(bids, COMPREHENSIVE, GP_GOODS, members=MEMBERS, scores=scores)
    assert caught.value.code == "unpublished_criterion"


def test_members_may_not_score_the_price_criterion() -> None:
    bids = [bid("b1", "800"), bid("b2", "900"), bid("b3", "960")]
    scores = full_scores({b.bid_id: {"tech": ["40"] * 3, "service": ["10"] * 3}
                          for b in bids})
    scores.append(Score("m1", "b1", "price", D("5")))
    with pytest.raises(EvaluationError) as caught:
        evaluate(bids, COMPREHENSIVE, GP_GOODS, members=MEMBERS, scores=scores)
    assert caught.value.code == "price_criterion_scored"


def test_missing_scores_are_refused() -> None:
    bids = [bid("b1", "800"), bid("b2", "900"), bid("b3", "960")]
    scores = full_scores({b.bid_id: {"tech": ["40"] * 3, "service": ["10"] * 3}
                          for b in bids})
    with pytest.raises(EvaluationError) as caught:
        evaluate(bids, COMPREHENSIVE, GP_GOODS, members=MEMBERS, scores=scores[1:])
    assert caught.value.code == "scores_incomplete"
    assert caught.value.details["missing"] == 1


def test_rule_D5_replaced_members_scores_are_void() -> None:
    bids = [bid("b1", "800"), bid("b2", "900"), bid("b3", "960")]
    table = {b.bid_id: {"tech": ["40", "40", "40"], "service": ["10", "10", "10"]}
             for b in bids}
    scores = full_scores(table)
    # m0 was replaced by m3; m0's extreme scores must not count.
    scores += [Score("m0", "b3", "tech", D("50")), Score("m0", "b3", "service", D("20"))]
    result = evaluate(bids, COMPREHENSIVE, GP_GOODS, members=MEMBERS, replaced=["m0"],
                      scores=scores)
    assert result.bid("b3").criterion_scores["tech"] == D("40.00")
    with pytest.raises(EvaluationError) as caught:
        evaluate(bids, COMPREHENSIVE, GP_GOODS, members=MEMBERS, scores=scores)
    assert caught.value.code == "unknown_member"


def test_trimmed_mean_per_criterion_drops_highest_and_lowest() -> None:
    members = ("m1", "m2", "m3", "m4", "m5")
    terms = replace(COMPREHENSIVE, aggregation=Aggregation.TRIMMED_PER_CRITERION)
    bids = [bid("b1", "800"), bid("b2", "900"), bid("b3", "960")]
    table = {b.bid_id: {"tech": ["10", "40", "41", "42", "50"],
                        "service": ["10", "10", "10", "10", "10"]} for b in bids}
    result = evaluate(bids, terms, GP_GOODS, members=members, scores=full_scores(table, members))
    assert result.bid("b1").criterion_scores["tech"] == D("41.00")


def test_trimmed_member_totals() -> None:
    members = ("m1", "m2", "m3", "m4")
    terms = replace(COMPREHENSIVE, aggregation=Aggregation.TRIMMED_MEMBER_TOTALS)
    bids = [bid("b1", "800"), bid("b2", "900"), bid("b3", "960")]
    table = {b.bid_id: {"tech": ["10", "40", "41", "50"],
                        "service": ["0", "10", "12", "20"]} for b in bids}
    result = evaluate(bids, terms, GP_GOODS, members=members, scores=full_scores(table, members))
    # Member totals 10, 50, 53, 70 → drop 10 and 70 → mean 51.50.
    assert result.bid("b1").technical_score == D("51.50")
    assert result.bid("b1").total == D("81.50")


def test_trimming_needs_three_members() -> None:
    with pytest.raises(EvaluationError) as caught:
        aggregate([D("1"), D("2")], trimmed=True)
    assert caught.value.code == "too_few_members"


def test_comprehensive_tie_broken_by_lower_price_then_receipt() -> None:
    criteria = (Criterion("tech", D("70")), Criterion("price", D("30"), is_price=True))
    terms = replace(COMPREHENSIVE, criteria=criteria)
    # Same price → same price score; same tech → tie; b_early wins on receipt time.
    bids = [bid("b_late", "800", minutes=9), bid("b_early", "800", minutes=2),
            bid("b3", "900")]
    table = {"b_late": {"tech": ["60"] * 3}, "b_early": {"tech": ["60"] * 3},
             "b3": {"tech": ["69"] * 3}}
    result = evaluate(bids, terms, GP_GOODS, members=MEMBERS, scores=full_scores(table))
    # b3: 69 + 26.67 = 95.67 beats 90.00.
    assert result.candidates == ("b3", "b_early", "b_late")


def test_rounding_is_half_up_to_two_places() -> None:
    assert round_score(D("1.005")) == D("1.01")
    assert round_score(D("2.675")) == D("2.68")
    assert aggregate([D("1"), D("1"), D("1.015")], trimmed=False) < D("1.01")
    assert round_score(aggregate([D("1.00"), D("1.01")], trimmed=False)) == D("1.01")


def test_rejected_bid_keeps_its_reasons_and_gets_no_score() -> None:
    bids = [bid("b1", "800"), bid("b2", "900"), bid("b3", "960"),
            bid("over", "1000001")]
    scores = full_scores({b.bid_id: {"tech": ["40"] * 3, "service": ["10"] * 3}
                          for b in bids[:3]})
    result = evaluate(bids, COMPREHENSIVE, GP_GOODS, members=MEMBERS, scores=scores)
    over = result.bid("over")
    assert over.status is BidStatus.REJECTED
    assert over.rejections[0].code == "price_above_budget"
    assert over.total is None and over.rank is None
    assert result.bids[-1].bid_id == "over"


def test_settings_refuse_floats() -> None:
    with pytest.raises(TypeError):
        EvaluationRules(max_candidates=3, abnormally_low_ratio=0.8)
    with pytest.raises(TypeError):
        TenderTerms(method=Method.INQUIRY, budget=1000.0)
    with pytest.raises(ValueError):
        EvaluationRules(max_candidates=0)
