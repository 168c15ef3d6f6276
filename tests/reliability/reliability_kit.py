"""Plumbing for the reliability tests: a real gunicorn on loopback (started, killed and
stopped by PID), a tender seeded through the app's own services, bidder client processes,
and the checks every scenario ends with (receipts against storage, blobs, the audit log).

Servers run with the settings ``ebid serve`` uses (gthread workers) unless a test asks
otherwise, with ``EBID_CLOCK=file:PATH`` so the test moves time for every worker at once.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import sqlalchemy as sa

from core.clock import FileClock

ROOT = Path(__file__).resolve().parents[2]
T0_TEXT = "2026-03-02T01:00:00.000Z"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def password(username: str) -> str:
    return f"pw-{username}-123456"  # = tests.conftest.World.user


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (gunicorn's workers, for its master), from /proc."""
    found: set[int] = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            found.update(int(p) for p in Path(f"/proc/{pid}/task/{task}/children").read_text().split())
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return sorted(found)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def server_env(database_url: str, instance: Path, clock: FileClock, **extra: str) -> dict[str, str]:
    env = {**os.environ, "EBID_TESTING": "1", "EBID_CLOCK": f"file:{clock.path}",
           "EBID_DATABASE_URL": database_url, "EBID_INSTANCE_PATH": str(instance), "EBID_PUBLIC_URL": "",
           "EBID_LOGIN_RATE_LIMIT": "100000 per minute", "EBID_LOGIN_ADDRESS_RATE_LIMIT": "100000 per minute",
           "PYTHONPATH": str(ROOT), **extra}
    env.pop("EBID_TEST_DATABASE_URL", None)
    return env


class Server:
    """One gunicorn master on 127.0.0.1:port; every process it made is tracked by PID."""

    def __init__(self, env: dict[str, str], work: Path, port: int | None = None, workers: int = 2,
                 worker_class: str = "gthread", threads: int = 4, timeout: int = 120,
                 extra: list[str] | None = None) -> None:
        self.env, self.work, self.port = env, work, port or free_port()
        self.args = ["--workers", str(workers), "--worker-class", worker_class, "--threads", str(threads),
                     "--timeout", str(timeout), "--graceful-timeout", "5", "--no-control-socket",
                     *(extra or [])]
        self.proc: subprocess.Popen | None = None
        self.seen_workers: set[int] = set()
        self.starts = 0
        self.log_path = work / "gunicorn.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_s: float = 40) -> "Server":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}",
                                      *self.args, "wsgi:create_app()"], cwd=ROOT, env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.starts += 1
        limit = time.monotonic() + wait_s
        while time.monotonic() < limit:
            if self.proc.poll() is not None:
                raise AssertionError("gunicorn exited: " + self.log_tail())
            try:
                with urllib.request.urlopen(f"{self.base}/api/v1/audit/key", timeout=2) as resp:
                    if resp.status == 200 and len(self.workers()) >= 1:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError("gunicorn did not come up: " + self.log_tail())

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except FileNotFoundError:
            return ""

    def workers(self) -> list[int]:
        if self.proc is None:
            return []
        found = children(self.proc.pid)
        self.seen_workers.update(found)
        return found

    def wait_workers(self, n: int, wait_s: float = 30) -> list[int]:
        limit = time.monotonic() + wait_s
        while time.monotonic() < limit:
            found = [p for p in self.workers() if alive(p)]
            if len(found) >= n:
                return found
            time.sleep(0.05)
        raise AssertionError(f"fewer than {n} workers after {wait_s} s: " + self.log_tail())

    def kill_worker(self) -> int:
        """SIGKILL one worker (a real signal to a real process); the master forks another."""
        victim = self.wait_workers(1)[0]
        os.kill(victim, signal.SIGKILL)
        return victim

    def crash(self) -> None:
        """SIGKILL the master and then every worker: the whole server dies at once."""
        assert self.proc is not None
        workers = self.workers()
        self.proc.send_signal(signal.SIGKILL)
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)
        self._reap(workers)

    def stop(self) -> None:
        """SIGTERM the master (graceful), then SIGKILL anything of ours still running."""
        if self.proc is None:
            return
        workers = self.workers()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        for pid in set(workers) | self.seen_workers:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._reap(workers)

    @staticmethod
    def _reap(pids: list[int]) -> None:
        limit = time.monotonic() + 10
        while any(alive(p) for p in pids) and time.monotonic() < limit:
            time.sleep(0.05)


# --------------------------------------------------------------------------- HTTP


def http(method: str, url: str, body: bytes | None = None, token: str | None = None,
         content_type: str = "application/json", timeout: float = 30) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", content_type)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def login(base: str, username: str) -> str:
    status, raw, _ = http("POST", f"{base}/api/v1/auth/token",
                          json.dumps({"username": username, "password": password(username)}).encode())
    assert status == 200, raw
    return json.loads(raw)["data"]["access_token"]


def receipt_key(base: str, kid: str | None = None) -> bytes:
    from crypto.canonical import b64decode
    url = f"{base}/api/v1/audit/key?kind=receipt" + (f"&kid={kid}" if kid else "")
    status, raw, _ = http("GET", url)
    assert status == 200, (url, status, raw)
    return b64decode(raw.decode().strip(), "key", length=32)


# --------------------------------------------------------------------------- seeding


@dataclass
class Seeded:
    """A published sealed-bid tender and the bidders that will submit to it."""

    tender: int
    lot: str
    deadline: str
    policy: bytes
    bidders: list[dict[str, str]] = field(default_factory=list)  # username, org, signing_pem
    parties: dict[str, Any] = field(default_factory=dict)


def seed_tender(database_url: str, instance: Path, clock: FileClock, bidders: int,
                extra_agents: int = 0) -> Seeded:
    """Organisations, users and a published 2-of-3 (officials) tender, made in-process with
    the app the server will serve (same database, instance keys and file clock)."""
    from crypto import keys as crypto_keys
    from tests.bidding.helpers import Bench
    from tests.conftest import World
    from wsgi import create_app

    app = create_app({"EBID_DATABASE_URL": database_url, "EBID_INSTANCE_PATH": str(instance),
                      "EBID_TESTING": True, "EBID_CLOCK": f"file:{clock.path}",
                      "EBID_LOGIN_RATE_LIMIT": "100000 per minute",
                      "EBID_LOGIN_ADDRESS_RATE_LIMIT": "100000 per minute"})
    try:
        world = World(app, app.test_client())
        bench = Bench(world, clock)
        tender = bench.tender(mode="officials")
        seeded = Seeded(tender=tender.id, lot=tender.lots[0], deadline=_fmt(tender.deadline),
                        policy=tender.policy_bytes, parties=dict(bench.parties))
        for n in range(1, bidders + 1):
            code = f"RBIDDER{n}"
            world.org(code, "bidder", legal_representative=f"代表{n}")
            name = f"rbidder{n}"
            bench.parties[name] = world.user(name, "bidder", org=code)
            key = bench.signing_key(name)
            seeded.bidders.append({"username": name, "org": code,
                                   "signing_pem": crypto_keys.dump_private_pem(key).decode()})
        for n in range(2, extra_agents + 2):
            world.user(f"agent{n}", "agent", org="AGENT1")
        return seeded
    finally:
        from core.db import db
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def _fmt(instant: Any) -> str:
    from core.clock import format_instant
    return format_instant(instant)


# --------------------------------------------------------------------------- clients


def run_clients(seeded: Seeded, base: str, work: Path, per_bidder: int, *, go: Path, mode: str = "burst",
                budget_s: float = 60) -> list[subprocess.Popen]:
    """Start one client process per bidder; each seals ``per_bidder`` files, waits for the
    ``go`` file, then submits them (see tests/reliability/reliability_client.py)."""
    procs = []
    for bidder in seeded.bidders:
        job = {"base": base, "username": bidder["username"], "password": password(bidder["username"]),
               "org": bidder["org"], "signing_pem": bidder["signing_pem"], "tender": str(seeded.tender),
               "lot": seeded.lot, "policy": seeded.policy.decode(), "count": per_bidder, "go": str(go),
               "mode": mode, "budget_s": budget_s, "out": str(work / f"result-{bidder['username']}.json")}
        path = work / f"job-{bidder['username']}.json"
        path.write_text(json.dumps(job))
        log = open(work / f"client-{bidder['username']}.log", "wb")
        procs.append(subprocess.Popen([sys.executable, "-m", "tests.reliability.reliability_client", str(path)],
                                      cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                      stdout=log, stderr=subprocess.STDOUT))
        log.close()
    return procs


def wait_ready(work: Path, seeded: Seeded, wait_s: float = 60) -> None:
    """Every client has sealed its files and is waiting for the go file."""
    limit = time.monotonic() + wait_s
    names = [b["username"] for b in seeded.bidders]
    while time.monotonic() < limit:
        if all((work / f"ready-{n}").exists() or (work / f"result-{n}.json").exists() for n in names):
            return
        time.sleep(0.05)
    raise AssertionError("client processes did not get ready")


def collect(procs: list[subprocess.Popen], work: Path, seeded: Seeded, wait_s: float = 120) -> list[dict[str, Any]]:
    limit = time.monotonic() + wait_s
    try:
        for proc in procs:
            proc.wait(timeout=max(1.0, limit - time.monotonic()))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
    results = []
    for bidder in seeded.bidders:
        path = work / f"result-{bidder['username']}.json"
        log = work / f"client-{bidder['username']}.log"
        assert path.exists(), f"client {bidder['username']} wrote no result: {log.read_text()[-3000:]}"
        results.append(json.loads(path.read_text()))
    return results


# --------------------------------------------------------------------------- checks


def engine(database_url: str) -> sa.Engine:
    return sa.create_engine(database_url, poolclass=sa.pool.NullPool)


def stored_submissions(database_url: str, tender: int) -> dict[str, dict[str, Any]]:
    """Every stored Submission of the tender by receipt id (straight from the database)."""
    from bidding.models import Submission
    eng = engine(database_url)
    try:
        with eng.connect() as conn:
            rows = conn.execute(sa.select(Submission.manifest_sha256, Submission.receipt,
                                          Submission.ciphertext_sha256, Submission.nonce, Submission.bidder_code,
                                          Submission.state, Submission.log_index)
                                .where(Submission.project_id == tender)).all()
    finally:
        eng.dispose()
    found: dict[str, dict[str, Any]] = {}
    for mid, receipt, cipher, nonce, bidder, state, index in rows:
        assert mid not in found, f"receipt {mid} stored twice"
        found[mid] = {"receipt": receipt if isinstance(receipt, dict) else json.loads(receipt),
                      "ciphertext_sha256": cipher, "nonce": nonce, "bidder": bidder, "state": state,
                      "log_index": index}
    return found


def count_submissions(database_url: str, tender: int) -> int:
    from bidding.models import Submission
    eng = engine(database_url)
    try:
        with eng.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(Submission)
                                .where(Submission.project_id == tender)).scalar_one()
    finally:
        eng.dispose()


def log_entries(database_url: str) -> list[dict[str, Any]]:
    from audits.entries import parse_entry
    from audits.models import LogEntry
    eng = engine(database_url)
    try:
        with eng.connect() as conn:
            rows = conn.execute(sa.select(LogEntry.entry).order_by(LogEntry.index)).scalars().all()
    finally:
        eng.dispose()
    return [parse_entry(bytes(r)) for r in rows]


def blob_sha256(blob_root: Path, sha: str) -> str | None:
    path = blob_root / sha[:2] / sha[2:4] / sha
    if not path.exists():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_receipt(envelope: dict[str, Any], keys_by_kid: dict[str, bytes]) -> dict[str, Any]:
    from crypto.signing import RECEIPT, verify_object
    return verify_object(envelope, "receipt", RECEIPT, keys_by_kid[envelope["kid"]])


def ebid_cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the ``ebid`` command line in a fresh process with the server's environment."""
    return subprocess.run([sys.executable, "-c", "from wsgi import cli; cli()", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def audit_check(env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = ebid_cli(env, "audit", "check")
    assert proc.returncode == 0 and proc.stdout.startswith("ok:"), (proc.stdout, proc.stderr)
    return proc


def iter_receipts(results: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(bid record, signed receipt) for every receipt any client received."""
    for result in results:
        for bid in result["bids"]:
            for envelope in bid["receipts"]:
                yield bid, envelope
