"""The rulebook as data, and one test per rule: broken by one day (or one unit) refused,
met exactly allowed. Instants are Asia/Shanghai wall times; March 2026 has no holidays,
Wednesday 4 March is the usual start."""
from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from trading.calendar import SHANGHAI
from trading.domain import Category, Domain, Procedure
from trading.rulebook import (
    ProjectRules, RulebookError, RuleNotApplicable, RuleViolation, default_rulebook, load_rulebook,
)
from trading import rules_check as rc

RB = default_rulebook()


def sh(m: int, d: int, hh: int = 9, mm: int = 0, y: int = 2026) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SHANGHAI)


def rules(domain: str = "construction", procedure: str = "open_tender", category: str = "works",
          budget: str | None = None, **kw) -> ProjectRules:
    return RB.for_project(domain, procedure, category, budget, **kw)


CW = rules()                                            # construction works, open tender
GP = rules("gp", "open_tender", "goods", "5000000")     # GP goods tender under ¥10M
AS = rules("assets", "listing", "property_rights")      # asset listing


def refused(rule_id: str):
    """pytest.raises for a RuleViolation of ``rule_id``."""
    class _Ctx:
        def __enter__(self):
            self.raises = pytest.raises(RuleViolation)
            self.info = self.raises.__enter__()
            return self.info

        def __exit__(self, *exc):
            result = self.raises.__exit__(*exc)
            assert self.info.value.rule == rule_id, self.info.value.rule
            assert self.info.value.code == "rule_violation"
            return result
    return _Ctx()


# -- the data ---------------------------------------------------------------------------

def test_every_listed_rule_is_in_the_data_with_citation_and_mark():
    wanted = {"A1", "A2", "A3", "A4", "A5", "A6", "A7", "A8", "A9", "B1", "B2", "B7", "B8", "C2",
              "D1", "E3", "E4", "E6", "E7", "E8", "F2", "F3", "F4", "F5", "G2", "G3", "G5", "H3"}
    assert wanted <= set(RB.rule_ids)
    for rule in CW.rules.values():
        assert rule.citation and rule.mark in ("V", "S", "M")


def test_day_kind_per_domain():
    assert RB.day_kind(Domain.CONSTRUCTION) == "calendar"
    assert RB.day_kind(Domain.GOVERNMENT_PROCUREMENT) == "working"
    assert RB.day_kind(Domain.STATE_ASSETS) == "working"


def test_money_and_shares_are_decimals():
    assert CW.rule("B1").decimal("max_ratio") == Decimal("0.02")
    assert CW.rule("B1").decimal("max_amount") == Decimal("800000")
    assert isinstance(GP.rule("E7").decimal("min_price_weight_ratio"), Decimal)


def test_fallback_from_defaults_to_domain_procedure_category():
    services = rules("construction", "open_tender", "services")
    assert services.rule("B1").decimal("max_amount") is None               # no cap: base only
    assert CW.rule("B1").citation.endswith("Art 37")                       # construction/*/works
    assert GP.rule("A1").citation == "政府采购法 Art 35"                     # gp domain
    consult = rules("gp", "consultation", "goods")
    assert consult.rule("E7").decimal("max_price_weight_ratio") == Decimal("0.60")  # d/p/c wins over d/*/c
    assert not consult.applies("A1") and consult.has_step("response")
    assert not rules("gp", "open_tender", "works").applies("E7")


def test_version_is_a_stable_content_hash():
    assert load_rulebook().version == RB.version and len(RB.version) == 16
    assert CW.version == RB.version


def test_override_file_changes_a_number_and_the_version(tmp_path: Path):
    path = tmp_path / "province.toml"
    path.write_text("[rules.A1.periods.bid_preparation]\ndays = 25\n", encoding="utf-8")
    book = load_rulebook([path])
    assert book.version != RB.version
    project = book.for_project("construction", "open_tender", "works")
    assert project.limits_for("bid_preparation", sh(3, 3)).last_day == date(2026, 3, 30)
    assert project.rule("A1").periods["bid_preparation"].kind == "calendar"  # merged, not replaced


def test_holiday_overrides_reach_the_projects_calendar(tmp_path: Path):
    path = tmp_path / "holidays.toml"
    path.write_text('[years.2027]\nnotice = "国务院办公厅关于2027年部分节假日安排的通知"\n'
                    'days_off = ["2027-01-01"]\n', encoding="utf-8")
    book = load_rulebook(holidays=[path])
    assert book.version == RB.version  # holidays are not rule data
    project = book.for_project("construction", "open_tender", "works")
    assert not project.limits_for("contract", sh(12, 20)).provisional


def test_override_with_a_float_is_refused(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text('[rules.B1]\nmax_ratio = 0.03\n', encoding="utf-8")
    with pytest.raises(RulebookError):
        load_rulebook([path])


def test_override_with_an_unknown_scope_is_refused(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text('[rules.B1.by."gp/open-tender"]\nmax_ratio = "0.01"\n', encoding="utf-8")
    with pytest.raises(RulebookError):
        load_rulebook([path])


def test_a_step_may_belong_to_one_rule_only(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text('[rules.B7.periods.contract]\ndays = 1\n', encoding="utf-8")
    with pytest.raises(RulebookError):
        load_rulebook([path])


def test_project_rules_round_trip_through_json():
    pinned = ProjectRules.from_json(GP.to_json())
    assert pinned == GP
    assert pinned.to_json() == GP.to_json()
    assert pinned.limits_for("contract", sh(3, 4)) == GP.limits_for("contract", sh(3, 4))


def test_an_inapplicable_step_says_so():
    with pytest.raises(RuleNotApplicable):
        GP.limits_for("objection", sh(3, 4))
    with pytest.raises(RulebookError):
        rules("construction", "auction", "works")


def test_limits_carry_rule_citation_and_provisional_mark():
    limit = CW.limits_for("contract", sh(12, 20))
    assert (limit.rule, limit.step, limit.citation) == ("E6", "contract", "招标投标法 Arts 45, 46, 47")
    assert limit.provisional  # ends in 2027, a year without an official table
    assert not CW.limits_for("contract", sh(3, 4)).provisional


def test_violation_has_a_stable_shape():
    with refused("A1") as info:
        rc.check_bid_deadline(CW, sh(3, 3), sh(3, 22, 9, 30))
    err = info.value
    assert err.details["rule"] == "A1" and err.details["citation"] == "招标投标法 Art 24"
    assert err.details["limit"]["last_day"] == "2026-03-23"
    assert "招标投标法 Art 24" in err.message_zh and "bid deadline" in err.message_en


# -- A. Publication and deadlines -------------------------------------------------------

def test_rule_A1_deadline_one_day_short_is_refused():
    with refused("A1"):
        rc.check_bid_deadline(CW, sh(3, 3), sh(3, 22, 9, 30))


def test_rule_A1_exactly_twenty_days_is_allowed():
    limit = rc.check_bid_deadline(CW, sh(3, 3, 15), sh(3, 23, 9, 30))
    assert limit.last_day == date(2026, 3, 23) and limit.rule == "A1"


def test_rule_A1_gp_tender_counts_twenty_calendar_days():
    rc.check_bid_deadline(GP, sh(3, 3), sh(3, 23, 9, 30))
    with refused("A1"):
        rc.check_bid_deadline(GP, sh(3, 3), sh(3, 22, 23, 59))


def test_rule_A1_a_last_day_on_a_holiday_moves_the_earliest_deadline():
    # 20 days from 14 Sep 2026 end on Sun 4 Oct, inside 国庆 (1-7 Oct); 8 Oct is next.
    with refused("A1"):
        rc.check_bid_deadline(CW, sh(9, 14), sh(10, 7, 9, 30))
    assert rc.check_bid_deadline(CW, sh(9, 14), sh(10, 8, 9, 30)).moved_from == date(2026, 10, 4)


def test_rule_A2_documents_one_day_short_are_refused():
    with refused("A2"):
        rc.check_document_availability(CW, sh(3, 4), sh(3, 9, 0, 0))  # = 24:00 on 8 March


def test_rule_A2_exactly_five_days_is_allowed():
    rc.check_document_availability(CW, sh(3, 4), sh(3, 10, 0, 0))  # 24:00 on 9 March


def test_rule_A2_gp_counts_five_working_days():
    rc.check_document_availability(GP, sh(3, 4), sh(3, 12, 0, 0))  # 5,6,9,10,11 March
    with refused("A2"):
        rc.check_document_availability(GP, sh(3, 4), sh(3, 11, 17, 0))


def test_rule_A3_clarification_fourteen_days_before_is_refused_with_earliest_deadline():
    with refused("A3") as info:
        rc.check_clarification(CW, sh(3, 3, 10), sh(3, 17, 9, 30))
    assert info.value.details["earliest_bid_deadline"] == "2026-03-18T01:30:00Z"  # 18 March 09:30


def test_rule_A3_clarification_exactly_fifteen_days_before_is_allowed():
    assert rc.check_clarification(CW, sh(3, 3, 10), sh(3, 18, 9, 30)) == sh(3, 18, 9, 30)


def test_rule_A3_moving_the_deadline_makes_the_clarification_allowed():
    earliest = rc.earliest_deadline_after_clarification(CW, sh(3, 3, 10), sh(3, 10, 9, 30))
    assert earliest == sh(3, 18, 9, 30)
    assert rc.check_clarification(CW, sh(3, 3, 10), sh(3, 10, 9, 30), new_bid_deadline=earliest) == earliest
    with refused("A3"):
        rc.check_clarification(CW, sh(3, 3, 10), sh(3, 10, 9, 30), new_bid_deadline=sh(3, 17, 9, 30))


def test_rule_A3_a_clarification_not_affecting_preparation_needs_no_move():
    assert rc.check_clarification(CW, sh(3, 16), sh(3, 18), affects_preparation=False) == sh(3, 18)


def test_rule_A3_prequalification_needs_three_days():
    rc.check_clarification(CW, sh(3, 2), sh(3, 5, 9), prequalification=True)
    with refused("A3"):
        rc.check_clarification(CW, sh(3, 2), sh(3, 4, 9), prequalification=True)


def test_rule_A4_objection_deadline_nine_days_before_is_refused():
    with refused("A4"):
        rc.check_objection_deadline(CW, sh(3, 14, 17), sh(3, 23, 9, 30))


def test_rule_A4_objection_deadline_exactly_ten_days_before_is_allowed():
    rc.check_objection_deadline(CW, sh(3, 13, 17), sh(3, 23, 9, 30))
    assert CW.latest_start("objection", sh(3, 23, 9, 30)).last_day == date(2026, 3, 13)


def test_rule_A4_reply_within_three_days():
    rc.check_step(CW, "objection_reply", sh(3, 2, 10), sh(3, 5, 23, 59))
    with refused("A4"):
        rc.check_step(CW, "objection_reply", sh(3, 2, 10), sh(3, 6, 0, 0))


def test_rule_A5_two_qualified_applicants_means_retender():
    with refused("A5") as info:
        rc.check_prequalified(CW, 2)
    assert info.value.details["outcome"] == "retender"
    rc.check_prequalified(CW, 3)


def test_rule_A5_invitation_tender_invites_at_least_three():
    invited = rules("construction", "invited_tender", "works")
    with refused("A5"):
        rc.check_invitations(invited, 2)
    rc.check_invitations(invited, 3)


def test_rule_A6_bidders_and_their_number_are_concealed_until_the_deadline():
    assert set(CW.rule("A6").get("conceal_until_deadline")) >= {"bidders", "bid_count"}
    assert GP.applies("A6")


def test_rule_A7_minimum_price_is_refused_and_maximum_price_required():
    with refused("A7"):
        rc.check_price_limits(CW, Decimal("1000000"), min_price=Decimal("800000"))
    with refused("A7"):
        rc.check_price_limits(CW, None)
    rc.check_price_limits(CW, None, max_price_formula="budget × 0.95")
    rc.check_price_limits(GP, None)  # GP: optional maximum
    with refused("A7"):
        rc.check_price_limits(GP, None, min_price=Decimal("1"))


def test_rule_A8_bid_validity_counts_from_the_deadline():
    assert CW.rule("A8").get("validity_counted_from") == "bid_deadline"


def test_rule_A9_gp_notice_four_working_days_is_refused():
    with refused("A9"):
        rc.check_notice_period(GP, sh(3, 4), sh(3, 11, 0, 0))


def test_rule_A9_gp_notice_exactly_five_working_days_is_allowed():
    rc.check_notice_period(GP, sh(3, 4), sh(3, 12, 0, 0))
    assert not CW.applies("A9")


# -- B. Submission and security ---------------------------------------------------------

def test_rule_B1_security_above_two_percent_is_refused():
    with refused("B1"):
        rc.check_bid_security(CW, Decimal("200000.01"), Decimal("10000000"))


def test_rule_B1_exactly_two_percent_is_allowed():
    rc.check_bid_security(CW, Decimal("200000"), Decimal("10000000"))


def test_rule_B1_construction_works_cap_of_800k():
    rc.check_bid_security(CW, Decimal("800000"), Decimal("50000000"))
    with refused("B1"):
        rc.check_bid_security(CW, Decimal("800000.01"), Decimal("50000000"))
    # GP has no cap: 2% of the budget only.
    rc.check_bid_security(rules("gp", "open_tender", "goods", "50000000"), Decimal("1000000"))


def test_rule_B1_money_must_be_decimal():
    with pytest.raises(TypeError):
        rc.check_bid_security(CW, 1000.0, Decimal("10000000"))  # type: ignore[arg-type]


def test_rule_B2_bid_change_at_the_deadline_is_refused():
    rc.check_bid_change(CW, sh(3, 23, 9, 29), sh(3, 23, 9, 30))
    with refused("B2"):
        rc.check_bid_change(CW, sh(3, 23, 9, 30), sh(3, 23, 9, 30))


def test_rule_B2_withdrawal_refund_on_day_six_is_refused():
    with refused("B2"):
        rc.check_withdrawal_refund(CW, sh(3, 4), sh(3, 10, 0, 0))


def test_rule_B2_withdrawal_refund_on_day_five_is_allowed():
    rc.check_withdrawal_refund(CW, sh(3, 4), sh(3, 9, 23, 59))


def test_rule_B7_performance_security_above_ten_percent_is_refused():
    with refused("B7"):
        rc.check_performance_security(CW, Decimal("100000.01"), Decimal("1000000"))
    rc.check_performance_security(CW, Decimal("100000"), Decimal("1000000"))


def test_rule_B8_construction_refund_within_five_days_of_contract():
    rc.check_security_refund(CW, winner=False, start=sh(3, 4), refunded_at=sh(3, 9, 23, 59))
    with refused("B8"):
        rc.check_security_refund(CW, winner=False, start=sh(3, 4), refunded_at=sh(3, 10, 0, 0))
    assert CW.rule("B8").flag("with_interest")


def test_rule_B8_gp_losers_within_five_working_days_of_award_notice():
    assert GP.rule("B8").periods["loser_refund"].from_event == "award_notice"
    rc.check_security_refund(GP, winner=False, start=sh(3, 4), refunded_at=sh(3, 11, 23, 59))
    with refused("B8"):
        rc.check_security_refund(GP, winner=True, start=sh(3, 4), refunded_at=sh(3, 12, 0, 0))


# -- C. Opening -------------------------------------------------------------------------

def test_rule_C2_two_bids_no_opening_construction_retenders():
    with refused("C2") as info:
        rc.check_opening_minimum(CW, 2)
    assert info.value.details["outcome"] == "retender"
    assert rc.check_opening_minimum(CW, 3).may_open


def test_rule_C2_two_bids_gp_fails():
    decision = rc.opening_decision(GP, 2)
    assert not decision.may_open and decision.outcome == "failed"
    assert rc.opening_decision(rules("gp", "single_source", "goods"), 1).may_open


# -- D. Committee -----------------------------------------------------------------------

def test_rule_D1_four_members_refused_five_allowed():
    with refused("D1"):
        rc.check_committee(CW, 4, 4)
    rc.check_committee(CW, 5, 4)


def test_rule_D1_even_size_and_too_few_experts_refused():
    with refused("D1"):
        rc.check_committee(CW, 6, 6)
    with refused("D1"):
        rc.check_committee(CW, 5, 3)  # 3/5 < 2/3
    rc.check_committee(CW, 7, 5)      # 5/7 ≥ 2/3


def test_rule_D1_gp_budget_of_ten_million_needs_seven():
    big = rules("gp", "open_tender", "goods", "10000000")
    with refused("D1"):
        rc.check_committee(big, 5, 4)
    rc.check_committee(big, 7, 5)
    rc.check_committee(rules("gp", "open_tender", "goods", "9999999.99"), 5, 4)
    rc.check_committee(rules("gp", "open_tender", "goods", "1000000", complex=True), 7, 5)
    with refused("D1"):
        rc.check_committee(rules("gp", "open_tender", "goods", "1000000", complex=True), 5, 4)


def test_rule_D1_gp_negotiation_group_of_three():
    negotiation = rules("gp", "negotiation", "services", "20000000")
    rc.check_committee(negotiation, 3, 2)
    with refused("D1"):
        rc.check_committee(negotiation, 2, 2)


# -- E. Evaluation and award ------------------------------------------------------------

def test_rule_E3_four_candidates_refused():
    with refused("E3"):
        rc.check_candidates(CW, 4, members=5, signed=5)
    rc.check_candidates(CW, 3, members=5, signed=4, written_dissents=1)
    with refused("E3"):
        rc.check_candidates(CW, 3, members=5, signed=4)


def test_rule_E4_publicity_starting_on_day_four_is_refused():
    with refused("E4"):
        rc.check_publicity(CW, sh(3, 2, 10), sh(3, 6, 0, 0), sh(3, 10, 0, 0))


def test_rule_E4_publicity_of_exactly_three_days_is_allowed():
    rc.check_publicity(CW, sh(3, 2, 10), sh(3, 2, 16), sh(3, 6, 0, 0))   # 3,4,5 March
    with refused("E4"):
        rc.check_publicity(CW, sh(3, 2, 10), sh(3, 2, 16), sh(3, 5, 23, 59))
    assert not GP.applies("E4")


def test_rule_E6_contract_on_day_thirty_allowed_day_thirty_one_refused():
    rc.check_contract_time(CW, sh(3, 4), sh(4, 3, 18))
    with refused("E6"):
        rc.check_contract_time(CW, sh(3, 4), sh(4, 4, 0, 0))


def test_rule_E6_report_within_fifteen_days():
    rc.check_report_time(CW, sh(3, 4), sh(3, 19, 23, 59))
    with refused("E6"):
        rc.check_report_time(CW, sh(3, 4), sh(3, 20, 0, 0))
    assert rc.check_report_time(GP, sh(3, 4), sh(5, 1)) is None  # no such limit in GP


def test_rule_E6_gp_award_within_five_working_days_of_report():
    rc.check_award_time(GP, sh(3, 4), sh(3, 11, 23, 59))
    with refused("E6"):
        rc.check_award_time(GP, sh(3, 4), sh(3, 12, 0, 0))


def test_rule_E7_gp_goods_price_weight_below_thirty_percent_refused():
    rc.check_price_weight(GP, Decimal("0.30"))
    with refused("E7"):
        rc.check_price_weight(GP, Decimal("0.29"))


def test_rule_E7_services_and_consultation_bounds():
    services = rules("gp", "open_tender", "services")
    rc.check_price_weight(services, Decimal("0.10"))
    with refused("E7"):
        rc.check_price_weight(services, Decimal("0.09"))
    consult = rules("gp", "consultation", "goods")
    rc.check_price_weight(consult, Decimal("0.60"))
    with refused("E7"):
        rc.check_price_weight(consult, Decimal("0.61"))


def test_rule_E8_construction_complaint_within_ten_days():
    # 14 March is a Saturday: the last day moves to Monday 16 March.
    rc.check_complaint(CW, "complaint", sh(3, 4), sh(3, 16, 23, 59))
    with refused("E8"):
        rc.check_complaint(CW, "complaint", sh(3, 4), sh(3, 17, 0, 0))


def test_rule_E8_gp_question_within_seven_working_days():
    rc.check_complaint(GP, "question", sh(3, 4), sh(3, 13, 23, 59))
    with refused("E8"):
        rc.check_complaint(GP, "question", sh(3, 4), sh(3, 14, 0, 0))
    assert GP.limits_for("complaint", sh(3, 4)).kind == "working"
    assert not GP.has_step("complaint_acceptance")


# -- F. GP methods ----------------------------------------------------------------------

def test_rule_F2_negotiation_with_two_suppliers_refused():
    negotiation = rules("gp", "negotiation", "goods")
    with refused("F2"):
        rc.check_invitations(negotiation, 2)
    rc.check_invitations(negotiation, 3)


def test_rule_F3_negotiation_response_time_of_three_working_days():
    negotiation = rules("gp", "negotiation", "goods")
    rc.check_bid_deadline(negotiation, sh(3, 4), sh(3, 9, 9))
    with refused("F3"):
        rc.check_bid_deadline(negotiation, sh(3, 4), sh(3, 6, 17))


def test_rule_F3_consultation_ten_days_and_single_source_publicity():
    consult = rules("gp", "consultation", "services")
    rc.check_bid_deadline(consult, sh(3, 4), sh(3, 16, 9))       # 14th is Saturday → 16th
    with refused("F3"):
        rc.check_bid_deadline(consult, sh(3, 4), sh(3, 15, 9))
    single = rules("gp", "single_source", "goods")
    rc.check_bid_deadline(single, sh(3, 4), sh(3, 12, 0, 0))     # lasts 5 working days
    with refused("F3"):
        rc.check_bid_deadline(single, sh(3, 4), sh(3, 11, 23, 59))


def test_rule_F4_inquiry_allows_one_price():
    inquiry = rules("gp", "inquiry", "goods")
    rc.check_price_quotes(inquiry, 1)
    with refused("F4"):
        rc.check_price_quotes(inquiry, 2)
    assert inquiry.rule("F4").get("award_rule") == "lowest_compliant_price"


def test_rule_F5_all_bids_above_budget_fail():
    with refused("F5") as info:
        rc.check_bids_within_budget(GP, [Decimal("5000000.01"), Decimal("6000000")])
    assert info.value.details["outcome"] == "failed"
    rc.check_bids_within_budget(GP, [Decimal("5000000"), Decimal("6000000")])
    rc.check_bids_within_budget(CW, [Decimal("9e9")], Decimal("1"))  # not a GP rule


# -- G. State-owned assets --------------------------------------------------------------

def test_rule_G2_first_floor_below_appraisal_refused():
    with refused("G2"):
        rc.check_floor_price(AS, Decimal("999999.99"), Decimal("1000000"))
    rc.check_floor_price(AS, Decimal("1000000"), Decimal("1000000"))


def test_rule_G2_later_floor_below_ninety_percent_needs_approval():
    rc.check_floor_price(AS, Decimal("900000"), Decimal("1000000"), first=False)
    with refused("G2"):
        rc.check_floor_price(AS, Decimal("899999.99"), Decimal("1000000"), first=False)
    rc.check_floor_price(AS, Decimal("800000"), Decimal("1000000"), first=False, approval="国资委批复 2026-12")


def test_rule_G3_listing_of_nineteen_working_days_refused():
    # From Wed 4 March, 20 working days end on Wed 1 April.
    with refused("G3"):
        rc.check_bid_deadline(AS, sh(3, 4), sh(4, 1, 17))
    rc.check_bid_deadline(AS, sh(3, 4), sh(4, 2, 0, 0))
    rc.check_listing_extension(AS, sh(4, 2, 0, 0), sh(4, 10, 0, 0))  # 2,3,7,8,9 April (4-6 清明)
    with refused("G3"):
        rc.check_listing_extension(AS, sh(4, 2, 0, 0), sh(4, 9, 17))


def test_rule_G5_down_payment_and_payment_time():
    rc.check_down_payment(AS, Decimal("300000"), Decimal("1000000"), guarantee=True)
    with refused("G5"):
        rc.check_down_payment(AS, Decimal("299999.99"), Decimal("1000000"), guarantee=True)
    with refused("G5"):
        rc.check_down_payment(AS, Decimal("300000"), Decimal("1000000"), guarantee=False)
    rc.check_step(AS, "payment", sh(3, 4), sh(3, 11, 23, 59))
    with refused("G5"):
        rc.check_step(AS, "payment", sh(3, 4), sh(3, 12, 0, 0))
    assert AS.limits_for("balance", sh(3, 16)).last_day == date(2027, 3, 16)


# -- H. Supervision ---------------------------------------------------------------------

def test_rule_H3_gp_suspension_of_thirty_one_days_refused():
    rc.check_suspension(GP, sh(3, 4), sh(4, 3, 23, 59))
    with refused("H3"):
        rc.check_suspension(GP, sh(3, 4), sh(4, 4, 0, 0))
    assert rc.check_suspension(CW, sh(3, 4), sh(9, 1)) is None  # no maximum in construction


# -- publication as a whole -------------------------------------------------------------

def test_publication_collects_every_violation():
    pub = rc.Publication(
        published_at=sh(3, 3), bid_deadline=sh(3, 22, 9, 30), documents_until=sh(3, 6),
        objection_deadline=sh(3, 20), bid_security=Decimal("900000"), security_base=Decimal("50000000"),
        min_price=Decimal("1"), max_price=Decimal("2"),
    )
    found = [v.rule for v in rc.publication_violations(CW, pub)]
    assert found == ["A1", "A2", "A4", "B1", "A7"]
    with refused("A1") as info:
        rc.check_publication(CW, pub)
    assert info.value.details["others"] == ["A2", "A4", "B1", "A7"]


def test_publication_that_meets_every_rule_passes():
    pub = rc.Publication(
        published_at=sh(3, 3), bid_deadline=sh(3, 23, 9, 30), documents_until=sh(3, 10, 0, 0),
        objection_deadline=sh(3, 13, 17), bid_security=Decimal("200000"),
        security_base=Decimal("10000000"), max_price=Decimal("9500000"),
    )
    assert rc.publication_violations(CW, pub) == []
    rc.check_publication(CW, pub)
    assert datetime(2026, 3, 23, 1, 30, tzinfo=timezone.utc) == pub.bid_deadline
