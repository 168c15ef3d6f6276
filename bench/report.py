"""The machine description, and the Markdown table of a run's results."""
from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.core import ROOT


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def parallel_speedup(processes: int, work: int = 2_000_000) -> float | None:
    """How many times more CPU work ``processes`` processes get done than one, in the same
    time: 2.0 on two real, idle cores; near 1.0 when the cores are shared or throttled."""
    import multiprocessing
    import time
    if processes < 2:
        return None
    try:
        start = time.perf_counter()
        _burn(work)
        one = time.perf_counter() - start
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            start = time.perf_counter()
            pool.map(_burn, [work] * processes)
            many = time.perf_counter() - start
        return round(processes * one / many, 2)
    except (OSError, ValueError):
        return None


def machine(pg_version: str | None) -> dict[str, Any]:
    """What the figures were measured on (nproc, /proc/cpuinfo, /proc/meminfo, load)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {"nproc": usable, "cpu_model": _cpu_model(), "mem_total_gib": _mem_total_gib(),
            "parallel_speedup": parallel_speedup(usable or 1), "loadavg": load,
            "python": sys.version.split()[0], "sqlite": sqlite3.sqlite_version,
            "postgresql": pg_version, "platform": platform.platform(), "git_commit": _git_commit()}


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    if magnitude == 0:
        return "0"
    return f"{value:.3g}"


def fmt_ratio(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3g}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(results: dict[str, Any]) -> str:
    """The results table: one line per figure, operation beside baseline and their ratio."""
    meta = results["meta"]
    m = meta["machine"]
    lines = [
        f"ebid benchmark — `{meta['command']}` — {meta['finished']} — {meta['duration_s']:.0f} s",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['mem_total_gib']} GiB RAM, Python {m['python']}, "
        f"SQLite {m['sqlite']}, PostgreSQL {m['postgresql'] or 'n/a'}, commit {m['git_commit'] or '?'}; "
        f"measured parallel speedup on {m['nproc']} CPUs: {m.get('parallel_speedup')}x; "
        f"load average at the end: {m.get('loadavg')}.",
        "Ratio = operation / baseline, both measured in this run; ↑ higher is better, ↓ lower is better.",
        "",
        "| # | item | case | measure | operation | baseline | ratio | goal | note |",
        "|---|---|---|---|---:|---:|---:|---|---|",
    ]
    for item in results["items"]:
        head = f"| {item['number']} | {item['title']} "
        if not item["rows"]:
            reason = item.get("reason") or item["status"]
            lines.append(head + f"| — | — | — | — | — | — | {_cell(item['status'])}: {_cell(reason)} |")
            continue
        for row in item["rows"]:
            arrow = "↑" if row["better"] == "higher" else "↓"
            unit = f" ({row['unit']})" if row["unit"] else ""
            goal = row["goal"] or ""
            if row["goal_met"] is True:
                goal += " ✅"
            elif row["goal_met"] is False:
                goal += " ❌"
            ratio = fmt_ratio(row["ratio"])
            if row["ratio"] is not None:
                ratio += f" {arrow}"
            lines.append(head + f"| {_cell(row['case'])} | {_cell(row['metric'])}{_cell(unit)} | {fmt(row['op'])} "
                         f"| {fmt(row['baseline'])} | {ratio} | {_cell(goal)} | {_cell(row['note'])} |")
    lines.append("")
    return "\n".join(lines)
