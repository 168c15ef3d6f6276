"""Electronic supervision (电子监察, RULES H2, H5): every project's steps against their legal
limits, yellow and red cards, suspensions, collusion indicators, and tracked complaints.

Services take ``(session, actor, now, ...)`` and never read a request or a clock. Cards
are derived on every read from the stored facts and ``now`` (the pure rules are in
``audits.supervision_rules``); nothing is late because a job did not run. The periodic
``ebid supervise scan`` only raises alerts (a ``supervision.card`` entry per new red card).

This module sits in ``bidding`` because it reads every layer below it: trading projects
and their pinned rules, bid securities, withdrawals, closings and opening results, the
expert committee, the award's tracked steps, and the audit log. Complaints and objections
are filed and handled in ``bidding.supervision_complaints``.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from audits import log
from audits import supervision_rules as sr
from audits.entries import parse_entry
from audits.models import LogEntry
from audits.supervision_models import OPEN_STATUSES, CardAlert, Complaint
from bidding.models import (LIVE, BidSecurity, Closing, CollusionIndicator, OpeningResult, OpeningSession,
                            Submission, Withdrawal)
from core.actor import SYSTEM, Actor
from core.clock import format_instant
from core.errors import AppError, Conflict, Forbidden
from trading import lifecycle, projects, rules_check
from trading.domain import Role, Status
from trading.models import Organisation, Project
from trading.rulebook import ProjectRules, RuleViolation

#: Log readers of hidden supervision entries: supervisors (and the parties named).
SUPERVISORS = {"roles": [Role.SUPERVISOR.value]}


# --------------------------------------------------------------------------- access


def require_supervisor(actor: Actor) -> None:
    """Supervision is for supervisors only (监督部门, RULES H2)."""
    if not actor.has(Role.SUPERVISOR):
        raise Forbidden("Only supervisors may use electronic supervision", code="supervisor_only",
                        message_zh="仅监督人员可使用电子监察")


def log_refusal(session: Session, actor: Actor, now: datetime, action: str, what: str,
                exc: AppError, project_id: int | None = None, *, hidden: bool = False) -> None:
    """Record a refused attempt (the refused transaction has been rolled back)."""
    log.append(session, now=now, actor=actor.log_name, action=action,
               subject=f"project:{project_id}" if project_id else "supervision",
               data={"what": what, "code": exc.code, "status": exc.status}, hidden=hidden,
               readers={"users": [actor.user_id] if actor.user_id else [], **SUPERVISORS})


def bids_secret(session: Session, project: Project, now: datetime) -> bool:
    """Before the tender closes nobody may learn who takes part (RULES A6): entries that
    name a party are hidden until then."""
    if session.get(Closing, project.id) is not None:
        return False
    return project.bid_deadline is None or now < project.bid_deadline


# --------------------------------------------------------------------------- one project's facts


@dataclass
class Facts:
    """What supervision reads of one project, loaded once per read."""

    project: Project
    rules: ProjectRules
    status: Status
    schedule: lifecycle.Schedule
    milestones: lifecycle.Milestones
    periods: dict[str, sr.PeriodRef]
    report_filed_at: datetime | None = None
    complaints: list[Complaint] = field(default_factory=list)
    securities: list[BidSecurity] = field(default_factory=list)
    withdrawals: list[Withdrawal] = field(default_factory=list)
    live: set[tuple[int, str]] = field(default_factory=set)
    closing: Closing | None = None
    winners: set[str] | None = None
    orgs: dict[int, Organisation] = field(default_factory=dict)
    refunds: dict[int, Any] = field(default_factory=dict)    # security id -> SecurityRefund
    tracked: list[Any] = field(default_factory=list)         # TrackedStep rows

    @property
    def id(self) -> int:
        return self.project.id

    @property
    def ended(self) -> bool:
        return self.status in (Status.CANCELLED, Status.FAILED)

    def limit(self, step: str, start: datetime) -> Any:
        return self.rules.limits_for(step, start)

    def events(self) -> dict[str, datetime | None]:
        s, m = self.schedule, self.milestones
        return {
            "documents_from": s.documents_from or m.published_at, "documents_until": s.documents_until,
            "bid_deadline": s.bid_deadline, "objection_deadline": s.objection_deadline,
            "published_at": m.published_at, "report_at": m.report_at,
            "publicity_started_at": m.publicity_started_at, "publicity_end": s.publicity_end,
            "awarded_at": m.awarded_at, "award_notice": m.awarded_at,
            "contracted_at": m.contracted_at, "contract_signed": m.contracted_at,
            "report_filed": self.report_filed_at,
        }

    def pauses(self) -> list[sr.Pause]:
        return [sr.Pause(s.at, s.resumed_at, s.reason) for s in self.milestones.suspensions]


def rules_of(project: Project, calendar: Any = None) -> ProjectRules:
    """The rules pinned at publication, counted on ``calendar`` (the rulebook's)."""
    return ProjectRules.from_dict(project.rules or {}, calendar)


def _period_refs(rules: ProjectRules) -> dict[str, sr.PeriodRef]:
    return {p.step: sr.PeriodRef(p.step, r.id, r.citation, str(p.sense), p.from_event, p.to_event)
            for r, p in rules.steps()}


def load_facts(session: Session, rows: Iterable[Project], now: datetime, calendar: Any = None) -> list[Facts]:
    """The facts of published projects, each kind of row loaded in one query."""
    facts = [Facts(p, rules_of(p, calendar), projects.status_of(p, now), projects.schedule_of(p),
                   projects.milestones_of(p).as_of(now), {})
             for p in rows if p.rules]
    if not facts:
        return []
    for f in facts:
        f.periods = _period_refs(f.rules)
    by_id = {f.id: f for f in facts}
    ids = list(by_id)

    def each(model: Any, column: Any) -> Iterable[Any]:
        return session.execute(sa.select(model).where(column.in_(ids)).order_by(model.id)).scalars()

    for complaint in each(Complaint, Complaint.project_id):
        if complaint.filed_at <= now:
            by_id[complaint.project_id].complaints.append(complaint)
    for security in each(BidSecurity, BidSecurity.project_id):
        if security.paid_at <= now:
            by_id[security.project_id].securities.append(security)
    for withdrawal in each(Withdrawal, Withdrawal.project_id):
        if withdrawal.withdrawn_at <= now:
            by_id[withdrawal.project_id].withdrawals.append(withdrawal)
    for pid, org_id, lot in session.execute(sa.select(Submission.project_id, Submission.bidder_org_id,
                                                      Submission.lot_code)
                                            .where(Submission.project_id.in_(ids), Submission.state == LIVE)):
        by_id[pid].live.add((org_id, lot))
    for closing in session.execute(sa.select(Closing).where(Closing.project_id.in_(ids))).scalars():
        by_id[closing.project_id].closing = closing
    org_ids = {s.bidder_org_id for f in facts for s in f.securities}
    orgs = {o.id: o for o in session.execute(sa.select(Organisation).where(Organisation.id.in_(org_ids))).scalars()}
    for f in facts:
        f.orgs = orgs
    for pid, winners in _winners(session, ids, now).items():
        by_id[pid].winners = winners
    award = award_models()
    if award is not None:
        _load_award(session, award, by_id, now)
    return facts


def award_models() -> Any:
    """``bidding.award_models`` (evaluation and award), or None where it is not installed."""
    try:
        from bidding import award_models as module
    except ImportError as exc:
        if getattr(exc, "name", None) not in ("bidding.award_models", None):
            raise
        return None
    return module


def _load_award(session: Session, award: Any, by_id: dict[int, Facts], now: datetime) -> None:
    """What the award steps recorded: the winner of each lot (the award notice), the
    written report to the supervisor, security refunds, and the steps they track."""
    ids = list(by_id)
    notices = session.execute(sa.select(award.AwardNotice).where(
        award.AwardNotice.project_id.in_(ids), award.AwardNotice.kind == award.AWARD,
        award.AwardNotice.issued_at <= now)).scalars()
    for notice in notices:
        f = by_id[notice.project_id]
        f.winners = (f.winners or set()) | {notice.winner_code}
    for report in session.execute(sa.select(award.SupervisorReport).where(
            award.SupervisorReport.project_id.in_(ids), award.SupervisorReport.filed_at <= now)).scalars():
        by_id[report.project_id].report_filed_at = report.filed_at
    for refund in session.execute(sa.select(award.SecurityRefund).where(
            award.SecurityRefund.project_id.in_(ids))).scalars():
        by_id[refund.project_id].refunds[refund.security_id] = refund
    for step in session.execute(sa.select(award.TrackedStep).where(
            award.TrackedStep.project_id.in_(ids), award.TrackedStep.started_at <= now)
            .order_by(award.TrackedStep.id)).scalars():
        by_id[step.project_id].tracked.append(step)


def _entries(session: Session, ids: list[int], action: str, now: datetime) -> Iterable[tuple[int, dict[str, Any]]]:
    """(project id, parsed entry) of the public log entries ``action`` on those projects."""
    subjects = {f"project:{pid}": pid for pid in ids}
    rows = session.execute(sa.select(LogEntry.subject, LogEntry.entry).where(
        LogEntry.action == action, LogEntry.subject.in_(list(subjects)), LogEntry.at <= now)
        .order_by(LogEntry.index)).all()
    for subject, raw in rows:
        yield subjects[subject], parse_entry(bytes(raw))


def _winners(session: Session, ids: list[int], now: datetime) -> dict[int, set[str]]:
    """Who won, as the award entry says (``data.winner`` or ``data.winners``: bidder codes).

    The lifecycle's award milestone does not name the winner; the award service is to put
    it in the ``project.award`` entry's data. Projects whose award says nothing are absent.
    """
    found: dict[int, set[str]] = {}
    for pid, entry in _entries(session, ids, "project.award", now):
        data = entry.get("data") or {}
        named = data.get("winners", data.get("winner"))
        if isinstance(named, str):
            named = [named]
        if named:
            found[pid] = {str(code) for code in named}
    return found


# --------------------------------------------------------------------------- watches and cards


def watches_of(f: Facts) -> list[sr.Watch]:
    """Every step of the project watched against its legal limit.

    Steps the award module tracks itself (per lot, with the limit it computed when the
    step started) replace the project-wide watch of the same step derived here.
    """
    watches = sr.project_watches(f.id, f.periods.values(), f.events(), f.limit, ended=f.ended,
                                 pauses=f.pauses())
    watches += sr.suspension_watches(f.id, f.pauses(), f.periods, f.limit)
    for complaint in f.complaints:
        watches += sr.item_watches(f.id, item_facts(complaint), f.periods, f.limit)
    events = f.events()
    for security in f.securities:
        watches += sr.security_watches(f.id, _security_facts(f, security), f.periods, events, f.limit)
    tracked = [_tracked_watch(f, t) for t in f.tracked]
    keys = {(w.step, w.subject) for w in tracked}
    steps = {w.step for w in tracked}
    own = [w for w in watches if (w.step, w.subject) not in keys and not (w.subject is None and w.step in steps)]
    return own + tracked


def _tracked_watch(f: Facts, t: Any) -> sr.Watch:
    limit = sr.StoredLimit(t.due_at, t.rule, t.citation, t.step, t.sense, bool(t.provisional))
    subject = t.subject or (f"lot:{t.lot_code}" if t.lot_code else None)
    process_step = t.step not in sr.SECURITY_STEPS and t.sense == "within"
    return sr.Watch(f.id, t.step, limit, t.started_at, t.done_at, subject=subject,
                    label_zh=f"标段{t.lot_code}" if t.lot_code else "", label_en=f"lot {t.lot_code}" if t.lot_code else "",
                    expected=not f.ended, pauses=tuple(f.pauses()) if process_step else (),
                    rule=t.rule, citation=t.citation)


def item_facts(c: Complaint) -> sr.ItemFacts:
    return sr.ItemFacts(c.id, c.kind, c.filed_at, c.status in OPEN_STATUSES, c.known_at, c.accepted_at,
                        c.answered_at, c.decided_at)


def _security_facts(f: Facts, s: BidSecurity) -> sr.SecurityFacts:
    org = f.orgs.get(s.bidder_org_id)
    code = org.code if org else str(s.bidder_org_id)
    withdrawn_at = None
    if (s.bidder_org_id, s.lot_code) not in f.live:
        times = [w.withdrawn_at for w in f.withdrawals
                 if w.bidder_org_id == s.bidder_org_id and w.lot_code == s.lot_code]
        withdrawn_at = max(times, default=None)  # the whole bid on the lot was withdrawn (B2)
    winner = None if f.winners is None else code in f.winners
    refund = f.refunds.get(s.id)
    refunded_at = s.settled_at if s.status == "refunded" else None
    if refund is not None:
        winner = bool(refund.winner)
        refunded_at = refund.refunded_at or refunded_at
    return sr.SecurityFacts(s.id, code, s.lot_code, refunded_at, s.status == "kept", withdrawn_at, winner)


def _rule(f: Facts, rule_id: str) -> tuple[str, str]:
    """A rule's id and citation from the pinned rules, else from the documented fallback."""
    if rule_id in f.rules.rules:
        rule = f.rules.rule(rule_id)
        return rule.id, rule.citation
    return sr.FALLBACK_RULES[rule_id]


def breach_cards(session: Session, facts: list[Facts], now: datetime) -> list[sr.Card]:
    """Rules broken outright: the committee (D1, D2), the opening (C2), related bidders (B6)."""
    cards: list[sr.Card] = []
    cards += _committee_cards(session, facts, now)
    for f in facts:
        if f.closing is not None:
            cards += _opening_cards(session, f)
            cards += _collusion_cards(f, collusion_of(session, f))
    return cards


def _committee_cards(session: Session, facts: list[Facts], now: datetime) -> list[sr.Card]:
    try:
        from trading.experts_models import MEMBER, VACATED, VALID, CommitteeMember, DrawRecord
    except ModuleNotFoundError:  # the expert pool is not installed
        return []
    by_id = {f.id: f for f in facts}
    members: dict[tuple[int, str], list[Any]] = defaultdict(list)
    for m in session.execute(sa.select(CommitteeMember).where(CommitteeMember.project_id.in_(list(by_id)),
                                                              CommitteeMember.created_at <= now)).scalars():
        members[(m.project_id, m.lot)].append(m)
    reps: dict[tuple[int, str], int] = defaultdict(int)
    for r in session.execute(sa.select(DrawRecord).where(DrawRecord.project_id.in_(list(by_id)),
                                                         DrawRecord.status == VALID)).scalars():
        reps[(r.project_id, r.lot)] = max(reps[(r.project_id, r.lot)], r.tenderee_representatives or 0)
    named_lots: dict[int, set[str]] = defaultdict(set)
    for pid, entry in _entries(session, list(by_id), "committee.named_directly", now):
        named_lots[pid].add(str((entry.get("data") or {}).get("lot", "-")))
    cards = []
    for (pid, lot), seats in sorted(members.items()):
        f = by_id[pid]
        seated = [m for m in seats if m.role == MEMBER and m.status not in VACATED]
        if any(m.named_directly for m in seated):
            named_lots[pid].add(lot)
        if not seated:
            continue
        experts = len(seated)
        try:
            rules_check.check_committee(f.rules, experts + reps[(pid, lot)], experts)
        except RuleViolation as exc:
            # Short while being formed is a warning; evaluating with it is a breach.
            evaluating = bool(f.milestones.opening_finished_at or f.milestones.report_at)
            cards.append(sr.breach_card(pid, "committee", exc.rule, exc.citation,
                                        f"标段{lot}：{exc.message_zh}", f"lot {lot}: {exc.message_en}",
                                        severity=sr.RED if evaluating else sr.YELLOW, subject=f"lot:{lot}"))
    for pid, lots in sorted(named_lots.items()):
        rule, citation = _rule(by_id[pid], "D2")
        for lot in sorted(lots):
            cards.append(sr.breach_card(pid, "expert_selection", rule, citation,
                                        f"标段{lot}：评标专家未经随机抽取而直接确定",
                                        f"lot {lot}: an expert was named directly instead of drawn",
                                        subject=f"lot:{lot}"))
    return cards


def _opening_cards(session: Session, f: Facts) -> list[sr.Card]:
    """C2: a lot opened although fewer than the minimum number of bids were opened."""
    if f.ended or not (f.milestones.opening_finished_at or session.execute(
            sa.select(OpeningSession.id).where(OpeningSession.project_id == f.id,
                                               OpeningSession.finished_at.is_not(None))).first()):
        return []
    opened: dict[str, set[str]] = defaultdict(set)
    for result in session.execute(sa.select(OpeningResult).where(OpeningResult.project_id == f.id)).scalars():
        if result.status == "opened":
            opened[result.lot_code].add(result.bidder_code)
    cards = []
    for lot, bidders in sorted(opened.items()):
        decision = rules_check.opening_decision(f.rules, len(bidders))
        if not decision.may_open:
            cards.append(sr.breach_card(
                f.id, "opening", decision.rule, decision.citation,
                f"标段{lot}：仅开启{len(bidders)}份投标，少于{decision.min_bids}份却继续评审",
                f"lot {lot}: only {len(bidders)} bids opened, fewer than {decision.min_bids}, and the process went on",
                subject=f"lot:{lot}"))
    return cards


def _collusion_cards(f: Facts, indicators: list[dict[str, Any]]) -> list[sr.Card]:
    rule, citation = _rule(f, "B6")
    cards = []
    for ind in indicators:
        pair = "+".join(ind["bidders"])
        related = ind["kind"] in sr.RELATED_KINDS
        cards.append(sr.breach_card(
            f.id, "related_bidders" if related else "collusion", rule, citation,
            f"标段{ind['lot']}：投标人{'、'.join(ind['bidders'])}{_KIND_ZH.get(ind['kind'], ind['kind'])}",
            f"lot {ind['lot']}: bidders {', '.join(ind['bidders'])}: {ind['kind'].replace('_', ' ')}",
            severity=sr.RED if related else sr.YELLOW, subject=f"lot:{ind['lot']}:{ind['kind']}:{pair}"))
    return cards


_KIND_ZH = {
    "same_legal_representative": "为同一法定代表人", "control_relationship": "存在控股、管理关系",
    "identical_file": "投标文件（密文）相同", "identical_plaintext": "投标文件（明文）相同",
    "same_client_address": "从同一网络地址上传", "same_signing_key": "使用同一签名密钥",
    "same_uploader": "由同一账户上传", "same_payer_account": "保证金从同一账户转出",
}


def project_cards(session: Session, facts: list[Facts], now: datetime, yellow: timedelta) -> list[sr.Card]:
    cards = [c for f in facts for w in watches_of(f) if (c := sr.card_for(w, now, yellow))]
    return sr.sort_cards(cards + breach_cards(session, facts, now))


def _published(session: Session, project_id: int | None = None) -> list[Project]:
    query = sa.select(Project).where(Project.published_at.is_not(None), Project.rules.is_not(None))
    if project_id is not None:
        query = query.where(Project.id == project_id)
    return list(session.execute(query.order_by(Project.id)).scalars())


def all_cards(session: Session, now: datetime, yellow: timedelta, *, calendar: Any = None,
              project_id: int | None = None) -> list[sr.Card]:
    """Every card of every published project (or of one), derived at ``now``."""
    return project_cards(session, load_facts(session, _published(session, project_id), now, calendar), now, yellow)


def cards(session: Session, actor: Actor, now: datetime, yellow: timedelta, filters: dict[str, Any], *,
          calendar: Any = None) -> tuple[list[sr.Card], int]:
    """The cards a supervisor asked for (``severity``, ``project``, ``rule``), one page."""
    require_supervisor(actor)
    found = all_cards(session, now, yellow, calendar=calendar, project_id=filters.get("project"))
    found = [c for c in found if (not filters.get("severity") or c.severity == filters["severity"])
             and (not filters.get("rule") or c.rule == filters["rule"])]
    page, per_page = filters.get("page", 1), filters.get("per_page", 20)
    return found[(page - 1) * per_page: page * per_page], len(found)


# --------------------------------------------------------------------------- one project's view


def _supervised(session: Session, actor: Actor, project_id: int) -> Project:
    require_supervisor(actor)
    project = projects.get_project(session, actor, project_id)
    if not project.rules:
        raise Conflict("The project is not published: no rules are pinned yet", code="not_published",
                       message_zh="项目尚未发布，未锁定交易规则")
    return project


def project_supervision(session: Session, actor: Actor, now: datetime, project_id: int, yellow: timedelta, *,
                        calendar: Any = None) -> dict[str, Any]:
    """One project as a supervisor watches it: each step with its legal limit and state,
    the schedule's own dates, suspensions, complaints, cards and the next instant to look."""
    project = _supervised(session, actor, project_id)
    [f] = load_facts(session, [project], now, calendar)
    watches = watches_of(f)
    card_list = project_cards(session, [f], now, yellow)
    by_key = {(c.step, c.subject): c for c in card_list}
    steps = []
    for w in watches:
        judged = sr.judge(w, now, yellow)
        zh, en = sr.step_title(w.step)
        limit = w.limit
        card = by_key.get((w.step, w.subject))
        steps.append({"step": w.step, "title_zh": zh, "title_en": en, "subject": w.subject,
                      "rule": (limit.rule if limit else None) or w.rule,
                      "citation": (limit.citation if limit else None) or w.citation,
                      "sense": str(limit.sense) if limit else f.periods[w.step].sense,
                      "start": w.start, "due_at": judged.due_at, "paused_days": judged.shifted_days,
                      "last_day": limit.last_day.isoformat() if limit else None,
                      "provisional": bool(limit.provisional) if limit else False,
                      "done_at": w.done_at, "state": str(judged.state),
                      "card": card.to_dict() if card else None})
    far = datetime.max.replace(tzinfo=now.tzinfo)
    steps.sort(key=lambda s: (s["start"] is None, s["start"] or far, s["step"], s["subject"] or ""))
    return {
        "project": {"id": project.id, "title": project.title, "domain": project.domain,
                    "procedure": project.procedure, "status": str(f.status),
                    "rulebook_version": project.rulebook_version},
        "steps": steps,
        "scheduled": [{"name": d.name, "due_at": d.due_at, "overdue": d.overdue}
                      for d in lifecycle.due_dates(f.schedule, f.milestones, now)],
        "untracked": [{"step": p.step, "rule": p.rule, "from": p.from_event, "to": p.to_event}
                      for p in sr.untracked_steps(f.periods.values())],
        "suspensions": _suspensions(f, watches, now, yellow),
        "complaints": [complaint_view(c, f, now, yellow) for c in f.complaints],
        "winner_known": f.winners is not None,
        "cards": [c.to_dict() for c in card_list],
        "next_check": sr.next_check(watches, now, yellow),
    }


def _suspensions(f: Facts, watches: list[sr.Watch], now: datetime, yellow: timedelta) -> list[dict[str, Any]]:
    limits = {w.subject: w for w in watches if w.step == sr.SUSPENSION_STEP}
    paused_by = {c.pause_at: c.id for c in f.complaints if c.pause_created and c.pause_at}
    out = []
    for i, s in enumerate(f.milestones.suspensions, start=1):
        w = limits.get(f"suspension:{i}")
        judged = sr.judge(w, now, yellow) if w else None
        out.append({"at": s.at, "reason": s.reason, "resumed_at": s.resumed_at,
                    "resume_reason": s.resume_reason, "active": s.active(now),
                    "days": ((s.resumed_at or now) - s.at) / timedelta(days=1),
                    "by_complaint": paused_by.get(s.at),
                    "max_until": judged.due_at if judged else None,
                    "state": str(judged.state) if judged else None})
    return out


def complaint_view(c: Complaint, f: Facts | None, now: datetime, yellow: timedelta) -> dict[str, Any]:
    """A complaint with its statutory limits and their state at ``now``."""
    limits = []
    if f is not None:
        for w in sr.item_watches(f.id, item_facts(c), f.periods, f.limit):
            judged = sr.judge(w, now, yellow)
            card = sr.card_for(w, now, yellow)
            limits.append({"step": w.step, "rule": w.limit.rule if w.limit else w.rule,
                           "citation": w.limit.citation if w.limit else w.citation, "due_at": judged.due_at,
                           "provisional": bool(w.limit.provisional) if w.limit else False,
                           "done_at": w.done_at, "state": str(judged.state),
                           "severity": card.severity if card else None})
    return {"id": c.id, "project": c.project_id, "lot": c.lot_code, "kind": c.kind, "rule": c.rule,
            "status": c.status, "text": c.text, "known_at": c.known_at, "filed_at": c.filed_at,
            "accepted_at": c.accepted_at, "answered_at": c.answered_at, "decided_at": c.decided_at,
            "answer": c.answer, "outcome": c.outcome, "paused_process_at": c.pause_at,
            "resumed_at": c.resumed_at, "pause_note": c.pause_note, "limits": limits}


# --------------------------------------------------------------------------- collusion


def collusion_of(session: Session, f: Facts) -> list[dict[str, Any]]:
    """Collusion indicators of a closed tender: those recorded at closing, and those derived
    now from the listed bids (identical ciphertext or plaintext, address, signing key,
    uploading account, security account, related bidders)."""
    closing = f.closing
    if closing is None:
        return []
    wanted = [entry["manifest_sha256"] for entry in closing.files]
    subs = list(session.execute(sa.select(Submission).where(
        Submission.project_id == f.id, Submission.manifest_sha256.in_(wanted))).scalars()) if wanted else []
    plaintexts: dict[int, str] = {r.submission_id: r.plaintext_sha256 for r in session.execute(
        sa.select(OpeningResult).where(OpeningResult.project_id == f.id)).scalars() if r.plaintext_sha256}
    securities = list(session.execute(sa.select(BidSecurity).where(BidSecurity.project_id == f.id)).scalars())
    org_ids = {s.bidder_org_id for s in subs}
    orgs = {o.id: o for o in session.execute(sa.select(Organisation).where(Organisation.id.in_(org_ids))).scalars()}
    bids = []
    for s in subs:
        org = orgs[s.bidder_org_id]
        accounts = {x.payer_account for x in securities if x.bidder_org_id == s.bidder_org_id and x.lot_code == s.lot_code}
        bids.append(sr.BidFacts(
            s.lot_code, s.bidder_code, org.id, org.legal_representative, org.controlled_by_id,
            frozenset({s.ciphertext_sha256}), frozenset({plaintexts[s.id]} if s.id in plaintexts else ()),
            frozenset({s.client_address} if s.client_address else ()), frozenset({s.manifest_kid}),
            frozenset({str(s.user_id)}), frozenset(accounts)))
    derived = {ind.key: ind for ind in sr.collusion_indicators(bids)}
    out: dict[tuple[str, str, tuple[str, ...]], dict[str, Any]] = {}
    for row in session.execute(sa.select(CollusionIndicator).where(CollusionIndicator.project_id == f.id)
                               .order_by(CollusionIndicator.id)).scalars():
        key = (row.lot_code, row.kind, tuple(row.bidders))
        detail = dict(derived[key].detail) if key in derived else dict(row.detail or {})
        out[key] = {"lot": row.lot_code, "kind": row.kind, "bidders": list(row.bidders), "detail": detail,
                    "source": "closing", "found_at": row.found_at, "log_index": row.log_index}
    for key, ind in derived.items():
        out.setdefault(key, {"lot": ind.lot, "kind": ind.kind, "bidders": list(ind.bidders),
                             "detail": dict(ind.detail), "source": "derived", "found_at": None,
                             "log_index": None})
    return [out[k] for k in sorted(out)]


def collusion(session: Session, actor: Actor, now: datetime, project_id: int) -> dict[str, Any]:
    """The collusion indicators of a tender, to supervisors, only once it has closed: before
    that they would tell who bid (RULES A6)."""
    project = _supervised(session, actor, project_id)
    closing = session.get(Closing, project.id)
    if closing is None:
        raise Forbidden("Nothing about the bids is disclosed before the tender closes",
                        code="tender_not_closed", message_zh="投标截止（开标）前不公开任何投标信息")
    [f] = load_facts(session, [project], now)
    return {"project": project.id, "closed_at": closing.closed_at, "indicators": collusion_of(session, f)}


# --------------------------------------------------------------------------- the periodic scan


@dataclass(frozen=True)
class ScanResult:
    """What a scan saw and what it raised."""

    cards: list[sr.Card]
    raised: list[sr.Card]
    next_check: datetime | None


def scan(session: Session, now: datetime, yellow: timedelta, *, calendar: Any = None,
         project_id: int | None = None) -> ScanResult:
    """Derive every card at ``now`` and raise each red card not raised before: a
    ``supervision.card`` entry and a :class:`CardAlert` row, in the caller's transaction.

    Only alerts: the cards themselves are the same whether or not this ever runs.
    """
    rows = _published(session, project_id)
    facts = load_facts(session, rows, now, calendar)
    found = project_cards(session, facts, now, yellow)
    raised_keys = {(key, severity) for key, severity in session.execute(
        sa.select(CardAlert.key, CardAlert.severity))}
    secret = {f.id for f in facts if bids_secret(session, f.project, now)}
    raised = []
    for card in found:
        if card.severity != sr.RED or (card.key, card.severity) in raised_keys:
            continue
        # a card about a security or a complaint before closing would tell who takes part
        hidden = card.project_id in secret and (card.subject or "").startswith(("security:", "complaint:"))
        appended = log.append(session, now=now, actor=SYSTEM.log_name, action="supervision.card",
                              subject=f"project:{card.project_id}", hidden=hidden, readers=SUPERVISORS,
                              data={"key": card.key, "rule": card.rule, "step": card.step,
                                    "severity": card.severity,
                                    "due_at": format_instant(card.due_at) if card.due_at else None,
                                    "provisional": card.provisional})
        session.add(CardAlert(key=card.key, severity=card.severity, project_id=card.project_id, rule=card.rule,
                              step=card.step, due_at=card.due_at, raised_at=now, log_index=appended.index))
        raised_keys.add((card.key, card.severity))
        raised.append(card)
    session.flush()
    checks = [sr.next_check(watches_of(f), now, yellow) for f in facts]
    return ScanResult(found, raised, min((c for c in checks if c), default=None))


__all__ = ["require_supervisor", "log_refusal", "bids_secret", "Facts", "load_facts", "watches_of",
           "item_facts", "all_cards", "cards", "project_supervision", "collusion", "collusion_of", "scan",
           "ScanResult", "award_models", "rules_of", "complaint_view", "SUPERVISORS"]
