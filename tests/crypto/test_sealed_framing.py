"""The key-less framing check the server runs while an upload streams in (PROTOCOL §3)."""
from __future__ import annotations

import os
import random
import struct

import pytest
from hypothesis import given, settings, strategies as st

from crypto import sealed
from crypto.errors import CryptoError
from crypto_testkit import SEG, assemble, frames, make_header, seal


def feed_in_chunks(data: bytes, rng: random.Random, segment_size: int = SEG,
                   max_header: int = sealed.MAX_HEADER) -> sealed.FramingResult:
    validator = sealed.FramingValidator(max_header=max_header, segment_size=segment_size)
    pos = 0
    while pos < len(data):
        step = rng.choice([0, 1, 2, 3, 5, 17, 64, 1000])
        validator.feed(data[pos:pos + step])
        pos += step
    return validator.finish()


def framing_code(data: bytes, rng: random.Random | None = None, **kwargs) -> str:
    with pytest.raises(CryptoError) as info:
        feed_in_chunks(data, rng or random.Random(0), **kwargs)
    return info.value.code


@settings(max_examples=80, deadline=None)
@given(plaintext=st.binary(max_size=120), seed=st.integers(0, 2**32))
def test_accepts_exactly_what_the_sealer_writes(plaintext, seed):
    data, result, _ = seal(plaintext)
    framing = feed_in_chunks(data, random.Random(seed))
    header, segments = frames(data)
    assert framing.header_bytes == header
    assert framing.header["tender"] == "T-1"
    assert (framing.size, framing.ciphertext_sha256, framing.header_sha256) == (
        result.size, result.ciphertext_sha256, result.header_sha256)
    assert framing.segments == len(segments)


def test_real_segment_size_default():
    data, result, _ = seal(os.urandom(sealed.SEGMENT_SIZE + 1), segment_size=sealed.SEGMENT_SIZE)
    framing = feed_in_chunks(data, random.Random(1), segment_size=sealed.SEGMENT_SIZE)
    assert framing.segments == 2 and framing.ciphertext_sha256 == result.ciphertext_sha256
    assert sealed.validate_framing(data).size == len(data)


def body(n: int) -> bytes:
    return os.urandom(n)


@pytest.fixture
def header() -> bytes:
    return make_header()


FULL, TAG = SEG + 16, 16


@pytest.mark.parametrize("lengths, code", [
    ([FULL, 20, FULL], "trailing_bytes"),        # a short segment that is not the last
    ([20, 20], "trailing_bytes"),
    ([TAG, FULL], "trailing_bytes"),             # an empty segment that is not alone
    ([FULL, TAG], "bad_framing"),                # an empty last segment after data
    ([FULL + 1], "bad_framing"),                 # longer than a full segment
    ([15], "bad_framing"),                       # shorter than a tag
    ([0], "bad_framing"),
    ([], "truncated"),                           # no segments at all
])
def test_rejects_bad_segment_lengths(header, lengths, code):
    data = assemble(header, [body(n) for n in lengths])
    for seed in range(5):
        assert framing_code(data, random.Random(seed)) == code


def test_accepts_boundary_lengths(header):
    for lengths in ([TAG], [17], [FULL], [FULL, FULL], [FULL, 17], [FULL, FULL - 1]):
        result = feed_in_chunks(assemble(header, [body(n) for n in lengths]), random.Random(2))
        assert result.segments == len(lengths)


def test_rejects_bad_magic_header_and_sizes(header):
    good = assemble(header, [body(20)])
    assert framing_code(b"EBID2\n" + good[6:]) == "bad_magic"
    assert framing_code(b"ebid1\n" + good[6:]) == "bad_magic"
    assert framing_code(b"EBID1\n" + struct.pack(">I", 0) + struct.pack(">I", 20) + body(20)) == "bad_header"
    assert framing_code(assemble(header + b" ", [body(20)])) == "bad_header"
    assert framing_code(assemble(make_header(segment_size=32), [body(20)])) == "bad_header"
    # the header length is refused before any of the header is buffered
    validator = sealed.FramingValidator(max_header=1024, segment_size=SEG)
    with pytest.raises(CryptoError) as info:
        validator.feed(b"EBID1\n" + struct.pack(">I", 1025))
    assert info.value.code == "header_too_large"
    validator = sealed.FramingValidator(segment_size=SEG)
    with pytest.raises(CryptoError) as info:
        validator.feed(b"EBID1\n" + struct.pack(">I", 2**32 - 1))
    assert info.value.code == "header_too_large"


def test_rejects_truncation_anywhere_and_trailing_bytes(header):
    data, _, _ = seal(os.urandom(2 * SEG + 3))
    header_end = 10 + len(frames(data)[0])
    # a cut right after a full segment leaves a well-framed shorter file; only the
    # last flag, checked when opening with the key, catches that (see test_sealed_file)
    boundaries = {header_end + 4 + FULL, header_end + 2 * (4 + FULL)}
    for cut in range(len(data)):
        if cut in boundaries:
            assert feed_in_chunks(data[:cut], random.Random(cut)).segments in (1, 2)
        else:
            assert framing_code(data[:cut], random.Random(cut)) in {"truncated", "bad_magic", "bad_header"}
    assert framing_code(data + b"\x00") == "trailing_bytes"
    full, _, _ = seal(os.urandom(2 * SEG))
    # after a full last segment one more byte could start another segment: the file is truncated
    assert framing_code(full + b"\x00") == "truncated"
    assert framing_code(full + struct.pack(">I", 20) + body(19)) == "truncated"


def test_a_failed_validator_stays_failed(header):
    validator = sealed.FramingValidator(segment_size=SEG)
    with pytest.raises(CryptoError):
        validator.feed(b"XXXXXX")
    for call in (lambda: validator.feed(b""), validator.finish):
        with pytest.raises(CryptoError) as info:
            call()
        assert info.value.code == "bad_magic"


def test_segment_count_limit():
    assert sealed.check_segment_length(FULL, sealed.MAX_SEGMENTS - 1, SEG) is False
    with pytest.raises(CryptoError) as info:
        sealed.check_segment_length(FULL, sealed.MAX_SEGMENTS, SEG)
    assert info.value.code == "bad_framing"
