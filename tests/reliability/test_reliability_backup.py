"""Backup and restore (issue 7.7, RULES H1: records kept 15 years, never lost or forged).

A tender with bids (one superseded, one withdrawn), a project document, a closed tender
and a rotated receipt key is backed up with ``ebid backup DIR`` (a separate process), then
restored with ``ebid restore DIR`` into a brand-new database and instance. The restored
instance holds every row of every table, every bid with its receipt, every blob hash (each
re-hashed), an audit log that ``ebid audit check`` verifies, the same log key and
checkpoint; receipts issued before the backup verify with the restored instance's receipt
keys (the retired one too); and it keeps working (a new project appends to the log, with
ids and the log head where they should be). A restore into a database that holds anything
is refused, and so is a backup whose files do not match its manifest.
"""
from __future__ import annotations

import json
import os
import stat
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy as sa

from core.clock import format_instant
from tests.bidding.helpers import Bench
from tests.conftest import PG_URL, World, make_app
from tests.reliability.reliability_kit import ROOT, blob_sha256, ebid_cli

pytestmark = [pytest.mark.slow]


@pytest.fixture
def own_app(database_url: str, tmp_path: Path, clock: Any) -> Iterator[Any]:
    """An app with its own instance folder (its keys get rotated here)."""
    from core.db import db
    app = make_app(database_url, tmp_path / "instance", clock)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def empty_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """A brand-new database with no schema at all."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'restored.sqlite3'}"
        return
    assert PG_URL
    name = f"ebid_restore_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def cli_env(database_url: str, instance: Path, clock: Any) -> dict[str, str]:
    env = {**os.environ, "EBID_DATABASE_URL": database_url, "EBID_INSTANCE_PATH": str(instance),
           "EBID_TESTING": "1", "EBID_CLOCK": f"fixed:{format_instant(clock.now())}", "PYTHONPATH": str(ROOT)}
    for name in ("EBID_TEST_DATABASE_URL", "EBID_BLOB_DIR", "EBID_LOG_KEY_FILE", "EBID_RECEIPT_KEY_FILE"):
        env.pop(name, None)
    return env


def table_counts(database_url: str) -> dict[str, int]:
    from core.db import db
    from wsgi import import_models
    import_models()
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                    for t in db.metadata.sorted_tables}
    finally:
        engine.dispose()


def submissions(database_url: str) -> dict[str, dict[str, Any]]:
    from bidding.models import Submission
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(Submission.manifest_sha256, Submission.receipt, Submission.state,
                                          Submission.ciphertext_sha256, Submission.header)).all()
    finally:
        engine.dispose()
    return {r[0]: {"receipt": r[1], "state": r[2], "blob": r[3], "header": bytes(r[4])} for r in rows}


def build_history(bench: Bench) -> tuple[list[dict[str, Any]], str]:
    """Bids from three bidders (one superseded, one withdrawn), a document, and the closing."""
    client = bench.client
    bench.world.org("BIDDER3", "bidder", legal_representative="王三")
    bench.parties["bidder3"] = bench.world.user("bidder3", "bidder", org="BIDDER3")
    draft = bench.create_project()
    doc = client.post(f"/api/v1/projects/{draft}/documents?name=spec.pdf", headers=bench.headers("agent"),
                      data=b"%PDF-1.4 the tender documents", content_type="application/pdf")
    assert doc.status_code == 201, doc.get_json()
    tender = bench.tender(mode="officials")
    receipts = []
    for name, price in (("bidder", "900000.00"), ("bidder2", "880000.00"), ("bidder3", "910000.00")):
        receipts.append(bench.submit(tender, name, bench.seal(tender, name, price=price)))
    newer = bench.seal(tender, "bidder", price="870000.00", supersedes=receipts[0]["receipt"]["receipt"])
    receipts.append(bench.submit(tender, "bidder", newer))
    extra = bench.submit(tender, "bidder2", bench.seal(tender, "bidder2", file="technical.pdf"))
    receipts.append(extra)
    gone = bench.withdraw(tender, "bidder2", bench.withdrawal(tender, "bidder2", [extra["receipt"]["receipt"]]))
    assert gone.status_code == 201, gone.get_json()
    bench.clock.set(tender.deadline + timedelta(minutes=1))
    closed = client.get(f"{tender.base}/closing")
    assert closed.status_code == 200, closed.get_json()
    return receipts, tender.base


def test_backup_and_restore_into_a_fresh_instance(own_app: Any, clock: Any, database_url: str,
                                                  empty_database: str, tmp_path: Path) -> None:
    from audits.keys import rotate_receipt_key
    from crypto.signing import RECEIPT, verify_object

    bench = Bench(World(own_app, own_app.test_client()), clock)
    receipts, _ = build_history(bench)
    old_kid = receipts[0]["kid"]
    # a rotated receipt key: receipts signed before still verify after backup and restore
    new_kid = rotate_receipt_key(own_app.instance_path)
    source_env = cli_env(database_url, Path(own_app.instance_path), clock)
    source_counts = table_counts(database_url)
    source_subs = submissions(database_url)
    source_key = own_app.test_client().get("/api/v1/audit/key").data
    source_checkpoint = own_app.test_client().get("/api/v1/audit/checkpoint").data

    backup_dir = tmp_path / "backup"
    made = ebid_cli(source_env, "backup", str(backup_dir))
    assert made.returncode == 0, made.stderr
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    assert manifest["log"]["size"] == source_counts["log_entries"] > 0
    assert {n: t["rows"] for n, t in manifest["tables"].items()} == source_counts
    assert stat.S_IMODE(os.stat(backup_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(backup_dir / "keys").st_mode) == 0o700
    for key_file in (backup_dir / "keys").iterdir():
        assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600, key_file
    assert {f"receipt-{old_kid}.pem", f"receipt-{new_kid}.pem", "log.pem"} <= set(manifest["keys"])
    assert ebid_cli(source_env, "backup", str(backup_dir)).returncode != 0  # never over an old backup

    # restore into a brand-new database and instance
    target = tmp_path / "restored-instance"
    target_env = cli_env(empty_database, target, clock)
    done = ebid_cli(target_env, "restore", str(backup_dir))
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert table_counts(empty_database) == source_counts
    restored = submissions(empty_database)
    assert restored == source_subs and len(restored) == 5
    for sub in restored.values():
        assert blob_sha256(target / "blobs", sub["blob"]) == sub["blob"]
    for sha, _ in (line.split() for line in (backup_dir / "blobs.txt").read_text().splitlines()):
        assert blob_sha256(target / "blobs", sha) == sha
    check = ebid_cli(target_env, "audit", "check")
    assert check.returncode == 0 and check.stdout.startswith("ok:"), (check.stdout, check.stderr)
    assert ebid_cli(target_env, "restore", str(backup_dir)).returncode == 1  # not an empty database any more

    from core.db import db
    app = make_app(empty_database, target, clock)
    try:
        client = app.test_client()
        assert client.get("/api/v1/audit/key").data == source_key
        assert client.get("/api/v1/audit/checkpoint").data == source_checkpoint
        for signed in receipts:
            kid = signed["kid"]
            resp = client.get(f"/api/v1/audit/key?kind=receipt&kid={kid}")
            assert resp.status_code == 200, (kid, resp.data)
            from crypto.canonical import b64decode
            payload = verify_object(signed, "receipt", RECEIPT, b64decode(resp.data.decode().strip(), "key"))
            assert payload == restored[payload["receipt"]]["receipt"]
        assert {r["kid"] for r in receipts} == {old_kid}
        current = client.get("/api/v1/audit/key?kind=receipt").data
        assert current == client.get(f"/api/v1/audit/key?kind=receipt&kid={new_kid}").data  # rotated key in use
        # the restored instance keeps working: ids, the log head and checkpoints go on
        world = World(app, client)
        agent = world.user("agent-after-restore", "agent", org="AGENT1")
        bench_after = Bench(world, clock, parties={"agent": agent})
        assert bench_after.create_project() > source_counts["projects"]
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    check = ebid_cli(target_env, "audit", "check")
    assert check.returncode == 0, (check.stdout, check.stderr)


def test_a_backup_that_does_not_match_its_manifest_is_refused(own_app: Any, clock: Any, database_url: str,
                                                              empty_database: str, tmp_path: Path) -> None:
    bench = Bench(World(own_app, own_app.test_client()), clock)
    tender = bench.tender(mode="officials")
    bench.submit(tender, "bidder", bench.seal(tender, "bidder"))
    backup_dir = tmp_path / "backup"
    assert ebid_cli(cli_env(database_url, Path(own_app.instance_path), clock), "backup",
                    str(backup_dir)).returncode == 0
    blob = next(p for p in (backup_dir / "blobs").rglob("*") if p.is_file())
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1
    blob.write_bytes(bytes(data))
    target = tmp_path / "restored-instance"
    refused = ebid_cli(cli_env(empty_database, target, clock), "restore", str(backup_dir))
    assert refused.returncode == 1 and "corrupt" in refused.stderr, refused.stderr
    assert not (target / "keys").exists() and not (target / "blobs").exists()


def test_a_sqlite_backup_restores_into_postgresql(own_app: Any, clock: Any, database_url: str, backend: str,
                                                  tmp_path: Path) -> None:
    """The portable format moves a platform from the embedded database to PostgreSQL."""
    if backend != "sqlite" or not PG_URL:
        pytest.skip("needs a SQLite source and EBID_TEST_DATABASE_URL for the PostgreSQL target")
    bench = Bench(World(own_app, own_app.test_client()), clock)
    receipts, _ = build_history(bench)
    backup_dir = tmp_path / "backup"
    assert ebid_cli(cli_env(database_url, Path(own_app.instance_path), clock), "backup",
                    str(backup_dir)).returncode == 0
    name = f"ebid_restore_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    target_url = sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        env = cli_env(target_url, tmp_path / "pg-instance", clock)
        done = ebid_cli(env, "restore", str(backup_dir))
        assert done.returncode == 0, (done.stdout, done.stderr)
        assert table_counts(target_url) == table_counts(database_url)
        assert submissions(target_url) == submissions(database_url)
        assert {r["receipt"]["receipt"] for r in receipts} <= set(submissions(target_url))
        check = ebid_cli(env, "audit", "check")
        assert check.returncode == 0 and check.stdout.startswith("ok:"), (check.stdout, check.stderr)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
