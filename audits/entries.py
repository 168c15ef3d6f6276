"""Audit log entries (PROTOCOL §7): the exact bytes that become Merkle leaves.

An entry is canonical JSON with exactly the keys ``index``, ``at``, ``actor``, ``action``,
``subject``, ``data`` and ``detail_sha256``. What the rules hide at that moment (before a
tender closes: who submitted, supersedes or withdraws what) is not in the leaf: such
entries carry ``"actor": "hidden"``, ``"subject": "hidden"``, ``"data": {}``, and the
detail lives in a separate record bound by ``detail_sha256``.

Field rules this module enforces (PROTOCOL §7 fixes the keys; the types are ours):
``index`` an integer 0 … 2^53−1; ``at`` RFC 3339 UTC with milliseconds; ``actor`` and
``subject`` non-empty strings; ``action`` a dotted lower-case word such as
``bid.submitted``; ``data`` an object; ``detail_sha256`` 64 lower-case hex digits or null.

Pure: no clock (``at`` is passed in), no database.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

from crypto.canonical import canonical_json, format_time, parse_canonical, parse_time
from crypto.errors import CryptoError

HIDDEN = "hidden"
DETAIL_DOMAIN = b"ebid/v1 detail\n"
DETAIL_SALT_SIZE = 32
ENTRY_KEYS = frozenset({"index", "at", "actor", "action", "subject", "data", "detail_sha256"})
MAX_INDEX = 2**53 - 1

_ACTION_RE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")


class EntryError(ValueError):
    """An entry was refused; ``code`` is ``bad_entry`` or ``bad_detail``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _check_fields(entry: dict[str, Any]) -> None:
    """Raise EntryError unless every field has the type and form documented above."""
    index = entry["index"]
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_INDEX:
        raise EntryError("bad_entry", "index must be an integer 0 .. 2^53-1")
    try:
        parse_time(entry["at"], "at")
    except CryptoError as exc:
        raise EntryError("bad_entry", exc.message) from None
    for key in ("actor", "subject"):
        if not isinstance(entry[key], str) or not entry[key]:
            raise EntryError("bad_entry", f"{key} must be a non-empty string")
    if not isinstance(entry["action"], str) or not _ACTION_RE.fullmatch(entry["action"]):
        raise EntryError("bad_entry", "action must be dotted lower-case words, e.g. bid.submitted")
    if not isinstance(entry["data"], dict):
        raise EntryError("bad_entry", "data must be an object")
    detail = entry["detail_sha256"]
    if detail is not None and not (isinstance(detail, str) and _HEX64_RE.fullmatch(detail)):
        raise EntryError("bad_entry", "detail_sha256 must be 64 lower-case hex digits or null")


def make_entry(
    index: int,
    at: str | datetime,
    actor: str,
    action: str,
    subject: str,
    data: dict[str, Any],
    detail_sha256: str | None,
) -> bytes:
    """Return the canonical entry bytes (the Merkle leaf input) for these fields.

    ``at`` is an RFC 3339 millisecond string, or an aware datetime formatted as one.
    Raises EntryError when a field is malformed or ``data`` is outside canonical JSON.
    """
    if isinstance(at, datetime):
        try:
            at = format_time(at)
        except CryptoError as exc:
            raise EntryError("bad_entry", exc.message) from None
    entry = {"index": index, "at": at, "actor": actor, "action": action,
             "subject": subject, "data": data, "detail_sha256": detail_sha256}
    _check_fields(entry)
    try:
        return canonical_json(entry)
    except CryptoError as exc:
        raise EntryError("bad_entry", exc.message) from None


def hidden_entry(index: int, at: str | datetime, action: str, detail_sha256: str | None) -> bytes:
    """An entry whose actor, subject and data the rules hide for now (e.g. a submission)."""
    return make_entry(index, at, HIDDEN, action, HIDDEN, {}, detail_sha256)


def parse_entry(raw: bytes) -> dict[str, Any]:
    """Parse entry bytes strictly: canonical JSON, exactly the §7 keys, well-formed fields."""
    try:
        entry = parse_canonical(raw)
    except CryptoError as exc:
        raise EntryError("bad_entry", exc.message) from None
    if not isinstance(entry, dict) or set(entry) != ENTRY_KEYS:
        raise EntryError("bad_entry", "an entry has exactly the keys " + ", ".join(sorted(ENTRY_KEYS)))
    _check_fields(entry)
    return entry


def detail_hash(salt: bytes, detail: Any) -> str:
    """Return hex SHA-256 of ``"ebid/v1 detail\\n" || salt || canonical_json(detail)``.

    The salt is the fresh 32 random bytes kept with the detail record; without it a guess
    of a hidden detail cannot be confirmed against the public leaf.
    """
    if not isinstance(salt, (bytes, bytearray)) or len(salt) != DETAIL_SALT_SIZE:
        raise EntryError("bad_detail", "the detail salt is 32 bytes")
    try:
        body = canonical_json(detail)
    except CryptoError as exc:
        raise EntryError("bad_detail", exc.message) from None
    return hashlib.sha256(DETAIL_DOMAIN + bytes(salt) + body).hexdigest()


def is_hidden(entry: dict[str, Any]) -> bool:
    """True when the entry hides who acted on what (actor and subject are ``hidden``)."""
    return entry["actor"] == HIDDEN and entry["subject"] == HIDDEN
