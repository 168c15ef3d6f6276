"""``python -m bench``: run the items, write JSON and Markdown, print the table.

Modes: ``--full`` (default: every item, items 1 and 4 at 1x and 10x their default size),
``--quick`` (small sizes, under two minutes), ``--scale 100`` (adds the 100x point, opt-in:
long). ``--only ITEM`` (repeatable, or comma-separated; a name or a number) runs a subset.
Results go to ``--out`` (default ``bench/results/``, gitignored) as
``bench-<mode>-<time>.json`` and ``.md``, plus ``latest.json`` and ``latest.md``.

An item whose code does not exist yet reports "not yet measured: <reason>" instead of
failing the run; an item that breaks is reported as an error with its traceback in the
JSON, and the exit status is 1.
"""
from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import env, report
from bench.core import ROOT, Context, NotMeasured, Row

# (name, number, title, module). Item 7 is computed from 1 and 4, so it runs last.
ITEMS: list[tuple[str, str, str, str]] = [
    ("burst", "1", "Deadline burst", "bench.items.burst"),
    ("ingest", "2", "Large bid file ingest", "bench.items.ingest"),
    ("sealing", "3", "Sealing and opening", "bench.items.sealing"),
    ("audit", "4", "Audit log", "bench.items.audit"),
    ("draw", "5", "Expert draw", "bench.items.draw"),
    ("reads", "6", "Public reads", "bench.items.reads"),
    ("scaling", "7", "Scaling curve", "bench.items.scaling"),
]
DEFAULT_BIDDERS = 1000
QUICK_BIDDERS = 50


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", dest="mode", const="quick",
                      help="small sizes, under two minutes (run by tests/bench)")
    mode.add_argument("--full", action="store_const", dest="mode", const="full",
                      help="the default: full sizes, items 1 and 4 at 1x and 10x")
    parser.add_argument("--scale", type=int, choices=(1, 10, 100), default=None,
                        help="largest multiplier of the default size for items 1 and 4 "
                             "(full: 10; 100 is opt-in and takes long)")
    parser.add_argument("--only", action="append", default=[], metavar="ITEM",
                        help="run only these items: " + ", ".join(f"{n} ({num})" for n, num, _, _ in ITEMS))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results",
                        help="where to write the JSON and Markdown (default bench/results/)")
    parser.add_argument("--bidders", type=int, default=None,
                        help=f"item 1's default N (full {DEFAULT_BIDDERS}, quick {QUICK_BIDDERS}); "
                             "the 10x point multiplies it")
    parser.add_argument("--pg-admin-url", default=env.DEFAULT_PG_ADMIN,
                        help="PostgreSQL to create fresh databases on (trust auth on loopback)")
    parser.add_argument("--no-postgres", action="store_true", help="measure on SQLite only")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (for profiling)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    args.mode = args.mode or "full"
    return args


def _selected(only: list[str]) -> list[tuple[str, str, str, str]]:
    if not only:
        return ITEMS
    wanted: set[str] = set()
    for value in only:
        for part in value.split(","):
            part = part.strip()
            match = [item for item in ITEMS if part in (item[0], item[1])]
            if not match:
                raise SystemExit(f"unknown item {part!r}; choose from "
                                 + ", ".join(f"{n} ({num})" for n, num, _, _ in ITEMS))
            wanted.add(match[0][0])
    if "scaling" in wanted:   # the curve is made of items 1 and 4
        wanted.update({"burst", "audit"})
    return [item for item in ITEMS if item[0] in wanted]


def _status(rows: list[Row]) -> str:
    measured = [r for r in rows if r.op is not None and r.baseline is not None]
    if not rows or not measured:
        return "not yet measured"
    return "measured" if len(measured) == len(rows) else "partial"


def run_item(ctx: Context, name: str, number: str, title: str, module_name: str) -> dict[str, Any]:
    details: dict[str, Any] = {}
    start = time.monotonic()
    ctx.log(f"item {number} ({name}): start")
    try:
        module = importlib.import_module(module_name)
        rows: list[Row] = module.run(ctx, details)
        status, reason = _status(rows), ""
        if status == "not yet measured":
            reason = "; ".join(r.note for r in rows if r.note) or "nothing measured"
    except NotMeasured as exc:
        rows, status, reason = [], "not yet measured", str(exc)
    except Exception as exc:  # noqa: BLE001 - one broken item must not lose the others
        rows, status, reason = [], "error", f"{type(exc).__name__}: {exc}"
        details["traceback"] = traceback.format_exc()
        ctx.log(details["traceback"])
    seconds = time.monotonic() - start
    ctx.log(f"item {number} ({name}): {status} in {seconds:.1f}s {reason}")
    result = {"name": name, "number": number, "title": title, "status": status, "reason": reason,
              "seconds": round(seconds, 1), "rows": [r.to_json() for r in rows], "details": details}
    ctx.shared.setdefault("results", {})[name] = result
    return result


def _stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so every server is stopped and every database dropped."""
    import signal

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    _stop_on_sigterm()
    quick = args.mode == "quick"
    if quick:
        scales = [1]
    else:
        top = args.scale or 10
        scales = [s for s in (1, 10, 100) if s <= top]
    bidders = args.bidders or (QUICK_BIDDERS if quick else DEFAULT_BIDDERS)
    pg_url, pg_reason = None, "--no-postgres given"
    if quick:
        pg_reason = "--quick measures on SQLite only (PostgreSQL in --full)"
    elif not args.no_postgres:
        pg_reason = env.pg_probe(args.pg_admin_url) or ""
        pg_url = None if pg_reason else args.pg_admin_url
    work = Path(tempfile.mkdtemp(prefix="ebid-bench-"))
    ctx = Context(mode=args.mode, scales=scales, bidders=bidders, work=work, out=args.out,
                  pg_admin_url=pg_url, pg_reason=pg_reason, verbose=not args.quiet)
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    started = datetime.now(timezone.utc)
    ctx.log(f"{command.strip()}: mode {args.mode}, scales {scales}, bidders {bidders}, "
            f"PostgreSQL {'yes' if pg_url else 'no (' + pg_reason + ')'}; scratch {work}")
    items: list[dict[str, Any]] = []
    try:
        for name, number, title, module_name in _selected(args.only):
            items.append(run_item(ctx, name, number, title, module_name))
    finally:
        if args.keep:
            ctx.log(f"scratch kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    finished = datetime.now(timezone.utc)
    results = {
        "meta": {"command": command.strip(), "mode": args.mode, "scales": scales, "bidders": bidders,
                 "started": started.isoformat(timespec="seconds"),
                 "finished": finished.isoformat(timespec="seconds"),
                 "duration_s": (finished - started).total_seconds(),
                 "postgresql": pg_url is not None, "postgresql_reason": pg_reason,
                 "machine": report.machine(env.pg_version(pg_url) if pg_url else None),
                 "ratio": "operation / baseline, both measured in this run on this machine"},
        "items": items,
    }
    table = report.markdown(results)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    json_text = json.dumps(results, indent=2, ensure_ascii=False, default=str)
    for name, text in ((f"bench-{args.mode}-{stamp}.json", json_text), ("latest.json", json_text),
                       (f"bench-{args.mode}-{stamp}.md", table), ("latest.md", table)):
        (args.out / name).write_text(text, encoding="utf-8")
    print(table)
    print(f"results: {args.out / f'bench-{args.mode}-{stamp}.json'} and .md")
    return 1 if any(item["status"] == "error" for item in items) else 0
