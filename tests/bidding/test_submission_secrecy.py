"""Before closing nobody may learn who or how many bid, or get a bid's bytes (RULES A6, B4);
withdrawals and bid securities (B1, B2) are hidden the same way."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from bidding.models import BidSecurity, Submission, Withdrawal
from tests.bidding.helpers import Bench, Tender

OFFICIALS = ["agent", "tenderee", "admin", "supervisor", "custodian"]


@pytest.fixture
def tender(bench: Bench) -> Tender:
    tender = bench.tender(mode="officials", bid_security="20000.00")
    bench.clock.set(tender.deadline - timedelta(days=1))
    return tender


def test_before_closing_no_role_can_list_count_or_download(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder")
    signed = bench.submit(tender, "bidder", bid)
    index = signed["receipt"]["log_index"]
    refusals = len(bench.entries("bid.refused"))
    for who in OFFICIALS:
        headers = bench.headers(who)
        listing = bench.client.get(f"{tender.base}/submissions", headers=headers)
        assert listing.status_code in (403, 404), (who, listing.get_json())
        assert listing.get_json()["error"]["code"] in ("tender_not_closed", "forbidden")
        download = bench.client.get(f"{tender.base}/files/{bid.manifest_sha256}", headers=headers)
        assert download.status_code in (403, 404)
        assert download.get_json()["error"]["code"] in ("tender_not_closed", "file_unknown")
        receipts = bench.client.get(f"{tender.base}/receipts", headers=headers)
        assert receipts.status_code == 403 and receipts.get_json()["error"]["code"] == "not_a_bidder"
        securities = bench.client.get(f"{tender.base}/securities", headers=headers)
        assert securities.status_code in (403, 404)
        if who != "supervisor":  # supervisors read hidden details (audits); nobody else
            detail = bench.client.get(f"/api/v1/audit/entries/{index}/detail", headers=headers)
            assert detail.status_code == 403
    assert len(bench.entries("bid.refused")) >= refusals + 4 * len(OFFICIALS)
    # the public log shows that something happened, never who or what
    leaves = [e for e in bench.entries() if e["action"].startswith("bid.")]
    assert leaves and all(e["actor"] == "hidden" and e["data"] == {} for e in leaves)


def test_after_closing_the_manager_lists_the_bids(bench: Bench, tender: Tender) -> None:
    bid = bench.seal(tender, "bidder")
    bench.submit(tender, "bidder", bid)
    bench.clock.set(tender.deadline)
    resp = bench.client.get(f"{tender.base}/submissions", headers=bench.headers("agent"))
    assert resp.status_code == 200, resp.get_json()
    (row,) = resp.get_json()["data"]
    assert row["manifest_sha256"] == bid.manifest_sha256 and row["bidder"] == "BIDDER1"
    assert bench.client.get(f"{tender.base}/submissions", headers=bench.headers("bidder")).status_code == 403


def test_withdrawal_before_the_deadline_is_hidden_and_unlists_the_file(bench: Bench, tender: Tender) -> None:
    signed = bench.submit(tender, "bidder", bench.seal(tender, "bidder"))
    receipt_id = signed["receipt"]["receipt"]
    resp = bench.withdraw(tender, "bidder", bench.withdrawal(tender, "bidder", [receipt_id]))
    assert resp.status_code == 201, resp.get_json()
    data = resp.get_json()["data"]
    assert data["receipts"] == [receipt_id]
    entry = bench.entries()[data["log_index"]]
    assert (entry["action"], entry["actor"], entry["data"]) == ("bid.withdrawn", "hidden", {})
    states = bench.client.get(f"{tender.base}/receipts", headers=bench.headers("bidder")).get_json()["meta"]["states"]
    assert states == {receipt_id: "withdrawn"}
    # withdrawing it again, or someone else's, is refused
    again = bench.withdraw(tender, "bidder", bench.withdrawal(tender, "bidder", [receipt_id]))
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "receipt_not_live"
    # a new file of that name needs no supersedes now
    bench.submit(tender, "bidder", bench.seal(tender, "bidder"))


def test_withdrawal_nonce_cannot_be_reused(bench: Bench, tender: Tender) -> None:
    nonce = b"n" * 16
    signed = bench.submit(tender, "bidder", bench.seal(tender, "bidder", nonce=nonce))
    envelope = bench.withdrawal(tender, "bidder", [signed["receipt"]["receipt"]], nonce=nonce)
    resp = bench.withdraw(tender, "bidder", envelope)
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "nonce_reused"
    assert bench.count(Withdrawal) == 0


def test_someone_elses_receipt_cannot_be_withdrawn(bench: Bench, tender: Tender) -> None:
    theirs = bench.submit(tender, "bidder2", bench.seal(tender, "bidder2"))
    resp = bench.withdraw(tender, "bidder", bench.withdrawal(tender, "bidder", [theirs["receipt"]["receipt"]]))
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "receipt_not_live"
    assert bench.count(Submission, state="live") == 1


def test_supersede_must_name_the_live_receipt(bench: Bench, tender: Tender) -> None:
    first = bench.submit(tender, "bidder", bench.seal(tender, "bidder"))
    missing = bench.seal(tender, "bidder")
    resp = bench.post_manifest(tender, "bidder", missing)
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "supersedes_required"
    wrong = bench.seal(tender, "bidder", supersedes="ab" * 32)
    resp = bench.post_manifest(tender, "bidder", wrong)
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "supersedes_not_live"
    fresh = bench.seal(tender, "bidder", file="proposal.pdf", supersedes=first["receipt"]["receipt"])
    resp = bench.post_manifest(tender, "bidder", fresh)
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "supersedes_not_live"
    right = bench.seal(tender, "bidder", supersedes=first["receipt"]["receipt"])
    bench.submit(tender, "bidder", right)
    # the superseded receipt is no longer live: naming it again is refused
    stale = bench.seal(tender, "bidder", supersedes=first["receipt"]["receipt"])
    resp = bench.post_manifest(tender, "bidder", stale)
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "supersedes_not_live"
    assert bench.count(Submission) == 2 and bench.count(Submission, state="live") == 1


def test_bid_security_is_checked_and_hidden(bench: Bench, tender: Tender) -> None:
    low = bench.client.post(f"{tender.base}/securities", headers=bench.headers("bidder"),
                            json={"lot": "L1", "amount": "19999.99", "payer_account": "6222000011112222"})
    assert low.status_code == 422 and low.get_json()["error"]["code"] == "security_insufficient"
    paid = bench.client.post(f"{tender.base}/securities", headers=bench.headers("bidder"),
                             json={"lot": "L1", "amount": "20000.00", "payer_account": "6222000011112222"})
    assert paid.status_code == 201, paid.get_json()
    assert paid.get_json()["data"]["amount"] == "20000.00"
    entry = bench.entries()[paid.get_json()["data"]["log_index"]]
    assert (entry["action"], entry["actor"], entry["data"]) == ("bid.security_paid", "hidden", {})
    own = bench.client.get(f"{tender.base}/securities", headers=bench.headers("bidder")).get_json()["data"]
    assert len(own) == 1
    assert bench.client.get(f"{tender.base}/securities", headers=bench.headers("bidder2")).get_json()["data"] == []
    float_amount = bench.client.post(f"{tender.base}/securities", headers=bench.headers("bidder"),
                                     json={"lot": "L1", "amount": 20000.5, "payer_account": "x"})
    assert float_amount.status_code == 422
    assert bench.db(lambda s: s.query(BidSecurity).one().amount) == Decimal("20000.00")
    bench.clock.set(tender.deadline)
    late = bench.client.post(f"{tender.base}/securities", headers=bench.headers("bidder2"),
                             json={"lot": "L1", "amount": "20000.00", "payer_account": "1"})
    assert late.status_code == 409 and late.get_json()["error"]["code"] == "bid_deadline_passed"
    everyone = bench.client.get(f"{tender.base}/securities", headers=bench.headers("agent"))
    assert everyone.status_code == 200 and len(everyone.get_json()["data"]) == 1
