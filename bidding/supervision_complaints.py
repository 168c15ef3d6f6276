"""Complaints, GP questions and objections (投诉、质疑、异议; RULES E8, A4, E4) as tracked
items with their statutory limits, filed and handled through these services.

A bidder files; a supervisor accepts and decides complaints; the project's agent or
tenderee answers questions and objections. The limits come from the project's pinned
rules (``audits.supervision_rules.COMPLAINT_KINDS`` names the steps); supervision
(``bidding.supervision``) turns late steps into red cards. An objection whose rule
pauses the process (条例 22, 54) suspends the project through the lifecycle until the
last objection of that pause is answered.

Services take ``(session, actor, now, ...)``; every change is logged in its transaction,
hidden before the tender closes (a complaint tells who takes part, RULES A6).
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from audits import log
from audits import supervision_rules as sr
from audits.supervision_models import ACCEPTED, ANSWERED, DECIDED, FILED, OPEN_STATUSES, REJECTED, Complaint
from bidding.supervision import SUPERVISORS, bids_secret, complaint_view, load_facts, rules_of
from core.actor import SYSTEM, Actor
from core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from trading import projects, rules_check
from trading.domain import Role, Status
from trading.models import Lot, Project
from trading.rulebook import ProjectRules



def _kind(kind: str) -> sr.ItemKind:
    try:
        return sr.COMPLAINT_KINDS[kind]
    except KeyError:
        raise ValidationFailed(f"Unknown kind {kind!r}", field="kind") from None


def _handling_rule(rules: ProjectRules, kind: sr.ItemKind) -> Any:
    """The rule of the kind's first handling step in force for the project."""
    for step in kind.steps:
        if rules.has_step(step):
            return rules.period(step)[0]
    raise ValidationFailed(f"A {kind.title_en} does not exist in this procedure",
                           code="complaint_kind_not_applicable",
                           message_zh=f"本项目的交易方式不适用{kind.title_zh}", kind=kind.name)


def _log_complaint(session: Session, actor: Actor, now: datetime, project: Project, c: Complaint,
                   action: str, **data: Any) -> int:
    hidden = bids_secret(session, project, now)
    return log.append(session, now=now, actor=actor.log_name, action=action, subject=f"project:{project.id}",
                      data={"complaint": c.id, "kind": c.kind, "rule": c.rule, "status": c.status, **data},
                      hidden=hidden, readers={"users": [c.filed_by_id], **SUPERVISORS}).index


def _text_hash(text: str) -> str:
    # the text stays out of the public leaf (it may hold business secrets); its hash fixes it
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_complaint(session: Session, actor: Actor, now: datetime, project_id: int, body: dict[str, Any], *,
                   calendar: Any = None) -> Complaint:
    """A bidder files a complaint, question or objection (RULES E8, A4, E4).

    Filing limits the project's rules define are checked (A4: at least N days before the
    deadline; E8: within N days of ``known_at`` when given; E4: during publicity). An
    objection whose rule pauses the process suspends the project through the lifecycle
    until it is answered (条例 22, 54).
    """
    if not actor.has(Role.BIDDER) or actor.org_id is None:
        raise Forbidden("Only bidders file complaints and objections", code="bidders_only",
                        message_zh="仅投标人（供应商）可提出投诉、质疑或异议")
    kind = _kind(body["kind"])
    project = projects.get_project(session, actor, project_id, for_update=True)
    if not project.rules:
        raise Conflict("The project is not published", code="not_published", message_zh="项目尚未发布")
    rules = rules_of(project, calendar)
    rule = _handling_rule(rules, kind)
    lot = body.get("lot")
    if lot is not None and not session.execute(sa.select(Lot.id).where(Lot.project_id == project.id,
                                                                       Lot.code == lot)).first():
        raise NotFound(f"No lot {lot}", code="lot_not_found", message_zh="标段不存在", field="lot")
    known_at = body.get("known_at")
    if known_at is not None and known_at > now:
        raise ValidationFailed("known_at is in the future", field="known_at", message_zh="知道时间晚于当前时间")
    _check_filing(rules, kind, project, now, known_at)
    c = Complaint(project_id=project.id, lot_code=lot, kind=kind.name, rule=rule.id, status=FILED,
                  text=body["text"], filed_by_id=actor.user_id, bidder_org_id=actor.org_id, known_at=known_at,
                  filed_at=now, filed_log_index=-1)
    session.add(c)
    session.flush()
    c.filed_log_index = _log_complaint(session, actor, now, project, c, "complaint.filed", lot=lot,
                                       text_sha256=_text_hash(c.text))
    if rule.flag("pauses_process"):
        _pause(session, now, project, c, rule)
    return c


def _check_filing(rules: ProjectRules, kind: sr.ItemKind, project: Project, now: datetime,
                  known_at: datetime | None) -> None:
    m = projects.milestones_of(project).as_of(now)
    if kind.name == "document_objection":
        if project.bid_deadline is None or now >= project.bid_deadline:
            raise Conflict("Objections to the documents come before the bid deadline", code="deadline_passed",
                           message_zh="投标截止时间已过，不得对招标文件提出异议")
        rules_check.check_step(rules, "objection", now, project.bid_deadline)
    elif kind.name == "candidate_objection":
        end = project.publicity_end
        if not m.publicity_started_at or m.awarded_at or (end is not None and now >= end):
            raise Conflict("Objections to the candidates are raised during their publicity",
                           code="not_in_publicity", message_zh="对中标候选人的异议应在公示期内提出")
    elif kind.filing_step and known_at is not None:
        rules_check.check_step(rules, kind.filing_step, known_at, now)


def _pause(session: Session, now: datetime, project: Project, c: Complaint, rule: Any) -> None:
    """Pause the process for an objection: a suspension recorded through the lifecycle,
    by the system (the law pauses it, and naming the objector would tell who takes part)."""
    status = projects.status_of(project, now)
    if status is Status.SUSPENDED:
        current = projects.milestones_of(project).open_suspension
        ours = current is not None and session.execute(sa.select(Complaint.id).where(
            Complaint.project_id == project.id, Complaint.pause_created.is_(True),
            Complaint.pause_at == current.at)).first() is not None
        if ours and current is not None:
            c.pause_at, c.pause_note = current.at, "joined the pause of an earlier objection"
        else:
            c.pause_note = "already suspended by the supervisor"
        return
    try:
        projects.apply_transition(session, SYSTEM, now, project, "suspend",
                                  reason=f"异议待答复，依法暂停 / paused until objection #{c.id} is answered "
                                         f"({rule.id}, {rule.citation})",
                                  data={"complaint": c.id, "rule": rule.id})
    except Conflict as exc:
        c.pause_note = f"not paused: {exc.code}"  # e.g. the project is final: nothing to pause
        return
    c.pause_at, c.pause_created = now, True


def _release(session: Session, now: datetime, project: Project, c: Complaint) -> None:
    """Resume once the last objection of this pause is answered. Dates that passed during
    the pause move by the whole days paused (the clock stood still)."""
    if c.pause_at is None:
        return
    still_open = session.execute(sa.select(Complaint.id).where(
        Complaint.project_id == project.id, Complaint.pause_at == c.pause_at, Complaint.id != c.id,
        Complaint.status.in_(OPEN_STATUSES))).first()
    current = projects.milestones_of(project).open_suspension
    if still_open or current is None or current.at != c.pause_at:
        return
    schedule = projects.schedule_of(project)
    passed = [name for name, at in schedule.instants().items() if current.at < at <= now]
    days = sr.whole_days(now - current.at) if passed else 0
    new_schedule = schedule.shifted(current.at, timedelta(days=days)) if passed else None
    try:
        projects.apply_transition(session, SYSTEM, now, project, "resume",
                                  reason=f"异议已答复 / objection #{c.id} answered",
                                  data={"complaint": c.id, "schedule_moved_days": days, "moved": passed},
                                  new_schedule=new_schedule)
    except Conflict as exc:
        # The answer stands; the supervisor resumes with a schedule the lifecycle accepts.
        c.pause_note = f"not resumed: {exc.code}"
        return
    c.resumed_at = now


def _complaint(session: Session, complaint_id: int, for_update: bool = False) -> Complaint:
    c = session.get(Complaint, complaint_id, with_for_update=for_update or None)
    if c is None:
        raise NotFound("No such complaint", code="complaint_not_found", message_zh="投诉（异议）不存在")
    return c


def _may_see(actor: Actor, project: Project, c: Complaint) -> bool:
    return (actor.has(Role.SUPERVISOR) or projects.is_party_owner(actor, project)
            or (actor.org_id is not None and actor.org_id == c.bidder_org_id))


def get_complaint(session: Session, actor: Actor, complaint_id: int) -> tuple[Complaint, Project]:
    c = _complaint(session, complaint_id)
    project = session.get(Project, c.project_id)
    assert project is not None
    if not _may_see(actor, project, c):
        raise NotFound("No such complaint", code="complaint_not_found", message_zh="投诉（异议）不存在")
    return c, project


def _handle(session: Session, actor: Actor, complaint_id: int, action: str) -> tuple[Complaint, Project, sr.ItemKind]:
    c, project = get_complaint(session, actor, complaint_id)
    session.refresh(c, with_for_update=True)
    kind = sr.COMPLAINT_KINDS[c.kind]
    if action in ("accept", "decide"):
        if not actor.has(Role.SUPERVISOR):
            raise Forbidden("Only supervisors accept and decide complaints", code="supervisor_only",
                            message_zh="仅监督人员可受理、处理投诉")
        if kind.closes_with != "decide":
            raise Conflict(f"A {kind.title_en} is answered, not decided", code="wrong_complaint_kind",
                           message_zh=f"{kind.title_zh}由招标人（采购人）答复")
    elif action == "answer":
        if not projects.is_party_owner(actor, project):
            raise Forbidden("Only the project's agent or tenderee answers", code="not_project_party",
                            message_zh="仅项目的代理机构或招标人可答复")
        if kind.closes_with != "answer":
            raise Conflict(f"A {kind.title_en} is decided by the supervisor", code="wrong_complaint_kind",
                           message_zh=f"{kind.title_zh}由监督部门处理")
    if c.status not in OPEN_STATUSES:
        raise Conflict("This item is already closed", code="complaint_closed", message_zh="该事项已办结",
                       status=c.status)
    return c, project, kind


def accept_complaint(session: Session, actor: Actor, now: datetime, complaint_id: int,
                     body: dict[str, Any]) -> Complaint:
    """A supervisor accepts a complaint (受理, E8: within 3 working days of receipt)."""
    c, project, kind = _handle(session, actor, complaint_id, "accept")
    if c.status != FILED:
        raise Conflict("The complaint is already accepted", code="already_accepted", message_zh="投诉已受理")
    c.status, c.accepted_at, c.accepted_by_id = ACCEPTED, now, actor.user_id
    _log_complaint(session, actor, now, project, c, "complaint.accepted", note=body.get("note"))
    return c


def answer_complaint(session: Session, actor: Actor, now: datetime, complaint_id: int,
                     body: dict[str, Any]) -> Complaint:
    """The agent or tenderee answers a question or objection (A4, E4, E8 答复); the process
    resumes when the last objection of its pause is answered."""
    c, project, _ = _handle(session, actor, complaint_id, "answer")
    project = projects.get_project(session, actor, project.id, for_update=True)
    c.status, c.answered_at, c.handled_by_id, c.answer = ANSWERED, now, actor.user_id, body["answer"]
    _log_complaint(session, actor, now, project, c, "complaint.answered", answer_sha256=_text_hash(c.answer))
    _release(session, now, project, c)
    return c


def decide_complaint(session: Session, actor: Actor, now: datetime, complaint_id: int, body: dict[str, Any], *,
                     calendar: Any = None) -> Complaint:
    """A supervisor decides a complaint (处理决定, E8). Where the rules have an acceptance
    step the complaint is accepted first, unless it is rejected outright (不予受理)."""
    c, project, _ = _handle(session, actor, complaint_id, "decide")
    rules = rules_of(project, calendar)
    if c.status == FILED and body["outcome"] != REJECTED and rules.has_step("complaint_acceptance"):
        raise Conflict("Accept the complaint before deciding it", code="not_accepted",
                       message_zh="投诉须先受理再作出处理决定")
    c.status, c.decided_at, c.handled_by_id = DECIDED, now, actor.user_id
    c.answer, c.outcome = body["decision"], body["outcome"]
    _log_complaint(session, actor, now, project, c, "complaint.decided", outcome=c.outcome,
                   decision_sha256=_text_hash(c.answer))
    return c


def list_complaints(session: Session, actor: Actor, filters: dict[str, Any]) -> tuple[list[Complaint], int]:
    """Complaints the actor may see: all to supervisors; a project's to its agent and
    tenderee; a bidder's own to the bidder."""
    query = sa.select(Complaint)
    if not actor.has(Role.SUPERVISOR):
        mine = [Complaint.bidder_org_id == actor.org_id] if actor.org_id is not None else []
        if actor.org_id is not None and actor.has(Role.AGENT, Role.TENDEREE):
            owned = sa.select(Project.id).where(sa.or_(Project.agent_org_id == actor.org_id,
                                                       Project.tenderee_org_id == actor.org_id))
            mine.append(Complaint.project_id.in_(owned))
        if not mine:
            return [], 0
        query = query.where(sa.or_(*mine))
    for name in ("kind", "status"):
        if filters.get(name):
            query = query.where(getattr(Complaint, name) == filters[name])
    if filters.get("project"):
        query = query.where(Complaint.project_id == filters["project"])
    total = session.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
    page, per_page = filters.get("page", 1), filters.get("per_page", 20)
    rows = session.execute(query.order_by(Complaint.id.desc()).offset((page - 1) * per_page)
                           .limit(per_page)).scalars().all()
    return list(rows), total


def complaint_views(session: Session, rows: list[Complaint], now: datetime, yellow: timedelta, *,
                    calendar: Any = None) -> list[dict[str, Any]]:
    ids = {c.project_id for c in rows}
    facts = {f.id: f for f in load_facts(session, session.execute(
        sa.select(Project).where(Project.id.in_(ids))).scalars(), now, calendar)} if ids else {}
    return [complaint_view(c, facts.get(c.project_id), now, yellow) for c in rows]


__all__ = ["file_complaint", "accept_complaint", "answer_complaint", "decide_complaint", "list_complaints",
           "get_complaint", "complaint_views"]
