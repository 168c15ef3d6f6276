"""Day arithmetic as the law counts it (RULES.md "Days").

Pure: tables and instants in, dates and :class:`Deadline` values out. No clock is read.

- Dates are taken in Asia/Shanghai; instants are aware datetimes, returned in UTC.
- Calendar days (日) count every day; working days (工作日) skip weekends and statutory
  holidays, while a swapped working weekend day (调休上班) counts (行政许可法 Art 82).
- Counting follows 民法典 Arts 201–203: the start day is not counted; a period ends at
  24:00 of its last day, so the instant it ends is 00:00 of the next day; a last day that
  is not a working day (法定休假日, weekends included) moves to the next working day.
- Holidays are data, one :class:`YearTable` per year citing the State Council notice:
  chinese-calendar's official tables for the years it has, ``holidays.toml`` (and any
  override file) for more or corrected years. A year without an official table gets a
  **provisional** table computed from the statutory list (全国年节及纪念日放假办法, 2024)
  with no swaps; every deadline that consulted such a year says ``provisional=True``,
  and :func:`moved_deadlines` tells which deadlines move once the official table arrives.
"""
from __future__ import annotations

import calendar as _stdlib_calendar
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

__all__ = [
    "SHANGHAI", "LAW_BASIS", "DayKind", "Sense", "CalendarError", "CalendarUnavailable",
    "YearTable", "StatutoryHoliday", "Deadline", "DeadlineChange", "DayChange",
    "WorkCalendar", "local_date", "counting_day", "start_of_day", "end_of_day",
    "load_calendar", "default_calendar", "table_diff", "moved_deadlines",
]

SHANGHAI = ZoneInfo("Asia/Shanghai")
LAW_BASIS = "民法典 Arts 201–203"
HOLIDAYS_TOML = Path(__file__).with_name("holidays.toml")


class DayKind(StrEnum):
    """How a period counts its days."""

    CALENDAR = "calendar"  # 日
    WORKING = "working"    # 工作日


class Sense(StrEnum):
    """What a period demands of the later event (see :meth:`Deadline.allows`).

    - ``within``: the act must happen before the period ends (before 24:00 of the last day).
    - ``lasts``: a window (publicity, listing, availability) must stay open at least until
      the period ends, i.e. until 24:00 of the last day.
    - ``not_before_day``: the later event must fall on the last day or after it, at any
      hour. This is how the statutes phrase "from X 之日起 to the deadline 之日止 at least N
      days" (法 24) and "at least N days before the deadline" (条例 21, 22): the deadline's
      own day is the last counted day.
    """

    WITHIN = "within"
    LASTS = "lasts"
    NOT_BEFORE_DAY = "not_before_day"


class CalendarError(ValueError):
    """A holiday table or a day count is not usable."""


class CalendarUnavailable(CalendarError):
    """No table, official or provisional, can be built for the year."""


def _aware(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise CalendarError("naive datetimes are not allowed; give an offset")
    return instant


def local_date(instant: datetime) -> date:
    """The date of ``instant`` in Asia/Shanghai (00:00 belongs to the new day)."""
    return _aware(instant).astimezone(SHANGHAI).date()


def counting_day(instant: datetime) -> date:
    """The day ``instant`` counts on: its Asia/Shanghai date, except that exactly 00:00
    is read as 24:00 of the previous day. A period that starts where another ended (at
    a deadline's ``at``) thus starts on the right day, and an event at 24:00 of day D is
    never taken for day D+1."""
    local = _aware(instant).astimezone(SHANGHAI)
    if local.time() == time(0):
        return local.date() - timedelta(days=1)
    return local.date()


def start_of_day(day: date) -> datetime:
    """00:00 of ``day`` in Asia/Shanghai, as an aware UTC instant."""
    return datetime.combine(day, time(0), SHANGHAI).astimezone(timezone.utc)


def end_of_day(day: date) -> datetime:
    """24:00 of ``day`` in Asia/Shanghai (= 00:00 of the next day), as aware UTC."""
    return start_of_day(day + timedelta(days=1))


@dataclass(frozen=True)
class YearTable:
    """One year's days off and swapped working days, with the notice that set them.

    ``days_off`` are the holiday blocks as announced (weekend days inside a block
    included); ``working_days`` are the weekend days worked instead (调休上班).
    """

    year: int
    notice: str
    days_off: frozenset[date] = frozenset()
    working_days: frozenset[date] = frozenset()
    provisional: bool = False
    source: str = ""

    def __post_init__(self) -> None:
        for day in self.days_off | self.working_days:
            if day.year != self.year:
                raise CalendarError(f"{day} does not belong to the {self.year} table")
        if self.days_off & self.working_days:
            raise CalendarError(f"{self.year}: a day cannot be both off and a working day")

    def is_working_day(self, day: date) -> bool:
        """True for a working day (工作日) according to this table."""
        if day in self.working_days:
            return True
        if day in self.days_off:
            return False
        return day.weekday() < 5


@dataclass(frozen=True)
class StatutoryHoliday:
    """One entry of the statutory holiday list, anchored on the solar or lunar calendar.

    ``anchor`` is ``solar`` (month/day), ``lunar`` (lunar month/day of the lunar year
    that starts in the same Gregorian year) or ``solar_term`` (e.g. 清明). ``offset``
    shifts the first day (春节 starts on the eve: lunar 1/1 with offset -1).
    """

    name: str
    name_zh: str
    anchor: str
    days: int
    month: int = 0
    day: int = 0
    term: str = ""
    offset: int = 0

    def dates(self, year: int) -> list[date]:
        """The days off this holiday gives in ``year``."""
        first = self._anchor_date(year) + timedelta(days=self.offset)
        return [first + timedelta(days=i) for i in range(self.days)]

    def _anchor_date(self, year: int) -> date:
        if self.anchor == "solar":
            return date(year, self.month, self.day)
        if self.anchor == "lunar":
            from lunardate import LunarDate
            try:
                return LunarDate(year, self.month, self.day).to_solar_date()
            except ValueError as exc:
                raise CalendarUnavailable(f"no lunar date for {year}: {exc}") from exc
        if self.anchor == "solar_term":
            import chinese_calendar
            try:
                terms = chinese_calendar.get_solar_terms(date(year, 1, 1), date(year, 12, 31))
            except NotImplementedError as exc:
                raise CalendarUnavailable(f"no solar terms for {year}: {exc}") from exc
            for day, name in terms:
                if name == self.term:
                    return day
            raise CalendarUnavailable(f"solar term {self.term} not found in {year}")
        raise CalendarError(f"unknown holiday anchor {self.anchor!r}")


@dataclass(frozen=True)
class Deadline:
    """The end of a period counted as the law counts, with what it was computed from.

    ``last_day`` is the last counted day (already moved off a non-working day; the
    original is ``moved_from``). ``at`` is 24:00 of ``last_day`` in Asia/Shanghai,
    expressed in UTC: the instant the period ends. ``provisional`` is True when a day of
    a provisional (not yet officially announced) year was consulted. ``rule``,
    ``citation``, ``step`` and ``sense`` are filled in by the rulebook.
    """

    start: datetime
    days: int
    kind: DayKind
    last_day: date
    at: datetime
    provisional: bool = False
    moved_from: date | None = None
    months: int = 0
    basis: str = LAW_BASIS
    rule: str | None = None
    citation: str | None = None
    step: str | None = None
    sense: Sense = Sense.WITHIN

    @property
    def day_start(self) -> datetime:
        """00:00 of the last day; a ``not_before_day`` event must come after it."""
        return start_of_day(self.last_day)

    def allows(self, instant: datetime) -> bool:
        """Does ``instant`` (the later event) satisfy the period, read in its ``sense``?"""
        if self.sense is Sense.WITHIN:
            return instant < self.at
        if self.sense is Sense.LASTS:
            return instant >= self.at
        return counting_day(instant) >= self.last_day

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (instants as RFC 3339 UTC, dates as ISO)."""
        return {
            "start": _iso(self.start), "days": self.days, "months": self.months,
            "kind": str(self.kind), "last_day": self.last_day.isoformat(), "at": _iso(self.at),
            "provisional": self.provisional,
            "moved_from": self.moved_from.isoformat() if self.moved_from else None,
            "basis": self.basis, "rule": self.rule, "citation": self.citation,
            "step": self.step, "sense": str(self.sense),
        }


    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Deadline:
        """A stored :meth:`to_dict` back, e.g. to :func:`moved_deadlines` it later."""
        def instant(text: str) -> datetime:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        return cls(
            start=instant(data["start"]), days=int(data["days"]), months=int(data.get("months", 0)),
            kind=DayKind(data["kind"]), last_day=date.fromisoformat(data["last_day"]), at=instant(data["at"]),
            provisional=bool(data.get("provisional", False)),
            moved_from=date.fromisoformat(data["moved_from"]) if data.get("moved_from") else None,
            basis=data.get("basis", LAW_BASIS), rule=data.get("rule"), citation=data.get("citation"),
            step=data.get("step"), sense=Sense(data.get("sense", Sense.WITHIN)),
        )


def _iso(instant: datetime) -> str:
    return instant.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class DeadlineChange:
    """A deadline that moves when a calendar is replaced (e.g. official table arrives)."""

    old: Deadline
    new: Deadline


@dataclass(frozen=True)
class DayChange:
    """A day whose working status differs between two tables."""

    day: date
    was_working: bool
    now_working: bool


@dataclass
class WorkCalendar:
    """Working-day arithmetic over per-year tables, provisional where none is official.

    ``tables`` are the official (or overriding) years; ``statutory`` the holiday list used
    to compute a provisional table for any other year. With ``compensate_weekends`` a
    provisional holiday falling on a weekend gives the next weekday off (补假, 2024 办法
    Art 6); off by default because the brief for provisional years says "no swaps".
    """

    tables: Mapping[int, YearTable]
    statutory: Sequence[StatutoryHoliday] = ()
    statutory_citation: str = "全国年节及纪念日放假办法 (2024)"
    compensate_weekends: bool = False
    _provisional: dict[int, YearTable] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.tables = dict(self.tables)
        for year, table in self.tables.items():
            if table.year != year:
                raise CalendarError(f"table for {table.year} filed under {year}")

    @property
    def official_years(self) -> frozenset[int]:
        """Years that have a table from a notice (not computed)."""
        return frozenset(y for y, t in self.tables.items() if not t.provisional)

    def table(self, year: int) -> YearTable:
        """The table for ``year``: the given one, else a provisional one (cached)."""
        if year in self.tables:
            return self.tables[year]
        if year not in self._provisional:
            self._provisional[year] = self._provisional_table(year)
        return self._provisional[year]

    def _provisional_table(self, year: int) -> YearTable:
        if not self.statutory:
            raise CalendarUnavailable(f"no table for {year} and no statutory list to compute one")
        days_off: set[date] = set()
        for holiday in self.statutory:
            days_off.update(d for d in holiday.dates(year) if d.year == year)
        if self.compensate_weekends:
            for day in sorted(d for d in days_off if d.weekday() >= 5):
                extra = day + timedelta(days=1)
                while extra.weekday() >= 5 or extra in days_off:
                    extra += timedelta(days=1)
                if extra.year == year:
                    days_off.add(extra)
        return YearTable(
            year=year, days_off=frozenset(days_off), provisional=True,
            notice=f"PROVISIONAL: computed from {self.statutory_citation}, no swaps",
            source="computed",
        )

    def is_provisional(self, year: int) -> bool:
        """True when ``year`` has no official table, so its days are computed."""
        return self.table(year).provisional

    def is_working_day(self, day: date) -> bool:
        """Is ``day`` a working day (工作日)?"""
        return self.table(day.year).is_working_day(day)

    def with_tables(self, tables: Iterable[YearTable]) -> WorkCalendar:
        """A new calendar with ``tables`` added or replacing years of this one."""
        merged = dict(self.tables)
        merged.update({t.year: t for t in tables})
        return WorkCalendar(merged, self.statutory, self.statutory_citation, self.compensate_weekends)

    # -- counting ---------------------------------------------------------------------

    def _roll_forward(self, day: date, years: set[int]) -> date:
        """The first working day on or after ``day`` (民法典 203)."""
        while True:
            years.add(day.year)
            if self.is_working_day(day):
                return day
            day += timedelta(days=1)

    def add_days(self, start: datetime, n: int, kind: DayKind | str) -> Deadline:
        """The period of ``n`` days of ``kind`` counted from the instant ``start``.

        The start day (in Asia/Shanghai, see :func:`counting_day`) is not counted. Calendar days: the last day is
        the ``n``-th day after it, moved to the next working day when it is not one.
        Working days: the last day is the ``n``-th working day after it. ``n == 0``
        ends at 24:00 of the start day itself.
        """
        kind = DayKind(kind)
        if n < 0:
            raise CalendarError("a period cannot have a negative length")
        start_day = counting_day(start)
        years: set[int] = set()
        moved_from: date | None = None
        if n == 0:
            last = start_day
        elif kind is DayKind.CALENDAR:
            nominal = start_day + timedelta(days=n)
            last = self._roll_forward(nominal, years)
            moved_from = nominal if last != nominal else None
        else:
            last, counted = start_day, 0
            while counted < n:
                last += timedelta(days=1)
                years.add(last.year)
                if self.is_working_day(last):
                    counted += 1
        return Deadline(
            start=start.astimezone(timezone.utc), days=n, kind=kind, last_day=last,
            at=end_of_day(last), provisional=any(self.is_provisional(y) for y in years),
            moved_from=moved_from,
        )

    def add_months(self, start: datetime, months: int) -> Deadline:
        """A period of ``months`` months: it ends on the same-numbered day of the final
        month, or that month's last day when it has no such day (民法典 202), moved off a
        non-working day like any period."""
        if months < 0:
            raise CalendarError("a period cannot have a negative length")
        start_day = counting_day(start)
        index = start_day.month - 1 + months
        year, month = start_day.year + index // 12, index % 12 + 1
        nominal = date(year, month, min(start_day.day, _stdlib_calendar.monthrange(year, month)[1]))
        years: set[int] = set()
        last = self._roll_forward(nominal, years)
        return Deadline(
            start=start.astimezone(timezone.utc), days=0, months=months, kind=DayKind.CALENDAR,
            last_day=last, at=end_of_day(last),
            provisional=any(self.is_provisional(y) for y in years),
            moved_from=nominal if last != nominal else None,
        )

    def recompute(self, deadline: Deadline) -> Deadline:
        """``deadline`` counted again on this calendar, keeping its rule labels."""
        fresh = (self.add_months(deadline.start, deadline.months) if deadline.months
                 else self.add_days(deadline.start, deadline.days, deadline.kind))
        return replace(fresh, basis=deadline.basis, rule=deadline.rule, citation=deadline.citation,
                       step=deadline.step, sense=deadline.sense)

    def days_between(self, a: datetime, b: datetime, kind: DayKind | str) -> int:
        """Counted days from ``a`` to ``b``, as the law counts them.

        The days after ``a``'s date up to and including ``b``'s date (Asia/Shanghai):
        for calendar days ``date(b) - date(a)``; for working days the working days in
        ``(date(a), date(b)]``. Negative when ``b`` is earlier. No holiday extension is
        applied: use :meth:`add_days` (or the rulebook's limits) to judge compliance.
        """
        kind = DayKind(kind)
        first, last = counting_day(a), counting_day(b)
        sign = 1
        if last < first:
            first, last, sign = last, first, -1
        if kind is DayKind.CALENDAR:
            return sign * (last - first).days
        count, day = 0, first
        while day < last:
            day += timedelta(days=1)
            count += self.is_working_day(day)
        return sign * count

    def latest_start_day(self, end_day: date, n: int, kind: DayKind | str) -> date:
        """The latest day ``s`` such that ``n`` days of ``kind`` counted from ``s`` have
        their last day on or before ``end_day``. Used backwards: the last day on which a
        clarification or an objection deadline may fall before a given bid deadline."""
        kind = DayKind(kind)
        candidate = end_day - timedelta(days=n)
        while self.add_days(end_of_day(candidate), n, kind).last_day > end_day:
            candidate -= timedelta(days=1)
        return candidate


def table_diff(old: YearTable, new: YearTable) -> list[DayChange]:
    """Days of the year whose working status differs between ``old`` and ``new``."""
    if old.year != new.year:
        raise CalendarError("tables of different years")
    day, changes = date(old.year, 1, 1), []
    while day.year == old.year:
        was, now = old.is_working_day(day), new.is_working_day(day)
        if was != now:
            changes.append(DayChange(day, was, now))
        day += timedelta(days=1)
    return changes


def moved_deadlines(deadlines: Iterable[Deadline], calendar: WorkCalendar) -> list[DeadlineChange]:
    """Deadlines whose last day differs when counted on ``calendar``.

    Call it with the calendar that includes a newly published official table, over the
    deadlines computed while the year was provisional, to warn the supervisor.
    """
    changes = []
    for deadline in deadlines:
        fresh = calendar.recompute(deadline)
        if fresh.last_day != deadline.last_day or fresh.provisional != deadline.provisional:
            changes.append(DeadlineChange(deadline, fresh))
    return changes


# -- tables as data ---------------------------------------------------------------------

def _official_tables_from_chinese_calendar() -> dict[int, YearTable]:
    """chinese-calendar's official tables (years it has, 2004–2026 in 1.11.0)."""
    import chinese_calendar

    version = getattr(chinese_calendar, "__version__", "1.11.0")
    off: dict[int, set[date]] = {}
    work: dict[int, set[date]] = {}
    for day in chinese_calendar.holidays:
        off.setdefault(day.year, set()).add(day)
    for day in chinese_calendar.workdays:
        work.setdefault(day.year, set()).add(day)
    return {
        year: YearTable(
            year=year, days_off=frozenset(off[year]), working_days=frozenset(work.get(year, ())),
            notice=f"国务院办公厅关于{year}年部分节假日安排的通知",
            source=f"chinese-calendar {version}",
        )
        for year in sorted(off)
    }


def _parse_days(values: Iterable[str], where: str) -> set[date]:
    """ISO dates, or ``A..B`` inclusive ranges."""
    days: set[date] = set()
    for value in values:
        try:
            if ".." in value:
                first_text, last_text = value.split("..", 1)
                first, last = date.fromisoformat(first_text), date.fromisoformat(last_text)
                if last < first:
                    raise ValueError("range ends before it starts")
                days.update(first + timedelta(days=i) for i in range((last - first).days + 1))
            else:
                days.add(date.fromisoformat(value))
        except (TypeError, ValueError) as exc:
            raise CalendarError(f"{where}: bad date {value!r}: {exc}") from exc
    return days


def _tables_from_data(data: Mapping[str, Any], where: str) -> dict[int, YearTable]:
    tables = {}
    for year_text, entry in (data.get("years") or {}).items():
        year = int(year_text)
        if not entry.get("notice"):
            raise CalendarError(f"{where}: year {year} needs the notice that sets it")
        tables[year] = YearTable(
            year=year, notice=entry["notice"],
            days_off=frozenset(_parse_days(entry.get("days_off", []), f"{where} {year}")),
            working_days=frozenset(_parse_days(entry.get("working_days", []), f"{where} {year}")),
            provisional=bool(entry.get("provisional", False)), source=where,
        )
    return tables


def _statutory_from_data(data: Mapping[str, Any]) -> tuple[str, tuple[StatutoryHoliday, ...]] | None:
    section = data.get("statutory")
    if not section:
        return None
    holidays = tuple(
        StatutoryHoliday(
            name=h["name"], name_zh=h.get("name_zh", ""), anchor=h["anchor"], days=int(h["days"]),
            month=int(h.get("month", 0)), day=int(h.get("day", 0)), term=h.get("term", ""),
            offset=int(h.get("offset", 0)),
        )
        for h in section.get("holiday", [])
    )
    return section.get("citation", ""), holidays


def load_calendar(paths: Sequence[Path] | None = None, *, official: bool = True) -> WorkCalendar:
    """The working calendar: chinese-calendar's tables (``official``), then the packaged
    ``holidays.toml``, then each file of ``paths`` in order; a later year replaces an
    earlier one whole, a later ``[statutory]`` list replaces the earlier list."""
    tables = _official_tables_from_chinese_calendar() if official else {}
    citation, statutory = "", ()
    compensate = False
    for path in [HOLIDAYS_TOML, *(paths or [])]:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        tables.update(_tables_from_data(data, str(path.name)))
        found = _statutory_from_data(data)
        if found:
            citation, statutory = found
            compensate = bool(data["statutory"].get("compensate_weekends", False))
    return WorkCalendar(tables, statutory, citation or "全国年节及纪念日放假办法 (2024)", compensate)


@lru_cache(maxsize=1)
def default_calendar() -> WorkCalendar:
    """The packaged calendar (no override files), built once."""
    return load_calendar()
