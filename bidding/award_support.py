"""Plumbing shared by the evaluation and award services: names for the log, money as
text, the pinned rules, rule refusals, refusals and members' acts in the log (D4), the
tracked steps with their legal limits, and the small guards every service starts with.

Services take ``(session, actor, now, ...)``; nothing here reads a request or a clock.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from audits import log
from bidding.award_models import TrackedStep
from core.actor import Actor
from core.errors import AppError, Conflict, NotFound, RuleBroken, ValidationFailed
from trading import projects
from trading.domain import Status
from trading.models import Lot, Project
from trading.rulebook import ProjectRules, RuleViolation

def subject_of(project: Project) -> str:
    return f"project:{project.id}"


def money(value: Decimal | None) -> str | None:
    """Money and scores as the log and the API write them: a decimal string."""
    return None if value is None else f"{value:.2f}"


def rules_of(project: Project) -> ProjectRules:
    """The rules pinned at publication."""
    return projects.project_rules(project)


def rule_error(rules: ProjectRules, rule_id: str, code: str, en: str, zh: str,
               status: int = 422, **details: Any) -> RuleBroken:
    """A refusal by rule ``rule_id``, citing the rulebook when it holds the rule.

    The rulebook does not carry every RULES.md item as data (E2 and E5 have no numbers);
    the rule's id is still named so a test and an auditor can find it.
    """
    citation = None
    if rule_id in rules.rules:
        citation = rules.rule(rule_id).citation
    return RuleBroken(en, code=code, message_zh=zh, status=status, rule=rule_id,
                      citation=citation, **details)


def log_refusal(session: Session, actor: Actor, now: datetime, project_id: int, action: str,
                error: AppError, *, hidden: bool = False) -> None:
    """Log a refused attempt in its own transaction (the refused one was rolled back).
    ``hidden``: the actor is a committee member, whose name is secret until the result."""
    if session.get(Project, project_id) is None:
        return
    data = {"attempt": action, "code": error.code, "status": error.status}
    rule = error.details.get("rule")
    if isinstance(rule, str):
        data["rule"] = rule
    log.append(session, now=now, actor=actor.log_name, action="award.refused",
               subject=f"project:{project_id}", data=data, hidden=hidden,
               readers={"users": [actor.user_id]} if hidden and actor.user_id else None)


def log_member(session: Session, actor: Actor, now: datetime, project: Project, action: str,
               data: dict[str, Any]) -> int:
    """A member's act: the leaf hides who (D4); the member reads its own detail."""
    return log.append(session, now=now, actor=actor.log_name, action=action,
                      subject=subject_of(project), data=data, hidden=True,
                      readers={"users": [actor.user_id] if actor.user_id else []}).index


def track_step(session: Session, project: Project, rules: ProjectRules, step: str,
               start: datetime, *, lot: str = "", subject: str = "") -> TrackedStep | None:
    """Record ``step`` with its legal limit counted from ``start`` (None when the project's
    rules give the step no limit). Idempotent per (lot, step, subject)."""
    if not rules.has_step(step):
        return None
    existing = session.execute(sa.select(TrackedStep).where(
        TrackedStep.project_id == project.id, TrackedStep.lot_code == lot,
        TrackedStep.step == step, TrackedStep.subject == subject)).scalar_one_or_none()
    if existing is not None:
        return existing
    limit = rules.limits_for(step, start)
    row = TrackedStep(project_id=project.id, lot_code=lot, step=step, subject=subject,
                      rule=limit.rule or "", citation=limit.citation or "", sense=str(limit.sense),
                      started_at=start, due_at=limit.at, provisional=limit.provisional)
    session.add(row)
    return row


def finish_step(session: Session, project: Project, step: str, done_at: datetime, late: bool,
                *, lot: str = "", subject: str = "") -> None:
    """Mark a tracked step done (and whether it was late)."""
    row = session.execute(sa.select(TrackedStep).where(
        TrackedStep.project_id == project.id, TrackedStep.lot_code == lot,
        TrackedStep.step == step, TrackedStep.subject == subject)).scalar_one_or_none()
    if row is not None and row.done_at is None:
        row.done_at, row.late = done_at, late


def judge_time(check: Any, *args: Any, **kwargs: Any) -> RuleViolation | None:
    """Run a time check of :mod:`trading.rules_check`; return its violation instead of
    raising. Used where the law's limit is a duty, not a gate: a late contract or refund
    must still be recorded, and is recorded as late (a red card)."""
    try:
        check(*args, **kwargs)
    except RuleViolation as violation:
        return violation
    return None


def require_status(project: Project, now: datetime, *allowed: Status) -> Status:
    status = projects.status_of(project, now)
    if status not in allowed:
        raise Conflict(f"Not allowed while the project is {status}", code="wrong_state",
                       message_zh=f"项目当前状态（{status}）不允许此操作", project_status=str(status))
    return status


def lot_code(project: Project, lot: str | None) -> str:
    """The lot named, or the only lot when none is named."""
    codes = [l.code for l in project.lots]
    if lot is None:
        if len(codes) != 1:
            raise ValidationFailed("Name the lot", code="lot_required", field="lot",
                                   message_zh="请指定标段")
        return codes[0]
    if lot not in codes:
        raise NotFound(f"No lot {lot}", code="lot_not_found", message_zh="标段不存在")
    return lot


def lot_row(project: Project, code: str) -> Lot:
    return next(l for l in project.lots if l.code == code)


__all__ = ["subject_of", "money", "rules_of", "rule_error", "log_refusal", "log_member", "track_step",
           "finish_step", "judge_time", "require_status", "lot_code", "lot_row"]
