"""Running `ebid` commands as subprocesses, with their wall time and peak memory (peak RSS)."""
from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from bench.core import ROOT

# Exactly what the `ebid` console script runs, with this interpreter.
EBID = [sys.executable, "-c", "import sys; sys.argv[0] = 'ebid'; from wsgi import cli; cli()"]


@dataclass
class Finished:
    """A finished child: exit status, wall seconds, peak RSS in kB, output."""

    returncode: int
    wall_s: float
    max_rss_kb: int
    stdout: str
    stderr: str


# A launcher that runs the command as its only child and reports that child's peak RSS
# (RUSAGE_CHILDREN). Needed because a child forked straight from this (large) process
# starts with this process's resident pages counted in its own peak RSS.
_LAUNCHER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[2:])\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)
TIME = "/usr/bin/time"


def run_measured(args: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None,
                 timeout: float = 900.0) -> Finished:
    """Run a child; return its exit status, wall time and peak RSS.

    The peak RSS comes from ``/usr/bin/time -f %M`` (or, without it, a small Python
    launcher's RUSAGE_CHILDREN): the measured process is forked from a small parent, so
    its figure is its own.
    """
    base = Path(tempfile.mkdtemp(prefix="bench-child-"))
    rss_file = base / "rss"
    if os.path.exists(TIME):
        wrapped = [TIME, "-f", "%M", "-o", str(rss_file), *args]
    else:
        wrapped = [sys.executable, "-c", _LAUNCHER, str(rss_file), *args]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                **(env or {})}
    try:
        with open(base / "out", "w+b") as out, open(base / "err", "w+b") as err:
            start = time.perf_counter()
            # its own process group, so a timeout stops the measured child too, not only
            # the wrapper around it
            proc = subprocess.Popen(wrapped, cwd=str(cwd or ROOT), env=full_env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=err, start_new_session=True)
            try:
                proc.wait(timeout=timeout)
            except BaseException:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
                if not isinstance(sys.exc_info()[1], subprocess.TimeoutExpired):
                    raise
            wall = time.perf_counter() - start
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        try:
            text = rss_file.read_text().strip().splitlines()
            max_rss = int(text[-1]) if text else 0
        except (FileNotFoundError, ValueError):
            max_rss = 0
        if stderr.startswith("Command exited with non-zero status"):
            stderr = stderr.split("\n", 1)[-1]
        return Finished(proc.returncode, wall, max_rss, stdout, stderr)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def ebid(*args: str, env: Mapping[str, str] | None = None, timeout: float = 900.0) -> Finished:
    return run_measured([*EBID, *args], env=env, timeout=timeout)


def self_max_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
