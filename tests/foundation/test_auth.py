"""Login, tokens checked against the injected clock, logout, and bad tokens refused."""
from __future__ import annotations

import base64
import json
from datetime import timedelta

import jwt


def test_token_login_returns_protocol_shape(world, client, backend):
    world.org("BIDDER1", "bidder")
    party = world.user("bidder1", "bidder", org="BIDDER1")
    resp = client.post("/api/v1/auth/token", json={"username": "bidder1", "password": party.password})
    assert resp.status_code == 200
    data = resp.get_json()["data"]
    assert data["token_type"] == "Bearer" and data["expires_in"] > 0 and data["access_token"]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {data['access_token']}"})
    assert me.status_code == 200 and me.get_json()["data"]["username"] == "bidder1"


def test_wrong_password_is_401_with_error_shape(world, client, backend):
    world.user("agent9", "agent")
    resp = client.post("/api/v1/auth/token", json={"username": "agent9", "password": "wrong-password"})
    assert resp.status_code == 401
    assert resp.get_json()["error"]["code"] == "bad_credentials"
    unknown = client.post("/api/v1/auth/token", json={"username": "nobody", "password": "x"})
    assert unknown.get_json()["error"]["code"] == "bad_credentials"


def test_token_expires_by_the_injected_clock(world, client, clock, backend):
    party = world.user("agent2", "agent")
    assert client.get("/api/v1/me", headers=party.headers).status_code == 200
    clock.advance(timedelta(seconds=899))
    assert client.get("/api/v1/me", headers=party.headers).status_code == 200
    clock.advance(timedelta(seconds=1))
    resp = client.get("/api/v1/me", headers=party.headers)
    assert resp.status_code == 401 and resp.get_json()["error"]["code"] == "token_expired"


def test_logout_revokes_the_token(world, client, backend):
    party = world.user("agent3", "agent")
    assert client.post("/api/v1/auth/logout", headers=party.headers).status_code == 204
    resp = client.get("/api/v1/me", headers=party.headers)
    assert resp.status_code == 401 and resp.get_json()["error"]["code"] == "token_revoked"


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_tampered_alg_none_and_foreign_key_tokens_refused(world, client, backend):
    party = world.user("agent4", "agent")
    header, payload, sig = party.token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["roles"] = ["admin"]
    tampered = f"{header}.{_b64(claims)}.{sig}"
    none_alg = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    foreign = jwt.encode(claims, "another-secret-entirely-of-decent-length", algorithm="HS256")
    for token in (tampered, none_alg, foreign, "garbage", ""):
        resp = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 401, token
        assert resp.get_json()["error"]["code"] in ("invalid_token", "unauthorized")


def test_register_signing_key_and_reject_bad_key(world, client, backend):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives import serialization
    party = world.user("bidder5", "bidder")
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ok = client.post("/api/v1/me/keys", json={"public_key": base64.b64encode(raw).decode()},
                     headers=party.headers)
    assert ok.status_code == 201
    bad = client.post("/api/v1/me/keys", json={"public_key": "AAAA"}, headers=party.headers)
    assert bad.status_code == 422 and bad.get_json()["error"]["details"]["field"] == "public_key"
    listed = client.get("/api/v1/me/keys", headers=party.headers).get_json()["data"]
    assert [k["kid"] for k in listed] == [ok.get_json()["data"]["kid"]]


def test_brute_force_login_is_throttled_per_account_and_per_address(database_url, tmp_path, clock, backend):
    from tests.conftest import World
    from wsgi import create_app
    app = create_app({"EBID_DATABASE_URL": database_url, "EBID_INSTANCE_PATH": str(tmp_path / "i2"),
                      "EBID_TESTING": True, "EBID_CLOCK_OBJECT": clock,
                      "EBID_LOGIN_RATE_LIMIT": "3 per minute",
                      "EBID_LOGIN_ADDRESS_RATE_LIMIT": "5 per minute"})
    client = app.test_client()
    world = World(app, client)
    world.user("victim1", "agent")  # one successful login counts too
    codes = [client.post("/api/v1/auth/token", json={"username": "victim1", "password": "guess-guess"}
                         ).status_code for _ in range(3)]
    assert codes == [401, 401, 429]
    # Other accounts from the same address hit the address limit next.
    codes = [client.post("/api/v1/auth/token", json={"username": f"other{i}", "password": "x"},
                         environ_base={"REMOTE_ADDR": "10.9.9.9"}).status_code for i in range(6)]
    assert codes[:5] == [401] * 5 and codes[5] == 429
    resp = client.post("/api/v1/auth/token", json={"username": "victim1", "password": "x"})
    assert resp.get_json()["error"]["code"] == "login_throttled"


def test_login_throttle_shares_its_counts_through_redis():
    """With EBID_REDIS_URL every worker and host counts together: two throttles on one
    Redis see each other's attempts (.ci/run provides EBID_TEST_REDIS_URL)."""
    import os
    import uuid

    import pytest
    from core.errors import TooManyRequests
    from core.ratelimit import LoginThrottle
    url = os.environ.get("EBID_TEST_REDIS_URL")
    if not url:
        pytest.skip("EBID_TEST_REDIS_URL not set: the Redis-backed throttle is tested in CI")
    worker_a = LoginThrottle("2 per minute", "100 per minute", url)
    worker_b = LoginThrottle("2 per minute", "100 per minute", url)
    account = f"acct-{uuid.uuid4().hex}"
    worker_a.hit(account, None)
    worker_b.hit(account, None)
    with pytest.raises(TooManyRequests):
        worker_a.hit(account, None)
