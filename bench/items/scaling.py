"""Item 7: the scaling curve of items 1 and 4, from the figures they measured in this run.

Each row puts a figure at a larger size beside the same figure at the default size (1x):
a ratio near 1 means the cost per operation does not grow with the size; the burst's
bidders and the audit log's entries are multiplied by 10 in the full run (100 with
``--scale 100``).
"""
from __future__ import annotations

from typing import Any

from bench.core import Context, NotMeasured, Row


def _rows_of(ctx: Context, name: str) -> list[dict[str, Any]]:
    result = ctx.shared.get("results", {}).get(name)
    return list(result["rows"]) if result else []


def _burst(ctx: Context) -> list[Row]:
    rows = []
    found = [r for r in _rows_of(ctx, "burst")
             if r["extra"].get("series") == "burst" and r["metric"] == "accepted/s" and r["op"] is not None]
    for database in sorted({r["extra"]["database"] for r in found}):
        by_scale = {r["extra"]["scale"]: r for r in found if r["extra"]["database"] == database}
        base = by_scale.get(1)
        for scale, row in sorted(by_scale.items()):
            if scale == 1 or base is None:
                continue
            rows.append(Row(f"burst, {database}: {row['extra']['bidders']:,} vs {base['extra']['bidders']:,} bidders",
                            f"accepted/s at {scale}x vs 1x", "1/s", row["op"], base["op"], goal="≈1 (flat)",
                            note="the larger burst runs within a time budget; see item 1"))
    return rows


def _audit(ctx: Context, default: int) -> list[Row]:
    rows = []
    found = _rows_of(ctx, "audit")
    for series, metric in (("append-on-log", "appends/s"), ("proof-inclusion", "inclusion proofs/s"),
                           ("proof-consistency", "consistency proofs/s"), ("verify", "`ebid audit verify` entries/s")):
        points = {r["extra"]["entries"]: r for r in found if r["extra"].get("series") == series and r["op"]}
        base = points.get(default)
        for entries, row in sorted(points.items()):
            if entries <= default or base is None:
                continue
            rows.append(Row(f"audit log: {entries:,} vs {default:,} entries", f"{metric} at {entries // default}x vs 1x",
                            "1/s", row["op"], base["op"],
                            goal="≈1 (per-operation cost flat or logarithmic)" if series != "verify" else "≈1 (linear total)",
                            goal_met=row["op"] / base["op"] > 0.5,
                            note="see item 4"))
    return rows


def run(ctx: Context, details: dict[str, Any]) -> list[Row]:
    from bench.items.audit import DEFAULT_SIZE
    rows = _burst(ctx) + _audit(ctx, DEFAULT_SIZE[ctx.mode])
    if not rows:
        raise NotMeasured("items 1 and 4 measured no second size in this run (run them with --full)")
    return rows
