"""Publicity, award, contract and refunds (公示、定标、签约、退还保证金; RULES E4, E5, E6, B8, D4).

After the report is in, each step here is a tracked step with its legal limit
(:class:`~bidding.award_models.TrackedStep`), which supervision reads for its cards:

- **Publicity** (construction, E4): starts within the rule's days of the report and lasts
  at least its days (a shortened publicity is refused). Objections to the candidates are
  supervision's complaints (kind ``candidate_objection``): they suspend the project until
  answered, and no award is made while one is open.
- **Award** (E5): to the best candidate still standing; a candidate falls away only by a
  listed fallback (declined, failed to perform, found in breach). A non-candidate is
  refused. The award notice and every result notice carry one instant (E6); two award
  decisions at once leave exactly one standing (row lock, version column, unique index).
  GP publishes the committee with the award (D4).
- **Contract** (E6): amount equal to the awarded price, terms matching the bid's declared
  items; within the rule's days of the award (late is recorded, not refused: the contract
  must still be made). The report to the supervisor likewise (construction).
- **Refunds** (B8): every paid security of the lot is owed back, due from the award notice
  or the contract as the rule says; a late refund is recorded as late.

Services take ``(session, actor, now, ...)`` and log every change in the same transaction.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from audits import log
from bidding.award_models import (AWARD, CANDIDATE, FALLBACK_REASONS, RESULT, SUBMITTED,
                                  AwardNotice, Candidate, Contract, EvaluationReport, Publicity,
                                  SecurityRefund, SupervisorReport, TrackedStep)
from bidding.award_support import (finish_step, judge_time, lot_code, money, rule_error, rules_of,
                                   subject_of, track_step)
from bidding.evaluation_inputs import record_bids
from bidding.evaluation_service import candidates_out, report_of
from bidding.models import BidSecurity
from core.actor import Actor
from core.clock import format_instant
from core.errors import Conflict, Forbidden, NotFound
from trading import lifecycle, projects, rules_check
from trading.domain import Domain, Role, Status
from trading.models import Notice, Organisation, Project


# --------------------------------------------------------------------------- publicity (E4)

def _submitted_reports(session: Session, project: Project) -> list[EvaluationReport]:
    return list(session.execute(sa.select(EvaluationReport).where(
        EvaluationReport.project_id == project.id, EvaluationReport.status == SUBMITTED)
        .order_by(EvaluationReport.lot_code)).scalars())


def _report_at(project: Project) -> datetime:
    report_at = projects.milestones_of(project).report_at
    if report_at is None:
        raise Conflict("The evaluation report is not in", code="report_missing",
                       message_zh="评标报告尚未提交")
    return report_at


def start_publicity(session: Session, actor: Actor, now: datetime, project_id: int,
                    ends_at: datetime) -> Publicity:
    """Publicise the candidates of every lot until ``ends_at`` (E4): refused when the
    period is shorter than the rule; a start later than the rule allows is recorded late."""
    project = projects.get_project(session, actor, project_id, for_update=True)
    projects.require_manager(actor, project)
    rules = rules_of(project)
    report_at = _report_at(project)
    rules_check.check_step(rules, "publicity", now, ends_at)
    late_start = judge_time(rules_check.check_step, rules, "publicity_start", report_at, now)
    schedule = replace(projects.schedule_of(project), publicity_start=now, publicity_end=ends_at)
    projects.apply_transition(session, actor, now, project, "start_publicity", new_schedule=schedule,
                              data={"publicity_end": format_instant(ends_at),
                                    "late_start": late_start is not None})
    reports = _submitted_reports(session, project)
    candidates = {r.lot_code: candidates_out(session, r) for r in reports}
    publicity = Publicity(project_id=project.id, report_at=report_at, started_at=now, scheduled_end=ends_at,
                          late_start=late_start is not None, started_by=actor.log_name, log_index=0)
    session.add(publicity)
    publicity.log_index = log.append(
        session, now=now, actor=actor.log_name, action="publicity.started", subject=subject_of(project),
        data={"ends_at": format_instant(ends_at), "late_start": late_start is not None,
              "lots": [{"lot": lot, "candidates": [{k: c[k] for k in ("bidder", "rank", "price", "total")}
                                                   for c in rows]} for lot, rows in candidates.items()],
              "results": [{"lot": r.lot_code, "result_sha256": r.result_sha256} for r in reports]}).index
    finish_step(session, project, "publicity_start", now, late_start is not None)
    track_step(session, project, rules, "publicity", now)
    session.add(Notice(project_id=project.id, kind="candidates", title=f"中标候选人公示：{project.title}",
                       body=_candidates_text(candidates, ends_at), published_at=now))
    session.flush()
    return publicity


def _candidates_text(candidates: Mapping[str, list[dict[str, Any]]], ends_at: datetime) -> str:
    lines = [f"标段 {lot}: " + "; ".join(f"第{c['rank']}名 {c['bidder']} {c['price']}" for c in rows)
             for lot, rows in candidates.items()]
    return "\n".join(lines + [f"公示截止 {format_instant(ends_at)}"])


def _open_objections(session: Session, project: Project) -> list[Any]:
    """Unanswered objections to the candidates (E4). They are supervision's complaints of
    kind ``candidate_objection``, which pause the project while open; checked here too so
    an award never slips past one whose pause did not take (e.g. already suspended)."""
    try:
        from audits.supervision_models import OPEN_STATUSES, Complaint
    except ModuleNotFoundError:  # no supervision module: no objections to wait for
        return []
    return list(session.execute(sa.select(Complaint).where(
        Complaint.project_id == project.id, Complaint.kind == "candidate_objection",
        Complaint.status.in_(OPEN_STATUSES))).scalars())


# --------------------------------------------------------------------------- fallback (E5)

def _candidates(session: Session, project: Project, lot: str) -> list[Candidate]:
    return list(session.execute(sa.select(Candidate).where(
        Candidate.project_id == project.id, Candidate.lot_code == lot)
        .order_by(Candidate.rank, Candidate.bidder_code)).scalars())


def _award_notice(session: Session, project: Project, lot: str) -> AwardNotice | None:
    return session.execute(sa.select(AwardNotice).where(
        AwardNotice.project_id == project.id, AwardNotice.lot_code == lot,
        AwardNotice.kind == AWARD)).scalar_one_or_none()


def apply_fallback(session: Session, actor: Actor, now: datetime, project_id: int, lot: str | None,
                   bidder: str, reason: str, note: str) -> Candidate:
    """A listed fallback (E5): the candidate declines, fails to perform or is found in
    breach, so the award may pass to the next. Only before the lot is awarded."""
    project = projects.get_project(session, actor, project_id, for_update=True)
    projects.require_manager(actor, project)
    lot = lot_code(project, lot)
    rules = rules_of(project)
    if reason not in FALLBACK_REASONS:
        raise rule_error(rules, "E5", "fallback_not_listed", f"A fallback is one of {list(FALLBACK_REASONS)}",
                         f"顺延事由须为：{'、'.join(FALLBACK_REASONS)}", reason=reason)
    if _award_notice(session, project, lot) is not None:
        raise Conflict("The lot is awarded", code="already_awarded", message_zh="该标段已定标")
    candidate = next((c for c in _candidates(session, project, lot) if c.bidder_code == bidder), None)
    if candidate is None or candidate.status != CANDIDATE:
        raise NotFound("No such standing candidate", code="candidate_not_found", message_zh="无此候选人")
    candidate.status, candidate.status_note, candidate.status_at = reason, note, now
    project.updated_at = now
    log.append(session, now=now, actor=actor.log_name, action="award.fallback", subject=subject_of(project),
               data={"lot": lot, "bidder": bidder, "rank": candidate.rank, "reason": reason, "rule": "E5"},
               detail={"note": note})
    session.flush()
    return candidate


# --------------------------------------------------------------------------- award (E5, E6)

def award(session: Session, actor: Actor, now: datetime, project_id: int, lot: str | None,
          bidder: str) -> list[AwardNotice]:
    """Award ``lot`` to ``bidder``: the best candidate still standing (E5), with the award
    notice and every result notice at this one instant (E6). The last lot awarded moves
    the project to ``awarded``; GP publishes the committee with it (D4)."""
    project = projects.get_project(session, actor, project_id, for_update=True)
    projects.require_manager(actor, project)
    lot = lot_code(project, lot)
    rules = rules_of(project)
    report = report_of(session, project, lot)
    if report.status != SUBMITTED:
        raise Conflict("The lot's report is not submitted", code="report_not_submitted",
                       message_zh="该标段评标报告尚未提交", report_status=report.status)
    if _award_notice(session, project, lot) is not None:
        raise Conflict("The lot is awarded", code="already_awarded", message_zh="该标段已定标")
    if _open_objections(session, project):
        raise rule_error(rules, "E4", "objection_pending", "An objection to the candidates is unanswered",
                         "对中标候选人的异议尚未答复，暂停定标", status=409,
                         objections=[c.id for c in _open_objections(session, project)])
    _check_award_allowed(project, now)
    winner = _winner(rules, _candidates(session, project, lot), bidder)
    late = judge_time(rules_check.check_award_time, rules, _report_at(project), now)
    notices = _issue_notices(session, actor, now, project, lot, winner, late is not None)
    finish_step(session, project, "award", now, late is not None)
    finish_step(session, project, "publicity", now, False)
    track_step(session, project, rules, "contract", now, lot=lot)
    _owe_refunds(session, project, rules, lot, winner.bidder_code, "award_notice", now)
    awarded = {n.lot_code for n in session.execute(sa.select(AwardNotice).where(
        AwardNotice.project_id == project.id, AwardNotice.kind == AWARD)).scalars()}
    if awarded >= {r.lot_code for r in _submitted_reports(session, project)}:
        winners = sorted({n.winner_code for n in session.execute(sa.select(AwardNotice).where(
            AwardNotice.project_id == project.id, AwardNotice.kind == AWARD)).scalars()})
        projects.apply_transition(session, actor, now, project, "award",
                                  data={"lots": sorted(awarded), "winners": winners})
        track_step(session, project, rules, "report", now)
        if Domain(project.domain) is Domain.GOVERNMENT_PROCUREMENT:
            _publish_committee(session, actor, project, now)
    project.updated_at = now
    try:
        session.flush()
    except (IntegrityError, StaleDataError):
        raise Conflict("Another award decision was made first", code="already_awarded",
                       message_zh="已有其他定标决定") from None
    return notices


def _check_award_allowed(project: Project, now: datetime) -> None:
    """The lifecycle's award guard, asked without recording (publicity over, report in):
    a lot awarded before the last one must pass the same test."""
    # A refusal is the lifecycle's own 409 with its stable code (publicity_not_over, ...).
    lifecycle.transition(project.procedure, projects.schedule_of(project), projects.milestones_of(project),
                         lifecycle.Action.AWARD, now, domain=project.domain)


def _winner(rules: Any, candidates: list[Candidate], bidder: str) -> Candidate:
    """E5: the award goes to a candidate, and to the best one still standing."""
    chosen = next((c for c in candidates if c.bidder_code == bidder), None)
    if chosen is None:
        raise rule_error(rules, "E5", "award_to_non_candidate", f"{bidder} is not a ranked candidate",
                         f"{bidder}不是中标候选人，不得确定为中标人", bidder=bidder)
    standing = [c for c in candidates if c.status == CANDIDATE]
    if chosen.status != CANDIDATE or chosen is not standing[0]:
        raise rule_error(rules, "E5", "not_first_candidate",
                         "The award goes to the best candidate still standing unless a listed fallback applies",
                         "应确定排名第一的中标候选人为中标人（除非存在法定顺延情形）",
                         bidder=bidder, expected=standing[0].bidder_code if standing else None)
    return chosen


def _issue_notices(session: Session, actor: Actor, now: datetime, project: Project, lot: str,
                   winner: Candidate, late: bool) -> list[AwardNotice]:
    """One award notice and a result notice to every other bidder of the lot, all at
    ``now`` in one transaction (E6)."""
    fallback = winner.rank > 1 or any(
        c.status != CANDIDATE for c in _candidates(session, project, lot) if c.rank < winner.rank)
    bidders = sorted({b["bidder"] for b in record_bids(session, project, lot)} | {winner.bidder_code})
    notices = [AwardNotice(project_id=project.id, lot_code=lot, kind=AWARD if code == winner.bidder_code else RESULT,
                           bidder_code=code, winner_code=winner.bidder_code, price=winner.price, issued_at=now,
                           issued_by=actor.log_name, fallback=fallback, log_index=0) for code in bidders]
    session.add_all(notices)
    index = log.append(session, now=now, actor=actor.log_name, action="award.issued", subject=subject_of(project),
                       data={"lot": lot, "winner": winner.bidder_code, "rank": winner.rank,
                             "price": money(winner.price), "fallback": fallback, "late": late,
                             "issued_at": format_instant(now), "result_notices": len(notices) - 1}).index
    for notice in notices:
        notice.log_index = index
    session.add(Notice(project_id=project.id, kind="award", title=f"中标结果公告：{project.title}",
                       body=f"标段 {lot}: 中标人 {winner.bidder_code}，中标价 {money(winner.price)}",
                       published_at=now))
    return notices


def _publish_committee(session: Session, actor: Actor, project: Project, now: datetime) -> None:
    """D4 (GP条例 43): GP names the committee with the award, through the draw module."""
    try:
        from trading import expert_draw
    except ModuleNotFoundError:  # committees seated without the draw module: nothing to publish
        return
    publish = getattr(expert_draw, "publish_committee", None)
    if publish is not None:
        publish(session, project, now, actor=actor)


# --------------------------------------------------------------------------- refunds (B8)

def _owe_refunds(session: Session, project: Project, rules: Any, lot: str, winner: str,
                 event: str, now: datetime) -> None:
    """Record the refunds whose period starts at ``event`` (``award_notice`` or
    ``contract_signed``, as the rule's period says) with their due instant."""
    for step, is_winner in (("loser_refund", False), ("winner_refund", True)):
        if not rules.has_step(step) or rules.period(step)[1].from_event != event:
            continue
        for security in _securities(session, project, lot):
            code = _org_code(session, security.bidder_org_id)
            if (code == winner) != is_winner or _refund_of(session, security) is not None:
                continue
            limit = rules.limits_for(step, now)
            session.add(SecurityRefund(security_id=security.id, project_id=project.id, lot_code=lot,
                                       bidder_code=code, winner=is_winner, amount=security.amount, start_at=now,
                                       due_at=limit.at, with_interest=rules.rule("B8").flag("with_interest")))
            track_step(session, project, rules, step, now, lot=lot, subject=f"security:{security.id}")


def _securities(session: Session, project: Project, lot: str) -> list[BidSecurity]:
    # A bid revoked at the opening by its bidder's fault may keep its security (C4):
    # that is the opening's decision, so only securities still "paid" are owed here.
    revoked = {b["bidder"] for b in record_bids(session, project, lot) if b.get("status") == "revoked"}
    rows = session.execute(sa.select(BidSecurity).where(
        BidSecurity.project_id == project.id, BidSecurity.lot_code == lot,
        BidSecurity.status == "paid").order_by(BidSecurity.id)).scalars()
    return [r for r in rows if _org_code(session, r.bidder_org_id) not in revoked]


def _org_code(session: Session, org_id: int) -> str:
    org = session.get(Organisation, org_id)
    return org.code if org else ""


def _refund_of(session: Session, security: BidSecurity) -> SecurityRefund | None:
    return session.execute(sa.select(SecurityRefund).where(
        SecurityRefund.security_id == security.id)).scalar_one_or_none()


def refund_security(session: Session, actor: Actor, now: datetime, project_id: int, refund_id: int,
                    interest: Decimal | None) -> SecurityRefund:
    """Record that a security was paid back (B8); after its due instant it is late."""
    project = projects.get_project(session, actor, project_id, for_update=True)
    projects.require_manager(actor, project)
    refund = session.get(SecurityRefund, refund_id)
    if refund is None or refund.project_id != project.id:
        raise NotFound("No such refund", code="refund_not_found", message_zh="无此退还事项")
    if refund.refunded_at is not None:
        raise Conflict("Already refunded", code="already_refunded", message_zh="已退还")
    rules = rules_of(project)
    if refund.with_interest and interest is None:
        raise rule_error(rules, "B8", "interest_required", "This refund carries interest: state it",
                         "应同时退还银行同期存款利息", refund=refund.id)
    late = judge_time(rules_check.check_security_refund, rules, winner=refund.winner,
                      start=refund.start_at, refunded_at=now)
    refund.refunded_at, refund.refunded_by, refund.interest = now, actor.log_name, interest
    refund.late = late is not None
    security = session.get(BidSecurity, refund.security_id)
    security.status, security.settled_at = "refunded", now
    project.updated_at = now
    refund.log_index = log.append(
        session, now=now, actor=actor.log_name, action="security.refunded", subject=subject_of(project),
        data={"lot": refund.lot_code, "bidder": refund.bidder_code, "amount": money(refund.amount),
              "interest": money(interest), "winner": refund.winner, "due_at": format_instant(refund.due_at),
              "late": late is not None, "rule": "B8"}).index
    finish_step(session, project, "winner_refund" if refund.winner else "loser_refund", now, late is not None,
                lot=refund.lot_code, subject=f"security:{refund.security_id}")
    session.flush()
    return refund


# --------------------------------------------------------------------------- contract (E6)

def record_contract(session: Session, actor: Actor, now: datetime, project_id: int, lot: str | None,
                    amount: Decimal, terms: Mapping[str, Any]) -> Contract:
    """Record the signed contract of a lot (E6): its amount is the awarded price and its
    terms carry every item the bid declared, unchanged. A contract later than the rule
    allows is recorded as late. The last lot's contract moves the project to
    ``contracted``; refunds due from the contract start now (B8)."""
    project = projects.get_project(session, actor, project_id, for_update=True)
    if not projects.is_party_owner(actor, project):
        raise Forbidden("Only the tenderee or its agent records the contract", code="not_party_owner",
                        message_zh="仅招标人或其代理机构可登记合同")
    lot = lot_code(project, lot)
    rules = rules_of(project)
    notice = _award_notice(session, project, lot)
    if notice is None:
        raise Conflict("The lot is not awarded", code="not_awarded", message_zh="该标段尚未定标")
    if session.execute(sa.select(Contract.id).where(Contract.project_id == project.id,
                                                     Contract.lot_code == lot)).first():
        raise Conflict("The contract is recorded", code="already_contracted", message_zh="合同已登记")
    _check_terms(session, rules, project, lot, notice, amount, terms)
    late = judge_time(rules_check.check_contract_time, rules, notice.issued_at, now)
    step = track_step(session, project, rules, "contract", notice.issued_at, lot=lot)
    contract = Contract(project_id=project.id, lot_code=lot, bidder_code=notice.winner_code, amount=amount,
                        terms=dict(terms), awarded_at=notice.issued_at,
                        due_at=step.due_at if step is not None else notice.issued_at, signed_at=now,
                        late=late is not None, recorded_by=actor.log_name, log_index=0)
    session.add(contract)
    contract.log_index = log.append(
        session, now=now, actor=actor.log_name, action="contract.signed", subject=subject_of(project),
        data={"lot": lot, "bidder": notice.winner_code, "amount": money(amount), "late": late is not None,
              "due_at": format_instant(contract.due_at)},
        # a list, not an object: the parties' term names need not be canonical-JSON keys
        detail={"terms": [{"name": k, "value": v} for k, v in sorted(terms.items())]}).index
    finish_step(session, project, "contract", now, late is not None, lot=lot)
    _owe_refunds(session, project, rules, lot, notice.winner_code, "contract_signed", now)
    session.flush()
    contracted = {c.lot_code for c in session.execute(sa.select(Contract).where(
        Contract.project_id == project.id)).scalars()}
    if contracted >= {r.lot_code for r in _submitted_reports(session, project)}:
        projects.apply_transition(session, actor, now, project, "sign_contract", data={"lots": sorted(contracted)})
    project.updated_at = now
    return contract


def _check_terms(session: Session, rules: Any, project: Project, lot: str, notice: AwardNotice,
                 amount: Decimal, terms: Mapping[str, Any]) -> None:
    """E6 (法 46): no agreement departing from the award: amount, and the bid's items."""
    if amount != notice.price:
        raise rule_error(rules, "E6", "contract_amount_mismatch",
                         f"The contract amount {money(amount)} differs from the awarded price {money(notice.price)}",
                         f"合同金额{money(amount)}与中标价{money(notice.price)}不一致",
                         amount=money(amount), awarded=money(notice.price))
    report = report_of(session, project, lot)
    declared = next((b.get("declared") or {} for b in report.bids if b["bidder"] == notice.winner_code), {})
    differing = sorted(k for k, v in declared.items() if k in terms and str(terms[k]) != str(v))
    missing = sorted(k for k in declared if k not in terms)
    if differing or missing:
        raise rule_error(rules, "E6", "contract_terms_mismatch",
                         "The contract's terms must be the bid's", "合同实质性内容须与投标文件一致",
                         differing=differing, missing=missing)


def file_supervisor_report(session: Session, actor: Actor, now: datetime, project_id: int,
                           text: str) -> SupervisorReport:
    """The written report to the supervising body after the award (E6, 法 47)."""
    project = projects.get_project(session, actor, project_id, for_update=True)
    projects.require_manager(actor, project)
    milestones = projects.milestones_of(project)
    if milestones.awarded_at is None:
        raise Conflict("The project is not awarded", code="not_awarded", message_zh="尚未定标")
    if session.execute(sa.select(SupervisorReport.id).where(SupervisorReport.project_id == project.id)).first():
        raise Conflict("The report is filed", code="already_filed", message_zh="书面报告已提交")
    rules = rules_of(project)
    step = track_step(session, project, rules, "report", milestones.awarded_at)
    late = judge_time(rules_check.check_report_time, rules, milestones.awarded_at, now)
    row = SupervisorReport(project_id=project.id, text=text, due_at=step.due_at if step else None, filed_at=now,
                           late=late is not None, filed_by=actor.log_name, log_index=0)
    session.add(row)
    row.log_index = log.append(session, now=now, actor=actor.log_name, action="award.supervisor_report",
                               subject=subject_of(project), data={"late": late is not None},
                               detail={"text": text}).index
    finish_step(session, project, "report", now, late is not None)
    project.updated_at = now
    session.flush()
    return row


# --------------------------------------------------------------------------- views

def award_view(session: Session, actor: Actor, now: datetime, project_id: int) -> dict[str, Any]:
    """What happened after the evaluation: publicity, objections, notices, contracts and
    refunds. Public once the result is out; before, the agent and supervisors only."""
    project = projects.get_project(session, actor, project_id)
    status = projects.status_of(project, now)
    privileged = projects.is_party_owner(actor, project) or actor.has(Role.SUPERVISOR, Role.ADMIN)
    if not privileged and status not in (Status.PUBLICITY, Status.AWARDED, Status.CONTRACTED):
        raise Forbidden("Nothing is public before the candidates or the result",
                        code="result_not_out", message_zh="结果尚未公布")
    publicity = session.execute(sa.select(Publicity).where(Publicity.project_id == project.id)).scalar_one_or_none()

    def rows(model: Any) -> list[Any]:
        return list(session.execute(sa.select(model).where(model.project_id == project.id)
                                    .order_by(model.id)).scalars())
    return {
        "status": str(status),
        "publicity": None if publicity is None else {
            "started_at": publicity.started_at, "scheduled_end": publicity.scheduled_end,
            # moved by a pause for an objection (supervision resumes with a new schedule)
            "ends_at": project.publicity_end, "late_start": publicity.late_start},
        "candidates": {r.lot_code: candidates_out(session, r) for r in _submitted_reports(session, project)},
        "open_objections": [c.id for c in _open_objections(session, project)],
        "notices": [{"lot": n.lot_code, "kind": n.kind, "bidder": n.bidder_code, "winner": n.winner_code,
                     "price": money(n.price), "issued_at": n.issued_at, "fallback": n.fallback}
                    for n in rows(AwardNotice)],
        "contracts": [{"lot": c.lot_code, "bidder": c.bidder_code, "amount": money(c.amount), "terms": c.terms,
                       "signed_at": c.signed_at, "due_at": c.due_at, "late": c.late} for c in rows(Contract)],
        "refunds": [refund_out(r) for r in rows(SecurityRefund)],
    }


def refund_out(r: SecurityRefund) -> dict[str, Any]:
    return {"id": r.id, "lot": r.lot_code, "bidder": r.bidder_code, "winner": r.winner, "amount": money(r.amount),
            "start_at": r.start_at, "due_at": r.due_at, "refunded_at": r.refunded_at,
            "with_interest": r.with_interest, "interest": money(r.interest), "late": r.late}


def steps_view(session: Session, actor: Actor, now: datetime, project_id: int) -> list[dict[str, Any]]:
    """Every tracked step with its limit and state (``due``, ``done``, ``late``, ``overdue``),
    for the supervision cards. Limits are public; subjects name no committee member."""
    project = projects.get_project(session, actor, project_id)
    rows = session.execute(sa.select(TrackedStep).where(TrackedStep.project_id == project.id)
                           .order_by(TrackedStep.due_at, TrackedStep.id)).scalars()
    return [{"step": s.step, "lot": s.lot_code or None, "subject": s.subject or None, "rule": s.rule,
             "citation": s.citation, "sense": s.sense, "started_at": s.started_at, "due_at": s.due_at,
             "provisional": s.provisional, "done_at": s.done_at, "late": s.late,
             "state": _state(s, now)} for s in rows]


def _state(step: TrackedStep, now: datetime) -> str:
    if step.done_at is not None:
        return "late" if step.late else "done"
    if step.sense == "lasts":
        return "running" if now < step.due_at else "may_end"
    return "overdue" if now >= step.due_at else "due"


__all__ = ["start_publicity", "apply_fallback", "award",
           "refund_security", "record_contract", "file_supervisor_report", "award_view", "steps_view",
           "refund_out"]
