"""Trading-project services: create, edit, publish, clarify, move along, suspend.

Every service takes ``(session, actor, now, ...)``, checks object-level authorization,
checks the rulebook, changes the project and appends the audit entry in the same
transaction. Every status change goes through :func:`apply_transition`.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from audits import log
from core.actor import Actor
from core.clock import format_instant, parse_instant
from core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from trading import lifecycle
from trading.domain import OrgKind, Role, Status
from trading.models import Clarification, Lot, Notice, Organisation, Project
from trading.schemas import MONEY_FIELDS, SCHEDULE_FIELDS

# --------------------------------------------------------------------------- lifecycle glue


def schedule_of(project: Project) -> lifecycle.Schedule:
    """The project's schedule as the pure lifecycle sees it."""
    return lifecycle.Schedule(**{name: getattr(project, name) for name in SCHEDULE_FIELDS})


def milestones_of(project: Project) -> lifecycle.Milestones:
    return lifecycle.Milestones.from_json(project.milestones or {})


def status_of(project: Project, now: datetime) -> Status:
    """The project's status, derived from its schedule, its milestones and ``now``."""
    return lifecycle.derive_status(project.procedure, schedule_of(project), milestones_of(project), now,
                                  domain=project.domain)


def next_check_of(project: Project, now: datetime) -> datetime | None:
    return lifecycle.next_check(project.procedure, schedule_of(project), milestones_of(project), now,
                               domain=project.domain)


def apply_transition(session: Session, actor: Actor, now: datetime, project: Project, action: str,
                     *, data: dict[str, Any] | None = None, reason: str | None = None,
                     new_schedule: lifecycle.Schedule | None = None) -> Status:
    """The one door every status change goes through: guard, record, log."""
    before = status_of(project, now)
    try:
        milestones = lifecycle.transition(project.procedure, schedule_of(project),
                                          milestones_of(project), action, now, reason=reason,
                                          domain=project.domain, new_schedule=new_schedule)
    except lifecycle.TransitionRefused as exc:
        raise Conflict(f"Cannot {action} a project that is {exc.from_status}",
                       code=exc.code, message_zh=f"项目当前状态（{exc.from_status}）不允许执行 {action}",
                       action=action, status=str(exc.from_status)) from None
    project.milestones = milestones.to_json()
    if new_schedule is not None:
        for name in SCHEDULE_FIELDS:
            setattr(project, name, getattr(new_schedule, name))
    project.updated_at = now
    after = status_of(project, now)
    log.append(session, now=now, actor=actor.log_name, action=f"project.{action}",
               subject=f"project:{project.id}",
               data={"from": str(before), "to": str(after), **({"reason": reason} if reason else {}),
                     **(data or {})})
    return after


# --------------------------------------------------------------------------- access


def _org_id(session: Session, code: str, kind: str | None, field: str) -> int:
    org = session.execute(sa.select(Organisation).where(Organisation.code == code)).scalar_one_or_none()
    if org is None:
        raise NotFound(f"No organisation {code}", field=field)
    if kind and org.kind != kind:
        raise ValidationFailed(f"{code} is not a {kind}", field=field)
    return org.id


def manages(actor: Actor, project: Project) -> bool:
    """The agent running the procedure, or the tenderee when it procures by itself."""
    if project.agent_org_id is not None:
        return actor.has(Role.AGENT) and actor.org_id == project.agent_org_id
    return actor.has(Role.TENDEREE) and actor.org_id == project.tenderee_org_id


def is_party_owner(actor: Actor, project: Project) -> bool:
    return manages(actor, project) or (actor.has(Role.TENDEREE) and actor.org_id == project.tenderee_org_id)


def can_view(actor: Actor, project: Project) -> bool:
    if project.published_at is not None:
        return True
    return is_party_owner(actor, project) or actor.has(Role.SUPERVISOR, Role.ADMIN)


def get_project(session: Session, actor: Actor, project_id: int, *, for_update: bool = False) -> Project:
    """Load a project the actor may see (404 otherwise: drafts do not leak)."""
    project = session.get(Project, project_id, with_for_update=for_update or None)
    if project is None or not can_view(actor, project):
        raise NotFound("No such project", code="project_not_found", message_zh="项目不存在")
    return project


def require_manager(actor: Actor, project: Project) -> None:
    if not manages(actor, project):
        raise Forbidden("Only the project's agent (or self-procuring tenderee) may do this",
                        message_zh="仅该项目的代理机构（或自行招标的招标人）可执行")


# --------------------------------------------------------------------------- services


def create_project(session: Session, actor: Actor, now: datetime, body: dict[str, Any]) -> Project:
    """Create a draft project (agent for a tenderee, or a tenderee for itself)."""
    if not actor.has(Role.AGENT, Role.TENDEREE):
        raise Forbidden("Only agents and tenderees create projects", message_zh="仅代理机构和招标人可创建项目")
    tenderee_id = _org_id(session, body["tenderee"], OrgKind.TENDEREE, "tenderee")
    if actor.has(Role.TENDEREE) and not actor.has(Role.AGENT) and actor.org_id != tenderee_id:
        raise Forbidden("A tenderee creates projects for itself only", field="tenderee")
    project = Project(
        title=body["title"], description=body.get("description", ""), domain=body["domain"],
        procedure=body["procedure"], category=body["category"], region=body.get("region"),
        tenderee_org_id=tenderee_id,
        agent_org_id=actor.org_id if actor.has(Role.AGENT) else None,
        supervisor_org_id=_org_id(session, body["supervisor"], OrgKind.SUPERVISORY_BODY, "supervisor")
        if body.get("supervisor") else None,
        created_by_id=actor.user_id, currency=body.get("currency", "CNY"),
        evaluation_method=body.get("evaluation_method"),
        created_at=now, updated_at=now, milestones={},
    )
    for name in MONEY_FIELDS:
        setattr(project, name, body.get(name))
    for name in SCHEDULE_FIELDS:
        setattr(project, name, body.get("schedule", {}).get(name))
    lots = body.get("lots") or [{"code": "1", "title": body["title"]}]
    project.lots = [Lot(position=i, **lot) for i, lot in enumerate(lots)]
    session.add(project)
    session.flush()
    log.append(session, now=now, actor=actor.log_name, action="project.created",
               subject=f"project:{project.id}",
               data={"domain": project.domain, "procedure": project.procedure, "title": project.title})
    return project


def update_project(session: Session, actor: Actor, now: datetime, project_id: int,
                   body: dict[str, Any]) -> Project:
    """Edit a draft. Published projects change only through clarifications."""
    project = get_project(session, actor, project_id, for_update=True)
    require_manager(actor, project)
    if status_of(project, now) != Status.DRAFT:
        raise Conflict("Only drafts are edited; publish a clarification instead",
                       code="not_draft", message_zh="仅草稿可修改，已发布项目请发布澄清")
    for name in ("title", "description", "region", "evaluation_method", *MONEY_FIELDS):
        if name in body:
            setattr(project, name, body[name])
    for name, value in body.get("schedule", {}).items():
        setattr(project, name, value)
    if "lots" in body:
        project.lots = [Lot(position=i, **lot) for i, lot in enumerate(body["lots"])]
    project.updated_at = now
    log.append(session, now=now, actor=actor.log_name, action="project.updated",
               subject=f"project:{project.id}", data={"fields": sorted(body)})
    return project


def publish_project(session: Session, actor: Actor, now: datetime, project_id: int,
                    rulebook: Any) -> Project:
    """Publish: check the schedule and money against the rulebook, pin the rules in force."""
    from trading import rules_check
    project = get_project(session, actor, project_id, for_update=True)
    require_manager(actor, project)
    if project.bid_deadline is None:
        raise ValidationFailed("A bid deadline is required to publish", code="schedule_incomplete",
                               message_zh="发布前须设定投标截止时间", field="schedule.bid_deadline")
    rules = rulebook.for_project(project.domain, project.procedure, project.category,
                                 budget=project.budget if project.budget is not None else project.estimate)
    rules_check.check_publication(rules, rules_check.Publication(
        published_at=now, bid_deadline=project.bid_deadline,
        documents_from=project.documents_from, documents_until=project.documents_until,
        objection_deadline=project.objection_deadline, bid_security=project.bid_security,
        performance_security=project.performance_security, max_price=project.max_price,
        floor_price=project.floor_price, appraisal_value=project.appraisal_value,
        price_weight=_price_weight(project)))
    project.rulebook_version = rulebook.version
    project.rules = rules.to_dict()
    project.published_at = now
    apply_transition(session, actor, now, project, "publish",
                     data={"rulebook_version": rulebook.version})
    session.add(Notice(project_id=project.id, kind="tender", title=project.title,
                       body=project.description or project.title, published_at=now))
    return project


def _price_weight(project: Project) -> Decimal | None:
    method = project.evaluation_method or {}
    weight = method.get("price_weight")
    return Decimal(str(weight)) if weight is not None else None


def project_rules(project: Project) -> Any:
    """The rules pinned on the project at publication."""
    from trading.rulebook import ProjectRules
    if project.rules is None:
        raise Conflict("The project is not published", code="not_published")
    return ProjectRules.from_dict(project.rules)


def clarify(session: Session, actor: Actor, now: datetime, project_id: int,
            body: dict[str, Any]) -> Clarification:
    """Issue a clarification or amendment (RULES A3): one that affects bid preparation less
    than the rule's days before the deadline is refused unless the deadline moves."""
    from trading import rules_check
    project = get_project(session, actor, project_id, for_update=True)
    require_manager(actor, project)
    if status_of(project, now) not in (Status.PUBLISHED, Status.BIDDING):
        raise Conflict("Clarifications only before the bid deadline", code="wrong_state")
    new_deadline = body.get("new_bid_deadline")
    if new_deadline is not None and new_deadline < project.bid_deadline:
        raise ValidationFailed("A clarification may move the deadline later, never earlier",
                               field="new_bid_deadline")
    rules_check.check_clarification(project_rules(project), now, project.bid_deadline,
                                    affects_preparation=body.get("affects_bids", True),
                                    new_bid_deadline=new_deadline)
    clar = Clarification(project_id=project.id, text=body["text"],
                         affects_bids=body.get("affects_bids", True), issued_at=now,
                         issued_by_id=actor.user_id, old_bid_deadline=project.bid_deadline,
                         new_bid_deadline=new_deadline)
    if new_deadline is not None:
        project.bid_deadline = new_deadline
    session.add(clar)
    session.add(Notice(project_id=project.id, kind="clarification", title=f"澄清：{project.title}",
                       body=body["text"], published_at=now))
    session.flush()
    log.append(session, now=now, actor=actor.log_name, action="project.clarified",
               subject=f"project:{project.id}",
               data={"clarification": clar.id, "affects_bids": clar.affects_bids,
                     "new_bid_deadline": format_instant(new_deadline) if new_deadline else None})
    return clar


def cancel(session: Session, actor: Actor, now: datetime, project_id: int, reason: str) -> Project:
    project = get_project(session, actor, project_id, for_update=True)
    require_manager(actor, project)
    apply_transition(session, actor, now, project, "cancel", reason=reason)
    return project


def suspend(session: Session, actor: Actor, now: datetime, project_id: int, reason: str) -> Project:
    """A supervisor suspends a procedure (RULES H3), with a recorded reason."""
    if not actor.has(Role.SUPERVISOR):
        raise Forbidden("Only supervisors suspend", message_zh="仅监督人员可暂停")
    project = get_project(session, actor, project_id, for_update=True)
    apply_transition(session, actor, now, project, "suspend", reason=reason)
    return project


def resume(session: Session, actor: Actor, now: datetime, project_id: int, reason: str) -> Project:
    if not actor.has(Role.SUPERVISOR):
        raise Forbidden("Only supervisors resume", message_zh="仅监督人员可恢复")
    project = get_project(session, actor, project_id, for_update=True)
    apply_transition(session, actor, now, project, "resume", reason=reason)
    return project


def list_projects(session: Session, actor: Actor, now: datetime, filters: dict[str, Any]) -> tuple[list[Project], int]:
    """Projects the actor may see, filtered; status filtering is applied after derivation."""
    query = sa.select(Project)
    if not actor.has(Role.SUPERVISOR, Role.ADMIN):
        visible = Project.published_at.is_not(None)
        if actor.org_id is not None:
            visible = sa.or_(visible, Project.agent_org_id == actor.org_id,
                             Project.tenderee_org_id == actor.org_id)
        query = query.where(visible)
    for name in ("domain", "procedure", "region"):
        if filters.get(name):
            query = query.where(getattr(Project, name) == filters[name])
    if filters.get("q"):
        query = query.where(Project.title.contains(filters["q"], autoescape=True))
    if filters.get("published_from"):
        query = query.where(Project.published_at >= filters["published_from"])
    if filters.get("published_to"):
        query = query.where(Project.published_at < filters["published_to"])
    query = query.order_by(Project.id.desc())
    page, per_page = filters.get("page", 1), filters.get("per_page", 20)
    if filters.get("status"):
        rows = [p for p in session.execute(query).scalars() if status_of(p, now) == filters["status"]]
        return rows[(page - 1) * per_page: page * per_page], len(rows)
    total = session.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(query.offset((page - 1) * per_page).limit(per_page)).scalars().all()
    return list(rows), total


def project_view(session: Session, project: Project, now: datetime) -> dict[str, Any]:
    """A project as the API shows it, with its derived status."""
    orgs = {o.id: o.code for o in session.execute(sa.select(Organisation).where(
        Organisation.id.in_([i for i in (project.tenderee_org_id, project.agent_org_id) if i]))).scalars()}
    data: dict[str, Any] = {name: getattr(project, name) for name in (
        "id", "title", "description", "domain", "procedure", "category", "region", "currency",
        "evaluation_method", "published_at", "rulebook_version", "milestones", *MONEY_FIELDS)}
    data.update(status=str(status_of(project, now)), tenderee=orgs.get(project.tenderee_org_id),
                agent=orgs.get(project.agent_org_id) if project.agent_org_id else None,
                schedule={name: getattr(project, name) for name in SCHEDULE_FIELDS},
                lots=project.lots, next_check=next_check_of(project, now))
    return data


__all__ = ["create_project", "update_project", "publish_project", "clarify", "cancel", "suspend",
           "resume", "list_projects", "project_view", "apply_transition", "status_of", "parse_instant"]
