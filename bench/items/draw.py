"""Item 5: the expert draw from a 100,000-expert pool (quick: 20,000) with recusal against 50 bidders.

The pool is bulk-loaded into a fresh SQLite database in the platform's own expert tables
(specialties, employments, relationships; some experts employed by, directing or related
to the 50 bidders, so recusal has work to do). The operation is what the draw service
computes for a request of two groups and alternates (``trading.expert_draw.eligible_lists``
and the §8 draw): read the candidate pool (``trading.experts.pool_for_groups``), every D3
recusal and D6 qualification check (``trading.recusal.exclusion_reasons`` with the
rulebook's parameters), the sorted eligible lists (``trading.draw.build_eligible_lists``)
and the draw itself (``trading.draw.draw_committee``).

Baseline: reading the eligible rows alone, one SELECT of the candidate experts' rows.

If the expert service is not there, the pure draw over 100,000 ids plus an equivalent read
of a plain table is measured instead, and the row says so.
"""
from __future__ import annotations

import hashlib
import importlib.util
import random
import time
from datetime import date, datetime, timezone
from typing import Any

import sqlalchemy as sa

from bench import env
from bench.core import Context, Row

POOL = {"quick": 20_000, "full": 100_000}
BIDDERS = 50
REPEATS = {"quick": 2, "full": 5}
REQUEST = {"tender": "1", "lot": "1",
           "groups": [{"specialty": "A01", "count": 5, "regions": []},
                      {"specialty": "B02", "count": 2, "regions": ["430421", "430426"]}],
           "alternates": 3, "exclude": [], "attempt": 1}
NOW = datetime(2026, 3, 24, 2, 0, tzinfo=timezone.utc)
TOP = [f"{letter}{n:02d}" for letter in "ABCDEFGH" for n in range(1, 6)]   # 40 specialty groups
REGIONS = [f"4304{n:02d}" for n in range(21, 35)]


def _bidder(i: int) -> str:
    return f"B{i:05d}"


def _populate(url: str, pool: int) -> dict[str, int]:
    """``pool`` experts with specialties, jobs and declared ties, inserted in bulk."""
    rng = random.Random(5)
    experts, specs, jobs, rels = [], [], [], []
    titles = ["intermediate", "associate_senior", "associate_senior", "senior", "junior"]
    now_text = "2026-01-01 00:00:00.000000"
    for n in range(pool):
        expert_id = f"E{n:06d}"
        experts.append((expert_id, f"专家{n}", rng.choice(REGIONS), f"ORG{rng.randrange(5000):04d}",
                        rng.choice(titles), date(rng.randrange(1985, 2023), rng.randrange(1, 13), 1).isoformat(),
                        "active", 0, now_text, now_text))
        for top in rng.sample(TOP, rng.choice((1, 1, 2))):
            specs.append((expert_id, f"{top}{rng.randrange(1, 6):02d}"))
        employer = _bidder(rng.randrange(BIDDERS)) if rng.random() < 0.01 else f"ORG{rng.randrange(5000):04d}"
        jobs.append((expert_id, employer, date(2015, 1, 1).isoformat(), None))
        roll = rng.random()
        if roll < 0.005:
            rels.append((expert_id, "director", _bidder(rng.randrange(BIDDERS)), "2020-01-01", None, None, None, "[]"))
        elif roll < 0.05:
            org = _bidder(rng.randrange(BIDDERS)) if rng.random() < 0.2 else f"ORG{rng.randrange(5000):04d}"
            rels.append((expert_id, "relative", None, None, None, f"亲属{rng.randrange(10**6)}", "spouse",
                         f'["{org}"]'))
    engine = sa.create_engine(url)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("BEGIN")   # the platform's connect hook puts pysqlite in autocommit mode
        cur.executemany("INSERT INTO experts (id, name, region, employer, title, field_since, status, "
                        "supervisory_staff, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)", experts)
        cur.executemany("INSERT INTO expert_specialties (expert_id, code) VALUES (?, ?)", specs)
        cur.executemany('INSERT INTO expert_employments (expert_id, org_code, start, "end") VALUES (?,?,?,?)', jobs)
        cur.executemany('INSERT INTO expert_relationships (expert_id, kind, org_code, start, "end", person_key, '
                        "relation, org_codes) VALUES (?,?,?,?,?,?,?,?)", rels)
        cur.execute("COMMIT")
    finally:
        raw.close()
        engine.dispose()
    return {"experts": len(experts), "specialties": len(specs), "employments": len(jobs), "relationships": len(rels)}


def _parties() -> Any:
    from trading.recusal import Bidder, Parties
    return Parties(tenderee="TENDEREE1", bidders=tuple(Bidder(_bidder(i), f"法人{i}") for i in range(BIDDERS)),
                   supervisory_body="SUPERVISION1")


def _rules() -> Any:
    from trading.rulebook import load_rulebook
    return load_rulebook().for_project("construction", "open_tender", "works", budget=None)


def _service_draw(session: Any, rules: Any, seed: bytes) -> tuple[list[list[str]], Any]:
    """What the draw service computes between a request and a committee."""
    from trading import draw, experts
    from trading.expert_draw import qualification_parameters, recusal_parameters
    from trading.recusal import exclusion_reasons, local_date

    recusal, qualification = recusal_parameters(rules), qualification_parameters(rules)
    parties = _parties()
    pool = experts.pool_for_groups(session, REQUEST["groups"], local_date(NOW))
    excluded = {e.record.id for e in pool
                if not e.available or exclusion_reasons(e.record, parties, NOW, recusal, qualification)}

    def is_eligible(entry: Any, group: dict[str, Any]) -> bool:
        return entry.record.id not in excluded and experts.matches_group(entry.record.specialties,
                                                                         entry.record.region, group)
    lists = draw.build_eligible_lists(REQUEST, pool, is_eligible, id_of=lambda e: e.record.id)
    return lists, draw.draw_committee(seed, REQUEST, lists)


def _read_rows(conn: Any) -> int:
    """Baseline: the candidate experts' rows, one SELECT, fetched."""
    rows = conn.execute(sa.text(
        "SELECT e.* FROM experts e WHERE e.id IN (SELECT expert_id FROM expert_specialties "
        "WHERE code LIKE 'A01%' OR code LIKE 'B02%')")).all()
    return len(rows)


def _with_service(ctx: Context, details: dict[str, Any]) -> list[Row]:
    from sqlalchemy.orm import Session

    from core.db import engine_options
    with env.fresh_sqlite(ctx.scratch("draw"), "experts") as url:
        ctx.log(f"draw: loading {POOL[ctx.mode]:,} experts")
        details["pool"] = _populate(url, POOL[ctx.mode])
        rules = _rules()
        engine = sa.create_engine(url, **engine_options(url))
        try:
            op_times, base_times, eligible = [], [], 0
            for attempt in range(REPEATS[ctx.mode]):
                seed = hashlib.sha256(b"bench draw %d" % attempt).digest()
                with Session(engine) as session:
                    t0 = time.perf_counter()
                    lists, result = _service_draw(session, rules, seed)
                    op_times.append(time.perf_counter() - t0)
                eligible = len(lists[-1])
                with engine.connect() as conn:
                    t0 = time.perf_counter()
                    read = _read_rows(conn)
                    base_times.append(time.perf_counter() - t0)
            details.update({"eligible": [len(x) for x in lists], "candidates_read": read,
                            "committee": result.to_json(), "draw_s": op_times, "read_s": base_times})
        finally:
            engine.dispose()
    op, base = min(op_times), min(base_times)
    return [Row(f"pool of {POOL[ctx.mode]:,}, {BIDDERS} bidders, 2 groups + 3 alternates", "draws/s", "1/s", 1 / op, 1 / base,
                note=f"draw {op * 1000:.0f} ms (pool read {read:,} candidates, recusal, {eligible:,} eligible, "
                     f"lists, §8 draw) vs reading the {read:,} candidate rows {base * 1000:.0f} ms; "
                     f"best of {len(op_times)}")]


def _pure(ctx: Context, details: dict[str, Any], reason: str) -> list[Row]:
    """The fallback: the pure draw over 100,000 ids, and the read of a plain table."""
    from trading import draw
    size = POOL[ctx.mode]
    ids = draw.sort_ids(f"E{n:06d}" for n in range(size))
    lists = [ids[0:size * 6 // 10], ids[size * 4 // 10:], ids]
    seed = hashlib.sha256(b"bench").digest()
    t0 = time.perf_counter()
    draw.run_draw(seed, lists, [5, 2, 3])
    op = time.perf_counter() - t0
    with env.fresh_sqlite(ctx.scratch("draw"), "plain", migrated=False) as url:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE pool (id TEXT PRIMARY KEY, region TEXT, specialty TEXT)"))
            conn.execute(sa.text("INSERT INTO pool VALUES (:i, '430426', 'A0101')"), [{"i": i} for i in ids])
        with engine.connect() as conn:
            t0 = time.perf_counter()
            conn.execute(sa.text("SELECT * FROM pool")).all()
            base = time.perf_counter() - t0
        engine.dispose()
    return [Row(f"pure draw over {size:,} ids", "draws/s", "1/s", 1 / op, 1 / base,
                note=f"fallback ({reason}): trading.draw.run_draw only, no recusal; baseline: a plain table read")]


def run(ctx: Context, details: dict[str, Any]) -> list[Row]:
    missing = [m for m in ("trading.expert_draw", "trading.experts", "trading.experts_models")
               if importlib.util.find_spec(m) is None]
    if missing:
        return _pure(ctx, details, f"{', '.join(missing)} not there yet")
    try:
        return _with_service(ctx, details)
    except ImportError as exc:
        return _pure(ctx, details, f"the expert service does not import: {exc}")
