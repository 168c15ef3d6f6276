"""The project state machine: statuses derived at named instants, next_check, and every
transition with its refusals (stable codes)."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from trading import lifecycle as lc
from trading.calendar import SHANGHAI
from trading.domain import Domain, Procedure, Status

# Named instants in the life of a tender (CTFd tests/constants/time.py style).
BEFORE_PUBLICATION = datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI)
PUBLISHED_AT = datetime(2026, 3, 3, 9, 0, tzinfo=SHANGHAI)
DOCUMENTS_FROM = datetime(2026, 3, 4, 9, 0, tzinfo=SHANGHAI)
BID_DEADLINE = datetime(2026, 3, 24, 9, 30, tzinfo=SHANGHAI)
JUST_BEFORE_DEADLINE = BID_DEADLINE - timedelta(microseconds=1)
AT_DEADLINE = BID_DEADLINE
AFTER_DEADLINE = BID_DEADLINE + timedelta(hours=1)
OPENING_DONE = BID_DEADLINE + timedelta(hours=2)
REPORT_AT = datetime(2026, 3, 26, 17, 0, tzinfo=SHANGHAI)
PUBLICITY_AT = datetime(2026, 3, 27, 9, 0, tzinfo=SHANGHAI)
PUBLICITY_END = datetime(2026, 3, 31, 0, 0, tzinfo=SHANGHAI)
AWARD_AT = datetime(2026, 3, 31, 10, 0, tzinfo=SHANGHAI)
CONTRACT_AT = datetime(2026, 4, 10, 10, 0, tzinfo=SHANGHAI)

CONSTRUCTION = (Domain.CONSTRUCTION, Procedure.OPEN_TENDER)
GP_TENDER = (Domain.GOVERNMENT_PROCUREMENT, Procedure.OPEN_TENDER)
SCHEDULE = lc.Schedule(documents_from=DOCUMENTS_FROM, documents_until=DOCUMENTS_FROM + timedelta(days=6),
                       objection_deadline=datetime(2026, 3, 13, 17, tzinfo=SHANGHAI),
                       bid_deadline=BID_DEADLINE, evaluation_due=REPORT_AT + timedelta(days=1))
PUBLISHED = lc.Milestones(published_at=PUBLISHED_AT)


def status(milestones: lc.Milestones, now: datetime, procedure=CONSTRUCTION, schedule=SCHEDULE) -> Status:
    return lc.derive_status(procedure, schedule, milestones, now)


def step(milestones: lc.Milestones, action: str, now: datetime, procedure=CONSTRUCTION,
         schedule=SCHEDULE, **kw) -> lc.Milestones:
    return lc.transition(procedure, schedule, milestones, action, now, **kw)


def refused(code: str):
    class _Ctx:
        def __enter__(self):
            self.raises = pytest.raises(lc.TransitionRefused)
            self.info = self.raises.__enter__()
            return self.info

        def __exit__(self, *exc):
            result = self.raises.__exit__(*exc)
            assert self.info.value.code == code, self.info.value.code
            return result
    return _Ctx()


def through_opening() -> lc.Milestones:
    m = step(PUBLISHED, "start_opening", AT_DEADLINE)
    return step(m, "finish_opening", OPENING_DONE)


def through_report(procedure=CONSTRUCTION) -> lc.Milestones:
    m = step(PUBLISHED, "start_opening", AT_DEADLINE, procedure)
    m = step(m, "finish_opening", OPENING_DONE, procedure)
    return step(m, "submit_report", REPORT_AT, procedure)


# -- derived statuses at named instants -------------------------------------------------

@pytest.mark.parametrize("now, expected", [
    (BEFORE_PUBLICATION, Status.DRAFT),        # as of then, the publication had not happened
    (PUBLISHED_AT, Status.PUBLISHED),
    (DOCUMENTS_FROM, Status.BIDDING),
    (JUST_BEFORE_DEADLINE, Status.BIDDING),
    (AT_DEADLINE, Status.CLOSED),
    (AFTER_DEADLINE, Status.CLOSED),
])
def test_timed_statuses_at_named_instants(now, expected):
    assert status(PUBLISHED, now) == expected


def test_a_draft_stays_a_draft_whatever_the_time():
    assert status(lc.Milestones(), AFTER_DEADLINE) == Status.DRAFT


def test_without_documents_from_bidding_starts_at_publication():
    schedule = replace(SCHEDULE, documents_from=None)
    assert status(PUBLISHED, PUBLISHED_AT, schedule=schedule) == Status.BIDDING


def test_procedures_without_opening_go_to_evaluation_at_the_deadline():
    for procedure in (Procedure.SINGLE_SOURCE, Procedure.LISTING_AGREEMENT):
        assert status(PUBLISHED, JUST_BEFORE_DEADLINE, procedure) == Status.BIDDING
        assert status(PUBLISHED, AT_DEADLINE, procedure) == Status.EVALUATION


def test_recorded_steps_decide_after_the_deadline():
    m = step(PUBLISHED, "start_opening", AT_DEADLINE)
    assert status(m, AT_DEADLINE) == Status.OPENING
    m = step(m, "finish_opening", OPENING_DONE)
    assert status(m, OPENING_DONE) == Status.EVALUATION


def test_status_as_of_a_past_instant_ignores_later_facts():
    m = through_opening()
    assert status(m, AFTER_DEADLINE) == Status.OPENING
    assert status(m, JUST_BEFORE_DEADLINE) == Status.BIDDING


def test_naive_now_is_refused():
    with pytest.raises(ValueError):
        status(PUBLISHED, datetime(2026, 3, 5, 9, 0))


# -- next_check ---------------------------------------------------------------------------

def test_next_check_is_the_next_timed_change():
    assert lc.next_check(CONSTRUCTION, SCHEDULE, PUBLISHED, PUBLISHED_AT) == DOCUMENTS_FROM
    assert lc.next_check(CONSTRUCTION, SCHEDULE, PUBLISHED, DOCUMENTS_FROM) == BID_DEADLINE
    assert lc.next_check(CONSTRUCTION, SCHEDULE, PUBLISHED, JUST_BEFORE_DEADLINE) == BID_DEADLINE
    assert lc.next_check(CONSTRUCTION, SCHEDULE, PUBLISHED, AT_DEADLINE) is None


def test_no_next_check_for_drafts_suspensions_and_final_states():
    assert lc.next_check(CONSTRUCTION, SCHEDULE, lc.Milestones(), PUBLISHED_AT) is None
    suspended = step(PUBLISHED, "suspend", DOCUMENTS_FROM, reason="complaint")
    assert lc.next_check(CONSTRUCTION, SCHEDULE, suspended, DOCUMENTS_FROM) is None
    cancelled = step(PUBLISHED, "cancel", DOCUMENTS_FROM, reason="budget withdrawn")
    assert lc.next_check(CONSTRUCTION, SCHEDULE, cancelled, DOCUMENTS_FROM) is None


def test_next_check_returns_aware_utc():
    at = lc.next_check(Procedure.OPEN_TENDER, SCHEDULE, PUBLISHED, PUBLISHED_AT)
    assert at.tzinfo == timezone.utc


# -- the happy paths --------------------------------------------------------------------

def test_construction_path_publish_to_contract():
    m = step(lc.Milestones(), "publish", PUBLISHED_AT)
    assert m.published_at == PUBLISHED_AT and status(m, PUBLISHED_AT) == Status.PUBLISHED
    m = step(m, "start_opening", AT_DEADLINE)
    m = step(m, "finish_opening", OPENING_DONE)
    m = step(m, "submit_report", REPORT_AT)
    with_publicity = replace(SCHEDULE, publicity_start=PUBLICITY_AT, publicity_end=PUBLICITY_END)
    m = step(m, "start_publicity", PUBLICITY_AT, new_schedule=with_publicity)
    assert status(m, PUBLICITY_AT, schedule=with_publicity) == Status.PUBLICITY
    m = step(m, "award", AWARD_AT, schedule=with_publicity)
    assert status(m, AWARD_AT) == Status.AWARDED
    m = step(m, "sign_contract", CONTRACT_AT)
    assert status(m, CONTRACT_AT) == Status.CONTRACTED


def test_gp_tender_awards_without_candidate_publicity():
    m = through_report(GP_TENDER)
    with refused("no_publicity_in_procedure"):
        step(m, "start_publicity", PUBLICITY_AT, GP_TENDER)
    m = step(m, "award", AWARD_AT, GP_TENDER)
    assert status(m, AWARD_AT, GP_TENDER) == Status.AWARDED


def test_procedure_alone_leaves_publicity_optional():
    m = through_report(Procedure.OPEN_TENDER)
    assert step(m, "award", AWARD_AT, Procedure.OPEN_TENDER).awarded_at == AWARD_AT
    assert lc.procedure_path("open_tender", "construction").publicity == "required"
    assert lc.procedure_path(Procedure.OPEN_TENDER).publicity == "optional"


def test_single_source_skips_opening():
    single = (Domain.GOVERNMENT_PROCUREMENT, Procedure.SINGLE_SOURCE)
    with refused("no_opening_in_procedure"):
        step(PUBLISHED, "start_opening", AT_DEADLINE, single)
    m = step(PUBLISHED, "submit_report", AFTER_DEADLINE, single)
    m = step(m, "award", AWARD_AT, single)
    assert status(m, AWARD_AT, single) == Status.AWARDED


# -- refusals, one per guard ------------------------------------------------------------

def test_publish_refusals():
    with refused("wrong_state"):
        step(PUBLISHED, "publish", DOCUMENTS_FROM)
    with refused("schedule_incomplete"):
        step(lc.Milestones(), "publish", PUBLISHED_AT, schedule=lc.Schedule())
    with refused("schedule_inconsistent"):
        step(lc.Milestones(), "publish", PUBLISHED_AT,
             schedule=replace(SCHEDULE, documents_until=DOCUMENTS_FROM - timedelta(days=1)))
    with refused("deadline_in_past"):
        step(lc.Milestones(), "publish", AT_DEADLINE)


def test_publish_pins_a_new_schedule():
    m = step(lc.Milestones(), "publish", PUBLISHED_AT, schedule=lc.Schedule(), new_schedule=SCHEDULE)
    assert m.published_at == PUBLISHED_AT


def test_cancel_needs_a_reason_and_a_live_project():
    with refused("reason_required"):
        step(PUBLISHED, "cancel", DOCUMENTS_FROM)
    m = step(PUBLISHED, "cancel", DOCUMENTS_FROM, reason="项目取消")
    assert status(m, DOCUMENTS_FROM) == Status.CANCELLED and m.cancel_reason == "项目取消"
    with refused("wrong_state"):
        step(m, "cancel", AFTER_DEADLINE, reason="again")
    assert step(lc.Milestones(), "cancel", PUBLISHED_AT, reason="draft dropped").cancelled_at


def test_start_opening_before_the_deadline_is_refused():
    with refused("before_deadline"):
        step(PUBLISHED, "start_opening", JUST_BEFORE_DEADLINE)
    assert step(PUBLISHED, "start_opening", AT_DEADLINE).opening_started_at == AT_DEADLINE


def test_finish_opening_only_while_opening():
    with refused("wrong_state"):
        step(PUBLISHED, "finish_opening", AFTER_DEADLINE)


def test_fail_records_the_reason_from_closed_or_later():
    with refused("wrong_state"):
        step(PUBLISHED, "fail", DOCUMENTS_FROM, reason="too few bids")
    with refused("reason_required"):
        step(PUBLISHED, "fail", AFTER_DEADLINE)
    m = step(PUBLISHED, "fail", AFTER_DEADLINE, reason="fewer_than_3_bids")
    assert status(m, AFTER_DEADLINE) == Status.FAILED and m.fail_reason == "fewer_than_3_bids"


def test_submit_report_only_in_evaluation_and_once():
    with refused("wrong_state"):
        step(PUBLISHED, "submit_report", AFTER_DEADLINE)
    m = through_report()
    with refused("report_already_submitted"):
        step(m, "submit_report", PUBLICITY_AT)


def test_start_publicity_needs_the_report_and_its_end():
    with refused("report_missing"):
        step(through_opening(), "start_publicity", PUBLICITY_AT,
             new_schedule=replace(SCHEDULE, publicity_end=PUBLICITY_END))
    with refused("schedule_incomplete"):
        step(through_report(), "start_publicity", PUBLICITY_AT)
    with refused("schedule_inconsistent"):
        step(through_report(), "start_publicity", PUBLICITY_AT,
             new_schedule=replace(SCHEDULE, publicity_end=PUBLICITY_AT))


def test_award_guards():
    with refused("report_missing"):
        step(through_opening(), "award", AWARD_AT)
    with refused("publicity_required"):
        step(through_report(), "award", AWARD_AT)
    with_publicity = replace(SCHEDULE, publicity_start=PUBLICITY_AT, publicity_end=PUBLICITY_END)
    m = step(through_report(), "start_publicity", PUBLICITY_AT, new_schedule=with_publicity)
    with refused("publicity_not_over"):
        step(m, "award", PUBLICITY_END - timedelta(seconds=1), schedule=with_publicity)
    assert step(m, "award", PUBLICITY_END, schedule=with_publicity).awarded_at == PUBLICITY_END


def test_sign_contract_only_after_award():
    with refused("wrong_state"):
        step(through_report(GP_TENDER), "sign_contract", CONTRACT_AT, GP_TENDER)


def test_unknown_action_and_time_going_backwards_are_refused():
    with refused("unknown_action"):
        step(PUBLISHED, "reopen", DOCUMENTS_FROM)
    with refused("time_went_backwards"):
        step(through_opening(), "submit_report", AT_DEADLINE)


def test_refusal_shape():
    with refused("before_deadline") as info:
        step(PUBLISHED, "start_opening", DOCUMENTS_FROM)
    err = info.value
    assert err.from_status == Status.BIDDING and err.action == "start_opening"
    assert err.status == 409 and err.details["from_status"] == "bidding"
    assert err.message_zh and err.message_en


# -- suspension ---------------------------------------------------------------------------

def test_suspension_freezes_the_status_past_the_deadline():
    m = step(PUBLISHED, "suspend", DOCUMENTS_FROM, reason="投诉处理")
    assert status(m, DOCUMENTS_FROM) == Status.SUSPENDED
    assert status(m, AFTER_DEADLINE) == Status.SUSPENDED
    assert status(m, DOCUMENTS_FROM - timedelta(seconds=1)) == Status.PUBLISHED  # as of before it


def test_while_suspended_only_resume_cancel_or_fail():
    m = step(PUBLISHED, "suspend", DOCUMENTS_FROM, reason="complaint")
    with refused("suspended"):
        step(m, "start_opening", AFTER_DEADLINE)
    with refused("suspended"):
        step(m, "suspend", AFTER_DEADLINE, reason="again")
    assert step(m, "cancel", AFTER_DEADLINE, reason="complaint upheld").cancelled_at
    assert step(m, "fail", AFTER_DEADLINE, reason="废标").failed_at


def test_suspend_refusals():
    with refused("wrong_state"):
        step(lc.Milestones(), "suspend", PUBLISHED_AT, reason="x")
    with refused("reason_required"):
        step(PUBLISHED, "suspend", DOCUMENTS_FROM)


def test_resume_refusals_and_resume():
    with refused("not_suspended"):
        step(PUBLISHED, "resume", DOCUMENTS_FROM, reason="x")
    m = step(PUBLISHED, "suspend", DOCUMENTS_FROM, reason="complaint")
    with refused("reason_required"):
        step(m, "resume", DOCUMENTS_FROM + timedelta(days=2))
    resumed = step(m, "resume", DOCUMENTS_FROM + timedelta(days=2), reason="complaint rejected")
    assert status(resumed, DOCUMENTS_FROM + timedelta(days=2)) == Status.BIDDING
    assert resumed.suspensions[0].resume_reason == "complaint rejected"


def test_resume_after_the_deadline_passed_needs_a_new_schedule():
    m = step(PUBLISHED, "suspend", DOCUMENTS_FROM, reason="complaint")
    later = AFTER_DEADLINE + timedelta(days=1)
    with refused("schedule_required") as info:
        step(m, "resume", later, reason="done")
    assert "bid_deadline" in info.value.details["passed"]
    moved = SCHEDULE.shifted(DOCUMENTS_FROM, later - DOCUMENTS_FROM)
    resumed = step(m, "resume", later, reason="done", new_schedule=moved)
    assert status(resumed, later, schedule=moved) == Status.BIDDING
    assert lc.next_check(CONSTRUCTION, moved, resumed, later) == moved.bid_deadline


# -- records ------------------------------------------------------------------------------

def test_milestones_and_schedule_round_trip_through_json():
    m = step(step(PUBLISHED, "suspend", DOCUMENTS_FROM, reason="r"), "resume", AFTER_DEADLINE, reason="ok",
             new_schedule=SCHEDULE.shifted(DOCUMENTS_FROM, timedelta(days=30)))
    assert lc.Milestones.from_json(m.to_json()) == m
    assert lc.Milestones.from_json(None) == lc.Milestones()
    assert m.to_json()["published_at"] == "2026-03-03T01:00:00Z"
    assert lc.Schedule.from_json(SCHEDULE.to_json()) == SCHEDULE


def test_schedule_refuses_naive_datetimes():
    with pytest.raises(ValueError):
        lc.Schedule(bid_deadline=datetime(2026, 3, 24, 9, 30))


def test_due_dates_for_supervision():
    schedule = replace(SCHEDULE, award_due=AWARD_AT, contract_due=CONTRACT_AT)
    m = through_opening()
    due = {d.name: d.overdue for d in lc.due_dates(schedule, m, REPORT_AT + timedelta(days=2))}
    assert due == {"evaluation_due": True, "award_due": False, "contract_due": False}
    m = step(m, "submit_report", REPORT_AT)
    assert "evaluation_due" not in {d.name for d in lc.due_dates(schedule, m, REPORT_AT)}
    assert lc.due_dates(schedule, lc.Milestones(), REPORT_AT) == []


def test_every_action_has_a_from_table():
    assert set(lc.ALLOWED_FROM) == set(lc.Action)
