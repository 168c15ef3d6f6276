"""What every item shares: the run context, result rows, timing and percentile helpers.

A :class:`Row` is one figure of an operation beside the same figure of its baseline,
measured in the same run; ``ratio`` is always ``operation / baseline``. ``better`` says
which way is good (``higher`` for throughput, ``lower`` for latency and memory), so a
throughput ratio of 0.5 means "half as fast as the baseline".
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

ROOT = Path(__file__).resolve().parents[1]


class NotMeasured(Exception):
    """The code an item needs does not exist yet (or cannot run here): reported, not failed."""


@dataclass
class Row:
    """One figure: operation, baseline, ratio = operation / baseline."""

    case: str
    metric: str
    unit: str
    op: float | None
    baseline: float | None
    better: str = "higher"          # higher | lower
    goal: str | None = None         # e.g. "ratio >= 0.5", "< 64 MB"
    goal_met: bool | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.op is None or self.baseline is None or self.baseline == 0:
            return None
        return self.op / self.baseline

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = self.ratio
        return data


def not_measured(case: str, metric: str, reason: str) -> Row:
    """A row that says plainly what could not be measured and why."""
    return Row(case, metric, "", None, None, note=f"not yet measured: {reason}")


@dataclass
class Context:
    """Settings of one run, shared by every item."""

    mode: str                       # quick | full
    scales: list[int]               # multipliers of the default size (items 1 and 4)
    bidders: int                    # item 1's default N
    work: Path                      # scratch space, removed at the end
    out: Path
    pg_admin_url: str | None        # None: PostgreSQL unavailable (the reason is in pg_reason)
    pg_reason: str = ""
    started: float = field(default_factory=time.monotonic)
    verbose: bool = True
    shared: dict[str, Any] = field(default_factory=dict)   # artifacts items may reuse

    @property
    def quick(self) -> bool:
        return self.mode == "quick"

    def log(self, message: str) -> None:
        if self.verbose:
            elapsed = time.monotonic() - self.started
            print(f"[bench {elapsed:6.1f}s] {message}", file=sys.stderr, flush=True)

    def scratch(self, name: str) -> Path:
        path = self.work / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds of one call, and its result."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def rate(count: float, seconds: float) -> float | None:
    return count / seconds if seconds > 0 else None


def repeat_for(fn: Callable[[], int], min_seconds: float = 0.3, max_rounds: int = 1000) -> float:
    """Run ``fn`` (which returns how many operations it did) until ``min_seconds`` have
    passed; return operations per second. For cheap in-process baselines, so a baseline
    never rests on a single sub-millisecond measurement."""
    done, rounds = 0, 0
    start = time.perf_counter()
    while True:
        done += fn()
        rounds += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds or rounds >= max_rounds:
            return done / elapsed if elapsed > 0 else math.inf


def percentile(values: Iterable[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of ``values``; None when empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def mb(n_bytes: float) -> float:
    return n_bytes / (1024 * 1024)
