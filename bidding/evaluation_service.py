"""Evaluation services (评标): the committee reviews, scores, computes and signs the report
of each lot, by the method fixed at publication (RULES E1, E2, E3, E7, D4, D5, F4, F5).

The arithmetic is :mod:`trading.evaluation` (pure); this module feeds it the opened bids
(or a GP final round's offers), the published terms, the rulebook's numbers and the seated
members' scores, and keeps the result. Services take ``(session, actor, now, ...)``,
never read a request or a clock, and append every change to the audit log in the same
transaction; refusals are logged by the caller after rolling back (:func:`log_refusal`).

Committee names stay secret until the result (D4): whatever a member does is logged with
a hidden leaf, the member reading its own detail. The order of a lot's evaluation:

1. ``start_evaluation`` (the agent, once the opening record is published): the bids are
   fixed, the committee's size checked (D1), the mandatory rejections run (E2, F5); a lot
   with nothing left to evaluate fails at once (all rejected, every bid above the budget,
   or fewer compliant bids than the GP minimum).
2. Members record findings (否决) and, for comprehensive scoring, score every criterion of
   every bid; bidders flagged abnormally low explain in writing and members decide.
3. ``compute_report``: :func:`trading.evaluation.evaluate`; a replaced member's scores are
   marked void (D5); at most the rulebook's number of candidates (E3).
4. Every seated member signs or files a written dissent; then the report is submitted
   (``submit_report``) once every evaluated lot's report is in.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from audits import log
from bidding.award_models import (CANDIDATE, FAILED, SCORING, SIGNING, SUBMITTED, Candidate,
                                  ComplianceFinding, EvaluationReport, FinalOffer,
                                  NegotiationRound, PriceExplanation, Quote, ReportSignature,
                                  Score, TrackedStep)
from bidding.models import LIVE, WITHDRAWN, OpeningSession, Submission
from core.actor import Actor
from core.clock import format_instant, parse_instant
from core.errors import AppError, Conflict, Forbidden, NotFound, RuleBroken, ValidationFailed
from crypto.bidform import BID_FORM_NAME
from crypto.canonical import canonical_json
from trading import evaluation as ev
from trading import projects, rules_check
from trading.domain import Domain, Procedure, Role, Status
from trading.models import Lot, Project
from trading.rulebook import ProjectRules, RuleViolation

# Where a method is not published, the procedure's own (GP法 38 negotiation: lowest price;
# 磋商 and tenders: comprehensive scoring must be published, so no default there).
_PROCEDURE_METHOD = {Procedure.INQUIRY: ev.Method.INQUIRY,
                     Procedure.COMPETITIVE_NEGOTIATION: ev.Method.LOWEST_EVALUATED_PRICE}
_DEFAULT_TIE_BREAK = (ev.TieBreak.LOWER_PRICE, ev.TieBreak.EARLIER_RECEIPT)


# --------------------------------------------------------------------------- plumbing

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


def _lot(project: Project, code: str) -> Lot:
    return next(l for l in project.lots if l.code == code)


# --------------------------------------------------------------------------- published terms

def method_of(project: Project) -> ev.Method:
    """The evaluation method fixed at publication (E1); inquiry is always lowest price (F4)."""
    procedure = Procedure(project.procedure)
    if procedure is Procedure.INQUIRY:
        return ev.Method.INQUIRY
    published = (project.evaluation_method or {}).get("method")
    try:
        return ev.Method(published) if published else _PROCEDURE_METHOD[procedure]
    except (ValueError, KeyError):
        raise ValidationFailed("The published evaluation method is missing or unknown",
                               code="invalid_method", message_zh="招标文件未载明有效的评标方法",
                               rule="E1", method=published) from None


def tender_terms(project: Project, lot: str) -> ev.TenderTerms:
    """What the documents published for ``lot`` (E1): method, maximum price, budget,
    criteria with their points, aggregation, price formula and tie-break."""
    published = project.evaluation_method or {}
    row = _lot(project, lot)
    try:
        criteria = tuple(ev.Criterion(id=str(c["id"]), max_score=Decimal(str(c["max_score"])),
                                      is_price=bool(c.get("is_price", False)))
                         for c in published.get("criteria", []))
        return ev.TenderTerms(
            method=method_of(project),
            maximum_price=row.max_price if row.max_price is not None else project.max_price,
            budget=row.budget if row.budget is not None else project.budget,
            criteria=criteria,
            aggregation=ev.Aggregation(published.get("aggregation", ev.Aggregation.MEAN)),
            price_formula=ev.PriceFormula(published.get("price_formula", ev.PriceFormula.LOW_PRICE_FIRST)),
            tie_break=tuple(ev.TieBreak(t) for t in published.get("tie_break", _DEFAULT_TIE_BREAK)),
            alternative_bids_allowed=bool(published.get("alternative_bids_allowed", False)))
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise ValidationFailed(f"The published evaluation method is malformed: {exc}",
                               code="invalid_method", message_zh="招标文件载明的评标方法格式有误",
                               rule="E1") from None


def evaluation_rules(project: Project, rules: ProjectRules, bids: int) -> ev.EvaluationRules:
    """The rulebook's numbers for the evaluation of this project."""
    e3 = rules.rule("E3")
    maximum = e3.integer("max_candidates") if e3.applies else None
    e7 = rules.rule("E7")
    low = e7.decimal("min_price_weight_ratio") if e7.applies else None
    high = e7.decimal("max_price_weight_ratio") if e7.applies else None
    minimum = None
    # GP法 36: fewer qualified suppliers than the minimum fails a GP procurement; C2 holds
    # that minimum. Construction may go on with fewer (条例 51 leaves it to the committee).
    if Domain(project.domain) is Domain.GOVERNMENT_PROCUREMENT and rules.applies("C2"):
        minimum = rules.rule("C2").integer("min_bids")
    ratio = (project.evaluation_method or {}).get("abnormally_low_ratio")
    return ev.EvaluationRules(
        max_candidates=maximum or max(bids, 1),
        reject_above_budget=rules.applies("F5") and rules.rule("F5").flag("reject_above_budget"),
        abnormally_low_ratio=Decimal(str(ratio)) if ratio is not None else None,
        min_compliant_bids=minimum, price_weight_min=low, price_weight_max=high)


# --------------------------------------------------------------------------- bids

def published_opening(session: Session, project: Project) -> OpeningSession:
    opening = session.execute(sa.select(OpeningSession).where(
        OpeningSession.project_id == project.id)).scalar_one_or_none()
    if opening is None or opening.published_at is None or not opening.record:
        raise Conflict("The opening record is not published yet", code="opening_not_published",
                       message_zh="开标记录尚未公布")
    return opening


def record_bids(session: Session, project: Project, lot: str) -> list[dict[str, Any]]:
    """Every bid of ``lot`` in the published opening record, whatever its status."""
    record = published_opening(session, project).record or {}
    return [b for b in record.get("bids", []) if b.get("lot") == lot]


def _bid_forms(session: Session, project: Project, lot: str) -> dict[str, list[Submission]]:
    rows = session.execute(sa.select(Submission).where(
        Submission.project_id == project.id, Submission.lot_code == lot,
        Submission.file == BID_FORM_NAME, Submission.state != WITHDRAWN)
        .order_by(Submission.received_at)).scalars()
    found: dict[str, list[Submission]] = {}
    for row in rows:
        found.setdefault(row.bidder_code, []).append(row)
    return found


def opened_bids(session: Session, project: Project, lot: str) -> list[dict[str, Any]]:
    """The bids the opening decrypted (C3), with the receipt time of their live bid form.
    A bid revoked or withdrawn at the opening is not evaluated (C4)."""
    forms = _bid_forms(session, project, lot)
    out = []
    for bid in record_bids(session, project, lot):
        if bid.get("status") != "opened" or bid.get("price") is None:
            continue
        live = [s for s in forms.get(bid["bidder"], []) if s.state == LIVE]
        received = live[-1].received_at if live else None
        out.append({"bid": bid["bidder"], "bidder": bid["bidder"], "price": bid["price"],
                    "received_at": format_instant(received) if received else None,
                    "declared": bid.get("declared") or {},
                    "receipts": len(forms.get(bid["bidder"], []))})
    return out


def _final_round(session: Session, project: Project, lot: str) -> NegotiationRound | None:
    return session.execute(sa.select(NegotiationRound).where(
        NegotiationRound.project_id == project.id, NegotiationRound.lot_code == lot,
        NegotiationRound.final.is_(True))).scalar_one_or_none()


def bids_for_evaluation(session: Session, project: Project, lot: str, now: datetime,
                        ) -> tuple[list[dict[str, Any]], str]:
    """The bids to evaluate and where their prices came from: a GP negotiation or
    consultation evaluates the final offers of its final round (a supplier that made none
    has left), everything else the prices the opening read."""
    opened = opened_bids(session, project, lot)
    rounds = session.execute(sa.select(sa.func.count()).select_from(NegotiationRound).where(
        NegotiationRound.project_id == project.id, NegotiationRound.lot_code == lot)).scalar_one()
    if not rounds:
        return opened, "opening"
    final = _final_round(session, project, lot)
    if final is None or now < final.response_due_at:
        raise Conflict("Negotiation is still going on: the final offers are not all in",
                       code="final_offers_open", message_zh="谈判/磋商尚未结束，最后报价未截止")
    by_bidder = {b["bidder"]: b for b in opened}
    offers = session.execute(sa.select(FinalOffer).where(FinalOffer.round_id == final.id)
                             .order_by(FinalOffer.bidder_code)).scalars()
    bids = [{"bid": o.bidder_code, "bidder": o.bidder_code, "price": money(o.price),
             "received_at": format_instant(o.submitted_at),
             "declared": {**by_bidder.get(o.bidder_code, {}).get("declared", {}), **(o.declared or {})},
             "receipts": 1} for o in offers]
    return bids, f"final_offers:{final.number}"


def to_core_bids(report: EvaluationReport, findings: Iterable[ComplianceFinding] = ()) -> list[ev.Bid]:
    """The report's bids as the pure core takes them, with the committee's findings."""
    found: dict[str, list[ev.Rejection]] = {}
    for f in findings:
        found.setdefault(f.bid, []).append(ev.Rejection(f.code, f.rule, f.detail))
    out = []
    for b in report.bids:
        received = parse_instant(b["received_at"]) if b.get("received_at") else report.started_at
        rejections = list(found.get(b["bid"], ()))
        if b.get("price_changed"):
            rejections.append(ev.Rejection("price_changed", "F4", "more than one price quoted"))
        out.append(ev.Bid(bid_id=b["bid"], bidder=b["bidder"], price=Decimal(b["price"]),
                          received_at=received, rejections=tuple(rejections)))
    return out


# --------------------------------------------------------------------------- the committee

def _experts_api() -> Any:
    # The draw module is the expert engineer's; evaluation only needs its seats.
    from trading import expert_draw, experts
    return expert_draw, experts


def committee(session: Session, project: Project, lot: str) -> tuple[list[Any], list[Any]]:
    """``(seated, vacated)``: members whose scores count, and members whose seats were
    vacated (declined, recused or replaced) whose conclusions are void (D5)."""
    expert_draw, _ = _experts_api()
    from trading.experts_models import MEMBER, VACATED, CommitteeMember
    seated = expert_draw.active_members(session, project.id, lot)
    vacated = list(session.execute(sa.select(CommitteeMember).where(
        CommitteeMember.project_id == project.id, CommitteeMember.lot == lot,
        CommitteeMember.role == MEMBER, CommitteeMember.status.in_(VACATED))).scalars())
    return seated, vacated


def seat_of(session: Session, actor: Actor, project: Project, lot: str) -> Any:
    """The acting expert's seat, if it is seated: a vacated seat is refused with D5
    (its holder's conclusions are void), anyone else with ``not_a_member``."""
    _, experts = _experts_api()
    if not actor.has(Role.EXPERT):
        raise Forbidden("Only the committee's members do this", code="not_a_member",
                        message_zh="仅评标委员会成员可执行")
    expert = experts.expert_of_user(session, actor)
    seated, vacated = committee(session, project, lot)
    for member in seated:
        if member.expert_id == expert.id:
            return member
    if any(m.expert_id == expert.id for m in vacated):
        raise Forbidden("Your seat was vacated: your conclusions are void",
                        code="member_replaced", message_zh="您已被替换或回避，评审意见无效", rule="D5")
    raise Forbidden("You hold no seat on this committee", code="not_a_member",
                    message_zh="您不是本评标委员会成员")


def committee_hash(expert_ids: Iterable[str]) -> str:
    """A digest of who sat when the result was computed (names stay out of the result)."""
    return hashlib.sha256(canonical_json(sorted(expert_ids))).hexdigest()


# --------------------------------------------------------------------------- start

def report_of(session: Session, project: Project, lot: str, *, lock: bool = False) -> EvaluationReport:
    query = sa.select(EvaluationReport).where(EvaluationReport.project_id == project.id,
                                              EvaluationReport.lot_code == lot)
    report = session.execute(query.with_for_update() if lock else query).scalar_one_or_none()
    if report is None:
        raise NotFound("The evaluation of this lot has not started", code="evaluation_not_started",
                       message_zh="该标段尚未开始评标")
    return report


def _check_terms(project: Project, rules: ProjectRules, terms: ev.TenderTerms,
                 ev_rules: ev.EvaluationRules) -> None:
    """E1, E7: comprehensive scoring needs usable criteria and a price weight within the
    rule (checked against the rulebook, then by the core's own bounds)."""
    if terms.method is not ev.Method.COMPREHENSIVE:
        return
    rules_check.check_price_weight(rules, ev.price_weight(terms.criteria))
    ev.check_criteria(terms, ev_rules)


def start_evaluation(session: Session, actor: Actor, now: datetime, project_id: int,
                     lot: str | None) -> EvaluationReport:
    """Open the evaluation of a lot once the opening record is published: fix the bids,
    check the committee (D1) and the published method (E1, E7), and run the mandatory
    rejections (E2, F5). A lot left with nothing to evaluate fails at once."""
    project = projects.get_project(session, actor, project_id, for_update=True)
    projects.require_manager(actor, project)
    require_status(project, now, Status.EVALUATION)
    lot = lot_code(project, lot)
    if session.execute(sa.select(EvaluationReport.id).where(
            EvaluationReport.project_id == project.id, EvaluationReport.lot_code == lot)).first():
        raise Conflict("The evaluation of this lot has started", code="evaluation_already_started",
                       message_zh="该标段已开始评标")
    rules = rules_of(project)
    seated, _ = committee(session, project, lot)
    rules_check.check_committee(rules, len(seated), len(seated))
    bids, source = bids_for_evaluation(session, project, lot, now)
    terms = tender_terms(project, lot)
    ev_rules = evaluation_rules(project, rules, len(bids))
    _check_terms(project, rules, terms, ev_rules)
    if terms.method is ev.Method.INQUIRY:
        bids = _inquiry_quotes(session, project, rules, lot, bids)
    report = EvaluationReport(project_id=project.id, lot_code=lot, method=str(terms.method),
                              status=SCORING, bids=bids, price_source=source, started_at=now,
                              started_by=actor.log_name, log_index=0)
    session.add(report)
    report.log_index = log.append(
        session, now=now, actor=actor.log_name, action="evaluation.started",
        subject=subject_of(project),
        data={"lot": lot, "method": str(terms.method), "price_source": source,
              "bids": [{"bidder": b["bidder"], "price": b["price"]} for b in bids],
              "members": len(seated)}).index
    session.flush()
    failure = _mechanical_failure(rules, to_core_bids(report), terms, ev_rules)
    if failure:
        fail_lot(session, actor, now, project, report, failure)
    return report


def _inquiry_quotes(session: Session, project: Project, rules: ProjectRules, lot: str,
                    bids: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """F4: each supplier's one price becomes its quote; a supplier that sent more than one
    price (a superseded bid form) broke the rule and its bid is rejected in review."""
    out = []
    for bid in bids:
        changed = judge_price_quotes(rules, bid.get("receipts", 1))
        session.add(Quote(project_id=project.id, lot_code=lot, bidder_code=bid["bidder"],
                          price=Decimal(bid["price"]), receipts=bid.get("receipts", 1),
                          quoted_at=parse_instant(bid["received_at"]) if bid.get("received_at")
                          else project.bid_deadline))
        out.append({**bid, "price_changed": changed})
    return out


def judge_price_quotes(rules: ProjectRules, quotes: int) -> bool:
    """True when ``quotes`` prices break F4's one unchangeable price."""
    try:
        rules_check.check_price_quotes(rules, quotes)
    except RuleViolation:
        return True
    return False


def _mechanical_failure(rules: ProjectRules, bids: Sequence[ev.Bid], terms: ev.TenderTerms,
                        ev_rules: ev.EvaluationRules) -> list[dict[str, str]]:
    """What fails a lot before any judgment: no bid survives the mandatory rejections
    (E2), every bid above the budget (F5), too few compliant bids for GP (GP法 36).
    An abnormally low bid still counts: its explanation may save it."""
    failure: list[dict[str, str]] = []
    try:
        rules_check.check_bids_within_budget(rules, [b.price for b in bids], terms.budget)
    except RuleViolation as violation:
        failure.append({"code": "every_bid_above_budget", "rule": violation.rule,
                        "detail": violation.message_en})
    reviews = ev.review_compliance(bids, terms, ev_rules)
    alive = [r for r in reviews if r.status is not ev.BidStatus.REJECTED]
    if not bids:
        failure.append({"code": "no_bids", "rule": "E2", "detail": ""})
    elif not alive:
        failure.append({"code": "all_bids_rejected", "rule": "E2", "detail": "法 42: re-tender"})
    elif ev_rules.min_compliant_bids is not None and len(alive) < ev_rules.min_compliant_bids:
        failure.append({"code": "too_few_compliant_bids", "rule": "C2",
                        "detail": f"{len(alive)} < {ev_rules.min_compliant_bids}"})
    return failure


def fail_lot(session: Session, actor: Actor, now: datetime, project: Project,
             report: EvaluationReport, failure: list[dict[str, str]]) -> None:
    """The lot fails (流标/废标). When no lot of the project is left standing, the project
    fails through the lifecycle (法 42: re-tender; GP法 36, F5: 废标)."""
    report.status, report.failed_at, report.failure = FAILED, now, failure
    log.append(session, now=now, actor=actor.log_name, action="evaluation.failed",
               subject=subject_of(project), data={"lot": report.lot_code, "failure": failure})
    session.flush()
    reports = _reports(session, project)
    if all(r.status == FAILED for r in reports) and len(reports) == len(_evaluated_lots(session, project)):
        reason = "; ".join(f"{f['rule']}: {f['code']}" for f in failure)
        projects.apply_transition(session, actor, now, project, "fail", reason=reason,
                                  data={"rules": sorted({f["rule"] for f in failure})})


def _reports(session: Session, project: Project) -> list[EvaluationReport]:
    return list(session.execute(sa.select(EvaluationReport).where(
        EvaluationReport.project_id == project.id).order_by(EvaluationReport.lot_code)).scalars())


def _evaluated_lots(session: Session, project: Project) -> list[str]:
    """The lots that reached evaluation: those the opening opened."""
    record = published_opening(session, project).record or {}
    lots = [l["lot"] for l in record.get("lots", []) if l.get("opened", True)]
    return lots or [l.code for l in project.lots]


# --------------------------------------------------------------------------- the committee's work

def _scoring_report(session: Session, project: Project, lot: str) -> EvaluationReport:
    """The report, open for the committee's work. Work after the result was computed
    sends the report back to scoring: the signatures were for another result."""
    report = report_of(session, project, lot, lock=True)
    if report.status not in (SCORING, SIGNING):
        raise Conflict(f"The report is {report.status}", code="report_closed",
                       message_zh="评标报告已提交或评标已终止", report_status=report.status)
    if report.status == SIGNING:
        _reopen(session, report)
    return report


def _reopen(session: Session, report: EvaluationReport) -> None:
    session.execute(sa.delete(ReportSignature).where(ReportSignature.report_id == report.id))
    session.execute(sa.delete(Candidate).where(Candidate.report_id == report.id))
    report.status, report.result, report.result_sha256, report.computed_at = SCORING, None, None, None


def submit_scores(session: Session, actor: Actor, now: datetime, project_id: int,
                  lot: str | None, items: Sequence[Mapping[str, Any]]) -> list[Score]:
    """A seated member scores criteria of bids (comprehensive scoring only). Only
    published, non-price criteria (E1), each within ``[0, max]``; a vacated member is
    refused (D5). A later score of the same cell replaces the earlier one."""
    project = projects.get_project(session, actor, project_id, for_update=True)
    require_status(project, now, Status.EVALUATION)
    lot = lot_code(project, lot)
    member = seat_of(session, actor, project, lot)
    report = _scoring_report(session, project, lot)
    terms = tender_terms(project, lot)
    if terms.method is not ev.Method.COMPREHENSIVE:
        raise Conflict("The published method scores no criteria", code="no_scoring_in_method",
                       message_zh="本项目评标方法无需打分", method=str(terms.method))
    criteria = {c.id: c for c in terms.criteria}
    bids = {b["bid"] for b in report.bids}
    rows = []
    for item in items:
        where = {"bid": item["bid"], "criterion": item["criterion"]}
        criterion = criteria.get(item["criterion"])
        if criterion is None:
            raise ev.EvaluationError("Only published criteria may be scored",
                                     code="unpublished_criterion", rule="E1", **where)
        if criterion.is_price:
            raise ev.EvaluationError("The price criterion is computed, not scored",
                                     code="price_criterion_scored", rule="E7", **where)
        if item["bid"] not in bids:
            raise ev.EvaluationError("Score for an unknown bid", code="unknown_bid", **where)
        value = item["value"]
        if not Decimal(0) <= value <= criterion.max_score:
            raise ev.EvaluationError(f"Score {value} outside [0, {criterion.max_score}]",
                                     code="score_out_of_range", value=money(value),
                                     max=str(criterion.max_score), **where)
        rows.append(_upsert_score(session, report, member, item["bid"], item["criterion"], value, now))
    index = log_member(session, actor, now, project, "evaluation.scored", {
        "lot": lot, "expert": member.expert_id,
        "scores": [{"bid": r.bid, "criterion": r.criterion, "value": money(r.value)} for r in rows]})
    for row in rows:
        row.log_index = index
    session.flush()
    return rows


def _upsert_score(session: Session, report: EvaluationReport, member: Any, bid: str,
                  criterion: str, value: Decimal, now: datetime) -> Score:
    row = session.execute(sa.select(Score).where(
        Score.report_id == report.id, Score.expert_id == member.expert_id, Score.bid == bid,
        Score.criterion == criterion)).scalar_one_or_none()
    if row is None:
        row = Score(report_id=report.id, project_id=report.project_id, lot_code=report.lot_code,
                    member_id=member.id, expert_id=member.expert_id, bid=bid, criterion=criterion,
                    value=value, scored_at=now, log_index=0)
        session.add(row)
    row.value, row.scored_at = value, now
    return row


def record_finding(session: Session, actor: Actor, now: datetime, project_id: int,
                   lot: str | None, body: Mapping[str, Any]) -> ComplianceFinding:
    """A member records that a bid fails the compliance review (否决投标, E2): the bid is
    rejected with the code and detail given."""
    project = projects.get_project(session, actor, project_id, for_update=True)
    require_status(project, now, Status.EVALUATION)
    lot = lot_code(project, lot)
    member = seat_of(session, actor, project, lot)
    report = _scoring_report(session, project, lot)
    if body["bid"] not in {b["bid"] for b in report.bids}:
        raise NotFound("No such bid in this lot", code="unknown_bid", message_zh="无此投标")
    finding = ComplianceFinding(report_id=report.id, bid=body["bid"], code=body["code"],
                                rule=body.get("rule") or "E2", detail=body.get("detail") or "",
                                expert_id=member.expert_id, found_at=now, log_index=0)
    session.add(finding)
    finding.log_index = log_member(session, actor, now, project, "evaluation.finding", {
        "lot": lot, "expert": member.expert_id, "bid": finding.bid, "code": finding.code,
        "rule": finding.rule})
    session.flush()
    return finding


def _review(session: Session, project: Project, report: EvaluationReport) -> dict[str, ev.Review]:
    terms = tender_terms(project, report.lot_code)
    ev_rules = evaluation_rules(project, rules_of(project), len(report.bids))
    reviews = ev.review_compliance(to_core_bids(report, _findings(session, report)), terms, ev_rules,
                                   _explanations(session, report))
    return {r.bid_id: r for r in reviews}


def submit_explanation(session: Session, actor: Actor, now: datetime, project_id: int,
                       lot: str | None, text: str) -> PriceExplanation:
    """The bidder whose price the review found abnormally low explains it in writing (E2)."""
    project = projects.get_project(session, actor, project_id, for_update=True)
    require_status(project, now, Status.EVALUATION)
    lot = lot_code(project, lot)
    report = _scoring_report(session, project, lot)
    bid = actor.org_code
    review = _review(session, project, report).get(bid or "")
    if not actor.has(Role.BIDDER) or review is None:
        raise Forbidden("Only a bidder of this lot explains its own price", code="not_the_bidder",
                        message_zh="仅该标段的投标人可说明本方报价")
    if "abnormally_low" not in review.flags:
        raise Conflict("No explanation of this price was asked for", code="explanation_not_required",
                       message_zh="未要求对该报价作出说明")
    row = session.execute(sa.select(PriceExplanation).where(
        PriceExplanation.report_id == report.id, PriceExplanation.bid == bid)).scalar_one_or_none()
    if row is None:
        row = PriceExplanation(report_id=report.id, bid=bid)
        session.add(row)
    row.text, row.submitted_at, row.submitted_by_id = text, now, actor.user_id
    row.log_index = log.append(session, now=now, actor=actor.log_name, action="evaluation.explained",
                               subject=subject_of(project),
                               data={"lot": lot, "bid": bid}, detail={"text": text}).index
    session.flush()
    return row


def decide_explanation(session: Session, actor: Actor, now: datetime, project_id: int,
                       lot: str | None, bid: str, accepted: bool) -> PriceExplanation:
    """A member records the committee's decision on an explanation: accepted keeps the
    bid; rejected (or none given) rejects it as below cost (E2)."""
    project = projects.get_project(session, actor, project_id, for_update=True)
    require_status(project, now, Status.EVALUATION)
    lot = lot_code(project, lot)
    member = seat_of(session, actor, project, lot)
    report = _scoring_report(session, project, lot)
    row = session.execute(sa.select(PriceExplanation).where(
        PriceExplanation.report_id == report.id, PriceExplanation.bid == bid)).scalar_one_or_none()
    if row is None:
        if bid not in {b["bid"] for b in report.bids}:
            raise NotFound("No such bid in this lot", code="unknown_bid", message_zh="无此投标")
        row = PriceExplanation(report_id=report.id, bid=bid)
        session.add(row)
    if accepted and not row.text:
        raise Conflict("Nothing to accept: the bidder has not explained its price",
                       code="explanation_missing", message_zh="投标人尚未提交书面说明", rule="E2")
    row.accepted, row.decided_by, row.decided_at = accepted, member.expert_id, now
    log_member(session, actor, now, project, "evaluation.explanation_decided",
               {"lot": lot, "expert": member.expert_id, "bid": bid, "accepted": accepted})
    session.flush()
    return row


def _findings(session: Session, report: EvaluationReport) -> list[ComplianceFinding]:
    return list(session.execute(sa.select(ComplianceFinding).where(
        ComplianceFinding.report_id == report.id).order_by(ComplianceFinding.id)).scalars())


def _explanations(session: Session, report: EvaluationReport) -> dict[str, bool]:
    rows = session.execute(sa.select(PriceExplanation).where(
        PriceExplanation.report_id == report.id, PriceExplanation.accepted.is_not(None))).scalars()
    return {r.bid: bool(r.accepted) for r in rows}


# --------------------------------------------------------------------------- the result

def compute_report(session: Session, actor: Actor, now: datetime, project_id: int,
                   lot: str | None) -> EvaluationReport:
    """Compute the lot's result by the published method (the agent or a member asks).

    A vacated member's scores are marked void and left out (D5); the seated members must
    have scored every criterion of every compliant bid; the candidates are at most the
    rulebook's number (E3). A failed result fails the lot; otherwise members sign next.
    """
    project = projects.get_project(session, actor, project_id, for_update=True)
    require_status(project, now, Status.EVALUATION)
    lot = lot_code(project, lot)
    if not projects.manages(actor, project):
        seat_of(session, actor, project, lot)
    report = _scoring_report(session, project, lot)
    rules = rules_of(project)
    seated, vacated = committee(session, project, lot)
    rules_check.check_committee(rules, len(seated), len(seated))
    seated_ids = [m.expert_id for m in seated]
    void_ids = sorted({m.expert_id for m in vacated} - set(seated_ids))
    scores = list(session.execute(sa.select(Score).where(Score.report_id == report.id)).scalars())
    for score in scores:
        if score.expert_id not in seated_ids and not score.void:
            score.void, score.void_reason = True, "D5: the member's seat was vacated"
    terms = tender_terms(project, lot)
    ev_rules = evaluation_rules(project, rules, len(report.bids))
    result = ev.evaluate(
        to_core_bids(report, _findings(session, report)), terms, ev_rules,
        members=seated_ids, replaced=void_ids,
        scores=[ev.Score(s.expert_id, s.bid, s.criterion, s.value) for s in scores if not s.void],
        explanations=_explanations(session, report))
    if result.unresolved_tie:
        raise Conflict("Bids are still equal after every published tie-break",
                       code="unresolved_tie", message_zh="按公布的规则仍无法排定名次",
                       bids=list(result.unresolved_tie))
    report.result = result_json(result, seated_ids)
    report.result_sha256 = hashlib.sha256(canonical_json(report.result)).hexdigest()
    report.computed_at = now
    log.append(session, now=now, actor=actor.log_name, action="evaluation.computed",
               subject=subject_of(project),
               data={"lot": lot, "outcome": str(result.outcome), "candidates": len(result.candidates),
                     "result_sha256": report.result_sha256, "void_scores": sum(s.void for s in scores)},
               detail={"result": report.result})
    if result.outcome is ev.Outcome.FAILED:
        fail_lot(session, actor, now, project, report,
                 [{"code": f.code, "rule": f.rule, "detail": f.detail} for f in result.failure])
        return report
    rules_check.check_candidates(rules, len(result.candidates), len(seated_ids), len(seated_ids))
    for rank, bid_id in enumerate(result.candidates, start=1):
        scored = result.bid(bid_id)
        session.add(Candidate(report_id=report.id, project_id=project.id, lot_code=lot,
                              bidder_code=scored.bidder, rank=scored.rank or rank, price=scored.price,
                              total=scored.total, status=CANDIDATE))
    report.status = SIGNING
    session.flush()
    return report


def result_json(result: ev.EvaluationResult, members: Sequence[str]) -> dict[str, Any]:
    """The result as stored and published (canonical-JSON safe: money and scores as
    strings). Members appear only as a digest (D4)."""
    def rejection(r: ev.Rejection) -> dict[str, str]:
        return {"code": r.code, "rule": r.rule, "detail": r.detail}
    return {
        "method": str(result.method), "outcome": str(result.outcome),
        "candidates": list(result.candidates), "failure": [rejection(f) for f in result.failure],
        "members": len(members), "committee_sha256": committee_hash(members),
        "bids": [{"bid": b.bid_id, "bidder": b.bidder, "price": money(b.price), "status": str(b.status),
                  "rejections": [rejection(r) for r in b.rejections], "flags": list(b.flags),
                  "evaluated_price": money(b.evaluated_price),
                  # a list: criterion ids need not be canonical-JSON keys
                  "criterion_scores": [{"criterion": k, "score": money(v)}
                                       for k, v in sorted(b.criterion_scores.items())],
                  "technical_score": money(b.technical_score), "price_score": money(b.price_score),
                  "total": money(b.total), "rank": b.rank} for b in result.bids],
    }


def sign_report(session: Session, actor: Actor, now: datetime, project_id: int, lot: str | None,
                dissent: str | None) -> ReportSignature:
    """A seated member signs the computed report, or files a written dissent (E3). The
    last signature submits the lot's report; the last lot's submits the project's."""
    project = projects.get_project(session, actor, project_id, for_update=True)
    require_status(project, now, Status.EVALUATION)
    lot = lot_code(project, lot)
    member = seat_of(session, actor, project, lot)
    report = report_of(session, project, lot, lock=True)
    if report.status != SIGNING:
        raise Conflict("There is no computed report to sign", code="report_not_computed",
                       message_zh="评标结果尚未汇总，无可签署的报告", report_status=report.status)
    seated, _ = committee(session, project, lot)
    if committee_hash(m.expert_id for m in seated) != (report.result or {}).get("committee_sha256"):
        raise Conflict("The committee changed since the result was computed: compute it again",
                       code="committee_changed", message_zh="评标委员会成员已变化，请重新汇总")
    if session.execute(sa.select(ReportSignature.id).where(
            ReportSignature.report_id == report.id,
            ReportSignature.expert_id == member.expert_id)).first():
        raise Conflict("You have signed this report", code="already_signed", message_zh="您已签署")
    signature = ReportSignature(report_id=report.id, member_id=member.id, expert_id=member.expert_id,
                                dissent=dissent or None, signed_at=now, log_index=0)
    session.add(signature)
    signature.log_index = log_member(session, actor, now, project, "evaluation.signed", {
        "lot": lot, "expert": member.expert_id, "dissent": bool(dissent),
        "result_sha256": report.result_sha256})
    session.flush()
    signatures = list(session.execute(sa.select(ReportSignature).where(
        ReportSignature.report_id == report.id)).scalars())
    if len(signatures) == len(seated):
        _submit(session, actor, now, project, report, signatures)
    return signature


def _submit(session: Session, actor: Actor, now: datetime, project: Project,
            report: EvaluationReport, signatures: Sequence[ReportSignature]) -> None:
    rules = rules_of(project)
    dissents = sum(1 for s in signatures if s.dissent)
    candidates = len((report.result or {}).get("candidates", []))
    rules_check.check_candidates(rules, candidates, len(signatures), len(signatures) - dissents, dissents)
    report.status, report.submitted_at = SUBMITTED, now
    log.append(session, now=now, actor=actor.log_name, action="evaluation.report_submitted",
               subject=subject_of(project),
               data={"lot": report.lot_code, "result_sha256": report.result_sha256,
                     "signatures": len(signatures), "dissents": dissents})
    session.flush()
    reports = _reports(session, project)
    lots = _evaluated_lots(session, project)
    if len(reports) == len(lots) and all(r.status in (SUBMITTED, FAILED) for r in reports):
        projects.apply_transition(session, actor, now, project, "submit_report",
                                  data={"lots": [r.lot_code for r in reports if r.status == SUBMITTED]})
        # The clock of the next step starts with the report (E4 publicity; GP E6 award).
        track_step(session, project, rules, "publicity_start", now)
        track_step(session, project, rules, "award", now)


# --------------------------------------------------------------------------- views

def can_see_result(session: Session, actor: Actor, project: Project, now: datetime) -> bool:
    """The result is the committee's, the agent's and the supervisor's until it is out:
    at the candidate publicity (construction) or the award (GP)."""
    if projects.manages(actor, project) or actor.has(Role.SUPERVISOR, Role.ADMIN):
        return True
    status = projects.status_of(project, now)
    if status in (Status.PUBLICITY, Status.AWARDED, Status.CONTRACTED, Status.FAILED):
        return True
    if actor.has(Role.EXPERT):
        try:
            seat_of(session, actor, project, _only_or_first(project))
            return True
        except AppError:
            return False
    return False


def _only_or_first(project: Project) -> str:
    return project.lots[0].code


def report_view(session: Session, actor: Actor, now: datetime, project_id: int,
                lot: str | None) -> dict[str, Any]:
    """A lot's evaluation as the actor may see it: its state always; the bids' results
    and candidates once the result is out (or to the agent, supervisors and members);
    a bidder sees whether its own price needs an explanation."""
    project = projects.get_project(session, actor, project_id)
    lot = lot_code(project, lot)
    report = report_of(session, project, lot)
    view: dict[str, Any] = {
        "lot": lot, "method": report.method, "status": report.status,
        "price_source": report.price_source, "started_at": report.started_at,
        "computed_at": report.computed_at, "submitted_at": report.submitted_at,
        "failed_at": report.failed_at, "failure": report.failure, "result_sha256": report.result_sha256,
        "signatures": session.execute(sa.select(sa.func.count()).select_from(ReportSignature).where(
            ReportSignature.report_id == report.id)).scalar_one()}
    if can_see_result(session, actor, project, now):
        view["bids"] = [{"bidder": b["bidder"], "price": b["price"]} for b in report.bids]
        view["result"] = report.result
        view["candidates"] = candidates_out(session, report)
    elif actor.has(Role.BIDDER) and report.status == SCORING:
        review = _review(session, project, report).get(actor.org_code or "")
        if review is not None:
            view["explanation_required"] = "abnormally_low" in review.flags
    return view


def candidates_out(session: Session, report: EvaluationReport) -> list[dict[str, Any]]:
    rows = session.execute(sa.select(Candidate).where(Candidate.report_id == report.id)
                           .order_by(Candidate.rank, Candidate.bidder_code)).scalars()
    return [{"bidder": c.bidder_code, "rank": c.rank, "price": money(c.price), "total": money(c.total),
             "status": c.status, "status_note": c.status_note} for c in rows]


__all__ = [
    "start_evaluation", "submit_scores", "record_finding", "submit_explanation",
    "decide_explanation", "compute_report", "sign_report", "report_view", "report_of",
    "tender_terms", "evaluation_rules", "method_of", "opened_bids", "record_bids",
    "bids_for_evaluation", "committee", "seat_of", "fail_lot", "track_step", "finish_step",
    "judge_time", "rule_error", "log_refusal", "log_member", "lot_code", "require_status",
    "rules_of", "money", "subject_of", "candidates_out", "result_json",
]
