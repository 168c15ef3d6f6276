"""Fixtures for the expert pool and draw tests: a pool imported through the real service,
a published tender with both commitments made before its deadline, and its closing.

The closing is written the way ``bidding/closing.py`` writes it (a ``tender.closed``
entry with subject ``project:<id>`` and ``data = {"deadline", "files": [...]}``, then a
checkpoint that includes it) but directly with :func:`audits.log.append`, so these tests
do not depend on the bidding package's API.
"""
from __future__ import annotations

import csv
import io
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from crypto.canonical import format_time
from tests.conftest import T0

DEADLINE = T0 + timedelta(days=30)
LOT = "L1"
HEADER = ["id", "name", "specialties", "region", "employer", "title", "field_since", "status",
          "unavailable_until", "supervisory_staff", "username", "phone", "employments", "roles",
          "relatives", "services"]


def expert_row(expert_id: str, specialties: str = "A0101", **values: str) -> dict[str, str]:
    """A valid pool row (senior title, 16 years in the field), with overrides."""
    row = {name: "" for name in HEADER}
    row.update(id=expert_id, name=f"专家{expert_id}", specialties=specialties, region="430426",
               title="senior", field_since="2010-01-01", status="active",
               supervisory_staff="false", username=f"x{expert_id.lower()}")
    row.update(values)
    return row


def pool_csv(rows: list[dict[str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HEADER, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def standard_pool(civil: int = 8, economists: int = 5) -> list[dict[str, str]]:
    """``civil`` experts under A01 (A0101 or A0102) and ``economists`` under B01."""
    rows = [expert_row(f"E{i:03d}", "A0101" if i % 2 else "A0102") for i in range(1, civil + 1)]
    rows += [expert_row(f"F{i:03d}", "B0101") for i in range(1, economists + 1)]
    return rows


@dataclass
class DrawBench:
    """Drives a tender through commitments, closing and draws as its parties would."""

    world: Any
    clock: Any
    parties: dict[str, Any]
    secrets: dict[tuple[int, str, int], bytes] = field(default_factory=dict)
    issued: dict[str, datetime] = field(default_factory=dict)

    @property
    def client(self) -> Any:
        return self.world.client

    @property
    def app(self) -> Any:
        return self.world.app

    def h(self, name: str) -> dict[str, str]:
        """Bearer headers of a party, logging in again when the clock has moved."""
        party, now = self.parties[name], self.clock.now()
        issued = self.issued.get(name)
        if issued is None or not timedelta(0) <= now - issued < timedelta(minutes=10):
            resp = self.client.post("/api/v1/auth/token", json={"username": party.username,
                                                                "password": party.password})
            assert resp.status_code == 200, resp.get_json()
            party.token = resp.get_json()["data"]["access_token"]
            self.issued[name] = now
        return party.headers

    def expert_user(self, expert_id: str) -> str:
        """The platform account of a pool expert (username x<id>), created on first use."""
        name = f"x{expert_id.lower()}"
        if name not in self.parties:
            self.parties[name] = self.world.user(name, "expert")
            self.issued[name] = self.clock.now()
        return name

    # ------------------------------------------------------------------ the pool

    def import_pool(self, rows: list[dict[str, str]]) -> None:
        from core.actor import Actor
        from core.db import db
        from trading import experts
        admin = Actor(user_id=None, username="system", roles=frozenset({"admin"}))
        with self.app.app_context():
            experts.import_experts(db.session, admin, self.clock.now(), pool_csv(rows), "csv")
            db.session.commit()

    # ------------------------------------------------------------------ the tender

    def tender(self, lots: tuple[str, ...] = (LOT,), **extra: Any) -> int:
        """A published construction tender, clock at T0, deadline T0 + 30 days."""
        self.clock.set(T0)
        body = {"title": "城区道路改造工程", "domain": "construction", "procedure": "open_tender",
                "category": "works", "tenderee": "TENDEREE1", "supervisor": "SUPERVISION1",
                "estimate": "1000000.00", "budget": "1000000.00", "max_price": "1000000.00",
                "schedule": {"documents_from": format_time(T0),
                             "documents_until": format_time(T0 + timedelta(days=10)),
                             "bid_deadline": format_time(DEADLINE)},
                "lots": [{"code": code, "title": f"标段 {code}"} for code in lots], **extra}
        resp = self.client.post("/api/v1/projects", headers=self.h("agent"), json=body)
        assert resp.status_code == 201, resp.get_json()
        project_id = resp.get_json()["data"]["id"]
        resp = self.client.post(f"/api/v1/projects/{project_id}/publish", headers=self.h("agent"))
        assert resp.status_code == 200, resp.get_json()
        return project_id

    def commit_platform(self, tender: int) -> Any:
        return self.client.post(f"/api/v1/tenders/{tender}/draws/platform-commitment",
                                headers=self.h("agent"))

    def commit_supervisor(self, tender: int, attempt: int = 1, lot: str = LOT,
                          secret: bytes | None = None) -> Any:
        from trading.draw import commitment
        secret = secret or secrets.token_bytes(32)
        self.secrets[(tender, lot, attempt)] = secret
        return self.client.post(f"/api/v1/tenders/{tender}/draws/commitments", headers=self.h("supervisor"),
                                json={"lot": lot, "attempt": attempt, "commitment": commitment(secret)})

    def close(self, tender: int, bidders: tuple[str, ...] = ("BIDDER1", "BIDDER2"),
              lot: str = LOT) -> int:
        """Move past the deadline and close the tender as bidding/closing.py does."""
        from audits import log
        from core.db import db
        self.clock.set(DEADLINE + timedelta(minutes=1))
        files = sorted(({"lot": lot, "bidder": b, "file": "bid-form.json", "header_sha256": f"{i:064x}",
                         "manifest_sha256": f"{i + 100:064x}"} for i, b in enumerate(bidders)),
                       key=lambda f: (f["lot"], f["bidder"], f["file"]))
        with self.app.app_context():
            appended = log.append(db.session, now=self.clock.now(), actor="system", action="tender.closed",
                                  subject=f"project:{tender}",
                                  data={"deadline": format_time(DEADLINE), "files": files})
            db.session.commit()  # the app's before_commit hook signs the checkpoint including it
        return appended.index

    def prepared(self, pool: list[dict[str, str]] | None = None, **kwargs: Any) -> int:
        """Pool imported, tender published, both parties committed, tender closed."""
        self.import_pool(pool if pool is not None else standard_pool())
        tender = self.tender()
        assert self.commit_platform(tender).status_code == 201
        assert self.commit_supervisor(tender).status_code == 201
        self.close(tender, **kwargs)
        return tender

    # ------------------------------------------------------------------ draws

    def request(self, tender: int, groups: list[dict[str, Any]] | None = None, **body: Any) -> Any:
        groups = groups or [{"specialty": "A01", "count": 3}, {"specialty": "B01", "count": 2}]
        return self.client.post(f"/api/v1/tenders/{tender}/draws", headers=self.h("agent"),
                                json={"lot": LOT, "groups": groups, **body})

    def reveal(self, tender: int, attempt: int = 1, secret: bytes | None = None) -> Any:
        secret = secret or self.secrets[(tender, LOT, attempt)]
        return self.client.post(f"/api/v1/tenders/{tender}/draws/{attempt}/reveal",
                                headers=self.h("supervisor"), json={"lot": LOT, "secret": secret.hex()})

    def full_draw(self, tender: int, attempt: int = 1) -> dict[str, Any]:
        resp = self.client.get(f"/api/v1/tenders/{tender}/draws/{attempt}?lot={LOT}",
                               headers=self.h("supervisor"))
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()["data"]

    def drawn(self, tender: int, **request: Any) -> dict[str, Any]:
        """Request and reveal: a valid draw, as the supervisor sees it."""
        resp = self.request(tender, **request)
        assert resp.status_code == 201, resp.get_json()
        resp = self.reveal(tender, resp.get_json()["data"]["attempt"])
        assert resp.status_code == 200, resp.get_json()
        return self.full_draw(tender, resp.get_json()["data"]["attempt"])

    def log_actions(self, action: str) -> list[dict[str, Any]]:
        """Entries of the log with ``action``, parsed."""
        import json

        import sqlalchemy as sa

        from audits.models import LogEntry
        from core.db import db
        with self.app.app_context():
            rows = db.session.execute(sa.select(LogEntry.entry).where(LogEntry.action == action)
                                      .order_by(LogEntry.index)).scalars().all()
        return [json.loads(bytes(r)) for r in rows]


@pytest.fixture
def bench(world: Any, clock: Any) -> DrawBench:
    return DrawBench(world, clock, world.standard())
