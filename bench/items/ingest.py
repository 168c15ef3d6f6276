"""Item 2: large bid-file ingest.

One bidder uploads a 1 GiB sealed file (quick: 64 MiB) to a tender through gunicorn, as
``PUT /api/v1/tenders/{T}/uploads/{manifest_sha256}`` after posting its manifest: the
platform streams it through the key-less framing check and SHA-256 into the blob store
(fsynced), checks header, hashes and size against the manifest and the policy, and stores
the submission with its log entry and receipt. Server memory is the serving worker's
``VmHWM`` from /proc/<pid>/status, read before and after (the growth is what the upload
cost; the absolute peak includes the interpreter and the app).

Baseline: ``PUT /raw/<name>`` of the baseline app: the same bytes streamed to a file in
1 MiB chunks and fsynced, nothing else, under the same gunicorn settings.

Measured on SQLite: the file's path is the same on PostgreSQL (only the final row differs).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from bench.core import Context, Row, mb
from bench.load import Http, expect
from bench.platform import Platform, require_platform
from bench.sealkit import Cast, now_text, seal_bid_form, seal_file, write_random_file
from bench.servers import BASELINE_APP, Server

SIZE = {"quick": 64 << 20, "full": 1 << 30}
MEMORY_GOAL_MB = 64
THROUGHPUT_GOAL = 0.6
WARMUPS = {"quick": 4, "full": 6}


def _put_file(port: int, path: str, target: str, headers: dict[str, str]) -> tuple[float, int, bytes]:
    """Stream a file as the request body; returns (seconds, status, body)."""
    size = os.path.getsize(path)
    http = Http(port, timeout=900)
    try:
        with open(path, "rb") as body:
            t0 = time.perf_counter()
            status, data = http.request("PUT", target, body=body,
                                        headers={**headers, "Content-Length": str(size),
                                                 "Content-Type": "application/octet-stream"}, retry=False)
            return time.perf_counter() - t0, status, data
    finally:
        http.close()


def _growth(before: dict[int, int], after: dict[int, int]) -> tuple[int, int]:
    """(largest VmHWM after, largest growth) over the workers, in kB."""
    peak = max(after.values(), default=0)
    growth = max((after[p] - before.get(p, after[p]) for p in after), default=0)
    return peak, growth


def _platform(ctx: Context, size: int, plain: Path, details: dict[str, Any]) -> dict[str, Any]:
    cast = Cast.make(1)
    with Platform(ctx, "sqlite", "ingest", cast=cast, bidders=1) as plat:
        server = plat.start_server()
        tender = plat.create_tender()
        auth = {"Authorization": f"Bearer {plat.tokens[0]}"}
        http = Http(plat.port)
        try:
            # warm both workers up through the whole path with small files
            for k in range(WARMUPS[ctx.mode]):
                bid = seal_bid_form(tender.policy_bytes, tender.tender, Cast.bidder_code(0), cast.bidder_keys[0],
                                    price="1.00", created=now_text()) if k == 0 else None
                if bid is None:
                    small = ctx.work / f"warm{k}.bin"
                    write_random_file(str(small), 1 << 20)
                    bid = seal_file(str(small), str(small) + ".ebid", tender.policy_bytes, tender.tender,
                                    Cast.bidder_code(0), f"warm{k}.bin", cast.bidder_keys[0], now_text())
                    bid.ebid = Path(str(small) + ".ebid").read_bytes()
                http.close()   # a new connection each time, so both workers take some
                status, body = http.request("POST", f"{tender.base}/submissions", body=bid.manifest_bytes,
                                            headers={**auth, "Content-Type": "application/json"})
                expect(status, body, 201)
                http.close()
                status, body = http.request("PUT", json.loads(body)["data"]["upload"], body=bid.ebid,
                                            headers={**auth, "Content-Type": "application/octet-stream"})
                expect(status, body, 201)
            http.close()
            ctx.log(f"ingest: sealing the {size >> 20} MiB file (bidder side, not timed)")
            sealed_path = ctx.work / "proposal.ebid"
            big = seal_file(str(plain), str(sealed_path), tender.policy_bytes, tender.tender, Cast.bidder_code(0),
                            "proposal.bin", cast.bidder_keys[0], now_text())
            status, body = http.request("POST", f"{tender.base}/submissions", body=big.manifest_bytes,
                                        headers={**auth, "Content-Type": "application/json"})
            expect(status, body, 201)
            upload = json.loads(body)["data"]["upload"]
            http.close()
            before = server.memory_kb("VmHWM")
            ctx.log(f"ingest: uploading {size >> 20} MiB to the platform")
            seconds, status, body = _put_file(plat.port, str(sealed_path), upload, auth)
            after = server.memory_kb("VmHWM")
            expect(status, body, 201)
            from crypto.signing import RECEIPT, verify_object
            receipt = verify_object(json.loads(body)["data"], "receipt", RECEIPT, plat.receipt_public)
            assert receipt["receipt"] == big.manifest_sha256
            stored = (plat.instance / "blobs" / big.envelope["manifest"]["ciphertext_sha256"][:2])
        finally:
            http.close()
        peak, growth = _growth(before, after)
        result = {"seconds": seconds, "bytes": big.size, "vmhwm_before_kb": before, "vmhwm_after_kb": after,
                  "peak_kb": peak, "growth_kb": growth, "stored": stored.exists(), "sealed_path": str(sealed_path)}
    return result


def _baseline(ctx: Context, sealed_path: str) -> dict[str, Any]:
    raw_dir = ctx.scratch("ingest-raw")
    server = Server(BASELINE_APP, {"BENCH_RAW_DIR": str(raw_dir)}, ctx.scratch("logs"), "baseline-raw",
                    ready_path="/ping")
    with server:
        small = ctx.work / "warm-raw.bin"
        write_random_file(str(small), 1 << 20)
        for k in range(WARMUPS[ctx.mode]):
            _, status, body = _put_file(server.port, str(small), f"/raw/warm{k}", {})
            expect(status, body, 201)
        before = server.memory_kb("VmHWM")
        ctx.log("ingest: uploading the same file to the baseline")
        seconds, status, body = _put_file(server.port, sealed_path, "/raw/big", {})
        after = server.memory_kb("VmHWM")
        expect(status, body, 201)
        assert json.loads(body)["data"]["size"] == os.path.getsize(sealed_path)
    for path in raw_dir.iterdir():
        path.unlink()
    peak, growth = _growth(before, after)
    return {"seconds": seconds, "vmhwm_before_kb": before, "vmhwm_after_kb": after, "peak_kb": peak,
            "growth_kb": growth}


def run(ctx: Context, details: dict[str, Any]) -> list[Row]:
    require_platform("bidding.api", "bidding.submission")
    size = SIZE[ctx.mode]
    plain = ctx.work / "proposal.bin"
    write_random_file(str(plain), size)
    op = _platform(ctx, size, plain, details)
    plain.unlink()
    base = _baseline(ctx, op["sealed_path"])
    os.unlink(op["sealed_path"])
    details.update({"platform": op, "baseline": base})
    label = f"{size >> 20} MiB" if size < 1 << 30 else f"{size >> 30} GiB"
    op_rate, base_rate = mb(op["bytes"]) / op["seconds"], mb(op["bytes"]) / base["seconds"]
    growth_mb, base_growth_mb = op["growth_kb"] / 1024, base["growth_kb"] / 1024
    return [
        Row(f"{label} sealed file, SQLite", "upload MB/s", "MiB/s", op_rate, base_rate,
            goal=f"ratio ≥ {THROUGHPUT_GOAL}", goal_met=op_rate / base_rate >= THROUGHPUT_GOAL,
            note=f"PUT {op['seconds']:.2f} s vs {base['seconds']:.2f} s; framing check, SHA-256, blob store, "
                 "checks, receipt; baseline: raw stream to disk + fsync"),
        Row(f"{label} sealed file, SQLite", "worker memory growth during upload", "MB", growth_mb, base_growth_mb,
            better="lower", goal=f"< {MEMORY_GOAL_MB} MB", goal_met=growth_mb < MEMORY_GOAL_MB,
            note="VmHWM after − before, serving worker"),
        Row(f"{label} sealed file, SQLite", "worker peak memory (VmHWM)", "MB", op["peak_kb"] / 1024,
            base["peak_kb"] / 1024, better="lower",
            note="absolute: includes the interpreter and the app's imports"),
    ]
