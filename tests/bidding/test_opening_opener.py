"""The opener of PROTOCOL §6 without a database: whose fault each failure is (rulebook C4).

Files are sealed here with the crypto primitives directly, so a test can build what the
offline tool would refuse to (a bid form naming another tender, a bad share).
"""
from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bidding.opening import (FileOutcome, ListedFile, bid_outcome, c2_short_lots, declared_items,
                             disclosable, open_listed_file, window_end)
from crypto import keys, shamir, shares
from crypto.bidform import BID_FORM_NAME, pad_bid_form
from crypto.sealed import build_header, seal_stream

TENDER, LOT, BIDDER = "17", "1", "ACME"
N, K = 4, 3


@dataclass
class Sealed:
    ebid: bytes
    listed: ListedFile
    shares: dict[int, bytes]     # the 33-byte share plaintexts
    bid_key: bytes


def seal(plaintext: bytes, *, file: str = BID_FORM_NAME, header_bidder: str = BIDDER,
         listed_bidder: str = BIDDER, sealed_share_override: dict[int, bytes] | None = None) -> Sealed:
    """Seal like the offline tool; ``sealed_share_override`` replaces share plaintexts
    after the digests are computed from them (a bidder who signs what it sealed)."""
    custodian_kids = [{"i": i, "kid": keys.kid(os.urandom(32))} for i in range(1, N + 1)]
    header = build_header(TENDER, LOT, header_bidder, file, "ab" * 32, K, custodian_kids, os.urandom(8),
                          "2026-05-01T09:30:00.000Z")
    bid_key = os.urandom(32)
    out = io.BytesIO()
    result = seal_stream(io.BytesIO(plaintext), out, header, bid_key)
    h = bytes.fromhex(result.header_sha256)
    plain = {i: shares.share_plaintext(i, y) for i, y in shamir.split(bid_key, K, N)}
    plain.update(sealed_share_override or {})
    digests = {i: shares.share_digest(h, p) for i, p in plain.items()}
    listed = ListedFile(lot=LOT, bidder=listed_bidder, file=file, header_sha256=result.header_sha256,
                        manifest_sha256="cd" * 32, ciphertext_sha256=result.ciphertext_sha256,
                        commitment=result.commitment, share_digests=digests)
    return Sealed(out.getvalue(), listed, plain, bid_key)


def form(price: str = "1234.50", tender: str = TENDER, **items: str) -> bytes:
    return pad_bid_form({"tender": tender, "lot": LOT, "bidder": BIDDER, "price": price, "currency": "CNY",
                         **items})


def opener(s: Sealed, released: dict[int, bytes], *, window_closed: bool = False, ebid: bytes | None = None,
           listed: ListedFile | None = None, bidder_slots: tuple[int, ...] = ()) -> FileOutcome:
    data = s.ebid if ebid is None else ebid
    return open_listed_file(listed or s.listed, lambda: io.BytesIO(data), K, released,
                            bidder_slots=bidder_slots, window_closed=window_closed)


def flip(share: bytes) -> bytes:
    return share[:5] + bytes([share[5] ^ 0x01]) + share[6:]


def test_all_shares_open_the_form_with_its_price_and_items():
    s = seal(form("99.90", duration_days="120"))
    outcome = opener(s, s.shares)
    assert outcome.status == "opened" and outcome.fault is None
    assert outcome.bid_key == s.bid_key
    assert outcome.form["price"] == "99.90"
    assert declared_items(outcome.form) == {"duration_days": "120"}
    assert outcome.plaintext_sha256 == hashlib.sha256(form("99.90", duration_days="120")).hexdigest()


def test_exactly_k_shares_open():
    s = seal(form())
    outcome = opener(s, {i: s.shares[i] for i in (1, 3, 4)})
    assert outcome.status == "opened" and outcome.used == (1, 3, 4) and outcome.missing == (2,)


def test_a_bad_share_among_more_than_k_is_identified_and_the_file_still_opens():
    s = seal(form())
    released = dict(s.shares)
    released[2] = flip(released[2])
    outcome = opener(s, released)
    assert outcome.status == "opened"
    assert outcome.bad == (2,) and 2 not in outcome.used


def test_k_minus_one_shares_wait_in_the_window_and_are_the_custodians_fault_after():
    s = seal(form())
    released = {1: s.shares[1], 2: s.shares[2]}
    assert opener(s, released).status == "pending"
    late = opener(s, released, window_closed=True)
    assert (late.status, late.fault, late.cause) == ("failed", "custodian", "not_enough_shares")
    assert late.missing == (3, 4)


def test_a_digest_mismatch_that_leaves_too_few_shares_is_the_custodians_fault():
    s = seal(form())
    released = {1: s.shares[1], 2: s.shares[2], 3: flip(s.shares[3])}
    assert opener(s, released).status == "pending"  # custodian 4 may still release
    outcome = opener(s, released, window_closed=True)
    assert (outcome.status, outcome.fault, outcome.cause) == ("failed", "custodian", "share_digest_mismatch")
    assert outcome.bad == (3,)


def test_a_missing_release_of_the_bidders_own_slot_is_the_bidders_fault():
    s = seal(form())
    released = {1: s.shares[1], 2: s.shares[2]}
    outcome = opener(s, {**released, 4: s.shares[4]}, window_closed=True, bidder_slots=(3,))
    assert outcome.status == "opened"
    only_two = opener(s, released, window_closed=True, bidder_slots=(3, 4))
    assert (only_two.status, only_two.fault) == ("failed", "bidder")


def test_shares_the_bidder_sealed_wrong_are_the_bidders_fault():
    s0 = seal(form())
    wrong = {1: bytes([9]) + s0.shares[1][1:], 2: bytes([9]) + s0.shares[2][1:]}
    s = seal(form(), sealed_share_override=wrong)   # digests signed over the wrong bytes
    outcome = opener(s, s.shares, window_closed=True)
    assert (outcome.status, outcome.fault, outcome.cause) == ("failed", "bidder", "bad_share")
    assert outcome.malformed == (1, 2)


def test_a_commitment_that_no_share_set_meets_is_the_bidders_fault():
    s = seal(form())
    bad = ListedFile(**{**s.listed.__dict__, "commitment": os.urandom(32)})
    outcome = opener(s, s.shares, listed=bad)
    assert (outcome.status, outcome.fault, outcome.cause) == ("failed", "bidder", "commitment_mismatch")


def test_a_stored_file_that_differs_from_its_receipt_is_the_platforms_fault():
    s = seal(form())
    damaged = s.ebid[:-1] + bytes([s.ebid[-1] ^ 1])
    outcome = opener(s, s.shares, ebid=damaged)
    assert (outcome.status, outcome.fault, outcome.cause) == ("failed", "platform", "stored_file_mismatch")


def test_a_lost_stored_file_is_the_platforms_fault(tmp_path: Path):
    s = seal(form())
    outcome = open_listed_file(s.listed, lambda: open(tmp_path / "gone", "rb"), K, s.shares)
    assert (outcome.status, outcome.fault, outcome.cause) == ("failed", "platform", "stored_file_missing")


def test_a_header_naming_another_bidder_than_the_receipt_is_the_bidders_fault():
    s = seal(form(), header_bidder="OTHER", listed_bidder=BIDDER)
    outcome = opener(s, s.shares)
    assert (outcome.status, outcome.fault, outcome.cause) == ("failed", "bidder", "header_mismatch")


def test_a_bid_form_naming_another_tender_is_the_bidders_fault_though_it_decrypts():
    s = seal(form(tender="999"))
    outcome = opener(s, s.shares)
    assert (outcome.status, outcome.fault, outcome.cause) == ("failed", "bidder", "bid_form_mismatch")
    assert outcome.bid_key == s.bid_key  # kept for the committee, who may re-check


def test_a_bid_form_that_is_not_padded_is_the_bidders_fault():
    s = seal(form()[:-10])
    outcome = opener(s, s.shares)
    assert (outcome.fault, outcome.cause) == ("bidder", "bad_bid_form")


def test_other_files_are_decrypted_to_check_them_but_carry_no_form():
    payload = os.urandom(3000)
    s = seal(payload, file="proposal.pdf")
    outcome = opener(s, s.shares)
    assert outcome.status == "opened" and outcome.form is None
    assert outcome.plaintext_sha256 == hashlib.sha256(payload).hexdigest()


def test_a_bid_is_revoked_for_its_bidders_fault_and_withdrawn_otherwise():
    ok = FileOutcome("opened", form={"price": "1.00"})
    bidder = FileOutcome("failed", fault="bidder", cause="bid_form_mismatch")
    custodian = FileOutcome("failed", fault="custodian", cause="not_enough_shares")
    platform = FileOutcome("failed", fault="platform", cause="stored_file_mismatch")
    assert bid_outcome({BID_FORM_NAME: ok}).status == "opened"
    assert bid_outcome({BID_FORM_NAME: bidder}).status == "revoked"
    assert bid_outcome({BID_FORM_NAME: custodian}).status == "withdrawn"
    assert bid_outcome({BID_FORM_NAME: ok, "x.pdf": platform}).fault == "platform"
    assert bid_outcome({BID_FORM_NAME: custodian, "x.pdf": bidder}).status == "revoked"
    assert bid_outcome({"x.pdf": ok}).cause == "missing_bid_form"
    assert bid_outcome({BID_FORM_NAME: ok, "x.pdf": FileOutcome("pending")}).status == "pending"


def test_disclosure_waits_for_the_window_or_every_share():
    deadline = datetime(2026, 5, 1, 1, 30, tzinfo=timezone.utc)
    assert window_end(deadline, 600) == deadline + timedelta(seconds=600)
    assert not disclosable(deadline + timedelta(seconds=599), deadline, 600, all_shares_in=False)
    assert disclosable(deadline + timedelta(seconds=600), deadline, 600, all_shares_in=False)
    assert disclosable(deadline, deadline, 600, all_shares_in=True)


def test_lots_with_fewer_bids_than_the_minimum_are_not_opened():
    by_lot = {"1": {"A", "B", "C"}, "2": {"A", "B"}}
    assert c2_short_lots(by_lot, ["1", "2", "3"], 3) == ["2", "3"]
    assert c2_short_lots(by_lot, ["1"], 3) == []


def test_releases_of_indices_the_manifest_lacks_are_refused():
    from crypto.errors import CryptoError
    s = seal(form())
    with pytest.raises(CryptoError):
        opener(s, {N + 1: s.shares[1]})
