"""Uploads share the tender lock with each other (PROTOCOL §5), so two uploads of the same
file name can race; exactly one becomes the live file and the other gets a stable code."""
from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from bidding.models import Submission
from tests.bidding.helpers import Bench


def test_two_first_versions_of_one_file_racing_store_one(bench: Bench) -> None:
    tender = bench.tender(mode="officials")
    bench.clock.set(tender.deadline - timedelta(hours=1))
    bids = [bench.seal(tender, "bidder", price=p) for p in ("100.00", "200.00")]
    for bid in bids:
        assert bench.post_manifest(tender, "bidder", bid).status_code == 201
    headers = bench.headers("bidder")
    barrier, results = threading.Barrier(len(bids)), []

    def upload(bid: Any) -> None:
        client = bench.world.app.test_client()
        barrier.wait()
        resp = client.put(f"{tender.base}/uploads/{bid.manifest_sha256}", headers=headers, data=bid.ebid,
                          content_type="application/octet-stream")
        results.append((resp.status_code, (resp.get_json().get("error") or {}).get("code")))

    threads = [threading.Thread(target=upload, args=(bid,)) for bid in bids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == [(201, None), (409, "supersedes_required")], results
    assert bench.count(Submission) == 1 and bench.count(Submission, state="live") == 1


def test_the_same_upload_twice_at_once_gives_one_receipt(bench: Bench) -> None:
    tender = bench.tender(mode="officials")
    bench.clock.set(tender.deadline - timedelta(hours=1))
    bid = bench.seal(tender, "bidder")
    assert bench.post_manifest(tender, "bidder", bid).status_code == 201
    headers = bench.headers("bidder")
    barrier, results = threading.Barrier(2), []

    def upload() -> None:
        client = bench.world.app.test_client()
        barrier.wait()
        resp = client.put(f"{tender.base}/uploads/{bid.manifest_sha256}", headers=headers, data=bid.ebid,
                          content_type="application/octet-stream")
        results.append((resp.status_code, resp.get_json()))

    threads = [threading.Thread(target=upload) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    statuses = sorted(status for status, _ in results)
    # the loser either finds the stored file (200) or the pending row already gone (404)
    assert statuses[1] == 201 and statuses[0] in (200, 201, 404), results
    assert bench.count(Submission) == 1
    receipts = [body["data"] for status, body in results if status in (200, 201)]
    assert all(r == receipts[0] for r in receipts)
