"""Recusal (回避, RULES D3) and expert qualification (RULES D6)."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timezone

import pytest

from trading.draw import build_eligible_lists, group_filter, make_request
from trading.recusal import (
    Bidder, Employment, ExpertRecord, OrgRole, Parties, QualificationCode,
    QualificationParameters, Reason, RecusalCode, RecusalParameters, Relative, RoleKind,
    Service, TitleLevel, exclusion_reasons, local_date, qualification_reasons,
    recusal_reasons, years_before,
)

# 2026-05-01 09:30 in Asia/Shanghai.
NOW = datetime(2026, 5, 1, 1, 30, tzinfo=timezone.utc)
PARAMS = RecusalParameters(interest_years=3, service_limit=2, service_window_days=365)
QUALIFY = QualificationParameters(min_years_in_field=8, min_title=TitleLevel.ASSOCIATE_SENIOR)
PARTIES = Parties(
    tenderee="TENDEREE-1",
    bidders=(Bidder("BIDDER-A", "Zhang San"), Bidder("BIDDER-B", "Li Si")),
    supervisory_body="SUPERVISOR-1",
)
CLEAN = ExpertRecord(
    id="X001", specialties=frozenset({"A01"}), region="430400",
    field_since=date(2010, 1, 1), title=TitleLevel.SENIOR,
    employments=(Employment("UNIVERSITY-9", date(2005, 9, 1)),),
)


def reasons_of(expert: ExpertRecord, params: RecusalParameters = PARAMS) -> set[Reason]:
    return set(recusal_reasons(expert, PARTIES, NOW, params))


def test_clean_expert_has_no_reason() -> None:
    assert reasons_of(CLEAN) == set()
    assert exclusion_reasons(CLEAN, PARTIES, NOW, PARAMS, QUALIFY) == frozenset()


def test_rule_D3_employment_within_three_years_recuses() -> None:
    expert = replace(CLEAN, employments=(
        Employment("BIDDER-A", date(2015, 1, 1), date(2024, 6, 30)),))
    assert reasons_of(expert) == {Reason(RecusalCode.EMPLOYED_BY_BIDDER, "D3", "BIDDER-A")}


def test_rule_D3_current_employment_at_a_bidder_recuses() -> None:
    expert = replace(CLEAN, employments=(Employment("BIDDER-B", date(2020, 1, 1)),))
    assert reasons_of(expert) == {Reason(RecusalCode.EMPLOYED_BY_BIDDER, "D3", "BIDDER-B")}


def test_rule_D3_employment_ending_exactly_three_years_ago_still_recuses() -> None:
    # Today is 2026-05-01 in Shanghai; the boundary day counts (doubt favours recusal).
    expert = replace(CLEAN, employments=(
        Employment("BIDDER-A", date(2015, 1, 1), date(2023, 5, 1)),))
    assert reasons_of(expert) == {Reason(RecusalCode.EMPLOYED_BY_BIDDER, "D3", "BIDDER-A")}


def test_rule_D3_employment_ended_more_than_three_years_ago_does_not_recuse() -> None:
    expert = replace(CLEAN, employments=(
        Employment("BIDDER-A", date(2015, 1, 1), date(2023, 4, 30)),))
    assert reasons_of(expert) == set()


def test_rule_D3_the_look_back_comes_from_the_parameters() -> None:
    expert = replace(CLEAN, employments=(
        Employment("BIDDER-A", date(2015, 1, 1), date(2023, 4, 30)),))
    longer = replace(PARAMS, interest_years=5)
    assert reasons_of(expert, longer) == {
        Reason(RecusalCode.EMPLOYED_BY_BIDDER, "D3", "BIDDER-A")}


def test_rule_D3_employment_at_the_tenderee_recuses() -> None:
    expert = replace(CLEAN, employments=(
        Employment("TENDEREE-1", date(2019, 1, 1), date(2025, 1, 1)),))
    assert reasons_of(expert) == {
        Reason(RecusalCode.EMPLOYED_BY_TENDEREE, "D3", "TENDEREE-1")}


def test_rule_D3_director_within_three_years_recuses() -> None:
    expert = replace(CLEAN, roles=(
        OrgRole("BIDDER-A", RoleKind.DIRECTOR, date(2018, 1, 1), date(2024, 1, 1)),))
    assert reasons_of(expert) == {Reason(RecusalCode.DIRECTOR_OF_BIDDER, "D3", "BIDDER-A")}


def test_rule_D3_control_of_a_bidder_recuses() -> None:
    expert = replace(CLEAN, roles=(
        OrgRole("BIDDER-B", RoleKind.CONTROLLER, date(2021, 1, 1)),))
    assert reasons_of(expert) == {Reason(RecusalCode.CONTROLS_BIDDER, "D3", "BIDDER-B")}


def test_rule_D3_old_director_role_does_not_recuse() -> None:
    expert = replace(CLEAN, roles=(
        OrgRole("BIDDER-A", RoleKind.DIRECTOR, date(2010, 1, 1), date(2020, 1, 1)),))
    assert reasons_of(expert) == set()


def test_rule_D3_family_tie_to_a_legal_representative_recuses() -> None:
    # Person keys compare after trimming and case-folding.
    expert = replace(CLEAN, relatives=(Relative(" zhang san ", "spouse"),))
    assert reasons_of(expert) == {
        Reason(RecusalCode.RELATIVE_OF_LEGAL_REPRESENTATIVE, "D3", "BIDDER-A")}


def test_rule_D3_relative_working_at_a_bidder_recuses() -> None:
    expert = replace(CLEAN, relatives=(
        Relative("Wang Wu", "brother", frozenset({"BIDDER-B", "OTHER"})),))
    assert reasons_of(expert) == {Reason(RecusalCode.RELATIVE_AT_BIDDER, "D3", "BIDDER-B")}


def test_rule_D3_staff_of_the_supervising_department_recuses() -> None:
    flagged = replace(CLEAN, supervisory_staff=True)
    assert reasons_of(flagged) == {
        Reason(RecusalCode.SUPERVISORY_STAFF, "D3", "SUPERVISOR-1")}
    employed = replace(CLEAN, employments=(Employment("SUPERVISOR-1", date(2022, 3, 1)),))
    assert reasons_of(employed) == {
        Reason(RecusalCode.SUPERVISORY_STAFF, "D3", "SUPERVISOR-1")}


def test_rule_D3_too_many_recent_services_to_the_tenderee_recuses() -> None:
    expert = replace(CLEAN, services=(
        Service("TENDEREE-1", date(2025, 9, 1)), Service("TENDEREE-1", date(2026, 4, 1))))
    assert reasons_of(expert) == {
        Reason(RecusalCode.TOO_MANY_SERVICES_TO_TENDEREE, "D3", "TENDEREE-1")}


def test_rule_D3_services_outside_the_window_or_to_others_do_not_count() -> None:
    expert = replace(CLEAN, services=(
        Service("TENDEREE-1", date(2025, 5, 1)),   # 366 days ago: outside a 365-day window
        Service("TENDEREE-1", date(2026, 4, 1)),
        Service("TENDEREE-2", date(2026, 4, 2)),
    ))
    assert reasons_of(expert) == set()
    # The window's first day counts: 2025-05-02 is day 365 back, inclusive.
    on_edge = replace(expert, services=(
        Service("TENDEREE-1", date(2025, 5, 2)), Service("TENDEREE-1", date(2026, 4, 1))))
    assert RecusalCode.TOO_MANY_SERVICES_TO_TENDEREE in {r.code for r in reasons_of(on_edge)}


def test_rule_D3_service_limit_is_off_without_parameters() -> None:
    expert = replace(CLEAN, services=tuple(
        Service("TENDEREE-1", date(2026, 4, d)) for d in range(1, 10)))
    assert reasons_of(expert, RecusalParameters(interest_years=3)) == set()


def test_rule_D3_every_reason_is_reported() -> None:
    expert = replace(
        CLEAN,
        employments=(Employment("BIDDER-A", date(2020, 1, 1)),),
        roles=(OrgRole("BIDDER-B", RoleKind.DIRECTOR, date(2020, 1, 1)),),
        relatives=(Relative("Li Si", "father"),),
        supervisory_staff=True,
    )
    assert {r.code for r in reasons_of(expert)} == {
        RecusalCode.EMPLOYED_BY_BIDDER, RecusalCode.DIRECTOR_OF_BIDDER,
        RecusalCode.RELATIVE_OF_LEGAL_REPRESENTATIVE, RecusalCode.SUPERVISORY_STAFF}


def test_rule_D6_fewer_than_eight_years_in_the_field_disqualifies() -> None:
    junior = replace(CLEAN, field_since=date(2018, 5, 2))
    assert qualification_reasons(junior, NOW, QUALIFY) == {
        Reason(QualificationCode.INSUFFICIENT_EXPERIENCE, "D6")}
    exactly_eight = replace(CLEAN, field_since=date(2018, 5, 1))
    assert qualification_reasons(exactly_eight, NOW, QUALIFY) == frozenset()


def test_rule_D6_senior_title_required() -> None:
    intermediate = replace(CLEAN, title=TitleLevel.INTERMEDIATE)
    assert qualification_reasons(intermediate, NOW, QUALIFY) == {
        Reason(QualificationCode.TITLE_TOO_LOW, "D6")}
    associate = replace(CLEAN, title=TitleLevel.ASSOCIATE_SENIOR)
    assert qualification_reasons(associate, NOW, QUALIFY) == frozenset()


def test_rule_D6_numbers_come_from_the_parameters() -> None:
    expert = replace(CLEAN, field_since=date(2020, 1, 1), title=TitleLevel.INTERMEDIATE)
    lenient = QualificationParameters(min_years_in_field=5, min_title=TitleLevel.INTERMEDIATE)
    assert qualification_reasons(expert, NOW, lenient) == frozenset()


def test_dates_are_taken_in_shanghai() -> None:
    # 2026-04-30 17:00 UTC is already 1 May in Shanghai.
    assert local_date(datetime(2026, 4, 30, 17, 0, tzinfo=timezone.utc)) == date(2026, 5, 1)
    with pytest.raises(ValueError):
        local_date(datetime(2026, 5, 1))


def test_years_before_handles_leap_day() -> None:
    assert years_before(date(2028, 2, 29), 3) == date(2025, 2, 28)
    assert years_before(date(2026, 5, 1), 3) == date(2023, 5, 1)


def test_parameters_are_checked() -> None:
    with pytest.raises(ValueError):
        RecusalParameters(interest_years=3, service_limit=2)
    with pytest.raises(ValueError):
        RecusalParameters(interest_years=-1)


def test_recusal_feeds_the_draw_eligibility() -> None:
    conflicted = replace(CLEAN, id="X002", employments=(Employment("BIDDER-A", date(2025, 1, 1)),))
    unqualified = replace(CLEAN, id="X003", title=TitleLevel.JUNIOR)
    other = replace(CLEAN, id="X004")
    request = make_request("T1", "L1", [{"specialty": "A01", "count": 1}])

    def eligible(expert: ExpertRecord, group) -> bool:
        return group_filter(expert.specialties, expert.region, group) and not \
            exclusion_reasons(expert, PARTIES, NOW, PARAMS, QUALIFY)

    lists = build_eligible_lists(request, [conflicted, unqualified, other, CLEAN], eligible)
    assert lists == [["X001", "X004"], ["X001", "X004"]]
