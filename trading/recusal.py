"""Who may not sit on a committee: recusal (回避, RULES D3) and qualification (RULES D6).

Pure: an expert's declared record, the parties of the project and ``now`` in; a set of
reasons out. An empty set means the expert may be drawn for this project. Every number
(the look-back years, the service limit and its window, years in the field, the title)
comes in a parameters object from the rulebook, never as a literal in the logic, so a
province can override it.

Dates are calendar dates in Asia/Shanghai (RULES "Days"): ``now`` is an aware instant and
is converted once. "Within N years" is inclusive at the boundary: an employment that ended
exactly N years before today still recuses, because doubt must fall on the side of
recusal (a wrongly seated expert voids the evaluation, RULES D5; a wrongly excluded one
costs nothing but a redraw).

People are matched by a *person key* that the caller chooses and keeps consistent (an ID
number where the platform has one, otherwise the registered name); keys are compared
after trimming whitespace and case-folding.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import IntEnum, StrEnum
from zoneinfo import ZoneInfo

__all__ = [
    "RecusalCode", "QualificationCode", "RoleKind", "TitleLevel",
    "Employment", "OrgRole", "Relative", "Service", "ExpertRecord", "Bidder", "Parties",
    "RecusalParameters", "QualificationParameters", "Reason",
    "recusal_reasons", "qualification_reasons", "exclusion_reasons", "local_date",
    "years_before",
]

_SHANGHAI = ZoneInfo("Asia/Shanghai")


class RecusalCode(StrEnum):
    """Why an expert must stand aside for this project (RULES D3)."""

    EMPLOYED_BY_BIDDER = "employed_by_bidder"          # GP条例 9 (within N years)
    EMPLOYED_BY_TENDEREE = "employed_by_tenderee"      # 条例 46 / 法 37 interest
    DIRECTOR_OF_BIDDER = "director_of_bidder"          # GP条例 9 (董事、监事)
    DIRECTOR_OF_TENDEREE = "director_of_tenderee"
    CONTROLS_BIDDER = "controls_bidder"                # GP条例 9 (控股、实际控制)
    CONTROLS_TENDEREE = "controls_tenderee"
    RELATIVE_OF_LEGAL_REPRESENTATIVE = "relative_of_legal_representative"  # GP条例 9
    RELATIVE_AT_BIDDER = "relative_at_bidder"          # 条例 46 "interest in a bidder"
    SUPERVISORY_STAFF = "supervisory_staff"            # 条例 46
    TOO_MANY_SERVICES_TO_TENDEREE = "too_many_services_to_tenderee"  # local practice


class QualificationCode(StrEnum):
    """Why an expert is not qualified to be drawn at all (RULES D6, 法 37)."""

    INSUFFICIENT_EXPERIENCE = "insufficient_experience"
    TITLE_TOO_LOW = "title_too_low"


class RoleKind(StrEnum):
    """A position in an organisation that GP条例 9 treats as an interest."""

    DIRECTOR = "director"        # 董事 / 监事 (and senior management)
    CONTROLLER = "controller"    # 控股股东 / 实际控制人 (ownership or control)


class TitleLevel(IntEnum):
    """Professional title (职称), ordered so that a minimum can be compared."""

    NONE = 0
    JUNIOR = 1                # 初级
    INTERMEDIATE = 2          # 中级
    ASSOCIATE_SENIOR = 3      # 副高级 (a senior title in the sense of 法 37)
    SENIOR = 4                # 正高级


@dataclass(frozen=True)
class Employment:
    """A period of employment (劳动关系). ``end`` None: still employed."""

    org_code: str
    start: date
    end: date | None = None


@dataclass(frozen=True)
class OrgRole:
    """A director role or ownership/control of an organisation, over a period."""

    org_code: str
    kind: RoleKind
    start: date
    end: date | None = None


@dataclass(frozen=True)
class Relative:
    """A declared close relative (夫妻、直系血亲、三代以内旁系血亲及近姻亲).

    ``org_codes``: organisations where the relative works, directs or holds control.
    """

    person_key: str
    relation: str
    org_codes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Service:
    """One evaluation the expert served on for a tenderee."""

    tenderee_code: str
    on: date


@dataclass(frozen=True)
class ExpertRecord:
    """What the pool knows and the expert declared (专家承诺/申报)."""

    id: str
    specialties: frozenset[str]
    region: str | None
    field_since: date                    # start of practice in the field, for D6
    title: TitleLevel
    employments: tuple[Employment, ...] = ()
    roles: tuple[OrgRole, ...] = ()
    relatives: tuple[Relative, ...] = ()
    supervisory_staff: bool = False      # works for a supervising department
    services: tuple[Service, ...] = ()


@dataclass(frozen=True)
class Bidder:
    """A bidder of the project: its org code and its legal representative's person key."""

    org_code: str
    legal_representative: str | None = None


@dataclass(frozen=True)
class Parties:
    """Everyone an expert must be independent of, for one project (or lot)."""

    tenderee: str
    bidders: tuple[Bidder, ...] = ()
    supervisory_body: str | None = None   # its org code, if known


@dataclass(frozen=True)
class RecusalParameters:
    """Numbers for D3 from the rulebook.

    ``interest_years``: look-back for employment, director roles and control (3 under
    GP条例 9). ``service_limit`` services to the same tenderee within the last
    ``service_window_days`` days recuse (a local rule; None disables it).
    """

    interest_years: int
    service_limit: int | None = None
    service_window_days: int | None = None

    def __post_init__(self) -> None:
        if self.interest_years < 0:
            raise ValueError("interest_years must be >= 0")
        if (self.service_limit is None) != (self.service_window_days is None):
            raise ValueError("service_limit and service_window_days go together")
        if self.service_limit is not None and self.service_limit < 1:
            raise ValueError("service_limit must be >= 1")
        if self.service_window_days is not None and self.service_window_days < 1:
            raise ValueError("service_window_days must be >= 1")


@dataclass(frozen=True)
class QualificationParameters:
    """Numbers for D6 from the rulebook: years in the field and the lowest title."""

    min_years_in_field: int
    min_title: TitleLevel


@dataclass(frozen=True)
class Reason:
    """One reason an expert may not sit: a code, the rule it comes from, and whom it concerns.

    ``subject`` is the org code (or the person key) the reason is about, so a supervisor
    sees which bidder the conflict is with; None when the reason concerns no one party.
    """

    code: str
    rule: str
    subject: str | None = None


# --------------------------------------------------------------------------- dates

def local_date(now: datetime) -> date:
    """The calendar date of ``now`` in Asia/Shanghai; ``now`` must be aware."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    return now.astimezone(_SHANGHAI).date()


def years_before(day: date, years: int) -> date:
    """The same calendar day ``years`` earlier; 29 February falls back to 28 February."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def _within(end: date | None, cutoff: date) -> bool:
    # A period counts if any part of it lies on or after the cutoff; a declared future
    # position (start after today) counts too, since the interest exists already.
    return end is None or end >= cutoff


def _norm(key: str | None) -> str | None:
    if key is None:
        return None
    key = key.strip().casefold()
    return key or None


# --------------------------------------------------------------------------- rules

def recusal_reasons(expert: ExpertRecord, parties: Parties, now: datetime,
                    params: RecusalParameters) -> frozenset[Reason]:
    """Every D3 reason ``expert`` must stand aside for this project; empty if none.

    Checks: employment at a bidder or the tenderee, a director role or ownership/control
    of one, within ``params.interest_years`` (GP条例 9; 条例 46 for the tenderee); a close
    relative who is a bidder's legal representative (GP条例 9) or who works at, directs or
    controls a bidder (条例 46); staff of the supervising department (条例 46); and, when
    the rulebook sets it, ``service_limit`` or more services to the same tenderee within
    the window.
    """
    today = local_date(now)
    cutoff = years_before(today, params.interest_years)
    bidder_codes = {b.org_code for b in parties.bidders}
    reasons: set[Reason] = set()

    def party_reason(org: str, for_bidder: RecusalCode, for_tenderee: RecusalCode) -> None:
        if org in bidder_codes:
            reasons.add(Reason(for_bidder, "D3", org))
        if org == parties.tenderee:
            reasons.add(Reason(for_tenderee, "D3", org))

    for job in expert.employments:
        if _within(job.end, cutoff):
            party_reason(job.org_code, RecusalCode.EMPLOYED_BY_BIDDER,
                         RecusalCode.EMPLOYED_BY_TENDEREE)
            if parties.supervisory_body is not None and job.org_code == parties.supervisory_body \
                    and job.end is None:
                reasons.add(Reason(RecusalCode.SUPERVISORY_STAFF, "D3", job.org_code))
    for role in expert.roles:
        if _within(role.end, cutoff):
            if role.kind is RoleKind.DIRECTOR:
                party_reason(role.org_code, RecusalCode.DIRECTOR_OF_BIDDER,
                             RecusalCode.DIRECTOR_OF_TENDEREE)
            else:
                party_reason(role.org_code, RecusalCode.CONTROLS_BIDDER,
                             RecusalCode.CONTROLS_TENDEREE)

    representatives = {_norm(b.legal_representative): b.org_code for b in parties.bidders
                       if _norm(b.legal_representative) is not None}
    for relative in expert.relatives:
        bidder = representatives.get(_norm(relative.person_key))
        if bidder is not None:
            reasons.add(Reason(RecusalCode.RELATIVE_OF_LEGAL_REPRESENTATIVE, "D3", bidder))
        for org in relative.org_codes & bidder_codes:
            reasons.add(Reason(RecusalCode.RELATIVE_AT_BIDDER, "D3", org))

    if expert.supervisory_staff:
        reasons.add(Reason(RecusalCode.SUPERVISORY_STAFF, "D3", parties.supervisory_body))

    if params.service_limit is not None and params.service_window_days is not None:
        window_start = date.fromordinal(today.toordinal() - params.service_window_days + 1)
        recent = sum(1 for s in expert.services
                     if s.tenderee_code == parties.tenderee and window_start <= s.on <= today)
        if recent >= params.service_limit:
            reasons.add(Reason(RecusalCode.TOO_MANY_SERVICES_TO_TENDEREE, "D3",
                               parties.tenderee))
    return frozenset(reasons)


def qualification_reasons(expert: ExpertRecord, now: datetime,
                          params: QualificationParameters) -> frozenset[Reason]:
    """D6 reasons ``expert`` is not qualified: too few years in the field, title too low.

    Years are whole years completed by today (Asia/Shanghai): practice since 2018-06-01
    makes 8 years on 2026-06-01.
    """
    today = local_date(now)
    reasons: set[Reason] = set()
    if expert.field_since > years_before(today, params.min_years_in_field):
        reasons.add(Reason(QualificationCode.INSUFFICIENT_EXPERIENCE, "D6"))
    if expert.title < params.min_title:
        reasons.add(Reason(QualificationCode.TITLE_TOO_LOW, "D6"))
    return frozenset(reasons)


def exclusion_reasons(expert: ExpertRecord, parties: Parties, now: datetime,
                      recusal: RecusalParameters,
                      qualification: QualificationParameters) -> frozenset[Reason]:
    """Recusal and qualification together: what a draw's eligibility predicate checks.

    A recusal a supplier requests and the agent accepts (GP法 12) concerns a named expert,
    so it goes into the draw request's ``exclude`` instead.
    """
    return recusal_reasons(expert, parties, now, recusal) | qualification_reasons(
        expert, now, qualification)
