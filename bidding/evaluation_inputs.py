"""What an evaluation works from (RULES E1, E2, E7, D5, F4, F5): the method and terms the
documents published, the rulebook's numbers for them, the bids as the opening read them
(or a GP final round's offers), and the seated committee.

Reads only; the services that change anything are in :mod:`bidding.evaluation_service`.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from bidding.award_models import ComplianceFinding, EvaluationReport, FinalOffer, NegotiationRound
from bidding.award_support import lot_row, money
from bidding.models import LIVE, WITHDRAWN, OpeningSession, Submission
from core.actor import Actor
from core.clock import format_instant, parse_instant
from core.errors import Conflict, Forbidden, ValidationFailed
from crypto.bidform import BID_FORM_NAME
from crypto.canonical import canonical_json
from trading import evaluation as ev
from trading.domain import Domain, Procedure, Role
from trading.models import Project
from trading.rulebook import ProjectRules

# Where a method is not published, the procedure's own (GP法 38 negotiation: lowest price;
# 磋商 and tenders: comprehensive scoring must be published, so no default there).
_PROCEDURE_METHOD = {Procedure.INQUIRY: ev.Method.INQUIRY,
                     Procedure.COMPETITIVE_NEGOTIATION: ev.Method.LOWEST_EVALUATED_PRICE}
_DEFAULT_TIE_BREAK = (ev.TieBreak.LOWER_PRICE, ev.TieBreak.EARLIER_RECEIPT)


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
    row = lot_row(project, lot)
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


__all__ = ["method_of", "tender_terms", "evaluation_rules", "published_opening", "record_bids",
           "opened_bids", "bids_for_evaluation", "to_core_bids", "committee", "seat_of", "committee_hash"]
