"""Fixtures: a fresh migrated database per test (SQLite always; PostgreSQL too when
EBID_TEST_DATABASE_URL is set), an app with a settable clock, and logged-in users.

Databases are cloned from a template migrated once per run: a file copy on SQLite,
CREATE DATABASE ... TEMPLATE on PostgreSQL.
"""
from __future__ import annotations

import itertools
from contextlib import contextmanager
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy as sa

from core.clock import FixedClock

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PG_URL = os.environ.get("EBID_TEST_DATABASE_URL")
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)  # Monday 09:00 in Asia/Shanghai

from trading import accounts as _accounts  # noqa: E402

_accounts.use_fast_password_hashing_for_tests()


def shared_path(*parts: str) -> Path:
    """A path under ../shared; the test skips with a clear message when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found: ../shared must sit beside the repository for this test")
    return path


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        backends = ["sqlite"] + (["postgresql"] if PG_URL else [])
        metafunc.parametrize("backend", backends, scope="function")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "backend" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from core.migrate import upgrade
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    upgrade(f"sqlite:///{path}")
    sa.create_engine(f"sqlite:///{path}").dispose()
    return path


_counter = itertools.count()


@contextmanager
def _pg_database(name: str, template: str | None = None) -> Iterator[str]:
    """Create a PostgreSQL database (from ``template`` if given), yield its URL, drop it."""
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    create = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(create))
        yield sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str | None]:
    if not PG_URL:
        yield None
        return
    from core.migrate import upgrade
    name = f"ebid_tpl_{os.getpid()}"
    with _pg_database(name) as url:
        upgrade(url)
        sa.create_engine(url).dispose()
        yield name


@pytest.fixture(scope="session")
def pg_session_db(pg_template: str | None) -> Iterator[str | None]:
    """One PostgreSQL database for this test process, cleaned before each test.

    CREATE/DROP DATABASE costs ~2 s per test (fsync); deleting the rows with triggers
    disabled costs ~0.2 s. Tests that drop triggers ask for ``fresh_db`` instead.
    """
    if not pg_template:
        yield None
        return
    with _pg_database(f"ebid_s_{os.getpid()}_{uuid.uuid4().hex[:6]}", pg_template) as url:
        yield url


def _clean_postgres(url: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        tables = [r[0] for r in conn.execute(sa.text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"))]
        sequences = [r[0] for r in conn.execute(sa.text(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"))]
        # Superuser only: skips the append-only triggers and foreign keys for the cleanup.
        conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        for table in tables:
            conn.execute(sa.text(f'DELETE FROM "{table}"'))
        for sequence in sequences:
            conn.execute(sa.text(f'ALTER SEQUENCE "{sequence}" RESTART'))
        conn.execute(sa.text("INSERT INTO log_head (id, size) VALUES (1, 0)"))
    engine.dispose()


_APPS: dict[str, Any] = {}


def _dispose_cached_app(url: str) -> None:
    """Close the cached app's connections so its database file can be replaced."""
    cached = _APPS.get(url)
    if cached is None:
        return
    from core.db import db
    with cached.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="session")
def sqlite_session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sqlite-session")


@pytest.fixture
def database_url(request: pytest.FixtureRequest, backend: str, sqlite_template: Path,
                 sqlite_session_dir: Path, pg_template: str | None,
                 pg_session_db: str | None) -> Iterator[str]:
    """A migrated, empty database for one test (the same URL for the whole run, emptied
    before each test, so the app built for it can be reused)."""
    if backend == "sqlite":
        target = sqlite_session_dir / "ebid.sqlite3"
        url = f"sqlite:///{target}"
        _dispose_cached_app(url)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(sqlite_template, target)
        yield url
        return
    assert PG_URL and pg_template and pg_session_db
    if request.node.get_closest_marker("fresh_db") is None:
        _clean_postgres(pg_session_db)
        yield pg_session_db
        return
    with _pg_database(f"ebid_t_{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}", pg_template) as url:
        yield url


@pytest.fixture(scope="session")
def shared_clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def clock(shared_clock: FixedClock) -> FixedClock:
    """The app's clock, back at T0 for every test."""
    shared_clock.set(T0)
    return shared_clock


def make_app(database_url: str, instance: Path, clock: FixedClock, **overrides: Any) -> Any:
    from wsgi import create_app
    return create_app({
        "EBID_DATABASE_URL": database_url,
        "EBID_INSTANCE_PATH": str(instance),
        "EBID_TESTING": True,
        "EBID_CLOCK_OBJECT": clock,
        # Tests log in many users from one address; the throttle has its own test.
        "EBID_LOGIN_RATE_LIMIT": "1000 per minute",
        "EBID_LOGIN_ADDRESS_RATE_LIMIT": "10000 per minute",
        **overrides,
    })


@pytest.fixture
def app(request: pytest.FixtureRequest, database_url: str, tmp_path_factory: pytest.TempPathFactory,
        clock: FixedClock) -> Iterator[Any]:
    """The app on this test's database. Built once per database URL (create_app spends
    about a second building the OpenAPI document) and reset for every test."""
    from core.db import db
    app = _APPS.get(database_url)
    if app is None:
        app = make_app(database_url, tmp_path_factory.mktemp("instance"), clock)
        if request.node.get_closest_marker("fresh_db") is None:
            _APPS[database_url] = app
    runtime = app.extensions["ebid"]
    runtime.extra.pop("login_throttle", None)
    shutil.rmtree(runtime.blobs.root, ignore_errors=True)  # blobs belong to the emptied database
    yield app
    with app.app_context():
        db.session.remove()
    if _APPS.get(database_url) is not app:
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@dataclass
class Party:
    """A logged-in user for tests."""

    username: str
    password: str
    roles: tuple[str, ...]
    org: str | None
    token: str
    user_id: int

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class World:
    """Builds organisations and users through the real services, and logs them in."""

    def __init__(self, app: Any, client: Any) -> None:
        self.app, self.client = app, client
        self.parties: dict[str, Party] = {}

    def org(self, code: str, kind: str, **kwargs: Any) -> str:
        from core.actor import SYSTEM
        from core.db import db
        from core.runtime import runtime
        from trading.accounts import create_organisation
        from trading.models import Organisation
        with self.app.app_context():
            if db.session.execute(sa.select(Organisation.id).where(Organisation.code == code)).first() is None:
                create_organisation(db.session, SYSTEM, runtime().clock.now(), code=code,
                                    name=kwargs.pop("name", code), kind=kind, **kwargs)
                db.session.commit()
        return code

    def user(self, username: str, *roles: str, org: str | None = None) -> Party:
        from core.actor import SYSTEM
        from core.db import db
        from core.runtime import runtime
        from trading.accounts import create_user
        password = f"pw-{username}-123456"
        with self.app.app_context():
            user = create_user(db.session, SYSTEM, runtime().clock.now(), username=username,
                               password=password, roles=roles, org_code=org)
            db.session.commit()
            user_id = user.id
        resp = self.client.post("/api/v1/auth/token", json={"username": username, "password": password})
        assert resp.status_code == 200, resp.get_json()
        party = Party(username, password, roles, org, resp.get_json()["data"]["access_token"], user_id)
        self.parties[username] = party
        return party

    def standard(self) -> dict[str, Party]:
        """One user per role, with their organisations."""
        self.org("TENDEREE1", "tenderee", region="430426")
        self.org("AGENT1", "agent", region="430426")
        self.org("SUPERVISION1", "supervisory_body", region="430426")
        self.org("BIDDER1", "bidder", legal_representative="张一")
        self.org("BIDDER2", "bidder", legal_representative="李二")
        return {
            "admin": self.user("admin1", "admin"),
            "agent": self.user("agent1", "agent", org="AGENT1"),
            "tenderee": self.user("tenderee1", "tenderee", org="TENDEREE1"),
            "supervisor": self.user("supervisor1", "supervisor", org="SUPERVISION1"),
            "bidder": self.user("bidder1", "bidder", org="BIDDER1"),
            "bidder2": self.user("bidder2", "bidder", org="BIDDER2"),
            "expert": self.user("expert1", "expert"),
            "custodian": self.user("custodian1", "custodian", org="AGENT1"),
        }


@pytest.fixture
def world(app: Any, client: Any) -> World:
    return World(app, client)
