"""Fresh databases and instance folders for one measurement.

SQLite files live in the run's scratch folder; PostgreSQL databases are created on the
local server (trust auth on 127.0.0.1) under a unique name and dropped afterwards, even
when the measurement fails.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import uuid
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa

DEFAULT_PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
_counter = itertools.count()


def pg_probe(admin_url: str) -> str | None:
    """None when PostgreSQL answers at ``admin_url``, else the reason it does not."""
    try:
        engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        return f"PostgreSQL not reachable at {admin_url}: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"


def pg_version(admin_url: str) -> str | None:
    try:
        engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            version = conn.execute(sa.text("SHOW server_version")).scalar_one()
        engine.dispose()
        return str(version)
    except Exception:  # noqa: BLE001
        return None


def migrate(url: str) -> None:
    """`ebid db upgrade` on ``url`` (the same alembic migrations)."""
    from core.migrate import upgrade
    upgrade(url)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@contextlib.contextmanager
def fresh_sqlite(folder: Path, name: str, *, migrated: bool = True) -> Iterator[str]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{next(_counter)}.sqlite3"
    url = sqlite_url(path)
    if migrated:
        migrate(url)
    try:
        yield url
    finally:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(str(path) + suffix)


@contextlib.contextmanager
def fresh_postgres(admin_url: str, name: str, *, migrated: bool = True) -> Iterator[str]:
    db_name = f"ebid_bench_{name}_{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{db_name}"'))
    url = sa.engine.make_url(admin_url).set(database=db_name).render_as_string(hide_password=False)
    try:
        if migrated:
            migrate(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def fresh_database(kind: str, folder: Path, admin_url: str | None, name: str,
                   *, migrated: bool = True) -> Iterator[str]:
    """A fresh database of ``kind`` (sqlite | postgresql)."""
    if kind == "sqlite":
        with fresh_sqlite(folder, name, migrated=migrated) as url:
            yield url
    else:
        assert admin_url is not None, "PostgreSQL unavailable"
        with fresh_postgres(admin_url, name, migrated=migrated) as url:
            yield url


def instance(folder: Path, name: str) -> Path:
    """A fresh instance folder with the platform's keys, created before any fork (as
    `ebid serve` does), so every worker signs with the same keys."""
    from audits.keys import ensure_keys
    path = folder / f"instance-{name}-{next(_counter)}"
    path.mkdir(parents=True)
    ensure_keys(str(path))
    return path


def platform_env(database_url: str, instance_path: Path, **extra: str) -> dict[str, str]:
    """Environment for `gunicorn 'wsgi:create_app()'`: only documented EBID_* settings."""
    env = {"EBID_DATABASE_URL": database_url, "EBID_INSTANCE_PATH": str(instance_path),
           "EBID_BLOB_DIR": str(instance_path / "blobs")}
    env.update(extra)
    return env
