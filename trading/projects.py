"""Trading-project services: create, edit, publish, clarify, documents, move along, suspend.

Every service takes ``(session, actor, now, ...)``, checks object-level authorization,
checks the rulebook, changes the project and appends the audit entry in the same
transaction. Every status change goes through :func:`apply_transition`.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from audits import log
from core.actor import Actor
from core.blobs import StoredBlob
from core.clock import format_instant, parse_instant
from core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from trading import lifecycle
from trading.domain import Domain, OrgKind, Role, Status
from trading.models import Clarification, Document, Lot, Notice, Organisation, Project
from trading.schemas import MONEY_FIELDS, SCHEDULE_FIELDS

NOTICE_TITLE_MAX = 300  # the notices.title column
# Integer primary keys: a larger id from a URL cannot exist, and SQLite (64-bit) or
# PostgreSQL (32-bit) would fail on it rather than find nothing.
MAX_ID = 2**31 - 1

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
    """The one door every status change goes through: guard, record, log.

    A refusal is the lifecycle's :class:`~trading.lifecycle.TransitionRefused`: a 409
    whose stable code says why (``wrong_state``, ``suspended``, ``not_suspended``, ...).
    """
    before = status_of(project, now)
    milestones = lifecycle.transition(project.procedure, schedule_of(project), milestones_of(project),
                                      action, now, reason=reason, domain=project.domain,
                                      new_schedule=new_schedule)
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
        raise NotFound(f"No organisation {code}", code="organisation_not_found",
                       message_zh=f"机构 {code} 不存在", field=field)
    if kind and org.kind != kind:
        raise ValidationFailed(f"{code} is not a {kind}", message_zh=f"{code} 不是{kind}类机构", field=field)
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
    project = (session.get(Project, project_id, with_for_update=for_update or None)
               if 0 < project_id <= MAX_ID else None)
    if project is None or not can_view(actor, project):
        raise NotFound("No such project", code="project_not_found", message_zh="项目不存在")
    return project


def require_manager(actor: Actor, project: Project) -> None:
    if not manages(actor, project):
        raise Forbidden("Only the project's agent (or self-procuring tenderee) may do this",
                        message_zh="仅该项目的代理机构（或自行招标的招标人）可执行")


def require_supervisor(actor: Actor, project: Project, verb_en: str, verb_zh: str) -> None:
    """A supervisor; of the project's supervisory body when the project names one."""
    if not actor.has(Role.SUPERVISOR):
        raise Forbidden(f"Only supervisors {verb_en}", message_zh=f"仅监督人员可{verb_zh}")
    if project.supervisor_org_id is not None and actor.org_id != project.supervisor_org_id:
        raise Forbidden(f"Only the project's supervisory body may {verb_en}",
                        message_zh=f"仅该项目的监督部门可{verb_zh}")


# --------------------------------------------------------------------------- drafts


def _default_rulebook(rulebook: Any) -> Any:
    if rulebook is not None:
        return rulebook
    from trading.rulebook import default_rulebook
    return default_rulebook()


def _refuse_min_price(rulebook: Any, domain: str, procedure: str, category: str, body: dict[str, Any]) -> None:
    """RULES A7 forbids a minimum bid price; asset transfers use a floor price instead."""
    from trading import rules_check
    rules = _default_rulebook(rulebook).for_project(domain, procedure, category)
    rules_check.check_price_limits(rules, body.get("max_price"), body["min_price"])
    raise ValidationFailed("This procedure has no minimum price; state-asset transfers set floor_price",
                           code="min_price_not_allowed", message_zh="该交易方式不设最低限价；国有资产转让请设定转让底价",
                           field="min_price")


def _set_lots(session: Session, project: Project, lots: list[dict[str, Any]]) -> None:
    """Replace the lots by code: a lot keeping its code is updated in place, so its row
    (and the (project, code) unique key) is never inserted twice."""
    wanted = {lot["code"] for lot in lots}
    existing = {lot.code: lot for lot in project.lots}
    for code, lot in existing.items():
        if code not in wanted:
            project.lots.remove(lot)
    session.flush()  # deletions first
    ordered = []
    for position, data in enumerate(lots):
        lot = existing.get(data["code"]) or Lot(code=data["code"])
        lot.position, lot.title = position, data["title"]
        for name in ("budget", "max_price", "bid_security"):
            setattr(lot, name, data.get(name))
        ordered.append(lot)
    project.lots = ordered


def create_project(session: Session, actor: Actor, now: datetime, body: dict[str, Any],
                   rulebook: Any = None) -> Project:
    """Create a draft project (agent for a tenderee, or a tenderee for itself)."""
    if not actor.has(Role.AGENT, Role.TENDEREE):
        raise Forbidden("Only agents and tenderees create projects", message_zh="仅代理机构和招标人可创建项目")
    tenderee_id = _org_id(session, body["tenderee"], OrgKind.TENDEREE, "tenderee")
    if actor.has(Role.TENDEREE) and not actor.has(Role.AGENT) and actor.org_id != tenderee_id:
        raise Forbidden("A tenderee creates projects for itself only", message_zh="招标人只能为本单位创建项目",
                        field="tenderee")
    if body.get("min_price") is not None:
        _refuse_min_price(rulebook, body["domain"], body["procedure"], body["category"], body)
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
    lots = body.get("lots") or [{"code": "1", "title": body["title"][:300]}]
    project.lots = [Lot(position=i, **lot) for i, lot in enumerate(lots)]
    session.add(project)
    session.flush()
    log.append(session, now=now, actor=actor.log_name, action="project.created",
               subject=f"project:{project.id}",
               data={"domain": project.domain, "procedure": project.procedure, "title": project.title})
    return project


def _schedule_problem(schedule: lifecycle.Schedule) -> None:
    problems = schedule.problems()
    if problems:
        later = problems[0].split(" before ")[0]
        raise ValidationFailed(f"The schedule runs backwards: {'; '.join(problems)}",
                               code="schedule_inconsistent", message_zh="时间安排前后矛盾",
                               field=f"schedule.{later}", problems=problems)


def update_project(session: Session, actor: Actor, now: datetime, project_id: int,
                   body: dict[str, Any], rulebook: Any = None) -> Project:
    """Edit a draft. Published projects change only through clarifications."""
    project = get_project(session, actor, project_id, for_update=True)
    require_manager(actor, project)
    if status_of(project, now) != Status.DRAFT:
        raise Conflict("Only drafts are edited; publish a clarification instead",
                       code="not_draft", message_zh="仅草稿可修改，已发布项目请发布澄清")
    if body.get("min_price") is not None:
        _refuse_min_price(rulebook, project.domain, project.procedure, project.category,
                          {"max_price": body.get("max_price", project.max_price), **body})
    if "schedule" in body:
        # The merged schedule must hold together, not only the fields sent.
        merged = replace(schedule_of(project), **body["schedule"])
        _schedule_problem(merged)
        for name, value in body["schedule"].items():
            setattr(project, name, value)
    for name in ("title", "description", "region", "evaluation_method", *MONEY_FIELDS):
        if name in body:
            setattr(project, name, body[name])
    if "lots" in body:
        _set_lots(session, project, body["lots"])
    project.updated_at = now
    log.append(session, now=now, actor=actor.log_name, action="project.updated",
               subject=f"project:{project.id}", data={"fields": sorted(body)})
    return project


# --------------------------------------------------------------------------- publication


def _price_weight(project: Project) -> Decimal | None:
    """The published price weight: the price criterion's points over all points, or the
    ``price_weight`` given outright."""
    method = project.evaluation_method or {}
    criteria = method.get("criteria") or []
    try:
        if criteria:
            total = sum((Decimal(c["max_score"]) for c in criteria), Decimal(0))
            price = sum((Decimal(c["max_score"]) for c in criteria if c.get("is_price")), Decimal(0))
            return price / total if total else None
        weight = method.get("price_weight")
        return Decimal(str(weight)) if weight is not None else None
    except (InvalidOperation, KeyError, TypeError):
        raise ValidationFailed("The evaluation method's numbers are not decimals",
                               field="evaluation_method") from None


def _require(project: Project, *names: str) -> None:
    for name in names:
        if getattr(project, name) is None:
            raise ValidationFailed(f"{name} is required to publish", code="missing_field",
                                   message_zh=f"发布前须填写 {name}", field=name)


def _check_money(rules: Any, project: Project) -> tuple[Decimal | None, Decimal | None]:
    """Bid security (B1) per project and per lot against the rule's base, and the maximum
    price that A7 looks at (the project's, or the lots' when every lot has one)."""
    from trading import rules_check
    from trading.rulebook import RuleViolation
    base_name = rules.rule("B1").get("base", "estimate") if rules.applies("B1") else None
    base = None
    if base_name:
        other = "budget" if base_name == "estimate" else "estimate"
        base = getattr(project, base_name, None)
        base = base if base is not None else getattr(project, other, None)
        securities = [project.bid_security] + [lot.bid_security for lot in project.lots]
        if base is None and any(s is not None for s in securities):
            raise ValidationFailed(f"A bid security needs the {base_name} it is a share of (RULES B1)",
                                   code="missing_field", message_zh=f"设定投标保证金须先填写{base_name}（规则 B1）",
                                   field=base_name)
        for lot in project.lots:
            if lot.bid_security is not None:
                try:
                    rules_check.check_bid_security(rules, lot.bid_security,
                                                   lot.budget if lot.budget is not None else base)
                except RuleViolation as violation:
                    violation.details["lot"] = lot.code
                    raise
    max_price = project.max_price
    if max_price is None and project.lots and all(lot.max_price is not None for lot in project.lots):
        max_price = min(lot.max_price for lot in project.lots)
    return base, max_price


def _check_price_weight_published(rules: Any, project: Project, weight: Decimal | None) -> None:
    """E7: comprehensive scoring in GP must publish its price weight."""
    from trading.rulebook import RuleViolation
    method = (project.evaluation_method or {}).get("method")
    if method == "comprehensive" and weight is None and rules.applies("E7"):
        rule = rules.rule("E7")
        raise RuleViolation(rule.id, rule.citation, f"综合评分法须公布价格分权重（{rule.citation}）",
                            f"comprehensive scoring must publish the price weight ({rule.citation})",
                            {"field": "evaluation_method.criteria"})


def publish_project(session: Session, actor: Actor, now: datetime, project_id: int,
                    rulebook: Any) -> Project:
    """Publish: check the schedule and money against the rulebook, pin the rules in force."""
    from trading import rules_check
    project = get_project(session, actor, project_id, for_update=True)
    require_manager(actor, project)
    status = status_of(project, now)
    if status != Status.DRAFT:
        # Before the rule checks: a published project is refused for its state, not its dates.
        raise lifecycle.TransitionRefused("wrong_state", status, "publish")
    if project.bid_deadline is None:
        raise ValidationFailed("A bid deadline is required to publish", code="schedule_incomplete",
                               message_zh="发布前须设定投标截止时间", field="schedule.bid_deadline")
    if project.documents_from is not None and project.documents_from < now:
        # A1 counts from the first issue of the documents: an issue date in the past would
        # shorten the bidders' time on paper only.
        raise ValidationFailed("documents_from is in the past; documents are issued at publication or later",
                               code="schedule_in_past", message_zh="招标文件发出时间早于发布时间",
                               field="schedule.documents_from")
    _schedule_problem(schedule_of(project))
    if project.domain == Domain.STATE_ASSETS:
        _require(project, "appraisal_value", "floor_price")  # RULES G2 compares them
    rules = rulebook.for_project(project.domain, project.procedure, project.category,
                                 budget=project.budget if project.budget is not None else project.estimate)
    base, max_price = _check_money(rules, project)
    weight = _price_weight(project)
    _check_price_weight_published(rules, project, weight)
    rules_check.check_publication(rules, rules_check.Publication(
        published_at=now, bid_deadline=project.bid_deadline,
        documents_from=project.documents_from, documents_until=project.documents_until,
        objection_deadline=project.objection_deadline, bid_security=project.bid_security,
        security_base=base, performance_security=project.performance_security, max_price=max_price,
        floor_price=project.floor_price, appraisal_value=project.appraisal_value,
        price_weight=weight))
    project.rulebook_version = rulebook.version
    project.rules = rules.to_dict()
    project.published_at = now
    limits = legal_limits(project, rules.calendar)
    provisional = sorted(step for step, limit in limits.items() if limit["provisional"])
    apply_transition(session, actor, now, project, "publish",
                     data={"rulebook_version": rulebook.version,
                           **({"provisional_limits": provisional} if provisional else {})})
    session.add(Notice(project_id=project.id, kind="tender", title=project.title,
                       body=project.description or project.title, published_at=now))
    if rules.applies("D1"):
        # PROTOCOL §8: the platform's draw commitment must precede the closing; making it at
        # publication means nobody can forget it (imported here: expert_draw uses this module).
        from trading.expert_draw import commit_platform
        commit_platform(session, project, now, actor=actor)
    return project


def project_rules(project: Project, calendar: Any = None) -> Any:
    """The rules pinned on the project at publication, counted on ``calendar`` (the
    rulebook's, so holiday overrides apply; the packaged one by default)."""
    from trading.rulebook import ProjectRules
    if project.rules is None:
        raise Conflict("The project is not published", code="not_published", message_zh="项目尚未发布")
    return ProjectRules.from_dict(project.rules, calendar)


_LIMIT_STEPS = ("bid_preparation", "response", "single_source_publicity", "listing",
                "document_availability")


def legal_limits(project: Project, calendar: Any = None) -> dict[str, dict[str, Any]]:
    """The legal time limits of the pinned rules for this project, by step: how early the
    bid deadline (or the end of document issue) may fall, and how late a clarification
    (A3) or the objection deadline (A4) may come. Each says ``provisional`` when a year
    without an official holiday table was counted. Empty for a draft."""
    if project.rules is None:
        return {}
    rules = project_rules(project, calendar)
    starts = {"documents_from": project.documents_from or project.published_at,
              "published_at": project.published_at}
    limits: dict[str, dict[str, Any]] = {}
    for step in _LIMIT_STEPS:
        if rules.has_step(step):
            _, period = rules.period(step)
            start = starts.get(period.from_event)
            if start is not None:
                limits[step] = rules.limits_for(step, start).to_dict()
    if project.bid_deadline is not None:
        for step in ("clarification", "objection"):
            if rules.has_step(step):
                limits[step] = rules.latest_start(step, project.bid_deadline).to_dict()
    return limits


# --------------------------------------------------------------------------- clarifications


def _check_assets_change(rules: Any, project: Project, affects_bids: bool,
                         new_deadline: datetime | None) -> None:
    """G3: nothing changes during a listing; an extension is at least 5 working days."""
    from trading import rules_check
    from trading.rulebook import RuleViolation
    if not rules.applies("G3"):
        return
    rule = rules.rule("G3")
    if affects_bids and rule.get("changes_during_listing") is False:
        raise RuleViolation(rule.id, rule.citation, f"挂牌期间不得变更披露信息（{rule.citation}）",
                            f"the disclosed terms may not change during the listing ({rule.citation})",
                            {"field": "affects_bids"})
    if new_deadline is not None:
        rules_check.check_listing_extension(rules, project.bid_deadline, new_deadline)


def clarify(session: Session, actor: Actor, now: datetime, project_id: int,
            body: dict[str, Any], rulebook: Any = None) -> Clarification:
    """Issue a clarification or amendment (RULES A3): one that affects bid preparation less
    than the rule's days before the deadline is refused unless the deadline moves. Moving
    the deadline moves every later date of the schedule by as much."""
    from trading import rules_check
    project = get_project(session, actor, project_id, for_update=True)
    require_manager(actor, project)
    status = status_of(project, now)
    if status not in (Status.PUBLISHED, Status.BIDDING):
        raise Conflict(f"Clarifications only before the bid deadline (the project is {status})",
                       code="wrong_state", message_zh=f"仅可在投标截止前发布澄清（项目当前状态：{status}）",
                       action="clarify", from_status=str(status))
    affects = body.get("affects_bids", True)
    old_deadline = project.bid_deadline
    new_deadline = body.get("new_bid_deadline")
    if new_deadline == old_deadline:
        new_deadline = None
    if new_deadline is not None and new_deadline < old_deadline:
        raise ValidationFailed("A clarification may move the deadline later, never earlier",
                               code="deadline_earlier", message_zh="澄清只能推迟投标截止时间，不能提前",
                               field="new_bid_deadline")
    rules = project_rules(project, getattr(rulebook, "calendar", None))
    if project.domain == Domain.STATE_ASSETS:
        _check_assets_change(rules, project, affects, new_deadline)
    else:
        rules_check.check_clarification(rules, now, old_deadline, affects_preparation=affects,
                                        new_bid_deadline=new_deadline)
    clar = Clarification(project_id=project.id, text=body["text"], affects_bids=affects, issued_at=now,
                         issued_by_id=actor.user_id, old_bid_deadline=old_deadline,
                         new_bid_deadline=new_deadline)
    if new_deadline is not None:
        moved = schedule_of(project)
        moved = replace(moved, **{name: at + (new_deadline - old_deadline)
                                  for name, at in moved.instants().items() if at >= old_deadline})
        for name in SCHEDULE_FIELDS:
            setattr(project, name, getattr(moved, name))
        project.updated_at = now
    session.add(clar)
    session.add(Notice(project_id=project.id, kind="clarification",
                       title=f"澄清：{project.title}"[:NOTICE_TITLE_MAX], body=body["text"], published_at=now))
    session.flush()
    log.append(session, now=now, actor=actor.log_name, action="project.clarified",
               subject=f"project:{project.id}",
               data={"clarification": clar.id, "affects_bids": clar.affects_bids,
                     "new_bid_deadline": format_instant(new_deadline) if new_deadline else None})
    return clar


def list_clarifications(session: Session, actor: Actor, project_id: int) -> list[Clarification]:
    get_project(session, actor, project_id)
    return list(session.execute(sa.select(Clarification).where(Clarification.project_id == project_id)
                                .order_by(Clarification.id)).scalars())


def list_notices(session: Session, actor: Actor, project_id: int) -> list[Notice]:
    get_project(session, actor, project_id)
    return list(session.execute(sa.select(Notice).where(Notice.project_id == project_id)
                                .order_by(Notice.id)).scalars())


# --------------------------------------------------------------------------- documents


def check_document_upload(session: Session, actor: Actor, now: datetime, project_id: int) -> Project:
    """May the actor add a document now? Documents belong to the draft: once published,
    the documents change only through a clarification (RULES A3)."""
    project = get_project(session, actor, project_id)
    require_manager(actor, project)
    if status_of(project, now) != Status.DRAFT:
        raise Conflict("Documents are added to drafts; after publication issue a clarification",
                       code="not_draft", message_zh="仅草稿可上传招标文件，发布后请发布澄清")
    return project


def add_document(session: Session, actor: Actor, now: datetime, project_id: int, *, name: str,
                 content_type: str, blob: StoredBlob) -> Document:
    """Record a stored blob as a document of the project (checked again under the lock:
    the project may have been published while the file streamed in)."""
    project = get_project(session, actor, project_id, for_update=True)
    check_document_upload(session, actor, now, project.id)
    if session.execute(sa.select(Document.id).where(Document.project_id == project.id,
                                                    Document.name == name)).first():
        raise Conflict(f"A document named {name!r} exists", code="document_exists",
                       message_zh=f"同名文件已存在：{name}", field="name")
    doc = Document(project_id=project.id, name=name, sha256=blob.sha256, size=blob.size,
                   content_type=content_type, uploaded_by_id=actor.user_id, uploaded_at=now)
    session.add(doc)
    session.flush()
    log.append(session, now=now, actor=actor.log_name, action="project.document_added",
               subject=f"project:{project.id}",
               data={"document": doc.id, "name": name, "sha256": blob.sha256, "size": blob.size})
    return doc


def list_documents(session: Session, actor: Actor, project_id: int) -> list[Document]:
    get_project(session, actor, project_id)
    return _documents(session, project_id)


def _documents(session: Session, project_id: int) -> list[Document]:
    return list(session.execute(sa.select(Document).where(Document.project_id == project_id)
                                .order_by(Document.id)).scalars())


def document_for_download(session: Session, actor: Actor, now: datetime, project_id: int,
                          document_id: int) -> Document:
    """A document the actor may download: the parties and supervisors always; everyone
    else once the documents are issued (``documents_from``)."""
    project = get_project(session, actor, project_id)
    doc = session.get(Document, document_id) if 0 < document_id <= MAX_ID else None
    if doc is None or doc.project_id != project.id:
        raise NotFound("No such document", code="document_not_found", message_zh="文件不存在")
    insider = is_party_owner(actor, project) or actor.has(Role.SUPERVISOR, Role.ADMIN)
    issued_at = project.documents_from or project.published_at
    if not insider and (issued_at is None or now < issued_at):
        raise Conflict("The documents are not issued yet", code="documents_not_issued",
                       message_zh="招标文件尚未开始发出", documents_from=issued_at)
    return doc


# --------------------------------------------------------------------------- transitions


def cancel(session: Session, actor: Actor, now: datetime, project_id: int, reason: str) -> Project:
    """Cancel (终止) with a reason; a published project gets a public notice."""
    project = get_project(session, actor, project_id, for_update=True)
    require_manager(actor, project)
    apply_transition(session, actor, now, project, "cancel", reason=reason)
    if project.published_at is not None:
        session.add(Notice(project_id=project.id, kind="cancellation",
                           title=f"终止公告：{project.title}"[:NOTICE_TITLE_MAX], body=reason, published_at=now))
    return project


def suspend(session: Session, actor: Actor, now: datetime, project_id: int, reason: str) -> Project:
    """A supervisor suspends a procedure (RULES H3), with a recorded reason."""
    project = get_project(session, actor, project_id, for_update=True)
    require_supervisor(actor, project, "suspend", "暂停")
    apply_transition(session, actor, now, project, "suspend", reason=reason)
    return project


def resume(session: Session, actor: Actor, now: datetime, project_id: int, reason: str,
           schedule: dict[str, datetime] | None = None, rulebook: Any = None) -> Project:
    """A supervisor lifts the suspension. Dates that passed while it lasted must be
    moved: ``schedule`` gives the new ones (else 409 ``schedule_required``), and the
    new schedule is held to the same time limits as at publication (A1/F3/G3, A2)."""
    from trading import rules_check
    project = get_project(session, actor, project_id, for_update=True)
    require_supervisor(actor, project, "resume", "恢复")
    new_schedule = None
    if schedule:
        new_schedule = replace(schedule_of(project), **schedule)
        _schedule_problem(new_schedule)
        if project.rules is not None and new_schedule.bid_deadline is not None:
            rules = project_rules(project, getattr(rulebook, "calendar", None))
            first_issue = new_schedule.documents_from or project.published_at
            rules_check.check_bid_deadline(rules, first_issue, new_schedule.bid_deadline)
            if new_schedule.documents_until is not None:
                rules_check.check_document_availability(rules, first_issue, new_schedule.documents_until)
    apply_transition(session, actor, now, project, "resume", reason=reason, new_schedule=new_schedule,
                     data={"schedule": {k: format_instant(v) for k, v in schedule.items()}} if schedule else None)
    return project


# --------------------------------------------------------------------------- reading


def list_projects(session: Session, actor: Actor, now: datetime, filters: dict[str, Any]) -> tuple[list[Project], int]:
    """Projects the actor may see, filtered and paginated, newest first. The status is
    derived, so that filter is applied after derivation (on rows narrowed in SQL first)."""
    query = sa.select(Project)
    if not actor.has(Role.SUPERVISOR, Role.ADMIN):
        # The same parties as can_view: membership of the organisation is not enough,
        # the role must be the one the project names it in.
        visible = [Project.published_at.is_not(None)]
        if actor.org_id is not None and actor.has(Role.AGENT):
            visible.append(Project.agent_org_id == actor.org_id)
        if actor.org_id is not None and actor.has(Role.TENDEREE):
            visible.append(Project.tenderee_org_id == actor.org_id)
        query = query.where(sa.or_(*visible))
    for name in ("domain", "procedure", "category", "region"):
        if filters.get(name):
            query = query.where(getattr(Project, name) == filters[name])
    if filters.get("q"):
        query = query.where(sa.or_(Project.title.contains(filters["q"], autoescape=True),
                                   Project.description.contains(filters["q"], autoescape=True)))
    for name, column, op in (("published_from", Project.published_at, "ge"), ("published_to", Project.published_at, "lt"),
                             ("deadline_from", Project.bid_deadline, "ge"), ("deadline_to", Project.bid_deadline, "lt")):
        if filters.get(name):
            query = query.where(column >= filters[name] if op == "ge" else column < filters[name])
    query = query.order_by(Project.id.desc())
    page, per_page = filters.get("page", 1), filters.get("per_page", 20)
    if filters.get("status"):
        wanted = Status(filters["status"])
        query = query.where(Project.published_at.is_(None) if wanted is Status.DRAFT
                            else Project.published_at.is_not(None))
        rows = [p for p in session.execute(query).scalars() if status_of(p, now) == wanted]
        return rows[(page - 1) * per_page: page * per_page], len(rows)
    total = session.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(query.offset((page - 1) * per_page).limit(per_page)).scalars().all()
    return list(rows), total


def project_view(session: Session, project: Project, now: datetime, calendar: Any = None) -> dict[str, Any]:
    """A project as the API shows it, with its derived status and its legal limits."""
    org_ids = [i for i in (project.tenderee_org_id, project.agent_org_id, project.supervisor_org_id) if i]
    orgs = {o.id: o.code for o in session.execute(sa.select(Organisation).where(
        Organisation.id.in_(org_ids))).scalars()}
    data: dict[str, Any] = {name: getattr(project, name) for name in (
        "id", "title", "description", "domain", "procedure", "category", "region", "currency",
        "evaluation_method", "published_at", "rulebook_version", "milestones", *MONEY_FIELDS)}
    limits = legal_limits(project, calendar)
    data.update(status=str(status_of(project, now)), tenderee=orgs.get(project.tenderee_org_id),
                agent=orgs.get(project.agent_org_id), supervisor=orgs.get(project.supervisor_org_id),
                schedule={name: getattr(project, name) for name in SCHEDULE_FIELDS},
                lots=project.lots, next_check=next_check_of(project, now), limits=limits,
                provisional=any(limit["provisional"] for limit in limits.values()),
                documents=_documents(session, project.id))
    return data


__all__ = ["create_project", "update_project", "publish_project", "clarify", "cancel", "suspend",
           "resume", "list_projects", "project_view", "apply_transition", "status_of", "parse_instant",
           "legal_limits", "add_document", "check_document_upload", "document_for_download",
           "list_documents", "list_clarifications", "list_notices"]
