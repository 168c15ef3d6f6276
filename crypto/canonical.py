"""The encodings of PROTOCOL §1: canonical JSON, strict base64, hex, identifiers, money, times.

Canonical JSON is RFC 8785 restricted to strings, integers 0..2^53-1, booleans, null,
arrays and objects with ASCII ``[a-z0-9_]+`` keys. Within that subset Python's
``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` produces the
RFC 8785 bytes: ASCII keys sort the same by code point and by UTF-16 unit, and both
escape exactly ``"``, ``\\`` and the C0 controls, in the same way.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from datetime import datetime, timezone
from typing import Any

from crypto.errors import CryptoError

MAX_INT = 2**53 - 1

_KEY_RE = re.compile(r"[a-z0-9_]+")
_IDENTIFIER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_MONEY_RE = re.compile(r"(0|[1-9][0-9]{0,15})(\.[0-9]{1,2})?")
_B64_RE = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_TIME_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})\.([0-9]{3})Z")
_HEX_RE = re.compile(r"[0-9a-f]*")


def _check_value(value: Any, path: str) -> None:
    """Raise unless ``value`` lies in the §1 subset of JSON."""
    # bool before int: bool is a subclass of int in Python
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not 0 <= value <= MAX_INT:
            raise CryptoError("bad_canonical_json", f"{path}: integer out of range 0..2^53-1")
        return
    if isinstance(value, str):
        try:
            value.encode("utf-8")  # lone surrogates are not Unicode scalar values
        except UnicodeEncodeError:
            raise CryptoError("bad_canonical_json", f"{path}: string is not valid Unicode") from None
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_value(item, f"{path}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
                raise CryptoError("bad_canonical_json", f"{path}: key {key!r} is not [a-z0-9_]+")
            _check_value(item, f"{path}.{key}")
        return
    raise CryptoError("bad_canonical_json", f"{path}: {type(value).__name__} is not allowed")


def canonical_json(obj: Any) -> bytes:
    """Encode ``obj`` as canonical JSON bytes, refusing anything outside the §1 subset."""
    _check_value(obj, "$")
    return json.dumps(obj, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False).encode("utf-8")


def _pairs_no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise CryptoError("duplicate_key", f"duplicate key {key!r}")
        result[key] = value
    return result


def _refuse_float(text: str) -> Any:
    raise CryptoError("bad_canonical_json", f"number {text!r} is not an integer")


def _refuse_constant(text: str) -> Any:
    raise CryptoError("bad_canonical_json", f"{text} is not allowed")


def loads_strict(data: bytes | str) -> Any:
    """Parse JSON refusing duplicate keys, floats and values outside the §1 subset.

    Unlike :func:`parse_canonical` the bytes need not be canonical (whitespace and key
    order are free), for envelopes that travel over HTTP and are re-encoded to verify.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            # decode ourselves: json.loads would guess UTF-16/32 from raw bytes
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise CryptoError("bad_canonical_json", "not UTF-8") from None
    elif isinstance(data, str):
        text = data
    else:
        raise CryptoError("bad_canonical_json", "expected bytes or str")
    try:
        obj = json.loads(text, object_pairs_hook=_pairs_no_duplicates,
                         parse_float=_refuse_float, parse_constant=_refuse_constant)
        _check_value(obj, "$")
    except CryptoError:
        raise
    except (ValueError, RecursionError) as exc:
        raise CryptoError("bad_canonical_json", f"not JSON: {exc}") from None
    return obj


def parse_canonical(data: bytes) -> Any:
    """Parse bytes that MUST be canonical JSON: byte-equal to the re-encoding of their parse."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CryptoError("bad_canonical_json", "expected bytes")
    data = bytes(data)
    obj = loads_strict(data)
    if canonical_json(obj) != data:
        raise CryptoError("bad_canonical_json", "not in canonical form")
    return obj


def b64encode(raw: bytes) -> str:
    """Standard base64 with padding."""
    return base64.b64encode(raw).decode("ascii")


def b64decode(text: str, field: str = "value", length: int | None = None) -> bytes:
    """Strict standard base64: padding required, alphabet only, unused bits zero.

    With ``length``, the decoded value must have exactly that many bytes.
    """
    if not isinstance(text, str) or len(text) % 4 or not _B64_RE.fullmatch(text):
        raise CryptoError("bad_base64", f"{field} is not padded standard base64")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise CryptoError("bad_base64", f"{field} is not padded standard base64") from None
    # re-encoding catches non-zero unused bits ("QR==" decodes like "QQ==")
    if base64.b64encode(raw).decode("ascii") != text:
        raise CryptoError("bad_base64", f"{field} has non-zero unused bits")
    if length is not None and len(raw) != length:
        raise CryptoError("bad_base64", f"{field} must decode to {length} bytes, not {len(raw)}")
    return raw


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


def check_hex(value: Any, field: str, length: int = 64) -> str:
    """Return ``value`` if it is lower-case hex of exactly ``length`` digits."""
    if not isinstance(value, str) or len(value) != length or not _HEX_RE.fullmatch(value):
        raise CryptoError("bad_hex", f"{field} must be {length} lower-case hex digits")
    return value


def check_identifier(value: Any, field: str) -> str:
    """Return ``value`` if it is a §1 identifier (tender, lot, bidder, file)."""
    if not isinstance(value, str) or not _IDENTIFIER_RE.fullmatch(value):
        raise CryptoError("bad_identifier", f"{field} must match [A-Za-z0-9][A-Za-z0-9._-]{{0,127}}")
    return value


def check_money(value: Any, field: str) -> str:
    """Return ``value`` if it is a §1 money string such as ``"1234.50"``."""
    if not isinstance(value, str) or not _MONEY_RE.fullmatch(value):
        raise CryptoError("bad_money", f"{field} must be a decimal string like 1234.50")
    return value


def format_time(instant: datetime) -> str:
    """RFC 3339 UTC with milliseconds (truncated): ``2026-05-01T09:30:00.000Z``."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise CryptoError("bad_time", "naive datetimes are not allowed")
    utc = instant.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_time(text: Any, field: str = "time") -> datetime:
    """Parse exactly ``YYYY-MM-DDTHH:MM:SS.mmmZ`` into an aware UTC datetime."""
    match = _TIME_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise CryptoError("bad_time", f"{field} must look like 2026-05-01T09:30:00.000Z")
    year, month, day, hour, minute, second, millis = (int(g) for g in match.groups())
    try:
        return datetime(year, month, day, hour, minute, second, millis * 1000, tzinfo=timezone.utc)
    except ValueError:
        raise CryptoError("bad_time", f"{field} is not a real instant") from None
