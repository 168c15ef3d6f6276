"""The demo world of ``ebid serve --demo`` (issue 2 item 11, issue 4 item 7): seeded into an
empty database only, through the platform's own API with the clock set back, so that its
projects stand at real stages today and the audit log verifies."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bidding.demo import seed_demo
from core.clock import parse_instant
from core.db import db
from trading.domain import Role

DOMAINS = ("construction", "gp", "assets")


def _log_size(app: Any) -> int:
    from audits import log
    with app.app_context():
        try:
            return log.size(db.session)
        finally:
            db.session.remove()


def _storage_ok(app: Any) -> bool:
    from audits.notes import verifier_key_line
    from audits.storage_check import check_storage
    from core.runtime import runtime
    with app.app_context():
        try:
            rt = runtime()
            return check_storage(db.session, verifier_key_line(rt.log_origin, rt.keys.log_public)).ok
        finally:
            db.session.remove()


def _first_action(app: Any) -> str:
    from audits.entries import parse_entry
    from audits.models import LogEntry
    with app.app_context():
        try:
            first = db.session.execute(sa.select(LogEntry.entry).order_by(LogEntry.index).limit(1)).scalar_one()
            return parse_entry(bytes(first))["action"]
        finally:
            db.session.remove()


def _token(client: Any, seeded: list[tuple[str, str, str]], role: str) -> dict[str, str]:
    username, password = next((u, p) for u, p, r in seeded if r == role)
    resp = client.post("/api/v1/auth/token", json={"username": username, "password": password})
    assert resp.status_code == 200, resp.get_json()
    return {"Authorization": f"Bearer {resp.get_json()['data']['access_token']}"}


def _projects(client: Any, headers: dict[str, str] | None = None, **filters: str) -> list[dict[str, Any]]:
    resp = client.get("/api/v1/projects", query_string={"per_page": 100, **filters}, headers=headers or {})
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["data"]


def test_the_demo_seeds_every_role_and_every_stage_through_the_api_once(app, backend, clock):
    runtime = app.extensions["ebid"]
    original, ttl = runtime.clock, runtime.config["EBID_TOKEN_TTL_SECONDS"]
    seeded = seed_demo(app)

    assert runtime.clock is original is clock
    assert runtime.config["EBID_TOKEN_TTL_SECONDS"] == ttl
    assert {role for _, _, role in seeded} == {r.value for r in Role}
    assert len({u for u, _, _ in seeded}) == len(seeded)
    assert all(len(password) >= 16 for _, password, _ in seeded)

    client = app.test_client()
    agent = _token(client, seeded, "agent")
    by_status = {status: _projects(client, agent, status=status)
                 for status in ("draft", "bidding", "closed", "awarded", "contracted")}
    assert {p["domain"] for p in by_status["draft"]} == set(DOMAINS)
    assert {p["domain"] for p in by_status["bidding"]} == set(DOMAINS)
    assert {p["domain"] for p in by_status["closed"]} == set(DOMAINS)
    assert {p["domain"] for p in by_status["awarded"]} == {"construction", "gp"}
    assert {p["domain"] for p in by_status["contracted"]} == {"construction"}
    assert {p["domain"] for p in _projects(client)} == set(DOMAINS)   # public without a token

    # the stages are real today: open and draft deadlines ahead, the others behind
    now = clock.now()
    for status, found in by_status.items():
        for p in found:
            ahead = parse_instant(p["schedule"]["bid_deadline"]) > now
            assert ahead is (status in ("draft", "bidding")), (status, p["title"])

    # the closed tenders are sealed: a closing list, no opening yet
    for p in by_status["closed"]:
        closing = client.get(f"/api/v1/tenders/{p['id']}/closing").get_json()["data"]
        assert closing["index"] >= 0
        assert client.get(f"/api/v1/tenders/{p['id']}/opening-record").status_code in (404, 409)

    # the awarded ones went through opening, evaluation and award
    for p in by_status["awarded"] + by_status["contracted"]:
        record = client.get(f"/api/v1/tenders/{p['id']}/opening-record").get_json()["data"]
        assert len(record["bids"]) >= 3 and all(b["status"] == "opened" for b in record["bids"])
        assert client.get(f"/api/v1/tenders/{p['id']}/award").get_json()["data"]["notices"]

    # the history kept the rules and the clock: nothing late in the finished tenders, and
    # no collusion indicators (each bidder its own address, key and paying account)
    finished = {p["id"] for p in by_status["awarded"] + by_status["contracted"]}
    cards = client.get("/api/v1/supervision/cards", query_string={"per_page": 100},
                       headers=_token(client, seeded, "supervisor")).get_json()["data"]
    assert [c for c in cards if c["project"] in finished and c["severity"] == "red"] == []
    assert [c for c in cards if c["rule"] == "B6"] == []

    # the log holds the whole history from the first organisation, and verifies
    assert _first_action(app) == "organisation.created"
    assert _storage_ok(app)

    # a second call finds the database in use and changes nothing
    size = _log_size(app)
    assert seed_demo(app) == []
    assert _log_size(app) == size
    assert app.extensions["ebid"].clock is clock


def test_a_database_with_accounts_is_not_seeded(app, backend, world):
    world.org("ORG1", "tenderee")
    size = _log_size(app)
    assert seed_demo(app) == []
    assert _log_size(app) == size


def test_seeding_a_freshly_migrated_file_database_as_serve_does(tmp_path: Path, monkeypatch):
    """What ``ebid serve --demo`` does before gunicorn: migrate a new SQLite file, build
    the app from the environment (system clock), seed inside an app context."""
    from core.migrate import upgrade
    from wsgi import create_app

    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    upgrade(url)
    monkeypatch.setenv("EBID_DATABASE_URL", url)
    monkeypatch.setenv("EBID_INSTANCE_PATH", str(tmp_path / "instance"))
    app = create_app()
    try:
        with app.app_context():
            seeded = seed_demo(app)
        assert {role for _, _, role in seeded} == {r.value for r in Role}
        client = app.test_client()
        for status in ("bidding", "closed", "awarded", "contracted"):
            assert _projects(client, status=status), status
        assert _storage_ok(app)
        keys = tmp_path / "instance" / "demo-keys"
        assert (keys / "custodian" / "signing.pem").exists()
        assert list((keys / "supervisor").glob("tender-*-draw.secret"))
        with app.app_context():
            assert seed_demo(app) == []
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
