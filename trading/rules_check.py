"""Checks of the rulebook (交易规则校验): pure functions that raise :class:`RuleViolation`.

Every number comes from the project's resolved rules (:class:`ProjectRules`), never from
this module; a check whose rule does not apply to the project passes (returns ``None``).
Time checks return the :class:`Deadline` they judged by, so the caller can show the legal
limit beside the step (supervision uses the same limits for its red and yellow cards).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timezone
from decimal import Decimal
from fractions import Fraction

from trading.calendar import SHANGHAI, DayKind, Deadline, Sense, end_of_day
from trading.rulebook import ProjectRules, ResolvedRule, RuleViolation

__all__ = [
    "Publication", "OpeningDecision", "check_step", "check_bid_deadline",
    "check_document_availability", "check_objection_deadline", "check_notice_period",
    "check_bid_security", "check_performance_security", "check_price_limits",
    "check_invitations", "check_prequalified", "check_floor_price", "check_listing_extension",
    "publication_violations", "check_publication", "earliest_deadline_after_clarification",
    "check_clarification", "opening_decision", "check_opening_minimum", "check_committee",
    "check_price_weight", "check_candidates", "check_publicity", "check_award_time",
    "check_contract_time", "check_report_time", "check_bid_change", "check_withdrawal_refund",
    "check_security_refund", "check_complaint", "check_suspension", "check_price_quotes",
    "check_bids_within_budget", "check_down_payment",
]

# Names of the events periods run between, for messages (zh, en).
EVENT_LABELS: dict[str, tuple[str, str]] = {
    "bid_deadline": ("投标截止时间", "the bid deadline"),
    "documents_until": ("招标文件发售截止时间", "the end of document availability"),
    "notice_until": ("公告期截止时间", "the end of the notice period"),
    "objection_answered": ("异议答复", "the answer to the objection"),
    "security_refunded": ("保证金退还", "the security refund"),
    "publicity_started_at": ("中标候选人公示开始", "the start of candidate publicity"),
    "publicity_end": ("公示期截止时间", "the end of publicity"),
    "awarded_at": ("确定中标人", "the award"),
    "contracted_at": ("签订合同", "the contract signature"),
    "report_filed": ("提交书面报告", "the report to the supervisor"),
    "complaint_filed": ("提出投诉", "the complaint"),
    "complaint_accepted": ("决定是否受理投诉", "the acceptance decision"),
    "complaint_decided": ("作出投诉处理决定", "the complaint decision"),
    "question_filed": ("提出质疑", "the question"),
    "question_answered": ("答复质疑", "the answer to the question"),
    "resumed_at": ("恢复采购活动", "the end of the suspension"),
    "extended_deadline": ("延期后的截止时间", "the extended deadline"),
    "prequalification_deadline": ("资格预审申请截止时间", "the prequalification deadline"),
    "paid_at": ("付清交易价款", "full payment"),
    "down_payment_at": ("支付首期价款", "the down payment"),
    "result_publicity_end": ("交易结果公告截止", "the end of the result notice"),
}
_UNITS = {DayKind.CALENDAR: ("日", "days"), DayKind.WORKING: ("个工作日", "working days")}


def _when(instant: datetime) -> str:
    return instant.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def _violation(rule: ResolvedRule, zh: str, en: str, **details: object) -> RuleViolation:
    return RuleViolation(rule.id, rule.citation, f"{zh}（{rule.citation}）", f"{en} ({rule.citation})",
                         {"rule_mark": rule.mark, **details})


def _period_violation(rules: ProjectRules, limit: Deadline, event: datetime) -> RuleViolation:
    rule, period = rules.period(limit.step or "")
    to_zh, to_en = EVENT_LABELS.get(period.to_event, (period.to_event, period.to_event.replace("_", " ")))
    if limit.months:
        n_zh, n_en = f"{limit.months}个月", f"{limit.months} months"
    else:
        unit_zh, unit_en = _UNITS[limit.kind]
        n_zh, n_en = f"{limit.days}{unit_zh}", f"{limit.days} {unit_en}"
    day = limit.last_day.isoformat()
    if limit.sense is Sense.NOT_BEFORE_DAY:
        zh = f"{to_zh}不得早于{day}（自{_when(limit.start)}起至少{n_zh}）"
        en = f"{to_en} may not fall before {day} (at least {n_en} after {_when(limit.start)})"
    elif limit.sense is Sense.LASTS:
        zh = f"{to_zh}不得早于{day} 24:00（须持续至少{n_zh}）"
        en = f"{to_en} may not come before 24:00 on {day} (it must last at least {n_en})"
    else:
        zh = f"{to_zh}须在{day} 24:00前完成（{_when(limit.start)}起{n_zh}内）"
        en = f"{to_en} must happen before 24:00 on {day} (within {n_en} of {_when(limit.start)})"
    return _violation(rule, zh, en, step=limit.step, start=limit.start, actual=event,
                      limit=limit, provisional=limit.provisional)


# -- time limits ------------------------------------------------------------------------

def check_step(rules: ProjectRules, step: str, start: datetime, event: datetime) -> Deadline | None:
    """Judge the later ``event`` against the limit of ``step`` counted from ``start``.

    Returns the limit, or ``None`` when the step has no limit for this project.
    """
    if not rules.has_step(step):
        return None
    limit = rules.limits_for(step, start)
    if not limit.allows(event):
        raise _period_violation(rules, limit, event)
    return limit


def check_bid_deadline(rules: ProjectRules, documents_from: datetime, bid_deadline: datetime) -> Deadline | None:
    """A1 (20 days from first issue, 法 24 / GP法 35), or for the procedures without it
    F3 (response time; single-source publicity) or G3 (listing ≥ 20 working days)."""
    for step in ("bid_preparation", "response", "single_source_publicity", "listing"):
        if rules.has_step(step):
            return check_step(rules, step, documents_from, bid_deadline)
    return None


def check_document_availability(rules: ProjectRules, documents_from: datetime,
                                documents_until: datetime) -> Deadline | None:
    """A2: documents available at least 5 days (GP: 5 working days)."""
    return check_step(rules, "document_availability", documents_from, documents_until)


def check_objection_deadline(rules: ProjectRules, objection_deadline: datetime,
                             bid_deadline: datetime) -> Deadline | None:
    """A4: objections to the documents close at least 10 days before the bid deadline."""
    return check_step(rules, "objection", objection_deadline, bid_deadline)


def check_notice_period(rules: ProjectRules, published_at: datetime, notice_until: datetime) -> Deadline | None:
    """A9: the GP tender notice stays up at least 5 working days."""
    return check_step(rules, "notice", published_at, notice_until)


def check_listing_extension(rules: ProjectRules, old_deadline: datetime, new_deadline: datetime) -> Deadline | None:
    """G3: each extension of a listing is at least 5 working days."""
    return check_step(rules, "listing_extension", old_deadline, new_deadline)


# -- money ------------------------------------------------------------------------------

def _money(value: Decimal, name: str) -> Decimal:
    if not isinstance(value, Decimal):
        raise TypeError(f"{name} must be a Decimal, not {type(value).__name__}")
    return value


def check_bid_security(rules: ProjectRules, amount: Decimal, base: Decimal | None = None) -> None:
    """B1: bid security ≤ 2% of the estimate (construction) / budget (GP), and for
    construction works and goods ≤ ¥800,000. ``base`` defaults to the project's budget."""
    if not rules.applies("B1"):
        return
    rule = rules.rule("B1")
    amount = _money(amount, "amount")
    base = _money(base, "base") if base is not None else rules.facts.budget
    ratio, cap = rule.decimal("max_ratio"), rule.decimal("max_amount")
    if ratio is not None and base is not None and amount > base * ratio:
        raise _violation(rule, f"投标保证金{amount}元超过{rule.get('base')}的{ratio:%}（{base * ratio}元）",
                         f"bid security {amount} exceeds {ratio:%} of the {rule.get('base')} ({base * ratio})",
                         amount=amount, base=base, max_ratio=ratio)
    if cap is not None and amount > cap:
        raise _violation(rule, f"投标保证金{amount}元超过上限{cap}元", f"bid security {amount} exceeds the cap of {cap}",
                         amount=amount, max_amount=cap)


def check_performance_security(rules: ProjectRules, amount: Decimal, contract_amount: Decimal) -> None:
    """B7: performance security ≤ 10% of the contract amount."""
    if not rules.applies("B7"):
        return
    rule = rules.rule("B7")
    limit = _money(contract_amount, "contract_amount") * rule.decimal("max_ratio")  # type: ignore[operator]
    if _money(amount, "amount") > limit:
        raise _violation(rule, f"履约保证金{amount}元超过合同金额的{rule.decimal('max_ratio'):%}（{limit}元）",
                         f"performance security {amount} exceeds {rule.decimal('max_ratio'):%} of the contract ({limit})",
                         amount=amount, contract_amount=contract_amount, max_ratio=rule.decimal("max_ratio"))


def check_price_limits(rules: ProjectRules, max_price: Decimal | None, min_price: Decimal | None = None,
                       max_price_formula: str | None = None) -> None:
    """A7: a maximum price (or its formula) where the rulebook requires one; never a
    minimum price."""
    if not rules.applies("A7"):
        return
    rule = rules.rule("A7")
    if rule.flag("min_price_forbidden") and min_price is not None:
        raise _violation(rule, "不得规定最低投标限价", "a minimum bid price is forbidden", min_price=min_price)
    if rule.flag("max_price_required") and max_price is None and not max_price_formula:
        raise _violation(rule, "须公布最高投标限价或其计算方法",
                         "the maximum bid price or its formula must be published")


def check_invitations(rules: ProjectRules, invited: int) -> None:
    """A5 / F2: an invitation tender, and a GP negotiation, inquiry or consultation,
    invites at least 3."""
    if rules.applies("F2"):
        rule, key = rules.rule("F2"), "min_suppliers"
    elif rules.procedure == "invited_tender" and rules.applies("A5"):
        rule, key = rules.rule("A5"), "min_invited"
    else:
        return
    minimum = rule.integer(key)
    if minimum is not None and invited < minimum:
        raise _violation(rule, f"邀请的供应商/投标人不足{minimum}家（{invited}家）",
                         f"at least {minimum} must be invited ({invited} were)",
                         invited=invited, minimum=minimum)


def check_prequalified(rules: ProjectRules, qualified: int) -> None:
    """A5: fewer than 3 qualified prequalification applicants → re-tender (details.outcome)."""
    if not rules.applies("A5"):
        return
    rule = rules.rule("A5")
    minimum = rule.integer("min_prequalified") or 0
    if qualified < minimum:
        raise _violation(rule, f"通过资格预审的申请人少于{minimum}个，应当重新招标",
                         f"fewer than {minimum} qualified applicants: re-tender",
                         qualified=qualified, minimum=minimum, outcome=rule.get("shortfall_outcome"))


def check_floor_price(rules: ProjectRules, floor: Decimal, appraisal: Decimal, *, first: bool = True,
                      approval: str | None = None) -> None:
    """G2: the first floor price ≥ the appraised value; a later floor below 90% of it
    needs a recorded approval (``approval`` names the document)."""
    if not rules.applies("G2"):
        return
    rule = rules.rule("G2")
    floor, appraisal = _money(floor, "floor"), _money(appraisal, "appraisal")
    minimum = appraisal * rule.decimal("first_floor_min_ratio")  # type: ignore[operator]
    threshold = appraisal * rule.decimal("approval_below_ratio")  # type: ignore[operator]
    if first and floor < minimum:
        raise _violation(rule, f"首次挂牌底价{floor}元低于评估值{minimum}元",
                         f"the first floor price {floor} is below the appraised value {minimum}",
                         floor=floor, appraisal=appraisal)
    if not first and floor < threshold and not approval:
        raise _violation(rule, f"底价{floor}元低于评估值的{rule.decimal('approval_below_ratio'):%}，须经批准并记录",
                         f"a floor price {floor} below {rule.decimal('approval_below_ratio'):%} of the appraisal needs a recorded approval",
                         floor=floor, appraisal=appraisal, threshold=threshold)


# -- publication ------------------------------------------------------------------------

@dataclass(frozen=True)
class Publication:
    """What a notice fixes at publication. Omitted fields are not checked."""

    published_at: datetime
    bid_deadline: datetime
    documents_from: datetime | None = None       # first issue; defaults to published_at
    documents_until: datetime | None = None
    objection_deadline: datetime | None = None
    notice_until: datetime | None = None
    bid_security: Decimal | None = None
    security_base: Decimal | None = None         # estimate / budget; defaults to the facts
    performance_security: Decimal | None = None
    contract_amount: Decimal | None = None       # for B7; defaults to the budget
    max_price: Decimal | None = None
    max_price_formula: str | None = None
    min_price: Decimal | None = None
    invited: int | None = None
    floor_price: Decimal | None = None
    appraisal_value: Decimal | None = None
    floor_approval: str | None = None
    first_listing: bool = True
    price_weight: Decimal | None = None


def publication_violations(rules: ProjectRules, pub: Publication) -> list[RuleViolation]:
    """Every rule a notice breaks (empty when it may be published)."""
    first_issue = pub.documents_from or pub.published_at
    checks = [
        lambda: check_bid_deadline(rules, first_issue, pub.bid_deadline),
        lambda: pub.documents_until and check_document_availability(rules, first_issue, pub.documents_until),
        lambda: pub.objection_deadline and check_objection_deadline(rules, pub.objection_deadline, pub.bid_deadline),
        lambda: pub.notice_until and check_notice_period(rules, pub.published_at, pub.notice_until),
        lambda: pub.bid_security is not None and check_bid_security(rules, pub.bid_security, pub.security_base),
        lambda: pub.performance_security is not None and (pub.contract_amount or rules.facts.budget) is not None
        and check_performance_security(rules, pub.performance_security, pub.contract_amount or rules.facts.budget),
        lambda: check_price_limits(rules, pub.max_price, pub.min_price, pub.max_price_formula),
        lambda: pub.invited is not None and check_invitations(rules, pub.invited),
        lambda: pub.floor_price is not None and pub.appraisal_value is not None and check_floor_price(
            rules, pub.floor_price, pub.appraisal_value, first=pub.first_listing, approval=pub.floor_approval),
        lambda: pub.price_weight is not None and check_price_weight(rules, pub.price_weight),
    ]
    found = []
    for check in checks:
        try:
            check()
        except RuleViolation as violation:
            found.append(violation)
    return found


def check_publication(rules: ProjectRules, pub: Publication) -> None:
    """Raise the first :class:`RuleViolation` of :func:`publication_violations`; its
    ``details.others`` lists the rule ids of any further ones."""
    found = publication_violations(rules, pub)
    if found:
        first = found[0]
        if len(found) > 1:
            first.details["others"] = [v.rule for v in found[1:]]
        raise first


# -- clarification (A3) -----------------------------------------------------------------

def earliest_deadline_after_clarification(rules: ProjectRules, issued_at: datetime, bid_deadline: datetime,
                                          *, prequalification: bool = False) -> datetime:
    """The earliest bid deadline a clarification issued at ``issued_at`` allows: the
    current one when it is far enough, else the first allowed day at the same time of day."""
    step = "prequalification_clarification" if prequalification else "clarification"
    if not rules.has_step(step):
        return bid_deadline
    limit = rules.limits_for(step, issued_at)
    if limit.allows(bid_deadline):
        return bid_deadline
    wall = bid_deadline.astimezone(SHANGHAI).time()
    if wall == time(0):  # 00:00 counts as 24:00 of the day before: keep "24:00 of the day"
        return end_of_day(limit.last_day)
    return datetime.combine(limit.last_day, wall, SHANGHAI).astimezone(timezone.utc)


def check_clarification(rules: ProjectRules, issued_at: datetime, bid_deadline: datetime, *,
                        affects_preparation: bool = True, prequalification: bool = False,
                        new_bid_deadline: datetime | None = None) -> datetime:
    """A3: a clarification that affects bid preparation comes at least 15 days before
    the deadline, or the deadline moves. Returns the deadline in force afterwards
    (``new_bid_deadline`` when given); raises with ``details.earliest_bid_deadline`` when
    that deadline is still too early."""
    proposed = new_bid_deadline or bid_deadline
    step = "prequalification_clarification" if prequalification else "clarification"
    if not affects_preparation or not rules.has_step(step):
        return proposed
    limit = rules.limits_for(step, issued_at)
    if limit.allows(proposed):
        return proposed
    earliest = earliest_deadline_after_clarification(rules, issued_at, proposed,
                                                     prequalification=prequalification)
    rule = rules.require("A3")
    raise _violation(rule, f"澄清或修改影响投标文件编制，投标截止时间须顺延至不早于{_when(earliest)}",
                     f"the clarification affects bid preparation: the bid deadline must move to {_when(earliest)} or later",
                     issued_at=issued_at, bid_deadline=proposed, earliest_bid_deadline=earliest, limit=limit)


# -- opening, committee, evaluation -----------------------------------------------------

@dataclass(frozen=True)
class OpeningDecision:
    """C2: whether the opening may proceed, and what happens when it may not."""

    may_open: bool
    outcome: str | None        # "retender" (construction) / "failed" (GP), None if it opens
    min_bids: int
    rule: str
    citation: str


def opening_decision(rules: ProjectRules, bid_count: int) -> OpeningDecision:
    """C2: fewer than 3 bids → no opening; construction re-tenders, GP fails."""
    rule = rules.rule("C2")
    minimum = (rule.integer("min_bids") or 0) if rule.applies else 0
    may_open = bid_count >= minimum
    return OpeningDecision(may_open, None if may_open else rule.get("outcome"), minimum, rule.id, rule.citation)


def check_opening_minimum(rules: ProjectRules, bid_count: int) -> OpeningDecision:
    """C2 as a check: raises with ``details.outcome`` when there are too few bids."""
    decision = opening_decision(rules, bid_count)
    if not decision.may_open:
        raise _violation(rules.rule("C2"), f"投标人少于{decision.min_bids}个，不得开标（{decision.outcome}）",
                         f"fewer than {decision.min_bids} bids: no opening ({decision.outcome})",
                         bid_count=bid_count, min_bids=decision.min_bids, outcome=decision.outcome)
    return decision


def check_committee(rules: ProjectRules, members: int, experts: int) -> None:
    """D1: committee size odd and at least the minimum (7 for GP ≥ ¥10M), experts ≥ 2/3."""
    if not rules.applies("D1"):
        return
    rule = rules.rule("D1")
    minimum = rule.integer("min_members") or 0
    share = rule.fraction("min_expert_fraction") or Fraction(0)
    details = {"members": members, "experts": experts, "min_members": minimum, "min_expert_fraction": share}
    if members < minimum:
        raise _violation(rule, f"评标委员会成员{members}人，少于{minimum}人", f"{members} members; at least {minimum} required", **details)
    if rule.flag("odd_members") and members % 2 == 0:
        raise _violation(rule, f"评标委员会成员人数须为单数（{members}人）", f"the committee must have an odd number of members ({members})", **details)
    if Fraction(experts, members) < share:
        raise _violation(rule, f"专家{experts}人，少于成员总数的{share}", f"{experts} experts is less than {share} of {members}", **details)


def check_price_weight(rules: ProjectRules, weight: Decimal) -> None:
    """E7: GP price weight within the bounds (goods ≥ 30%, services ≥ 10%; consultation
    30–60% / 10–30%). ``weight`` is a share (``Decimal("0.30")``)."""
    if not rules.applies("E7"):
        return
    rule = rules.rule("E7")
    low, high = rule.decimal("min_price_weight_ratio"), rule.decimal("max_price_weight_ratio")
    weight = _money(weight, "weight")
    if (low is not None and weight < low) or (high is not None and weight > high):
        raise _violation(rule, f"价格分权重{weight:%}不在{low:%}至{high:%}之间",
                         f"price weight {weight:%} is outside {low:%}–{high:%}",
                         weight=weight, min=low, max=high)


def check_candidates(rules: ProjectRules, candidates: int, members: int, signed: int,
                     written_dissents: int = 0) -> None:
    """E3: at most 3 ranked candidates; every member signs or dissents in writing."""
    if not rules.applies("E3"):
        return
    rule = rules.rule("E3")
    maximum = rule.integer("max_candidates")
    if maximum is not None and candidates > maximum:
        raise _violation(rule, f"中标候选人不得超过{maximum}个（{candidates}个）",
                         f"at most {maximum} candidates ({candidates} given)", candidates=candidates, maximum=maximum)
    if rule.flag("all_members_sign") and signed + written_dissents < members:
        raise _violation(rule, "评标报告须由全体成员签字，或书面说明不同意见",
                         "every member signs the report or files a written dissent",
                         members=members, signed=signed, written_dissents=written_dissents)


def check_bids_within_budget(rules: ProjectRules, prices: Iterable[Decimal], budget: Decimal | None = None) -> None:
    """F5: when every bid is above the budget the GP procurement fails (废标)."""
    if not rules.applies("F5") or not rules.rule("F5").flag("reject_above_budget"):
        return
    budget = budget if budget is not None else rules.facts.budget
    prices = [_money(p, "price") for p in prices]
    if budget is not None and prices and all(p > budget for p in prices):
        rule = rules.rule("F5")
        raise _violation(rule, "投标人的报价均超过采购预算，应予废标", "every bid exceeds the budget: the procurement fails",
                         budget=budget, lowest=min(prices), outcome=rule.get("outcome"))


def check_price_quotes(rules: ProjectRules, quotes: int) -> None:
    """F4: in an inquiry each supplier quotes once and may not change it."""
    if not rules.applies("F4"):
        return
    rule = rules.rule("F4")
    maximum = rule.integer("max_price_quotes")
    if maximum is not None and quotes > maximum:
        raise _violation(rule, "询价中供应商只能一次报出不得更改的价格", "an inquiry allows one unchangeable price",
                         quotes=quotes, maximum=maximum)


# -- after evaluation -------------------------------------------------------------------

def check_publicity(rules: ProjectRules, report_at: datetime, publicity_start: datetime,
                    publicity_end: datetime) -> None:
    """E4: candidate publicity starts within 3 days of the report and lasts ≥ 3 days."""
    check_step(rules, "publicity_start", report_at, publicity_start)
    check_step(rules, "publicity", publicity_start, publicity_end)


def check_award_time(rules: ProjectRules, report_at: datetime, awarded_at: datetime) -> Deadline | None:
    """E6 (GP条例 43): the purchaser decides the award within 5 working days of the report."""
    return check_step(rules, "award", report_at, awarded_at)


def check_contract_time(rules: ProjectRules, awarded_at: datetime, contracted_at: datetime) -> Deadline | None:
    """E6: the contract within 30 days of the award notice."""
    return check_step(rules, "contract", awarded_at, contracted_at)


def check_report_time(rules: ProjectRules, awarded_at: datetime, filed_at: datetime) -> Deadline | None:
    """E6: the written report to the supervisor within 15 days of the award."""
    return check_step(rules, "report", awarded_at, filed_at)


def check_bid_change(rules: ProjectRules, at: datetime, bid_deadline: datetime) -> None:
    """B2: a bid is supplemented, modified or withdrawn only before the deadline."""
    if rules.applies("B2") and at >= bid_deadline:
        rule = rules.rule("B2")
        raise _violation(rule, "投标截止时间后不得补充、修改或撤回投标文件",
                         "bids may not change after the bid deadline", at=at, bid_deadline=bid_deadline)


def check_withdrawal_refund(rules: ProjectRules, notice_at: datetime, refunded_at: datetime) -> Deadline | None:
    """B2: the security of a withdrawn bid is refunded within 5 days (GP: 5 working days)."""
    return check_step(rules, "withdrawal_refund", notice_at, refunded_at)


def check_security_refund(rules: ProjectRules, *, winner: bool, start: datetime, refunded_at: datetime) -> Deadline | None:
    """B8: construction refunds within 5 days of the contract (with interest); GP losers
    within 5 working days of the award notice, the winner within 5 working days of the
    contract. ``start`` is that event (the period's ``from``)."""
    return check_step(rules, "winner_refund" if winner else "loser_refund", start, refunded_at)


def check_complaint(rules: ProjectRules, step: str, start: datetime, at: datetime) -> Deadline | None:
    """E8: ``step`` is one of question, question_reply, complaint, complaint_acceptance,
    complaint_decision (those that apply to the domain)."""
    return check_step(rules, step, start, at)


def check_suspension(rules: ProjectRules, suspended_at: datetime, until: datetime) -> Deadline | None:
    """H3: a GP suspension lasts at most 30 days (``until``: the resumption, or now)."""
    return check_step(rules, "suspension", suspended_at, until)


def check_down_payment(rules: ProjectRules, down_payment: Decimal, price: Decimal, *, guarantee: bool) -> None:
    """G5: paying in instalments needs ≥ 30% down and a guarantee for the rest."""
    if not rules.applies("G5"):
        return
    rule = rules.rule("G5")
    share = rule.decimal("min_down_payment_ratio")
    if share is not None and _money(down_payment, "down_payment") < _money(price, "price") * share:
        raise _violation(rule, f"首期付款不得低于总价款的{share:%}", f"the down payment must be at least {share:%} of the price",
                         down_payment=down_payment, price=price, min_ratio=share)
    if rule.flag("balance_needs_guarantee") and not guarantee and down_payment < price:
        raise _violation(rule, "分期付款须对其余价款提供合法有效担保", "the balance of an instalment payment needs a guarantee")
