"""The sealed file of PROTOCOL §3: round trips, an independent re-implementation, tampering."""
from __future__ import annotations

import hashlib
import io
import os
import struct

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import HealthCheck, given, settings, strategies as st

from crypto import sealed
from crypto.canonical import b64decode, canonical_json, parse_canonical, sha256_hex
from crypto.errors import CryptoError
from crypto_testkit import SEG, assemble, frames, make_header, seal, unseal


def open_code(data: bytes, key: bytes, segment_size: int = SEG, **kwargs) -> str:
    with pytest.raises(CryptoError) as info:
        unseal(data, key, segment_size, **kwargs)
    return info.value.code


# --- an independent implementation written from PROTOCOL §3 alone -------------------------

def spec_hkdf(key: bytes, label: bytes, h: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"", info=label + h).derive(key)


def spec_seal(plaintext: bytes, header: bytes, key: bytes, segment_size: int, last_flags=None) -> bytes:
    h = hashlib.sha256(header).digest()
    enc_key = spec_hkdf(key, b"ebid/v1 enc", h)
    prefix = b64decode(parse_canonical(header)["nonce_prefix"])
    chunks = [plaintext[i:i + segment_size] for i in range(0, len(plaintext), segment_size)] or [b""]
    out = b"EBID1\n" + struct.pack(">I", len(header)) + header
    for c, chunk in enumerate(chunks):
        last = (c == len(chunks) - 1) if last_flags is None else last_flags[c]
        ct = AESGCM(enc_key).encrypt(prefix + struct.pack(">I", c), chunk,
                                     h + struct.pack(">I", c) + (b"\x01" if last else b"\x00"))
        out += struct.pack(">I", len(ct)) + ct
    return out


# --- round trips ----------------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1, 2 * SEG, 2 * SEG + 1, 5 * SEG + 7])
def test_round_trip_and_layout(size):
    plaintext = os.urandom(size)
    data, result, key = seal(plaintext)
    assert unseal(data, key, expected_header_sha256=result.header_sha256, commitment=result.commitment) == plaintext
    assert result.size == len(data) and result.ciphertext_sha256 == sha256_hex(data)
    header, segments = frames(data)
    assert result.header_sha256 == sha256_hex(header)
    expected_segments = max(1, -(-size // SEG))
    assert len(segments) == expected_segments
    assert all(len(s) == SEG + 16 for s in segments[:-1])
    assert len(segments[-1]) == (size - (expected_segments - 1) * SEG) + 16
    # byte-identical to the independent implementation (GCM is deterministic given key and nonce)
    assert data == spec_seal(plaintext, header, key, SEG)
    _, commitment = sealed.derive_keys(key, bytes.fromhex(result.header_sha256))
    assert commitment == result.commitment == spec_hkdf(key, b"ebid/v1 commit", bytes.fromhex(result.header_sha256))


@pytest.mark.parametrize("size", [sealed.SEGMENT_SIZE, sealed.SEGMENT_SIZE + 1])
def test_real_segment_size_boundary(size):
    plaintext = os.urandom(size)
    data, result, key = seal(plaintext, segment_size=sealed.SEGMENT_SIZE)
    header, segments = frames(data)
    assert parse_canonical(header)["segment_size"] == 1048576
    assert [len(s) for s in segments] == ([1048592] if size == sealed.SEGMENT_SIZE else [1048592, 17])
    assert unseal(data, key, sealed.SEGMENT_SIZE, commitment=result.commitment) == plaintext


class ShortReads(io.RawIOBase):
    """A pipe-like source that returns at most 3 bytes per read and records the largest request."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.largest = data, 0, 0

    def read(self, size: int = -1) -> bytes:
        assert size > 0, "the sealer must never read unbounded"
        self.largest = max(self.largest, size)
        chunk = self.data[self.pos:self.pos + min(size, 3)]
        self.pos += len(chunk)
        return chunk


def test_sealer_handles_short_reads_and_reads_at_most_one_segment():
    plaintext = os.urandom(3 * SEG + 5)
    header, key = make_header(), os.urandom(32)
    source = ShortReads(plaintext)
    out = io.BytesIO()
    sealed.seal_stream(source, out, header, key, segment_size=SEG)
    assert source.largest <= SEG
    assert out.getvalue() == spec_seal(plaintext, header, key, SEG)
    reader = ShortReads(out.getvalue())
    plain = io.BytesIO()
    sealed.open_stream(reader, plain, key, segment_size=SEG)
    assert plain.getvalue() == plaintext and reader.largest <= max(len(header), SEG + 16)


# --- header ---------------------------------------------------------------------------------

def test_header_fields_are_exactly_the_protocols():
    header = parse_canonical(make_header(sealed.SEGMENT_SIZE))
    assert sorted(header) == sorted(sealed.HEADER_KEYS)
    assert header["v"] == 1 and header["suite"] == "x25519-hkdf-sha256-aes256gcm"


@pytest.mark.parametrize("change", [
    lambda h: {**h, "v": 2}, lambda h: {**h, "v": True}, lambda h: {**h, "suite": "sm2-sm3-sm4"},
    lambda h: {**h, "extra": 1}, lambda h: {k: v for k, v in h.items() if k != "created"},
    lambda h: {**h, "tender": "bad tender"}, lambda h: {**h, "file": ".hidden"},
    lambda h: {**h, "policy_sha256": "AB" * 32}, lambda h: {**h, "threshold": 0}, lambda h: {**h, "threshold": 3},
    lambda h: {**h, "custodians": []}, lambda h: {**h, "custodians": list(reversed(h["custodians"]))},
    lambda h: {**h, "custodians": [{"i": 1, "kid": "0123456789abcdef", "x": 1}, h["custodians"][1]]},
    lambda h: {**h, "custodians": [h["custodians"][0], {"i": 3, "kid": "fedcba9876543210"}]},
    lambda h: {**h, "custodians": [{"i": 1, "kid": "0123"}, h["custodians"][1]]},
    lambda h: {**h, "segment_size": 1048576}, lambda h: {**h, "nonce_prefix": "AAAA"},
    lambda h: {**h, "nonce_prefix": "AAAAAAAAAAAAAA=="}, lambda h: {**h, "created": "2026-05-01T09:30:00Z"},
])
def test_parse_header_refuses(change):
    header = parse_canonical(make_header())
    with pytest.raises(CryptoError) as info:
        sealed.parse_header(canonical_json(change(header)), segment_size=SEG)
    assert info.value.code == "bad_header"


def test_parse_header_refuses_non_canonical_and_oversized():
    header = make_header()
    for bad in (header + b" ", header.replace(b'"v":1', b'"v": 1'), b'{"v":1,"v":1}'):
        with pytest.raises(CryptoError) as info:
            sealed.parse_header(bad, segment_size=SEG)
        assert info.value.code == "bad_header"
    with pytest.raises(CryptoError) as info:
        sealed.parse_header(make_header())  # declares 16, the protocol requires 1048576
    assert info.value.code == "bad_header"
    with pytest.raises(CryptoError) as info:
        sealed.parse_header(b" " * (sealed.MAX_HEADER + 1))
    assert info.value.code == "header_too_large"
    with pytest.raises(CryptoError) as info:
        make_header(file="x" * 129)
    assert info.value.code == "bad_header"


# --- tampering ------------------------------------------------------------------------------

def test_flipped_bit_in_any_segment_fails():
    data, result, key = seal(os.urandom(3 * SEG + 4))
    header, segments = frames(data)
    for c in range(len(segments)):
        for position in (0, len(segments[c]) - 1):   # a ciphertext byte and a tag byte
            changed = [bytearray(s) for s in segments]
            changed[c][position] ^= 0x01
            assert open_code(assemble(header, [bytes(s) for s in changed]), key) == "segment_auth_failed"


def test_reordered_and_dropped_segments_fail():
    data, _, key = seal(os.urandom(3 * SEG + 4))
    header, segments = frames(data)
    swapped = [segments[1], segments[0], segments[2], segments[3]]
    assert open_code(assemble(header, swapped), key) == "segment_auth_failed"
    # dropping a middle segment, or the short last one: still well framed, caught by nonce and last flag
    assert open_code(assemble(header, segments[:1] + segments[2:]), key) == "segment_auth_failed"
    assert open_code(assemble(header, segments[:3]), key) == "segment_auth_failed"


def test_wrong_last_flag_fails():
    plaintext = os.urandom(2 * SEG + 3)
    header, key = make_header(), os.urandom(32)
    assert unseal(spec_seal(plaintext, header, key, SEG), key) == plaintext
    for flags in ([False, False, False], [False, True, True], [True, False, True]):
        assert open_code(spec_seal(plaintext, header, key, SEG, last_flags=flags), key) == "segment_auth_failed"
    empty = spec_seal(b"", header, key, SEG, last_flags=[False])
    assert open_code(empty, key) == "segment_auth_failed"


def test_truncation_at_every_point_fails():
    data, _, key = seal(os.urandom(2 * SEG + 3))
    for cut in range(len(data)):
        assert open_code(data[:cut], key) in {"bad_magic", "truncated", "bad_header", "segment_auth_failed"}


def test_trailing_bytes_fail():
    for size in (0, SEG - 1, SEG):
        data, _, key = seal(os.urandom(size))
        for tail in (b"\x00", b"\x00" * 4, struct.pack(">I", 17) + bytes(17)):
            assert open_code(data + tail, key) in {"trailing_bytes", "truncated", "segment_auth_failed"}
    data, _, key = seal(os.urandom(SEG - 1))
    assert open_code(data + b"\x00", key) == "trailing_bytes"


def test_framing_errors_while_opening():
    data, _, key = seal(os.urandom(SEG + 3))
    header, segments = frames(data)
    assert open_code(b"EBID2\n" + data[6:], key) == "bad_magic"
    assert open_code(assemble(header, [segments[0] + b"\x00", segments[1]]), key) == "bad_framing"
    assert open_code(assemble(header, [segments[0][:-1], segments[1]]), key) == "trailing_bytes"
    assert open_code(assemble(header, [bytes(15)]), key) == "bad_framing"
    assert open_code(assemble(header, []), key) == "truncated"
    big = b"EBID1\n" + struct.pack(">I", sealed.MAX_HEADER + 1)
    assert open_code(big, key) == "header_too_large"


def test_wrong_key_hash_or_commitment():
    data, result, key = seal(os.urandom(40))
    other = os.urandom(32)
    assert open_code(data, other) == "segment_auth_failed"
    assert open_code(data, key, expected_header_sha256="00" * 32) == "header_mismatch"
    assert open_code(data, other, commitment=result.commitment) == "commitment_mismatch"
    sealed.check_commitment(key, bytes.fromhex(result.header_sha256), result.commitment)
    with pytest.raises(CryptoError) as info:
        sealed.check_commitment(key, bytes.fromhex(result.header_sha256), result.commitment[:-1] + b"\x00")
    assert info.value.code == "commitment_mismatch"


# --- properties -----------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(plaintext=st.binary(max_size=200), segment_size=st.integers(1, 48))
def test_any_plaintext_round_trips(plaintext, segment_size):
    data, result, key = seal(plaintext, segment_size)
    assert unseal(data, key, segment_size, commitment=result.commitment) == plaintext
    assert data == spec_seal(plaintext, frames(data)[0], key, segment_size)


_FIXED = {}


def fixed_file():
    # one sealed file shared by the examples; hypothesis picks where and how to change it
    if not _FIXED:
        _FIXED["file"] = seal(os.urandom(2 * SEG + 5))
    return _FIXED["file"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_single_byte_change_fails_to_open(data):
    sealed_bytes, _, key = fixed_file()
    position = data.draw(st.integers(0, len(sealed_bytes) - 1), label="position")
    delta = data.draw(st.integers(1, 255), label="xor")
    changed = bytearray(sealed_bytes)
    changed[position] ^= delta
    with pytest.raises(CryptoError):
        unseal(bytes(changed), key)
