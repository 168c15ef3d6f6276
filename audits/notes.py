"""Checkpoints of the audit log as C2SP ``tlog-checkpoint`` signed notes (PROTOCOL §7).

A checkpoint note is the body ``origin\\nsize\\nbase64(root)\\n``, a blank line, and one or
more signature lines ``— name base64(keyid || Ed25519 signature over the body)``, where
keyid = SHA-256(name || 0x0A || 0x01 || public key)[:4] and name = origin. The verifier key
line is ``name+hex(keyid)+base64(0x01 || public key)``.

Built directly on pyca ``cryptography``'s Ed25519: a signed note is its own format, not a
``crypto.signing`` envelope. Pure: no clock, no database.

Errors are ``NoteError(code, message)`` with code one of:
``bad_key`` (malformed verifier key line), ``bad_note`` (malformed note or checkpoint body),
``unknown_key`` (no signature line for the given key), ``bad_signature`` (a signature line
for the given key does not verify), ``wrong_origin`` (origin differs from the key name).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALG_ED25519 = 0x01
SIG_PREFIX = "\u2014 "  # an em dash and one space, as in Go's sumdb/note
MAX_SIGNATURES = 100  # Go's note.Open cap
MAX_NOTE_CHARS = 1 << 16  # a checkpoint is tiny; refuse to parse megabytes
MAX_SIZE = (1 << 63) - 1
HASH_SIZE = 32

_SIZE_RE = re.compile(r"0|[1-9][0-9]*")
_KEY_ID_HEX_RE = re.compile(r"[0-9a-f]{8}")


class NoteError(Exception):
    """A signed note or verifier key was refused; ``code`` is a stable machine-readable word."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint: the log's origin, its size and its RFC 9162 root."""

    origin: str
    size: int
    root: bytes


@dataclass(frozen=True)
class VerifierKey:
    """A parsed verifier key line."""

    name: str
    key_id: bytes
    public_raw: bytes


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _b64decode_strict(text: str, code: str, what: str) -> bytes:
    """Standard base64 with padding; re-encoding must give the same text (no slack bits)."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise NoteError(code, f"{what} is not strict base64") from None
    if _b64encode(raw) != text:
        raise NoteError(code, f"{what} is not canonical base64")
    return raw


def _valid_name(name: str) -> bool:
    """C2SP: a key name is non-empty and has neither spaces nor '+' (nor control characters)."""
    return bool(name) and not any(c.isspace() or c == "+" or ord(c) < 0x20 for c in name)


def key_id(name: str, public_raw: bytes) -> bytes:
    """Return the 4-byte C2SP key id: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    data = name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_raw
    return hashlib.sha256(data).digest()[:4]


def verifier_key_line(name: str, public_raw: bytes) -> str:
    """Return the verifier key line ``name+hex(keyid)+base64(0x01 || public key)``."""
    if not _valid_name(name):
        raise NoteError("bad_key", "key name must be non-empty without spaces or '+'")
    if len(public_raw) != 32:
        raise NoteError("bad_key", "an Ed25519 public key is 32 bytes")
    encoded = _b64encode(bytes([ALG_ED25519]) + public_raw)
    return f"{name}+{key_id(name, public_raw).hex()}+{encoded}"


def parse_verifier_key(line: str) -> VerifierKey:
    """Parse a verifier key line strictly (one trailing newline allowed); raise NoteError."""
    if line.endswith("\n"):
        line = line[:-1]
    # The base64 part may itself contain '+', so split only twice, as Go's note does.
    parts = line.split("+", 2)
    if len(parts) != 3:
        raise NoteError("bad_key", "a verifier key is name+keyid+key")
    name, hex_id, encoded = parts
    if not _valid_name(name):
        raise NoteError("bad_key", "key name must be non-empty without spaces or '+'")
    if not _KEY_ID_HEX_RE.fullmatch(hex_id):
        raise NoteError("bad_key", "key id must be 8 lower-case hex digits")
    raw = _b64decode_strict(encoded, "bad_key", "verifier key")
    if len(raw) != 33 or raw[0] != ALG_ED25519:
        raise NoteError("bad_key", "only Ed25519 keys (type 0x01, 32 bytes) are supported")
    public_raw = raw[1:]
    if key_id(name, public_raw) != bytes.fromhex(hex_id):
        raise NoteError("bad_key", "key id does not match the name and key")
    return VerifierKey(name=name, key_id=bytes.fromhex(hex_id), public_raw=public_raw)


def checkpoint_body(origin: str, size: int, root: bytes) -> bytes:
    """Return the checkpoint body ``origin\\nsize\\nbase64(root)\\n`` as UTF-8 bytes."""
    if not _valid_name(origin):
        raise NoteError("bad_note", "origin must be non-empty without spaces or '+'")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_SIZE:
        raise NoteError("bad_note", "size must be an integer in 0 .. 2^63-1")
    if len(root) != HASH_SIZE:
        raise NoteError("bad_note", "root must be 32 bytes")
    return f"{origin}\n{size}\n{_b64encode(root)}\n".encode("utf-8")


def _public_raw(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def sign_note(text: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """Sign a note text (ending in a newline) under ``name``; return the signed note."""
    if not text.endswith("\n") or "\n\n" in text:
        raise NoteError("bad_note", "note text must end in one newline and have no blank line")
    if not _valid_name(name):
        raise NoteError("bad_note", "key name must be non-empty without spaces or '+'")
    signature = private_key.sign(text.encode("utf-8"))
    kid = key_id(name, _public_raw(private_key))
    return f"{text}\n{SIG_PREFIX}{name} {_b64encode(kid + signature)}\n"


def sign_checkpoint(origin: str, size: int, root: bytes, private_key: Ed25519PrivateKey) -> str:
    """Return the signed checkpoint note for (origin, size, root), signed with key name = origin."""
    body = checkpoint_body(origin, size, root).decode("utf-8")
    return sign_note(body, origin, private_key)


def _split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """Split a signed note into its text and its (name, keyid || signature) lines."""
    if len(note) > MAX_NOTE_CHARS:
        raise NoteError("bad_note", "note too large")
    if any((ord(c) < 0x20 and c != "\n") or c == "\x7f" for c in note):
        raise NoteError("bad_note", "note contains control characters")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("bad_note", "no blank line before the signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block.endswith("\n"):
        raise NoteError("bad_note", "signature block must end in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError("bad_note", "too many signatures")
    signatures = []
    for line in lines:
        if not line.startswith(SIG_PREFIX):
            raise NoteError("bad_note", "signature line must start with an em dash and a space")
        fields = line[len(SIG_PREFIX) :].split(" ")
        if len(fields) != 2 or not _valid_name(fields[0]):
            raise NoteError("bad_note", "signature line must be '— name base64'")
        raw = _b64decode_strict(fields[1], "bad_note", "signature")
        if len(raw) < 5:
            raise NoteError("bad_note", "signature too short")
        signatures.append((fields[0], raw))
    return text, signatures


def open_note(note: str | bytes, key: VerifierKey) -> str:
    """Verify a signed note with ``key`` and return its text.

    Signature lines for other keys are ignored (C2SP); every line naming this key (same name
    and key id) must carry a valid Ed25519 signature, and there must be at least one.
    """
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("bad_note", "note is not UTF-8") from None
    text, signatures = _split_note(note)
    public = Ed25519PublicKey.from_public_bytes(key.public_raw)
    ours = [raw[4:] for name, raw in signatures if name == key.name and raw[:4] == key.key_id]
    if not ours:
        raise NoteError("unknown_key", f"no signature by {key.name}+{key.key_id.hex()}")
    for signature in ours:
        try:
            public.verify(signature, text.encode("utf-8"))
        except InvalidSignature:
            raise NoteError("bad_signature", "checkpoint signature does not verify") from None
    return text


def _parse_body(text: str) -> Checkpoint:
    lines = text.split("\n")
    if len(lines) != 4 or lines[3] != "":
        raise NoteError("bad_note", "a checkpoint body is exactly three lines")
    origin, size_text, root_text = lines[:3]
    if not _valid_name(origin):
        raise NoteError("bad_note", "origin must be non-empty without spaces or '+'")
    # The length bound comes first: int() of thousands of digits is slow or refused.
    if len(size_text) > 19 or not _SIZE_RE.fullmatch(size_text) or int(size_text) > MAX_SIZE:
        raise NoteError("bad_note", "size must be decimal without sign or leading zeros")
    root = _b64decode_strict(root_text, "bad_note", "root")
    if len(root) != HASH_SIZE:
        raise NoteError("bad_note", "root must be 32 bytes")
    return Checkpoint(origin=origin, size=int(size_text), root=root)


def parse_and_verify_checkpoint(
    note_text: str | bytes, verifier_key_line: str | VerifierKey
) -> Checkpoint:
    """Verify a checkpoint note against a verifier key (line or parsed); return the checkpoint.

    Strict: raises NoteError on any deviation from PROTOCOL §7.
    """
    key = verifier_key_line
    if not isinstance(key, VerifierKey):
        key = parse_verifier_key(key)
    checkpoint = _parse_body(open_note(note_text, key))
    if checkpoint.origin != key.name:
        raise NoteError("wrong_origin", f"origin {checkpoint.origin!r} is not {key.name!r}")
    return checkpoint
