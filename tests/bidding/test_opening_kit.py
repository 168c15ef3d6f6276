"""Builders for the release and opening tests (no tests here): a 3-of-4 tender with at
least three bidders, closing, and releases signed as each custodian's tool signs them.

Named ``test_opening_*`` only so it sits with the opening tests; import it as
``tests.bidding.test_opening_kit``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from audits import notes
from crypto import keys
from crypto.bidform import BID_FORM_NAME
from crypto.manifest import make_release
from crypto.policy import make_statement
from crypto.signing import RELEASE, sign_object
from tests.bidding.helpers import DEADLINE, LOT, T0, Bench, SealedBid, Tender

# slot -> (party holding it, role written in the policy); 3 of these 4 open a bid
OFFICIALS_4 = [("agent", "agent"), ("tenderee", "tenderee"), ("supervisor", "supervisor"),
               ("custodian", "notary")]
WINDOW_S = 3600


@dataclass
class Bid:
    """A submitted bid-form.json and who sealed it."""

    bidder: str
    sealed: SealedBid
    price: str

    @property
    def org(self) -> str:
        return self.sealed.manifest["bidder"]


@dataclass
class Checkpoint:
    size: int
    root_hex: str


@dataclass
class OpeningKit:
    """Runs tenders up to and through their opening, over HTTP, as each party would."""

    bench: Bench
    bids: dict[str, Bid] = field(default_factory=dict)

    @property
    def client(self) -> Any:
        return self.bench.client

    def bidder(self, n: int) -> str:
        """Bidder party ``n`` (1 and 2 exist in the standard world; more are made here)."""
        name = "bidder" if n == 1 else f"bidder{n}"
        if name not in self.bench.parties:
            org = self.bench.world.org(f"BIDDER{n}", "bidder", legal_representative=f"代表{n}")
            self.bench.parties[name] = self.bench.world.user(f"bidder{n}", "bidder", org=org)
        return name

    def tender(self, threshold: int = 3, window_s: int = WINDOW_S, **extra: Any) -> Tender:
        """A published construction tender with a k-of-4 officials policy."""
        bench = self.bench
        bench.clock.set(T0)
        tender = Tender(id=bench.create_project(**extra), deadline=DEADLINE, lots=[LOT], mode="officials")
        entries = []
        for i, (holder, role) in enumerate(OFFICIALS_4, start=1):
            x25519 = keys.generate_private_key("x25519")
            entries.append(make_statement(tender.tender, i, role, keys.raw_public_bytes(x25519),
                                          bench.signing_key(holder)))
            tender.custodians[i] = (holder, x25519)  # type: ignore[assignment]
        resp = self.client.put(f"{tender.base}/policy", headers=bench.headers("agent"),
                               json={"threshold": threshold, "release_window_s": window_s, "custodians": entries})
        assert resp.status_code == 200, resp.get_json()
        bench.publish(tender.id)
        tender.policy_bytes = self.client.get(f"{tender.base}/policy").data
        return tender

    def bid(self, tender: Tender, n: int, price: str, **seal: Any) -> Bid:
        """Bidder ``n`` seals and submits a bid form at ``price``."""
        name = self.bidder(n)
        sealed = self.bench.seal(tender, name, price=price, **seal)
        self.bench.submit(tender, name, sealed)
        bid = Bid(name, sealed, price)
        self.bids[bid.org] = bid
        return bid

    def close(self, tender: Tender) -> dict[str, Any]:
        """Move the clock to the deadline; the next request closes the tender."""
        self.bench.clock.set(tender.deadline)
        resp = self.client.get(f"{tender.base}/closing")
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()["data"]

    def checkpoint(self) -> Checkpoint:
        key = self.client.get("/api/v1/audit/key").get_data(as_text=True)
        note = self.client.get("/api/v1/audit/checkpoint").get_data(as_text=True)
        cp = notes.parse_and_verify_checkpoint(note, key)
        return Checkpoint(cp.size, cp.root.hex())

    def release(self, tender: Tender, slot: int, bid: Bid, *, share: bytes | None = None,
                file: str = BID_FORM_NAME, signer: str | None = None,
                checkpoint: Checkpoint | None = None, **overrides: Any) -> dict[str, Any]:
        """Custodian ``slot``'s signed release of its share of ``bid``; keywords override
        payload fields after it is built (to forge or tamper)."""
        holder, _ = tender.custodians[slot]
        cp = checkpoint or self.checkpoint()
        payload = make_release(tender.tender, bid.sealed.manifest["lot"], bid.org, file,
                               bid.sealed.manifest["header_sha256"], slot,
                               share if share is not None else bid.sealed.share_plaintexts[slot], cp.size,
                               cp.root_hex)
        payload.update(overrides)
        return sign_object("release", payload, self.bench.signing_key(signer or holder), RELEASE)

    def post_releases(self, tender: Tender, as_party: str, releases: list[dict[str, Any]]) -> Any:
        return self.client.post(f"{tender.base}/releases", headers=self.bench.headers(as_party),
                                json={"data": releases})

    def release_all(self, tender: Tender, slots: tuple[int, ...], bids: list[Bid] | None = None,
                    tamper: Callable[[int, Bid], bytes | None] | None = None) -> None:
        """Each slot in ``slots`` releases its share of every bid (``tamper`` may swap one)."""
        cp = self.checkpoint()
        for i in slots:
            holder, _ = tender.custodians[i]
            batch = [self.release(tender, i, bid, checkpoint=cp, share=tamper(i, bid) if tamper else None)
                     for bid in (bids or list(self.bids.values()))]
            resp = self.post_releases(tender, holder, batch)
            assert resp.status_code == 201, resp.get_json()

    def agent(self, tender: Tender, step: str) -> Any:
        return self.client.post(f"{tender.base}/opening/{step}", headers=self.bench.headers("agent"))

    def entries(self, action: str) -> list[dict[str, Any]]:
        return self.bench.entries(action)


def flip(share: bytes) -> bytes:
    """A share with one y-byte changed: it no longer matches its digest."""
    return share[:7] + bytes([share[7] ^ 0x5A]) + share[8:]
