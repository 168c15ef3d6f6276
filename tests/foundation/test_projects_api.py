"""Trading projects over HTTP: drafts, edits, documents (content-addressed, hashed, safe
names), and lists that paginate and filter."""
from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa


def body(**overrides: Any) -> dict[str, Any]:
    """A construction open tender: documents from Wed 4 March, bids until Tue 24 March."""
    data: dict[str, Any] = {
        "title": "城区道路改造工程", "description": "道路、管网及附属设施", "domain": "construction",
        "procedure": "open_tender", "category": "works", "tenderee": "TENDEREE1", "supervisor": "SUPERVISION1",
        "region": "430426", "estimate": "1000000.00", "max_price": "1000000.00",
        "schedule": {"documents_from": "2026-03-04T09:00:00+08:00", "bid_deadline": "2026-03-24T09:30:00+08:00"}}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def create(client: Any, headers: dict[str, str], **overrides: Any) -> int:
    resp = client.post("/api/v1/projects", headers=headers, json=body(**overrides))
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["data"]["id"]


def publish(client: Any, headers: dict[str, str], project_id: int) -> None:
    resp = client.post(f"/api/v1/projects/{project_id}/publish", headers=headers)
    assert resp.status_code == 200, resp.get_json()


def error(resp: Any, status: int, code: str) -> dict[str, Any]:
    payload = resp.get_json()
    assert resp.status_code == status, payload
    assert set(payload) == {"error"} and set(payload["error"]) == {"code", "message", "details"}
    assert payload["error"]["code"] == code, payload
    return payload["error"]["details"]


def login(client: Any, party: Any) -> dict[str, str]:
    """Fresh bearer headers at the clock's current time (tokens live 15 minutes)."""
    resp = client.post("/api/v1/auth/token", json={"username": party.username, "password": party.password})
    assert resp.status_code == 200, resp.get_json()
    return {"Authorization": f"Bearer {resp.get_json()['data']['access_token']}"}


def count(app: Any, model: Any) -> int:
    from core.db import db
    with app.app_context():
        return db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()


@pytest.fixture
def parties(world: Any) -> dict[str, Any]:
    parties = world.standard()
    world.org("TENDEREE2", "tenderee", region="110000")
    world.org("AGENT2", "agent")
    parties["agent2"] = world.user("agent2", "agent", org="AGENT2")
    parties["tenderee2"] = world.user("tenderee2", "tenderee", org="TENDEREE2")
    return parties


# ----------------------------------------------------------------- drafts


def test_create_returns_the_draft_with_decimal_strings_and_utc_instants(client, parties, backend):
    resp = client.post("/api/v1/projects", headers=parties["agent"].headers,
                       json=body(bid_security="20000", lots=[{"code": "A-1", "title": "一标段", "budget": "500000.5"}]))
    assert resp.status_code == 201, resp.get_json()
    data = resp.get_json()["data"]
    assert data["status"] == "draft" and data["published_at"] is None and data["next_check"] is None
    assert (data["tenderee"], data["agent"], data["supervisor"]) == ("TENDEREE1", "AGENT1", "SUPERVISION1")
    assert data["estimate"] == "1000000.00" and data["bid_security"] == "20000.00" and data["budget"] is None
    assert data["schedule"]["bid_deadline"] == "2026-03-24T01:30:00.000Z"
    assert data["lots"] == [{"code": "A-1", "title": "一标段", "budget": "500000.50", "max_price": None,
                             "bid_security": None}]
    assert data["limits"] == {} and data["provisional"] is False and data["documents"] == []


def test_a_project_gets_one_lot_by_default(client, parties, backend):
    project_id = create(client, parties["agent"].headers)
    lots = client.get(f"/api/v1/projects/{project_id}", headers=parties["agent"].headers).get_json()["data"]["lots"]
    assert [(lot["code"], lot["title"]) for lot in lots] == [("1", "城区道路改造工程")]


def test_a_tenderee_procures_for_itself_only(client, parties, backend):
    tenderee = parties["tenderee"].headers
    project_id = create(client, tenderee)
    data = client.get(f"/api/v1/projects/{project_id}", headers=tenderee).get_json()["data"]
    assert data["agent"] is None
    publish(client, tenderee, project_id)  # it manages its own procedure
    details = error(client.post("/api/v1/projects", headers=tenderee, json=body(tenderee="TENDEREE2")), 403, "forbidden")
    assert details["field"] == "tenderee"


def test_parties_must_exist_and_be_of_the_right_kind(client, parties, backend):
    agent = parties["agent"].headers
    assert error(client.post("/api/v1/projects", headers=agent, json=body(tenderee="NOPE")), 404,
                 "organisation_not_found")["field"] == "tenderee"
    assert error(client.post("/api/v1/projects", headers=agent, json=body(tenderee="BIDDER1")), 422,
                 "validation_failed")["field"] == "tenderee"
    assert error(client.post("/api/v1/projects", headers=agent, json=body(supervisor="AGENT1")), 422,
                 "validation_failed")["field"] == "supervisor"
    assert error(client.post("/api/v1/projects", headers=agent, json=body(procedure="listing")), 422,
                 "validation_failed")["field"] == "procedure"
    assert error(client.post("/api/v1/projects", headers=agent, json=body(domain="gp", category="property_rights")),
                 422, "validation_failed")["field"] == "category"


def test_editing_a_draft_keeps_lots_by_code_and_the_schedule_consistent(client, parties, app, backend):
    from trading.models import Lot
    agent = parties["agent"].headers
    project_id = create(client, agent, lots=[{"code": "A", "title": "一标段"}, {"code": "B", "title": "二标段"}])
    url = f"/api/v1/projects/{project_id}"
    resp = client.patch(url, headers=agent, json={"lots": [{"code": "B", "title": "二标段（修订）", "max_price": "1.00"},
                                                          {"code": "C", "title": "三标段"}],
                                                 "title": "城区道路改造工程（二期）", "estimate": None})
    assert resp.status_code == 200, resp.get_json()
    data = resp.get_json()["data"]
    assert [(lot["code"], lot["title"]) for lot in data["lots"]] == [("B", "二标段（修订）"), ("C", "三标段")]
    assert data["title"] == "城区道路改造工程（二期）" and data["estimate"] is None
    assert count(app, Lot) == 2
    # The same code twice is refused, and so is a schedule that would run backwards once merged.
    assert error(client.patch(url, headers=agent, json={"lots": [{"code": "X", "title": "a"}, {"code": "X", "title": "b"}]}),
                 422, "validation_failed")["field"] == "lots"
    details = error(client.patch(url, headers=agent, json={"schedule": {"documents_from": "2026-03-25T09:00:00+08:00"}}),
                    422, "schedule_inconsistent")
    assert details["field"] == "schedule.bid_deadline"
    resp = client.patch(url, headers=agent, json={"schedule": {"bid_deadline": "2026-03-27T09:30:00+08:00"}})
    assert resp.get_json()["data"]["schedule"]["bid_deadline"] == "2026-03-27T01:30:00.000Z"


def test_the_evaluation_method_is_a_published_structure_not_free_json(client, parties, backend):
    agent = parties["agent"].headers
    method = {"method": "comprehensive", "aggregation": "mean", "tie_break": ["lower_price", "earlier_receipt"],
              "criteria": [{"id": "price", "max_score": "30", "is_price": True}, {"id": "tech", "max_score": "70"}]}
    project_id = create(client, agent, evaluation_method=method)
    data = client.get(f"/api/v1/projects/{project_id}", headers=agent).get_json()["data"]
    assert data["evaluation_method"]["criteria"][0] == {"id": "price", "max_score": "30", "is_price": True}
    for bad in ({"method": "comprehensive", "price_weight": 0.3},          # a float
                {"method": "comprehensive", "price_weight": "1.5"},        # not a share
                {"method": "secret"},                                      # not a published method
                {"method": "comprehensive", "extra": {"deep": [1]}},       # unknown key
                {"method": "comprehensive", "criteria": [{"id": "p", "max_score": "1", "is_price": True},
                                                         {"id": "q", "max_score": "1", "is_price": True}]}):
        resp = client.post("/api/v1/projects", headers=agent, json=body(evaluation_method=bad))
        assert error(resp, 422, "validation_failed")["field"].startswith("evaluation_method"), bad


def test_unknown_and_foreign_projects_are_not_found(client, parties, backend):
    error(client.get("/api/v1/projects/999999"), 404, "project_not_found")
    project_id = create(client, parties["agent"].headers)
    for name in ("agent2", "tenderee2", "bidder"):
        error(client.get(f"/api/v1/projects/{project_id}", headers=parties[name].headers), 404, "project_not_found")
    error(client.get(f"/api/v1/projects/{project_id}"), 404, "project_not_found")


# ----------------------------------------------------------------- documents


def upload(client: Any, headers: dict[str, str], project_id: int, name: str, data: bytes,
           content_type: str = "application/pdf") -> Any:
    return client.post(f"/api/v1/projects/{project_id}/documents?name={quote(name)}", headers=headers,
                       data=data, content_type=content_type)


def test_documents_are_stored_by_hash_and_downloaded_as_attachments(client, clock, parties, app, backend):
    from audits.models import LogEntry
    from core.db import db
    agent = parties["agent"].headers
    project_id = create(client, agent)
    content = b"%PDF-1.7\n" + bytes(range(256)) * 1000
    resp = upload(client, agent, project_id, "招标文件（第一册）.pdf", content)
    assert resp.status_code == 201, resp.get_json()
    doc = resp.get_json()["data"]
    assert doc["sha256"] == hashlib.sha256(content).hexdigest() and doc["size"] == len(content)
    assert doc["name"] == "招标文件（第一册）.pdf" and doc["content_type"] == "application/pdf"
    assert app.extensions["ebid"].blobs.exists(doc["sha256"])
    listed = client.get(f"/api/v1/projects/{project_id}/documents", headers=agent).get_json()["data"]
    assert listed == [doc]
    assert client.get(f"/api/v1/projects/{project_id}", headers=agent).get_json()["data"]["documents"] == [doc]

    got = client.get(f"/api/v1/projects/{project_id}/documents/{doc['id']}", headers=agent)
    assert got.status_code == 200 and got.data == content
    assert got.mimetype == "application/octet-stream"  # never rendered inline
    assert got.headers["Content-Disposition"].startswith("attachment;")
    assert "filename*=UTF-8''" + quote("招标文件（第一册）.pdf", safe="") in got.headers["Content-Disposition"]
    assert got.headers["ETag"] == f'"{doc["sha256"]}"'
    with app.app_context():
        actions = db.session.execute(sa.select(LogEntry.action).where(
            LogEntry.subject == f"project:{project_id}")).scalars().all()
    assert "project.document_added" in actions


def test_documents_are_public_only_once_issued(client, clock, parties, backend):
    agent = parties["agent"].headers
    project_id = create(client, agent)
    doc = upload(client, agent, project_id, "tender.pdf", b"documents").get_json()["data"]
    url = f"/api/v1/projects/{project_id}/documents/{doc['id']}"
    error(client.get(url), 404, "project_not_found")  # a draft's documents are the draft's
    other = create(client, agent)
    publish(client, agent, project_id)
    error(client.get(url, headers=parties["bidder"].headers), 409, "documents_not_issued")
    assert client.get(url, headers=parties["supervisor"].headers).status_code == 200
    clock.set("2026-03-04T01:00:00Z")
    assert client.get(url).data == b"documents"
    error(client.get(f"/api/v1/projects/{project_id}/documents/{doc['id'] + 1}"), 404, "document_not_found")
    error(client.get(f"/api/v1/projects/{other}/documents/{doc['id']}", headers=login(client, parties["agent"])),
          404, "document_not_found")


UNSAFE_NAMES = ["../../etc/passwd", "a/b.pdf", "..\\boot.ini", "C:evil.pdf", ".htaccess", "..", "con.txt",
                "bad\x00.pdf", "new\nline.pdf", "\u202efdp.exe", "a" * 256, " padded.pdf", 'quote".pdf']


def test_document_names_that_could_escape_or_mislead_are_refused(client, parties, app, backend):
    from trading.models import Document
    agent = parties["agent"].headers
    project_id = create(client, agent)
    for name in UNSAFE_NAMES:
        details = error(upload(client, agent, project_id, name, b"x"), 422, "validation_failed")
        assert details["field"] == "query.name", name
    assert count(app, Document) == 0
    assert list(app.extensions["ebid"].blobs.iter_all()) == []


def test_document_upload_refusals(client, parties, app, backend):
    from trading.models import Document
    agent = parties["agent"].headers
    project_id = create(client, agent)
    assert upload(client, agent, project_id, "a.pdf", b"one").status_code == 201
    assert error(upload(client, agent, project_id, "a.pdf", b"two"), 409, "document_exists")["field"] == "name"
    error(upload(client, agent, project_id, "b.pdf", b"x", content_type="multipart/form-data; boundary=x"), 415,
          "unsupported_media_type")
    error(client.post(f"/api/v1/projects/{project_id}/documents?name=c.pdf", headers=agent, data=b"x"), 415,
          "unsupported_media_type")
    error(upload(client, agent, project_id, "empty.pdf", b""), 422, "empty_document")
    error(client.post(f"/api/v1/projects/{project_id}/documents", headers=agent, data=b"x",
                      content_type="application/pdf"), 422, "validation_failed")
    error(upload(client, parties["agent2"].headers, project_id, "d.pdf", b"x"), 404, "project_not_found")
    error(upload(client, parties["tenderee"].headers, project_id, "d.pdf", b"x"), 403, "forbidden")
    error(upload(client, {}, project_id, "d.pdf", b"x"), 401, "unauthorized")
    publish(client, agent, project_id)
    error(upload(client, agent, project_id, "late.pdf", b"x"), 409, "not_draft")
    assert count(app, Document) == 1


# ----------------------------------------------------------------- lists


@pytest.fixture
def catalogue(client: Any, parties: dict[str, Any]) -> dict[str, int]:
    """Five projects: three published (construction, GP inquiry, asset listing), two drafts."""
    agent, agent2 = parties["agent"].headers, parties["agent2"].headers
    ids = {
        "road": create(client, agent, title="城区道路改造工程"),
        "paper": create(client, agent2, title="办公用纸采购", description="A4 复印纸 100% 木浆", domain="gp",
                        procedure="inquiry", category="goods", estimate=None, max_price=None, budget="90000.00",
                        region="110000", tenderee="TENDEREE2",
                        schedule={"documents_from": "2026-03-02T09:00:00+08:00",
                                  "bid_deadline": "2026-03-10T09:30:00+08:00"}),
        "shares": create(client, agent, title="股权转让", description="国有股权", domain="assets", procedure="listing",
                         category="property_rights", estimate=None, max_price=None, appraisal_value="100.00",
                         floor_price="100.00", schedule={"bid_deadline": "2026-04-30T09:30:00+08:00"}),
        "draft1": create(client, agent, title="道路养护草稿"),
        "draft2": create(client, agent2, title="另一机构草稿"),
    }
    publish(client, agent, ids["road"])
    publish(client, agent2, ids["paper"])
    publish(client, agent, ids["shares"])
    return ids


def listed(client: Any, query: str = "", headers: dict[str, str] | None = None) -> tuple[list[int], dict[str, Any]]:
    resp = client.get(f"/api/v1/projects{query}", headers=headers or {})
    assert resp.status_code == 200, resp.get_json()
    return [p["id"] for p in resp.get_json()["data"]], resp.get_json()["meta"]


def test_lists_paginate_newest_first_and_show_drafts_only_to_their_parties(client, parties, catalogue, backend):
    public = [catalogue["shares"], catalogue["paper"], catalogue["road"]]
    assert listed(client) == (public, {"page": 1, "per_page": 20, "total": 3})
    assert listed(client, "?per_page=2") == (public[:2], {"page": 1, "per_page": 2, "total": 3})
    assert listed(client, "?per_page=2&page=2") == (public[2:], {"page": 2, "per_page": 2, "total": 3})
    assert listed(client, "?page=9")[0] == []
    assert catalogue["draft1"] in listed(client, headers=parties["agent"].headers)[0]
    assert catalogue["draft2"] not in listed(client, headers=parties["agent"].headers)[0]
    assert listed(client, "?status=draft", headers=parties["bidder"].headers)[0] == []
    assert listed(client, "?status=draft", headers=parties["supervisor"].headers)[1]["total"] == 2


FILTERS = [
    ("?domain=construction", ["road"]),
    ("?domain=gp&procedure=inquiry", ["paper"]),
    ("?category=property_rights", ["shares"]),
    ("?region=110000", ["paper"]),
    ("?status=bidding", ["shares", "paper"]),
    ("?status=published", ["road"]),
    ("?q=道路", ["road"]),
    ("?q=100%25", ["paper"]),          # a literal percent sign, in the description
    ("?q=_", []),                      # wildcards are literal
    ("?deadline_from=2026-03-24T01:30:00Z&deadline_to=2026-04-30T01:30:00Z", ["road"]),
    ("?deadline_to=2026-03-24T01:30:00Z", ["paper"]),
    ("?published_from=2026-03-02T01:00:00Z", ["shares", "paper", "road"]),
    ("?published_to=2026-03-02T01:00:00Z", []),
    ("?domain=construction&status=bidding", []),
]


def test_lists_filter_by_domain_procedure_category_region_status_dates_and_text(client, catalogue, backend):
    for query, expected in FILTERS:
        assert listed(client, query)[0] == [catalogue[name] for name in expected], query


def test_list_filters_are_validated(client, catalogue, backend):
    for query in ("?domain=space", "?status=lost", "?per_page=0", "?per_page=101", "?page=0", "?page=x",
                  "?deadline_from=2026-03-02", "?deadline_from=2026-04-01T00:00:00Z&deadline_to=2026-03-01T00:00:00Z",
                  "?q=", "?q=" + "x" * 101):
        resp = client.get(f"/api/v1/projects{query}")
        error(resp, 422, "validation_failed")
