"""gunicorn servers on 127.0.0.1, started and stopped by PID, and their memory from /proc.

Both the platform (``wsgi:create_app()``) and the baseline app (``bench.baseline_app``) run
with the worker settings ``ebid serve`` documents (2 gthread workers of 4 threads, timeout
120 s, an access log), so the only difference between an operation and its baseline is
the code behind the endpoint. Every server is stopped in a ``finally`` (the context
manager), by the master's PID, then by the recorded worker PIDs if the master did not
take them down.
"""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping

from bench.core import ROOT

# The documented settings: `ebid serve` (trading/cli.py) runs gunicorn with these.
WORKERS = 2
THREADS = 4
GUNICORN_SETTINGS = ["--workers", str(WORKERS), "--worker-class", "gthread", "--threads", str(THREADS),
                     "--timeout", "120"]
# Not a worker setting: keeps each bench server off the shared control socket in $HOME, so
# it cannot clash with another gunicorn on the machine.
ISOLATION = ["--no-control-socket"]
PLATFORM_APP = "wsgi:create_app()"
BASELINE_APP = "bench.baseline_app:create_app()"


class ServerFailed(RuntimeError):
    """The server did not come up; the message carries the tail of its log."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (gunicorn's workers, for its master)."""
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            found.extend(int(p) for p in text.split())
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return sorted(set(found))


def proc_status_kb(pid: int, field: str) -> int | None:
    """A ``Vm*`` figure of /proc/<pid>/status in kB (VmHWM: peak resident set)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (FileNotFoundError, IndexError):
        return False


class Server:
    """One gunicorn master with its workers, on a free loopback port."""

    def __init__(self, app: str, env: Mapping[str, str], log_dir: Path, name: str,
                 ready_path: str = "/", extra_args: list[str] | None = None) -> None:
        self.app, self.name, self.ready_path = app, name, ready_path
        self.env = {**os.environ, **env, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.log_path = log_dir / f"{name}.log"
        self.access_path = log_dir / f"{name}.access.log"
        self.extra_args = extra_args or []
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._workers_seen: set[int] = set()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> "Server":
        self.port = free_port()
        args = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", *GUNICORN_SETTINGS,
                "--access-logfile", str(self.access_path), *ISOLATION, *self.extra_args, self.app]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(args, cwd=str(ROOT), env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerFailed(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", self.ready_path)
                resp = conn.getresponse()
                resp.read()
                conn.close()
                if len(self.workers()) >= WORKERS:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise ServerFailed(f"{self.name} not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM to the master (graceful), SIGKILL to anything left, all by PID."""
        if self.proc is None:
            return
        pids = set(self.workers()) | self._workers_seen
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        for pid in pids:
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.proc = None

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- observation ---------------------------------------------------------------------

    def workers(self) -> list[int]:
        if self.proc is None:
            return []
        found = children(self.proc.pid)
        self._workers_seen.update(found)
        return found

    def memory_kb(self, field: str = "VmHWM") -> dict[int, int]:
        """``{worker pid: kB}`` of a /proc status field for every live worker."""
        result = {}
        for pid in self.workers():
            value = proc_status_kb(pid, field)
            if value is not None:
                result[pid] = value
        return result

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"
