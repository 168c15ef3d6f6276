"""Web security (issue 7.5): the security headers on every kind of response the app makes
(JSON, text, HTML, JavaScript, files, every error status, an unhandled error), a docs page
without inline script, no cookies; and no secret in any log: a login, a failed login, a
sealed submission and a withdrawal run with every logger at DEBUG (caplog) and through a
real gunicorn with its access log and debug log, then the logs are searched for the access
tokens, passwords, the bidder's private signing key, the bid key and shares, and the
platform's own private keys and session secret.
"""
from __future__ import annotations

import base64
import json
import logging
import re
from pathlib import Path
from typing import Any, Iterable

import pytest

from core.clock import FileClock
from crypto import keys as crypto_keys
from tests.bidding.helpers import Bench
from tests.conftest import T0
from tests.reliability.reliability_client import seal_file
from tests.reliability.reliability_kit import Server, http, login, password, seed_tender, server_env

REQUIRED = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


def check_headers(resp: Any, what: str) -> None:
    headers = resp.headers
    for name, value in REQUIRED.items():
        assert headers.get(name) == value, (what, name, headers.get(name))
    csp = headers.get("Content-Security-Policy", "")
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    scripts = directives.get("script-src", directives.get("default-src"))
    assert scripts and "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts, (what, csp)
    assert directives.get("frame-ancestors") == ["'none'"] and directives.get("object-src") == ["'none'"], (what, csp)
    assert "Set-Cookie" not in headers, (what, headers.get("Set-Cookie"))


def test_every_kind_of_response_carries_the_security_headers(world: Any, clock: Any, backend: str) -> None:
    bench = Bench(world, clock)
    client, agent = bench.client, bench.headers("agent")
    tender = bench.tender(mode="officials")
    bid = bench.seal(tender, "bidder")
    project = bench.create_project()
    seen: dict[int, str] = {}

    def hit(what: str, resp: Any) -> None:
        check_headers(resp, what)
        seen[resp.status_code] = what

    hit("login", client.post("/api/v1/auth/token", json={"username": "agent1", "password": "pw-agent1-123456"}))
    hit("bad login", client.post("/api/v1/auth/token", json={"username": "agent1", "password": "nope-nope-nope"}))
    hit("openapi", client.get("/api/v1/openapi.json"))
    hit("docs page", client.get("/api/v1/docs/"))
    hit("docs script", client.get("/api/v1/docs/init.js"))
    hit("docs asset", client.get("/api/v1/docs/assets/swagger-ui.css"))
    hit("text key", client.get("/api/v1/audit/key"))
    hit("checkpoint", client.get("/api/v1/audit/checkpoint"))
    hit("raw policy", client.get(f"{tender.base}/policy"))
    hit("manifest 201", bench.post_manifest(tender, "bidder", bid))
    hit("upload 201", bench.put_file(tender, "bidder", bid))
    hit("retry 200", bench.post_manifest(tender, "bidder", bid))
    hit("document upload", client.post(f"/api/v1/projects/{project}/documents?name=a.pdf", headers=agent,
                                       data=b"%PDF-1.4", content_type="application/pdf"))
    doc = client.get(f"/api/v1/projects/{project}/documents", headers=agent).get_json()["data"][0]
    hit("document download", client.get(f"/api/v1/projects/{project}/documents/{doc['id']}", headers=agent))
    hit("401", client.get("/api/v1/projects", headers={"Authorization": "Bearer nope"}))
    hit("403", client.post(f"{tender.base}/submissions", headers=agent, json={}))
    hit("404 route", client.get("/no/such/route"))
    hit("405", client.delete("/api/v1/audit/key"))
    hit("409", bench.post_manifest(tender, "bidder", bench.seal(tender, "bidder")))
    hit("415", client.post("/api/v1/projects", headers=agent, data="x", content_type="text/plain"))
    hit("422", client.post("/api/v1/projects", headers=agent, json={"title": 5}))
    hit("400", client.post("/api/v1/projects", headers=agent, data="{", content_type="application/json"))
    hit("413", client.post("/api/v1/projects", headers=agent, data="x" * (2 * 1024 * 1024),
                           content_type="application/json"))
    assert {200, 201, 400, 401, 403, 404, 405, 409, 413, 415, 422} <= set(seen), seen
    page = client.get("/api/v1/docs/").get_data(as_text=True)
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, flags=re.S)
    assert scripts and all("src=" in attrs and not body.strip() for attrs, body in scripts), scripts
    assert not re.search(r"\son[a-z]+\s*=", page), "inline event handlers"


def test_an_unhandled_error_is_a_500_with_the_headers_and_no_traceback(database_url: str, tmp_path: Path,
                                                                      clock: Any) -> None:
    from core.db import db
    from tests.conftest import make_app
    app = make_app(database_url, tmp_path / "instance", clock)
    app.config["PROPAGATE_EXCEPTIONS"] = False

    def boom() -> Any:
        raise RuntimeError("secret internals: /srv/ebid/instance/keys/log.pem")

    app.add_url_rule("/boom", "boom", boom)
    try:
        resp = app.test_client().get("/boom")
        assert resp.status_code == 500
        check_headers(resp, "500")
        assert resp.get_json()["error"]["code"] == "internal_error"
        assert b"secret internals" not in resp.data and b"Traceback" not in resp.data
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


# --------------------------------------------------------------------------- no secrets in logs


def forms(secret: bytes | str) -> list[str]:
    """The ways a secret could show up in a log: as text, hex, base64 (standard and url-safe)."""
    raw = secret.encode() if isinstance(secret, str) else secret
    found = {raw.decode("utf-8", "replace") if isinstance(secret, str) else raw.hex(),
             base64.b64encode(raw).decode().rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("=")}
    return [f for f in found if len(f) >= 12]


def pem_body(pem: bytes) -> list[str]:
    """The base64 lines of a PEM: any of them in a log leaks the key."""
    return [line for line in pem.decode().splitlines() if line and not line.startswith("-----")]


def assert_no_secrets(log_text: str, secrets: dict[str, Iterable[str]]) -> None:
    leaks = [name for name, values in secrets.items() for value in values if value and value in log_text]
    assert not leaks, f"secrets in the log: {sorted(set(leaks))}"


def platform_secrets(instance: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in (instance / "keys").iterdir():
        if path.suffix == ".pem":
            found[f"platform key {path.name}"] = pem_body(path.read_bytes())
        elif path.name == "secret.key":
            found["session secret"] = [path.read_text().strip()]
    return found


def test_no_secret_reaches_the_app_logs(world: Any, clock: Any, backend: str, caplog: Any, app: Any) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger().setLevel(logging.DEBUG)
    bench = Bench(world, clock)
    client = bench.client
    tender = bench.tender(mode="officials")
    bid = bench.seal(tender, "bidder", price="123456.78")
    signed = bench.submit(tender, "bidder", bid)
    bench.withdraw(tender, "bidder", bench.withdrawal(tender, "bidder", [signed["receipt"]["receipt"]]))
    wrong = "Wrong-Password-Attempt-9"
    client.post("/api/v1/auth/token", json={"username": "bidder1", "password": wrong})
    client.get("/api/v1/projects", headers={"Authorization": f"Bearer {bench.parties['agent'].token}x"})
    key = bench.signing_key("bidder")
    secrets: dict[str, list[str]] = {
        "bid key": forms(bid.bid_key),
        "share": [f for pt in bid.share_plaintexts.values() for f in forms(pt)],
        "signing key": pem_body(crypto_keys.dump_private_pem(key)) + forms(key.private_bytes_raw()),
        "wrong password": [wrong],
        **{f"token of {name}": [party.token] for name, party in bench.parties.items()},
        **{f"password of {name}": [party.password] for name, party in bench.parties.items()},
        **platform_secrets(Path(app.instance_path)),
    }
    text = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert_no_secrets(text, secrets)


@pytest.mark.slow
@pytest.mark.e2e
def test_no_secret_reaches_the_gunicorn_logs(backend: str, database_url: str, tmp_path: Path) -> None:
    if backend != "sqlite":
        pytest.skip("what gunicorn logs does not depend on the database: run on SQLite")
    clock = FileClock(tmp_path / "clock")
    clock.set(T0)
    instance = tmp_path / "instance"
    seeded = seed_tender(database_url, instance, clock, bidders=1)
    env = server_env(database_url, instance, clock)
    server = Server(env, tmp_path, extra=["--access-logfile", "-", "--log-level", "debug",
                                          "--capture-output"]).start()
    bidder = seeded.bidders[0]
    signing = crypto_keys.load_private_pem(bidder["signing_pem"].encode(), "ed25519")
    try:
        token = login(server.base, bidder["username"])
        bid = seal_file(seeded.policy, str(seeded.tender), seeded.lot, bidder["org"], "a.bin", signing)
        status, raw, headers = http("POST", f"{server.base}/api/v1/tenders/{seeded.tender}/submissions",
                                    bid["manifest"], token=token)
        assert status == 201 and "Set-Cookie" not in headers
        status, raw, _ = http("PUT", server.base + json.loads(raw)["data"]["upload"], bid["ebid"], token=token,
                              content_type="application/octet-stream")
        assert status == 201, raw
        wrong = "Wrong-Password-Attempt-9"
        http("POST", f"{server.base}/api/v1/auth/token",
             json.dumps({"username": bidder["username"], "password": wrong}).encode())
        http("GET", f"{server.base}/api/v1/projects", token=token + "x")
        agent = login(server.base, "agent1")
    finally:
        server.stop()
    log = server.log_path.read_text(errors="replace")
    assert "PUT /api/v1/tenders/" in log and "POST /api/v1/auth/token" in log  # the access log is there
    secrets = {"bidder token": [token], "agent token": [agent], "wrong password": [wrong],
               "password": [password(bidder["username"]), password("agent1")],
               "bid key": forms(bid["bid_key"]), "signing key": pem_body(bidder["signing_pem"].encode()),
               "bearer": ["Bearer "], **platform_secrets(instance)}
    assert_no_secrets(log, secrets)
