"""The opener's key recovery and fault attribution (PROTOCOL §6, rulebook C4)."""
from __future__ import annotations

import os

import pytest

from crypto import opening, shamir, shares
from crypto.bidform import pad_bid_form
from crypto.errors import CryptoError
from crypto.keys import raw_public_bytes
from crypto.manifest import manifest_shares
from crypto.sealed import derive_keys
from crypto_testkit import BIDDER, LOT, TENDER, build_policy, new_party, seal_bid


@pytest.fixture(scope="module")
def bid(policy_3_of_4):
    return seal_bid(os.urandom(50), policy_3_of_4)


def digests(bid) -> dict[int, str]:
    return {s["i"]: s["digest"] for s in bid.manifest["shares"]}


def recover(bid, released, threshold=3, digests_=None, **kwargs) -> opening.OpeningResult:
    return opening.recover_bid_key(bid.header_hash, threshold, bid.result.commitment,
                                   digests_ or digests(bid), released, **kwargs)


def corrupt(share: bytes) -> bytes:
    return share[:5] + bytes([share[5] ^ 0xFF]) + share[6:]


def test_any_k_released_shares_open(bid):
    for chosen in ((1, 2, 3), (2, 3, 4), (1, 3, 4)):
        result = recover(bid, {i: bid.share_plaintexts[i] for i in chosen})
        assert result.status == "opened" and result.bid_key == bid.bid_key
        assert result.used == chosen and result.fault is None
    assert "bid_key" not in repr(result) and bid.bid_key.hex() not in repr(result)


def test_a_bad_share_among_more_than_k_is_identified_and_skipped(bid):
    released = dict(bid.share_plaintexts)
    released[2] = corrupt(released[2])
    result = recover(bid, released)
    assert result.status == "opened" and result.bid_key == bid.bid_key
    assert result.bad == (2,) and result.used == (1, 3, 4)


def test_k_minus_one_shares_wait_then_fail(bid):
    released = {1: bid.share_plaintexts[1], 2: bid.share_plaintexts[2]}
    assert recover(bid, released).status == "pending"
    result = recover(bid, released, window_closed=True)
    assert (result.status, result.fault, result.cause) == ("failed", "custodian", "not_enough_shares")
    assert result.late == (3, 4) and result.bid_key is None


def test_bad_shares_that_leave_too_few_are_the_custodians_fault(bid):
    released = {i: corrupt(s) if i in (3, 4) else s for i, s in bid.share_plaintexts.items()}
    # two of four bad: fewer than k can ever arrive, so no need to wait for the window
    result = recover(bid, released)
    assert (result.status, result.fault, result.cause) == ("failed", "custodian", "share_digest_mismatch")
    assert result.bad == (3, 4)


def test_commitment_failure_with_every_digest_matching_is_the_bidders_fault(bid):
    # the bidder shared a different key than the one it committed to, with honest digests
    other = shamir.split(os.urandom(32), 3, 4)
    plaintexts = {i: shares.share_plaintext(i, y) for i, y in other}
    honest_digests = {i: shares.share_digest(bid.header_hash, p) for i, p in plaintexts.items()}
    result = recover(bid, {i: plaintexts[i] for i in (1, 2, 3)}, digests_=honest_digests)
    assert result.status == "pending"        # a fourth share might still complete a good set
    result = recover(bid, plaintexts, digests_=honest_digests)
    assert (result.status, result.fault, result.cause) == ("failed", "bidder", "commitment_mismatch")
    assert result.bad == ()


def test_an_inconsistent_share_is_found_by_trying_subsets(bid):
    plaintexts = dict(bid.share_plaintexts)
    plaintexts[1] = shares.share_plaintext(1, os.urandom(32))   # off the polynomial, but digested honestly
    honest = {i: shares.share_digest(bid.header_hash, p) for i, p in plaintexts.items()}
    result = recover(bid, plaintexts, digests_=honest)
    assert result.status == "opened" and result.bid_key == bid.bid_key
    assert result.used == (2, 3, 4) and result.inconsistent == (1,)
    result = recover(bid, {i: plaintexts[i] for i in (1, 2, 3)}, digests_=honest, window_closed=True)
    assert (result.fault, result.cause) == ("bidder", "commitment_mismatch")


def test_inconsistent_shares_beyond_the_opening_set_are_listed(bid):
    plaintexts = dict(bid.share_plaintexts)
    plaintexts[4] = shares.share_plaintext(4, os.urandom(32))
    honest = {i: shares.share_digest(bid.header_hash, p) for i, p in plaintexts.items()}
    result = recover(bid, plaintexts, digests_=honest)
    assert result.used == (1, 2, 3) and result.inconsistent == (4,)


def test_a_malformed_share_matching_its_digest_is_the_bidders(bid):
    wrong = {i: b"\x09" + bid.share_plaintexts[i][1:] for i in (1, 2)}
    honest = {**digests(bid), **{i: shares.share_digest(bid.header_hash, p) for i, p in wrong.items()}}
    released = {**wrong, 3: bid.share_plaintexts[3], 4: bid.share_plaintexts[4]}
    result = recover(bid, released, digests_=honest)
    assert (result.status, result.fault, result.cause, result.malformed) == ("failed", "bidder", "bad_share", (1, 2))
    # one malformed share and one custodian missing the window: the custodian's release would
    # have been enough, so the failure is the custodian's
    honest = {**digests(bid), 1: honest[1]}
    released = {1: wrong[1], 2: bid.share_plaintexts[2], 3: bid.share_plaintexts[3]}
    result = recover(bid, released, digests_=honest, window_closed=True)
    assert (result.fault, result.malformed, result.late) == ("custodian", (1,), (4,))
    result = recover(bid, {**released, 4: bid.share_plaintexts[4]}, digests_=honest)
    assert result.status == "opened" and result.malformed == (1,)


def test_role_bidder_slots():
    bidder, agent = new_party(), new_party()
    solo = seal_bid(b"x", build_policy([None], 1), bidder_x25519_raw=bidder.x25519_raw)
    result = opening.recover_bid_key(solo.header_hash, 1, solo.result.commitment, digests(solo), {},
                                     bidder_slots={1}, window_closed=True)
    assert (result.fault, result.cause, result.late) == ("bidder", "not_enough_shares", (1,))
    assert opening.recover_bid_key(solo.header_hash, 1, solo.result.commitment, digests(solo), {},
                                   bidder_slots={1}).status == "pending"
    joint = seal_bid(b"x", build_policy([None, agent], 2), bidder_x25519_raw=bidder.x25519_raw)
    args = (joint.header_hash, 2, joint.result.commitment, digests(joint))
    # the agent released, the bidder did not: the bidder's failure alone stood in the way
    result = opening.recover_bid_key(*args, {2: joint.share_plaintexts[2]}, bidder_slots={1}, window_closed=True)
    assert result.fault == "bidder"
    # the agent released a bad share as well: both failures were needed, the custodian's counts
    result = opening.recover_bid_key(*args, {2: corrupt(joint.share_plaintexts[2])}, bidder_slots={1},
                                     window_closed=True)
    assert (result.fault, result.cause) == ("custodian", "share_digest_mismatch")
    # the bidder released, the agent did not
    result = opening.recover_bid_key(*args, {1: joint.share_plaintexts[1]}, bidder_slots={1}, window_closed=True)
    assert (result.fault, result.late) == ("custodian", (2,))


def test_unknown_release_index_is_refused(bid):
    with pytest.raises(CryptoError) as info:
        recover(bid, {5: b"\x05" + bytes(32)})
    assert info.value.code == "bad_share"


def test_decrypt_bid_form_and_fault_mapping(policy_3_of_4):
    form = {"tender": TENDER, "lot": LOT, "bidder": BIDDER, "price": "99.50", "currency": "CNY"}
    good = seal_bid(pad_bid_form(form), policy_3_of_4, file="bid-form.json")
    header, opened = opening.decrypt_bid_form(good.ebid, good.bid_key, good.result.header_sha256,
                                              good.result.commitment)
    assert opened == form and header["bidder"] == BIDDER
    failures = [
        seal_bid(pad_bid_form({**form, "bidder": "B-someone-else"}), policy_3_of_4, file="bid-form.json"),
        seal_bid(b"{}", policy_3_of_4, file="bid-form.json"),
        seal_bid(pad_bid_form(form), policy_3_of_4, file="proposal.pdf"),
    ]
    for sealed_bid, code in zip(failures, ("bid_form_mismatch", "bad_bid_form", "bad_bid_form")):
        with pytest.raises(CryptoError) as info:
            opening.decrypt_bid_form(sealed_bid.ebid, sealed_bid.bid_key, sealed_bid.result.header_sha256,
                                     sealed_bid.result.commitment)
        assert info.value.code == code and opening.fault_of(info.value) == "bidder"
    tampered = good.ebid[:-1] + bytes([good.ebid[-1] ^ 1])
    with pytest.raises(CryptoError) as info:
        opening.decrypt_bid_form(tampered, good.bid_key, good.result.header_sha256, good.result.commitment)
    assert info.value.code == "segment_auth_failed" and opening.fault_of(info.value) == "bidder"


def test_stored_file_mismatch_is_the_platforms_fault():
    opening.check_stored_file("a" * 64, "a" * 64)
    with pytest.raises(CryptoError) as info:
        opening.check_stored_file("a" * 64, "b" * 64)
    assert info.value.code == "stored_file_mismatch" and opening.fault_of(info.value) == "platform"


def test_a_custodian_can_prove_a_share_unopenable(bid, four_custodians):
    custodian = four_custodians[1]
    private_raw = custodian.x25519.private_bytes_raw()
    sealed, digest = manifest_shares(bid.manifest)[2]
    assert not opening.custodian_proves_unopenable(private_raw, custodian.x25519_kid, bid.header_hash, 2, sealed, digest)
    garbage = shares.seal_share(raw_public_bytes(new_party().x25519), bid.header_hash, 2, bid.share_plaintexts[2])
    assert opening.custodian_proves_unopenable(private_raw, custodian.x25519_kid, bid.header_hash, 2, garbage, digest)
    assert opening.custodian_proves_unopenable(private_raw, custodian.x25519_kid, bid.header_hash, 2, sealed, "0" * 64)
    # a key other than the slot's proves nothing
    assert not opening.custodian_proves_unopenable(new_party().x25519.private_bytes_raw(), custodian.x25519_kid,
                                                   bid.header_hash, 2, garbage, digest)


def test_commitment_is_derived_from_the_header_hash(bid):
    assert derive_keys(bid.bid_key, bid.header_hash)[1] == bid.result.commitment
