"""Manifests, receipts, withdrawals and releases (PROTOCOL §5-§6)."""
from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest

from crypto import manifest as mf
from crypto.canonical import b64encode, canonical_json, sha256_hex
from crypto.errors import CryptoError
from crypto.policy import parse_policy
from crypto.signing import MANIFEST, sign_object, verify_object
from crypto.keys import generate_private_key, raw_public_bytes
from crypto.sealed import build_header
from crypto_testkit import BIDDER, CREATED, LOT, TENDER, build_policy, new_party, seal_bid


@pytest.fixture(scope="module")
def bid(policy_3_of_4):
    return seal_bid(os.urandom(100), policy_3_of_4)


def code(fn, *args) -> str:
    with pytest.raises(CryptoError) as info:
        fn(*args)
    return info.value.code


def test_manifest_shape_and_id(bid, policy_3_of_4):
    manifest = bid.manifest
    assert set(manifest) == mf.MANIFEST_KEYS
    assert [s["i"] for s in manifest["shares"]] == [1, 2, 3, 4]
    assert manifest["supersedes"] is None
    assert mf.manifest_sha256(manifest) == sha256_hex(canonical_json(manifest))
    policy = parse_policy(policy_3_of_4)
    header = mf.check_manifest_against_header(manifest, bid.header_bytes, policy)
    assert header["tender"] == TENDER
    mf.check_manifest_against_upload(manifest, sha256_hex(bid.ebid), len(bid.ebid))
    key = generate_private_key("ed25519")
    envelope = sign_object("manifest", manifest, key, MANIFEST)
    assert verify_object(envelope, "manifest", MANIFEST, raw_public_bytes(key)) == manifest


@pytest.mark.parametrize("change", [
    lambda m: {**m, "extra": 1},
    lambda m: {k: v for k, v in m.items() if k != "nonce"},
    lambda m: {**m, "lot": "L 1"},
    lambda m: {**m, "header_sha256": m["header_sha256"].upper()},
    lambda m: {**m, "size": 0}, lambda m: {**m, "size": "1"},
    lambda m: {**m, "commitment": b64encode(bytes(31))},
    lambda m: {**m, "nonce": b64encode(bytes(15))},
    lambda m: {**m, "nonce": m["nonce"].rstrip("=")},
    lambda m: {**m, "supersedes": "abc"},
    lambda m: {**m, "shares": []},
    lambda m: {**m, "shares": list(reversed(m["shares"]))},
    lambda m: {**m, "shares": [m["shares"][0], m["shares"][0]]},
    lambda m: {**m, "shares": [{**m["shares"][0], "extra": 1}]},
    lambda m: {**m, "shares": [{**m["shares"][0], "sealed": b64encode(bytes(80))}]},
    lambda m: {**m, "shares": [{**m["shares"][0], "digest": "0" * 63}]},
    lambda m: {**m, "shares": [{**m["shares"][0], "i": 0}]},
])
def test_manifest_structure_rejections(bid, change):
    assert code(mf.check_manifest, change(bid.manifest)) == "bad_manifest"


def test_manifest_against_header_policy_and_upload(bid, policy_3_of_4):
    policy = parse_policy(policy_3_of_4)
    m = bid.manifest
    assert code(mf.check_manifest_against_header, {**m, "header_sha256": "0" * 64}, bid.header_bytes, policy) \
        == "manifest_mismatch"
    assert code(mf.check_manifest_against_header, {**m, "bidder": "B-other"}, bid.header_bytes, policy) \
        == "manifest_mismatch"
    assert code(mf.check_manifest_against_header, {**m, "file": "other.pdf"}, bid.header_bytes, policy) \
        == "manifest_mismatch"
    assert code(mf.check_manifest_against_header, m, bid.header_bytes + b" ", policy) == "bad_header"
    other_policy = parse_policy(build_policy([new_party() for _ in range(4)], 3))
    assert code(mf.check_manifest_against_header, m, bid.header_bytes, other_policy) == "policy_mismatch"
    # a header that claims the right policy but seals to other keys is caught by kid
    strangers = [{"i": i, "kid": new_party().x25519_kid} for i in range(1, 5)]
    forged_header = build_header(TENDER, LOT, BIDDER, m["file"], policy.sha256, 3, strangers, os.urandom(8), CREATED)
    forged = {**m, "header_sha256": sha256_hex(forged_header)}
    assert code(mf.check_manifest_against_header, forged, forged_header, policy) == "policy_mismatch"
    lower = build_header(TENDER, LOT, BIDDER, m["file"], policy.sha256, 2,
                         [{"i": c.i, "kid": c.kid} for c in policy.custodians], os.urandom(8), CREATED)
    assert code(mf.check_manifest_against_header, {**m, "header_sha256": sha256_hex(lower)}, lower, policy) \
        == "policy_mismatch"
    assert code(mf.check_manifest_against_header, {**m, "shares": m["shares"][:3]}, bid.header_bytes, policy) \
        == "policy_mismatch"
    assert code(mf.check_manifest_against_upload, m, sha256_hex(bid.ebid), len(bid.ebid) + 1) == "manifest_mismatch"
    assert code(mf.check_manifest_against_upload, m, "0" * 64, len(bid.ebid)) == "manifest_mismatch"


def test_bidder_slot_kid_is_not_checked_against_the_policy():
    bidder = new_party()
    data = build_policy([None, new_party()], 2)
    sealed_bid = seal_bid(b"form", data, bidder_x25519_raw=bidder.x25519_raw)
    mf.check_manifest_against_header(sealed_bid.manifest, sealed_bid.header_bytes, parse_policy(data))


def test_receipt(bid):
    receipt = mf.make_receipt(bid.manifest, datetime(2026, 5, 1, 1, 2, 3, 456789, tzinfo=timezone.utc), 7,
                              os.urandom(32))
    assert set(receipt) == mf.RECEIPT_KEYS
    assert receipt["receipt"] == receipt["manifest_sha256"] == mf.manifest_sha256(bid.manifest)
    assert receipt["received_at"] == "2026-05-01T01:02:03.456Z"
    for bad in ({**receipt, "receipt": "0" * 64}, {**receipt, "log_index": -1}, {**receipt, "received_at": "now"},
                {**receipt, "detail_salt": b64encode(bytes(16))}, {**receipt, "extra": None}):
        assert code(mf.check_receipt, bad) == "bad_receipt"


def test_withdrawal():
    receipts = ["a" * 64, "b" * 64]
    payload = mf.make_withdrawal(TENDER, LOT, BIDDER, receipts, os.urandom(16))
    assert set(payload) == mf.WITHDRAWAL_KEYS and payload["receipts"] == receipts
    for bad in ({**payload, "receipts": []}, {**payload, "receipts": ["a" * 64, "a" * 64]},
                {**payload, "receipts": ["A" * 64]}, {**payload, "nonce": b64encode(bytes(8))},
                {**payload, "file": "x"}, {**payload, "bidder": ""}):
        assert code(mf.check_withdrawal, bad) == "bad_withdrawal"


def test_release():
    share = b"\x02" + os.urandom(32)
    payload = mf.make_release(TENDER, LOT, BIDDER, "bid-form.json", "c" * 64, 2, share, 12, "d" * 64)
    assert set(payload) == mf.RELEASE_KEYS and mf.release_share(payload) == share
    for bad in ({**payload, "i": 0}, {**payload, "i": 256}, {**payload, "share": b64encode(share[:32])},
                {**payload, "checkpoint_size": 0}, {**payload, "checkpoint_root": "D" * 64},
                {**payload, "header_sha256": "c" * 63}, {k: v for k, v in payload.items() if k != "file"}):
        assert code(mf.check_release, bad) == "bad_release"
    # a share whose index byte is wrong is still a well-formed release: the opener judges it
    mf.check_release({**payload, "share": b64encode(b"\x09" + share[1:])})
