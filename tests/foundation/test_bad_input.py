"""Bad input: each refused request answers ``{"error": {"code", "message", "details"}}``
with a stable code, and nothing is stored (rows and the audit log are counted before and
after). Hostile input (deep JSON, oversized bodies, injection strings) never gets a 500.
"""
from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy as sa

URL = "/api/v1/projects"


def body(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "title": "城区道路改造工程", "domain": "construction", "procedure": "open_tender", "category": "works",
        "tenderee": "TENDEREE1", "estimate": "1000000.00", "max_price": "1000000.00",
        "schedule": {"documents_from": "2026-03-04T09:00:00+08:00", "bid_deadline": "2026-03-24T09:30:00+08:00"}}
    data.update(overrides)
    return data


def schedule(**overrides: Any) -> dict[str, Any]:
    return body(schedule={**body()["schedule"], **overrides})


def snapshot(app: Any) -> dict[str, int]:
    """Rows of everything a project request could write, and the audit log's size."""
    from audits import log
    from core.db import db
    from trading.models import Clarification, Document, Lot, Notice, Project
    with app.app_context():
        counts = {model.__name__: db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()
                  for model in (Project, Lot, Clarification, Document, Notice)}
        counts["log"] = log.size(db.session)
        published = db.session.execute(sa.select(sa.func.count()).select_from(Project)
                                       .where(Project.published_at.is_not(None))).scalar_one()
        counts["published"] = published
        db.session.rollback()
    return counts


def error(resp: Any, status: int, code: str) -> dict[str, Any]:
    """Assert the error shape and code; return the details."""
    payload = resp.get_json()
    assert resp.status_code == status, (resp.status_code, payload)
    assert set(payload) == {"error"}, payload
    assert set(payload["error"]) == {"code", "message", "details"}, payload
    assert payload["error"]["code"] == code, payload
    assert isinstance(payload["error"]["message"], str) and payload["error"]["message"]
    assert isinstance(payload["error"]["details"], dict)
    return payload["error"]["details"]


@pytest.fixture
def parties(world: Any) -> dict[str, Any]:
    parties = world.standard()
    world.org("AGENT2", "agent")
    parties["agent2"] = world.user("agent2", "agent", org="AGENT2")
    return parties


@pytest.fixture
def agent(parties: dict[str, Any]) -> dict[str, str]:
    return parties["agent"].headers


@pytest.fixture
def unchanged(app: Any) -> Iterator[None]:
    """Nothing the test does may store anything."""
    before = snapshot(app)
    yield
    assert snapshot(app) == before


def raw(client: Any, headers: dict[str, str], data: bytes | str, url: str = URL, **kwargs: Any) -> Any:
    return client.post(url, headers=headers, data=data, content_type=kwargs.pop("content_type", "application/json"),
                       **kwargs)


# ----------------------------------------------------------------- malformed bodies


MALFORMED = ['{"title": ', "{'title': 'x'}", "[1, 2,]", '{"a": NaN}', '{"a": Infinity}', b"\xff\xfe{}", "not json"]


def test_malformed_json_is_400(client, agent, unchanged, backend):
    for data in MALFORMED:
        error(raw(client, agent, data), 400, "malformed_json")
        error(raw(client, agent, data, url=f"{URL}/1/clarifications"), 400, "malformed_json")


def test_duplicate_keys_are_400(client, agent, unchanged, backend):
    text = json.dumps(body())[:-1] + ', "title": "另一个标题"}'
    error(raw(client, agent, text), 400, "malformed_json")
    nested = '{"reason": "a", "reason": "b"}'
    error(raw(client, agent, nested, url=f"{URL}/1/cancel"), 400, "malformed_json")


def test_wrong_content_type_is_415(client, agent, unchanged, backend):
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml", None):
        resp = client.post(URL, headers=agent, data=json.dumps(body()), content_type=content_type)
        error(resp, 415, "unsupported_media_type")


def test_deep_nesting_is_refused_not_crashed(client, agent, unchanged, backend):
    for data in ("[" * 10_000 + "]" * 10_000, '{"a":' * 10_000 + "1" + "}" * 10_000):
        resp = raw(client, agent, data)
        assert resp.status_code in (400, 413, 422), resp.get_json()
        error(resp, resp.status_code, resp.get_json()["error"]["code"])


def test_huge_and_wrong_shaped_json_is_422(client, agent, unchanged, backend):
    error(client.post(URL, headers=agent, json=[0] * 100_000), 422, "validation_failed")
    error(client.post(URL, headers=agent, json="a string"), 422, "validation_failed")
    lots = [{"code": f"L{i}", "title": "x"} for i in range(51)]
    assert error(client.post(URL, headers=agent, json=body(lots=lots)), 422, "validation_failed")["field"] == "lots"
    assert error(client.post(URL, headers=agent, json=body(title="长" * 301)), 422, "validation_failed")["field"] == "title"


# ----------------------------------------------------------------- fields


WRONG_FIELDS = [
    ({"title": 123}, "title"),
    ({"title": None}, "title"),
    ({"domain": "maritime"}, "domain"),
    ({"lots": "1"}, "lots"),
    ({"lots": [{"code": "../x", "title": "a"}]}, "lots.0.code"),
    ({"schedule": []}, "schedule._schema"),
    ({"evaluation_method": "lowest"}, "evaluation_method._schema"),
    ({"colour": "red"}, "colour"),
    ({"schedule": {"bid_deadlines": "2026-03-24T09:30:00+08:00"}}, "schedule.bid_deadlines"),
    ({"lots": [{"code": "A", "title": "a", "weight": "1"}]}, "lots.0.weight"),
    ({"evaluation_method": {"method": "comprehensive", "criteria": [{"id": "价格", "max_score": "1"}]}},
     "evaluation_method.criteria.0.id"),
]


def test_wrong_types_and_unknown_fields_are_422_naming_the_field(client, agent, unchanged, backend):
    for overrides, field in WRONG_FIELDS:
        details = error(client.post(URL, headers=agent, json=body(**overrides)), 422, "validation_failed")
        assert details["field"] == field, overrides


BAD_MONEY = [1.5, 1000000, "-1", "1.001", "1e3", " 1", "1,000", "NaN", "Infinity", "0x10", "١٠٠", "01", "", True,
             None, "10000000000000000"]


def test_money_is_a_decimal_string_with_two_places_at_most(client, agent, unchanged, backend):
    for money in BAD_MONEY:
        details = error(client.post(URL, headers=agent, json=body(budget=money)), 422, "validation_failed")
        assert details["field"] == "budget", money
        lot = {"code": "A", "title": "a", "bid_security": money}
        details = error(client.post(URL, headers=agent, json=body(lots=[lot])), 422, "validation_failed")
        assert details["field"] == "lots.0.bid_security", money


def test_a_float_is_refused_even_when_it_looks_like_a_decimal(client, agent, unchanged, backend):
    # JSON numbers reach the schema as Decimal (the parser never makes floats) and are
    # still refused: money travels as strings only.
    error(raw(client, agent, json.dumps(body())[:-1] + ', "budget": 1.50}'), 422, "validation_failed")


BAD_DATES = [
    ({"documents_from": "2026-03-25T09:00:00+08:00"}, "schedule.bid_deadline"),   # after the deadline
    ({"bid_deadline": "2026-05-01T09:30:00"}, "schedule.bid_deadline"),           # no offset
    ({"bid_deadline": "2026-05-01"}, "schedule.bid_deadline"),                    # a date, not an instant
    ({"bid_deadline": "2026-02-30T09:30:00+08:00"}, "schedule.bid_deadline"),     # no such day
    ({"bid_deadline": 1772000000}, "schedule.bid_deadline"),                      # a number
    ({"publicity_end": "2026-03-30T00:00:00Z", "publicity_start": "2026-04-01T00:00:00Z"}, "schedule.publicity_end"),
]


def test_dates_in_the_wrong_order_or_without_offset_are_422(client, agent, unchanged, backend):
    for dates, field in BAD_DATES:
        details = error(client.post(URL, headers=agent, json=schedule(**dates)), 422, "validation_failed")
        assert details["field"] == field, dates


def test_a_rule_broken_by_one_day_publishes_nothing(client, agent, app, backend):
    project_id = client.post(URL, headers=agent, json=schedule(bid_deadline="2026-03-23T09:30:00+08:00")
                             ).get_json()["data"]["id"]
    before = snapshot(app)
    details = error(client.post(f"{URL}/{project_id}/publish", headers=agent), 422, "rule_violation")
    assert details["rule"] == "A1"
    assert snapshot(app) == before


def test_a_clarification_may_not_bring_the_deadline_forward(client, agent, app, backend):
    project_id = client.post(URL, headers=agent, json=body()).get_json()["data"]["id"]
    assert client.post(f"{URL}/{project_id}/publish", headers=agent).status_code == 200
    before = snapshot(app)
    details = error(client.post(f"{URL}/{project_id}/clarifications", headers=agent,
                                json={"text": "提前", "new_bid_deadline": "2026-03-23T09:30:00+08:00"}),
                    422, "deadline_earlier")
    assert details["field"] == "new_bid_deadline"
    error(client.post(f"{URL}/{project_id}/clarifications", headers=agent, json={"text": ""}), 422, "validation_failed")
    assert snapshot(app) == before


def test_ids_beyond_any_row_are_404_not_500(client, agent, unchanged, backend):
    # Ids too large for a database integer match no route at all (wsgi.BoundedIntConverter).
    for url in (f"{URL}/99999999999999999999", f"{URL}/9223372036854775808", f"{URL}/2147483648/notices"):
        error(client.get(url, headers=agent), 404, "not_found")
    error(client.get(f"{URL}/0/clarifications", headers=agent), 404, "project_not_found")
    error(client.get(f"{URL}?page=100000000000000000000"), 422, "validation_failed")


# ----------------------------------------------------------------- another user's object


def test_another_users_object_is_refused_and_untouched(client, parties, app, backend):
    agent, agent2 = parties["agent"].headers, parties["agent2"].headers
    draft = client.post(URL, headers=agent, json=body()).get_json()["data"]["id"]
    live = client.post(URL, headers=agent, json=body()).get_json()["data"]["id"]
    assert client.post(f"{URL}/{live}/publish", headers=agent).status_code == 200
    before = snapshot(app)
    error(client.patch(f"{URL}/{draft}", headers=agent2, json={"title": "夺取"}), 404, "project_not_found")
    error(client.post(f"{URL}/{draft}/publish", headers=agent2), 404, "project_not_found")
    error(client.post(f"{URL}/{live}/cancel", headers=agent2, json={"reason": "x"}), 403, "forbidden")
    error(client.post(f"{URL}/{live}/clarifications", headers=agent2, json={"text": "x"}), 403, "forbidden")
    error(client.post(f"{URL}/{live}/suspend", headers=parties["bidder"].headers, json={"reason": "x"}), 403, "forbidden")
    error(client.patch(f"{URL}/{live}", headers=parties["tenderee"].headers, json={"title": "x"}), 403, "forbidden")
    assert snapshot(app) == before


def test_another_users_signing_key_is_refused(client, parties, app, backend):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(serialization.Encoding.Raw,
                                                                 serialization.PublicFormat.Raw)
    key = {"public_key": base64.b64encode(raw).decode()}
    assert client.post("/api/v1/me/keys", headers=parties["bidder"].headers, json=key).status_code == 201
    before = snapshot(app)
    assert error(client.post("/api/v1/me/keys", headers=parties["bidder2"].headers, json=key), 409,
                 "key_taken")["field"] == "public_key"
    assert client.get("/api/v1/me/keys", headers=parties["bidder2"].headers).get_json()["data"] == []
    assert snapshot(app) == before


# ----------------------------------------------------------------- tokens


def test_expired_and_tampered_tokens_are_401(client, clock, parties, app, backend):
    agent = parties["agent"]
    header, payload, signature = agent.token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = str(parties["admin"].user_id)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    before = snapshot(app)
    for headers, code in (({"Authorization": f"Bearer {header}.{forged}.{signature}"}, "invalid_token"),
                          ({"Authorization": f"Bearer {agent.token}x"}, "invalid_token"),
                          ({"Authorization": f"Basic {agent.token}"}, "invalid_token"),
                          ({"Authorization": "Bearer"}, "invalid_token"),
                          ({}, "unauthorized")):
        error(client.post(URL, headers=headers, json=body()), 401, code)
    clock.advance(timedelta(seconds=900))
    error(client.post(URL, headers=agent.headers, json=body()), 401, "token_expired")
    assert snapshot(app) == before


# ----------------------------------------------------------------- size limits


class Exploding:
    """An input stream that fails the test if the server reads from it."""

    def read(self, *args: Any) -> bytes:
        raise AssertionError("the server read a body it should have refused by its length")

    readline = read


@pytest.fixture
def small_app(database_url: str, tmp_path: Path, clock: Any) -> Iterator[Any]:
    """An app with a 1 KiB JSON limit and a 4 KiB upload limit, on the test's database."""
    from core.db import db
    from wsgi import create_app
    app = create_app({"EBID_DATABASE_URL": database_url, "EBID_INSTANCE_PATH": str(tmp_path / "small"),
                      "EBID_TESTING": True, "EBID_CLOCK_OBJECT": clock, "EBID_MAX_JSON_BYTES": 1024,
                      "EBID_MAX_UPLOAD_BYTES": 4096, "EBID_LOGIN_RATE_LIMIT": "1000 per minute"})
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_a_body_over_the_json_limit_is_413_before_it_is_read(small_app, backend):
    from tests.conftest import World
    client = small_app.test_client()
    world = World(small_app, client)
    world.org("TENDEREE1", "tenderee")
    world.org("AGENT1", "agent")
    agent = world.user("agent1", "agent", org="AGENT1").headers
    before = snapshot(small_app)
    error(client.post(URL, headers=agent, content_type="application/json", environ_overrides={
        "CONTENT_LENGTH": str(10**9), "wsgi.input": Exploding()}), 413, "payload_too_large")
    error(client.post(URL, headers=agent, json=body(description="长" * 400)), 413, "payload_too_large")  # ~1.3 KiB
    assert snapshot(small_app) == before
    assert client.post(URL, headers=agent, json=body()).status_code == 201  # under the limit
    project_id = client.get(URL, headers=agent).get_json()["data"][0]["id"]
    # A document upload has its own, larger limit; over it, nothing is stored.
    url = f"{URL}/{project_id}/documents?name=big.pdf"
    error(client.post(url, headers=agent, content_type="application/pdf", environ_overrides={
        "CONTENT_LENGTH": str(10**9), "wsgi.input": Exploding()}), 413, "payload_too_large")
    assert snapshot(small_app)["Document"] == 0
    assert client.post(url, headers=agent, data=b"x" * 2048, content_type="application/pdf").status_code == 201


def test_a_streamed_upload_over_the_limit_stores_no_blob(small_app, backend):
    from tests.conftest import World
    client = small_app.test_client()
    world = World(small_app, client)
    world.org("TENDEREE1", "tenderee")
    world.org("AGENT1", "agent")
    agent = world.user("agent1", "agent", org="AGENT1").headers
    project_id = client.post(URL, headers=agent, json=body()).get_json()["data"]["id"]
    before = snapshot(small_app)

    class Chunked:
        """A body without a length, longer than the limit."""

        def __init__(self) -> None:
            self.left = 10_000

        def read(self, size: int = -1) -> bytes:
            n = min(self.left, 1000 if size is None or size < 0 else size)
            self.left -= n
            return b"y" * n

    resp = client.post(f"{URL}/{project_id}/documents?name=big.pdf", headers=agent, content_type="application/pdf",
                       environ_overrides={"wsgi.input": Chunked(), "wsgi.input_terminated": True})
    error(resp, 413, "payload_too_large")
    assert snapshot(small_app) == before
    assert list(small_app.extensions["ebid"].blobs.iter_all()) == []


# ----------------------------------------------------------------- injection and escaping


INJECTIONS = ["'; DROP TABLE projects; --", '" OR "1"="1', "<script>alert(1)</script>",
              "<img src=x onerror=alert(1)>", "\\u0000\\\\", "{{7*7}}", "%s%s%n", "${jndi:ldap://x}",
              "🦆 \u202e", "Robert'); DELETE FROM lots;--"]


def test_injection_strings_are_stored_verbatim_and_returned_as_escaped_json(client, agent, parties, app, backend):
    text = " | ".join(INJECTIONS)
    resp = client.post(URL, headers=agent, json=body(title=INJECTIONS[0], description=text,
                                                     lots=[{"code": "A", "title": INJECTIONS[1]}]))
    assert resp.status_code == 201, resp.get_json()
    project_id = resp.get_json()["data"]["id"]
    assert client.post(f"{URL}/{project_id}/publish", headers=agent).status_code == 200
    clar = client.post(f"{URL}/{project_id}/clarifications", headers=agent, json={"text": INJECTIONS[3]})
    assert clar.status_code == 201
    got = client.get(f"{URL}/{project_id}")
    assert got.mimetype == "application/json" and got.headers["X-Content-Type-Options"] == "nosniff"
    data = got.get_json()["data"]
    assert (data["title"], data["description"], data["lots"][0]["title"]) == (INJECTIONS[0], text, INJECTIONS[1])
    assert b'\\"1\\"=\\"1' in got.data  # quotes escaped inside JSON strings
    notices = client.get(f"{URL}/{project_id}/notices").get_json()["data"]
    assert notices[-1]["body"] == INJECTIONS[3]
    for needle in INJECTIONS + ["%", "_", "\\"]:
        resp = client.get(URL, query_string={"q": needle})
        assert resp.status_code == 200, (needle, resp.get_json())
    assert [p["id"] for p in client.get(URL, query_string={"q": "DROP TABLE"}).get_json()["data"]] == [project_id]
    assert snapshot(app)["Lot"] == 1  # the tables are all still there


# ----------------------------------------------------------------- languages


def test_messages_are_chinese_by_default_and_english_on_request(client, agent, backend):
    def message(headers: dict[str, str], url: str = f"{URL}/424242") -> str:
        return client.get(url, headers=headers).get_json()["error"]["message"]
    assert message({}) == "项目不存在"
    assert message({"Accept-Language": "zh-CN,zh;q=0.9"}) == "项目不存在"
    assert message({"Accept-Language": "fr-FR"}) == "项目不存在"
    assert message({"Accept-Language": "en"}) == "No such project"
    assert message({"Accept-Language": "en-US,en;q=0.9,zh;q=0.1"}) == "No such project"
    project_id = client.post(URL, headers=agent, json=schedule(bid_deadline="2026-03-23T09:30:00+08:00")
                             ).get_json()["data"]["id"]
    zh = client.post(f"{URL}/{project_id}/publish", headers=agent).get_json()["error"]["message"]
    en = client.post(f"{URL}/{project_id}/publish", headers={**agent, "Accept-Language": "en"}
                     ).get_json()["error"]["message"]
    assert "投标截止时间" in zh and "招标投标法 Art 24" in zh
    assert "bid deadline" in en and "招标投标法 Art 24" in en
    invalid = client.post(URL, headers={**agent, "Accept-Language": "en"}, json=body(budget=1.5))
    assert invalid.get_json()["error"]["message"] == "Invalid field 'budget'"
    assert client.post(URL, headers=agent, json=body(budget=1.5)).get_json()["error"]["message"] == "字段 budget 无效"


def test_unknown_routes_and_methods_use_the_error_shape(client, agent, backend):
    error(client.get("/api/v1/nowhere"), 404, "not_found")
    resp = client.delete(URL, headers=agent)
    error(resp, 405, "method_not_allowed")
    assert set(resp.headers["Allow"].split(", ")) >= {"GET", "POST"}
