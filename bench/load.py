"""A load generator: client threads, each with its own keep-alive ``http.client`` connection.

Bounded in count (a fixed number of tasks, or a fixed number of threads for a duration)
and in time (no task starts after ``time_limit``; what did not start is reported). Only
127.0.0.1 is ever contacted.
"""
from __future__ import annotations

import http.client
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable

from bench.core import percentile

# Retrying a request after the server closed an idle keep-alive connection is what every
# HTTP client does; only requests that are safe to repeat are retried, and retries are
# counted. A submission's POST is safe: the protocol returns the original receipt.
_RETRYABLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
              http.client.CannotSendRequest)


class Http:
    """One keep-alive connection to 127.0.0.1:port."""

    def __init__(self, port: int, timeout: float = 300.0, blocksize: int = 1 << 20) -> None:
        self.port, self.timeout, self.blocksize = port, timeout, blocksize
        self.conn: http.client.HTTPConnection | None = None
        self.retries = 0

    def _connection(self) -> http.client.HTTPConnection:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout,
                                                   blocksize=self.blocksize)
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method: str, path: str, body: bytes | BinaryIO | None = None,
                headers: dict[str, str] | None = None, retry: bool = True) -> tuple[int, bytes]:
        """Send one request; return (status, body). Retries once on a dropped idle connection
        when ``retry`` (never for a streamed body)."""
        can_retry = retry and (body is None or isinstance(body, (bytes, bytearray)))
        for attempt in range(2):
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=headers or {})
                resp = conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self.close()
                return resp.status, data
            except _RETRYABLE:
                self.close()
                if attempt == 0 and can_retry:
                    self.retries += 1
                    continue
                raise
            except BaseException:
                self.close()
                raise
        raise AssertionError("unreachable")


@dataclass
class LoadResult:
    """What a load run observed. ``latencies`` are seconds per task, successful tasks only."""

    wall_s: float
    ok: int
    errors: int
    not_started: int
    latencies: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    retries: int = 0
    results: dict[int, Any] = field(default_factory=dict)
    concurrency: int = 0

    @property
    def rate(self) -> float | None:
        return self.ok / self.wall_s if self.wall_s > 0 else None

    def p(self, q: float) -> float | None:
        return percentile(self.latencies, q)

    def summary(self) -> dict[str, Any]:
        return {"wall_s": round(self.wall_s, 3), "ok": self.ok, "errors": self.errors,
                "not_started": self.not_started, "rate_per_s": self.rate, "p50_ms": _ms(self.p(50)),
                "p99_ms": _ms(self.p(99)), "retries": self.retries, "concurrency": self.concurrency,
                "error_samples": self.error_samples[:5]}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


class TaskFailed(Exception):
    """A task's own check failed (a wrong status, a bad receipt)."""


def run_tasks(port: int, count: int, task: Callable[[int, Http], Any], *, concurrency: int,
              time_limit: float, keep_results: bool = False) -> LoadResult:
    """Run tasks 0..count-1 on ``concurrency`` threads; each task gets its thread's connection.

    A task returns a value (kept when ``keep_results``) or raises to count as an error.
    """
    counter = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    results: dict[int, Any] = {}
    retries = [0]
    started = [0]
    deadline = time.monotonic() + time_limit
    barrier = threading.Barrier(concurrency + 1)

    def worker() -> None:
        client = Http(port)
        mine: list[float] = []
        barrier.wait()
        try:
            while time.monotonic() < deadline:
                with lock:
                    index = next(counter)
                if index >= count:
                    break
                with lock:
                    started[0] += 1
                t0 = time.perf_counter()
                try:
                    value = task(index, client)
                except Exception as exc:  # noqa: BLE001 - every failure is a counted error
                    with lock:
                        errors.append(f"task {index}: {type(exc).__name__}: {exc}"[:500])
                    continue
                mine.append(time.perf_counter() - t0)
                if keep_results:
                    with lock:
                        results[index] = value
        finally:
            client.close()
            with lock:
                latencies.extend(mine)
                retries[0] += client.retries

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    barrier.wait()
    t_start = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - t_start
    return LoadResult(wall_s=wall, ok=len(latencies), errors=len(errors), not_started=count - started[0],
                      latencies=latencies, error_samples=errors[:20], retries=retries[0], results=results,
                      concurrency=concurrency)


def run_for(port: int, duration: float, task: Callable[[int, Http], Any], *, concurrency: int,
            warmup: float = 0.0) -> LoadResult:
    """Run ``task`` back to back on ``concurrency`` threads for ``duration`` seconds
    (after ``warmup`` seconds whose requests are not counted)."""
    if warmup > 0:
        run_tasks(port, 10**9, task, concurrency=concurrency, time_limit=warmup)
    return_value = run_tasks(port, 10**9, task, concurrency=concurrency, time_limit=duration)
    return_value.not_started = 0
    return return_value


def expect(status: int, body: bytes, *wanted: int) -> None:
    """Raise TaskFailed unless ``status`` is one of ``wanted``."""
    if status not in wanted:
        raise TaskFailed(f"HTTP {status}: {body[:300]!r}")
