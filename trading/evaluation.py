"""Evaluation (评标 / 评审): compliance review, scoring, ranking (RULES E1, E2, E3, E7, F4, F5).

Pure: bids, the published terms, the rulebook's numbers and the members' scores in; a
result object out, or an :class:`EvaluationError` when the input cannot be evaluated as it
stands (a score out of range, scores missing, a price weight the rules forbid, an
abnormally low price still waiting for its written explanation).

Two kinds of settings, kept apart because they come from different places:

- :class:`TenderTerms`: what the tender documents published (method, maximum price,
  budget, criteria, aggregation, price formula, tie-break). Only these may be used (E1).
- :class:`EvaluationRules`: the rulebook's numbers for the domain and procedure (how many
  candidates, the price-weight bounds, the abnormally-low threshold, whether a price above
  the budget is rejected, the fewest compliant bids that still make a competition).

Arithmetic is :class:`~decimal.Decimal` throughout. Scores are rounded ROUND_HALF_UP to 2
places at exactly two points: each criterion's aggregate per bid, and each price score;
a total is the sum of those rounded figures, so the published score table adds up.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext
from enum import StrEnum
from typing import Any

from core.errors import AppError

__all__ = [
    "Method", "BidStatus", "Outcome", "TieBreak", "Aggregation", "PriceFormula",
    "Rejection", "Bid", "Criterion", "Score", "TenderTerms", "EvaluationRules",
    "Review", "BidResult", "EvaluationResult", "EvaluationError",
    "SCORE_PLACES", "round_score", "check_criteria", "price_weight", "price_score",
    "aggregate", "review_compliance", "evaluate",
]

#: Scores are published to 2 decimal places (ROUND_HALF_UP).
SCORE_PLACES = Decimal("0.01")
# Room for exact sums and means of many 2-place scores before the one rounding step.
_PRECISION = 60


class Method(StrEnum):
    """The published evaluation method (E1)."""

    LOWEST_EVALUATED_PRICE = "lowest_evaluated_price"  # 经评审的最低投标价法 / 最低评标价法
    COMPREHENSIVE = "comprehensive"                    # 综合评估法 / 综合评分法
    INQUIRY = "inquiry"                                # 询价: lowest compliant price (F4)


class BidStatus(StrEnum):
    COMPLIANT = "compliant"
    REJECTED = "rejected"                              # 否决投标 / 无效投标
    EXPLANATION_REQUIRED = "explanation_required"      # abnormally low, awaiting 书面说明


class Outcome(StrEnum):
    RANKED = "ranked"
    FAILED = "failed"                                  # 流标 / 废标: re-tender or re-procure


class TieBreak(StrEnum):
    """Published tie-break keys, applied in the order given (e.g. 87号令 Art 65)."""

    LOWER_PRICE = "lower_price"
    LOWER_EVALUATED_PRICE = "lower_evaluated_price"
    HIGHER_TECHNICAL_SCORE = "higher_technical_score"  # sum of the non-price criteria
    EARLIER_RECEIPT = "earlier_receipt"


class Aggregation(StrEnum):
    """How members' scores combine into one figure per bid."""

    MEAN = "mean"
    # Drop one highest and one lowest score of each criterion, mean of the rest.
    TRIMMED_PER_CRITERION = "trimmed_per_criterion"
    # Drop the members' highest and lowest subjective totals, mean of the rest; per-criterion
    # figures are then plain means, shown for information only.
    TRIMMED_MEMBER_TOTALS = "trimmed_member_totals"


class PriceFormula(StrEnum):
    """Published price-score formula (E7)."""

    # 低价优先法: lowest valid price scores full marks, others lowest / price × max.
    LOW_PRICE_FIRST = "low_price_first"


class EvaluationError(AppError):
    """The evaluation cannot proceed as asked; ``code`` is stable, ``details`` say where."""

    status, code, message_zh, message_en = (
        422, "evaluation_error", "评审数据无效", "The evaluation cannot proceed")


@dataclass(frozen=True, order=True)
class Rejection:
    """Why a bid is rejected (or why the whole evaluation failed), with the rule id."""

    code: str
    rule: str
    detail: str = ""


@dataclass(frozen=True)
class Bid:
    """A bid as opened. ``rejections``: the committee's own findings of the compliance
    review (qualification, substantive response), which are judgments, not arithmetic.
    ``evaluated_price``: the price after published adjustments (e.g. the SME deduction);
    None means the bid price."""

    bid_id: str
    bidder: str
    price: Decimal
    received_at: datetime
    evaluated_price: Decimal | None = None
    rejections: tuple[Rejection, ...] = ()

    @property
    def price_for_evaluation(self) -> Decimal:
        return self.price if self.evaluated_price is None else self.evaluated_price


def _optional_decimals(settings: object, *names: str) -> None:
    # Settings are money or fractions: a float here would slip past every comparison
    # and then fail (or round) in the middle of an evaluation.
    for name in names:
        value = getattr(settings, name)
        if value is not None and (not isinstance(value, Decimal) or not value.is_finite()):
            raise TypeError(f"{name} must be a finite Decimal or None")


@dataclass(frozen=True)
class Criterion:
    """A published scoring criterion (评分因素) worth up to ``max_score`` points.

    The criteria's points are the weights: the price weight is the price criterion's
    points over all points. The price criterion is computed, never scored by members.
    """

    id: str
    max_score: Decimal
    is_price: bool = False


@dataclass(frozen=True)
class Score:
    """One member's score of one criterion of one bid."""

    member: str
    bid_id: str
    criterion: str
    value: Decimal


@dataclass(frozen=True)
class TenderTerms:
    """What the tender documents published; nothing else may be used (E1)."""

    method: Method
    maximum_price: Decimal | None = None          # 最高投标限价 (A7)
    budget: Decimal | None = None                 # 采购预算 (GP)
    criteria: tuple[Criterion, ...] = ()
    aggregation: Aggregation = Aggregation.MEAN
    price_formula: PriceFormula = PriceFormula.LOW_PRICE_FIRST
    tie_break: tuple[TieBreak, ...] = (TieBreak.LOWER_PRICE, TieBreak.EARLIER_RECEIPT)
    alternative_bids_allowed: bool = False        # 备选投标 (条例 51 exception)

    def __post_init__(self) -> None:
        _optional_decimals(self, "maximum_price", "budget")


@dataclass(frozen=True)
class EvaluationRules:
    """The rulebook's numbers for this domain and procedure.

    ``max_candidates``: ranked candidates at most (E3). ``reject_above_budget``: GP rejects
    a price above the budget (F5). ``abnormally_low_ratio``: a price below this fraction of
    the mean of the other compliant prices needs a written explanation (E2; None: no
    check). ``min_compliant_bids``: fewer compliant bids fail the procurement (GP法 36;
    None: no minimum). ``price_weight_min`` / ``price_weight_max``: E7 bounds as fractions.
    """

    max_candidates: int
    reject_above_budget: bool = False
    abnormally_low_ratio: Decimal | None = None
    min_compliant_bids: int | None = None
    price_weight_min: Decimal | None = None
    price_weight_max: Decimal | None = None

    def __post_init__(self) -> None:
        if self.max_candidates < 1:
            raise ValueError("max_candidates must be >= 1")
        if self.min_compliant_bids is not None and self.min_compliant_bids < 1:
            raise ValueError("min_compliant_bids must be >= 1")
        _optional_decimals(self, "abnormally_low_ratio", "price_weight_min",
                           "price_weight_max")


@dataclass(frozen=True)
class Review:
    """The compliance review of one bid (符合性/资格审查)."""

    bid_id: str
    status: BidStatus
    rejections: tuple[Rejection, ...] = ()
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class BidResult:
    """Everything published about one bid's evaluation."""

    bid_id: str
    bidder: str
    price: Decimal
    status: BidStatus
    rejections: tuple[Rejection, ...] = ()
    flags: tuple[str, ...] = ()
    evaluated_price: Decimal | None = None
    criterion_scores: Mapping[str, Decimal] = field(default_factory=dict)
    technical_score: Decimal | None = None
    price_score: Decimal | None = None
    total: Decimal | None = None
    rank: int | None = None


@dataclass(frozen=True)
class EvaluationResult:
    """The committee's result: every bid, the candidates in order, or why it failed.

    ``bids``: ranked bids by rank, then the others in the order given. ``candidates``: at
    most ``max_candidates`` bid ids, best first (E3). ``unresolved_tie``: bids still equal
    after every published tie-break and competing for the last candidate places; they
    share a rank (并列) and the published method (e.g. a public lottery) must choose.
    """

    method: Method
    outcome: Outcome
    bids: tuple[BidResult, ...]
    candidates: tuple[str, ...] = ()
    unresolved_tie: tuple[str, ...] = ()
    failure: tuple[Rejection, ...] = ()

    @property
    def winner(self) -> str | None:
        """The rank-1 candidate (E5, F4), if any."""
        return self.candidates[0] if self.candidates else None

    @property
    def next_step(self) -> str | None:
        """``re_tender`` when the evaluation failed (法 42, GP法 36), else None."""
        return "re_tender" if self.outcome is Outcome.FAILED else None

    def bid(self, bid_id: str) -> BidResult:
        for result in self.bids:
            if result.bid_id == bid_id:
                return result
        raise KeyError(bid_id)


# --------------------------------------------------------------------------- arithmetic

def round_score(value: Decimal) -> Decimal:
    """Round a score ROUND_HALF_UP to 2 places (the published precision)."""
    return value.quantize(SCORE_PLACES, rounding=ROUND_HALF_UP)


def _decimal(name: str, value: object, **where: Any) -> Decimal:
    # Floats are refused, not converted: 0.1 as a float is not 0.1, and money is exact.
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise EvaluationError(f"{name} must be a Decimal", code="not_a_decimal",
                              field=name, **where)
    number = Decimal(value)
    if not number.is_finite():
        raise EvaluationError(f"{name} must be finite", code="not_a_decimal", field=name,
                              **where)
    return number


def _mean(values: Sequence[Decimal]) -> Decimal:
    with localcontext() as context:
        context.prec = _PRECISION
        return sum(values, Decimal(0)) / len(values)


def aggregate(values: Sequence[Decimal], trimmed: bool) -> Decimal:
    """Mean of ``values``, unrounded; ``trimmed`` drops one highest and one lowest first.

    Trimming needs at least 3 values, so that something is left to average.
    """
    if not values:
        raise EvaluationError("Nothing to aggregate", code="no_scores")
    if not trimmed:
        return _mean(values)
    if len(values) < 3:
        raise EvaluationError("Dropping the highest and lowest needs at least 3 members",
                              code="too_few_members", members=len(values))
    return _mean(sorted(values)[1:-1])


def price_score(price: Decimal, lowest: Decimal, max_score: Decimal,
                formula: PriceFormula = PriceFormula.LOW_PRICE_FIRST) -> Decimal:
    """The price score of ``price`` given the lowest valid price (E7), rounded.

    Low-price-first: ``lowest / price × max_score``, so the lowest scores full marks.
    """
    if formula is not PriceFormula.LOW_PRICE_FIRST:
        raise EvaluationError("Unknown price formula", code="unknown_price_formula",
                              formula=str(formula))
    if price <= 0 or lowest <= 0 or lowest > price:
        raise EvaluationError("Price score needs 0 < lowest <= price", code="invalid_price",
                              price=str(price), lowest=str(lowest))
    with localcontext() as context:
        context.prec = _PRECISION
        # Multiply before dividing: one inexact step instead of two.
        return round_score(lowest * max_score / price)


def price_weight(criteria: Sequence[Criterion]) -> Decimal:
    """The price criterion's points over all points (0 when there is no price criterion)."""
    total = sum((c.max_score for c in criteria), Decimal(0))
    price = sum((c.max_score for c in criteria if c.is_price), Decimal(0))
    with localcontext() as context:
        context.prec = _PRECISION
        return price / total if total else Decimal(0)


def check_criteria(terms: TenderTerms, rules: EvaluationRules) -> None:
    """Refuse published criteria that comprehensive scoring cannot use or the rules forbid.

    Criteria need distinct ids and positive maxima, at most one price criterion, and a
    price weight within the E7 bounds (inclusive) when the rules set them.
    """
    criteria = terms.criteria
    if not criteria:
        raise EvaluationError("Comprehensive scoring needs published criteria",
                              code="invalid_criteria", reason="none", rule="E1")
    ids = Counter(c.id for c in criteria)
    duplicates = sorted(i for i, n in ids.items() if n > 1)
    if duplicates:
        raise EvaluationError("Criterion ids must be unique", code="invalid_criteria",
                              reason="duplicate", criteria=duplicates)
    for criterion in criteria:
        if _decimal("max_score", criterion.max_score, criterion=criterion.id) <= 0:
            raise EvaluationError("A criterion's maximum must be positive",
                                  code="invalid_criteria", reason="max_score",
                                  criterion=criterion.id)
    if sum(1 for c in criteria if c.is_price) > 1:
        raise EvaluationError("At most one price criterion", code="invalid_criteria",
                              reason="price_criteria")
    weight = price_weight(criteria)
    low, high = rules.price_weight_min, rules.price_weight_max
    if (low is not None and weight < low) or (high is not None and weight > high):
        raise EvaluationError(
            f"Price weight {weight:.4f} outside the bounds the rules set",
            code="price_weight_out_of_range", rule="E7", weight=str(weight),
            min=None if low is None else str(low), max=None if high is None else str(high))


# --------------------------------------------------------------------------- compliance

def _check_bids(bids: Sequence[Bid]) -> None:
    ids = Counter(b.bid_id for b in bids)
    duplicates = sorted(i for i, n in ids.items() if n > 1)
    if duplicates:
        raise EvaluationError("Bid ids must be unique", code="duplicate_bid_id",
                              bids=duplicates)
    for bid in bids:
        _decimal("price", bid.price, bid=bid.bid_id)
        if bid.evaluated_price is not None:
            _decimal("evaluated_price", bid.evaluated_price, bid=bid.bid_id)
        if bid.received_at.tzinfo is None or bid.received_at.utcoffset() is None:
            raise EvaluationError("received_at must be an aware datetime",
                                  code="invalid_bid", bid=bid.bid_id)


def review_compliance(bids: Sequence[Bid], terms: TenderTerms, rules: EvaluationRules,
                      explanations: Mapping[str, bool] | None = None) -> tuple[Review, ...]:
    """The mandatory rejections of E2 (and F5), then the abnormally-low check.

    In order: the committee's own findings (``Bid.rejections``); a price (or evaluated
    price) that is not positive; a price above the maximum price (E2, A7); for GP a price
    above the budget (F5); every bid of a bidder who submitted two or more (E2, unless
    alternative bids are allowed). Then, among the bids still compliant, a price below
    ``abnormally_low_ratio`` × the mean of the *other* compliant prices is abnormally low:
    ``explanations[bid_id]`` True (explanation accepted) keeps it with the flag
    ``abnormally_low_explained``; False rejects it as below cost (E2); absent leaves it
    ``explanation_required``. The reference set is fixed before this check, so the
    outcome does not depend on the order of bids.
    """
    _check_bids(bids)
    explanations = explanations or {}
    found: dict[str, list[Rejection]] = {b.bid_id: list(b.rejections) for b in bids}
    for bid in bids:
        reasons = found[bid.bid_id]
        if bid.price <= 0 or bid.price_for_evaluation <= 0:
            reasons.append(Rejection("non_positive_price", "E2"))
        if terms.maximum_price is not None and bid.price > terms.maximum_price:
            reasons.append(Rejection("price_above_maximum", "E2",
                                     f"{bid.price} > {terms.maximum_price}"))
        if rules.reject_above_budget and terms.budget is not None and bid.price > terms.budget:
            reasons.append(Rejection("price_above_budget", "F5",
                                     f"{bid.price} > {terms.budget}"))
    if not terms.alternative_bids_allowed:
        per_bidder = Counter(b.bidder for b in bids)
        for bid in bids:
            if per_bidder[bid.bidder] > 1:
                found[bid.bid_id].append(Rejection("two_bids_from_one_bidder", "E2"))

    compliant = [b for b in bids if not found[b.bid_id]]
    flags: dict[str, list[str]] = defaultdict(list)
    pending: set[str] = set()
    ratio = rules.abnormally_low_ratio
    if ratio is not None and len(compliant) >= 2:
        total = sum((b.price for b in compliant), Decimal(0))
        for bid in compliant:
            with localcontext() as context:
                context.prec = _PRECISION
                reference = (total - bid.price) / (len(compliant) - 1)
                low = bid.price < ratio * reference
            if not low:
                continue
            decision = explanations.get(bid.bid_id)
            if decision is None:
                pending.add(bid.bid_id)
                flags[bid.bid_id].append("abnormally_low")
            elif decision:
                flags[bid.bid_id].append("abnormally_low_explained")
            else:
                found[bid.bid_id].append(Rejection(
                    "below_cost", "E2", "abnormally low price not justified in writing"))

    reviews = []
    for bid in bids:
        if found[bid.bid_id]:
            status = BidStatus.REJECTED
        elif bid.bid_id in pending:
            status = BidStatus.EXPLANATION_REQUIRED
        else:
            status = BidStatus.COMPLIANT
        reviews.append(Review(bid.bid_id, status, tuple(found[bid.bid_id]),
                              tuple(flags[bid.bid_id])))
    return tuple(reviews)


# --------------------------------------------------------------------------- scoring

@dataclass
class _Scored:
    criterion_scores: dict[str, Decimal]
    technical: Decimal
    price_score: Decimal | None
    total: Decimal


def _collect_scores(scores: Iterable[Score], terms: TenderTerms, members: Sequence[str],
                    replaced: Iterable[str], bid_ids: set[str], compliant: set[str],
                    ) -> dict[tuple[str, str], dict[str, Decimal]]:
    """Check every score and index the valid ones as (bid, criterion) → member → value."""
    criteria = {c.id: c for c in terms.criteria}
    seated = set(members)
    void = set(replaced)
    both = sorted(seated & void)
    if both:
        raise EvaluationError("A replaced member cannot also be seated",
                              code="member_conflict", members=both)
    table: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(dict)
    for score in scores:
        where = {"member": score.member, "bid": score.bid_id, "criterion": score.criterion}
        if score.member in void:
            continue  # D5: a replaced member's conclusions are void
        if score.member not in seated:
            raise EvaluationError("Score from someone not on the committee",
                                  code="unknown_member", **where)
        if score.bid_id not in bid_ids:
            raise EvaluationError("Score for an unknown bid", code="unknown_bid", **where)
        criterion = criteria.get(score.criterion)
        if criterion is None:
            raise EvaluationError("Only published criteria may be scored",
                                  code="unpublished_criterion", rule="E1", **where)
        if criterion.is_price:
            raise EvaluationError("The price criterion is computed, not scored",
                                  code="price_criterion_scored", **where)
        value = _decimal("value", score.value, **where)
        if not Decimal(0) <= value <= criterion.max_score:
            raise EvaluationError(
                f"Score {value} outside [0, {criterion.max_score}]",
                code="score_out_of_range", value=str(value), max=str(criterion.max_score),
                **where)
        if score.bid_id not in compliant:
            continue  # rejected bids are not scored; a stray score carries no weight
        cell = table[(score.bid_id, score.criterion)]
        if score.member in cell:
            raise EvaluationError("Two scores for the same cell", code="duplicate_score",
                                  **where)
        cell[score.member] = value
    missing = [(b, c.id, m) for b in sorted(compliant) for c in terms.criteria
               if not c.is_price for m in members if m not in table[(b, c.id)]]
    if missing:
        raise EvaluationError(
            "Every seated member must score every criterion of every compliant bid",
            code="scores_incomplete", missing=len(missing),
            first=[{"bid": b, "criterion": c, "member": m} for b, c, m in missing[:10]])
    return table


def _score_bids(compliant: Sequence[Bid], terms: TenderTerms, members: Sequence[str],
                table: Mapping[tuple[str, str], Mapping[str, Decimal]]) -> dict[str, _Scored]:
    subjective = [c for c in terms.criteria if not c.is_price]
    price_criterion = next((c for c in terms.criteria if c.is_price), None)
    lowest = min((b.price_for_evaluation for b in compliant), default=None)
    per_criterion_trim = terms.aggregation is Aggregation.TRIMMED_PER_CRITERION
    result: dict[str, _Scored] = {}
    for bid in compliant:
        figures = {c.id: round_score(aggregate(list(table[(bid.bid_id, c.id)].values()),
                                               per_criterion_trim))
                   for c in subjective}
        if terms.aggregation is Aggregation.TRIMMED_MEMBER_TOTALS and subjective:
            member_totals = [sum((table[(bid.bid_id, c.id)][m] for c in subjective), Decimal(0))
                             for m in members]
            technical = round_score(aggregate(member_totals, True))
        else:
            technical = sum(figures.values(), Decimal(0))
        points = None
        if price_criterion is not None and lowest is not None:
            points = price_score(bid.price_for_evaluation, lowest, price_criterion.max_score,
                                 terms.price_formula)
            figures[price_criterion.id] = points
        total = technical + (points or Decimal(0))
        result[bid.bid_id] = _Scored(figures, technical, points, total)
    return result


# --------------------------------------------------------------------------- ranking

def _sort_key(bid: Bid, method: Method, scored: Mapping[str, _Scored],
              tie_break: Sequence[TieBreak]) -> tuple[Any, ...]:
    if method is Method.COMPREHENSIVE:
        key: list[Any] = [-scored[bid.bid_id].total]
    elif method is Method.INQUIRY:
        key = [bid.price]  # F4: the one unchangeable price, nothing adjusted
    else:
        key = [bid.price_for_evaluation]
    for rule in tie_break:
        if rule is TieBreak.LOWER_PRICE:
            key.append(bid.price)
        elif rule is TieBreak.LOWER_EVALUATED_PRICE:
            key.append(bid.price_for_evaluation)
        elif rule is TieBreak.HIGHER_TECHNICAL_SCORE:
            key.append(-scored[bid.bid_id].technical if bid.bid_id in scored else Decimal(0))
        elif rule is TieBreak.EARLIER_RECEIPT:
            key.append(bid.received_at)
    return tuple(key)


def _rank(ordered: Sequence[tuple[Bid, tuple[Any, ...]]], max_candidates: int,
          ) -> tuple[dict[str, int], tuple[str, ...], tuple[str, ...]]:
    """Competition ranking (1, 1, 3) and the candidates; ties still equal share a rank."""
    ranks: dict[str, int] = {}
    tiers: list[list[str]] = []
    previous: tuple[Any, ...] | None = None
    for position, (bid, key) in enumerate(ordered, start=1):
        if key != previous:
            tiers.append([])
            rank = position
        ranks[bid.bid_id] = rank
        tiers[-1].append(bid.bid_id)
        previous = key
    candidates: list[str] = []
    unresolved: tuple[str, ...] = ()
    for tier in tiers:
        if len(candidates) + len(tier) <= max_candidates:
            candidates.extend(tier)
            continue
        if len(candidates) < max_candidates:
            unresolved = tuple(tier)  # the places left cannot be given out by the key
        break
    return ranks, tuple(candidates), unresolved


# --------------------------------------------------------------------------- evaluate

def evaluate(bids: Sequence[Bid], terms: TenderTerms, rules: EvaluationRules, *,
             members: Sequence[str] = (), replaced: Iterable[str] = (),
             scores: Iterable[Score] = (),
             explanations: Mapping[str, bool] | None = None) -> EvaluationResult:
    """Evaluate ``bids`` by the published method and return the full result.

    1. :func:`review_compliance` (E2, F5); a bid still awaiting its written explanation
       raises ``explanation_required`` (ask the bidder, then call again with
       ``explanations``).
    2. Failure (``Outcome.FAILED``, next step re-tender): no bids; every bid rejected (法 42);
       every bid above the budget under GP (F5); fewer compliant bids than
       ``min_compliant_bids`` (GP法 36).
    3. Scores, for comprehensive scoring only: :func:`check_criteria` (E1, E7); scores of
       ``replaced`` members are void and dropped (D5); every seated member must score every
       non-price criterion of every compliant bid within ``[0, max]``; aggregation by
       ``terms.aggregation``; the price criterion by ``terms.price_formula`` from the
       lowest compliant (evaluated) price.
    4. Ranking: highest total (comprehensive), lowest evaluated price, or lowest price
       (inquiry, F4); then the published ``tie_break`` keys; at most
       ``rules.max_candidates`` candidates (E3).
    """
    reviews = {r.bid_id: r for r in review_compliance(bids, terms, rules, explanations)}
    waiting = sorted(i for i, r in reviews.items() if r.status is BidStatus.EXPLANATION_REQUIRED)
    if waiting:
        raise EvaluationError("Abnormally low prices need a written explanation first",
                              code="explanation_required", rule="E2", bids=waiting)
    compliant = [b for b in bids if reviews[b.bid_id].status is BidStatus.COMPLIANT]

    failure: list[Rejection] = []
    if not bids:
        failure.append(Rejection("no_bids", "E2"))
    elif not compliant:
        failure.append(Rejection("all_bids_rejected", "E2", "法 42: re-tender"))
    if bids and rules.reject_above_budget and terms.budget is not None \
            and all(b.price > terms.budget for b in bids):
        failure.append(Rejection("every_bid_above_budget", "F5"))
    if compliant and rules.min_compliant_bids is not None \
            and len(compliant) < rules.min_compliant_bids:
        failure.append(Rejection("too_few_compliant_bids", "C2",
                                 f"{len(compliant)} < {rules.min_compliant_bids}"))

    scored: dict[str, _Scored] = {}
    if terms.method is Method.COMPREHENSIVE:
        check_criteria(terms, rules)
        # A failed evaluation scores nothing, so its missing scores are no error.
        if not failure:
            if not members:
                raise EvaluationError("Comprehensive scoring needs the seated members",
                                      code="no_members")
            table = _collect_scores(scores, terms, members, replaced,
                                    {b.bid_id for b in bids}, {b.bid_id for b in compliant})
            scored = _score_bids(compliant, terms, members, table)

    ranks: dict[str, int] = {}
    candidates: tuple[str, ...] = ()
    unresolved: tuple[str, ...] = ()
    if not failure:
        keyed = sorted(((b, _sort_key(b, terms.method, scored, terms.tie_break))
                        for b in compliant), key=lambda pair: pair[1])
        ranks, candidates, unresolved = _rank(keyed, rules.max_candidates)

    def result_of(bid: Bid) -> BidResult:
        review = reviews[bid.bid_id]
        figures = scored.get(bid.bid_id)
        return BidResult(
            bid_id=bid.bid_id, bidder=bid.bidder, price=bid.price, status=review.status,
            rejections=review.rejections, flags=review.flags,
            evaluated_price=bid.price_for_evaluation,
            criterion_scores=dict(figures.criterion_scores) if figures else {},
            technical_score=figures.technical if figures else None,
            price_score=figures.price_score if figures else None,
            total=figures.total if figures else None,
            rank=ranks.get(bid.bid_id))

    ranked = sorted((b for b in bids if b.bid_id in ranks),
                    key=lambda b: (ranks[b.bid_id], b.bid_id))
    ranked_ids = {b.bid_id for b in ranked}
    others = [b for b in bids if b.bid_id not in ranked_ids]
    return EvaluationResult(
        method=terms.method,
        outcome=Outcome.FAILED if failure else Outcome.RANKED,
        bids=tuple(result_of(b) for b in [*ranked, *others]),
        candidates=candidates, unresolved_tie=unresolved, failure=tuple(failure))
