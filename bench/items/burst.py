"""Item 1: the deadline burst.

N bidders (default 1,000; ``--bidders``; 10x in the full run) each submit a sealed
``bid-form.json`` to one tender over HTTP, concurrently, as a bidder's tool does it: POST
the signed manifest, PUT the ``.ebid`` bytes to the upload URL, get the signed receipt;
with every server check (signature against the registered key, policy, framing, hashes,
nonce, deadline under the tender lock, the hidden log entry and its checkpoint). Through
gunicorn with the documented settings, on SQLite and on PostgreSQL.

Then every receipt's signature is verified with the platform's receipt key, its id checked
against the manifest sent, and every receipt looked up among the stored submissions (and
its sealed file in the blob store): zero lost receipts.

Baseline: ``POST /insert`` of the baseline app, one row through the same ORM into a fresh
database of the same kind, under the same gunicorn settings, with the same client and the
manifest as body.

After the 1x burst the tender is closed as at its deadline (``bidding.closing.ensure_closed``
in a child process stopped at a time budget): the closing must list every live file and
compare the bidders for collusion indicators before anyone can open. Its baseline is
reading the live submissions' rows.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa

from bench import baseline_app, env
from bench.core import Context, NotMeasured, Row, not_measured
from bench.load import Http, LoadResult, TaskFailed, expect, run_tasks
from bench.platform import Platform, Tender, require_platform
from bench.sealkit import Cast, SealedFile, now_text, seal_bid_forms
from bench.servers import BASELINE_APP, Server

CONCURRENCY = 32          # client threads (each a keep-alive connection)
GOAL_RATIO = 0.5
# Time budgets, so the full run ends in 15 minutes on two cores: the 1x burst must finish
# within its budget (the goal); a larger burst runs until its budget is spent, and reports
# how many of its N bidders got a receipt by then. Only as many bids are sealed as the
# best rate seen so far could submit within the budget (sealing is setup, ~5 ms a bid).
BUDGET_S = {"quick": 60.0, "full": 200.0}
SCALED_BUDGET_S = 40.0
MIN_BASELINE_REQUESTS = 100
CLOSING_BUDGET_S = {"quick": 20.0, "full": 20.0}


def _budget(ctx: Context, scale: int) -> float:
    return BUDGET_S[ctx.mode] if scale == 1 else SCALED_BUDGET_S


def _to_seal(ctx: Context, n: int, budget: float) -> int:
    best = ctx.shared.get("burst_best_rate")
    if best is None:
        return n
    return min(n, int(best * budget * 1.5) + 200)


def _sealed(ctx: Context, cast: Cast, tender: Tender, n: int) -> list[SealedFile]:
    """The first ``n`` bidders' sealed forms for this tender (cached per tender and policy)."""
    cache = ctx.shared.setdefault("burst_sealed", {})
    key = (tender.tender, hashlib.sha256(tender.policy_bytes).hexdigest())
    bids: list[SealedFile] = cache.setdefault(key, [])
    if len(bids) < n:
        ctx.log(f"burst: sealing {n - len(bids):,} bid forms (bidder side, not timed)")
        bids.extend(seal_bid_forms(tender.policy_bytes, tender.tender,
                                   [(Cast.bidder_code(i), cast.bidder_keys[i], f"{10_000_000 + i * 37}.00")
                                    for i in range(len(bids), n)], now_text()))
    return bids[:n]


def _submit_task(plat: Platform, tender: Tender, bids: list[SealedFile]) -> Any:
    base = tender.base

    def task(i: int, http: Http) -> dict[str, Any]:
        bid, auth = bids[i], f"Bearer {plat.tokens[i]}"
        status, body = http.request("POST", f"{base}/submissions", body=bid.manifest_bytes,
                                    headers={"Authorization": auth, "Content-Type": "application/json"})
        expect(status, body, 201)
        upload = json.loads(body)["data"]["upload"]
        status, body = http.request("PUT", upload, body=bid.ebid,
                                    headers={"Authorization": auth, "Content-Type": "application/octet-stream"})
        expect(status, body, 201)
        return json.loads(body)["data"]
    return task


def _verify(plat: Platform, tender: Tender, bids: list[SealedFile], result: LoadResult) -> dict[str, Any]:
    """Every receipt: signature, id, stored submission, stored blob."""
    from core.blobs import FolderBlobStore
    from crypto.errors import CryptoError
    from crypto.signing import RECEIPT, verify_object

    bad: list[str] = []
    verified: dict[str, str] = {}
    for i, envelope in result.results.items():
        try:
            payload = verify_object(envelope, "receipt", RECEIPT, plat.receipt_public)
        except CryptoError as exc:
            bad.append(f"bidder {i}: {exc.code}")
            continue
        if payload.get("receipt") != bids[i].manifest_sha256 or payload.get("manifest_sha256") != bids[i].manifest_sha256:
            bad.append(f"bidder {i}: receipt names another manifest")
            continue
        verified[payload["receipt"]] = payload["ciphertext_sha256"]
    engine = plat.engine()
    try:
        with engine.connect() as conn:
            stored = dict(conn.execute(sa.text(
                "SELECT manifest_sha256, ciphertext_sha256 FROM bid_submissions WHERE project_id = :p"),
                {"p": tender.id}).all())
    finally:
        engine.dispose()
    blobs = FolderBlobStore(plat.instance / "blobs")
    lost = [r for r, c in verified.items() if stored.get(r) != c or not blobs.exists(c)]
    return {"receipts": len(result.results), "verified": len(verified), "bad": bad[:10], "bad_count": len(bad),
            "stored_rows": len(stored), "lost": len(lost), "lost_samples": lost[:5]}


def _baseline(ctx: Context, kind: str, bids: list[SealedFile], n: int, budget: float) -> LoadResult:
    with env.fresh_database(kind, ctx.scratch("baseline"), ctx.pg_admin_url, "insert", migrated=False) as url:
        baseline_app.create_table(url)
        server = Server(BASELINE_APP, {"BENCH_DATABASE_URL": url}, ctx.scratch("logs"), f"baseline-insert-{kind}-{n}",
                        ready_path="/ping")
        with server:
            def task(i: int, http: Http) -> None:
                status, body = http.request("POST", "/insert", body=bids[i].manifest_bytes,
                                            headers={"Content-Type": "application/json"})
                expect(status, body, 201)
            result = run_tasks(server.port, n, task, concurrency=CONCURRENCY, time_limit=budget)
        rows = baseline_app.count_rows(url)
        if rows != result.ok:
            raise TaskFailed(f"baseline stored {rows} rows for {result.ok} answers")
    return result


def _rows(kind: str, n: int, scale: int, op: LoadResult, base: LoadResult, check: dict[str, Any],
          budget: float, sealed: int) -> list[Row]:
    case = f"{kind}, {n:,} bidders ({scale}x)"
    extra = {"series": "burst", "database": kind, "bidders": n, "scale": scale}
    ratio = (op.rate or 0) / base.rate if base.rate else None
    errors = op.errors
    stored_ok = check["verified"] - check["lost"]
    started = sealed - op.not_started
    return [
        Row(case, "accepted/s", "1/s", op.rate, base.rate, goal=f"ratio ≥ {GOAL_RATIO}",
            goal_met=ratio is not None and ratio >= GOAL_RATIO,
            note=f"baseline: one-row insert/s over {base.ok:,} requests; {CONCURRENCY} client threads; "
                 f"wall {op.wall_s:.1f} s vs {base.wall_s:.1f} s", extra=extra),
        Row(case, f"bidders with a receipt within {budget:.0f} s", "", float(op.ok), float(n),
            goal="all" if scale == 1 else None, goal_met=(op.ok == n) if scale == 1 else None,
            note=f"{started:,} started, {op.ok:,} receipts" + (
                f"; {sealed:,} of {n:,} sealed (enough for the budget at the best rate seen)" if sealed < n else "")
            + "; baseline: N", extra=extra),
        Row(case, "p50 latency", "ms", _ms(op.p(50)), _ms(base.p(50)), better="lower",
            note="per bidder: POST manifest + PUT file", extra=extra),
        Row(case, "p99 latency", "ms", _ms(op.p(99)), _ms(base.p(99)), better="lower", extra=extra),
        Row(case, "errors", "", float(errors), float(base.errors), better="lower", goal="0",
            goal_met=errors == 0,
            note="; ".join(op.error_samples[:2])[:300] + (f" ({op.retries} retried)" if op.retries else ""),
            extra=extra),
        Row(case, "receipts verified and stored", "", float(stored_ok), float(op.ok), goal="all (zero lost)",
            goal_met=stored_ok == op.ok and check["bad_count"] == 0 and check["lost"] == 0,
            note=f"signature and id checked, row and blob found; {check['bad_count']} bad, {check['lost']} lost, "
                 f"{check['stored_rows']} rows stored; baseline: receipts received", extra=extra),
    ]


def _closing(ctx: Context, plat: Platform, tender: Tender, n: int, kind: str) -> Row:
    """Close the tender after the burst, in a child process with a time budget."""
    import sys
    import time

    from bench.tools import run_measured
    budget = CLOSING_BUDGET_S[ctx.mode]
    ctx.log(f"burst: closing the {kind} tender of {n:,} bids (budget {budget:.0f} s)")
    child = run_measured([sys.executable, "-m", "bench.closing_probe", plat.url, str(plat.instance), str(tender.id)],
                         timeout=budget)
    engine = plat.engine()
    try:
        with engine.connect() as conn:
            t0 = time.perf_counter()
            rows = conn.execute(sa.text("SELECT * FROM bid_submissions WHERE project_id = :p AND state = 'live'"),
                                {"p": tender.id}).all()
            read_s = time.perf_counter() - t0
    finally:
        engine.dispose()
    case = f"{kind}, closing after {n:,} bids in one lot"
    extra = {"series": "closing", "database": kind, "bidders": n}
    if child.returncode == 0 and child.stdout.strip():
        out = json.loads(child.stdout.strip().splitlines()[-1])
        return Row(case, "closing time", "s", out["seconds"], read_s, better="lower", goal=f"< {budget:.0f} s",
                   goal_met=out["seconds"] < budget,
                   note=f"{out['files']:,} files listed, {out['indicators']:,} collusion indicators recorded (every bench "
                        "bidder shares the loopback address); "
                        f"baseline: reading the {len(rows):,} live submission rows", extra=extra)
    killed = child.wall_s >= budget - 0.5
    return Row(case, "closing time", "s", None, read_s, better="lower", goal=f"< {budget:.0f} s", goal_met=False,
               note=(f"did not finish within {budget:.0f} s (stopped)" if killed else
                     f"failed ({child.returncode}): {child.stderr.strip()[-200:]}")
               + f"; baseline: reading the {len(rows):,} live submission rows", extra=extra)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def burst(ctx: Context, cast: Cast, kind: str, n: int, scale: int, details: dict[str, Any]) -> list[Row]:
    budget = _budget(ctx, scale)
    with Platform(ctx, kind, f"burst-{kind}-{n}", cast=cast, bidders=n) as plat:
        plat.start_server()
        tender = plat.create_tender()
        sealed = _to_seal(ctx, n, budget)
        bids = _sealed(ctx, cast, tender, sealed)
        ctx.log(f"burst: {n:,} bidders on {kind} (platform; {sealed:,} sealed, budget {budget:.0f} s)")
        op = run_tasks(plat.port, sealed, _submit_task(plat, tender, bids), concurrency=CONCURRENCY,
                       time_limit=budget, keep_results=True)
        check = _verify(plat, tender, bids, op)
        closing_row = _closing(ctx, plat, tender, op.ok, kind) if scale == 1 else None
    if op.rate:
        ctx.shared["burst_best_rate"] = max(op.rate, ctx.shared.get("burst_best_rate", 0.0))
    count = max(op.ok, min(MIN_BASELINE_REQUESTS, sealed))
    ctx.log(f"burst: {count:,} inserts on {kind} (baseline)")
    base = _baseline(ctx, kind, bids, count, budget)
    details.setdefault("runs", []).append({"database": kind, "bidders": n, "sealed": sealed, "scale": scale,
                                           "budget_s": budget, "operation": op.summary(),
                                           "baseline": base.summary(), "receipts": check})
    return _rows(kind, n, scale, op, base, check, budget, sealed) + ([closing_row] if closing_row else [])


def run(ctx: Context, details: dict[str, Any]) -> list[Row]:
    require_platform("bidding.api", "bidding.submission")
    kinds = ["sqlite"] + (["postgresql"] if ctx.pg_admin_url else [])
    cast = Cast.make(ctx.bidders * max(ctx.scales))
    details["concurrency"] = CONCURRENCY
    rows: list[Row] = []
    for scale in ctx.scales:
        for kind in kinds:
            rows += burst(ctx, cast, kind, ctx.bidders * scale, scale, details)
    if not ctx.pg_admin_url:
        rows.append(not_measured("postgresql", "accepted/s", ctx.pg_reason))

    if not rows:
        raise NotMeasured("no database")
    return rows
