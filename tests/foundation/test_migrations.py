"""Migrations: the migrated schema is exactly the models; an app on an unmigrated database
answers 503 with the error shape until `ebid db upgrade` has run, then serves."""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy as sa

from tests.conftest import PG_URL


def _differences(url: str) -> list[Any]:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    import wsgi
    from core.db import Base
    wsgi.import_models()
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                             "compare_server_default": False})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_the_migrated_schema_equals_the_models(database_url, backend):
    # database_url is freshly migrated (from the per-run template) on this backend.
    assert _differences(database_url) == []


@pytest.fixture
def empty_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    assert PG_URL
    name = f"ebid_empty_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_an_unmigrated_database_answers_503_until_ebid_db_upgrade(empty_database, tmp_path, clock, backend):
    from click.testing import CliRunner

    from core.db import db
    from wsgi import cli, create_app
    instance = tmp_path / "instance"
    app = create_app({"EBID_DATABASE_URL": empty_database, "EBID_INSTANCE_PATH": str(instance),
                      "EBID_TESTING": True, "EBID_CLOCK_OBJECT": clock})
    client = app.test_client()
    try:
        for path in ("/api/v1/projects", "/api/v1/organisations", "/api/v1/me"):
            resp = client.get(path)
            assert resp.status_code == 503, path
            assert resp.get_json() == {"error": {"code": "database_not_migrated", "details": {},
                                                 "message": "数据库尚未迁移：请运行 `ebid db upgrade`"}}
        english = client.get("/api/v1/projects", headers={"Accept-Language": "en"}).get_json()
        assert english["error"]["message"] == "Database not migrated: run `ebid db upgrade`"
        # The API description does not need the database.
        assert client.get("/api/v1/openapi.json").status_code == 200

        result = CliRunner().invoke(cli, ["db", "upgrade"], env={
            "EBID_DATABASE_URL": empty_database, "EBID_INSTANCE_PATH": str(instance)})
        assert result.exit_code == 0, result.output
        assert "database at newest schema" in result.output

        resp = client.get("/api/v1/projects")
        assert resp.status_code == 200 and resp.get_json() == {
            "data": [], "meta": {"page": 1, "per_page": 20, "total": 0}}
        assert _differences(empty_database) == []
        # Upgrading again is harmless.
        again = CliRunner().invoke(cli, ["db", "upgrade"], env={
            "EBID_DATABASE_URL": empty_database, "EBID_INSTANCE_PATH": str(instance)})
        assert again.exit_code == 0, again.output
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
