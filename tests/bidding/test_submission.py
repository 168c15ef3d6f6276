"""Submission (PROTOCOL §5, §9): the happy path, and every refusal with its own code,
nothing stored and the refused attempt logged (hidden while the tender is open)."""
from __future__ import annotations

import base64
import io
import os
from datetime import timedelta
from typing import Any, Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audits.entries import detail_hash
from bidding.models import PendingUpload, Submission
from crypto.canonical import b64decode, canonical_json
from crypto.manifest import check_receipt
from crypto.signing import RECEIPT, verify
from tests.bidding.helpers import Bench, SealedBid, Tender

MS = timedelta(milliseconds=1)


def assert_refused(bench: Bench, call: Callable[[], Any], status: int, code: str, *,
                   hidden: bool = True) -> dict[str, Any]:
    """``call`` is refused with ``status`` and ``code``, stores no bid, and is logged."""
    stored, refusals = bench.count(Submission), len(bench.entries("bid.refused"))
    resp = call()
    body = resp.get_json()
    assert (resp.status_code, body["error"]["code"]) == (status, code), body
    assert bench.count(Submission) == stored
    logged = bench.entries("bid.refused")
    assert len(logged) == refusals + 1
    if hidden:  # PROTOCOL §7: refused submissions are hidden before closing too
        assert (logged[-1]["actor"], logged[-1]["subject"], logged[-1]["data"]) == ("hidden", "hidden", {})
    return body["error"]


def refuse_upload(bench: Bench, tender: Tender, bid: SealedBid, status: int, code: str,
                  data: bytes | None = None) -> dict[str, Any]:
    """The manifest is accepted; the upload is refused."""
    assert bench.post_manifest(tender, "bidder", bid).status_code == 201
    return assert_refused(bench, lambda: bench.put_file(tender, "bidder", bid, data), status, code)


@pytest.fixture
def tender(bench: Bench) -> Tender:
    tender = bench.tender(mode="officials")
    bench.clock.set(tender.deadline - timedelta(days=1))
    return tender


# --------------------------------------------------------------------------- happy path


def test_receipt_verifies_with_the_published_receipt_key(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder", price="987654.32")
    signed = bench.submit(tender, "bidder", bid)
    assert set(signed) == {"receipt", "signature", "kid"}
    receipt = check_receipt(signed["receipt"])
    public = base64.b64decode(bench.client.get("/api/v1/audit/key?kind=receipt").data.strip())
    verify(Ed25519PublicKey.from_public_bytes(public), RECEIPT, receipt, b64decode(signed["signature"]))
    assert receipt["receipt"] == receipt["manifest_sha256"] == bid.manifest_sha256
    assert (receipt["tender"], receipt["lot"], receipt["bidder"], receipt["file"]) == (
        tender.tender, "L1", "BIDDER1", "bid-form.json")
    assert receipt["ciphertext_sha256"] == bid.manifest["ciphertext_sha256"]
    assert receipt["received_at"] == "2026-03-31T01:00:00.000Z"
    # the log entry is hidden, and the receipt's salt binds its detail
    entry = bench.entries()[receipt["log_index"]]
    assert (entry["action"], entry["actor"], entry["subject"], entry["data"]) == (
        "bid.submitted", "hidden", "hidden", {})
    detail = bench.detail(receipt["log_index"])
    assert entry["detail_sha256"] == detail_hash(b64decode(receipt["detail_salt"]), detail)
    assert detail["manifest"] == bid.envelope
    # nothing pending, one stored bid, the blob is the exact file
    assert bench.count(PendingUpload) == 0 and bench.count(Submission) == 1
    stored = bench.db(lambda s: s.query(Submission).one().ciphertext_sha256)
    with bench.world.app.app_context():
        from core.runtime import runtime
        with runtime().blobs.open(stored) as fh:
            assert fh.read() == bid.ebid


def test_receipts_are_the_callers_own_only(bench: Bench, tender: Tender) -> None:
    mine = bench.submit(tender, "bidder", bench.seal(tender, "bidder"))
    theirs = bench.submit(tender, "bidder2", bench.seal(tender, "bidder2"))
    own = bench.client.get(f"{tender.base}/receipts", headers=bench.headers("bidder")).get_json()
    assert own["data"] == [mine]
    assert own["meta"]["states"] == {mine["receipt"]["receipt"]: "live"}
    other = bench.client.get(f"{tender.base}/receipts", headers=bench.headers("bidder2")).get_json()
    assert other["data"] == [theirs]


def test_a_large_file_streams_in_several_segments(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder", file="proposal.pdf", plaintext=os.urandom(2 * 1024 * 1024 + 7))
    signed = bench.submit(tender, "bidder", bid)
    assert signed["receipt"]["file"] == "proposal.pdf"


# --------------------------------------------------------------------------- the deadline


def test_one_millisecond_before_the_deadline_is_accepted(bench: Bench, tender: Tender) -> None:
    bench.clock.set(tender.deadline - MS)
    signed = bench.submit(tender, "bidder", bench.seal(tender, "bidder"))
    assert signed["receipt"]["received_at"] == "2026-04-01T00:59:59.999Z"


def test_at_the_deadline_is_refused(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder")
    bench.clock.set(tender.deadline)
    # this request closes the tender first, so the refusal is no longer hidden
    assert_refused(bench, lambda: bench.post_manifest(tender, "bidder", bid), 409, "bid_deadline_passed",
                   hidden=False)


class _DeadlineDuringUpload(io.BytesIO):
    """A request body whose last byte arrives at the deadline."""

    def __init__(self, data: bytes, at_end: Callable[[], None]) -> None:
        super().__init__(data)
        self.size, self.at_end = len(data), at_end

    def _check(self) -> None:
        if self.tell() >= self.size:
            self.at_end()

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self._check()
        return chunk

    def readinto(self, buffer: Any) -> int:
        count = super().readinto(buffer)
        self._check()
        return count


def test_an_upload_finished_at_the_deadline_is_not_a_bid(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder")
    bench.clock.set(tender.deadline - MS)
    assert bench.post_manifest(tender, "bidder", bid).status_code == 201
    headers = bench.headers("bidder")

    def put() -> Any:
        body = _DeadlineDuringUpload(bid.ebid, lambda: bench.clock.set(tender.deadline))
        return bench.client.put(f"{tender.base}/uploads/{bid.manifest_sha256}", headers=headers,
                                input_stream=body, content_type="application/octet-stream")
    assert_refused(bench, put, 409, "bid_deadline_passed")
    # the next request closes the tender, and the late file is not listed
    bench.client.get(f"{tender.base}/closing")
    closed = bench.entries("tender.closed")
    assert len(closed) == 1 and closed[0]["data"]["files"] == []


def test_an_upload_after_the_deadline_of_a_manifest_posted_before_is_refused(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder")
    assert bench.post_manifest(tender, "bidder", bid).status_code == 201
    bench.clock.set(tender.deadline + timedelta(seconds=1))
    assert_refused(bench, lambda: bench.put_file(tender, "bidder", bid), 409, "bid_deadline_passed", hidden=False)


# --------------------------------------------------------------------------- the file


def test_an_unsealed_file_is_refused(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder")
    error = refuse_upload(bench, tender, bid, 422, "bad_framing", data=bid.plaintext)
    assert error["details"]["crypto_code"] == "bad_magic"


def test_a_truncated_file_is_refused(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder")
    error = refuse_upload(bench, tender, bid, 422, "bad_framing", data=bid.ebid[:-10])
    assert error["details"]["crypto_code"] == "truncated"


def test_a_file_longer_than_its_manifest_is_refused(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder")
    refuse_upload(bench, tender, bid, 422, "size_mismatch", data=bid.ebid + b"\x00")


def test_trailing_bytes_signed_into_the_manifest_are_refused(bench: Bench, tender: Tender) -> None:
    import hashlib
    honest = bench.seal(tender, "bidder")
    extended = honest.ebid + b"\x00\x00\x00\x20" + os.urandom(32)
    bid = bench.seal(tender, "bidder", manifest={"size": len(extended),
                                                "ciphertext_sha256": hashlib.sha256(extended).hexdigest()})
    error = refuse_upload(bench, tender, bid, 422, "bad_framing", data=extended)
    assert error["details"]["crypto_code"] == "trailing_bytes"


def _segment_length_offset(bid: SealedBid) -> int:
    return 6 + 4 + len(bid.header_bytes)


def test_a_flipped_bit_in_a_segment_length_is_refused(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder")
    data = bytearray(bid.ebid)
    data[_segment_length_offset(bid) + 1] ^= 0x10
    error = refuse_upload(bench, tender, bid, 422, "bad_framing", data=bytes(data))
    assert error["details"]["crypto_code"] in ("bad_framing", "trailing_bytes", "truncated")


def test_a_flipped_bit_in_the_header_length_is_refused(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder")
    data = bytearray(bid.ebid)
    data[8] ^= 0x01
    refuse_upload(bench, tender, bid, 422, "bad_framing", data=bytes(data))


def test_a_flipped_bit_in_the_header_is_refused(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder")
    data = bytearray(bid.ebid)
    position = 10 + bid.header_bytes.index(b'"created":"') + len('"created":"2026-03-3')
    data[position] ^= 0x01  # a digit of the creation time: still a valid header
    refuse_upload(bench, tender, bid, 422, "header_hash_mismatch", data=bytes(data))


def test_a_flipped_bit_in_a_segment_is_refused(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder")
    data = bytearray(bid.ebid)
    data[-5] ^= 0x80
    refuse_upload(bench, tender, bid, 422, "hash_mismatch", data=bytes(data))


@pytest.mark.parametrize("field,value,code", [
    ("bidder", "BIDDER2", "bidder_mismatch"),
    ("tender", "424242", "tender_mismatch"),
    ("lot", "L2", "lot_mismatch"),
    ("file", "other.json", "file_mismatch"),
])
def test_a_header_naming_another_party_is_refused(bench: Bench, tender: Tender, field: str, value: str,
                                                  code: str) -> None:
    bid = bench.seal(tender, "bidder", header={field: value})
    refuse_upload(bench, tender, bid, 422, code)


def test_a_header_sealed_to_another_policy_is_refused(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder", header={"threshold": 3})
    refuse_upload(bench, tender, bid, 422, "policy_mismatch")


@pytest.mark.parametrize("field,code", [("header_sha256", "header_hash_mismatch"),
                                        ("ciphertext_sha256", "hash_mismatch")])
def test_manifest_hashes_that_do_not_match_are_refused(bench: Bench, tender: Tender, field: str, code: str) -> None:
    bid = bench.seal(tender, "bidder", manifest={field: "ab" * 32})
    refuse_upload(bench, tender, bid, 422, code)


@pytest.mark.parametrize("delta", [-1, 1])
def test_a_manifest_size_that_does_not_match_is_refused(bench: Bench, tender: Tender, delta: int) -> None:
    honest = bench.seal(tender, "bidder")
    bid = bench.seal(tender, "bidder", manifest={"size": len(honest.ebid) + delta})
    refuse_upload(bench, tender, bid, 422, "size_mismatch")


# --------------------------------------------------------------------------- the manifest


def test_a_missing_signature_is_refused(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder")
    body = {"manifest": bid.manifest, "kid": bid.envelope["kid"]}
    error = assert_refused(bench, lambda: bench.post_manifest(tender, "bidder", body), 422, "bad_signature")
    assert error["details"]["reason"] == "missing"


def test_a_bad_signature_is_refused(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder")
    tampered = {**bid.envelope, "manifest": {**bid.manifest, "size": bid.manifest["size"] + 1}}
    assert_refused(bench, lambda: bench.post_manifest(tender, "bidder", tampered), 422, "bad_signature")


def test_a_key_registered_to_someone_else_is_refused(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder", signer="bidder2")
    assert_refused(bench, lambda: bench.post_manifest(tender, "bidder", bid), 422, "unknown_key")


def test_a_manifest_for_another_bidder_is_refused(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder2", signer="bidder")
    assert_refused(bench, lambda: bench.post_manifest(tender, "bidder", bid), 403, "bidder_mismatch")


def test_a_manifest_for_another_tender_is_refused(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder", manifest={"tender": "424242"})
    assert_refused(bench, lambda: bench.post_manifest(tender, "bidder", bid), 422, "tender_mismatch")


def test_a_manifest_for_an_unknown_lot_is_refused(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder", lot="L9")
    assert_refused(bench, lambda: bench.post_manifest(tender, "bidder", bid), 422, "lot_unknown")


def test_a_manifest_under_another_policy_is_refused(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder", manifest={"policy_sha256": "cd" * 32})
    assert_refused(bench, lambda: bench.post_manifest(tender, "bidder", bid), 422, "policy_mismatch")


def test_a_non_bidder_cannot_submit(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder")
    assert_refused(bench, lambda: bench.post_manifest(tender, "agent", bid), 403, "not_a_bidder")


def test_a_reused_nonce_with_a_new_manifest_is_refused(bench: Bench, tender: Tender) -> None:
    nonce = os.urandom(16)
    bench.submit(tender, "bidder", bench.seal(tender, "bidder", nonce=nonce))
    again = bench.seal(tender, "bidder", file="proposal.pdf", nonce=nonce)
    assert_refused(bench, lambda: bench.post_manifest(tender, "bidder", again), 409, "nonce_reused")


def test_a_retry_of_a_stored_manifest_returns_the_original_receipt(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder")
    signed = bench.submit(tender, "bidder", bid)
    entries = len(bench.entries())
    again = bench.post_manifest(tender, "bidder", bid)
    assert again.status_code == 200 and again.get_json()["data"] == signed
    upload_again = bench.put_file(tender, "bidder", bid)
    assert upload_again.status_code == 200 and upload_again.get_json()["data"] == signed
    # also after the deadline: the lookup comes before the deadline check
    bench.clock.set(tender.deadline + timedelta(hours=1))
    late = bench.post_manifest(tender, "bidder", bid)
    assert late.status_code == 200 and late.get_json()["data"] == signed
    assert bench.count(Submission) == 1
    assert [e["action"] for e in bench.entries()[entries:]].count("bid.submitted") == 0


def test_an_unknown_upload_is_refused(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder")
    assert_refused(bench, lambda: bench.put_file(tender, "bidder", bid), 404, "upload_unknown")
    # another organisation's pending upload is just as unknown
    assert bench.post_manifest(tender, "bidder", bid).status_code == 201
    assert_refused(bench, lambda: bench.put_file(tender, "bidder2", bid), 404, "upload_unknown")


def test_an_upload_must_be_octets(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder")
    assert bench.post_manifest(tender, "bidder", bid).status_code == 201
    resp = bench.client.put(f"{tender.base}/uploads/{bid.manifest_sha256}", headers=bench.headers("bidder"),
                            data=bid.ebid, content_type="text/plain")
    assert resp.status_code == 415


def test_a_suspended_tender_refuses_bids(bench: Bench, tender: Tender) -> None:
    resp = bench.client.post(f"/api/v1/projects/{tender.id}/suspend", headers=bench.headers("supervisor"),
                             json={"reason": "投诉处理中"})
    assert resp.status_code == 200, resp.get_json()
    bid = bench.seal(tender, "bidder")
    assert_refused(bench, lambda: bench.post_manifest(tender, "bidder", bid), 409, "tender_not_open")


def test_the_manifest_may_come_wrapped_in_data(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder")
    resp = bench.post_manifest(tender, "bidder", {"data": bid.envelope})
    assert resp.status_code == 201


def test_floats_and_duplicate_keys_are_malformed(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder")
    raw = canonical_json(bid.envelope).replace(b'"size":', b'"size":1.0,"size":', 1)
    resp = bench.client.post(f"{tender.base}/submissions", headers=bench.headers("bidder"), data=raw,
                             content_type="application/json")
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "malformed_json"
