"""Builders for the evaluation and award tests (no tests here): a published tender with a
4-custodian policy, sealed bids with their securities, the opening run to its published
record, and a committee, either drawn over HTTP (PROTOCOL §8, the experts' endpoints) or
seated straight into the database for the focused tests.

Reuses the bidding engineer's :class:`tests.bidding.helpers.Bench` and the opening
engineer's :class:`tests.bidding.test_opening_kit.OpeningKit`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from tests.bidding.helpers import DEADLINE, LOT, T0, Bench, Tender, bid_form
from tests.bidding.test_opening_kit import OpeningKit

#: The published method of comprehensive scoring: 30 technical points, 70 price points.
COMPREHENSIVE = {"method": "comprehensive",
                 "criteria": [{"id": "tech", "max_score": "20"}, {"id": "service", "max_score": "10"},
                              {"id": "price", "max_score": "70", "is_price": True}]}
LOWEST_PRICE = {"method": "lowest_evaluated_price"}
SPECIALTY = "A01"


def shanghai_midnight_after(instant: datetime, days: int) -> datetime:
    """24:00 (Asia/Shanghai) of the ``days``-th day after ``instant``'s day, in UTC."""
    local = instant + timedelta(hours=8)
    day = date(local.year, local.month, local.day) + timedelta(days=days + 1)
    return datetime(day.year, day.month, day.day, tzinfo=instant.tzinfo) - timedelta(hours=8)


@dataclass
class AwardKit:
    """Runs a tender from publication to the opening record and seats its committee."""

    bench: Bench
    opening: OpeningKit = field(init=False)
    experts: list[str] = field(default_factory=list)    # party names of seated experts
    securities: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.opening = OpeningKit(self.bench)

    @property
    def client(self) -> Any:
        return self.bench.client

    @property
    def clock(self) -> Any:
        return self.bench.clock

    def h(self, party: str) -> dict[str, str]:
        return self.bench.headers(party)

    # ------------------------------------------------------------------ tender and bids

    def tender(self, **extra: Any) -> Tender:
        """A published tender (construction works by default) with a 3-of-4 policy."""
        extra.setdefault("evaluation_method", LOWEST_PRICE)
        extra.setdefault("bid_security", "10000.00")
        return self.opening.tender(**extra)

    def bid(self, tender: Tender, n: int, price: str, *, security: bool = True, **declared: Any) -> str:
        """Bidder ``n`` pays its security and submits a bid form; returns its org code."""
        name = self.opening.bidder(n)
        org = self.bench.org(name)
        if security:
            resp = self.client.post(f"{tender.base}/securities", headers=self.h(name),
                                    json={"lot": LOT, "amount": "10000.00", "payer_account": f"ACCT-{n}"})
            assert resp.status_code in (200, 201), resp.get_json()
        self.opening.bid(tender, n, price, plaintext=bid_form(tender.tender, LOT, org, price, **declared))
        return org

    def open(self, tender: Tender) -> dict[str, Any]:
        """Close at the deadline, release every share, decrypt and publish the record."""
        if self.clock.now() < tender.deadline:
            self.opening.close(tender)
        assert self.opening.agent(tender, "start").status_code == 200
        self.opening.release_all(tender, (1, 2, 3, 4))
        finish = self.opening.agent(tender, "finish")
        assert finish.status_code == 200, finish.get_json()
        return finish.get_json()["data"]

    def status(self, tender: Tender) -> str:
        return self.client.get(f"/api/v1/projects/{tender.id}").get_json()["data"]["status"]

    # ------------------------------------------------------------------ committee

    def expert_party(self, i: int) -> str:
        name = f"expert{i:02d}"
        if name not in self.bench.parties:
            self.bench.parties[name] = self.bench.world.user(name, "expert")
            self.bench.issued[name] = self.clock.now()  # logged in now: Bench renews from here
        return name

    def seat(self, tender: Tender, members: int = 5, first: int = 1) -> list[str]:
        """Seat ``members`` confirmed experts (no conflict) straight into the database:
        for the focused tests, which are about evaluation, not about the draw."""
        from core.db import db
        from trading.experts_models import CONFIRMED, MEMBER, CommitteeMember, Expert
        names = [self.expert_party(i) for i in range(first, first + members)]
        now = self.clock.now()
        with self.bench.world.app.app_context():
            ids = [f"E{name[-2:]}" for name in names]
            for expert_id, name in zip(ids, names):
                if db.session.get(Expert, expert_id) is None:
                    db.session.add(Expert(id=expert_id, name=f"专家{name[-2:]}", title="senior",
                                          field_since=date(2000, 1, 1), username=name,
                                          created_at=now, updated_at=now))
            db.session.flush()
            for slot, expert_id in enumerate(ids):
                db.session.add(CommitteeMember(project_id=tender.id, lot=LOT, expert_id=expert_id, attempt=1,
                                               role=MEMBER, seat_group=0, slot=slot,
                                               group_spec={"specialty": SPECIALTY, "regions": []},
                                               status=CONFIRMED, conflict=False, confirmed_at=now,
                                               declared_at=now, created_at=now))
            db.session.commit()
        self.experts = names
        return names

    def import_pool(self, size: int) -> None:
        """Import ``size`` qualified experts (accounts expert01..) through the pool endpoint."""
        rows = ["id,name,specialties,title,field_since,username"]
        for i in range(1, size + 1):
            name = self.expert_party(i)
            rows.append(f"E{i:02d},专家{i:02d},{SPECIALTY}01,senior,2000-01-01,{name}")
        resp = self.client.post("/api/v1/experts/import", headers=self.h("admin"),
                                data="\n".join(rows).encode("utf-8"), content_type="text/csv")
        assert resp.status_code == 201, resp.get_json()

    def commit_supervisor(self, tender: Tender) -> bytes:
        """The supervising body commits (before closing) as ``ebid draw commit`` would."""
        import hashlib
        secret = os.urandom(32)
        commitment = hashlib.sha256(b"ebid/v1 draw-commit\n" + secret).hexdigest()
        resp = self.client.post(f"{tender.base}/draws/commitments", headers=self.h("supervisor"),
                                json={"lot": LOT, "commitment": commitment})
        assert resp.status_code == 201, resp.get_json()
        return secret

    def draw(self, tender: Tender, secret: bytes, pool: int, seats: int = 5) -> list[str]:
        """Request the draw, reveal, and have each drawn expert confirm and declare."""
        resp = self.client.post(f"{tender.base}/draws", headers=self.h("agent"),
                                json={"lot": LOT, "groups": [{"specialty": SPECIALTY, "count": seats}]})
        assert resp.status_code == 201, resp.get_json()
        attempt = resp.get_json()["data"]["attempt"]
        resp = self.client.post(f"{tender.base}/draws/{attempt}/reveal", headers=self.h("supervisor"),
                                json={"lot": LOT, "secret": secret.hex()})
        assert resp.status_code == 200, resp.get_json()
        drawn = []
        for i in range(1, pool + 1):
            name = self.expert_party(i)
            mine = self.client.get("/api/v1/experts/me/committees", headers=self.h(name))
            assert mine.status_code == 200, mine.get_json()
            seats_of = mine.get_json()["data"]
            if any(s.get("status") == "invited" for s in seats_of):
                for path, body in (("confirm", {"lot": LOT}), ("declaration", {"lot": LOT, "conflict": False})):
                    r = self.client.post(f"{tender.base}/committee/{path}", headers=self.h(name), json=body)
                    assert r.status_code == 200, r.get_json()
                drawn.append(name)
        assert len(drawn) == seats
        self.experts = drawn
        return drawn

    # ------------------------------------------------------------------ evaluation

    def post(self, tender: Tender, path: str, party: str, body: dict[str, Any] | None = None) -> Any:
        return self.client.post(f"{tender.base}/{path}", headers=self.h(party), json=body or {})

    def score_all(self, tender: Tender, bidders: list[str], scores: dict[str, dict[str, str]],
                  experts: list[str] | None = None) -> None:
        """Every expert gives each bidder the scores in ``scores[bidder]`` (criterion → value)."""
        for name in experts or self.experts:
            items = [{"bid": b, "criterion": c, "value": v} for b in bidders for c, v in scores[b].items()]
            resp = self.post(tender, "evaluation/scores", name, {"scores": items})
            assert resp.status_code == 200, resp.get_json()

    def sign_all(self, tender: Tender, experts: list[str] | None = None) -> None:
        for name in experts or self.experts:
            resp = self.post(tender, "evaluation/report/sign", name)
            assert resp.status_code == 200, resp.get_json()

    def limit(self, tender: Tender, step: str, start: datetime) -> datetime:
        """The end of ``step``'s period counted from ``start`` by the project's pinned rules
        (holidays included: 2026's Qingming moves a last day)."""
        from core.db import db
        from trading import projects
        from trading.models import Project
        with self.bench.world.app.app_context():
            return projects.project_rules(db.session.get(Project, tender.id)).limits_for(step, start).at

    # ------------------------------------------------------------------ shortcuts

    def opened(self, prices: list[str], *, members: int = 5, **extra: Any) -> tuple[Tender, list[str]]:
        """A tender with one bid per price (bidders 1..n), opened, a committee seated."""
        tender = self.tender(**extra)
        orgs = [self.bid(tender, n, price) for n, price in enumerate(prices, start=1)]
        self.open(tender)
        self.seat(tender, members)
        return tender, orgs

    def reported(self, prices: list[str], **extra: Any) -> tuple[Tender, list[str]]:
        """Opened, evaluated by lowest price, computed and signed: the report is in."""
        tender, orgs = self.opened(prices, **extra)
        self.clock.set(at(hours=1))
        started = self.post(tender, "evaluation/start", "agent")
        assert started.status_code == 201, started.get_json()
        computed = self.post(tender, "evaluation/report", "agent")
        assert computed.status_code == 200, computed.get_json()
        self.sign_all(tender)
        return tender, orgs

    def publicised(self, prices: list[str], **extra: Any) -> tuple[Tender, list[str]]:
        """Reported, publicised for the rule's shortest period, the clock after its end."""
        tender, orgs = self.reported(prices, **extra)
        self.clock.set(at(hours=2))
        ends = self.limit(tender, "publicity", self.clock.now())
        resp = self.post(tender, "publicity", "agent", {"ends_at": ends.isoformat()})
        assert resp.status_code == 201, resp.get_json()
        self.clock.set(ends + timedelta(minutes=1))
        return tender, orgs

    def entries(self, action: str) -> list[dict[str, Any]]:
        return self.bench.entries(action)


def at(days: float = 0, hours: float = 0) -> datetime:
    """An instant after the bid deadline."""
    return DEADLINE + timedelta(days=days, hours=hours)


__all__ = ["AwardKit", "COMPREHENSIVE", "LOWEST_PRICE", "LOT", "T0", "DEADLINE", "at",
           "shanghai_midnight_after"]
