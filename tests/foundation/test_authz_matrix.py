"""The authorization matrix: every role × every endpoint trading serves under /api/v1
(plus the audit-log detail), as a table. Each cell is the status the role gets.

Roles: anonymous, admin, the agent of the project's agent organisation and an agent of
another, the project's tenderee and another tenderee, a bidder, an expert, the project's
supervisor and a custodian. Drafts are invisible (404) to everyone outside the project;
a published project is public to read and acted on only by its parties.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

ROLES = ("anonymous", "admin", "agent", "agent_other", "tenderee", "tenderee_other", "bidder", "expert",
         "supervisor", "custodian")
INSIDERS = ("admin", "agent", "tenderee", "supervisor")  # may see the project's drafts
OUTSIDERS = ("agent_other", "tenderee_other", "bidder", "expert", "custodian")


def cells(default: int, anonymous: int | None = None, **by_role: int) -> dict[str, int]:
    """A row of the matrix: ``default`` for every role, with exceptions."""
    row = {role: default for role in ROLES}
    if anonymous is not None:
        row["anonymous"] = anonymous
    row.update(by_role)
    return row


def everyone(status: int) -> dict[str, int]:
    return cells(status)


def signed_in(status: int) -> dict[str, int]:
    return cells(status, anonymous=401)


def only(status: int, *roles: str, others: int = 403) -> dict[str, int]:
    return cells(others, anonymous=401, **{role: status for role in roles})


def draft_only(status: int, *roles: str) -> dict[str, int]:
    """Acting on a draft: ``roles`` succeed, other insiders are 403, outsiders 404."""
    row = only(status, *roles)
    row.update({role: 404 for role in OUTSIDERS})
    return row


def draft_readers(status: int = 200) -> dict[str, int]:
    return cells(404, **{role: status for role in INSIDERS})


class Bench:
    """Creates the object each cell acts on, fresh for every role."""

    def __init__(self, app: Any, client: Any, parties: dict[str, Any]) -> None:
        self.app, self.client, self.parties = app, client, parties
        self.agent = parties["agent"].headers
        self.n = 0

    def _create(self) -> int:
        body = {"title": "城区道路改造工程", "domain": "construction", "procedure": "open_tender",
                "category": "works", "tenderee": "TENDEREE1", "supervisor": "SUPERVISION1",
                "estimate": "1000000.00", "max_price": "1000000.00",
                "schedule": {"bid_deadline": "2026-03-24T09:30:00+08:00"}}
        resp = self.client.post("/api/v1/projects", headers=self.agent, json=body)
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()["data"]["id"]

    def _publish(self, project_id: int) -> int:
        resp = self.client.post(f"/api/v1/projects/{project_id}/publish", headers=self.agent)
        assert resp.status_code == 200, resp.get_json()
        return project_id

    def _document(self, project_id: int) -> int:
        resp = self.client.post(f"/api/v1/projects/{project_id}/documents?name=tender.pdf", headers=self.agent,
                                data=b"%PDF", content_type="application/pdf")
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()["data"]["id"]

    def none(self) -> dict[str, Any]:
        return {}

    def draft(self) -> dict[str, Any]:
        return {"id": self._create()}

    def published(self) -> dict[str, Any]:
        return {"id": self._publish(self._create())}

    def suspended(self) -> dict[str, Any]:
        project_id = self._publish(self._create())
        resp = self.client.post(f"/api/v1/projects/{project_id}/suspend", headers=self.parties["supervisor"].headers,
                                json={"reason": "投诉"})
        assert resp.status_code == 200, resp.get_json()
        return {"id": project_id}

    def draft_document(self) -> dict[str, Any]:
        project_id = self._create()
        return {"id": project_id, "doc": self._document(project_id)}

    def published_document(self) -> dict[str, Any]:
        project_id = self._create()
        doc = self._document(project_id)
        return {"id": self._publish(project_id), "doc": doc}

    def log_detail(self) -> dict[str, Any]:
        """A hidden audit entry whose detail names the bidder as a reader."""
        from audits import log
        from core.db import db
        with self.app.app_context():
            entry = log.append(db.session, now=self.app.extensions["ebid"].clock.now(), actor="agent1",
                               action="test.hidden", subject="project:0", data={"secret": True}, hidden=True,
                               readers={"users": [self.parties["bidder"].user_id]})
            db.session.commit()
        return {"entry": entry.index}

    def unique(self) -> str:
        self.n += 1
        return f"x{self.n}"


def _key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(serialization.Encoding.Raw,
                                                                 serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


@dataclass
class Row:
    method: str
    path: str
    target: str
    expected: dict[str, int]
    body: Callable[[Bench], dict[str, Any]] = field(default=lambda bench: {})


def _json(payload: Any) -> Callable[[Bench], dict[str, Any]]:
    return lambda bench: {"json": payload(bench) if callable(payload) else payload}


_PROJECT = {"title": "新项目", "domain": "construction", "procedure": "open_tender", "category": "works",
            "tenderee": "TENDEREE1"}
_UPLOAD: Callable[[Bench], dict[str, Any]] = lambda bench: {"data": b"bytes", "content_type": "application/pdf"}

MATRIX: dict[str, Row] = {
    "me": Row("GET", "/api/v1/me", "none", signed_in(200)),
    "logout": Row("POST", "/api/v1/auth/logout", "none", signed_in(204)),
    "keys list": Row("GET", "/api/v1/me/keys", "none", signed_in(200)),
    "keys register": Row("POST", "/api/v1/me/keys", "none", signed_in(201), _json(lambda b: {"public_key": _key()})),
    "users list": Row("GET", "/api/v1/users", "none", only(200, "admin")),
    "users create": Row("POST", "/api/v1/users", "none", only(201, "admin"),
                        _json(lambda b: {"username": f"new{b.unique()}", "password": "a-long-password",
                                         "roles": ["bidder"]})),
    "organisations list": Row("GET", "/api/v1/organisations", "none", everyone(200)),
    "organisations create": Row("POST", "/api/v1/organisations", "none", only(201, "admin"),
                                _json(lambda b: {"code": f"ORG{b.unique()}", "name": "某公司", "kind": "bidder"})),
    "projects list": Row("GET", "/api/v1/projects", "none", everyone(200)),
    "project create": Row("POST", "/api/v1/projects", "none", only(201, "agent", "agent_other", "tenderee"),
                          _json(_PROJECT)),
    "draft read": Row("GET", "/api/v1/projects/{id}", "draft", draft_readers()),
    "published read": Row("GET", "/api/v1/projects/{id}", "published", everyone(200)),
    "draft edit": Row("PATCH", "/api/v1/projects/{id}", "draft", draft_only(200, "agent"), _json({"title": "改"})),
    "published edit": Row("PATCH", "/api/v1/projects/{id}", "published",
                          only(409, "agent"), _json({"title": "改"})),
    "publish": Row("POST", "/api/v1/projects/{id}/publish", "draft", draft_only(200, "agent")),
    "cancel draft": Row("POST", "/api/v1/projects/{id}/cancel", "draft", draft_only(200, "agent"),
                        _json({"reason": "撤销"})),
    "cancel": Row("POST", "/api/v1/projects/{id}/cancel", "published", only(200, "agent"), _json({"reason": "撤销"})),
    "suspend": Row("POST", "/api/v1/projects/{id}/suspend", "published", only(200, "supervisor"),
                   _json({"reason": "投诉"})),
    "resume": Row("POST", "/api/v1/projects/{id}/resume", "suspended", only(200, "supervisor"),
                  _json({"reason": "处理完毕"})),
    "draft clarifications": Row("GET", "/api/v1/projects/{id}/clarifications", "draft", draft_readers()),
    "clarifications": Row("GET", "/api/v1/projects/{id}/clarifications", "published", everyone(200)),
    "clarify": Row("POST", "/api/v1/projects/{id}/clarifications", "published", only(201, "agent"),
                   _json({"text": "答疑"})),
    "draft notices": Row("GET", "/api/v1/projects/{id}/notices", "draft", draft_readers()),
    "notices": Row("GET", "/api/v1/projects/{id}/notices", "published", everyone(200)),
    "draft documents": Row("GET", "/api/v1/projects/{id}/documents", "draft", draft_readers()),
    "documents": Row("GET", "/api/v1/projects/{id}/documents", "published", everyone(200)),
    "document upload": Row("POST", "/api/v1/projects/{id}/documents?name=a.pdf", "draft", draft_only(201, "agent"),
                           _UPLOAD),
    "draft document download": Row("GET", "/api/v1/projects/{id}/documents/{doc}", "draft_document",
                                   draft_readers()),
    "document download": Row("GET", "/api/v1/projects/{id}/documents/{doc}", "published_document", everyone(200)),
    "audit detail": Row("GET", "/api/v1/audit/entries/{entry}/detail", "log_detail",
                        only(200, "supervisor", "bidder")),
}


@pytest.fixture
def bench(app: Any, client: Any, world: Any) -> Bench:
    parties = world.standard()
    world.org("AGENT2", "agent")
    world.org("TENDEREE2", "tenderee")
    parties["agent_other"] = world.user("agent2", "agent", org="AGENT2")
    parties["tenderee_other"] = world.user("tenderee2", "tenderee", org="TENDEREE2")
    parties["anonymous"] = None
    return Bench(app, client, parties)


def headers_of(bench: Bench, role: str) -> dict[str, str]:
    party = bench.parties[role]
    return {} if party is None else party.headers


# Rows run in groups, one world per group, to keep the table quick.
GROUPS = {
    "accounts": ["me", "keys list", "keys register", "users list", "users create", "organisations list",
                 "organisations create", "logout"],
    "projects": ["projects list", "project create", "draft read", "published read", "draft edit", "published edit"],
    "transitions": ["publish", "cancel draft", "cancel", "suspend", "resume"],
    "clarifications and notices": ["draft clarifications", "clarifications", "clarify", "draft notices", "notices"],
    "documents and audit": ["draft documents", "documents", "document upload", "draft document download",
                            "document download", "audit detail"],
}


def test_the_groups_cover_the_matrix():
    grouped = [name for names in GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(MATRIX) and len(grouped) == len(set(grouped))


@pytest.mark.parametrize("group", list(GROUPS))
def test_authorization_matrix(bench, client, group, backend):
    mismatches = {}
    for name in GROUPS[group]:
        row = MATRIX[name]
        got = {}
        for role in ROLES:
            target = getattr(bench, row.target)()
            resp = client.open(row.path.format(**target), method=row.method, headers=headers_of(bench, role),
                               **row.body(bench))
            got[role] = resp.status_code
            if resp.status_code >= 400:  # every refusal in the platform's shape
                assert set(resp.get_json()["error"]) == {"code", "message", "details"}, (name, role, resp.get_json())
        mismatches.update({(name, role): (got[role], row.expected[role])
                           for role in ROLES if got[role] != row.expected[role]})
    assert mismatches == {}, "(endpoint, role): (got, expected)"


def test_every_trading_endpoint_is_in_the_matrix(app, backend):
    """A new endpoint of trading's blueprints must get a row here (logging in excepted)."""
    import re
    covered = {(row.method, re.sub(r"\{(\w+)\}", "*", row.path.split("?")[0])) for row in MATRIX.values()}
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] in ("projects", "accounts", "auth") and rule.rule != "/api/v1/auth/token":
            path = re.sub(r"<(?:\w+:)?\w+>", "*", rule.rule)
            served |= {(method, path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert served and served - covered == set()


def test_drafts_do_not_leak_through_lists(bench, client, backend):
    draft = bench.draft()["id"]
    for role in ROLES:
        ids = [p["id"] for p in client.get("/api/v1/projects", headers=headers_of(bench, role)).get_json()["data"]]
        assert (draft in ids) == (role in INSIDERS), role
