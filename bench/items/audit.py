"""Item 4: the audit log.

- **Append** inside transactions: each append in its own transaction, with the checkpoint
  signed before commit, exactly what a request that changes state does (``audits.log.append``
  then ``issue_checkpoint`` as the app's before-commit hook does), on SQLite and PostgreSQL.
- **Proofs**: inclusion and consistency proofs (``audits.merkle`` over ``DbNodeReader``, what
  the /api/v1/audit/proof endpoints run) at 10^4, 10^5 and 10^6 entries of a bulk-loaded
  SQLite log (leaves and perfect-subtree nodes computed here, inserted in bulk into
  log_entries / log_nodes / log_head / checkpoints), with the growth per decade.
- **Verify**: ``ebid audit verify`` on an export of the bulk-loaded log.

Baseline: raw SHA-256 (the RFC 9162 leaf hash) over the same canonical entry bytes, in
this process.
"""
from __future__ import annotations

import hashlib
import random
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import sqlalchemy as sa
from sqlalchemy.orm import Session

from bench import env
from bench.core import Context, Row, not_measured, percentile, repeat_for
from bench.tools import ebid

ORIGIN = "ebid.local/log"
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)
APPENDS = {"quick": 100, "full": 1000}
APPEND_BUDGET_S = {"quick": 3.0, "full": 10.0}
# The default size is a log of 10^5 entries (quick: 10^3); the full run adds 10x (10^6) and
# the 0.1x point for the curve, --scale 100 adds 10^7. Proofs and appends are measured at
# each size; the verifier at 1x (10x too with --scale 100).
DEFAULT_SIZE = {"quick": 10**3, "full": 10**5}
# `ebid audit verify` runs at the default size (10^5; quick 10^3), and at 10^6 only with
# --scale 100: at 10^6 it takes 1-2 minutes here, which the 15-minute full run cannot spare
VERIFY_MAX = {1: 10**5, 10: 10**5, 100: 10**6}
PROOF_SAMPLES = {"quick": 100, "full": 400}
PROOF_BUDGET_S = {"quick": 1.0, "full": 3.0}   # per kind and size


# --------------------------------------------------------------------------- entries

def _entry_bytes(i: int, at: str) -> bytes:
    """Canonical entry bytes for a synthetic log: mostly hidden submissions (a deadline's
    traffic), some visible project events. Equal to audits.entries.make_entry's output
    (checked on a sample by :func:`_check_template`)."""
    if i % 4:
        detail = hashlib.sha256(i.to_bytes(8, "big")).hexdigest()
        return (f'{{"action":"bid.submitted","actor":"hidden","at":"{at}","data":{{}},'
                f'"detail_sha256":"{detail}","index":{i},"subject":"hidden"}}').encode()
    return (f'{{"action":"project.clarified","actor":"agent:agent{i % 97}","at":"{at}",'
            f'"data":{{"from":"bidding","to":"bidding"}},"detail_sha256":null,"index":{i},'
            f'"subject":"project:{i % 1009}"}}').encode()


_SECOND_CACHE: dict[int, tuple[str, str]] = {}


def _second(sec: int) -> tuple[str, str]:
    """(RFC 3339 prefix, SQLite DATETIME prefix) of T0 + ``sec`` seconds, cached."""
    found = _SECOND_CACHE.get(sec)
    if found is None:
        instant = T0 + timedelta(seconds=sec)
        found = (instant.strftime("%Y-%m-%dT%H:%M:%S."), instant.strftime("%Y-%m-%d %H:%M:%S."))
        if len(_SECOND_CACHE) > 100000:
            _SECOND_CACHE.clear()
        _SECOND_CACHE[sec] = found
    return found


def _at(i: int) -> str:
    """Entry ``i``'s time: T0 + i milliseconds, RFC 3339 with milliseconds."""
    return _second(i // 1000)[0] + f"{i % 1000:03d}Z"


def _stored_at(i: int) -> str:
    """The same instant as SQLAlchemy stores a DateTime in SQLite."""
    return _second(i // 1000)[1] + f"{i % 1000:03d}000"


def _check_template() -> None:
    from audits.entries import make_entry, parse_entry
    for i in (0, 1, 4, 5, 999, 1000, 123457):
        assert _stored_at(i) == (T0 + timedelta(milliseconds=i)).strftime("%Y-%m-%d %H:%M:%S.%f")
        raw = _entry_bytes(i, _at(i))
        e = parse_entry(raw)
        again = make_entry(e["index"], e["at"], e["actor"], e["action"], e["subject"], e["data"],
                           e["detail_sha256"])
        assert again == raw, (raw, again)


def _leaf_hash_rate(sample: list[bytes]) -> float:
    """Baseline: leaf hashes SHA-256(0x00 || entry) per second over ``sample``."""
    sha = hashlib.sha256

    def batch() -> int:
        for entry in sample:
            sha(b"\x00" + entry).digest()
        return len(sample)
    return repeat_for(batch, min_seconds=0.3)


# --------------------------------------------------------------------------- appends

def _keys(ctx: Context) -> Any:
    if "audit_keys" not in ctx.shared:
        from audits.keys import load_keys
        path = env.instance(ctx.scratch("audit"), "keys")
        ctx.shared["audit_keys"] = (path, load_keys(str(path)))
    return ctx.shared["audit_keys"]


def measure_appends(url: str, count: int, log_key: Any, budget_s: float = 1e9) -> dict[str, Any]:
    """Up to ``count`` appends, each in its own transaction with its checkpoint (stopping
    early, after at least 20, when ``budget_s`` is spent)."""
    from audits import log
    from core.db import engine_options
    engine = sa.create_engine(url, **engine_options(url))
    latencies: list[float] = []
    entries: list[bytes] = []
    with Session(engine) as session:
        initial = log.size(session)
    start = time.perf_counter()
    try:
        for i in range(count):
            if i >= 20 and time.perf_counter() - start > budget_s:
                break
            t0 = time.perf_counter()
            now = datetime.now(timezone.utc)
            with Session(engine, expire_on_commit=False) as session:
                with session.begin():
                    appended = log.append(
                        session, now=now, actor=f"bidder:B{i:05d}", action="bid.submitted",
                        subject="tender:1", data={"lot": "1", "file": "bid-form.json",
                                                  "manifest_sha256": hashlib.sha256(str(i).encode()).hexdigest()},
                        hidden=True, readers={"users": [i]})
                    log.issue_checkpoint(session, origin=ORIGIN, log_key=log_key, now=now)
            latencies.append(time.perf_counter() - t0)
            entries.append(appended.entry)
        wall = time.perf_counter() - start
        with Session(engine) as session:
            size = log.size(session)
    finally:
        engine.dispose()
    return {"wall_s": wall, "count": len(latencies), "latencies": latencies, "entries": entries, "size": size,
            "initial": initial}


def _append_row(case: str, result: dict[str, Any], baseline: float, extra: dict[str, Any]) -> Row:
    lat = result["latencies"]
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    op = result["count"] / result["wall_s"]
    return Row(case, "appends/s", "1/s", op, baseline,
               note=f"{result['count']:,} appends, one transaction each with its checkpoint signed at commit; "
                    f"p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms; baseline: leaf SHA-256/s",
               extra=extra)


def _append_rows(ctx: Context, details: dict[str, Any]) -> list[Row]:
    """Appends onto a fresh log, on SQLite and PostgreSQL."""
    _, keys = _keys(ctx)
    rows = []
    kinds = ["sqlite"] + (["postgresql"] if ctx.pg_admin_url else [])
    count = APPENDS[ctx.mode]
    for kind in kinds:
        ctx.log(f"audit: {count:,} appends on a fresh {kind} log")
        with env.fresh_database(kind, ctx.scratch("audit"), ctx.pg_admin_url, "append") as url:
            result = measure_appends(url, count, keys.log_key, APPEND_BUDGET_S[ctx.mode])
        assert result["size"] == result["count"], f"log size {result['size']} after {result['count']} appends"
        baseline = _leaf_hash_rate(result["entries"])
        details.setdefault("append", []).append({
            "database": kind, "initial_size": 0, "count": result["count"], "wall_s": result["wall_s"],
            "p50_ms": percentile(result["latencies"], 50) * 1000,
            "p99_ms": percentile(result["latencies"], 99) * 1000, "sha256_per_s": baseline})
        rows.append(_append_row(f"{kind}, fresh log", result, baseline,
                                {"series": "append", "database": kind, "entries": 0}))
    if not ctx.pg_admin_url:
        rows.append(not_measured("postgresql appends", "appends/s", ctx.pg_reason))
    return rows


# --------------------------------------------------------------------------- bulk load

def _batches(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


class _LevelReader:
    """A NodeReader over the perfect-subtree levels held in memory while loading."""

    def __init__(self, levels: list[list[bytes]]) -> None:
        self.levels = levels

    def get_many(self, keys: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        return {(level, index): self.levels[level][index] for level, index in keys}


def bulk_load(url: str, n: int, log_key: Any, checkpoints: int = 10) -> dict[str, Any]:
    """Fill a fresh, migrated SQLite database with an ``n``-entry log: entries, every
    perfect-subtree node, the head, and signed checkpoints at ``checkpoints`` sizes up to
    ``n``. Rows go in through the DB-API's executemany in one transaction (the ORM's
    per-row work would dominate a million rows); the stored values are what the ORM would
    store (checked: the root read back through ``DbNodeReader`` equals the streamed root)."""
    from audits import merkle, notes
    from audits.log import DbNodeReader
    from core.db import engine_options

    assert url.startswith("sqlite"), "the bulk loader writes SQLite"
    engine = sa.create_engine(url, **engine_options(url))
    sha = hashlib.sha256
    start = time.perf_counter()
    leaves: list[bytes] = []
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("BEGIN IMMEDIATE")
        for batch in _batches(n, 50000):
            rows, nodes = [], []
            for i in batch:
                at = _at(i)
                entry = _entry_bytes(i, at)
                leaf = sha(b"\x00" + entry).digest()
                leaves.append(leaf)
                stored_at = _stored_at(i)
                visible = i % 4 == 0
                rows.append((i, stored_at, "project.clarified" if visible else "bid.submitted",
                             f"project:{i % 1009}" if visible else "hidden", entry, leaf))
                nodes.append((0, i, leaf))
            cur.executemany('INSERT INTO log_entries ("index", at, action, subject, entry, leaf_hash) '
                            "VALUES (?, ?, ?, ?, ?, ?)", rows)
            cur.executemany('INSERT INTO log_nodes (level, "index", hash) VALUES (?, ?, ?)', nodes)
        levels = [leaves]
        while len(levels[-1]) > 1:
            current = levels[-1]
            upper = [merkle.node_hash(current[2 * k], current[2 * k + 1]) for k in range(len(current) // 2)]
            cur.executemany('INSERT INTO log_nodes (level, "index", hash) VALUES (?, ?, ?)',
                            [(len(levels), k, h) for k, h in enumerate(upper)])
            levels.append(upper)
        # the storage guard lets the head grow by one entry at a time, as appends do
        cur.executemany("UPDATE log_head SET size = size + 1 WHERE id = 1", (() for _ in range(n)))
        cur.execute("COMMIT")
        cur.close()
    finally:
        raw.close()
    try:
        from audits.models import Checkpoint
        sizes = sorted({max(1, n * k // checkpoints) for k in range(1, checkpoints + 1)})
        memory = _LevelReader(levels)
        roots = {size: merkle.root(size, memory) for size in sizes}
        with Session(engine) as session:   # what was stored gives the same root
            assert merkle.root(n, DbNodeReader(session)) == roots[n], "stored nodes disagree with the loaded log"
        with engine.begin() as conn:
            conn.execute(sa.insert(Checkpoint.__table__), [
                {"size": size, "root": root, "note": notes.sign_checkpoint(ORIGIN, size, root, log_key),
                 "issued_at": T0 + timedelta(milliseconds=size)} for size, root in roots.items()])
        wall = time.perf_counter() - start
        if n <= 10**5:
            expected = merkle.Frontier()
            for leaf in leaves:
                expected.append(leaf)
            assert expected.root() == roots[n], "bulk-loaded root differs from the streamed root"
        return {"wall_s": wall, "root": roots[n], "leaves": leaves, "checkpoints": sizes}
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- proofs

def measure_proofs(url: str, n: int, leaves: list[bytes], root: bytes, samples: int,
                   budget_s: float) -> dict[str, Any]:
    """``samples`` random inclusion and consistency proofs of the tree of size ``n`` (fewer
    if ``budget_s`` per kind runs out first, never fewer than 5); the first are verified."""
    from audits import merkle
    from audits.log import DbNodeReader
    from core.db import engine_options

    engine = sa.create_engine(url, **engine_options(url))
    rng = random.Random(n)
    inclusion, consistency = [], []
    inc_len, con_len = [], []
    try:
        with Session(engine) as session:
            reader = DbNodeReader(session)
            merkle.inclusion_proof(0, n, reader)   # warm the connection and statement cache
            stop = time.perf_counter() + budget_s
            for _ in range(samples):
                if len(inclusion) >= 5 and time.perf_counter() > stop:
                    break
                index = rng.randrange(n)
                t0 = time.perf_counter()
                path = merkle.inclusion_proof(index, n, reader)
                inclusion.append(time.perf_counter() - t0)
                inc_len.append(len(path))
                if len(inclusion) <= 20:
                    assert merkle.verify_inclusion(leaves[index], index, n, path, root)
            stop = time.perf_counter() + budget_s
            for _ in range(samples):
                if len(consistency) >= 5 and time.perf_counter() > stop:
                    break
                first = rng.randrange(1, n)
                t0 = time.perf_counter()
                path = merkle.consistency_proof(first, n, reader)
                consistency.append(time.perf_counter() - t0)
                con_len.append(len(path))
    finally:
        engine.dispose()
    return {"inclusion_s": inclusion, "consistency_s": consistency, "samples": len(inclusion),
            "inclusion_len": sum(inc_len) / len(inc_len), "consistency_len": sum(con_len) / len(con_len)}


def _proof_rows(ctx: Context, details: dict[str, Any]) -> list[Row]:
    _, keys = _keys(ctx)
    _check_template()
    default = DEFAULT_SIZE[ctx.mode]
    # quick: 10^3 (1x, verified) and 10^4; full: 10^4 (0.1x), 10^5 (1x), 10^6 (10x) [, 10^7]
    sizes = [default, default * 10] if ctx.quick else [default // 10] + [default * s for s in ctx.scales]
    rows: list[Row] = []
    appends: list[tuple[int, dict[str, Any]]] = []
    previous: dict[str, Any] | None = None
    sample = [_entry_bytes(i, _at(i)) for i in range(20000)]
    baseline = _leaf_hash_rate(sample)
    details["leaf_sha256_per_s"] = baseline
    for n in sizes:
        ctx.log(f"audit: bulk-loading {n:,} entries")
        with env.fresh_sqlite(ctx.scratch("audit"), f"log{n}") as url:
            loaded = bulk_load(url, n, keys.log_key)
            ctx.log(f"audit: loaded {n:,} in {loaded['wall_s']:.1f}s; proofs")
            proofs = measure_proofs(url, n, loaded["leaves"], loaded["root"], PROOF_SAMPLES[ctx.mode],
                                    PROOF_BUDGET_S[ctx.mode])
            if default <= n <= VERIFY_MAX[max(ctx.scales)] and not (ctx.quick and n > default):
                ctx.shared.setdefault("audit_verify", []).append(_verify(ctx, url, n))
            ctx.log(f"audit: appends onto the {n:,}-entry log")
            appended = measure_appends(url, APPENDS[ctx.mode], keys.log_key, APPEND_BUDGET_S[ctx.mode])
            appends.append((n, appended))
        decade = f"10^{len(str(n)) - 1}"
        stats = {}
        for kind in ("inclusion", "consistency"):
            lat = proofs[f"{kind}_s"]
            stats[kind] = {"p50_us": percentile(lat, 50) * 1e6, "p99_us": percentile(lat, 99) * 1e6, "samples": len(lat),
                           "mean_us": sum(lat) / len(lat) * 1e6, "path_len": proofs[f"{kind}_len"]}
            op = 1e6 / stats[kind]["mean_us"]
            rows.append(Row(f"SQLite log of {decade} entries", f"{kind} proofs/s", "1/s", op, baseline,
                            note=f"{stats[kind]['samples']} samples, {stats[kind]['path_len']:.1f} hashes, p50 {stats[kind]['p50_us']:.0f} µs, "
                                 f"p99 {stats[kind]['p99_us']:.0f} µs; baseline: leaf SHA-256/s",
                            extra={"series": f"proof-{kind}", "entries": n}))
        if previous is not None:
            for kind in ("inclusion", "consistency"):
                rows.append(Row(f"{decade} vs {previous['decade']} entries", f"{kind} latency growth per decade",
                                "µs", stats[kind]["mean_us"], previous["stats"][kind]["mean_us"], better="lower",
                                goal="≈1 (log), not 10 (linear)",
                                goal_met=stats[kind]["mean_us"] / previous["stats"][kind]["mean_us"] < 3,
                                note=f"path {previous['stats'][kind]['path_len']:.1f} → "
                                     f"{stats[kind]['path_len']:.1f} hashes; baseline: the previous decade"))
        details.setdefault("proofs", []).append({"entries": n, "bulk_load_s": loaded["wall_s"], **stats})
        previous = {"decade": decade, "stats": stats}
    last = None
    for n, appended in appends:
        decade = f"10^{len(str(n)) - 1}"
        scale = n // default if n >= default else 0
        rows.append(_append_row(f"SQLite log of {decade} entries", appended, baseline,
                                {"series": "append-on-log", "entries": n, "scale": scale}))
        mean = appended["wall_s"] / appended["count"]
        if last is not None:
            rows.append(Row(f"{decade} vs {last[0]} entries", "append latency growth per decade", "ms",
                            mean * 1000, last[1] * 1000, better="lower", goal="≈1 (log), not 10 (linear)",
                            goal_met=mean / last[1] < 3, note="baseline: the previous decade"))
        last = (decade, mean)
        details.setdefault("append", []).append({"database": "sqlite", "initial_size": n, "count": appended["count"],
                                                 "wall_s": appended["wall_s"], "mean_ms": mean * 1000})
    for verified in ctx.shared.pop("audit_verify", []):
        rows.append(verified.pop("row"))
        details.setdefault("verify", []).append(verified)
    return rows


# --------------------------------------------------------------------------- verify

def _export(ctx: Context, url: str, instance: Path, out: Path) -> str:
    """`ebid audit export` of the loaded log; on failure (the app not starting yet) write
    the same files here with the functions the command uses."""
    result = ebid("audit", "export", str(out), env=env.platform_env(url, instance))
    if result.returncode == 0:
        return "ebid audit export"
    ctx.log(f"audit: `ebid audit export` failed ({result.stderr.strip().splitlines()[-1:]}); writing the export here")
    shutil.rmtree(out, ignore_errors=True)
    from audits.keys import load_keys
    from audits.models import Checkpoint, LogEntry
    from audits.notes import verifier_key_line
    from audits.verify import CHECKPOINTS_DIR, ENTRIES_FILE, LOG_KEY_FILE, export_line, receipt_key_file
    from core.db import engine_options
    from crypto.canonical import b64encode
    keys = load_keys(str(instance))
    (out / CHECKPOINTS_DIR).mkdir(parents=True)
    (out / "keys").mkdir()
    engine = sa.create_engine(url, **engine_options(url))
    try:
        with engine.connect() as conn, open(out / ENTRIES_FILE, "wb") as handle:
            last = -1
            while True:
                rows = conn.execute(sa.select(LogEntry.index, LogEntry.entry).where(LogEntry.index > last)
                                    .order_by(LogEntry.index).limit(20000)).all()
                if not rows:
                    break
                for index, entry in rows:
                    handle.write(export_line(index, bytes(entry)))
                last = rows[-1][0]
            for size, note in conn.execute(sa.select(Checkpoint.size, Checkpoint.note)):
                (out / CHECKPOINTS_DIR / f"{size}.txt").write_text(note, encoding="utf-8")
    finally:
        engine.dispose()
    (out / LOG_KEY_FILE).write_text(verifier_key_line(ORIGIN, keys.log_public) + "\n")
    receipt_key_file(out, keys.receipt_kid).write_text(b64encode(keys.receipt_public) + "\n")
    return "written by bench (the same format) because `ebid audit export` failed: " + \
        (result.stderr.strip().splitlines() or ["?"])[-1][:200]


def _verify(ctx: Context, url: str, n: int) -> dict[str, Any]:
    instance, _ = _keys(ctx)
    out = ctx.work / f"export-{n}"
    ctx.log(f"audit: exporting {n:,} entries")
    how = _export(ctx, url, instance, out)
    ctx.log(f"audit: ebid audit verify on {n:,} entries")
    result = ebid("audit", "verify", str(out))
    shutil.rmtree(out, ignore_errors=True)
    if result.returncode != 0 or "VALID" not in result.stdout:
        raise RuntimeError(f"ebid audit verify failed ({result.returncode}): {result.stdout[-500:]} {result.stderr[-500:]}")
    sample = [_entry_bytes(i, _at(i)) for i in range(min(n, 20000))]
    baseline = _leaf_hash_rate(sample)
    op = n / result.wall_s
    decade = f"10^{len(str(n)) - 1}"
    row = Row(f"export of {decade} entries", "`ebid audit verify` entries/s", "1/s", op, baseline,
              note=f"{result.wall_s:.1f} s wall incl. interpreter start, peak RSS "
                   f"{result.max_rss_kb / 1024:.0f} MB; export: {how[:80]}",
              extra={"series": "verify", "entries": n})
    return {"row": row, "entries": n, "wall_s": result.wall_s, "max_rss_kb": result.max_rss_kb,
            "export": how, "sha256_per_s": baseline}


def run(ctx: Context, details: dict[str, Any]) -> list[Row]:
    rows = _append_rows(ctx, details)
    rows += _proof_rows(ctx, details)
    return rows
