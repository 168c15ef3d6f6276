"""GP negotiation, consultation and inquiry as working procedures (RULES F2, F3, F4).

- **Negotiation / consultation** (竞争性谈判 / 竞争性磋商): after the opening read the first
  responses, the group negotiates in rounds with every supplier still in (at least the
  rule's number, F2). A round that changes the requirements gives the suppliers the
  rule's response time again (F3). The final round asks each supplier for one final offer
  (最后报价), secret until the round's deadline and unchangeable once made; the
  evaluation then ranks the final offers (negotiation: lowest price, GP法 38;
  consultation: comprehensive scoring, with the E7 bounds for consultation).
- **Inquiry** (询价, F4): each supplier's one price is its sealed bid; any further price
  is refused, and the award goes to the lowest compliant price (the evaluation's
  ``inquiry`` method).

Services take ``(session, actor, now, ...)`` and log every change in the same transaction.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from audits import log
from bidding.award_models import EvaluationReport, FinalOffer, NegotiationRound, Quote
from bidding.award_support import lot_code, money, require_status, rules_of, subject_of
from bidding.evaluation_inputs import opened_bids
from core.actor import Actor
from core.clock import format_instant
from core.errors import Conflict, Forbidden, ValidationFailed
from trading import projects, rules_check
from trading.domain import Procedure, Role, Status
from trading.models import Project

NEGOTIATED = (Procedure.COMPETITIVE_NEGOTIATION, Procedure.COMPETITIVE_CONSULTATION)


def _rounds(session: Session, project: Project, lot: str) -> list[NegotiationRound]:
    return list(session.execute(sa.select(NegotiationRound).where(
        NegotiationRound.project_id == project.id, NegotiationRound.lot_code == lot)
        .order_by(NegotiationRound.number)).scalars())


def open_round(session: Session, actor: Actor, now: datetime, project_id: int, lot: str | None,
               body: Mapping[str, Any]) -> NegotiationRound:
    """Open the next round of a negotiation or consultation (the agent, for the group).

    ``suppliers`` (optional) narrows those still in to a subset of the last round's; at
    least the rule's number must remain (F2). ``changes_requirements``: the documents
    change, so the response deadline must give the rule's response time (F3). ``final``
    asks for the final offers; nothing follows it.
    """
    project = projects.get_project(session, actor, project_id, for_update=True)
    projects.require_manager(actor, project)
    if Procedure(project.procedure) not in NEGOTIATED:
        raise Conflict("Only a negotiation or consultation has rounds", code="no_rounds_in_procedure",
                       message_zh="仅竞争性谈判、竞争性磋商有多轮报价", procedure=project.procedure)
    require_status(project, now, Status.EVALUATION)
    lot = lot_code(project, lot)
    if session.execute(sa.select(EvaluationReport.id).where(
            EvaluationReport.project_id == project.id, EvaluationReport.lot_code == lot)).first():
        raise Conflict("The evaluation has started: negotiation is over", code="evaluation_already_started",
                       message_zh="已开始评审，谈判已结束")
    rules = rules_of(project)
    rounds = _rounds(session, project, lot)
    if rounds and (rounds[-1].final or now < rounds[-1].response_due_at):
        raise Conflict("The last round is still open or was final", code="round_open",
                       message_zh="上一轮尚未结束或已是最后一轮")
    still_in = rounds[-1].suppliers if rounds else [b["bidder"] for b in opened_bids(session, project, lot)]
    suppliers = sorted(body.get("suppliers") or still_in)
    if set(suppliers) - set(still_in):
        raise ValidationFailed("Only suppliers still in the negotiation may take part", field="suppliers",
                               code="unknown_supplier", unknown=sorted(set(suppliers) - set(still_in)))
    rules_check.check_invitations(rules, len(suppliers))
    due: datetime = body["response_due_at"]
    if due <= now:
        raise ValidationFailed("The response deadline must be in the future", field="response_due_at",
                               code="deadline_in_past")
    if body.get("changes_requirements"):
        rules_check.check_step(rules, "response", now, due)
    row = NegotiationRound(project_id=project.id, lot_code=lot, number=len(rounds) + 1,
                           final=bool(body.get("final")), suppliers=suppliers,
                           changes_requirements=bool(body.get("changes_requirements")),
                           note=body.get("note") or "", opened_at=now, response_due_at=due,
                           opened_by=actor.log_name, log_index=0)
    session.add(row)
    row.log_index = log.append(
        session, now=now, actor=actor.log_name, action="negotiation.round_opened", subject=subject_of(project),
        data={"lot": lot, "round": row.number, "final": row.final, "suppliers": suppliers,
              "changes_requirements": row.changes_requirements,
              "response_due_at": format_instant(due)}, detail={"note": row.note}).index
    project.updated_at = now
    session.flush()
    return row


def submit_offer(session: Session, actor: Actor, now: datetime, project_id: int, lot: str | None,
                 price: Decimal, declared: Mapping[str, Any]) -> FinalOffer:
    """A supplier's final offer in the open final round: one, before the round's deadline,
    never changed (the log hides the price until the deadline). In an inquiry the sealed
    bid was the one price: any further price is refused (F4)."""
    project = projects.get_project(session, actor, project_id, for_update=True)
    if not actor.has(Role.BIDDER) or not actor.org_code:
        raise Forbidden("Only suppliers make offers", code="not_a_supplier", message_zh="仅供应商可报价")
    lot = lot_code(project, lot)
    rules = rules_of(project)
    if Procedure(project.procedure) is Procedure.INQUIRY:
        quoted = session.execute(sa.select(sa.func.count()).select_from(Quote).where(
            Quote.project_id == project.id, Quote.lot_code == lot,
            Quote.bidder_code == actor.org_code)).scalar_one()
        # The sealed bid is the first price whether or not the quote row exists yet.
        rules_check.check_price_quotes(rules, max(quoted, 1) + 1)
    require_status(project, now, Status.EVALUATION)
    final = next((r for r in _rounds(session, project, lot) if r.final), None)
    if final is None or now >= final.response_due_at:
        raise Conflict("No final round is open", code="no_open_final_round", message_zh="没有进行中的最后报价轮次")
    if actor.org_code not in final.suppliers:
        raise Forbidden("You are not in this negotiation", code="not_in_round", message_zh="您不在本轮谈判供应商之列")
    if session.execute(sa.select(FinalOffer.id).where(FinalOffer.round_id == final.id,
                                                       FinalOffer.bidder_code == actor.org_code)).first():
        raise Conflict("The final offer is made and cannot change", code="offer_already_made",
                       message_zh="最后报价已提交，不得更改")
    if price <= 0:
        raise ValidationFailed("The price must be positive", field="price", code="invalid_price")
    offer = FinalOffer(round_id=final.id, project_id=project.id, lot_code=lot, bidder_code=actor.org_code,
                       price=price, declared=dict(declared), submitted_at=now, submitted_by_id=actor.user_id,
                       log_index=0)
    session.add(offer)
    # Hidden until the deadline, like a sealed bid (A6): the supplier reads its own detail.
    offer.log_index = log.append(
        session, now=now, actor=actor.log_name, action="negotiation.final_offer", subject=subject_of(project),
        data={"lot": lot, "round": final.number, "bidder": actor.org_code, "price": money(price)},
        hidden=True, readers={"users": [actor.user_id] if actor.user_id else []}).index
    session.flush()
    return offer


def rounds_view(session: Session, actor: Actor, now: datetime, project_id: int,
                lot: str | None) -> list[dict[str, Any]]:
    """The rounds of a lot; final offers once the final round's deadline has passed (a
    supplier sees its own before)."""
    project = projects.get_project(session, actor, project_id)
    lot = lot_code(project, lot)
    out = []
    for row in _rounds(session, project, lot):
        item: dict[str, Any] = {"round": row.number, "final": row.final, "suppliers": row.suppliers,
                                "changes_requirements": row.changes_requirements, "note": row.note,
                                "opened_at": row.opened_at, "response_due_at": row.response_due_at}
        if row.final:
            offers = _offers(session, row)
            if now < row.response_due_at:
                offers = [o for o in offers if o.bidder_code == actor.org_code]
            item["offers"] = [{"bidder": o.bidder_code, "price": money(o.price), "submitted_at": o.submitted_at}
                              for o in offers]
        out.append(item)
    return out


def _offers(session: Session, row: NegotiationRound) -> Sequence[FinalOffer]:
    return list(session.execute(sa.select(FinalOffer).where(FinalOffer.round_id == row.id)
                                .order_by(FinalOffer.bidder_code)).scalars())


__all__ = ["open_round", "submit_offer", "rounds_view"]
