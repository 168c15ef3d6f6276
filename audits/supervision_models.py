"""ORM models of supervision (监督): tracked complaints and objections, and the alerts
already raised for red cards.

Cards themselves are never stored: they are derived from the data and ``now`` on every
read (``audits.supervision_rules``). What is stored here are facts: a complaint was filed,
accepted, answered or decided at a server time; an alert was raised
(so the periodic scan raises each red card once).

Foreign keys name other packages' tables by name only, so this module imports nothing
from ``trading`` or ``bidding`` (dependencies point up).
"""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.db import UTCDateTime, db

# Complaint.status values.
FILED = "filed"          # received (收到); the handler's limits run
ACCEPTED = "accepted"    # 受理 (complaints with an acceptance step)
ANSWERED = "answered"    # a question or objection answered (答复)
DECIDED = "decided"      # a complaint decided (处理决定), whatever the outcome
OPEN_STATUSES = (FILED, ACCEPTED)
CLOSED_STATUSES = (ANSWERED, DECIDED)

# Complaint.outcome values of a decision.
UPHELD = "upheld"        # 投诉成立
DISMISSED = "dismissed"  # 驳回
REJECTED = "rejected"    # 不予受理 (out of time, not a party, ...)
OUTCOMES = (UPHELD, DISMISSED, REJECTED)


class Complaint(db.Model):
    """A complaint (投诉), a GP question (质疑) or an objection (异议, RULES A4/E4) and its
    handling, each step with the server time it happened (RULES E8).

    ``kind`` is a key of ``audits.supervision_rules.COMPLAINT_KINDS``; the project's
    pinned rules give its limits. ``pause_at`` is the instant of the suspension that pauses
    the process for it (an objection, 条例 22 and 54), ``pause_created`` whether this item
    started that suspension, ``resumed_at`` when the process resumed because of it.
    """

    __tablename__ = "complaints"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    lot_code: Mapped[str | None] = mapped_column(sa.String(128))
    kind: Mapped[str] = mapped_column(sa.String(32), index=True)
    rule: Mapped[str] = mapped_column(sa.String(8))  # the rule of its handling step (E8, A4, E4)
    status: Mapped[str] = mapped_column(sa.String(16), default=FILED, index=True)
    text: Mapped[str] = mapped_column(sa.Text)
    filed_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    bidder_org_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organisations.id"), index=True)
    known_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    filed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    filed_log_index: Mapped[int] = mapped_column(sa.BigInteger)

    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    accepted_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    handled_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    answer: Mapped[str | None] = mapped_column(sa.Text)
    outcome: Mapped[str | None] = mapped_column(sa.String(16))

    pause_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    pause_created: Mapped[bool] = mapped_column(default=False)
    resumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    pause_note: Mapped[str | None] = mapped_column(sa.String(200))


class CardAlert(db.Model):
    """A card the periodic scan has raised (logged as ``supervision.card``), once per key
    and severity. Not the card's status: the card is derived; this is the notification."""

    __tablename__ = "supervision_card_alerts"
    __table_args__ = (sa.UniqueConstraint("key", "severity", name="uq_supervision_card_alerts_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(300))
    severity: Mapped[str] = mapped_column(sa.String(8))
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    rule: Mapped[str] = mapped_column(sa.String(8))
    step: Mapped[str] = mapped_column(sa.String(64))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime())
    log_index: Mapped[int] = mapped_column(sa.BigInteger)


__all__ = ["Complaint", "CardAlert", "FILED", "ACCEPTED", "ANSWERED", "DECIDED",
           "OPEN_STATUSES", "CLOSED_STATUSES", "OUTCOMES", "UPHELD", "DISMISSED", "REJECTED"]
