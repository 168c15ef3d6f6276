"""Item 6: public reads under load.

Anonymous ``GET /api/v1/projects`` (the first page, 20 projects with their derived status)
and ``GET /api/v1/projects/{id}`` (a random published project) through gunicorn with the
documented settings, from a fixed number of client threads for a fixed time, on SQLite
and (full run) PostgreSQL. The projects are created and published by the agent over HTTP.

Baseline: ``GET /json`` of the baseline app, a fixed JSON document shaped like a page of
the project list, same settings, same client, same time.
"""
from __future__ import annotations

import json
import random
from typing import Any

from bench.core import Context, Row, not_measured
from bench.load import Http, LoadResult, expect, run_for
from bench.platform import Platform, require_platform
from bench.sealkit import Cast
from bench.servers import BASELINE_APP, Server

PROJECTS = {"quick": 10, "full": 20}
DURATION = {"quick": 3.0, "full": 5.0}
WARMUP = {"quick": 0.5, "full": 1.0}
CONCURRENCY = 16


def _ms(v: float | None) -> float | None:
    return None if v is None else v * 1000


def _baseline(ctx: Context) -> LoadResult:
    server = Server(BASELINE_APP, {}, ctx.scratch("logs"), "baseline-json", ready_path="/ping")
    with server:
        def task(i: int, http: Http) -> None:
            status, body = http.request("GET", "/json")
            expect(status, body, 200)
        return run_for(server.port, DURATION[ctx.mode], task, concurrency=CONCURRENCY, warmup=WARMUP[ctx.mode])


def _platform(ctx: Context, kind: str, details: dict[str, Any]) -> dict[str, LoadResult]:
    with Platform(ctx, kind, f"reads-{kind}", cast=Cast.make(0)) as plat:
        plat.start_server()
        ids = [plat.create_tender(title=f"县道路改造工程 第{k}标段", with_policy=False).id
               for k in range(PROJECTS[ctx.mode])]
        rng = random.Random(6)

        def listing(i: int, http: Http) -> None:
            status, body = http.request("GET", "/api/v1/projects")
            expect(status, body, 200)
            if i == 0:
                details.setdefault("list_bytes", len(body))
                assert len(json.loads(body)["data"]) == min(20, len(ids))

        def page(i: int, http: Http) -> None:
            status, body = http.request("GET", f"/api/v1/projects/{rng.choice(ids)}")
            expect(status, body, 200)

        ctx.log(f"reads: {kind} project list")
        results = {"list": run_for(plat.port, DURATION[ctx.mode], listing, concurrency=CONCURRENCY, warmup=WARMUP[ctx.mode])}
        ctx.log(f"reads: {kind} project page")
        results["page"] = run_for(plat.port, DURATION[ctx.mode], page, concurrency=CONCURRENCY, warmup=WARMUP[ctx.mode])
    return results


def run(ctx: Context, details: dict[str, Any]) -> list[Row]:
    require_platform()
    ctx.log("reads: baseline JSON endpoint")
    base = _baseline(ctx)
    details["baseline"] = base.summary()
    kinds = ["sqlite"] + (["postgresql"] if ctx.pg_admin_url else [])
    rows = []
    for kind in kinds:
        results = _platform(ctx, kind, details)
        for name, label in (("list", "GET /api/v1/projects"), ("page", "GET /api/v1/projects/{id}")):
            op = results[name]
            details.setdefault(kind, {})[name] = op.summary()
            rows.append(Row(f"{kind}, {label}", "requests/s", "1/s", op.rate, base.rate,
                            goal="0 errors", goal_met=op.errors == 0,
                            note=f"p50 {_ms(op.p(50)):.1f} ms / p99 {_ms(op.p(99)):.1f} ms vs baseline "
                                 f"{_ms(base.p(50)):.1f} / {_ms(base.p(99)):.1f} ms; {CONCURRENCY} client threads, "
                                 f"{DURATION[ctx.mode]:.0f} s; {op.errors} errors; baseline: bare Flask JSON"))
    if not ctx.pg_admin_url:
        rows.append(not_measured("postgresql", "requests/s", ctx.pg_reason))

    return rows
