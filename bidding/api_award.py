"""HTTP endpoints of evaluation and award, under /api/v1/tenders/{tender}/ (RULES E1–E7,
B8, D4, D5, F2–F5). Objections to the candidates are filed with supervision
(``POST /api/v1/projects/{id}/complaints``, kind ``candidate_objection``).

Thin views: parse, call one service, commit, dump. A refusal is rolled back, then logged
in its own transaction (hidden when a committee member made it: names are secret until
the result, D4), then answered with the platform's error shape. Two decisions racing on
the same project (the version column, the unique award notice) end with one winner and a
``409`` for the other.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from flask_smorest import Api, Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from bidding import award as award_service
from bidding import evaluation_service as evaluation
from bidding.award_support import log_refusal
from bidding import negotiation
from bidding.award_models import FALLBACK_REASONS
from core.actor import Actor
from core.db import db
from core.errors import AppError, Conflict
from core.schemas import Identifier, InstantField, MoneyField
from core.web import request_now
from trading.domain import Role
from trading.web import current_actor

blp = Blueprint("award", __name__, url_prefix="/api/v1/tenders",
                description="Evaluation (评标), candidate publicity, award, contract and refunds")
BEARER = [{"bearer": []}]


# --------------------------------------------------------------------------- schemas


class EvalLotIn(Schema):
    lot = Identifier(load_default=None)


class EvalLotArgs(Schema):
    lot = Identifier(load_default=None)


class EvalScoreItem(Schema):
    bid = Identifier(required=True)
    criterion = fields.String(required=True, validate=validate.Length(min=1, max=64))
    # A decimal string with at most two places, like money: floats are refused.
    value = MoneyField(required=True)


class EvalScoresIn(EvalLotIn):
    scores = fields.List(fields.Nested(EvalScoreItem), required=True, validate=validate.Length(min=1, max=2000))


class EvalFindingIn(EvalLotIn):
    bid = Identifier(required=True)
    code = fields.String(required=True, validate=validate.Regexp(r"^[a-z][a-z0-9_]{0,63}$"))
    rule = fields.String(load_default=None, validate=validate.Regexp(r"^[A-I][0-9]{1,2}$"))
    detail = fields.String(load_default="", validate=validate.Length(max=4000))


class AwardTextIn(EvalLotIn):
    text = fields.String(required=True, validate=validate.Length(min=1, max=20000))


class EvalDecisionIn(EvalLotIn):
    bid = Identifier(required=True)
    accepted = fields.Boolean(required=True)


class EvalSignIn(EvalLotIn):
    dissent = fields.String(load_default=None, validate=validate.Length(min=1, max=20000))


class PublicityIn(Schema):
    ends_at = InstantField(required=True)


class FallbackIn(EvalLotIn):
    reason = fields.String(required=True, validate=validate.OneOf(FALLBACK_REASONS))
    note = fields.String(required=True, validate=validate.Length(min=1, max=4000))


class AwardIn(EvalLotIn):
    bidder = Identifier(required=True)


class ContractIn(EvalLotIn):
    amount = MoneyField(required=True)
    terms = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=100)),
                        values=fields.String(validate=validate.Length(max=4000)), load_default=dict)


class RefundIn(Schema):
    interest = MoneyField(load_default=None)


class NegotiationRoundIn(EvalLotIn):
    response_due_at = InstantField(required=True)
    final = fields.Boolean(load_default=False)
    changes_requirements = fields.Boolean(load_default=False)
    suppliers = fields.List(Identifier(), load_default=None)
    note = fields.String(load_default="", validate=validate.Length(max=20000))


class FinalOfferIn(EvalLotIn):
    price = MoneyField(required=True)
    declared = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=100)),
                           values=fields.String(validate=validate.Length(max=4000)), load_default=dict)


class EvalScoreOut(Schema):
    bid = fields.String()
    criterion = fields.String()
    value = MoneyField()
    scored_at = fields.DateTime()


class EvalSignatureOut(Schema):
    signed_at = fields.DateTime()
    dissent = fields.String(allow_none=True)


class AwardNoticeOut(Schema):
    lot = fields.String(attribute="lot_code")
    kind = fields.String()
    bidder = fields.String(attribute="bidder_code")
    winner = fields.String(attribute="winner_code")
    price = MoneyField()
    issued_at = fields.DateTime()
    fallback = fields.Boolean()


class ContractOut(Schema):
    lot = fields.String(attribute="lot_code")
    bidder = fields.String(attribute="bidder_code")
    amount = MoneyField()
    terms = fields.Dict()
    signed_at = fields.DateTime()
    due_at = fields.DateTime()
    late = fields.Boolean()


class AwardCandidateOut(Schema):
    lot = fields.String(attribute="lot_code")
    bidder = fields.String(attribute="bidder_code")
    rank = fields.Integer()
    status = fields.String()
    status_note = fields.String(allow_none=True)


class FinalOfferOut(Schema):
    lot = fields.String(attribute="lot_code")
    bidder = fields.String(attribute="bidder_code")
    price = MoneyField()
    submitted_at = fields.DateTime()


class AwardDataOut(Schema):
    data = fields.Raw()


def _envelope(schema: type[Schema], many: bool = False) -> type[Schema]:
    return type(f"{schema.__name__.removesuffix('Out')}{'List' if many else ''}AwardEnvelope", (Schema,),
                {"data": fields.Nested(schema, many=many, required=True)})


# --------------------------------------------------------------------------- plumbing


def _run(tender: int, attempt: str, work: Callable[[Actor, datetime], Any]) -> Any:
    """Call one service and commit; a refusal is rolled back and logged, then raised."""
    actor, now = current_actor(), request_now()
    try:
        result = work(actor, now)
        db.session.commit()
        return result
    except (IntegrityError, StaleDataError):
        error: AppError = Conflict("Another decision on this project was made first",
                                   code="already_awarded" if attempt == "award" else "concurrent_change",
                                   message_zh="已有其他决定先行完成")
    except AppError as exc:
        error = exc
    db.session.rollback()
    log_refusal(db.session, actor, now, tender, attempt, error, hidden=actor.has(Role.EXPERT))
    db.session.commit()
    raise error


def _post(path: str, name: str, schema: type[Schema] | None, out: type[Schema],
          service: Callable[..., Any], status: int = 200, summary: str = "") -> None:
    """Register ``POST /{tender}/{path}``: parse ``schema``, run ``service(actor, now,
    tender, body, **path_args)`` through :func:`_run`, dump with ``out``."""
    def view(*args: Any, tender: int, **kwargs: Any) -> Any:
        body = args[0] if args else {}
        return {"data": _run(tender, name, lambda actor, now: service(actor, now, tender, body, **kwargs))}
    view.__name__ = name
    view.__doc__ = summary
    decorated: Any = blp.response(status, out)(view)
    if schema is not None:
        decorated = blp.arguments(schema)(decorated)
    decorated = blp.doc(security=BEARER)(decorated)
    blp.route(f"/<int:tender>/{path}", methods=["POST"], endpoint=name)(decorated)


S = db.session  # the request's session (a scoped proxy)

# --------------------------------------------------------------------------- evaluation

_post("evaluation/start", "evaluation_start", EvalLotIn, AwardDataOut,
      lambda a, n, t, b: evaluation.report_view(S, a, n, evaluation.start_evaluation(S, a, n, t, b["lot"]).project_id,
                                                b["lot"]),
      status=201, summary="Start the evaluation of a lot once the opening record is published (the agent).")
_post("evaluation/scores", "evaluation_scores", EvalScoresIn, _envelope(EvalScoreOut, many=True),
      lambda a, n, t, b: evaluation.submit_scores(S, a, n, t, b["lot"], b["scores"]),
      summary="A seated member scores published criteria of bids (E1; a replaced member is refused, D5).")
_post("evaluation/findings", "evaluation_findings", EvalFindingIn, AwardDataOut,
      lambda a, n, t, b: {"bid": evaluation.record_finding(S, a, n, t, b["lot"], b).bid},
      status=201, summary="A member records that a bid fails the compliance review (E2).")
_post("evaluation/explanations", "evaluation_explanations", AwardTextIn, AwardDataOut,
      lambda a, n, t, b: {"bid": evaluation.submit_explanation(S, a, n, t, b["lot"], b["text"]).bid},
      status=201, summary="The bidder explains an abnormally low price in writing (E2).")
_post("evaluation/explanations/decision", "evaluation_explanation_decision", EvalDecisionIn, AwardDataOut,
      lambda a, n, t, b: {"bid": b["bid"], "accepted": evaluation.decide_explanation(
          S, a, n, t, b["lot"], b["bid"], b["accepted"]).accepted},
      summary="A member records the committee's decision on an explanation (E2).")
_post("evaluation/report", "evaluation_report", EvalLotIn, AwardDataOut,
      lambda a, n, t, b: evaluation.report_view(S, a, n, evaluation.compute_report(S, a, n, t, b["lot"]).project_id,
                                                b["lot"]),
      summary="Compute the lot's result by the published method (E1, E3, E7; void scores of replaced members, D5).")
_post("evaluation/report/sign", "evaluation_sign", EvalSignIn, _envelope(EvalSignatureOut),
      lambda a, n, t, b: evaluation.sign_report(S, a, n, t, b["lot"], b["dissent"]),
      summary="A member signs the report or files a written dissent (E3); the last one submits it.")


@blp.route("/<int:tender>/evaluation", methods=["GET"])
@blp.arguments(EvalLotArgs, location="query")
@blp.response(200, AwardDataOut)
def get_evaluation(args: dict[str, Any], tender: int) -> dict[str, Any]:
    """A lot's evaluation: its state; results and candidates once they are out."""
    actor = current_actor(optional=True)
    return {"data": evaluation.report_view(db.session, actor, request_now(), tender, args["lot"])}


# --------------------------------------------------------------------------- publicity and award

_post("publicity", "publicity_start", PublicityIn, AwardDataOut,
      lambda a, n, t, b: {"ends_at": award_service.start_publicity(S, a, n, t, b["ends_at"]).scheduled_end},
      status=201, summary="Publicise the candidates until ends_at (E4: a shortened publicity is refused).")
_post("candidates/<string:bidder>/fallback", "candidate_fallback", FallbackIn, _envelope(AwardCandidateOut),
      lambda a, n, t, b, bidder: award_service.apply_fallback(S, a, n, t, b["lot"], bidder, b["reason"], b["note"]),
      summary="A candidate declines, fails to perform or is found in breach (E5).")
_post("award", "award", AwardIn, _envelope(AwardNoticeOut, many=True),
      lambda a, n, t, b: award_service.award(S, a, n, t, b["lot"], b["bidder"]),
      status=201, summary="Award a lot to the best standing candidate; every notice at one instant (E5, E6).")
_post("contracts", "contract", ContractIn, _envelope(ContractOut),
      lambda a, n, t, b: award_service.record_contract(S, a, n, t, b["lot"], b["amount"], b["terms"]),
      status=201, summary="Record the signed contract: the awarded price and the bid's terms (E6).")
_post("supervisor-report", "supervisor_report", AwardTextIn, AwardDataOut,
      lambda a, n, t, b: {"filed_at": award_service.file_supervisor_report(S, a, n, t, b["text"]).filed_at},
      status=201, summary="The written report to the supervising body (E6).")
_post("refunds/<int:refund_id>", "refund", RefundIn, AwardDataOut,
      lambda a, n, t, b, refund_id: award_service.refund_out(
          award_service.refund_security(S, a, n, t, refund_id, b["interest"])),
      summary="Record the refund of a bid security (B8).")


@blp.route("/<int:tender>/award", methods=["GET"])
@blp.response(200, AwardDataOut)
def get_award(tender: int) -> dict[str, Any]:
    """Publicity, objections, notices, contracts and refunds."""
    return {"data": award_service.award_view(db.session, current_actor(optional=True), request_now(), tender)}


@blp.route("/<int:tender>/award/steps", methods=["GET"])
@blp.response(200, AwardDataOut)
def get_steps(tender: int) -> dict[str, Any]:
    """Every step after the evaluation with its legal limit and state (supervision cards)."""
    return {"data": award_service.steps_view(db.session, current_actor(optional=True), request_now(), tender)}


# --------------------------------------------------------------------------- GP variants

_post("negotiation/rounds", "negotiation_round", NegotiationRoundIn, AwardDataOut,
      lambda a, n, t, b: {"round": negotiation.open_round(S, a, n, t, b["lot"], b).number},
      status=201, summary="Open a negotiation or consultation round (F2 suppliers, F3 response time).")
_post("negotiation/offers", "negotiation_offer", FinalOfferIn, _envelope(FinalOfferOut),
      lambda a, n, t, b: negotiation.submit_offer(S, a, n, t, b["lot"], b["price"], b["declared"]),
      status=201, summary="A supplier's final offer (one, unchangeable); in an inquiry refused (F4).")


@blp.route("/<int:tender>/negotiation/rounds", methods=["GET"])
@blp.arguments(EvalLotArgs, location="query")
@blp.response(200, AwardDataOut)
def get_rounds(args: dict[str, Any], tender: int) -> dict[str, Any]:
    """The rounds of a lot; final offers after the final round's deadline."""
    actor = current_actor(optional=True)
    return {"data": negotiation.rounds_view(db.session, actor, request_now(), tender, args["lot"])}


def register(api: Api) -> None:
    api.register_blueprint(blp)
