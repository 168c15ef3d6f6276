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
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from audits import log
from bidding.award_models import (CANDIDATE, FAILED, SCORING, SIGNING, SUBMITTED, Candidate,
                                  ComplianceFinding, EvaluationReport, PriceExplanation, Quote,
                                  ReportSignature, Score)
from bidding.award_support import (log_member, lot_code, money, require_status, rules_of,
                                   subject_of, track_step)
from bidding.evaluation_inputs import (bids_for_evaluation, committee, committee_hash,
                                       evaluation_rules, published_opening, seat_of, tender_terms,
                                       to_core_bids)
from core.actor import Actor
from core.clock import parse_instant
from core.errors import AppError, Conflict, Forbidden, NotFound
from crypto.canonical import canonical_json
from trading import evaluation as ev
from trading import projects, rules_check
from trading.domain import Role, Status
from trading.models import Project
from trading.rulebook import ProjectRules, RuleViolation


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

def _scoring_report(session: Session, actor: Actor, now: datetime, project: Project,
                    lot: str) -> EvaluationReport:
    """The report, open for the committee's work. Work after the result was computed
    sends the report back to scoring: the signatures were for another result."""
    report = report_of(session, project, lot, lock=True)
    if report.status not in (SCORING, SIGNING):
        raise Conflict(f"The report is {report.status}", code="report_closed",
                       message_zh="评标报告已提交或评标已终止", report_status=report.status)
    if report.status == SIGNING:
        _reopen(session, actor, now, project, report)
    return report


def _reopen(session: Session, actor: Actor, now: datetime, project: Project, report: EvaluationReport) -> None:
    signed = session.execute(sa.select(sa.func.count()).select_from(ReportSignature).where(
        ReportSignature.report_id == report.id)).scalar_one()
    session.execute(sa.delete(ReportSignature).where(ReportSignature.report_id == report.id))
    session.execute(sa.delete(Candidate).where(Candidate.report_id == report.id))
    log.append(session, now=now, actor=actor.log_name, action="evaluation.reopened", subject=subject_of(project),
               data={"lot": report.lot_code, "result_sha256": report.result_sha256, "signatures_dropped": signed},
               hidden=actor.has(Role.EXPERT),
               readers={"users": [actor.user_id]} if actor.has(Role.EXPERT) and actor.user_id else None)
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
    report = _scoring_report(session, actor, now, project, lot)
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
    report = _scoring_report(session, actor, now, project, lot)
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
    report = _scoring_report(session, actor, now, project, lot)
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
    report = _scoring_report(session, actor, now, project, lot)
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
    report = _scoring_report(session, actor, now, project, lot)
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
    "fail_lot", "candidates_out", "result_json",
]
