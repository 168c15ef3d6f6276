"""Storage of the append-only audit log (PROTOCOL §7).

``log_entries`` holds the exact leaf bytes; ``log_nodes`` the hash of every perfect
subtree so roots and proofs need O(log n) reads; ``log_details`` the hidden detail and
its salt; ``checkpoints`` every signed note issued. Database triggers (created by the
migration) refuse UPDATE and DELETE on entries, nodes and checkpoints.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.db import UTCDateTime, db


class LogHead(db.Model):
    """One row: the log's size. Appenders lock it, so indices form one order with no gaps."""

    __tablename__ = "log_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    size: Mapped[int] = mapped_column(sa.BigInteger, default=0)


class LogEntry(db.Model):
    """One leaf: the canonical entry bytes exactly as hashed."""

    __tablename__ = "log_entries"

    index: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    action: Mapped[str] = mapped_column(sa.String(64), index=True)
    subject: Mapped[str] = mapped_column(sa.String(200), index=True)
    entry: Mapped[bytes] = mapped_column(sa.LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(sa.LargeBinary(32))


class LogNode(db.Model):
    """The hash of the perfect subtree over leaves [index·2^level, (index+1)·2^level)."""

    __tablename__ = "log_nodes"

    level: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True, autoincrement=False)
    index: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(sa.LargeBinary(32))


class LogDetail(db.Model):
    """What a leaf hides, with its salt; readable only by the roles allowed."""

    __tablename__ = "log_details"

    index: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    salt: Mapped[bytes] = mapped_column(sa.LargeBinary(32))
    detail: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    # Who may read it besides supervisors: e.g. {"users": [7], "after": "tender.closed:12"}.
    readers: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    subject: Mapped[str | None] = mapped_column(sa.String(200), index=True)


class Checkpoint(db.Model):
    """A signed checkpoint (C2SP tlog-checkpoint note) issued at a given size."""

    __tablename__ = "checkpoints"

    size: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(sa.LargeBinary(32))
    note: Mapped[str] = mapped_column(sa.Text)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
