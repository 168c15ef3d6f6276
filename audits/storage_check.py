"""Recompute the audit log's tree from storage and compare it with what was signed.

Used by `ebid audit check` and by tests after every scenario: a row edited, deleted or
reordered behind the platform's back shows up as a mismatch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session

from audits import merkle
from audits.entries import EntryError, parse_entry
from audits.log import DbNodeReader
from audits.models import Checkpoint, LogEntry, LogHead
from audits.notes import NoteError, parse_and_verify_checkpoint


@dataclass
class StorageCheck:
    """The outcome of :func:`check_storage`: ``ok`` and what was wrong."""

    size: int = 0
    checkpoints: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_storage(session: Session, verifier_key_line: str, batch: int = 5000) -> StorageCheck:
    """Stream every entry in index order, recompute leaf hashes and roots, and compare with
    the stored leaf hashes, the stored nodes, the head size and every stored checkpoint."""
    result = StorageCheck()
    head = session.execute(sa.select(LogHead.size).where(LogHead.id == 1)).scalar_one()
    checkpoints = {size: (bytes(root), note) for size, root, note in session.execute(
        sa.select(Checkpoint.size, Checkpoint.root, Checkpoint.note).order_by(Checkpoint.size))}
    frontier = merkle.Frontier()
    expected = 0
    last = -1
    while True:
        rows = session.execute(sa.select(LogEntry.index, LogEntry.entry, LogEntry.leaf_hash)
                               .where(LogEntry.index > last).order_by(LogEntry.index)
                               .limit(batch)).all()
        if not rows:
            break
        for index, entry, stored_leaf in rows:
            if index != expected:
                result.problems.append(f"gap or reorder: expected index {expected}, found {index}")
                expected = index
            try:
                if parse_entry(bytes(entry))["index"] != index:
                    result.problems.append(f"entry {index} carries another index")
            except EntryError as exc:
                result.problems.append(f"entry {index} does not parse: {exc}")
            leaf = merkle.leaf_hash(bytes(entry))
            if leaf != bytes(stored_leaf):
                result.problems.append(f"entry {index} bytes do not match its stored leaf hash")
            frontier.append(leaf)
            expected += 1
            last = index
            if frontier.size in checkpoints:
                root, note = checkpoints[frontier.size]
                _check_checkpoint(result, frontier.size, frontier.root(), root, note, verifier_key_line)
        if len(result.problems) > 50:
            break
    result.size = frontier.size
    if head != frontier.size:
        result.problems.append(f"log head says {head} entries, storage holds {frontier.size}")
    if 0 in checkpoints:
        _check_checkpoint(result, 0, merkle.EMPTY_ROOT, *checkpoints[0], verifier_key_line)
    for size in checkpoints:
        if size > frontier.size:
            result.problems.append(f"checkpoint at size {size} beyond the stored entries")
    if frontier.size:
        try:
            stored_root = merkle.root(frontier.size, DbNodeReader(session))
            if stored_root != frontier.root():
                result.problems.append("stored tree nodes disagree with the entries")
        except LookupError as exc:
            result.problems.append(f"stored tree nodes incomplete: {exc}")
    result.checkpoints = len(checkpoints)
    return result


def _check_checkpoint(result: StorageCheck, size: int, computed: bytes, stored_root: bytes,
                      note: str, verifier_key_line: str) -> None:
    if computed != stored_root:
        result.problems.append(f"root at size {size} differs from the checkpoint stored for it")
    try:
        signed = parse_and_verify_checkpoint(note, verifier_key_line)
    except NoteError as exc:
        result.problems.append(f"checkpoint at size {size} does not verify: {exc}")
        return
    if signed.size != size or signed.root != computed:
        result.problems.append(f"signed checkpoint at size {size} does not match the entries")
