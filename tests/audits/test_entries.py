"""Audit log entries: exact bytes, strict parsing and the salted detail hash."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audits.entries import (
    HIDDEN,
    EntryError,
    detail_hash,
    hidden_entry,
    is_hidden,
    make_entry,
    parse_entry,
)

AT = "2026-05-01T09:30:00.000Z"
SALT = bytes(range(32))
DETAIL = "ab" * 32


def _entry(**changes) -> dict:
    fields = {"index": 7, "at": AT, "actor": "user:alice", "action": "tender.published",
              "subject": "tender:T-1", "data": {"title": "路灯维修"}, "detail_sha256": None}
    fields.update(changes)
    return fields


def test_exact_bytes() -> None:
    raw = make_entry(**_entry())
    assert raw == (
        '{"action":"tender.published","actor":"user:alice","at":"2026-05-01T09:30:00.000Z",'
        '"data":{"title":"路灯维修"},"detail_sha256":null,"index":7,"subject":"tender:T-1"}'
    ).encode("utf-8")
    assert parse_entry(raw) == _entry()


def test_hidden_submission() -> None:
    raw = hidden_entry(3, AT, "bid.submitted", DETAIL)
    entry = parse_entry(raw)
    assert entry["actor"] == entry["subject"] == HIDDEN and entry["data"] == {}
    assert entry["detail_sha256"] == DETAIL and is_hidden(entry)
    assert not is_hidden(_entry())


def test_datetime_at_is_formatted() -> None:
    shanghai = timezone(timedelta(hours=8))
    at = datetime(2026, 5, 1, 17, 30, 0, 123456, tzinfo=shanghai)
    assert parse_entry(make_entry(**_entry(at=at)))["at"] == "2026-05-01T09:30:00.123Z"
    with pytest.raises(EntryError):
        make_entry(**_entry(at=datetime(2026, 5, 1)))


@pytest.mark.parametrize(
    "changes",
    [
        {"index": -1}, {"index": 2**53}, {"index": True}, {"index": "7"},
        {"at": "2026-05-01T09:30:00Z"}, {"at": "2026-05-01T09:30:00.000+08:00"},
        {"at": "2026-02-30T09:30:00.000Z"}, {"at": None},
        {"actor": ""}, {"actor": None}, {"subject": 5},
        {"action": "Bid.Submitted"}, {"action": "bid..submitted"}, {"action": ""},
        {"data": []}, {"data": None}, {"data": {"price": 1.5}}, {"data": {"Bad-Key": 1}},
        {"detail_sha256": "AB" * 32}, {"detail_sha256": "ab" * 31}, {"detail_sha256": ""},
    ],
)
def test_make_refuses_malformed_fields(changes: dict) -> None:
    with pytest.raises(EntryError) as caught:
        make_entry(**_entry(**changes))
    assert caught.value.code == "bad_entry"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b"not json",
        # not canonical: spaces, key order
        json.dumps(_entry(), ensure_ascii=False).encode(),
        json.dumps(_entry(), sort_keys=True, ensure_ascii=True, separators=(",", ":")).encode(),
        # a missing and an extra key
        json.dumps({k: v for k, v in _entry().items() if k != "data"}, sort_keys=True,
                   separators=(",", ":")).encode(),
        json.dumps(_entry(extra=1), sort_keys=True, separators=(",", ":"),
                   ensure_ascii=False).encode(),
        # a duplicate key
        b'{"action":"a","action":"a","actor":"x","at":"2026-05-01T09:30:00.000Z","data":{},'
        b'"detail_sha256":null,"index":0,"subject":"s"}',
        # a float index
        b'{"action":"a","actor":"x","at":"2026-05-01T09:30:00.000Z","data":{},'
        b'"detail_sha256":null,"index":0.0,"subject":"s"}',
        b"\xff",
    ],
)
def test_parse_refuses(raw: bytes) -> None:
    with pytest.raises(EntryError) as caught:
        parse_entry(raw)
    assert caught.value.code == "bad_entry"


def test_parse_checks_fields_too() -> None:
    canonical = json.dumps(_entry(at="yesterday"), sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False).encode()
    with pytest.raises(EntryError):
        parse_entry(canonical)


def test_detail_hash() -> None:
    detail = {"bidder": "B-1", "manifest_sha256": "cd" * 32}
    want = hashlib.sha256(
        b"ebid/v1 detail\n" + SALT
        + b'{"bidder":"B-1","manifest_sha256":"' + b"cd" * 32 + b'"}'
    ).hexdigest()
    assert detail_hash(SALT, detail) == want
    assert detail_hash(bytes(32), detail) != want  # the salt matters
    for salt in (b"", bytes(31), bytes(33)):
        with pytest.raises(EntryError):
            detail_hash(salt, detail)
    with pytest.raises(EntryError):
        detail_hash(SALT, {"price": 1.5})


_json = st.recursive(
    st.none() | st.booleans() | st.integers(0, 2**53 - 1) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.from_regex(r"[a-z0-9_]{1,8}", fullmatch=True), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=100, deadline=None)
@given(
    index=st.integers(0, 2**53 - 1),
    actor=st.text(min_size=1, max_size=20),
    subject=st.text(min_size=1, max_size=20),
    data=st.dictionaries(st.from_regex(r"[a-z0-9_]{1,8}", fullmatch=True), _json, max_size=4),
    detail=st.none() | st.binary(min_size=32, max_size=32).map(lambda b: b.hex()),
)
def test_round_trip(index: int, actor: str, subject: str, data: dict, detail: str | None) -> None:
    try:
        raw = make_entry(index, AT, actor, "award.published", subject, data, detail)
    except EntryError:
        return  # lone surrogates are not Unicode scalar values; refusing them is right
    assert parse_entry(raw) == {"index": index, "at": AT, "actor": actor,
                                "action": "award.published", "subject": subject,
                                "data": data, "detail_sha256": detail}
