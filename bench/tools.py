"""Running `ebid` commands as subprocesses, with their wall time and peak memory."""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from bench.core import ROOT

# Exactly what the `ebid` console script runs, with this interpreter.
EBID = [sys.executable, "-c", "import sys; sys.argv[0] = 'ebid'; from wsgi import cli; cli()"]


@dataclass
class Finished:
    """A finished child: exit status, wall seconds, peak RSS (ru_maxrss of wait4), output."""

    returncode: int
    wall_s: float
    max_rss_kb: int
    stdout: str
    stderr: str


def run_measured(args: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None,
                 timeout: float = 900.0) -> Finished:
    """Run a child and read its own peak RSS from ``os.wait4`` (the rusage of that child
    alone: RUSAGE_CHILDREN would mix in every earlier child of this process)."""
    out_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-child-{os.getpid()}-{time.monotonic_ns()}"
    full_env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                **(env or {})}
    with open(f"{out_path}.out", "w+b") as out, open(f"{out_path}.err", "w+b") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(args), cwd=str(cwd or ROOT), env=full_env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err)
        deadline = start + timeout
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    proc.kill()
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.005)
        except BaseException:
            if proc.returncode is None:
                proc.kill()
                os.wait4(proc.pid, 0)
            raise
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)   # reaped here; Popen must not wait
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    for suffix in (".out", ".err"):
        try:
            os.unlink(f"{out_path}{suffix}")
        except FileNotFoundError:
            pass
    return Finished(proc.returncode, wall, usage.ru_maxrss, stdout, stderr)


def ebid(*args: str, env: Mapping[str, str] | None = None, timeout: float = 900.0) -> Finished:
    return run_measured([*EBID, *args], env=env, timeout=timeout)


def self_max_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
