"""Day arithmetic (RULES.md "Days"): working days, 民法典 201–203 counting, provisional years."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from trading.calendar import (
    SHANGHAI, CalendarError, CalendarUnavailable, DayKind, Sense, StatutoryHoliday, WorkCalendar,
    YearTable, default_calendar, end_of_day, load_calendar, local_date, moved_deadlines,
    start_of_day, table_diff, counting_day,
)


def sh(y: int, m: int, d: int, hh: int = 9, mm: int = 0) -> datetime:
    """An instant given in Asia/Shanghai wall time."""
    return datetime(y, m, d, hh, mm, tzinfo=SHANGHAI)


CAL = default_calendar()


# -- the 2026 official table (国务院办公厅关于2026年部分节假日安排的通知) ----------------

def test_2026_spring_festival_days_are_off_and_the_swapped_saturdays_work():
    assert not CAL.is_provisional(2026)
    for day in range(15, 24):  # 2026-02-15 .. 02-23, 春节 block
        assert not CAL.is_working_day(date(2026, 2, day))
    assert date(2026, 2, 14).weekday() == 5 and CAL.is_working_day(date(2026, 2, 14))
    assert date(2026, 2, 28).weekday() == 5 and CAL.is_working_day(date(2026, 2, 28))
    assert CAL.is_working_day(date(2026, 2, 24))
    assert not CAL.is_working_day(date(2026, 3, 1))  # an ordinary Sunday


def test_working_days_across_the_2026_spring_festival_count_the_swapped_saturday():
    # Friday 13 Feb: start day not counted; Sat 14 (调休上班) = 1; 15..23 off; 24 = 2; 25 = 3.
    deadline = CAL.add_days(sh(2026, 2, 13, 10), 3, DayKind.WORKING)
    assert deadline.last_day == date(2026, 2, 25)
    assert deadline.at == sh(2026, 2, 26, 0, 0).astimezone(timezone.utc)
    assert not deadline.provisional


def test_working_days_between_across_the_festival():
    assert CAL.days_between(sh(2026, 2, 13), sh(2026, 2, 25), "working") == 3
    assert CAL.days_between(sh(2026, 2, 25), sh(2026, 2, 13), "working") == -3
    assert CAL.days_between(sh(2026, 2, 13), sh(2026, 2, 25), "calendar") == 12


# -- counting per 民法典 201–203 -------------------------------------------------------

def test_start_day_is_not_counted():
    # Issued at 00:01 or 23:59 on 3 March: either way day 1 is 4 March.
    assert CAL.add_days(sh(2026, 3, 3, 0, 1), 1, "calendar").last_day == date(2026, 3, 4)
    assert CAL.add_days(sh(2026, 3, 3, 23, 59), 1, "calendar").last_day == date(2026, 3, 4)


def test_midnight_is_24_00_of_the_day_before():
    # A period starting where another ended (at 24:00 on 3 March) counts from 4 March.
    ended = CAL.add_days(sh(2026, 3, 2, 10), 1, "calendar")
    assert ended.last_day == date(2026, 3, 3)
    assert counting_day(ended.at) == date(2026, 3, 3) and local_date(ended.at) == date(2026, 3, 4)
    assert CAL.add_days(ended.at, 1, "calendar").last_day == date(2026, 3, 4)


def test_period_ends_at_24_00_of_its_last_day_in_shanghai():
    deadline = CAL.add_days(sh(2026, 3, 3, 15), 20, "calendar")
    assert deadline.last_day == date(2026, 3, 23)  # a Monday
    assert deadline.at == datetime(2026, 3, 23, 16, 0, tzinfo=timezone.utc)  # = 24 Mar 00:00 +08
    assert deadline.at.tzinfo == timezone.utc
    assert deadline.allows(sh(2026, 3, 23, 23, 59))          # within: before 24:00
    assert not deadline.allows(sh(2026, 3, 24, 0, 0))        # 24:00 has struck


def test_utc_instants_are_read_as_shanghai_dates():
    # 2026-03-02T17:00Z is already 3 March 01:00 in Shanghai.
    assert local_date(datetime(2026, 3, 2, 17, 0, tzinfo=timezone.utc)) == date(2026, 3, 3)
    assert start_of_day(date(2026, 3, 3)) == datetime(2026, 3, 2, 16, 0, tzinfo=timezone.utc)
    assert end_of_day(date(2026, 3, 3)) == datetime(2026, 3, 3, 16, 0, tzinfo=timezone.utc)


def test_naive_datetimes_are_refused():
    with pytest.raises(CalendarError):
        CAL.add_days(datetime(2026, 3, 3, 9, 0), 1, "calendar")


def test_last_day_on_a_holiday_moves_to_the_next_working_day():
    # 10 calendar days from 21 Sep 2026 end on 1 Oct (国庆): moved to Fri 9 Oct?
    # 2026 table: 1-7 Oct off, Sat 10 Oct worked; 8 Oct is the first working day.
    deadline = CAL.add_days(sh(2026, 9, 21), 10, "calendar")
    assert deadline.moved_from == date(2026, 10, 1)
    assert deadline.last_day == date(2026, 10, 8)
    assert deadline.at == sh(2026, 10, 9, 0, 0).astimezone(timezone.utc)


def test_last_day_on_a_weekend_moves_to_monday():
    deadline = CAL.add_days(sh(2026, 3, 2), 20, "calendar")  # nominal Sun 22 March
    assert deadline.moved_from == date(2026, 3, 22)
    assert deadline.last_day == date(2026, 3, 23)


def test_last_day_on_a_swapped_working_saturday_does_not_move():
    deadline = CAL.add_days(sh(2026, 2, 4), 10, "calendar")  # Sat 14 Feb 2026, 调休上班
    assert deadline.last_day == date(2026, 2, 14) and deadline.moved_from is None


def test_zero_days_end_at_24_00_of_the_start_day():
    deadline = CAL.add_days(sh(2026, 3, 3, 10), 0, "working")
    assert deadline.last_day == date(2026, 3, 3)


def test_months_end_on_the_corresponding_day_or_the_month_end():
    assert CAL.add_months(sh(2026, 3, 16), 12).last_day == date(2027, 3, 16)
    # 31 Jan + 1 month: February has no 31st, so its last day (Sat 28 Feb 2026, a 调休
    # working day) is the last day.
    assert CAL.add_months(sh(2026, 1, 31), 1).last_day == date(2026, 2, 28)


def test_latest_start_day_is_the_inverse_of_add_days():
    day = CAL.latest_start_day(date(2026, 3, 23), 15, "calendar")
    assert day == date(2026, 3, 8)
    assert CAL.add_days(end_of_day(day), 15, "calendar").last_day <= date(2026, 3, 23)
    assert CAL.add_days(end_of_day(day + timedelta(days=1)), 15, "calendar").last_day > date(2026, 3, 23)


# -- provisional years ---------------------------------------------------------------

def test_2027_has_no_official_table_so_it_is_provisional_from_the_statutory_list():
    import chinese_calendar
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(date(2027, 1, 4))
    assert CAL.is_provisional(2027)
    table = CAL.table(2027)
    assert table.provisional and "PROVISIONAL" in table.notice
    # 2024 办法: 13 days; 春节 = 除夕 + 正月初一..初三 (CNY 2027 is Sat 6 Feb).
    assert len(table.days_off) == 13
    assert {date(2027, 2, d) for d in (5, 6, 7, 8)} <= table.days_off
    assert date(2027, 4, 5) in table.days_off        # 清明 solar term
    assert date(2027, 6, 9) in table.days_off        # 端午, lunar 5/5
    assert date(2027, 9, 15) in table.days_off       # 中秋, lunar 8/15
    assert {date(2027, 5, 1), date(2027, 5, 2)} <= table.days_off
    assert {date(2027, 10, d) for d in (1, 2, 3)} <= table.days_off
    assert table.working_days == frozenset()         # no swaps


def test_working_days_into_a_provisional_year_are_marked_provisional():
    # Wed 30 Dec 2026: 31 Dec = 1; 1 Jan 2027 off; 2-3 weekend; 4..7 Jan = 2..5.
    deadline = CAL.add_days(sh(2026, 12, 30), 5, "working")
    assert deadline.last_day == date(2027, 1, 7)
    assert deadline.provisional


def test_a_deadline_inside_an_official_year_is_not_provisional():
    assert not CAL.add_days(sh(2026, 11, 2), 20, "calendar").provisional


def test_table_diff_and_moved_deadlines_when_the_official_table_arrives():
    provisional = CAL.add_days(sh(2027, 2, 1), 5, "working")  # Tue 2 .. Thu 4, 9, 10 Feb
    assert provisional.provisional and provisional.last_day == date(2027, 2, 10)
    official = YearTable(
        2027, notice="国务院办公厅关于2027年部分节假日安排的通知 (test)",
        days_off=CAL.table(2027).days_off | {date(2027, 2, d) for d in range(5, 13)},
        working_days=frozenset({date(2027, 2, 20)}),
    )
    diff = table_diff(CAL.table(2027), official)
    assert [c.day for c in diff] == [date(2027, 2, 9), date(2027, 2, 10), date(2027, 2, 11),
                                     date(2027, 2, 12), date(2027, 2, 20)]
    newer = CAL.with_tables([official])
    assert not newer.is_provisional(2027)
    [change] = moved_deadlines([provisional], newer)
    assert change.new.last_day == date(2027, 2, 16) and not change.new.provisional  # 2,3,4,15,16
    # A deadline in an official year is untouched by the new table.
    assert moved_deadlines([CAL.add_days(sh(2026, 5, 6), 5, "working")], newer) == []


def test_override_file_adds_a_year(tmp_path):
    path = tmp_path / "holidays.toml"
    path.write_text(
        '[years.2027]\nnotice = "国务院办公厅关于2027年部分节假日安排的通知"\n'
        'days_off = ["2027-02-05..2027-02-12"]\nworking_days = ["2027-02-20"]\n',
        encoding="utf-8",
    )
    calendar = load_calendar([path])
    assert not calendar.is_provisional(2027)
    assert calendar.is_working_day(date(2027, 2, 20))
    assert not calendar.is_working_day(date(2027, 2, 11))
    assert not calendar.is_provisional(2026)  # chinese-calendar's years are still there


def test_override_year_needs_its_notice(tmp_path):
    path = tmp_path / "holidays.toml"
    path.write_text('[years.2027]\ndays_off = ["2027-02-05"]\n', encoding="utf-8")
    with pytest.raises(CalendarError):
        load_calendar([path])


def test_custom_tables_without_statutory_list_refuse_unknown_years():
    calendar = WorkCalendar({2030: YearTable(2030, notice="test", days_off=frozenset({date(2030, 1, 1)}))})
    assert not calendar.is_working_day(date(2030, 1, 1))
    with pytest.raises(CalendarUnavailable):
        calendar.is_working_day(date(2031, 1, 1))


def test_compensation_for_weekend_holidays_is_optional():
    spring = StatutoryHoliday("spring_festival", "春节", "lunar", 4, month=1, day=1, offset=-1)
    plain = WorkCalendar({}, [spring])
    compensated = WorkCalendar({}, [spring], compensate_weekends=True)
    assert plain.is_working_day(date(2027, 2, 9))
    assert not compensated.is_working_day(date(2027, 2, 9))   # 补假 for Sat 6 Feb
    assert not compensated.is_working_day(date(2027, 2, 10))  # 补假 for Sun 7 Feb


def test_deadline_senses():
    base = CAL.add_days(sh(2026, 3, 3), 20, "calendar")
    from dataclasses import replace
    lasts = replace(base, sense=Sense.LASTS)
    assert lasts.allows(sh(2026, 3, 24, 0, 0)) and not lasts.allows(sh(2026, 3, 23, 23, 59))
    not_before = replace(base, sense=Sense.NOT_BEFORE_DAY)
    assert not_before.allows(sh(2026, 3, 23, 0, 1)) and not not_before.allows(sh(2026, 3, 22, 23, 59))
    assert not not_before.allows(sh(2026, 3, 23, 0, 0))  # = 24:00 on 22 March
    assert base.to_dict()["last_day"] == "2026-03-23"
    from trading.calendar import Deadline
    assert Deadline.from_dict(not_before.to_dict()) == not_before
