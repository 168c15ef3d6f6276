"""ORM models of parties, accounts and trading projects.

Timed statuses are never stored: a project keeps its schedule and the facts that happened
(milestones); ``trading.lifecycle`` derives the status from them and ``now``.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import Money, UTCDateTime, db


class Organisation(db.Model):
    """A company or public body: tenderee, agent, bidder, supervisory body, exchange centre."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The public identifier (统一社会信用代码 or similar); a bidder's id in the sealed-bid protocol.
    code: Mapped[str] = mapped_column(sa.String(128), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[str] = mapped_column(sa.String(32))
    region: Mapped[str | None] = mapped_column(sa.String(32))
    legal_representative: Mapped[str | None] = mapped_column(sa.String(100))
    # A controlling organisation, for related-bidder checks (RULES B6).
    controlled_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organisations.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class User(db.Model):
    """An account. Roles are a comma-free list in ``roles`` (stored as JSON)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(100))
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    roles: Mapped[list[str]] = mapped_column(sa.JSON)
    org_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organisations.id"))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    org: Mapped[Organisation | None] = relationship(lazy="joined")


class SigningKey(db.Model):
    """A user's registered Ed25519 public key (PROTOCOL §2)."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    public_key: Mapped[bytes] = mapped_column(sa.LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RevokedToken(db.Model):
    """Access tokens revoked by logout, kept until they would have expired anyway."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Project(db.Model):
    """A trading project (交易项目): a tender, a procurement or an asset transaction."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(300))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    domain: Mapped[str] = mapped_column(sa.String(32), index=True)
    procedure: Mapped[str] = mapped_column(sa.String(32), index=True)
    category: Mapped[str] = mapped_column(sa.String(32))
    region: Mapped[str | None] = mapped_column(sa.String(32), index=True)
    tenderee_org_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id"))
    agent_org_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organisations.id"))
    supervisor_org_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organisations.id"))
    created_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    currency: Mapped[str] = mapped_column(sa.String(3), default="CNY")

    budget: Mapped[Decimal | None] = mapped_column(Money())
    estimate: Mapped[Decimal | None] = mapped_column(Money())
    max_price: Mapped[Decimal | None] = mapped_column(Money())
    appraisal_value: Mapped[Decimal | None] = mapped_column(Money())
    floor_price: Mapped[Decimal | None] = mapped_column(Money())
    bid_security: Mapped[Decimal | None] = mapped_column(Money())
    performance_security: Mapped[Decimal | None] = mapped_column(Money())
    evaluation_method: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)

    # The schedule (all aware UTC). bid_deadline is also the opening time (RULES C1).
    documents_from: Mapped[datetime | None] = mapped_column(UTCDateTime())
    documents_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    clarification_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime())
    objection_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime())
    bid_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    evaluation_due: Mapped[datetime | None] = mapped_column(UTCDateTime())
    publicity_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    publicity_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    award_due: Mapped[datetime | None] = mapped_column(UTCDateTime())
    contract_due: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # Facts that happened (milestones); the status is derived from these and the schedule.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    milestones: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)

    # The rulebook in force, pinned at publication.
    rulebook_version: Mapped[str | None] = mapped_column(sa.String(64))
    rules: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)

    # Optimistic concurrency for two decisions at once: exactly one wins.
    version: Mapped[int] = mapped_column(default=1)
    __mapper_args__ = {"version_id_col": version}

    lots: Mapped[list["Lot"]] = relationship(back_populates="project", order_by="Lot.position",
                                             cascade="all, delete-orphan")


class Lot(db.Model):
    """A lot (标段/包): bids are per lot."""

    __tablename__ = "lots"
    __table_args__ = (sa.UniqueConstraint("project_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    code: Mapped[str] = mapped_column(sa.String(128))  # the protocol's `lot` identifier
    position: Mapped[int] = mapped_column(default=0)
    title: Mapped[str] = mapped_column(sa.String(300))
    budget: Mapped[Decimal | None] = mapped_column(Money())
    max_price: Mapped[Decimal | None] = mapped_column(Money())
    bid_security: Mapped[Decimal | None] = mapped_column(Money())

    project: Mapped[Project] = relationship(back_populates="lots")


class Document(db.Model):
    """A tender document, stored content-addressed in the blob store."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(255))
    sha256: Mapped[str] = mapped_column(sa.String(64))
    size: Mapped[int] = mapped_column(sa.BigInteger)
    content_type: Mapped[str] = mapped_column(sa.String(100))
    uploaded_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Clarification(db.Model):
    """A clarification or amendment (澄清/修改) of published documents (RULES A3)."""

    __tablename__ = "clarifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    text: Mapped[str] = mapped_column(sa.Text)
    affects_bids: Mapped[bool] = mapped_column(default=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    issued_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    old_bid_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime())
    new_bid_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Notice(db.Model):
    """A public notice (公告): tender notice, amendment, result, etc."""

    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    title: Mapped[str] = mapped_column(sa.String(300))
    body: Mapped[str] = mapped_column(sa.Text)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
