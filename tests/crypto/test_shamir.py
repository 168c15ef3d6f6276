"""Shamir sharing over GF(2^8) with polynomial 0x11b (PROTOCOL §4)."""
from __future__ import annotations

import itertools
import os

import pytest
from hypothesis import given, settings, strategies as st

from crypto.errors import CryptoError
from crypto.shamir import combine, gf_inv, gf_mul, split


def test_known_answer_from_draft_mcgrew_tss():
    points = [(1, bytes.fromhex("B9FA07E185")), (2, bytes.fromhex("F5409B4511"))]
    assert combine(points) == bytes.fromhex("7465737400") == b"test\x00"
    assert combine(list(reversed(points)), n=2) == b"test\x00"


def test_field_arithmetic():
    assert gf_mul(0x57, 0x83) == 0xC1          # FIPS-197 §4.2 example
    assert gf_mul(0x57, 0x13) == 0xFE
    assert all(gf_mul(a, gf_inv(a)) == 1 for a in range(1, 256))
    assert all(gf_mul(a, 0) == 0 and gf_mul(a, 1) == a for a in range(256))


def test_k_equal_one_gives_the_secret_to_everyone():
    secret = os.urandom(32)
    assert split(secret, 1, 3) == [(1, secret), (2, secret), (3, secret)]


def test_zero_coefficients_are_allowed():
    assert split(b"\x2a\x00", 3, 3, randbytes=lambda n: bytes(n)) == [(i, b"\x2a\x00") for i in (1, 2, 3)]


def test_shares_follow_the_polynomial():
    # secret 0x01, coefficient 0x02: f(x) = 1 + 2x
    assert split(b"\x01", 2, 3, randbytes=lambda n: b"\x02" * n) == [(1, b"\x03"), (2, b"\x05"), (3, b"\x07")]


@pytest.mark.parametrize("points, n", [
    ([(0, b"\x01"), (1, b"\x02")], None),               # index 0 would be the secret itself
    ([(1, b"\x01"), (3, b"\x02")], 2),                  # above n
    ([(1, b"\x01"), (256, b"\x02")], None),             # above 255
    ([(1, b"\x01"), (1, b"\x01")], None),               # duplicate
    ([(1, b"\x01"), (2, b"\x02\x03")], None),           # lengths differ
    ([(True, b"\x01"), (2, b"\x02")], None),            # not an integer index
    ([(-1, b"\x01")], None),
])
def test_combine_rejections(points, n):
    with pytest.raises(CryptoError) as info:
        combine(points, n=n)
    assert info.value.code == "bad_share"


def test_combine_needs_shares_and_split_checks_parameters():
    with pytest.raises(CryptoError) as info:
        combine([])
    assert info.value.code == "not_enough_shares"
    for k, n in ((0, 1), (2, 1), (1, 256), (3, 2)):
        with pytest.raises(CryptoError) as info:
            split(b"x", k, n)
        assert info.value.code == "bad_share"


@settings(max_examples=40, deadline=None)
@given(secret=st.binary(min_size=1, max_size=32), n=st.integers(1, 7), data=st.data())
def test_any_k_of_n_reconstruct(secret, n, data):
    k = data.draw(st.integers(1, n), label="k")
    shares = split(secret, k, n)
    for subset in itertools.combinations(shares, k):
        order = data.draw(st.permutations(list(subset)), label="order")
        assert combine(order, n=n) == secret
    assert combine(shares, n=n) == secret        # more than k also works


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 7), data=st.data())
def test_k_minus_one_shares_do_not_give_the_secret(n, data):
    k = data.draw(st.integers(2, n), label="k")
    secret = os.urandom(32)   # fresh randomness: a chance match of 32 bytes is 2^-256
    shares = split(secret, k, n)
    subset = data.draw(st.lists(st.sampled_from(shares), min_size=k - 1, max_size=k - 1, unique=True), label="subset")
    assert combine(subset, n=n) != secret
