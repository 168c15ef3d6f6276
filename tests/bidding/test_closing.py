"""Closing (PROTOCOL §6): exactly once, listing exactly the live files, with a checkpoint
that includes the entry; shares and files only after it."""
from __future__ import annotations

import base64
import threading
from datetime import timedelta
from typing import Any

import pytest

from audits import merkle, notes
from bidding import closing
from bidding.models import Closing, CollusionIndicator
from crypto import shares as crypto_shares
from crypto.canonical import b64decode, parse_canonical
from tests.bidding.helpers import Bench, Tender


@pytest.fixture
def tender(bench: Bench) -> Tender:
    tender = bench.tender(mode="officials")
    bench.clock.set(tender.deadline - timedelta(days=1))
    return tender


def _close(bench: Bench, tender: Tender) -> dict[str, Any]:
    bench.clock.set(tender.deadline)
    resp = bench.client.get(f"{tender.base}/closing")
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["data"]


def test_closed_entry_lists_exactly_the_live_files(bench: Bench, tender: Tender) -> None:
    first = bench.submit(tender, "bidder", bench.seal(tender, "bidder", price="100.00"))
    replacement = bench.seal(tender, "bidder", price="90.00", supersedes=first["receipt"]["receipt"])
    second = bench.submit(tender, "bidder", replacement)
    proposal = bench.submit(tender, "bidder", bench.seal(tender, "bidder", file="proposal.pdf"))
    other = bench.submit(tender, "bidder2", bench.seal(tender, "bidder2"))
    gone = bench.submit(tender, "bidder2", bench.seal(tender, "bidder2", file="extra.pdf"))
    withdrawn = bench.withdraw(tender, "bidder2", bench.withdrawal(tender, "bidder2", [gone["receipt"]["receipt"]]))
    assert withdrawn.status_code == 201, withdrawn.get_json()
    _close(bench, tender)
    (entry,) = bench.entries("tender.closed")
    assert entry["actor"] == "system" and entry["subject"] == f"project:{tender.id}"
    assert entry["data"]["deadline"] == "2026-04-01T01:00:00.000Z"
    expected = sorted([(r["receipt"]["lot"], r["receipt"]["bidder"], r["receipt"]["file"], r["receipt"]["receipt"])
                       for r in (second, proposal, other)])
    listed = [(f["lot"], f["bidder"], f["file"], f["manifest_sha256"]) for f in entry["data"]["files"]]
    assert listed == expected
    assert all(set(f) == {"lot", "bidder", "file", "header_sha256", "manifest_sha256"} for f in entry["data"]["files"])
    states = bench.client.get(f"{tender.base}/receipts", headers=bench.headers("bidder")).get_json()["meta"]["states"]
    assert states[first["receipt"]["receipt"]] == "superseded"


def test_closing_proof_verifies_against_the_log_key(bench: Bench, tender: Tender) -> None:
    bench.submit(tender, "bidder", bench.seal(tender, "bidder"))
    data = _close(bench, tender)
    entry = parse_canonical(b64decode(data["leaf"]))
    assert entry["action"] == "tender.closed" and entry["index"] == data["index"]
    key_line = bench.client.get("/api/v1/audit/key").data.decode().strip()
    checkpoint = notes.parse_and_verify_checkpoint(data["checkpoint"], key_line)
    assert checkpoint.size == data["index"] + 1
    path = [base64.b64decode(p) for p in data["inclusion"]]
    assert merkle.verify_inclusion(merkle.leaf_hash(b64decode(data["leaf"])), data["index"], checkpoint.size,
                                   path, checkpoint.root)


def test_closing_happens_once_for_sequential_requests(bench: Bench, tender: Tender) -> None:
    bench.submit(tender, "bidder", bench.seal(tender, "bidder"))
    first = _close(bench, tender)
    for path in ("closing", "receipts", "policy"):
        bench.client.get(f"{tender.base}/{path}", headers=bench.headers("bidder"))
    assert _close(bench, tender) == first
    assert len(bench.entries("tender.closed")) == 1 and bench.count(Closing) == 1


def test_closing_happens_once_when_requests_race(bench: Bench, tender: Tender) -> None:
    bench.submit(tender, "bidder", bench.seal(tender, "bidder"))
    bench.clock.set(tender.deadline + timedelta(milliseconds=5))
    app, barrier, results, errors = bench.world.app, threading.Barrier(4), [], []

    def close() -> None:
        from core.db import db
        from core.runtime import runtime
        try:
            with app.app_context():
                rt = runtime()
                signer = closing.LogSigner(rt.log_origin, rt.keys.log_key)
                barrier.wait()
                row = closing.ensure_closed(db.session, tender.id, rt.clock.now(), signer)
                db.session.commit()
                results.append(row.log_index)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=close) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert len(set(results)) == 1 and len(results) == 4
    assert len(bench.entries("tender.closed")) == 1 and bench.count(Closing) == 1


def test_the_periodic_command_closes_due_tenders(bench: Bench, tender: Tender) -> None:
    later = bench.tender(mode="officials", deadline=tender.deadline + timedelta(days=1))
    bench.clock.set(tender.deadline)
    from core.db import db
    from core.runtime import runtime
    with bench.world.app.app_context():
        rt = runtime()
        done = closing.close_due(db.session, rt.clock.now(), closing.LogSigner(rt.log_origin, rt.keys.log_key))
        db.session.commit()
        assert [c.project_id for c in done] == [tender.id]
        again = closing.close_due(db.session, rt.clock.now(), closing.LogSigner(rt.log_origin, rt.keys.log_key))
        assert again == []
    assert bench.count(Closing, project_id=later.id) == 0
    assert len(bench.entries("tender.closed")) == 1


def test_no_closing_before_the_deadline(bench: Bench, tender: Tender) -> None:
    bench.clock.set(tender.deadline - timedelta(milliseconds=1))
    resp = bench.client.get(f"{tender.base}/closing")
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "tender_not_closed"
    assert bench.count(Closing) == 0


def test_withdrawal_after_the_deadline_is_refused(bench: Bench, tender: Tender) -> None:
    signed = bench.submit(tender, "bidder", bench.seal(tender, "bidder"))
    envelope = bench.withdrawal(tender, "bidder", [signed["receipt"]["receipt"]])
    bench.clock.set(tender.deadline)
    resp = bench.withdraw(tender, "bidder", envelope)
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "bid_deadline_passed"
    (entry,) = bench.entries("tender.closed")
    assert [f["manifest_sha256"] for f in entry["data"]["files"]] == [signed["receipt"]["receipt"]]


# --------------------------------------------------------------------------- shares and files


def test_shares_are_refused_before_closing_and_logged(bench: Bench, tender: Tender) -> None:
    bench.submit(tender, "bidder", bench.seal(tender, "bidder"))
    refusals = len(bench.entries("bid.refused"))
    for i in (1, 2, 3):
        holder = tender.custodians[i][0]
        resp = bench.client.get(f"{tender.base}/shares?i={i}", headers=bench.headers(holder))
        assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "tender_not_closed"
    assert len(bench.entries("bid.refused")) == refusals + 3


def test_custodian_gets_shares_of_listed_files_only(bench: Bench, tender: Tender) -> None:
    old = bench.seal(tender, "bidder")
    first = bench.submit(tender, "bidder", old)
    new = bench.seal(tender, "bidder", supersedes=first["receipt"]["receipt"])
    bench.submit(tender, "bidder", new)
    other = bench.seal(tender, "bidder2")
    bench.submit(tender, "bidder2", other)
    _close(bench, tender)
    holder, x25519 = tender.custodians[2]
    resp = bench.client.get(f"{tender.base}/shares?i=2", headers=bench.headers(holder))
    assert resp.status_code == 200, resp.get_json()
    rows = resp.get_json()["data"]
    assert sorted(r["manifest_sha256"] for r in rows) == sorted([new.manifest_sha256, other.manifest_sha256])
    for row in rows:
        bid = new if row["manifest_sha256"] == new.manifest_sha256 else other
        header = b64decode(row["header"])
        assert header == bid.header_bytes
        h = __import__("hashlib").sha256(header).digest()
        plaintext = crypto_shares.open_share(x25519, h, 2, b64decode(row["sealed"]))
        assert plaintext == bid.share_plaintexts[2]
        assert row["digest"] == crypto_shares.share_digest(h, plaintext)
    assert bench.entries("bid.shares_served")[-1]["data"] == {"i": 2, "files": 2}
    # someone else asking for slot 2 is refused
    stranger = bench.client.get(f"{tender.base}/shares?i=2", headers=bench.headers("bidder2"))
    assert stranger.status_code == 403 and stranger.get_json()["error"]["code"] == "not_custodian"


def test_role_bidder_slot_serves_each_bidder_its_own_files(bench: Bench) -> None:
    tender = bench.tender(mode="joint")
    mine = bench.seal(tender, "bidder")
    bench.submit(tender, "bidder", mine)
    bench.submit(tender, "bidder2", bench.seal(tender, "bidder2"))
    _close(bench, tender)
    rows = bench.client.get(f"{tender.base}/shares?i=1", headers=bench.headers("bidder")).get_json()["data"]
    assert [r["manifest_sha256"] for r in rows] == [mine.manifest_sha256]
    h = __import__("hashlib").sha256(mine.header_bytes).digest()
    assert crypto_shares.open_share(bench.bidder_key("bidder"), h, 1, b64decode(rows[0]["sealed"])) == \
        mine.share_plaintexts[1]
    agent_rows = bench.client.get(f"{tender.base}/shares?i=2", headers=bench.headers("agent")).get_json()["data"]
    assert len(agent_rows) == 2


def test_files_are_served_after_closing_listed_only(bench: Bench, tender: Tender) -> None:
    first = bench.seal(tender, "bidder")
    signed = bench.submit(tender, "bidder", first)
    new = bench.seal(tender, "bidder", supersedes=signed["receipt"]["receipt"])
    bench.submit(tender, "bidder", new)
    _close(bench, tender)
    resp = bench.client.get(f"{tender.base}/files/{new.manifest_sha256}", headers=bench.headers("agent"))
    assert resp.status_code == 200 and resp.mimetype == "application/octet-stream"
    assert resp.data == new.ebid
    superseded = bench.client.get(f"{tender.base}/files/{first.manifest_sha256}", headers=bench.headers("agent"))
    assert superseded.status_code == 404 and superseded.get_json()["error"]["code"] == "file_unknown"
    audit = bench.client.get(f"{tender.base}/files/{first.manifest_sha256}", headers=bench.headers("supervisor"))
    assert audit.status_code == 200 and audit.data == first.ebid
    custodian = bench.client.get(f"{tender.base}/files/{new.manifest_sha256}", headers=bench.headers("custodian"))
    assert custodian.status_code == 200
    nobody = bench.client.get(f"{tender.base}/files/{new.manifest_sha256}", headers=bench.headers("bidder2"))
    assert nobody.status_code == 404


def test_related_bidders_are_recorded_at_closing_not_refused(bench: Bench, tender: Tender) -> None:
    bench.world.org("BIDDER3", "bidder", legal_representative="张一")  # as BIDDER1's
    bench.parties["bidder3"] = bench.world.user("bidder3", "bidder", org="BIDDER3")
    bench.issued["bidder3"] = bench.clock.now()
    bench.submit(tender, "bidder", bench.seal(tender, "bidder"))
    bench.submit(tender, "bidder3", bench.seal(tender, "bidder3"))
    _close(bench, tender)
    kinds = bench.db(lambda s: sorted((i.kind, tuple(i.bidders)) for i in s.query(CollusionIndicator)))
    assert ("same_legal_representative", ("BIDDER1", "BIDDER3")) in kinds
    hidden = bench.entries("bid.collusion_indicator")
    assert hidden and all(e["actor"] == "hidden" for e in hidden)
