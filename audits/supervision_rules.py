"""Electronic supervision (电子监察, RULES H5): yellow and red cards as pure rules.

Pure: plain values in (steps with their start, their legal limit, when they were done, and
``now``), cards out. No Flask, no database, no clock, and nothing from ``trading``: a legal
limit is any *Deadline-like* value (``trading.calendar.Deadline`` is one) with ``at``,
``provisional``, ``rule``, ``citation``, ``step``, ``sense``, ``last_day`` and ``allows()``.

Cards are derived on every read, never stored as a status a job must keep up to date
(indico's ``Survey.state``): a card exists at ``now`` because of the data and ``now``.

- A step that must be done *within* a limit gets a **yellow** card once ``now`` is inside
  the yellow window before its limit (the local threshold, ``EBID_YELLOW_CARD_HOURS``),
  and a **red** card when the limit passes undone or the step was done late.
- A window that must *last* (publicity, availability) and an event that may come *not
  before* a day (a bid deadline 20 days after the documents) are judged as soon as both
  ends are known: too short is **red** at once (a rule broken, not a limit nearing).
- A pause of the process (a suspension, RULES H3; an objection, A4/E4) stops the clock of
  the process's own steps: their limits move by the whole days paused, and while a pause
  lasts no card is raised for them. Handlers' limits (answering a complaint, refunding a
  security) keep running: a pause of the tender does not pause the duty to answer.

:func:`next_check` gives the earliest instant at which a card can appear or change
(openprocurement's chronograph), so a caller knows when to look again.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from enum import StrEnum
from itertools import combinations
from typing import Any, Protocol
from zoneinfo import ZoneInfo

__all__ = [
    "YELLOW", "RED", "SEVERITIES", "StepState", "LimitLike", "Pause", "Watch", "Card", "PeriodRef",
    "ItemKind", "COMPLAINT_KINDS", "ItemFacts", "SecurityFacts", "BidFacts", "Indicator",
    "FALLBACK_RULES", "PROJECT_EVENTS", "SECURITY_STEPS", "SUSPENSION_STEP", "step_title",
    "judge", "card_for", "breach_card", "project_watches", "item_watches", "security_watches",
    "suspension_watches", "filing_steps", "untracked_steps", "next_check", "collusion_indicators",
    "RELATED_KINDS", "sort_cards", "whole_days", "Judgement", "StoredLimit", "counting_day",
]

SHANGHAI = ZoneInfo("Asia/Shanghai")
YELLOW = "yellow"
RED = "red"
SEVERITIES = (YELLOW, RED)
_DAY = timedelta(days=1)


class StepState(StrEnum):
    """Where a watched step stands at ``now``."""

    NOT_STARTED = "not_started"    # the event its limit runs from has not happened
    PENDING = "pending"            # running, not yet inside the yellow window
    DUE_SOON = "due_soon"          # inside the yellow window (yellow card)
    OVERDUE = "overdue"            # the limit passed and the step is not done (red card)
    PAUSED = "paused"              # the process is paused; the clock stands still
    DONE = "done"                  # done within the limit
    LATE = "late"                  # done, but after the limit (red card)
    OK = "ok"                      # a window or a day that satisfies its rule
    BREACHED = "breached"          # a window too short, a day too early (red card)
    NOT_REQUIRED = "not_required"  # no longer has to happen (project cancelled, item closed)


_CARD_OF_STATE = {StepState.DUE_SOON: YELLOW, StepState.OVERDUE: RED, StepState.LATE: RED,
                  StepState.BREACHED: RED}


class LimitLike(Protocol):
    """What supervision needs of a legal limit (``trading.calendar.Deadline`` fits)."""

    at: datetime
    last_day: date
    provisional: bool
    rule: str | None
    citation: str | None
    step: str | None
    sense: Any

    def allows(self, instant: datetime) -> bool: ...


def counting_day(instant: datetime) -> date:
    """The day ``instant`` counts on in Asia/Shanghai; exactly 00:00 is 24:00 of the day
    before (as ``trading.calendar.counting_day``; repeated here to stay below trading)."""
    local = instant.astimezone(SHANGHAI)
    return local.date() - _DAY if local.time() == time(0) else local.date()


@dataclass(frozen=True)
class StoredLimit:
    """A legal limit stored as values by the service that started the step (its ``due_at``
    computed from the pinned rules then), read back as a Deadline-like value."""

    at: datetime
    rule: str | None
    citation: str | None
    step: str | None
    sense: str = "within"
    provisional: bool = False

    @property
    def last_day(self) -> date:
        return counting_day(self.at)

    def allows(self, instant: datetime) -> bool:
        if self.sense == "lasts":
            return instant >= self.at
        if self.sense == "not_before_day":
            return counting_day(instant) >= self.last_day
        return instant < self.at


@dataclass(frozen=True)
class Pause:
    """A stretch of time the process stood still (``end`` None while it lasts)."""

    start: datetime
    end: datetime | None = None
    reason: str = ""


@dataclass(frozen=True)
class Watch:
    """One step watched against its legal limit.

    ``limit`` is None while the event the limit runs from has not happened. ``done_at`` is
    the event that ends the step (for a window: its end; for a day rule: the later event).
    ``subject`` names the item for per-item steps (``security:12``, ``complaint:3``).
    ``pauses`` stop the clock of a *within* step (see the module docstring).
    """

    project_id: int
    step: str
    limit: LimitLike | None
    start: datetime | None = None
    done_at: datetime | None = None
    subject: str | None = None
    label_zh: str = ""
    label_en: str = ""
    expected: bool = True
    pauses: tuple[Pause, ...] = ()
    rule: str | None = None        # when the limit is None, still say whose step it is
    citation: str | None = None


@dataclass(frozen=True)
class Judgement:
    """A watch judged at ``now``: its state and its effective due instant."""

    state: StepState
    due_at: datetime | None
    shifted_days: int = 0


@dataclass(frozen=True)
class Card:
    """A yellow or red card (黄牌/红牌) on one step of one project."""

    project_id: int
    step: str
    rule: str
    citation: str
    severity: str
    due_at: datetime | None
    message_zh: str
    message_en: str
    provisional: bool = False
    subject: str | None = None
    state: str = ""
    done_at: datetime | None = None

    @property
    def key(self) -> str:
        """Stable identity of the card's cause, the same on every read while it lasts."""
        return f"{self.project_id}/{self.rule}/{self.step}/{self.subject or '-'}"

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "project": self.project_id, "step": self.step, "rule": self.rule,
                "citation": self.citation, "severity": self.severity, "due_at": self.due_at,
                "done_at": self.done_at, "state": self.state, "subject": self.subject,
                "message_zh": self.message_zh, "message_en": self.message_en,
                "provisional": self.provisional}


# -- step names, as people read them -------------------------------------------------------

_TITLES: dict[str, tuple[str, str]] = {
    "bid_preparation": ("投标文件编制期", "the bid preparation time"),
    "document_availability": ("招标文件发售期", "the document availability period"),
    "clarification": ("澄清或修改的发出", "the clarification notice"),
    "objection": ("对招标文件提出异议的期限", "the time for objections to the documents"),
    "objection_reply": ("招标文件异议的答复", "the reply to an objection to the documents"),
    "notice": ("公告期", "the notice period"),
    "publicity_start": ("中标候选人公示的开始", "the start of candidate publicity"),
    "publicity": ("中标候选人公示期", "the candidate publicity period"),
    "publicity_objection_reply": ("中标候选人异议的答复", "the reply to an objection to the candidates"),
    "award": ("确定中标（成交）供应商", "the award decision"),
    "contract": ("签订书面合同", "signing the contract"),
    "report": ("向监督部门提交书面报告", "the written report to the supervisor"),
    "withdrawal_refund": ("撤回投标的保证金退还", "refunding a withdrawn bid's security"),
    "loser_refund": ("未中标人的保证金退还", "refunding a losing bidder's security"),
    "winner_refund": ("中标人的保证金退还", "refunding the winner's security"),
    "complaint": ("投诉期限", "the time to file a complaint"),
    "complaint_acceptance": ("投诉的受理", "accepting a complaint"),
    "complaint_decision": ("投诉处理决定", "deciding a complaint"),
    "question": ("质疑期限", "the time to file a question"),
    "question_reply": ("质疑的答复", "answering a question"),
    "suspension": ("暂停期限", "the suspension"),
    "response": ("响应文件编制期", "the response time"),
    "single_source_publicity": ("单一来源公示期", "the single-source publicity"),
    "listing": ("挂牌公告期", "the listing period"),
    "listing_extension": ("挂牌延期", "the listing extension"),
    "payment": ("交易价款支付", "the payment"),
    "down_payment": ("首期价款支付", "the down payment"),
    "balance": ("剩余价款支付", "the balance payment"),
    "result_publicity": ("交易结果公告期", "the result publicity"),
    "prequalification_clarification": ("资格预审文件的澄清", "the prequalification clarification"),
    "committee": ("评标委员会的组成", "the evaluation committee"),
    "expert_selection": ("评标专家的确定", "choosing the experts"),
    "opening": ("开标", "the opening"),
    "related_bidders": ("关联投标人", "related bidders"),
    "collusion": ("串通投标迹象", "signs of collusion"),
}


def step_title(step: str) -> tuple[str, str]:
    """The step's name in Chinese and English."""
    return _TITLES.get(step, (step, step.replace("_", " ")))


# -- rules the pinned rulebook may lack ------------------------------------------------------

#: Breaches watched whose rule has no entry in the packaged rulebook (RULES.md ids and
#: citations). The pinned rules win when they have the id; this is only the fallback.
FALLBACK_RULES: dict[str, tuple[str, str]] = {
    "D2": ("D2", "招标投标法实施条例 Arts 46–47; 政府采购法实施条例 Art 39"),
    "B6": ("B6", "招标投标法实施条例 Arts 34, 40; 政府采购法实施条例 Art 18"),
}


# -- judging one step -------------------------------------------------------------------------

def whole_days(span: timedelta) -> int:
    """A span in whole days, rounded up (a limit moved by a pause ends at 24:00 again)."""
    return max(0, math.ceil(span / _DAY))


def _sense(limit: LimitLike) -> str:
    return str(getattr(limit.sense, "value", limit.sense))


def _shift(limit_at: datetime, start: datetime | None, pauses: Sequence[Pause],
           now: datetime) -> tuple[datetime, int, bool]:
    """The limit moved by the whole days paused after ``start`` and before it fell due;
    also whether a pause that began before the (moved) limit is still on at ``now``."""
    paused = timedelta(0)
    paused_now = False
    for pause in sorted(pauses, key=lambda p: p.start):
        if pause.start > now:
            continue
        due = limit_at + timedelta(days=whole_days(paused))
        begin = max(pause.start, start) if start else pause.start
        if begin >= due:
            continue  # paused after the limit had passed: the lateness stands
        end = pause.end if pause.end is not None and pause.end <= now else now
        if pause.end is None or pause.end > now:
            paused_now = True
        if end > begin:
            paused += end - begin
    days = whole_days(paused)
    return limit_at + timedelta(days=days), days, paused_now


def judge(watch: Watch, now: datetime, yellow: timedelta) -> Judgement:
    """The state of ``watch`` at ``now`` with a yellow window of ``yellow``."""
    limit = watch.limit
    if limit is None:
        return Judgement(StepState.NOT_STARTED, None)
    sense = _sense(limit)
    done = watch.done_at if watch.done_at is not None and watch.done_at <= now else None
    if sense == "lasts":
        # The end of a window is known when it is scheduled: judged at once, done or not.
        end = watch.done_at
        if end is None:
            return Judgement(StepState.PENDING, limit.at)
        return Judgement(StepState.OK if limit.allows(end) else StepState.BREACHED, limit.at)
    if sense == "not_before_day":
        if watch.done_at is None:
            return Judgement(StepState.PENDING, limit.at)
        return Judgement(StepState.OK if limit.allows(watch.done_at) else StepState.BREACHED, limit.at)
    due, days, paused_now = _shift(limit.at, watch.start, watch.pauses, now)
    if done is not None:
        on_time = limit.allows(done) if days == 0 else done < due
        return Judgement(StepState.DONE if on_time else StepState.LATE, due, days)
    if not watch.expected:
        return Judgement(StepState.NOT_REQUIRED, due, days)
    if paused_now:
        return Judgement(StepState.PAUSED, due, days)
    if now >= due:
        return Judgement(StepState.OVERDUE, due, days)
    if yellow > timedelta(0) and now >= due - yellow:
        return Judgement(StepState.DUE_SOON, due, days)
    return Judgement(StepState.PENDING, due, days)


def _local(instant: datetime | None) -> str:
    """An instant as people in Asia/Shanghai read it; midnight is 24:00 of the day before."""
    if instant is None:
        return "-"
    local = instant.astimezone(SHANGHAI)
    if local.time() == time(0):
        return f"{(local.date() - _DAY).isoformat()} 24:00"
    return local.strftime("%Y-%m-%d %H:%M")


def _messages(watch: Watch, state: StepState, due: datetime | None, done: datetime | None) -> tuple[str, str]:
    zh_title, en_title = step_title(watch.step)
    if watch.label_zh:
        zh_title = f"{zh_title}（{watch.label_zh}）"
    if watch.label_en:
        en_title = f"{en_title} ({watch.label_en})"
    due_text, done_text = _local(due), _local(done)
    if state is StepState.DUE_SOON:
        return f"{zh_title}将于{due_text}到期", f"{en_title} is due by {due_text}"
    if state is StepState.OVERDUE:
        return f"{zh_title}已逾期：法定期限为{due_text}", f"{en_title} is overdue: the legal limit was {due_text}"
    if state is StepState.LATE:
        return (f"{zh_title}逾期完成：法定期限为{due_text}，实际为{done_text}",
                f"{en_title} was done late: the limit was {due_text}, done {done_text}")
    if watch.limit is not None and _sense(watch.limit) == "lasts":
        return (f"{zh_title}短于法定期限：应持续至{due_text}，实际至{done_text}",
                f"{en_title} is shorter than the law allows: it must last until {due_text}, it ends {done_text}")
    return (f"{zh_title}不足法定期限：不得早于{watch.limit.last_day if watch.limit else '-'}，实际为{done_text}",
            f"{en_title} is shorter than the law allows: not before {watch.limit.last_day if watch.limit else '-'}, "
            f"it is {done_text}")


def card_for(watch: Watch, now: datetime, yellow: timedelta) -> Card | None:
    """The card ``watch`` earns at ``now`` (None when it earns none)."""
    judged = judge(watch, now, yellow)
    severity = _CARD_OF_STATE.get(judged.state)
    if severity is None or watch.limit is None:
        return None
    limit = watch.limit
    zh, en = _messages(watch, judged.state, judged.due_at, watch.done_at)
    rule = limit.rule or watch.rule or "?"
    citation = limit.citation or watch.citation or ""
    return Card(watch.project_id, watch.step, rule, citation, severity, judged.due_at,
                f"{zh}（{rule}，{citation}）", f"{en} ({rule}, {citation})", bool(limit.provisional),
                watch.subject, str(judged.state), watch.done_at)


def breach_card(project_id: int, step: str, rule: str, citation: str, message_zh: str, message_en: str,
                *, severity: str = RED, subject: str | None = None, due_at: datetime | None = None,
                done_at: datetime | None = None) -> Card:
    """A card for a rule broken outright (a short committee, a named expert, related bidders)."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}")
    return Card(project_id, step, rule, citation, severity, due_at,
                f"{message_zh}（{rule}，{citation}）", f"{message_en} ({rule}, {citation})", False,
                subject, str(StepState.BREACHED), done_at)


def sort_cards(cards: Iterable[Card]) -> list[Card]:
    """Red before yellow, then the earliest due first, then by project and key."""
    far = datetime.max.replace(tzinfo=timezone.utc)
    return sorted(cards, key=lambda c: (c.severity != RED, c.due_at or far, c.project_id, c.key))


# -- which step runs between which events -----------------------------------------------------

@dataclass(frozen=True)
class PeriodRef:
    """A period of the pinned rules as plain values: its step, rule and events."""

    step: str
    rule: str
    citation: str
    sense: str
    from_event: str
    to_event: str


#: Events the project itself records (its schedule, its milestones, its written report).
PROJECT_EVENTS = frozenset({
    "documents_from", "documents_until", "bid_deadline", "objection_deadline", "published_at",
    "report_at", "publicity_started_at", "publicity_end", "awarded_at", "award_notice",
    "contracted_at", "contract_signed", "report_filed",
})
SECURITY_STEPS = ("withdrawal_refund", "loser_refund", "winner_refund")
SUSPENSION_STEP = "suspension"

LimitFn = Callable[[str, datetime], LimitLike]


def project_watches(project_id: int, periods: Iterable[PeriodRef], events: Mapping[str, datetime | None],
                    limit_fn: LimitFn, *, ended: bool = False, pauses: Sequence[Pause] = ()) -> list[Watch]:
    """The project's own steps: those whose both events the project records.

    ``ended`` (cancelled, failed): steps not yet done no longer have to happen.
    """
    watches = []
    for period in periods:
        if period.from_event not in PROJECT_EVENTS or period.to_event not in PROJECT_EVENTS:
            continue
        start = events.get(period.from_event)
        limit = limit_fn(period.step, start) if start is not None else None
        watches.append(Watch(project_id, period.step, limit, start, events.get(period.to_event),
                             expected=not ended, pauses=tuple(pauses) if period.sense == "within" else (),
                             rule=period.rule, citation=period.citation))
    return watches


@dataclass(frozen=True)
class ItemKind:
    """A kind of tracked complaint or objection and the steps of the pinned rules it runs.

    ``filing_step`` is checked when it is filed; ``steps`` are watched afterwards.
    ``handler``: who closes it (``supervisor`` decides; ``manager``, the agent or the
    tenderee, answers). ``domains`` where it exists (None: wherever its steps apply).
    """

    name: str
    title_zh: str
    title_en: str
    filing_step: str | None
    steps: tuple[str, ...]
    handler: str
    closes_with: str
    accepts: bool = False


COMPLAINT_KINDS: dict[str, ItemKind] = {
    # 投诉 (RULES E8): construction 条例 60–61; GP 政府采购法 55–56. The domain's pinned
    # rules decide its limits (GP has no acceptance step and decides from receipt).
    "complaint": ItemKind("complaint", "投诉", "complaint", "complaint",
                          ("complaint_acceptance", "complaint_decision"), "supervisor", "decide", True),
    # 质疑 (RULES E8, GP only): answered by the purchaser or its agent.
    "question": ItemKind("question", "质疑", "question", "question", ("question_reply",), "manager", "answer"),
    # 对招标文件的异议 (RULES A4): pauses the process until answered.
    "document_objection": ItemKind("document_objection", "对招标文件的异议", "objection to the documents",
                                   "objection", ("objection_reply",), "manager", "answer"),
    # 对评标结果（中标候选人）的异议 (RULES E4): during publicity; pauses the process.
    "candidate_objection": ItemKind("candidate_objection", "对中标候选人的异议", "objection to the candidates",
                                    None, ("publicity_objection_reply",), "manager", "answer"),
}

#: Item events by the rulebook's names → the item's attribute.
_ITEM_EVENTS = {
    "known_at": "known_at", "complaint_received": "filed_at", "question_received": "filed_at",
    "objection_received": "filed_at", "complaint_filed": "filed_at", "question_filed": "filed_at",
    "complaint_accepted": "accepted_at", "complaint_decided": "decided_at",
    "question_answered": "answered_at", "objection_answered": "answered_at",
}


@dataclass(frozen=True)
class ItemFacts:
    """A complaint or objection as plain values."""

    id: int
    kind: str
    filed_at: datetime
    open: bool = True
    known_at: datetime | None = None
    accepted_at: datetime | None = None
    answered_at: datetime | None = None
    decided_at: datetime | None = None

    def event(self, name: str) -> datetime | None:
        attr = _ITEM_EVENTS.get(name)
        return getattr(self, attr) if attr else None


def item_watches(project_id: int, item: ItemFacts, periods: Mapping[str, PeriodRef],
                 limit_fn: LimitFn) -> list[Watch]:
    """The handler's steps of one complaint or objection (those the pinned rules have)."""
    kind = COMPLAINT_KINDS[item.kind]
    watches = []
    for step in kind.steps:
        period = periods.get(step)
        if period is None:
            continue
        start = item.event(period.from_event)
        done = item.event(period.to_event)
        limit = limit_fn(step, start) if start is not None else None
        watches.append(Watch(project_id, step, limit, start, done, subject=f"complaint:{item.id}",
                             label_zh=f"{kind.title_zh} #{item.id}", label_en=f"{kind.title_en} #{item.id}",
                             expected=item.open, rule=period.rule, citation=period.citation))
    return watches


@dataclass(frozen=True)
class SecurityFacts:
    """A bid security as plain values. ``withdrawn_at``: the bid on its lot was withdrawn
    whole (no live file left) at that instant. ``winner``: None when the award does not
    say who won."""

    id: int
    bidder: str
    lot: str
    refunded_at: datetime | None = None
    kept: bool = False
    withdrawn_at: datetime | None = None
    winner: bool | None = None


def security_watches(project_id: int, security: SecurityFacts, periods: Mapping[str, PeriodRef],
                     events: Mapping[str, datetime | None], limit_fn: LimitFn) -> list[Watch]:
    """The refund step of one security (RULES B2 for a withdrawn bid, B8 otherwise).

    A security kept by the rules (C4: the bidder's fault) has no refund step. When the
    award does not name the winner, every security is held to the winner's (later) limit:
    no red card is raised on a guess, and the supervision view says the winner is unknown.
    """
    if security.kept:
        return []
    if security.withdrawn_at is not None:
        step, start = "withdrawal_refund", security.withdrawn_at
    else:
        step = "loser_refund" if security.winner is False else "winner_refund"
        period = periods.get(step)
        start = events.get(period.from_event) if period else None
    period = periods.get(step)
    if period is None:
        return []
    limit = limit_fn(step, start) if start is not None else None
    return [Watch(project_id, step, limit, start, security.refunded_at, subject=f"security:{security.id}",
                  label_zh=f"{security.bidder} / {security.lot}", label_en=f"{security.bidder} / {security.lot}",
                  rule=period.rule, citation=period.citation)]


def suspension_watches(project_id: int, suspensions: Sequence[Pause], periods: Mapping[str, PeriodRef],
                       limit_fn: LimitFn) -> list[Watch]:
    """Each suspension against the longest it may last (RULES H3: GP 30 days), if any."""
    period = periods.get(SUSPENSION_STEP)
    if period is None:
        return []
    return [Watch(project_id, SUSPENSION_STEP, limit_fn(SUSPENSION_STEP, s.start), s.start, s.end,
                  subject=f"suspension:{i}", label_zh=s.reason, label_en=s.reason,
                  rule=period.rule, citation=period.citation)
            for i, s in enumerate(suspensions, start=1)]


def filing_steps() -> set[str]:
    """Steps checked when an item is filed (not watched afterwards)."""
    return {k.filing_step for k in COMPLAINT_KINDS.values() if k.filing_step}


def untracked_steps(periods: Iterable[PeriodRef]) -> list[PeriodRef]:
    """Periods of the pinned rules no watch covers: the platform records none of their events."""
    item_steps = {s for k in COMPLAINT_KINDS.values() for s in k.steps}
    covered = item_steps | set(SECURITY_STEPS) | {SUSPENSION_STEP} | filing_steps()
    return [p for p in periods if p.step not in covered
            and not (p.from_event in PROJECT_EVENTS and p.to_event in PROJECT_EVENTS)]


def next_check(watches: Iterable[Watch], now: datetime, yellow: timedelta) -> datetime | None:
    """The earliest instant after ``now`` at which a watch's card can appear or turn red."""
    due: list[datetime] = []
    for watch in watches:
        judged = judge(watch, now, yellow)
        if judged.due_at is None or judged.state not in (StepState.PENDING, StepState.DUE_SOON):
            continue
        if watch.limit is not None and _sense(watch.limit) != "within":
            continue
        for at in (judged.due_at - yellow, judged.due_at):
            if at > now:
                due.append(at)
    return min(due, default=None)


# -- collusion indicators (RULES B6, 条例 40) -------------------------------------------------

@dataclass(frozen=True)
class BidFacts:
    """What the platform saw of one bidder's bid on one lot (after the tender closed)."""

    lot: str
    bidder: str
    org_id: int | None = None
    legal_representative: str | None = None
    controlled_by: int | None = None
    ciphertexts: frozenset[str] = frozenset()
    plaintexts: frozenset[str] = frozenset()
    addresses: frozenset[str] = frozenset()
    signing_keys: frozenset[str] = frozenset()
    uploaders: frozenset[str] = frozenset()
    payer_accounts: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Indicator:
    """One sign of related or colluding bidders on a lot."""

    lot: str
    kind: str
    bidders: tuple[str, ...]
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, tuple[str, ...]]:
        return (self.lot, self.kind, self.bidders)


#: Kinds that are a breach in themselves (related bidders may not bid on one lot, B6);
#: the others are signs a supervisor looks into.
RELATED_KINDS = frozenset({"same_legal_representative", "control_relationship"})

_SHARED = (("identical_file", "ciphertexts", "ciphertext_sha256"),
           ("identical_plaintext", "plaintexts", "plaintext_sha256"),
           ("same_client_address", "addresses", "addresses"),
           ("same_signing_key", "signing_keys", "kids"),
           ("same_uploader", "uploaders", "users"),
           ("same_payer_account", "payer_accounts", "accounts"))


def collusion_indicators(bids: Iterable[BidFacts]) -> list[Indicator]:
    """Every pair of different bidders on one lot that shares something it should not:
    a legal representative, a control relationship (one controls the other, or one
    controller holds both), an identical sealed file or plaintext, the uploading address,
    the signing key, the uploading account, or the account that paid the security."""
    by_lot: dict[str, dict[str, BidFacts]] = {}
    for bid in bids:
        lot = by_lot.setdefault(bid.lot, {})
        lot[bid.bidder] = _merge(lot[bid.bidder], bid) if bid.bidder in lot else bid
    found: list[Indicator] = []
    for lot_code in sorted(by_lot):
        lot = by_lot[lot_code]
        for a, b in combinations(sorted(lot), 2):
            found.extend(_pair(lot_code, lot[a], lot[b]))
    return found


def _merge(one: BidFacts, other: BidFacts) -> BidFacts:
    return replace(one, **{name: getattr(one, name) | getattr(other, name) for _, name, _ in _SHARED})


def _pair(lot: str, a: BidFacts, b: BidFacts) -> list[Indicator]:
    pair = (a.bidder, b.bidder)
    found = []
    if a.legal_representative and a.legal_representative == b.legal_representative:
        found.append(Indicator(lot, "same_legal_representative", pair,
                               {"legal_representative": a.legal_representative}))
    if a.org_id is not None and b.org_id is not None and (
            a.controlled_by == b.org_id or b.controlled_by == a.org_id
            or (a.controlled_by is not None and a.controlled_by == b.controlled_by)):
        found.append(Indicator(lot, "control_relationship", pair, {}))
    for kind, attr, label in _SHARED:
        shared = getattr(a, attr) & getattr(b, attr)
        if shared:
            found.append(Indicator(lot, kind, pair, {label: sorted(shared)}))
    return found
