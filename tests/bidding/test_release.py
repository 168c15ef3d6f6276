"""Share releases (PROTOCOL §6): refused before closing and logged, only listed files,
only slot i's holder, only real checkpoints; digests checked and recorded."""
from __future__ import annotations

from datetime import timedelta

import pytest

from bidding.models import Release
from tests.bidding.helpers import Bench
from tests.bidding.test_opening_kit import OpeningKit, flip


@pytest.fixture
def kit(bench: Bench) -> OpeningKit:
    return OpeningKit(bench)


def _three_bids(kit: OpeningKit):
    tender = kit.tender()
    bids = [kit.bid(tender, n, price) for n, price in ((1, "900000.00"), (2, "880000.50"), (3, "910000.00"))]
    return tender, bids


def test_a_release_before_closing_is_refused_and_the_attempt_logged(kit: OpeningKit):
    tender, bids = _three_bids(kit)
    kit.bench.clock.set(tender.deadline - timedelta(milliseconds=1))
    resp = kit.post_releases(tender, "agent", [kit.release(tender, 1, bids[0])])
    assert resp.status_code == 403
    assert resp.get_json()["error"]["code"] == "tender_not_closed"
    refused = kit.entries("share.release_refused")
    assert [e["data"]["code"] for e in refused] == ["tender_not_closed"]
    assert refused[0]["actor"] == "agent1"
    assert kit.bench.count(Release) == 0


def test_accepted_releases_are_stored_logged_and_idempotent(kit: OpeningKit):
    tender, bids = _three_bids(kit)
    kit.close(tender)
    release = kit.release(tender, 1, bids[0])
    resp = kit.post_releases(tender, "agent", [release])
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["data"] == [{"lot": "L1", "bidder": bids[0].org, "file": "bid-form.json", "i": 1,
                                        "status": "accepted", "digest_match": True}]
    again = kit.post_releases(tender, "agent", [release, release])
    assert [r["status"] for r in again.get_json()["data"]] == ["already", "already"]
    logged = kit.entries("share.released")
    assert len(logged) == 1 and logged[0]["data"]["digest_match"] is True
    assert "share" not in logged[0]["data"]  # the log never carries a share before disclosure
    assert kit.bench.count(Release) == 1


def test_a_release_for_a_file_not_in_the_closing_list_is_refused(kit: OpeningKit):
    tender, bids = _three_bids(kit)
    # bidder 1 supersedes its form: the first file is no longer live, so never released
    old = bids[0].sealed
    newer = kit.bench.seal(tender, "bidder", price="1.00", supersedes=old.manifest_sha256)
    kit.bench.submit(tender, "bidder", newer)
    kit.close(tender)
    resp = kit.post_releases(tender, "agent", [kit.release(tender, 1, bids[0])])
    assert resp.status_code == 422
    assert resp.get_json()["error"]["code"] == "file_not_listed"
    assert [e["data"]["code"] for e in kit.entries("share.release_refused")] == ["file_not_listed"]
    other = kit.release(tender, 1, bids[1], file="proposal.pdf")
    assert kit.post_releases(tender, "agent", [other]).get_json()["error"]["code"] == "file_not_listed"


def test_only_the_holder_of_slot_i_releases_it(kit: OpeningKit):
    tender, bids = _three_bids(kit)
    kit.close(tender)
    # signed by the agent's key but claiming slot 2 (the tenderee's)
    forged = kit.release(tender, 2, bids[0], signer="agent")
    resp = kit.post_releases(tender, "agent", [forged])
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "not_custodian"
    # the right key, posted by another account
    right = kit.release(tender, 2, bids[0])
    assert kit.post_releases(tender, "agent", [right]).get_json()["error"]["code"] == "not_custodian"
    # the tenderee's account, but a signature by another key
    resp = kit.post_releases(tender, "tenderee", [forged])
    assert resp.status_code == 422 and resp.get_json()["error"]["code"] == "unknown_kid"
    assert kit.post_releases(tender, "tenderee", [right]).status_code == 201


def test_index_zero_and_indices_beyond_the_policy_are_refused(kit: OpeningKit):
    tender, bids = _three_bids(kit)
    kit.close(tender)
    zero = kit.release(tender, 1, bids[0], i=0)
    resp = kit.post_releases(tender, "agent", [zero])
    assert resp.status_code == 422 and resp.get_json()["error"]["code"] == "bad_release"
    five = kit.release(tender, 1, bids[0], i=5)
    assert kit.post_releases(tender, "agent", [five]).get_json()["error"]["code"] == "bad_share_index"


def test_a_share_that_misses_its_digest_is_recorded_as_a_mismatch(kit: OpeningKit):
    tender, bids = _three_bids(kit)
    kit.close(tender)
    bad = kit.release(tender, 1, bids[0], share=flip(bids[0].sealed.share_plaintexts[1]))
    resp = kit.post_releases(tender, "agent", [bad])
    assert resp.status_code == 201
    assert resp.get_json()["data"][0]["digest_match"] is False
    assert kit.entries("share.released")[0]["data"]["digest_match"] is False
    assert kit.bench.db(lambda s: [r.valid for r in s.query(Release)]) == [False]


def test_a_different_share_for_a_released_slot_is_refused(kit: OpeningKit):
    tender, bids = _three_bids(kit)
    kit.close(tender)
    first = kit.release(tender, 1, bids[0])
    assert kit.post_releases(tender, "agent", [first]).status_code == 201
    second = kit.release(tender, 1, bids[0], share=flip(bids[0].sealed.share_plaintexts[1]))
    resp = kit.post_releases(tender, "agent", [second])
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "share_already_released"


def test_a_batch_is_all_or_nothing(kit: OpeningKit):
    tender, bids = _three_bids(kit)
    kit.close(tender)
    good = kit.release(tender, 1, bids[0])
    bad = kit.release(tender, 1, bids[1], i=0)
    resp = kit.post_releases(tender, "agent", [good, bad])
    assert resp.status_code == 422
    assert resp.get_json()["error"]["details"]["index"] == 1
    assert kit.bench.count(Release) == 0


def test_the_checkpoint_must_be_a_real_one_containing_the_closing(kit: OpeningKit):
    tender, bids = _three_bids(kit)
    closing = kit.close(tender)
    cp = kit.checkpoint()
    wrong_root = kit.release(tender, 1, bids[0], checkpoint_root="00" * 32)
    assert kit.post_releases(tender, "agent", [wrong_root]).get_json()["error"]["code"] == "bad_checkpoint"
    before = kit.release(tender, 1, bids[0], checkpoint_size=closing["index"])
    assert kit.post_releases(tender, "agent", [before]).get_json()["error"]["code"] == "bad_checkpoint"
    beyond = kit.release(tender, 1, bids[0], checkpoint_size=cp.size + 100)
    assert kit.post_releases(tender, "agent", [beyond]).get_json()["error"]["code"] == "bad_checkpoint"


def test_a_release_needs_an_account(kit: OpeningKit):
    tender, bids = _three_bids(kit)
    kit.close(tender)
    resp = kit.client.post(f"{tender.base}/releases", json={"data": [kit.release(tender, 1, bids[0])]})
    assert resp.status_code == 401
