"""A running platform for items 1, 2 and 6: a fresh database, instance keys, gunicorn.

``Platform`` migrates a fresh database, creates the instance keys before the fork, starts
``gunicorn 'wsgi:create_app()'`` with the documented settings, and seeds what a deadline
needs: the tenderee, agent and supervising body, four custodian accounts with registered
keys, and N bidder organisations, accounts and registered signing keys. The agent then
creates the tender, sets its 3-of-4 opening policy and publishes it over HTTP, as it would.

Bidder accounts are bulk-inserted (the same rows ``ebid users create`` would make, with no
audit entries) and their access tokens minted with the instance's secret, as
``POST /auth/token`` would: N logins would measure Argon2 and trip the login rate limit,
which is not what the deadline burst is about.
"""
from __future__ import annotations

import contextlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from bench import env
from bench.core import Context, NotMeasured
from bench.load import Http
from bench.sealkit import LOT, Cast
from bench.servers import PLATFORM_APP, Server
from crypto.canonical import b64encode, format_time
from crypto.keys import kid, raw_public_bytes

TOKEN_TTL_S = 6 * 3600


def require_platform(*modules: str) -> None:
    """NotMeasured unless the app starts here and the named modules exist."""
    import importlib.util
    for name in modules:
        try:
            found = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            found = None
        if found is None:
            raise NotMeasured(f"{name} does not exist yet")
    import shutil
    import tempfile
    probe = tempfile.mkdtemp(prefix="ebid-bench-probe-")
    try:
        import wsgi
        wsgi.create_app({"EBID_DATABASE_URL": "sqlite://", "EBID_INSTANCE_PATH": probe})
    except Exception as exc:  # noqa: BLE001
        raise NotMeasured(f"the app does not start: {type(exc).__name__}: {exc}") from None
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def _schedule(now: datetime) -> dict[str, str]:
    """A schedule the rulebook accepts from any start: documents from publication for 20
    days, the deadline 40 days out on a weekday at 10:00 Asia/Shanghai."""
    deadline = (now + timedelta(days=40)).replace(hour=2, minute=0, second=0, microsecond=0)
    while deadline.weekday() >= 5:
        deadline += timedelta(days=1)
    return {"documents_until": format_time(now.replace(microsecond=0) + timedelta(days=20)),
            "bid_deadline": format_time(deadline)}


@dataclass
class Tender:
    id: int
    policy_bytes: bytes

    @property
    def tender(self) -> str:
        return str(self.id)

    @property
    def base(self) -> str:
        return f"/api/v1/tenders/{self.id}"


class Platform:
    """Use as a context manager; everything it starts is stopped on exit."""

    def __init__(self, ctx: Context, kind: str, name: str, cast: Cast | None = None, bidders: int = 0,
                 extra_env: dict[str, str] | None = None) -> None:
        self.ctx, self.kind, self.name, self.cast, self.bidders = ctx, kind, name, cast, bidders
        self.extra_env = extra_env or {}
        self.stack = contextlib.ExitStack()
        self.url = ""
        self.instance = Path()
        self.server: Server | None = None
        self.tokens: list[str] = []
        self.agent_token = ""
        self.secret = ""
        self.receipt_public = b""

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> "Platform":
        try:
            folder = self.ctx.scratch(f"platform-{self.name}")
            self.url = self.stack.enter_context(
                env.fresh_database(self.kind, folder, self.ctx.pg_admin_url, self.name))
            self.instance = env.instance(folder, self.name)
            self._seed()
        except BaseException:
            self.stack.close()
            raise
        return self

    def start_server(self) -> Server:
        """Start gunicorn (after any baseline that shares this database has run)."""
        server = Server(PLATFORM_APP, env.platform_env(self.url, self.instance, **self.extra_env),
                        self.ctx.scratch("logs"), f"platform-{self.name}", ready_path="/api/v1/openapi.json")
        self.server = self.stack.enter_context(server)
        self.receipt_public = self._receipt_key()
        return server

    def __exit__(self, *exc: Any) -> None:
        self.stack.close()
        self.server = None

    # ------------------------------------------------------------------ seeding

    def app(self) -> Any:
        from wsgi import create_app
        return create_app({"EBID_DATABASE_URL": self.url, "EBID_INSTANCE_PATH": str(self.instance)})

    def _seed(self) -> None:
        from audits.keys import load_keys
        from core.actor import SYSTEM
        from core.db import db
        from trading import accounts
        from trading.models import Organisation, SigningKey, User

        # Seeding only: nobody logs in with these passwords (tokens are minted), so the
        # test suite's cheap Argon2 parameters spare 0.4 s per account without changing
        # anything the server does.
        accounts.use_fast_password_hashing_for_tests()
        app = self.app()
        now = datetime.now(timezone.utc)
        self.secret = load_keys(str(self.instance)).secret_key
        password = secrets.token_urlsafe(18)
        with app.app_context():
            session = db.session
            for code, kind in (("TENDEREE1", "tenderee"), ("AGENT1", "agent"),
                               ("SUPERVISION1", "supervisory_body")):
                accounts.create_organisation(session, SYSTEM, now, code=code, name=code, kind=kind, region="430426")
            agent = accounts.create_user(session, SYSTEM, now, username="agent1", password=password,
                                         roles=["agent"], org_code="AGENT1")
            custodian_users = []
            for c in (self.cast.custodians if self.cast else []):
                user = accounts.create_user(session, SYSTEM, now, username=f"custodian{c.i}", password=password,
                                            roles=["custodian"], org_code="AGENT1")
                custodian_users.append((user, c))
            session.flush()
            for user, c in custodian_users:
                accounts.register_signing_key(session, accounts.actor_for(user), now,
                                              b64encode(raw_public_bytes(c.signing)))
            session.commit()
            self.agent_token = accounts.issue_token(agent, now, self.secret, TOKEN_TTL_S).access_token
            self.agent_user_id = agent.id
            if self.bidders:
                assert self.cast is not None
                pw_hash = accounts.hash_password(password)
                conn = session.connection()
                codes = [Cast.bidder_code(i) for i in range(self.bidders)]
                for start in range(0, self.bidders, 5000):
                    conn.execute(sa.insert(Organisation), [
                        {"code": code, "name": f"投标人 {code}", "kind": "bidder", "region": "430426",
                         "legal_representative": f"法人{code}", "created_at": now} for code in codes[start:start + 5000]])
                org_ids = dict(conn.execute(sa.select(Organisation.code, Organisation.id)
                                            .where(Organisation.kind == "bidder")).all())
                for start in range(0, self.bidders, 5000):
                    conn.execute(sa.insert(User), [
                        {"username": f"bidder-{code}", "display_name": code, "password_hash": pw_hash,
                         "roles": ["bidder"], "org_id": org_ids[code], "active": True, "created_at": now}
                        for code in codes[start:start + 5000]])
                user_ids = dict(conn.execute(sa.select(User.username, User.id)
                                             .where(User.username.like("bidder-%"))).all())
                keys_rows = []
                for i, code in enumerate(codes):
                    raw = raw_public_bytes(self.cast.bidder_keys[i])
                    keys_rows.append({"kid": kid(raw), "user_id": user_ids[f"bidder-{code}"], "public_key": raw,
                                      "created_at": now})
                for start in range(0, len(keys_rows), 5000):
                    conn.execute(sa.insert(SigningKey), keys_rows[start:start + 5000])
                session.commit()
                self.tokens = [accounts.issue_token(SimpleNamespace(id=user_ids[f"bidder-{code}"], roles=["bidder"]),
                                                    now, self.secret, TOKEN_TTL_S).access_token for code in codes]
            db.session.remove()
            db.engine.dispose()

    # ------------------------------------------------------------------ HTTP as the agent

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    def _call(self, method: str, path: str, body: Any = None, token: str | None = None,
              want: tuple[int, ...] = (200, 201)) -> tuple[int, bytes]:
        http = Http(self.port)
        try:
            headers = {"Authorization": f"Bearer {token or self.agent_token}"}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            status, raw = http.request(method, path, body=data, headers=headers)
        finally:
            http.close()
        if status not in want:
            raise RuntimeError(f"{method} {path}: HTTP {status}: {raw[:500]!r}")
        return status, raw

    def create_tender(self, title: str = "县城区道路改造工程施工", with_policy: bool = True) -> Tender:
        """Create, set the 3-of-4 policy, publish: a tender open for bids until its deadline."""
        now = datetime.now(timezone.utc)
        body = {"title": title, "domain": "construction", "procedure": "open_tender", "category": "works",
                "tenderee": "TENDEREE1", "supervisor": "SUPERVISION1", "estimate": "12000000.00",
                "budget": "12000000.00", "max_price": "12000000.00", "schedule": _schedule(now),
                "lots": [{"code": LOT, "title": "施工"}]}
        _, raw = self._call("POST", "/api/v1/projects", body)
        project_id = json.loads(raw)["data"]["id"]
        policy_bytes = b""
        if with_policy:
            assert self.cast is not None
            self._call("PUT", f"/api/v1/tenders/{project_id}/policy", self.cast.policy_body(str(project_id)))
            _, policy_bytes = self._call("GET", f"/api/v1/tenders/{project_id}/policy")
        self._call("POST", f"/api/v1/projects/{project_id}/publish")
        return Tender(project_id, policy_bytes)

    def _receipt_key(self) -> bytes:
        from crypto.canonical import b64decode
        _, raw = self._call("GET", "/api/v1/audit/key?kind=receipt")
        return b64decode(raw.decode().strip(), "receipt key", length=32)

    def engine(self) -> sa.Engine:
        from core.db import engine_options
        return sa.create_engine(self.url, **engine_options(self.url))
