"""PROTOCOL §1 encodings: canonical JSON, strict base64, identifiers, money, times."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from crypto.canonical import (MAX_INT, b64decode, b64encode, canonical_json, check_hex, check_identifier,
                              check_money, format_time, loads_strict, parse_canonical, parse_time, sha256_hex)
from crypto.errors import CryptoError


def code_of(fn, *args, **kwargs) -> str:
    with pytest.raises(CryptoError) as info:
        fn(*args, **kwargs)
    return info.value.code


# --- canonical JSON -----------------------------------------------------------------------

def test_canonical_matches_the_python_recipe_and_sorts_keys():
    obj = {"b": [1, True, None, "x"], "a": {"z": "é\u2028", "y": 0}, "c": "\"\\\n\x01\x7f"}
    expected = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode()
    assert canonical_json(obj) == expected
    assert canonical_json(obj).startswith(b'{"a":{"y":0,"z":"\xc3\xa9\xe2\x80\xa8"}')


def test_rfc8785_string_escapes():
    # RFC 8785 / ECMAScript: short escapes for \b \t \n \f \r, lower-case \u00xx for other C0
    assert canonical_json("\b\t\n\f\r\x00\x1f/") == b'"\\b\\t\\n\\f\\r\\u0000\\u001f/"'


@pytest.mark.parametrize("value", [
    1.0, float("nan"), float("inf"), -1, MAX_INT + 1, {"A": 1}, {"a-b": 1}, {"": 1}, {1: 2},
    {"é": 1}, (1, 2), b"bytes", "\ud800", {"a": [1.5]}, {"a": {"b": -3}},
])
def test_canonical_refuses_values_outside_the_subset(value):
    assert code_of(canonical_json, value) == "bad_canonical_json"


def test_canonical_accepts_the_integer_bounds_and_booleans():
    assert canonical_json([0, MAX_INT, True, False, None]) == b"[0,9007199254740991,true,false,null]"


@pytest.mark.parametrize("data, code", [
    (b'{"a":1,"a":2}', "duplicate_key"),
    (b'{"a":{"b":1,"b":1}}', "duplicate_key"),
    (b'{"a":1.0}', "bad_canonical_json"),
    (b'{"a":1e3}', "bad_canonical_json"),
    (b'{"a":NaN}', "bad_canonical_json"),
    (b'{"a":-Infinity}', "bad_canonical_json"),
    (b'{"a":-1}', "bad_canonical_json"),
    (b'{"a":9007199254740992}', "bad_canonical_json"),
    (b'{"A":1}', "bad_canonical_json"),
    (b'{"a":"\\ud800"}', "bad_canonical_json"),
    (b'\xff', "bad_canonical_json"),
    (b'{"a":', "bad_canonical_json"),
    (b'{"a":01}', "bad_canonical_json"),
    (b'\xef\xbb\xbf{}', "bad_canonical_json"),
    ('{"a":1}'.encode("utf-16"), "bad_canonical_json"),
])
def test_strict_parsers_refuse(data, code):
    assert code_of(loads_strict, data) == code
    assert code_of(parse_canonical, data) == code


@pytest.mark.parametrize("data", [
    b'{"b":1,"a":2}', b'{"a": 1}', b' {"a":1}', b'{"a":1}\n', b'{"a":"\\u00e9"}', b'{"a":"\\/"}',
    b'{"a":-0}', b'[1 ]', b'"\\u001F"',
])
def test_parse_canonical_refuses_non_canonical_bytes_that_loads_strict_accepts(data):
    loads_strict(data)
    assert code_of(parse_canonical, data) == "bad_canonical_json"


def test_deep_nesting_is_refused_cleanly():
    assert code_of(loads_strict, b"[" * 100000 + b"]" * 100000) == "bad_canonical_json"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(0, MAX_INT) | st.text(st.characters(blacklist_categories=("Cs",))),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.from_regex(r"[a-z0-9_]{1,8}", fullmatch=True), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_canonical_round_trip(value):
    data = canonical_json(value)
    assert parse_canonical(data) == value
    assert loads_strict(data) == value


# --- base64 -------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "QQ", "QQ=", "QR==", "QUI", "QUJ=", "QUJD\n", " QUJD", "QU JD", "QUJD====", "Q===", "====",
    "QUJ-", "QUJ_", "QU=D", "QUJDRA", "Zg==Zg==", "\u0661\u0662==", b"QUJD",
])
def test_b64decode_is_strict(text):
    assert code_of(b64decode, text) == "bad_base64"


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64))
def test_b64_round_trip(raw):
    assert b64decode(b64encode(raw)) == raw


def test_b64decode_length():
    assert b64decode("", "x") == b""
    assert b64decode(b64encode(b"\x00" * 8), "nonce", length=8) == bytes(8)
    assert code_of(b64decode, b64encode(b"\x00" * 7), "nonce", length=8) == "bad_base64"


# --- identifiers, money, hex --------------------------------------------------------------

@pytest.mark.parametrize("value", ["a", "T-2026.001_x", "0", "A" * 128, "bid-form.json"])
def test_identifiers_accepted(value):
    assert check_identifier(value, "tender") == value


@pytest.mark.parametrize("value", ["", ".a", "-a", "_a", "a b", "a/b", "A" * 129, "é", "a\n", 5, None, "ａ"])
def test_identifiers_refused(value):
    assert code_of(check_identifier, value, "tender") == "bad_identifier"


@pytest.mark.parametrize("value", ["0", "0.5", "0.05", "1", "1234.50", "9" * 16, "9" * 16 + ".99"])
def test_money_accepted(value):
    assert check_money(value, "price") == value


@pytest.mark.parametrize("value", ["", "01", "1.", ".5", "1.234", "-1", "+1", "1e3", "9" * 17, "1,000",
                                   "1.5\n", 1, 1.5, "\u0661"])
def test_money_refused(value):
    assert code_of(check_money, value, "price") == "bad_money"


def test_hex_and_sha256():
    assert sha256_hex(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert check_hex("ab" * 32, "h") == "ab" * 32
    for bad in ("AB" * 32, "ab" * 31, "g" * 64, None):
        assert code_of(check_hex, bad, "h") == "bad_hex"


# --- times --------------------------------------------------------------------------------

def test_format_time_is_utc_with_truncated_millis():
    shanghai = timezone(timedelta(hours=8))
    instant = datetime(2026, 5, 1, 17, 30, 0, 999999, tzinfo=shanghai)
    assert format_time(instant) == "2026-05-01T09:30:00.999Z"
    assert parse_time("2026-05-01T09:30:00.999Z") == instant.replace(microsecond=999000)
    assert code_of(format_time, datetime(2026, 5, 1)) == "bad_time"


@pytest.mark.parametrize("text", [
    "2026-05-01T09:30:00Z", "2026-05-01T09:30:00.000+00:00", "2026-05-01 09:30:00.000Z",
    "2026-05-01T09:30:00.0000Z", "2026-05-01t09:30:00.000z", "2026-02-30T09:30:00.000Z",
    "2026-05-01T24:00:00.000Z", "2026-05-01T09:30:60.000Z", "2026-05-01T09:30:00.000Z\n",
    "\u0662026-05-01T09:30:00.000Z", 0,
])
def test_parse_time_is_strict(text):
    assert code_of(parse_time, text) == "bad_time"
