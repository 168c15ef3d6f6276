"""Deadline races over real gunicorn workers (issue 7.2; PROTOCOL §5, §6; RULES B3, C1).

Four bidder client processes submit 200 files as fast as they can while the test moves the
file clock every worker reads across the bid deadline in one-millisecond steps. Then:
no file is accepted at or after the deadline (every receipt and every stored bid is stamped
before it and precedes the ``tender.closed`` entry); none is refused before it (every
refusal is ``bid_deadline_passed``, logged at or after the deadline or after the closing);
the tender closed exactly once although both workers raced to close it; the closing lists
exactly the accepted files; and every client's receipt is a stored bid, every refusal a
stored nothing. Then two agents start the opening at the same instant through the two
workers: exactly one wins.

Already covered elsewhere and not repeated: the same races in-process against the test
client (tests/bidding/test_submission.py at ±1 ms, test_closing.py, test_opening_flow.py
``test_two_agents_starting_at_once_one_wins``) and two award decisions at once
(tests/award/test_award_rules.py ``test_two_award_decisions_at_once_exactly_one_wins``).
"""
from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from core.clock import FileClock, parse_instant
from crypto.canonical import parse_time
from tests.conftest import T0
from tests.reliability.reliability_kit import (Server, audit_check, collect, count_submissions, http,
                                               iter_receipts, log_entries, login, receipt_key, run_clients,
                                               seed_tender, server_env, stored_submissions, verify_receipt,
                                               wait_ready)

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

BIDDERS = 4
PER_BIDDER = 50    # 200 submissions around the deadline
STEP_S = 0.1       # real time between one-millisecond steps of the clock


def test_submissions_racing_the_deadline_and_the_opening(database_url: str, tmp_path: Path) -> None:
    clock = FileClock(tmp_path / "clock")
    clock.set(T0)
    instance = tmp_path / "instance"
    seeded = seed_tender(database_url, instance, clock, bidders=BIDDERS, extra_agents=1)
    deadline = parse_instant(seeded.deadline)
    clock.set(deadline - timedelta(seconds=1))
    env = server_env(database_url, instance, clock)
    server = Server(env, tmp_path).start()
    procs = []
    try:
        go = tmp_path / "go"
        procs = run_clients(seeded, server.base, tmp_path, PER_BIDDER, go=go, mode="deadline", budget_s=60)
        wait_ready(tmp_path, seeded)
        started = time.monotonic()
        go.write_text("go")
        total = BIDDERS * PER_BIDDER
        limit = time.monotonic() + 40
        while count_submissions(database_url, seeded.tender) < total // 3 and time.monotonic() < limit:
            time.sleep(0.02)
        for ms in range(-10, 4):
            clock.set(deadline + timedelta(milliseconds=ms))
            time.sleep(STEP_S)
        results = collect(procs, tmp_path, seeded)
        seconds = round(time.monotonic() - started, 2)
        receipt_pub = receipt_key(server.base)
        opening = race_opening(server.base, seeded.tender)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        server.stop()

    bids = [bid for result in results for bid in result["bids"]]
    assert len(bids) == total
    accepted = {b["manifest_sha256"] for b in bids if b["receipts"]}
    refused = [b for b in bids if not b["receipts"]]
    assert all(b["refused"] == {"status": 409, "code": "bid_deadline_passed"} for b in refused), \
        {json.dumps(b["refused"]) for b in refused}
    assert accepted and refused, "the clock must cross the deadline while bids are in flight"

    stored = stored_submissions(database_url, seeded.tender)
    assert set(stored) == accepted  # a receipt for every stored bid, none for a refused one
    for bid, envelope in iter_receipts(results):
        payload = verify_receipt(envelope, {envelope["kid"]: receipt_pub})
        assert parse_time(payload["received_at"], "received_at") < deadline
        assert payload == stored[bid["manifest_sha256"]]["receipt"]

    entries = log_entries(database_url)
    closed = [e for e in entries if e["action"] == "tender.closed"]
    assert len(closed) == 1, "the tender closed more than once"
    closed_at = closed[0]["index"]
    assert {f["manifest_sha256"] for f in closed[0]["data"]["files"]} == accepted
    assert all(row["log_index"] < closed_at for row in stored.values())
    refusals = [e for e in entries if e["action"] == "bid.refused"]
    assert len(refusals) == len(refused)
    for entry in refusals:
        # judged at or after the deadline, or after another request had closed the tender
        assert parse_time(entry["at"], "at") >= deadline or entry["index"] > closed_at, entry
        assert entry["data"] in ({}, {"stage": entry["data"].get("stage"), "code": "bid_deadline_passed"})
    assert sorted(opening) == [(200, None), (409, "opening_already_started")], opening
    assert sum(1 for e in log_entries(database_url) if e["action"] == "opening.started") == 1
    audit_check(env)
    print("deadline figures:", {"submissions": total, "accepted": len(accepted), "refused": len(refused),
                                "bidders_accepted": len({stored[m]["bidder"] for m in accepted}),
                                "accepted_in_last_10ms": sum(1 for r in stored.values() if deadline - parse_time(
                                    r["receipt"]["received_at"], "t") <= timedelta(milliseconds=10)),
                                "refused_at_deadline_exactly": sum(1 for e in refusals
                                                                   if parse_time(e["at"], "at") == deadline),
                                "seconds": seconds, "closing_index": closed_at})


def race_opening(base: str, tender: int) -> list[tuple[int, str | None]]:
    """Two agents start the opening at the same instant, over two connections."""
    tokens = [login(base, "agent1"), login(base, "agent2")]
    barrier = threading.Barrier(len(tokens))
    answers: list[tuple[int, str | None]] = []

    def start(token: str) -> None:
        barrier.wait()
        status, raw, _ = http("POST", f"{base}/api/v1/tenders/{tender}/opening/start", token=token)
        body: Any = json.loads(raw) if raw else {}
        answers.append((status, (body.get("error") or {}).get("code")))

    threads = [threading.Thread(target=start, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers
