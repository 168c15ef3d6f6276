"""``ebid backup DIR`` and ``ebid restore DIR``: the database, the blobs and the keys (RULES H1).

The database is written as JSON lines, one file per table, by SQLAlchemy over the models'
metadata in foreign-key order, from one consistent snapshot: the sqlite3 online backup API
copies an SQLite database to a temporary file first; PostgreSQL is read inside one
``REPEATABLE READ, READ ONLY`` transaction. Why not ``pg_dump`` or the SQLite file itself:
one format for both databases (a platform that started on SQLite moves to PostgreSQL by a
backup and a restore), no external tool whose version must match the server, and a
restore that goes through the same types and the same storage guards as the platform
(the audit log's append-only triggers stay on; the log head grows one entry at a time).

Blobs are copied whole, each re-hashed on the way (a blob is named by its SHA-256, so a
corrupt one is caught, not copied). Keys are written owner-only (0600 in a 0700 folder):
the log key, every receipt key (retired ones too, so old receipts still verify) and the
session secret, whichever files or variables they were loaded from. ``manifest.json``
lists every file with its SHA-256, the row counts, the log size and the signed checkpoint.

``ebid restore DIR`` checks every hash first, refuses a database that holds anything, loads
the rows in one transaction, installs the keys in the instance folder, recomputes the audit
log from the restored rows against the restored log key, and only then commits.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import click
import sqlalchemy as sa

FORMAT = "ebid-backup/1"
MANIFEST = "manifest.json"
DB_DIR = "db"
BLOB_DIR = "blobs"
BLOB_INDEX = "blobs.txt"
KEY_DIR = "keys"
BATCH = 1000
# Columns that name a blob by its SHA-256: each must be in the backup.
BLOB_REFERENCES = (("bid_submissions", "ciphertext_sha256"), ("documents", "sha256"))
SKIPPED_TABLES = ("log_head",)  # rebuilt by the restore, one entry at a time (storage guard)


class BackupError(click.ClickException):
    """A backup or restore that must stop; printed as ``error: ...`` with exit code 1."""

    def format_message(self) -> str:
        return self.message

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


# --------------------------------------------------------------------------- values


def _kind(column: sa.Column) -> str:
    """How a column's values travel in JSON, from its type."""
    from core.db import Money, UTCDateTime
    t = column.type
    if isinstance(t, sa.JSON):
        return "json"
    if isinstance(t, UTCDateTime):
        return "instant"
    if isinstance(t, (Money, sa.Numeric)) and not isinstance(t, (sa.Integer, sa.Float)):
        return "decimal"
    if isinstance(t, sa.LargeBinary):
        return "bytes"
    if isinstance(t, sa.Date) and not isinstance(t, sa.DateTime):
        return "date"
    if isinstance(t, sa.DateTime):
        raise BackupError(f"column {column.table.name}.{column.name} is a naive DateTime: not backed up safely")
    return "plain"


def _encode(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "json":
        return [json.loads(value)]  # wrapped: JSON null stays distinct from SQL NULL
    if kind == "instant":
        return value.isoformat()
    if kind == "decimal":
        return str(value)
    if kind == "bytes":
        return base64.b64encode(bytes(value)).decode("ascii")
    if kind == "date":
        return value.isoformat()
    return value


def _decode(kind: str, value: Any) -> Any:
    if value is None:
        return sa.null() if kind == "json" else None
    if kind == "json":
        return sa.JSON.NULL if value[0] is None else value[0]
    if kind == "instant":
        return datetime.fromisoformat(value)
    if kind == "decimal":
        return Decimal(value)
    if kind == "bytes":
        return base64.b64decode(value)
    if kind == "date":
        return date.fromisoformat(value)
    return value


def _metadata() -> sa.MetaData:
    from core.db import db
    from wsgi import import_models
    import_models()
    return db.metadata


def _selected(table: sa.Table) -> list[sa.ColumnElement]:
    # JSON as its stored text: SQL NULL and JSON null stay apart, nothing is re-parsed twice
    return [sa.cast(c, sa.Text).label(c.name) if _kind(c) == "json" else c for c in table.columns]


# --------------------------------------------------------------------------- files


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _copy_checked(source: Path, target: Path, sha256: str) -> int:
    """Copy a blob, re-hashing it; returns its size. Raises if the bytes are not ``sha256``."""
    digest, size = hashlib.sha256(), 0
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    with open(source, "rb") as src, open(tmp, "wb") as out:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    if digest.hexdigest() != sha256:
        tmp.unlink()
        raise BackupError(f"blob {sha256} is corrupt: its bytes hash to {digest.hexdigest()}")
    os.replace(tmp, target)
    return size


def _blob_path(root: Path, sha256: str) -> Path:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise BackupError(f"not a blob name: {sha256!r}")
    return root / sha256[:2] / sha256[2:4] / sha256


# --------------------------------------------------------------------------- backup


def _snapshot_connection(url: str, scratch: Path) -> tuple[sa.Engine, sa.Connection]:
    """A connection that sees one consistent state of the database."""
    made = sa.engine.make_url(url)
    if made.get_backend_name() == "sqlite":
        if not made.database or made.database == ":memory:":
            raise BackupError("an in-memory SQLite database cannot be backed up")
        copy = scratch / "snapshot.sqlite3"
        source = sqlite3.connect(made.database, timeout=60)
        target = sqlite3.connect(copy)
        try:
            source.backup(target)  # pages=-1: one step, under one read lock: a consistent copy
        finally:
            target.close()
            source.close()
        engine = sa.create_engine(f"sqlite:///{copy}", poolclass=sa.pool.NullPool)
        return engine, engine.connect()
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    conn = engine.connect().execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    return engine, conn


def _dump_table(conn: sa.Connection, table: sa.Table, path: Path) -> int:
    kinds = [_kind(c) for c in table.columns]
    order = list(table.primary_key.columns) or list(table.columns)
    count = 0
    with open(path, "w", encoding="utf-8") as out:
        out.write(json.dumps({"table": table.name, "columns": [[c.name, k] for c, k in zip(table.columns, kinds)]},
                             ensure_ascii=False) + "\n")
        result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(
            sa.select(*_selected(table)).order_by(*order))
        for row in result:
            out.write(json.dumps([_encode(k, v) for k, v in zip(kinds, row)], ensure_ascii=False,
                                 separators=(",", ":")) + "\n")
            count += 1
        out.flush()
        os.fsync(out.fileno())
    return count


def _write_keys(folder: Path, rt: Any, instance: Path) -> dict[str, str]:
    """The keys the running platform signs with, and every retired receipt key, owner-only."""
    from cryptography.hazmat.primitives import serialization

    from audits.keys import key_dir

    def pem(key: Any) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    folder.mkdir(mode=0o700)
    os.chmod(folder, 0o700)
    written: dict[str, bytes] = {"log.pem": pem(rt.keys.log_key),
                                 f"receipt-{rt.keys.receipt_kid}.pem": pem(rt.keys.receipt_key),
                                 "receipt.current": (rt.keys.receipt_kid + "\n").encode(),
                                 "secret.key": rt.keys.secret_key.encode()}
    source = key_dir(instance)
    for path in sorted(source.glob("receipt-*.pem")) if source.exists() else []:
        written.setdefault(path.name, path.read_bytes())  # retired keys: old receipts still verify
    for name, data in written.items():
        _write_private(folder / name, data)
    return {name: hashlib.sha256(data).hexdigest() for name, data in written.items()}


def make_backup(directory: Path) -> dict[str, Any]:
    """Write a backup of the running app's database, blobs and keys to ``directory``."""
    from core.clock import format_instant
    from core.runtime import runtime

    rt = runtime()
    if directory.exists() and any(directory.iterdir()):
        raise BackupError(f"{directory} is not empty: a backup goes into a new folder")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    started = time.monotonic()
    metadata = _metadata()
    url = rt.config["EBID_DATABASE_URL"]
    tables: dict[str, Any] = {}
    (directory / DB_DIR).mkdir()
    with tempfile.TemporaryDirectory(dir=directory, prefix=".snapshot-") as scratch:
        engine, conn = _snapshot_connection(url, Path(scratch))
        try:
            with conn.begin():
                revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
                head = conn.execute(sa.text("SELECT size FROM log_head WHERE id = 1")).scalar_one()
                checkpoint = conn.execute(sa.text("SELECT note FROM checkpoints WHERE size = :n"),
                                          {"n": head}).scalar_one_or_none()
                for table in metadata.sorted_tables:
                    path = directory / DB_DIR / f"{table.name}.jsonl"
                    rows = _dump_table(conn, table, path)
                    tables[table.name] = {"rows": rows, "file": f"{DB_DIR}/{table.name}.jsonl",
                                          "sha256": _sha256_file(path)}
                referenced: set[str] = set()
                for name, column in BLOB_REFERENCES:
                    col = metadata.tables[name].c[column]
                    referenced.update(conn.execute(sa.select(col).distinct()).scalars())
        finally:
            conn.close()
            engine.dispose()
    # Blobs after the snapshot: a blob is stored before the row naming it commits and is
    # never deleted, so every blob the snapshot references exists by now.
    blob_root = Path(rt.config["EBID_BLOB_DIR"])
    present = sorted(set(rt.blobs.iter_all()))
    missing = sorted(referenced - set(present))
    if missing:
        raise BackupError(f"{len(missing)} blob(s) named by the database are missing from "
                          f"{blob_root}, e.g. {missing[0]}")
    total = 0
    with open(directory / BLOB_INDEX, "w") as index:
        for sha in present:
            size = _copy_checked(_blob_path(blob_root, sha), _blob_path(directory / BLOB_DIR, sha), sha)
            total += size
            index.write(f"{sha} {size}\n")
    keys = _write_keys(directory / KEY_DIR, rt, Path(rt.config["EBID_INSTANCE_PATH"]))
    manifest = {
        "format": FORMAT, "created_at": format_instant(rt.clock.now()),
        "source": {"dialect": sa.engine.make_url(url).get_backend_name(), "alembic_revision": revision},
        "log": {"size": head, "checkpoint": checkpoint, "origin": rt.log_origin},
        "tables": tables,
        "blobs": {"count": len(present), "bytes": total, "index": BLOB_INDEX,
                  "sha256": _sha256_file(directory / BLOB_INDEX)},
        "keys": keys,
        "seconds": round(time.monotonic() - started, 3),
    }
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n")
    os.replace(tmp, directory / MANIFEST)
    return manifest


# --------------------------------------------------------------------------- restore


def read_manifest(directory: Path) -> dict[str, Any]:
    """The backup's manifest, after checking every file it lists against its hash."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{directory / MANIFEST} is missing or unreadable: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"unknown backup format {manifest.get('format')!r}")
    for name, table in manifest["tables"].items():
        if _sha256_file(directory / table["file"]) != table["sha256"]:
            raise BackupError(f"{table['file']} does not match the manifest's hash")
    if _sha256_file(directory / BLOB_INDEX) != manifest["blobs"]["sha256"]:
        raise BackupError(f"{BLOB_INDEX} does not match the manifest's hash")
    for sha, size in _blob_index(directory):
        path = _blob_path(directory / BLOB_DIR, sha)
        if not path.exists() or path.stat().st_size != size or _sha256_file(path) != sha:
            raise BackupError(f"blob {sha} is missing or corrupt in the backup")
    for name, sha in manifest["keys"].items():
        if Path(name).name != name or _sha256_file(directory / KEY_DIR / name) != sha:
            raise BackupError(f"key file {name} is missing or does not match the manifest's hash")
    return manifest


def _blob_index(directory: Path) -> Iterator[tuple[str, int]]:
    with open(directory / BLOB_INDEX) as index:
        for line in index:
            sha, size = line.split()
            yield sha, int(size)


def _rows(path: Path, table: sa.Table) -> Iterator[list[dict[str, Any]]]:
    with open(path, encoding="utf-8") as fh:
        head = json.loads(fh.readline())
        columns = head["columns"]
        known = {c.name for c in table.columns}
        if head["table"] != table.name or {name for name, _ in columns} != known:
            raise BackupError(f"{path.name}: its columns differ from table {table.name}'s")
        batch: list[dict[str, Any]] = []
        for line in fh:
            values = json.loads(line)
            batch.append({name: _decode(kind, v) for (name, kind), v in zip(columns, values)})
            if len(batch) >= BATCH:
                yield batch
                batch = []
        if batch:
            yield batch


def _require_empty(conn: sa.Connection, metadata: sa.MetaData) -> None:
    for table in metadata.sorted_tables:
        if table.name == "log_head":
            rows = conn.execute(sa.text("SELECT id, size FROM log_head")).all()
            if [tuple(r) for r in rows] != [(1, 0)]:
                raise BackupError("the database is not empty (its audit log has entries): restore needs "
                                  "a new, empty database")
            continue
        if conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first() is not None:
            raise BackupError(f"the database is not empty (table {table.name} has rows): restore needs "
                              "a new, empty database")


def _grow_log_head(conn: sa.Connection, size: int) -> None:
    """The storage guard lets the log head grow by one entry per UPDATE: so be it."""
    done = 0
    while done < size:
        step = min(10_000, size - done)
        conn.exec_driver_sql("UPDATE log_head SET size = size + 1 WHERE id = 1", [()] * step)
        done += step


def _reset_sequences(conn: sa.Connection, metadata: sa.MetaData) -> None:
    if conn.dialect.name != "postgresql":
        return  # SQLite hands out max(rowid) + 1
    for table in metadata.sorted_tables:
        pk = list(table.primary_key.columns)
        if len(pk) != 1 or not isinstance(pk[0].type, sa.Integer):
            continue
        sequence = conn.execute(sa.text("SELECT pg_get_serial_sequence(:t, :c)"),
                                {"t": table.name, "c": pk[0].name}).scalar_one()
        if sequence:
            conn.execute(sa.text(f"SELECT setval(:s, COALESCE((SELECT max({pk[0].name}) FROM {table.name}), 0) + 1, "
                                 "false)"), {"s": sequence})


def _install_keys(source: Path, target: Path) -> Path | None:
    """Put the backup's keys in the instance key folder; keys found there (made by a fresh
    instance, which signed nothing: its database is empty) move aside. Returns that folder."""
    aside = None
    if target.exists() and any(target.iterdir()):
        aside = target.with_name(f"keys.replaced-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
        os.replace(target, aside)
    target.mkdir(parents=True, mode=0o700, exist_ok=True)
    os.chmod(target, 0o700)
    for path in sorted(source.iterdir()):
        _write_private(target / path.name, path.read_bytes())
    return aside


def restore_backup(directory: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Restore ``directory`` into the (empty) database, blob folder and instance of ``settings``."""
    from sqlalchemy.orm import Session

    from audits.keys import key_dir, load_keys
    from audits.notes import verifier_key_line
    from audits.storage_check import check_storage
    from core.migrate import head_revision, upgrade

    started = time.monotonic()
    manifest = read_manifest(directory)
    if manifest["source"]["alembic_revision"] != head_revision():
        raise BackupError(f"the backup is of schema {manifest['source']['alembic_revision']}, this release's is "
                          f"{head_revision()}: restore with the release that made it, then `ebid db upgrade`")
    url = settings["EBID_DATABASE_URL"]
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        if not sa.inspect(engine).has_table("alembic_version"):
            upgrade(url)  # a brand-new database: make the schema first
        with engine.connect() as conn:
            current = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one_or_none()
        if current != head_revision():
            raise BackupError(f"the database is at schema {current}, not {head_revision()}: run `ebid db upgrade`")
        metadata = _metadata()
        with engine.connect() as conn:
            _require_empty(conn, metadata)
        # Blobs first: content-addressed and harmless if the rest fails.
        blob_root = Path(settings["EBID_BLOB_DIR"])
        blobs = 0
        for sha, _ in _blob_index(directory):
            target = _blob_path(blob_root, sha)
            if not target.exists():
                _copy_checked(_blob_path(directory / BLOB_DIR, sha), target, sha)
            blobs += 1
        instance = Path(settings["EBID_INSTANCE_PATH"])
        instance.mkdir(parents=True, exist_ok=True)
        counts: dict[str, int] = {}
        with engine.connect() as conn:
            transaction = conn.begin()
            aside = None
            try:
                _require_empty(conn, metadata)  # again, inside the transaction that writes
                for table in metadata.sorted_tables:
                    if table.name in SKIPPED_TABLES:
                        continue
                    info = manifest["tables"].get(table.name)
                    if info is None:
                        raise BackupError(f"the backup has no table {table.name}")
                    counts[table.name] = 0
                    for batch in _rows(directory / info["file"], table):
                        conn.execute(table.insert(), batch)
                        counts[table.name] += len(batch)
                    if counts[table.name] != info["rows"]:
                        raise BackupError(f"{table.name}: {counts[table.name]} rows read, the manifest says "
                                          f"{info['rows']}")
                _grow_log_head(conn, manifest["log"]["size"])
                _reset_sequences(conn, metadata)
                aside = _install_keys(directory / KEY_DIR, key_dir(instance))
                keys = load_keys(instance, log_key_file=settings.get("EBID_LOG_KEY_FILE"),
                                 receipt_key_file=settings.get("EBID_RECEIPT_KEY_FILE"),
                                 secret_key=settings.get("EBID_SECRET_KEY"))
                origin = manifest["log"].get("origin") or settings["EBID_LOG_ORIGIN"]
                with Session(bind=conn) as session:
                    checked = check_storage(session, verifier_key_line(origin, keys.log_public))
                if not checked.ok:
                    raise BackupError("the restored audit log does not verify with the key this instance "
                                      f"will sign with: {checked.problems[:3]}")
                transaction.commit()
            except BaseException:
                transaction.rollback()
                if aside is not None:
                    shutil.rmtree(key_dir(instance), ignore_errors=True)
                    os.replace(aside, key_dir(instance))
                    aside = None
                raise
    finally:
        engine.dispose()
    return {"tables": counts, "rows": sum(counts.values()), "blobs": blobs, "log_size": manifest["log"]["size"],
            "checkpoints": checked.checkpoints, "keys_moved_aside": str(aside) if aside else None,
            "seconds": round(time.monotonic() - started, 3)}


# --------------------------------------------------------------------------- commands


@click.command("backup", help="Back up the database, the blobs and the keys into DIR (a new folder).")
@click.argument("directory", type=click.Path(path_type=Path))
def backup(directory: Path) -> None:
    from core.cli_support import with_app

    if directory.exists() and any(directory.iterdir()):  # before the app starts: fail fast
        raise BackupError(f"{directory} is not empty: a backup goes into a new folder")

    @with_app
    def run() -> dict[str, Any]:
        return make_backup(directory)

    manifest = run()
    rows = sum(t["rows"] for t in manifest["tables"].values())
    click.echo(f"backed up {rows} rows in {len(manifest['tables'])} tables, {manifest['blobs']['count']} blobs "
               f"({manifest['blobs']['bytes']} bytes), {len(manifest['keys'])} key files and a log of "
               f"{manifest['log']['size']} entries to {directory} in {manifest['seconds']} s")


@click.command("restore", help="Restore a backup from DIR into a new, empty instance and database.")
@click.argument("directory", type=click.Path(path_type=Path, exists=True, file_okay=False))
def restore(directory: Path) -> None:
    from core.config import load_config

    settings = load_config()
    if settings.get("EBID_LOG_KEY_FILE") or settings.get("EBID_RECEIPT_KEY_FILE"):
        click.echo("warning: EBID_LOG_KEY_FILE / EBID_RECEIPT_KEY_FILE are set: the server will sign with "
                   "those files, not with the restored keys; the restored log is checked against them", err=True)
    done = restore_backup(directory, settings)
    click.echo(f"restored {done['rows']} rows, {done['blobs']} blobs and a log of {done['log_size']} entries "
               f"({done['checkpoints']} checkpoints verified) in {done['seconds']} s")
    if done["keys_moved_aside"]:
        click.echo(f"the instance's previous (unused) keys were moved to {done['keys_moved_aside']}")


def attach(cli: click.Group) -> None:
    cli.add_command(backup)
    cli.add_command(restore)


__all__ = ["make_backup", "restore_backup", "read_manifest", "BackupError", "attach"]
