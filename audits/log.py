"""Appending to the audit log, in the same transaction as the change it records.

Every state change and every disclosure calls :func:`append` inside its own transaction:
never a change without its entry, never an entry without its change. Appenders take the
one ``log_head`` row first (a row lock on PostgreSQL; SQLite transactions are already
serialized by ``BEGIN IMMEDIATE``), so indices form one total order with no gaps even
with several gunicorn workers. A checkpoint is signed before the transaction commits.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from audits import entries, merkle, notes
from audits.models import Checkpoint, LogDetail, LogEntry, LogHead, LogNode
from core.clock import format_instant
from core.db import is_postgres

HIDDEN = entries.HIDDEN
_DIRTY = "ebid_log_dirty"


@dataclass(frozen=True)
class Appended:
    """What an append produced: the entry's index and bytes, and the salt of its detail."""

    index: int
    entry: bytes
    detail_sha256: str | None
    salt: bytes | None


class DbNodeReader:
    """Reads perfect-subtree hashes from ``log_nodes`` in one query per call."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get_many(self, keys: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        if not keys:
            return {}
        found: dict[tuple[int, int], bytes] = {}
        for chunk_start in range(0, len(keys), 200):
            chunk = keys[chunk_start:chunk_start + 200]
            # OR of (level = ? AND index = ?) pairs: SQLite answers a row-value IN list with
            # a full scan, which made every proof linear in the size of the log.
            rows = self.session.execute(
                sa.select(LogNode.level, LogNode.index, LogNode.hash)
                .where(sa.or_(*(sa.and_(LogNode.level == level, LogNode.index == index)
                                for level, index in chunk)))
            ).all()
            found.update({(level, index): bytes(h) for level, index, h in rows})
        missing = [k for k in keys if k not in found]
        if missing:
            raise LookupError(f"log nodes missing from storage: {missing[:5]}")
        return found


def _lock_head(session: Session) -> LogHead:
    query = sa.select(LogHead).where(LogHead.id == 1)
    if is_postgres(session):
        query = query.with_for_update()
    head = session.execute(query).scalar_one_or_none()
    if head is None:
        raise RuntimeError("log_head row missing: run `ebid db upgrade`")
    return head


def size(session: Session) -> int:
    """The number of entries in the log as this transaction sees it."""
    return session.execute(sa.select(LogHead.size).where(LogHead.id == 1)).scalar_one()


def append(session: Session, *, now: datetime, actor: str, action: str, subject: str,
           data: dict[str, Any] | None = None, detail: dict[str, Any] | None = None,
           hidden: bool = False, readers: dict[str, Any] | None = None) -> Appended:
    """Append one entry. With ``hidden``, actor, subject and data go into the salted detail
    and the leaf shows ``"hidden"`` (PROTOCOL §7: what the rules hide at that moment)."""
    head = _lock_head(session)
    index = head.size
    leaf_actor, leaf_subject, leaf_data = actor, subject, data or {}
    if hidden:
        detail = {"actor": actor, "subject": subject, "data": data or {}, **(detail or {})}
        leaf_actor, leaf_subject, leaf_data = HIDDEN, HIDDEN, {}
    salt = secrets.token_bytes(32) if detail is not None else None
    detail_sha256 = entries.detail_hash(salt, detail) if detail is not None and salt else None
    entry = entries.make_entry(index, format_instant(now), leaf_actor, action, leaf_subject,
                               leaf_data, detail_sha256)
    leaf = merkle.leaf_hash(entry)
    session.add(LogEntry(index=index, at=now, action=action, subject=leaf_subject,
                         entry=entry, leaf_hash=leaf))
    if detail is not None and salt is not None:
        session.add(LogDetail(index=index, salt=salt, detail=detail, readers=readers or {},
                              subject=subject))

    def get(level: int, node_index: int) -> bytes:
        node = session.get(LogNode, (level, node_index))
        if node is None:
            raise LookupError(f"log node ({level}, {node_index}) missing")
        return bytes(node.hash)

    for level, node_index, node in merkle.nodes_completed_by_append(index, leaf, get):
        session.add(LogNode(level=level, index=node_index, hash=node))
    head.size = index + 1
    session.flush()
    session.info[_DIRTY] = True
    session.info["ebid_now"] = now  # the checkpoint signed at commit carries this time
    return Appended(index=index, entry=entry, detail_sha256=detail_sha256, salt=salt)


def root_at(session: Session, tree_size: int) -> bytes:
    """The Merkle root of the first ``tree_size`` entries."""
    return merkle.root(tree_size, DbNodeReader(session))


def issue_checkpoint(session: Session, *, origin: str, log_key: Any, now: datetime) -> Checkpoint:
    """Sign and store a checkpoint at the current size (once per size)."""
    current = size(session)
    existing = session.get(Checkpoint, current)
    if existing is not None:
        return existing
    root = root_at(session, current)
    note = notes.sign_checkpoint(origin, current, root, log_key)
    checkpoint = Checkpoint(size=current, root=root, note=note, issued_at=now)
    session.add(checkpoint)
    session.flush()
    return checkpoint


def needs_checkpoint(session: Session) -> bool:
    """True when this transaction appended and has not yet signed a checkpoint."""
    return bool(session.info.get(_DIRTY))


def mark_checkpointed(session: Session) -> None:
    session.info.pop(_DIRTY, None)
    session.info.pop("ebid_now", None)


def latest_checkpoint(session: Session) -> Checkpoint | None:
    return session.execute(
        sa.select(Checkpoint).order_by(Checkpoint.size.desc()).limit(1)
    ).scalar_one_or_none()
