"""``python -m bench --quick`` runs and writes its results: a JSON with, for every item run,
figures beside their baselines and a ratio. Speed is never asserted: the figures belong to
the machine; that the suite runs and reports them belongs to the code.

The whole quick mode runs, every item including the ones that drive gunicorn (about a
minute on two cores), so CI keeps the full suite working.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ITEMS = ["burst", "ingest", "sealing", "audit", "draw", "reads", "scaling"]


@pytest.mark.slow
def test_quick_bench_writes_a_ratio_per_item(tmp_path: Path) -> None:
    out = tmp_path / "results"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--no-postgres",
                           "--out", str(out), "--quiet"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    results = json.loads((out / "latest.json").read_text(encoding="utf-8"))
    assert results["meta"]["mode"] == "quick"
    assert results["meta"]["machine"]["nproc"] >= 1
    by_name = {item["name"]: item for item in results["items"]}
    assert set(ITEMS) <= set(by_name), sorted(by_name)
    for name in ITEMS:
        item = by_name[name]
        assert item["status"] in ("measured", "partial"), (name, item["status"], item["reason"])
        ratios = [row["ratio"] for row in item["rows"] if row["ratio"] is not None]
        assert ratios, f"{name} reported no ratio"
        for row in item["rows"]:
            if row["ratio"] is not None:
                assert row["op"] is not None and row["baseline"] is not None
                assert math.isclose(row["ratio"], row["op"] / row["baseline"], rel_tol=1e-9)
                assert row["better"] in ("higher", "lower")

    table = (out / "latest.md").read_text(encoding="utf-8")
    assert "| # | item | case | measure | operation | baseline | ratio |" in table
    assert table.strip() in proc.stdout   # the table is printed too
    assert list(out.glob("bench-quick-*.json")) and list(out.glob("bench-quick-*.md"))
