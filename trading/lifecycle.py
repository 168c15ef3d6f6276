"""The life of a trading project (项目生命周期): a pure state machine per procedure.

Pure: the pinned :class:`Schedule`, the recorded :class:`Milestones` and ``now`` in; a
:class:`~trading.domain.Status`, the next instant worth checking, or new milestones out.

Timed steps are *derived*, never stored (indico's ``Survey.state``): a published project
is ``published`` until its documents are issued, ``bidding`` until the bid deadline,
then ``closed`` (or straight to ``evaluation`` when the procedure has no opening), so
nothing is late because a job did not run. :func:`next_check` gives the earliest future
instant at which the derived status can change (openprocurement's chronograph). Every
other step is a recorded fact, added by a guarded :func:`transition` that refuses with a
stable :attr:`TransitionRefused.code`. A suspension (暂停, RULES H3) freezes everything:
while it lasts the status is ``suspended`` whatever the time.

Milestones are read *as of* ``now``: a fact recorded after ``now`` is ignored, so the
status at any past instant can be derived from the same record.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from core.clock import parse_instant
from core.errors import Conflict
from trading.domain import Domain, Procedure, Status

__all__ = [
    "Action", "ProcedurePath", "Schedule", "Suspension", "Milestones", "TransitionRefused",
    "Due", "PATHS", "DOMAIN_PATHS", "ALLOWED_FROM", "TERMINAL", "procedure_path",
    "derive_status", "next_check", "transition", "due_dates",
]


class Action(StrEnum):
    """What a person does to a project; each records one milestone."""

    PUBLISH = "publish"
    CANCEL = "cancel"
    START_OPENING = "start_opening"      # 开标 (or the auction session) begins
    FINISH_OPENING = "finish_opening"
    FAIL = "fail"                        # 流标 / 废标
    SUBMIT_REPORT = "submit_report"      # evaluation done: the report (评标报告) is in
    START_PUBLICITY = "start_publicity"  # 中标候选人公示
    AWARD = "award"                      # 中标/成交通知书
    SIGN_CONTRACT = "sign_contract"
    SUSPEND = "suspend"
    RESUME = "resume"


# -- the path of each procedure, as data ------------------------------------------------

@dataclass(frozen=True)
class ProcedurePath:
    """Which optional steps a procedure has.

    ``opening``: bids are sealed and opened (开标) after the deadline; for an online
    auction the OPENING status is the auction session. Without it the status goes from
    ``bidding`` straight to ``evaluation`` at the deadline (single source, listing).
    ``publicity``: candidate publicity before the award: ``required`` (construction,
    条例 54), ``none``, or ``optional`` (the domain is not known).
    """

    opening: bool
    publicity: str = "none"


_TENDER = ProcedurePath(opening=True, publicity="optional")
_SEALED = ProcedurePath(opening=True)
_UNSEALED = ProcedurePath(opening=False)

#: Paths by procedure alone, used when the caller does not say the domain.
PATHS: dict[Procedure, ProcedurePath] = {
    Procedure.OPEN_TENDER: _TENDER,
    Procedure.INVITED_TENDER: _TENDER,
    Procedure.COMPETITIVE_NEGOTIATION: _SEALED,
    Procedure.COMPETITIVE_CONSULTATION: _SEALED,
    Procedure.INQUIRY: _SEALED,
    Procedure.SINGLE_SOURCE: _UNSEALED,
    Procedure.LISTING_AGREEMENT: _UNSEALED,
    Procedure.SEALED_SINGLE_BID: _SEALED,
    Procedure.ONLINE_AUCTION: _SEALED,
}

#: Where the domain decides: construction publicises candidates, GP announces the award.
DOMAIN_PATHS: dict[tuple[Domain, Procedure], ProcedurePath] = {
    (Domain.CONSTRUCTION, Procedure.OPEN_TENDER): ProcedurePath(opening=True, publicity="required"),
    (Domain.CONSTRUCTION, Procedure.INVITED_TENDER): ProcedurePath(opening=True, publicity="required"),
    (Domain.GOVERNMENT_PROCUREMENT, Procedure.OPEN_TENDER): _SEALED,
    (Domain.GOVERNMENT_PROCUREMENT, Procedure.INVITED_TENDER): _SEALED,
}


def procedure_path(procedure: Procedure | str | ProcedurePath | tuple[Any, Any],
                   domain: Domain | str | None = None) -> ProcedurePath:
    """The path of ``procedure`` (optionally within ``domain``; a ``(domain, procedure)``
    pair or a :class:`ProcedurePath` is accepted too)."""
    if isinstance(procedure, ProcedurePath):
        return procedure
    if isinstance(procedure, tuple):
        domain, procedure = procedure
    procedure = Procedure(procedure)
    if domain is not None:
        path = DOMAIN_PATHS.get((Domain(domain), procedure))
        if path is not None:
            return path
    return PATHS[procedure]


# -- schedule and milestones ------------------------------------------------------------

def _utc(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        return parse_instant(value)
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime")
    return value.astimezone(timezone.utc)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


# Pairs that must not run backwards when both are set.
_ORDER = [("documents_from", "documents_until"), ("documents_from", "bid_deadline"),
          ("clarification_deadline", "bid_deadline"), ("objection_deadline", "bid_deadline"),
          ("bid_deadline", "evaluation_due"), ("bid_deadline", "publicity_start"),
          ("publicity_start", "publicity_end"), ("bid_deadline", "award_due"),
          ("publicity_end", "award_due"), ("award_due", "contract_due"),
          ("bid_deadline", "contract_due")]


@dataclass(frozen=True)
class Schedule:
    """The dates pinned at publication (aware, normalised to UTC). ``bid_deadline`` is
    also the opening time (RULES C1). Optional where a procedure has no such step."""

    documents_from: datetime | None = None
    documents_until: datetime | None = None
    clarification_deadline: datetime | None = None
    objection_deadline: datetime | None = None
    bid_deadline: datetime | None = None
    evaluation_due: datetime | None = None
    publicity_start: datetime | None = None
    publicity_end: datetime | None = None
    award_due: datetime | None = None
    contract_due: datetime | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _utc(getattr(self, f.name), f.name))

    def problems(self) -> list[str]:
        """Pairs out of order, as ``"later before earlier"`` texts (empty when fine)."""
        return [f"{later} before {earlier}" for earlier, later in _ORDER
                if getattr(self, earlier) and getattr(self, later)
                and getattr(self, later) < getattr(self, earlier)]

    def instants(self) -> dict[str, datetime]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    def shifted(self, after: datetime, by: timedelta) -> Schedule:
        """Every instant later than ``after`` moved by ``by`` (e.g. the length of a
        suspension); the service rounds and re-checks the result against the rules."""
        return replace(self, **{name: at + by for name, at in self.instants().items() if at > after})

    def to_json(self) -> dict[str, str | None]:
        return {f.name: _iso(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str) -> Schedule:
        data = json.loads(data) if isinstance(data, str) else data
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})


@dataclass(frozen=True)
class Suspension:
    """One suspension by a supervisor, with its reasons; open while ``resumed_at`` is None."""

    at: datetime
    reason: str
    resumed_at: datetime | None = None
    resume_reason: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", _utc(self.at, "at"))
        object.__setattr__(self, "resumed_at", _utc(self.resumed_at, "resumed_at"))

    def active(self, now: datetime) -> bool:
        return self.at <= now and (self.resumed_at is None or self.resumed_at > now)


_INSTANTS = ("published_at", "opening_started_at", "opening_finished_at", "report_at",
             "publicity_started_at", "awarded_at", "contracted_at", "cancelled_at", "failed_at")


@dataclass(frozen=True)
class Milestones:
    """The facts that happened, each with the server time it happened at."""

    published_at: datetime | None = None
    opening_started_at: datetime | None = None
    opening_finished_at: datetime | None = None
    report_at: datetime | None = None
    publicity_started_at: datetime | None = None
    awarded_at: datetime | None = None
    contracted_at: datetime | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    failed_at: datetime | None = None
    fail_reason: str | None = None
    suspensions: tuple[Suspension, ...] = ()

    def __post_init__(self) -> None:
        for name in _INSTANTS:
            object.__setattr__(self, name, _utc(getattr(self, name), name))
        object.__setattr__(self, "suspensions", tuple(self.suspensions))

    def as_of(self, now: datetime) -> Milestones:
        """Only the facts that had happened by ``now``."""
        kept = {name: None for name in _INSTANTS if getattr(self, name) and getattr(self, name) > now}
        suspensions = tuple(
            s if s.resumed_at is None or s.resumed_at <= now else replace(s, resumed_at=None, resume_reason=None)
            for s in self.suspensions if s.at <= now)
        return replace(self, **kept, suspensions=suspensions)

    @property
    def open_suspension(self) -> Suspension | None:
        """The suspension in force, if the last one has not been lifted."""
        if self.suspensions and self.suspensions[-1].resumed_at is None:
            return self.suspensions[-1]
        return None

    def latest(self) -> datetime | None:
        """The latest instant recorded (a transition may not go back before it)."""
        instants = [getattr(self, n) for n in _INSTANTS if getattr(self, n)]
        for s in self.suspensions:
            instants += [s.at] + ([s.resumed_at] if s.resumed_at else [])
        return max(instants, default=None)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (for the project's ``milestones`` column)."""
        data: dict[str, Any] = {name: _iso(getattr(self, name)) for name in _INSTANTS}
        data.update(cancel_reason=self.cancel_reason, fail_reason=self.fail_reason)
        data["suspensions"] = [{"at": _iso(s.at), "reason": s.reason, "resumed_at": _iso(s.resumed_at),
                                "resume_reason": s.resume_reason} for s in self.suspensions]
        return {k: v for k, v in data.items() if v not in (None, [])}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str | None) -> Milestones:
        data = json.loads(data) if isinstance(data, str) else (data or {})
        known = {f.name for f in fields(cls)} - {"suspensions"}
        return cls(**{k: v for k, v in data.items() if k in known},
                   suspensions=tuple(Suspension(**s) for s in data.get("suspensions", [])))


# -- deriving the status ----------------------------------------------------------------

TERMINAL = frozenset({Status.CANCELLED, Status.FAILED, Status.CONTRACTED})


def _check_now(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    return now.astimezone(timezone.utc)


def derive_status(procedure: Procedure | str | ProcedurePath | tuple[Any, Any], schedule: Schedule,
                  milestones: Milestones, now: datetime, *, domain: Domain | str | None = None) -> Status:
    """The status at ``now``: recorded facts first (latest step wins), then the timed
    steps from the schedule. At the bid deadline exactly the project is closed."""
    path, now = procedure_path(procedure, domain), _check_now(now)
    m = milestones.as_of(now)
    if m.cancelled_at:
        return Status.CANCELLED
    if m.failed_at:
        return Status.FAILED
    if m.open_suspension:
        return Status.SUSPENDED
    for name, status in (("contracted_at", Status.CONTRACTED), ("awarded_at", Status.AWARDED),
                         ("publicity_started_at", Status.PUBLICITY), ("report_at", Status.EVALUATION),
                         ("opening_finished_at", Status.EVALUATION), ("opening_started_at", Status.OPENING)):
        if getattr(m, name):
            return status
    if not m.published_at:
        return Status.DRAFT
    if schedule.bid_deadline and now >= schedule.bid_deadline:
        return Status.CLOSED if path.opening else Status.EVALUATION
    if schedule.documents_from and now < schedule.documents_from:
        return Status.PUBLISHED
    return Status.BIDDING


def next_check(procedure: Procedure | str | ProcedurePath | tuple[Any, Any], schedule: Schedule,
               milestones: Milestones, now: datetime, *, domain: Domain | str | None = None) -> datetime | None:
    """The earliest instant after ``now`` at which the derived status can change by
    itself (documents issued, bid deadline); None when only an action can change it
    (a draft, a suspension, a final state, or every timed step passed)."""
    status = derive_status(procedure, schedule, milestones, now, domain=domain)
    if status not in (Status.PUBLISHED, Status.BIDDING):
        return None
    now = _check_now(now)
    due = [at for at in (schedule.documents_from, schedule.bid_deadline) if at and at > now]
    return min(due, default=None)


@dataclass(frozen=True)
class Due:
    """A scheduled limit whose step has not been recorded yet (for supervision)."""

    name: str
    due_at: datetime
    overdue: bool


_DUE = (("evaluation_due", "report_at"), ("publicity_start", "publicity_started_at"),
        ("award_due", "awarded_at"), ("contract_due", "contracted_at"))


def due_dates(schedule: Schedule, milestones: Milestones, now: datetime) -> list[Due]:
    """The schedule's limits still open at ``now`` (none once the project is final)."""
    now = _check_now(now)
    m = milestones.as_of(now)
    if m.cancelled_at or m.failed_at or m.contracted_at or not m.published_at:
        return []
    return [Due(limit, getattr(schedule, limit), now >= getattr(schedule, limit))
            for limit, fact in _DUE if getattr(schedule, limit) and not getattr(m, fact)]


# -- transitions ------------------------------------------------------------------------

_LIVE = {Status.PUBLISHED, Status.BIDDING, Status.CLOSED, Status.OPENING, Status.EVALUATION,
         Status.PUBLICITY, Status.AWARDED}

#: From which statuses each action may be taken (further guards in :func:`transition`).
ALLOWED_FROM: dict[Action, frozenset[Status]] = {
    Action.PUBLISH: frozenset({Status.DRAFT}),
    Action.CANCEL: frozenset(_LIVE | {Status.DRAFT, Status.SUSPENDED}),
    Action.START_OPENING: frozenset({Status.CLOSED}),
    Action.FINISH_OPENING: frozenset({Status.OPENING}),
    Action.FAIL: frozenset({Status.CLOSED, Status.OPENING, Status.EVALUATION, Status.PUBLICITY,
                            Status.SUSPENDED}),
    Action.SUBMIT_REPORT: frozenset({Status.EVALUATION}),
    Action.START_PUBLICITY: frozenset({Status.EVALUATION}),
    Action.AWARD: frozenset({Status.EVALUATION, Status.PUBLICITY}),
    Action.SIGN_CONTRACT: frozenset({Status.AWARDED}),
    Action.SUSPEND: frozenset(_LIVE),
    Action.RESUME: frozenset({Status.SUSPENDED}),
}

_NEEDS_REASON = {Action.CANCEL, Action.FAIL, Action.SUSPEND, Action.RESUME}

_MESSAGES: dict[str, tuple[str, str]] = {
    "unknown_action": ("未知操作", "unknown action"),
    "wrong_state": ("当前状态不允许此操作", "not allowed in the current status"),
    "suspended": ("项目已被暂停，恢复前不得继续", "the project is suspended"),
    "before_deadline": ("投标截止时间未到", "the bid deadline has not passed"),
    "no_opening_in_procedure": ("该交易方式没有开标环节", "this procedure has no opening"),
    "no_publicity_in_procedure": ("该交易方式没有中标候选人公示", "this procedure has no candidate publicity"),
    "report_missing": ("评标报告尚未提交", "the evaluation report is not in"),
    "report_already_submitted": ("评标报告已提交", "the evaluation report is already in"),
    "publicity_required": ("须先公示中标候选人", "candidates must be publicised first"),
    "publicity_not_over": ("公示期未满", "the publicity period has not ended"),
    "reason_required": ("须说明理由", "a reason is required"),
    "schedule_incomplete": ("时间安排不完整", "the schedule is incomplete"),
    "schedule_inconsistent": ("时间安排前后矛盾", "the schedule is inconsistent"),
    "deadline_in_past": ("投标截止时间已过", "the bid deadline is in the past"),
    "schedule_required": ("暂停期间已过的时间节点须重新安排", "dates passed during the suspension must be rescheduled"),
    "time_went_backwards": ("操作时间早于已记录的事件", "the action predates a recorded event"),
    "not_suspended": ("项目未被暂停", "the project is not suspended"),
}


class TransitionRefused(Conflict):
    """A transition the project's state does not allow. ``code`` is stable (see
    ``_MESSAGES``); ``from_status`` and ``action`` say what was tried."""

    def __init__(self, code: str, from_status: Status | None, action: str, **details: Any) -> None:
        zh, en = _MESSAGES.get(code, (code, code))
        self.from_status = from_status
        self.action = str(action)
        super().__init__(f"Cannot {action} ({en})", code=code, message_zh=f"不能执行 {action}：{zh}",
                         action=str(action), from_status=str(from_status) if from_status else None, **details)


def transition(procedure: Procedure | str | ProcedurePath | tuple[Any, Any], schedule: Schedule,
               milestones: Milestones, action: Action | str, now: datetime, *, reason: str | None = None,
               domain: Domain | str | None = None, new_schedule: Schedule | None = None) -> Milestones:
    """Apply ``action`` at ``now`` and return the new milestones, or raise
    :class:`TransitionRefused`.

    ``new_schedule`` is the schedule to pin when publishing, to start publicity with (its
    ``publicity_end``), or to resume with when dates passed during a suspension; the
    caller stores it. ``reason`` is required to cancel, fail, suspend and resume.
    """
    path, now = procedure_path(procedure, domain), _check_now(now)
    try:
        action = Action(action)
    except ValueError:
        raise TransitionRefused("unknown_action", None, str(action)) from None
    status = derive_status(path, schedule, milestones, now)
    latest = milestones.latest()
    if latest is not None and now < latest:
        raise TransitionRefused("time_went_backwards", status, action, latest=_iso(latest))
    # The procedure's path first: no state makes a missing step possible.
    if action in (Action.START_OPENING, Action.FINISH_OPENING) and not path.opening:
        raise TransitionRefused("no_opening_in_procedure", status, action)
    if action is Action.START_PUBLICITY and path.publicity == "none":
        raise TransitionRefused("no_publicity_in_procedure", status, action)
    if action is Action.RESUME and status is not Status.SUSPENDED:
        raise TransitionRefused("not_suspended", status, action)
    if status not in ALLOWED_FROM[action]:
        if status is Status.SUSPENDED:
            raise TransitionRefused("suspended", status, action)
        if action is Action.START_OPENING and status in (Status.PUBLISHED, Status.BIDDING):
            raise TransitionRefused("before_deadline", status, action)
        raise TransitionRefused("wrong_state", status, action)
    if action in _NEEDS_REASON and not (reason and reason.strip()):
        raise TransitionRefused("reason_required", status, action)
    handler = _HANDLERS.get(action)
    if handler is not None:
        return handler(path, new_schedule or schedule, milestones, now, status, reason, schedule)
    return replace(milestones, **{_RECORDS[action]: now})


_RECORDS = {Action.START_OPENING: "opening_started_at", Action.FINISH_OPENING: "opening_finished_at",
            Action.SIGN_CONTRACT: "contracted_at"}


def _publish(path: ProcedurePath, schedule: Schedule, m: Milestones, now: datetime, status: Status,
             reason: str | None, old: Schedule) -> Milestones:
    if schedule.bid_deadline is None:
        raise TransitionRefused("schedule_incomplete", status, Action.PUBLISH, missing="bid_deadline")
    if schedule.problems():
        raise TransitionRefused("schedule_inconsistent", status, Action.PUBLISH, problems=schedule.problems())
    if schedule.bid_deadline <= now:
        raise TransitionRefused("deadline_in_past", status, Action.PUBLISH)
    return replace(m, published_at=now)


def _submit_report(path: ProcedurePath, schedule: Schedule, m: Milestones, now: datetime, status: Status,
                   reason: str | None, old: Schedule) -> Milestones:
    if m.report_at:
        raise TransitionRefused("report_already_submitted", status, Action.SUBMIT_REPORT)
    return replace(m, report_at=now)


def _start_publicity(path: ProcedurePath, schedule: Schedule, m: Milestones, now: datetime, status: Status,
                     reason: str | None, old: Schedule) -> Milestones:
    if not m.report_at:
        raise TransitionRefused("report_missing", status, Action.START_PUBLICITY)
    if schedule.publicity_end is None:
        raise TransitionRefused("schedule_incomplete", status, Action.START_PUBLICITY, missing="publicity_end")
    if schedule.publicity_end <= now:
        raise TransitionRefused("schedule_inconsistent", status, Action.START_PUBLICITY,
                                problems=["publicity_end before now"])
    return replace(m, publicity_started_at=now)


def _award(path: ProcedurePath, schedule: Schedule, m: Milestones, now: datetime, status: Status,
           reason: str | None, old: Schedule) -> Milestones:
    if status is Status.EVALUATION:
        if not m.report_at:
            raise TransitionRefused("report_missing", status, Action.AWARD)
        if path.publicity == "required":
            raise TransitionRefused("publicity_required", status, Action.AWARD)
    elif schedule.publicity_end is not None and now < schedule.publicity_end:
        raise TransitionRefused("publicity_not_over", status, Action.AWARD, publicity_end=_iso(schedule.publicity_end))
    return replace(m, awarded_at=now)


def _cancel(path: ProcedurePath, schedule: Schedule, m: Milestones, now: datetime, status: Status,
            reason: str | None, old: Schedule) -> Milestones:
    return replace(m, cancelled_at=now, cancel_reason=reason)


def _fail(path: ProcedurePath, schedule: Schedule, m: Milestones, now: datetime, status: Status,
          reason: str | None, old: Schedule) -> Milestones:
    return replace(m, failed_at=now, fail_reason=reason)


def _suspend(path: ProcedurePath, schedule: Schedule, m: Milestones, now: datetime, status: Status,
             reason: str | None, old: Schedule) -> Milestones:
    return replace(m, suspensions=(*m.suspensions, Suspension(now, reason or "")))


def _resume(path: ProcedurePath, schedule: Schedule, m: Milestones, now: datetime, status: Status,
            reason: str | None, old: Schedule) -> Milestones:
    current = m.open_suspension
    assert current is not None  # status is SUSPENDED
    # A date that was still ahead when the suspension began and has passed meanwhile
    # must be moved (条例 22 pauses; GP法 57): the caller brings the new schedule.
    passed = [name for name, at in old.instants().items()
              if at > current.at and (getattr(schedule, name) is not None and getattr(schedule, name) <= now)]
    if passed:
        raise TransitionRefused("schedule_required", status, Action.RESUME, passed=passed)
    if schedule.problems():
        raise TransitionRefused("schedule_inconsistent", status, Action.RESUME, problems=schedule.problems())
    lifted = replace(current, resumed_at=now, resume_reason=reason)
    return replace(m, suspensions=(*m.suspensions[:-1], lifted))


_HANDLERS = {
    Action.PUBLISH: _publish, Action.SUBMIT_REPORT: _submit_report,
    Action.START_PUBLICITY: _start_publicity, Action.AWARD: _award, Action.CANCEL: _cancel,
    Action.FAIL: _fail, Action.SUSPEND: _suspend, Action.RESUME: _resume,
}
