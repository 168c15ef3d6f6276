"""ORM models of sealed bidding (PROTOCOL §2, §5, §6): the opening policy, pending uploads,
stored submissions and their receipts, withdrawals, used nonces, bid securities, the
closing, collusion indicators, and the opening side's releases, sessions, results and
objections.

Identifiers follow the protocol: ``tender`` is ``str(project.id)``, ``lot`` a
:class:`trading.models.Lot` code, ``bidder`` an :class:`trading.models.Organisation` code,
``file`` the sealed file's name. Codes are copied beside the foreign keys so the protocol
values never need a join to be read back exactly.

What is secret before the deadline (RULES A6, B4) lives only in these tables and in hidden
log details: no endpoint may read them for anyone but the submitting bidder until the
:class:`Closing` row of the tender exists.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Money, UTCDateTime, db

# Submission.state values. A receipt is live until a later receipt of the same file
# supersedes it or a withdrawal names it; only live files are listed at closing.
LIVE = "live"
SUPERSEDED = "superseded"
WITHDRAWN = "withdrawn"


class OpeningPolicy(db.Model):
    """A tender's opening policy (PROTOCOL §2), stored as the exact canonical bytes served.

    One row per project; replaced while no bid is stored, frozen afterwards.
    """

    __tablename__ = "bid_policies"

    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), primary_key=True,
                                            autoincrement=False)
    raw: Mapped[bytes] = mapped_column(sa.LargeBinary)
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    threshold: Mapped[int] = mapped_column(sa.SmallInteger)
    n: Mapped[int] = mapped_column(sa.SmallInteger)
    release_window_s: Mapped[int] = mapped_column(sa.Integer)
    # bidder (1 of 1, role bidder) | joint (2 of 2, bidder + agent) | officials (k of n)
    mode: Mapped[str] = mapped_column(sa.String(16))
    set_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime())
    log_index: Mapped[int] = mapped_column(sa.BigInteger)


class PendingUpload(db.Model):
    """A manifest accepted for upload whose ``.ebid`` bytes have not arrived yet.

    Not a bid and not logged as one: it becomes a :class:`Submission` only when the upload
    passes every check before the deadline. Rows past ``expires_at`` are dead.
    """

    __tablename__ = "bid_pending_uploads"
    __table_args__ = (sa.UniqueConstraint("project_id", "manifest_sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    manifest_sha256: Mapped[str] = mapped_column(sa.String(64))
    lot_code: Mapped[str] = mapped_column(sa.String(128))
    bidder_org_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    file: Mapped[str] = mapped_column(sa.String(128))
    # The signed manifest exactly as posted: {"manifest": ..., "signature", "kid"}.
    envelope: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Submission(db.Model):
    """One stored sealed file with its signed manifest and receipt (PROTOCOL §5).

    The receipt id is ``manifest_sha256``. The ``.ebid`` bytes are in the blob store under
    ``ciphertext_sha256``; the header bytes are kept here too so shares and headers can be
    served without reading the blob.
    """

    __tablename__ = "bid_submissions"
    __table_args__ = (
        # At most one live receipt per file name of a bid, even when two uploads race on
        # PostgreSQL (submissions share the tender lock with each other).
        sa.Index("uq_bid_submissions_live_file", "project_id", "lot_code", "bidder_org_id", "file",
                 unique=True, sqlite_where=sa.text("state = 'live'"),
                 postgresql_where=sa.text("state = 'live'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    lot_id: Mapped[int] = mapped_column(sa.ForeignKey("lots.id"), index=True)
    lot_code: Mapped[str] = mapped_column(sa.String(128))
    bidder_org_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id"), index=True)
    bidder_code: Mapped[str] = mapped_column(sa.String(128))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    file: Mapped[str] = mapped_column(sa.String(128))

    manifest_sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    manifest: Mapped[dict[str, Any]] = mapped_column(sa.JSON)        # the payload as signed
    manifest_signature: Mapped[str] = mapped_column(sa.String(88))   # base64
    manifest_kid: Mapped[str] = mapped_column(sa.String(16))
    header: Mapped[bytes] = mapped_column(sa.LargeBinary)            # exact header bytes
    header_sha256: Mapped[str] = mapped_column(sa.String(64))
    policy_sha256: Mapped[str] = mapped_column(sa.String(64))
    ciphertext_sha256: Mapped[str] = mapped_column(sa.String(64), index=True)  # the blob id
    size: Mapped[int] = mapped_column(sa.BigInteger)
    commitment: Mapped[bytes] = mapped_column(sa.LargeBinary(32))
    nonce: Mapped[str] = mapped_column(sa.String(24))
    supersedes: Mapped[str | None] = mapped_column(sa.String(64))

    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    log_index: Mapped[int] = mapped_column(sa.BigInteger)
    detail_salt: Mapped[bytes] = mapped_column(sa.LargeBinary(32))
    receipt: Mapped[dict[str, Any]] = mapped_column(sa.JSON)         # the §5 receipt payload
    client_address: Mapped[str | None] = mapped_column(sa.String(64))  # a collusion indicator (B6)

    state: Mapped[str] = mapped_column(sa.String(16), default=LIVE, index=True)
    superseded_by: Mapped[str | None] = mapped_column(sa.String(64))
    withdrawal_id: Mapped[int | None] = mapped_column(sa.ForeignKey("bid_withdrawals.id"))


class Withdrawal(db.Model):
    """A signed withdrawal (PROTOCOL §5, domain ``ebid/v1 withdraw``) of live receipts."""

    __tablename__ = "bid_withdrawals"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    lot_code: Mapped[str] = mapped_column(sa.String(128))
    bidder_org_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    withdrawal_sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    withdrawal: Mapped[dict[str, Any]] = mapped_column(sa.JSON)      # the payload as signed
    signature: Mapped[str] = mapped_column(sa.String(88))
    kid: Mapped[str] = mapped_column(sa.String(16))
    receipts: Mapped[list[str]] = mapped_column(sa.JSON)
    withdrawn_at: Mapped[datetime] = mapped_column(UTCDateTime())
    log_index: Mapped[int] = mapped_column(sa.BigInteger)
    detail_salt: Mapped[bytes] = mapped_column(sa.LargeBinary(32))


class UsedNonce(db.Model):
    """A manifest or withdrawal nonce a bidder has used; never accepted twice (PROTOCOL §5)."""

    __tablename__ = "bid_nonces"

    bidder_org_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id"), primary_key=True,
                                               autoincrement=False)
    nonce: Mapped[str] = mapped_column(sa.String(24), primary_key=True)
    # "manifest:<manifest_sha256>" or "withdrawal:<withdrawal_sha256>"
    used_by: Mapped[str] = mapped_column(sa.String(80))
    used_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BidSecurity(db.Model):
    """A bid security payment (投标保证金, RULES B1) recorded by the bidder; hidden until closing."""

    __tablename__ = "bid_securities"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    lot_code: Mapped[str] = mapped_column(sa.String(128))
    bidder_org_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id"), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    amount: Mapped[Decimal] = mapped_column(Money())
    payer_account: Mapped[str] = mapped_column(sa.String(64))  # same account = an indicator (B6)
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime())
    log_index: Mapped[int] = mapped_column(sa.BigInteger)
    # paid | refunded | kept (RULES C4: kept when a failure was the bidder's fault)
    status: Mapped[str] = mapped_column(sa.String(16), default="paid")
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Closing(db.Model):
    """The one closing of a tender (PROTOCOL §6): its ``tender.closed`` entry and checkpoint."""

    __tablename__ = "bid_closings"

    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), primary_key=True,
                                            autoincrement=False)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    log_index: Mapped[int] = mapped_column(sa.BigInteger)
    checkpoint_size: Mapped[int] = mapped_column(sa.BigInteger)
    # exactly the data.files of the tender.closed entry, in its order
    files: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON)
    closed_by: Mapped[str] = mapped_column(sa.String(64))  # a username, or "system" (periodic)


class CollusionIndicator(db.Model):
    """A sign of related or colluding bidders on one lot (RULES B6), found at closing.

    Not a refusal: refusing at submission would tell a bidder that another bid exists
    before the deadline (A6). The opening committee and supervisors act on these.
    """

    __tablename__ = "bid_collusion_indicators"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    lot_code: Mapped[str] = mapped_column(sa.String(128))
    # same_legal_representative | control_relationship | same_payer_account |
    # same_client_address | identical_file
    kind: Mapped[str] = mapped_column(sa.String(40))
    bidders: Mapped[list[str]] = mapped_column(sa.JSON)   # sorted organisation codes
    detail: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    found_at: Mapped[datetime] = mapped_column(UTCDateTime())
    log_index: Mapped[int | None] = mapped_column(sa.BigInteger)


# --------------------------------------------------------------------------- opening side


class Release(db.Model):
    """A custodian's signed release of one share of one listed file (PROTOCOL §6)."""

    __tablename__ = "bid_releases"
    __table_args__ = (sa.UniqueConstraint("submission_id", "i"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    submission_id: Mapped[int] = mapped_column(sa.ForeignKey("bid_submissions.id"), index=True)
    lot_code: Mapped[str] = mapped_column(sa.String(128))
    bidder_code: Mapped[str] = mapped_column(sa.String(128))
    file: Mapped[str] = mapped_column(sa.String(128))
    header_sha256: Mapped[str] = mapped_column(sa.String(64))
    i: Mapped[int] = mapped_column(sa.SmallInteger)
    share: Mapped[bytes] = mapped_column(sa.LargeBinary(33))
    envelope: Mapped[dict[str, Any]] = mapped_column(sa.JSON)  # {"release": ..., "signature", "kid"}
    signer_kid: Mapped[str] = mapped_column(sa.String(16))
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    log_index: Mapped[int] = mapped_column(sa.BigInteger)
    # Does the share match the manifest's digest? None until the opener checks it.
    valid: Mapped[bool | None] = mapped_column()


class OpeningSession(db.Model):
    """The opening (开标) of a tender, and its published record (RULES C1, C3, C6)."""

    __tablename__ = "bid_openings"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), unique=True)
    started_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(sa.String(16), default="open")  # open | finished | failed
    log_index: Mapped[int | None] = mapped_column(sa.BigInteger)
    # The published opening record: the JSON and its exact canonical bytes.
    record: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    record_bytes: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    record_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    record_log_index: Mapped[int | None] = mapped_column(sa.BigInteger)


class OpeningResult(db.Model):
    """What the opening of one listed file gave: opened with its price, or failed and whose
    fault (PROTOCOL §6, RULES C4)."""

    __tablename__ = "bid_opening_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    opening_id: Mapped[int] = mapped_column(sa.ForeignKey("bid_openings.id"), index=True)
    submission_id: Mapped[int] = mapped_column(sa.ForeignKey("bid_submissions.id"), unique=True)
    lot_code: Mapped[str] = mapped_column(sa.String(128))
    bidder_code: Mapped[str] = mapped_column(sa.String(128))
    file: Mapped[str] = mapped_column(sa.String(128))
    status: Mapped[str] = mapped_column(sa.String(16))          # opened | failed
    fault: Mapped[str | None] = mapped_column(sa.String(16))    # bidder | custodian | platform
    cause: Mapped[str | None] = mapped_column(sa.String(64))    # a stable error code
    message: Mapped[str | None] = mapped_column(sa.Text)
    price: Mapped[Decimal | None] = mapped_column(Money())
    currency: Mapped[str | None] = mapped_column(sa.String(3))
    declared: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)  # bid-form items besides price
    bid_key: Mapped[bytes | None] = mapped_column(sa.LargeBinary(32))  # K, once recovered
    plaintext_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    shares_used: Mapped[list[int] | None] = mapped_column(sa.JSON)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())
    log_index: Mapped[int | None] = mapped_column(sa.BigInteger)


class OpeningObjection(db.Model):
    """An objection raised at the opening and its answer, recorded on the spot (RULES C5)."""

    __tablename__ = "bid_opening_objections"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    opening_id: Mapped[int | None] = mapped_column(sa.ForeignKey("bid_openings.id"))
    raised_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    bidder_org_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organisations.id"))
    text: Mapped[str] = mapped_column(sa.Text)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime())
    log_index: Mapped[int] = mapped_column(sa.BigInteger)
    answer: Mapped[str | None] = mapped_column(sa.Text)
    answered_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    answer_log_index: Mapped[int | None] = mapped_column(sa.BigInteger)


__all__ = ["OpeningPolicy", "PendingUpload", "Submission", "Withdrawal", "UsedNonce", "BidSecurity",
           "Closing", "CollusionIndicator", "Release", "OpeningSession", "OpeningResult",
           "OpeningObjection", "LIVE", "SUPERSEDED", "WITHDRAWN"]
