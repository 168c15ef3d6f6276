"""The sealed file ``.ebid`` of PROTOCOL §3: header, key derivation, segments, framing.

Layout: ``"EBID1\\n"``, ``uint32_be(len(header))``, the canonical header, then per
segment ``uint32_be(len(ct))`` and ``ct`` (AES-256-GCM ciphertext with its 16-byte tag).
Everything streams one segment at a time, so memory stays constant for any file size.
Readers reject anything not exactly in this shape; callers discard partial output when
an error is raised.
"""
from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from crypto.canonical import (b64decode, b64encode, canonical_json, check_hex, check_identifier,
                              parse_canonical, parse_time)
from crypto.errors import CryptoError

MAGIC = b"EBID1\n"
VERSION = 1
SUITE = "x25519-hkdf-sha256-aes256gcm"
SEGMENT_SIZE = 1048576
MAX_HEADER = 65536
TAG_SIZE = 16
KEY_SIZE = 32
NONCE_PREFIX_SIZE = 8
MAX_SEGMENTS = 2**32 - 1      # "fewer than 2^32 segments"
MAX_CUSTODIANS = 255          # x-coordinates of GF(2^8) Shamir shares are 1..255

ENC_LABEL = b"ebid/v1 enc"
COMMIT_LABEL = b"ebid/v1 commit"

HEADER_KEYS = frozenset({"v", "suite", "tender", "lot", "bidder", "file", "policy_sha256", "threshold",
                         "custodians", "segment_size", "nonce_prefix", "created"})

_U32 = struct.Struct(">I")


@dataclass(frozen=True)
class SealResult:
    """What a sealer learns: ``size`` and ``ciphertext_sha256`` cover the whole file."""
    size: int
    ciphertext_sha256: str      # hex
    header_sha256: str          # hex
    commitment: bytes           # 32 raw bytes


@dataclass(frozen=True)
class FramingResult:
    """What the key-less framing check learns about a complete, well-framed file."""
    header_bytes: bytes
    header: dict
    header_sha256: str          # hex
    ciphertext_sha256: str      # hex
    size: int
    segments: int


# --- header -------------------------------------------------------------------------------

def build_header(tender: str, lot: str, bidder: str, file: str, policy_sha256: str, threshold: int,
                 custodians: list[dict], nonce_prefix: bytes, created: str,
                 segment_size: int = SEGMENT_SIZE) -> bytes:
    """The canonical header bytes; validated exactly as :func:`parse_header` reads them.

    ``custodians`` is ``[{"i": 1, "kid": ...}, ...]`` in ascending ``i``;
    ``created`` is an RFC 3339 UTC time with milliseconds (see ``canonical.format_time``).
    """
    if not isinstance(nonce_prefix, (bytes, bytearray)) or len(nonce_prefix) != NONCE_PREFIX_SIZE:
        raise CryptoError("bad_header", "nonce_prefix is 8 bytes")
    header = {
        "v": VERSION, "suite": SUITE, "tender": tender, "lot": lot, "bidder": bidder, "file": file,
        "policy_sha256": policy_sha256, "threshold": threshold,
        "custodians": [{"i": c["i"], "kid": c["kid"]} for c in custodians],
        "segment_size": segment_size, "nonce_prefix": b64encode(bytes(nonce_prefix)), "created": created,
    }
    try:
        data = canonical_json(header)
    except CryptoError as exc:
        raise CryptoError("bad_header", exc.message) from None
    parse_header(data, segment_size=segment_size)
    return data


def parse_header(header_bytes: bytes, segment_size: int = SEGMENT_SIZE) -> dict:
    """Parse and validate header bytes exactly; raise ``bad_header`` or ``header_too_large``.

    ``segment_size`` is the size the header must declare: 1048576 in the protocol, another
    value only for tests that exercise segment boundaries cheaply.
    """
    if len(header_bytes) > MAX_HEADER:
        raise CryptoError("header_too_large", f"a header is at most {MAX_HEADER} bytes")
    try:
        header = parse_canonical(header_bytes)
        _check_header_fields(header, segment_size)
    except CryptoError as exc:
        if exc.code in ("bad_header", "header_too_large"):
            raise
        raise CryptoError("bad_header", exc.message) from None
    return header


def _is_int(value: Any) -> bool:
    return type(value) is int  # not bool


def _check_header_fields(header: Any, segment_size: int) -> None:
    if not isinstance(header, dict) or set(header) != HEADER_KEYS:
        raise CryptoError("bad_header", "the header must have exactly the §3 fields")
    if not _is_int(header["v"]) or header["v"] != VERSION:
        raise CryptoError("bad_header", "unsupported version")
    if header["suite"] != SUITE:
        raise CryptoError("bad_header", "unsupported suite")
    for field in ("tender", "lot", "bidder", "file"):
        check_identifier(header[field], field)
    check_hex(header["policy_sha256"], "policy_sha256")
    custodians = header["custodians"]
    if not isinstance(custodians, list) or not 1 <= len(custodians) <= MAX_CUSTODIANS:
        raise CryptoError("bad_header", "custodians must list 1..255 entries")
    for position, entry in enumerate(custodians, start=1):
        if not isinstance(entry, dict) or set(entry) != {"i", "kid"}:
            raise CryptoError("bad_header", "each custodian is exactly {i, kid}")
        if not _is_int(entry["i"]) or entry["i"] != position:
            raise CryptoError("bad_header", "custodians must be in ascending i = 1..n with no gaps")
        check_hex(entry["kid"], "custodian kid", length=16)
    threshold = header["threshold"]
    if not _is_int(threshold) or not 1 <= threshold <= len(custodians):
        raise CryptoError("bad_header", "threshold must be 1..n")
    if not _is_int(header["segment_size"]) or header["segment_size"] != segment_size:
        raise CryptoError("bad_header", f"segment_size must be {segment_size}")
    b64decode(header["nonce_prefix"], "nonce_prefix", length=NONCE_PREFIX_SIZE)
    parse_time(header["created"], "created")


def header_hash(header_bytes: bytes) -> bytes:
    """H: the raw 32-byte SHA-256 of the header bytes."""
    return hashlib.sha256(header_bytes).digest()


# --- keys ---------------------------------------------------------------------------------

def _hkdf(bid_key: bytes, label: bytes, header_sha256: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=bytes(32),
                info=label + header_sha256).derive(bid_key)


def _check_key_and_hash(bid_key: bytes, header_sha256: bytes) -> None:
    if not isinstance(bid_key, (bytes, bytearray)) or len(bid_key) != KEY_SIZE:
        raise CryptoError("bad_key", "a bid key is 32 bytes")
    if not isinstance(header_sha256, (bytes, bytearray)) or len(header_sha256) != 32:
        raise ValueError("the header hash is 32 raw bytes")


def derive_keys(bid_key: bytes, header_sha256: bytes) -> tuple[bytes, bytes]:
    """``(enc_key, commitment)`` from the bid key K and the raw header hash H."""
    _check_key_and_hash(bid_key, header_sha256)
    return _hkdf(bid_key, ENC_LABEL, header_sha256), _hkdf(bid_key, COMMIT_LABEL, header_sha256)


def check_commitment(bid_key: bytes, header_sha256: bytes, commitment: bytes) -> None:
    """Raise ``commitment_mismatch`` unless K commits to ``commitment`` (constant time)."""
    _, expected = derive_keys(bid_key, header_sha256)
    if not isinstance(commitment, (bytes, bytearray)) or not hmac.compare_digest(expected, bytes(commitment)):
        raise CryptoError("commitment_mismatch", "the key does not match the file's commitment")


def _nonce(prefix: bytes, counter: int) -> bytes:
    return prefix + _U32.pack(counter)


def _aad(header_sha256: bytes, counter: int, last: bool) -> bytes:
    return header_sha256 + _U32.pack(counter) + (b"\x01" if last else b"\x00")


def check_segment_length(length: int, index: int, segment_size: int) -> bool:
    """Validate one segment's ciphertext length; return True if it must be the last.

    A full segment is ``segment_size + 16`` bytes and may or may not be the last; a
    shorter one (17 ..) must be the last; exactly 16 (empty) only as the single segment.
    """
    if index >= MAX_SEGMENTS:
        raise CryptoError("bad_framing", "a file has fewer than 2^32 segments")
    if length == segment_size + TAG_SIZE:
        return False
    if TAG_SIZE < length < segment_size + TAG_SIZE:
        return True
    if length == TAG_SIZE and index == 0:
        return True
    raise CryptoError("bad_framing", f"segment {index} has an impossible length {length}")


# --- sealing ------------------------------------------------------------------------------

def _read_full(src: BinaryIO, size: int) -> bytes:
    """Read exactly ``size`` bytes unless the stream ends first (pipes return short reads)."""
    parts: list[bytes] = []
    remaining = size
    while remaining:
        chunk = src.read(remaining)
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def seal_stream(src: BinaryIO, dst: BinaryIO, header_bytes: bytes, bid_key: bytes,
                segment_size: int = SEGMENT_SIZE) -> SealResult:
    """Encrypt ``src`` into ``dst`` as a complete ``.ebid`` file, one segment at a time.

    ``header_bytes`` must come from :func:`build_header`; ``bid_key`` is the fresh random K.
    """
    parse_header(header_bytes, segment_size=segment_size)
    header_sha256 = header_hash(header_bytes)
    enc_key, commitment = derive_keys(bid_key, header_sha256)
    prefix = b64decode(parse_canonical(header_bytes)["nonce_prefix"], "nonce_prefix")
    aead = AESGCM(enc_key)
    digest = hashlib.sha256()
    size = 0

    def write(data: bytes) -> None:
        nonlocal size
        dst.write(data)
        digest.update(data)
        size += len(data)

    write(MAGIC + _U32.pack(len(header_bytes)) + header_bytes)
    current = _read_full(src, segment_size)
    counter = 0
    while True:
        # read one segment ahead: the last flag depends on whether anything follows
        following = _read_full(src, segment_size) if len(current) == segment_size else b""
        last = not following
        if counter >= MAX_SEGMENTS:
            raise CryptoError("bad_framing", "a file has fewer than 2^32 segments")
        ciphertext = aead.encrypt(_nonce(prefix, counter), current, _aad(header_sha256, counter, last))
        write(_U32.pack(len(ciphertext)) + ciphertext)
        if last:
            break
        current = following
        counter += 1
    return SealResult(size=size, ciphertext_sha256=digest.hexdigest(),
                      header_sha256=header_sha256.hex(), commitment=commitment)


# --- key-less framing check ---------------------------------------------------------------

class FramingValidator:
    """Check strict §3 framing of a file fed chunk by chunk, without the key.

    Memory stays bounded by the header size: segment bodies are hashed and counted,
    never kept. The first error poisons the validator; :meth:`finish` returns the result
    only for a complete file.
    """

    def __init__(self, max_header: int = MAX_HEADER, segment_size: int = SEGMENT_SIZE) -> None:
        self.max_header = min(max_header, MAX_HEADER)
        self.segment_size = segment_size
        self._digest = hashlib.sha256()
        self._size = 0
        self._buffer = bytearray()       # the field being collected (magic, a length, the header)
        self._state = "magic"
        self._need = len(MAGIC)
        self._header_bytes = b""
        self._header: dict = {}
        self._segments = 0
        self._body_left = 0
        self._seen_last = False
        self._error: CryptoError | None = None

    def feed(self, chunk: bytes) -> None:
        """Consume the next bytes of the upload; raise CryptoError at the first malformation."""
        if self._error is not None:
            raise self._error
        try:
            self._feed(memoryview(chunk))
        except CryptoError as exc:
            self._error = exc
            raise

    def _feed(self, view: memoryview) -> None:
        self._digest.update(view)
        self._size += len(view)
        pos = 0
        while pos < len(view):
            if self._state == "body":
                take = min(self._body_left, len(view) - pos)
                self._body_left -= take
                pos += take
                if self._body_left == 0:
                    self._state, self._need = "length", 4
                continue
            if self._state == "length" and self._seen_last:
                raise CryptoError("trailing_bytes", "bytes follow the last segment")
            take = min(self._need - len(self._buffer), len(view) - pos)
            self._buffer += view[pos:pos + take]
            pos += take
            if len(self._buffer) == self._need:
                field = bytes(self._buffer)
                self._buffer.clear()
                self._complete(field)

    def _complete(self, field: bytes) -> None:
        if self._state == "magic":
            if field != MAGIC:
                raise CryptoError("bad_magic", "not an EBID1 file")
            self._state, self._need = "header_length", 4
        elif self._state == "header_length":
            length = _U32.unpack(field)[0]
            if length > self.max_header:
                raise CryptoError("header_too_large", f"a header is at most {self.max_header} bytes")
            if length == 0:
                raise CryptoError("bad_header", "the header is empty")
            self._state, self._need = "header", length
        elif self._state == "header":
            self._header = parse_header(field, segment_size=self.segment_size)
            self._header_bytes = field
            self._state, self._need = "length", 4
        elif self._state == "length":
            length = _U32.unpack(field)[0]
            self._seen_last = check_segment_length(length, self._segments, self.segment_size)
            self._segments += 1
            self._body_left = length
            self._state = "body"

    def finish(self) -> FramingResult:
        """Declare the end of the upload; raise ``truncated`` unless the file is complete."""
        if self._error is not None:
            raise self._error
        complete = (self._state == "length" and not self._buffer and self._segments > 0)
        if not complete:
            self._error = CryptoError("truncated", "the file ends early")
            raise self._error
        return FramingResult(header_bytes=self._header_bytes, header=self._header,
                             header_sha256=hashlib.sha256(self._header_bytes).hexdigest(),
                             ciphertext_sha256=self._digest.hexdigest(), size=self._size,
                             segments=self._segments)


def validate_framing(data: bytes, segment_size: int = SEGMENT_SIZE) -> FramingResult:
    """Check the framing of a whole file held in memory (small files, tests)."""
    validator = FramingValidator(segment_size=segment_size)
    validator.feed(data)
    return validator.finish()


# --- opening ------------------------------------------------------------------------------

def _read_exact(src: BinaryIO, size: int, what: str) -> bytes:
    data = _read_full(src, size)
    if len(data) != size:
        raise CryptoError("truncated", f"the file ends inside {what}")
    return data


def read_header(src: BinaryIO, segment_size: int = SEGMENT_SIZE) -> tuple[bytes, dict]:
    """Read the magic and header from the start of ``src``; return ``(header_bytes, header)``."""
    if _read_full(src, len(MAGIC)) != MAGIC:
        raise CryptoError("bad_magic", "not an EBID1 file")
    length = _U32.unpack(_read_exact(src, 4, "the header length"))[0]
    if length > MAX_HEADER:
        raise CryptoError("header_too_large", f"a header is at most {MAX_HEADER} bytes")
    header_bytes = _read_exact(src, length, "the header")
    return header_bytes, parse_header(header_bytes, segment_size=segment_size)


def open_stream(src: BinaryIO, dst: BinaryIO, bid_key: bytes, expected_header_sha256: str | None = None,
                segment_size: int = SEGMENT_SIZE, commitment: bytes | None = None) -> dict:
    """Decrypt a ``.ebid`` file from ``src`` into ``dst``; return the parsed header.

    Checks the header hash (hex) and the commitment first when given, then decrypts and
    authenticates segment by segment. Plaintext is written as each segment verifies, so
    on any CryptoError the caller MUST discard what was written.
    """
    header_bytes, header = read_header(src, segment_size=segment_size)
    header_sha256 = header_hash(header_bytes)
    if expected_header_sha256 is not None and not hmac.compare_digest(
            header_sha256.hex(), str(expected_header_sha256)):
        raise CryptoError("header_mismatch", "the header hash differs from the one expected")
    if commitment is not None:
        check_commitment(bid_key, header_sha256, commitment)
    enc_key, _ = derive_keys(bid_key, header_sha256)
    aead = AESGCM(enc_key)
    prefix = b64decode(header["nonce_prefix"], "nonce_prefix")
    length_field = _read_full(src, 4)
    if not length_field:
        raise CryptoError("truncated", "the file has no segments")
    counter = 0
    while True:
        if len(length_field) != 4:
            raise CryptoError("truncated", "the file ends inside a segment length")
        length = _U32.unpack(length_field)[0]
        must_be_last = check_segment_length(length, counter, segment_size)
        ciphertext = _read_exact(src, length, f"segment {counter}")
        length_field = _read_full(src, 4)   # look ahead: the last flag is "nothing follows"
        last = not length_field
        if must_be_last and not last:
            raise CryptoError("trailing_bytes", "bytes follow a short (last) segment")
        try:
            plaintext = aead.decrypt(_nonce(prefix, counter), ciphertext, _aad(header_sha256, counter, last))
        except InvalidTag:
            raise CryptoError("segment_auth_failed", f"segment {counter} does not authenticate") from None
        dst.write(plaintext)
        if last:
            return header
        counter += 1
