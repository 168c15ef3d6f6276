"""ORM models of evaluation and award (评标、定标): the report and its scores, findings,
explanations, candidates and signatures; candidate publicity; award and
result notices; the contract, the report to the supervisor and the refund of securities;
the GP negotiation rounds, final offers and inquiry quotes; and the tracked steps with
their legal limits, which supervision turns into cards.

Identifiers follow the protocol: a bid is named by its bidder's organisation code within a
lot (one bid per bidder per lot), ``lot_code`` is a :class:`trading.models.Lot` code.
Committee members are named by their expert id (``experts.id``) and seat id
(``committee_members.id``) without foreign keys: the pool's tables belong to the experts
module and may be absent from a deployment that seats committees otherwise.

Every limit is stored as an instant (``due_at``) computed from the pinned rules when the
step's start event happens, so a query finds what is due or late without the rulebook.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Money, UTCDateTime, db

# EvaluationReport.status values.
SCORING = "scoring"        # the committee reviews and scores
SIGNING = "signing"        # the result is computed; members sign or dissent
SUBMITTED = "submitted"    # every member signed or dissented: the report is in (E3)
FAILED = "failed"          # 流标 / 废标: no bid left (E2, F5, GP法 36)

# Candidate.status values (E5 fallbacks besides "candidate").
CANDIDATE = "candidate"
FALLBACK_REASONS = ("declined", "failed_to_perform", "breach")

# AwardNotice.kind values.
AWARD = "award"            # 中标/成交通知书, to the winner
RESULT = "result"          # 中标结果通知, to every other bidder


class EvaluationReport(db.Model):
    """The evaluation of one lot (评标报告): the bids as opened, the computed result, the
    candidates, and where the committee stands."""

    __tablename__ = "eval_reports"
    __table_args__ = (sa.UniqueConstraint("project_id", "lot_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    lot_code: Mapped[str] = mapped_column(sa.String(128))
    method: Mapped[str] = mapped_column(sa.String(32))
    status: Mapped[str] = mapped_column(sa.String(16), default=SCORING, index=True)
    # The bids under evaluation: [{"bid", "bidder", "price", "received_at", "declared"}].
    bids: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON)
    # Where the prices came from: the opening record, or a round of final offers.
    price_source: Mapped[str] = mapped_column(sa.String(32), default="opening")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_by: Mapped[str] = mapped_column(sa.String(64))
    computed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    result: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    result_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failure: Mapped[list[dict[str, Any]] | None] = mapped_column(sa.JSON)
    log_index: Mapped[int] = mapped_column(sa.BigInteger)


class Score(db.Model):
    """One member's score of one criterion of one bid. ``void``: the member was replaced
    (RULES D5) and its conclusions do not count; kept for the record."""

    __tablename__ = "eval_scores"
    __table_args__ = (sa.UniqueConstraint("report_id", "expert_id", "bid", "criterion"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(sa.ForeignKey("eval_reports.id"), index=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    lot_code: Mapped[str] = mapped_column(sa.String(128))
    member_id: Mapped[int] = mapped_column(sa.Integer)        # committee_members.id
    expert_id: Mapped[str] = mapped_column(sa.String(128))
    bid: Mapped[str] = mapped_column(sa.String(128))          # the bidder's code
    criterion: Mapped[str] = mapped_column(sa.String(64))
    # Scores have the published precision of two places, like money: the same exact type.
    value: Mapped[Decimal] = mapped_column(Money())
    void: Mapped[bool] = mapped_column(default=False)
    void_reason: Mapped[str | None] = mapped_column(sa.String(200))
    scored_at: Mapped[datetime] = mapped_column(UTCDateTime())
    log_index: Mapped[int] = mapped_column(sa.BigInteger)


class ComplianceFinding(db.Model):
    """A committee finding that rejects a bid in the compliance review (否决投标): a
    qualification or a substantive response the bid fails, with its rule."""

    __tablename__ = "eval_findings"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(sa.ForeignKey("eval_reports.id"), index=True)
    bid: Mapped[str] = mapped_column(sa.String(128))
    code: Mapped[str] = mapped_column(sa.String(64))
    rule: Mapped[str] = mapped_column(sa.String(16))
    detail: Mapped[str] = mapped_column(sa.Text, default="")
    expert_id: Mapped[str] = mapped_column(sa.String(128))
    found_at: Mapped[datetime] = mapped_column(UTCDateTime())
    log_index: Mapped[int] = mapped_column(sa.BigInteger)


class PriceExplanation(db.Model):
    """A bidder's written explanation of an abnormally low price (E2: below cost) and the
    committee's decision on it (``accepted`` None until decided)."""

    __tablename__ = "eval_explanations"
    __table_args__ = (sa.UniqueConstraint("report_id", "bid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(sa.ForeignKey("eval_reports.id"), index=True)
    bid: Mapped[str] = mapped_column(sa.String(128))
    text: Mapped[str | None] = mapped_column(sa.Text)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    submitted_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    accepted: Mapped[bool | None] = mapped_column()
    decided_by: Mapped[str | None] = mapped_column(sa.String(128))  # expert id
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    log_index: Mapped[int | None] = mapped_column(sa.BigInteger)


class ReportSignature(db.Model):
    """A member's signature of the report, or its written dissent (E3)."""

    __tablename__ = "eval_signatures"
    __table_args__ = (sa.UniqueConstraint("report_id", "expert_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(sa.ForeignKey("eval_reports.id"), index=True)
    member_id: Mapped[int] = mapped_column(sa.Integer)
    expert_id: Mapped[str] = mapped_column(sa.String(128))
    dissent: Mapped[str | None] = mapped_column(sa.Text)
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    log_index: Mapped[int] = mapped_column(sa.BigInteger)


class Candidate(db.Model):
    """A ranked candidate of a lot (中标候选人, at most three: E3) and, after an E5
    fallback, why it no longer stands."""

    __tablename__ = "award_candidates"
    __table_args__ = (sa.UniqueConstraint("report_id", "bidder_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(sa.ForeignKey("eval_reports.id"), index=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    lot_code: Mapped[str] = mapped_column(sa.String(128))
    bidder_code: Mapped[str] = mapped_column(sa.String(128))
    rank: Mapped[int] = mapped_column(sa.SmallInteger)
    price: Mapped[Decimal] = mapped_column(Money())
    total: Mapped[Decimal | None] = mapped_column(Money())
    status: Mapped[str] = mapped_column(sa.String(24), default=CANDIDATE)
    status_note: Mapped[str | None] = mapped_column(sa.Text)
    status_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Publicity(db.Model):
    """The candidate publicity of a project (中标候选人公示, E4) as started. Objections to
    the candidates are supervision's complaints (``audits.supervision_models.Complaint``,
    kind ``candidate_objection``): they pause the project through the lifecycle, and a
    resumption moves ``projects.publicity_end``, which stays the end in force."""

    __tablename__ = "award_publicities"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), unique=True)
    report_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    scheduled_end: Mapped[datetime] = mapped_column(UTCDateTime())
    late_start: Mapped[bool] = mapped_column(default=False)
    started_by: Mapped[str] = mapped_column(sa.String(64))
    log_index: Mapped[int] = mapped_column(sa.BigInteger)


class AwardNotice(db.Model):
    """The award notice to the winner and a result notice to every other bidder of a lot,
    all issued at the same instant (E6). One award notice per lot, even under a race."""

    __tablename__ = "award_notices"
    __table_args__ = (
        sa.UniqueConstraint("project_id", "lot_code", "bidder_code"),
        sa.Index("uq_award_notices_one_award", "project_id", "lot_code", unique=True,
                 sqlite_where=sa.text("kind = 'award'"), postgresql_where=sa.text("kind = 'award'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    lot_code: Mapped[str] = mapped_column(sa.String(128))
    kind: Mapped[str] = mapped_column(sa.String(8))
    bidder_code: Mapped[str] = mapped_column(sa.String(128))
    winner_code: Mapped[str] = mapped_column(sa.String(128))
    price: Mapped[Decimal] = mapped_column(Money())           # the awarded price
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    issued_by: Mapped[str] = mapped_column(sa.String(64))
    fallback: Mapped[bool] = mapped_column(default=False)     # awarded past rank 1 (E5)
    log_index: Mapped[int] = mapped_column(sa.BigInteger)


class Contract(db.Model):
    """The contract of a lot (合同): signed within the rule's days of the award, its amount
    the awarded price and its terms the bid's (E6)."""

    __tablename__ = "award_contracts"
    __table_args__ = (sa.UniqueConstraint("project_id", "lot_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    lot_code: Mapped[str] = mapped_column(sa.String(128))
    bidder_code: Mapped[str] = mapped_column(sa.String(128))
    amount: Mapped[Decimal] = mapped_column(Money())
    terms: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    awarded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    late: Mapped[bool] = mapped_column(default=False)
    recorded_by: Mapped[str] = mapped_column(sa.String(64))
    log_index: Mapped[int] = mapped_column(sa.BigInteger)


class SupervisorReport(db.Model):
    """The written report to the supervising body after the award (E6, 法 47)."""

    __tablename__ = "award_supervisor_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), unique=True)
    text: Mapped[str] = mapped_column(sa.Text)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    filed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    late: Mapped[bool] = mapped_column(default=False)
    filed_by: Mapped[str] = mapped_column(sa.String(64))
    log_index: Mapped[int] = mapped_column(sa.BigInteger)


class SecurityRefund(db.Model):
    """The refund owed on one bid security (B8): due from the award notice or the
    contract, ``refunded_at`` once paid back."""

    __tablename__ = "award_security_refunds"

    id: Mapped[int] = mapped_column(primary_key=True)
    security_id: Mapped[int] = mapped_column(sa.ForeignKey("bid_securities.id"), unique=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    lot_code: Mapped[str] = mapped_column(sa.String(128))
    bidder_code: Mapped[str] = mapped_column(sa.String(128))
    winner: Mapped[bool] = mapped_column(default=False)
    amount: Mapped[Decimal] = mapped_column(Money())
    start_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    with_interest: Mapped[bool] = mapped_column(default=False)
    interest: Mapped[Decimal | None] = mapped_column(Money())
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    late: Mapped[bool | None] = mapped_column()
    refunded_by: Mapped[str | None] = mapped_column(sa.String(64))
    log_index: Mapped[int | None] = mapped_column(sa.BigInteger)


class TrackedStep(db.Model):
    """One step after the evaluation with its legal limit (for the supervision cards):
    ``due_at`` computed from the pinned rules when ``started_at`` happened; ``done_at``
    once the step is taken, ``late`` if after the limit. ``sense`` is the rule's reading:
    ``within`` (done by ``due_at``) or ``lasts`` (not ended before ``due_at``)."""

    __tablename__ = "award_steps"
    __table_args__ = (sa.UniqueConstraint("project_id", "lot_code", "step", "subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    lot_code: Mapped[str] = mapped_column(sa.String(128), default="")   # "" for the project
    step: Mapped[str] = mapped_column(sa.String(40))
    subject: Mapped[str] = mapped_column(sa.String(64), default="")    # e.g. "security:12"
    rule: Mapped[str] = mapped_column(sa.String(8))
    citation: Mapped[str] = mapped_column(sa.String(300))
    sense: Mapped[str] = mapped_column(sa.String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    provisional: Mapped[bool] = mapped_column(default=False)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    late: Mapped[bool | None] = mapped_column()


# --------------------------------------------------------------------------- GP variants


class NegotiationRound(db.Model):
    """A round of a competitive negotiation or consultation (竞争性谈判/磋商, F2, F3); the
    ``final`` round asks every remaining supplier for its final offer (最后报价)."""

    __tablename__ = "gp_rounds"
    __table_args__ = (sa.UniqueConstraint("project_id", "lot_code", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    lot_code: Mapped[str] = mapped_column(sa.String(128))
    number: Mapped[int] = mapped_column(sa.SmallInteger)
    final: Mapped[bool] = mapped_column(default=False)
    suppliers: Mapped[list[str]] = mapped_column(sa.JSON)    # bidder codes still in
    changes_requirements: Mapped[bool] = mapped_column(default=False)
    note: Mapped[str] = mapped_column(sa.Text, default="")
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    response_due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    opened_by: Mapped[str] = mapped_column(sa.String(64))
    log_index: Mapped[int] = mapped_column(sa.BigInteger)


class FinalOffer(db.Model):
    """A supplier's final offer in the final round: one, unchangeable once made."""

    __tablename__ = "gp_final_offers"
    __table_args__ = (sa.UniqueConstraint("round_id", "bidder_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(sa.ForeignKey("gp_rounds.id"), index=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    lot_code: Mapped[str] = mapped_column(sa.String(128))
    bidder_code: Mapped[str] = mapped_column(sa.String(128))
    price: Mapped[Decimal] = mapped_column(Money())
    declared: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    submitted_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    log_index: Mapped[int] = mapped_column(sa.BigInteger)


class Quote(db.Model):
    """An inquiry's one price per supplier (询价, F4), taken from its opened sealed bid;
    the unique key makes a second price impossible."""

    __tablename__ = "gp_quotes"
    __table_args__ = (sa.UniqueConstraint("project_id", "lot_code", "bidder_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    lot_code: Mapped[str] = mapped_column(sa.String(128))
    bidder_code: Mapped[str] = mapped_column(sa.String(128))
    price: Mapped[Decimal] = mapped_column(Money())
    quoted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    receipts: Mapped[int] = mapped_column(sa.SmallInteger, default=1)  # bid forms submitted


__all__ = [
    "EvaluationReport", "Score", "ComplianceFinding", "PriceExplanation", "ReportSignature",
    "Candidate", "Publicity", "AwardNotice", "Contract",
    "SupervisorReport", "SecurityRefund", "TrackedStep", "NegotiationRound", "FinalOffer",
    "Quote", "SCORING", "SIGNING", "SUBMITTED", "FAILED", "CANDIDATE", "FALLBACK_REASONS",
    "AWARD", "RESULT",
]
