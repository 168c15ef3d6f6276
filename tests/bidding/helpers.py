"""Shared helpers for the bidding tests: a published tender with an opening policy whose
custodians hold real keys, bids sealed in-process with the crypto core (tiny files), and
submission over HTTP exactly as a bidder's tool does it.

Usage::

    bench = Bench(world, clock)            # one user per role (world.standard())
    tender = bench.tender(mode="officials")  # published, policy set, clock at T0
    bid = bench.seal(tender, "bidder", price="1000.00")
    receipt = bench.submit(tender, "bidder", bid)  # {"receipt", "signature", "kid"}
    bench.clock.set(tender.deadline)         # the next request closes the tender

Each party's keys are made once per Bench: an Ed25519 signing key registered with its
account, and an X25519 key (per tender for custodians, as §2 requires; one per bidder for
role-bidder slots).
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from crypto import keys, sealed, shamir, shares
from crypto.bidform import BID_FORM_NAME, pad_bid_form
from crypto.canonical import b64encode, canonical_json, format_time
from crypto.manifest import make_manifest, make_withdrawal, manifest_sha256
from crypto.policy import header_custodians, make_statement, parse_policy, seal_targets
from crypto.signing import MANIFEST, WITHDRAW, sign_object

T0 = datetime.fromisoformat("2026-03-02T01:00:00+00:00")   # = tests.conftest.T0
DEADLINE = T0 + timedelta(days=30)                           # 2026-04-01 10:00 Asia/Shanghai
LOT = "L1"

# Custodian slots per mode: (role in the policy, the party holding it; None = role bidder).
MODES: dict[str, tuple[int, list[tuple[str, str | None]]]] = {
    "bidder": (1, [("bidder", None)]),
    "joint": (2, [("bidder", None), ("agent", "agent")]),
    "officials": (2, [("agent", "agent"), ("custodian", "custodian"), ("supervisor", "supervisor")]),
}


@dataclass
class Tender:
    """A published tender and what the tests need to seal to it."""

    id: int
    deadline: datetime
    lots: list[str]
    mode: str
    policy_bytes: bytes = b""
    # slot i -> (party name or None for role bidder, that custodian's per-tender X25519 key)
    custodians: dict[int, tuple[str | None, X25519PrivateKey | None]] = field(default_factory=dict)

    @property
    def tender(self) -> str:
        return str(self.id)

    @property
    def base(self) -> str:
        return f"/api/v1/tenders/{self.id}"


@dataclass
class SealedBid:
    """A sealed file with its signed manifest and every secret a test may want to check."""

    ebid: bytes
    envelope: dict[str, Any]
    manifest: dict[str, Any]
    manifest_sha256: str
    header_bytes: bytes
    bid_key: bytes
    share_plaintexts: dict[int, bytes]
    plaintext: bytes


def bid_form(tender: str, lot: str, bidder: str, price: str = "1000.00", **declared: Any) -> bytes:
    """A canonical ``bid-form.json`` padded to exactly 4096 bytes."""
    return pad_bid_form({"tender": tender, "lot": lot, "bidder": bidder, "price": price,
                         "currency": "CNY", **declared})


class Bench:
    """Drives the bidding endpoints as agents, bidders and custodians would."""

    def __init__(self, world: Any, clock: Any, parties: dict[str, Any] | None = None) -> None:
        self.world, self.client, self.clock = world, world.client, clock
        self.parties = parties or world.standard()
        self.signing: dict[str, Ed25519PrivateKey] = {}
        self.bidder_x25519: dict[str, X25519PrivateKey] = {}
        self.issued: dict[str, datetime] = {name: clock.now() for name in self.parties}

    # ----------------------------------------------------------------- parties and keys

    def party(self, name: str) -> Any:
        return self.parties[name]

    def headers(self, name: str) -> dict[str, str]:
        """Bearer headers; logs in again when the clock has moved (tokens last 15 minutes)."""
        party, now = self.parties[name], self.clock.now()
        issued = self.issued.get(name)
        if issued is not None and not timedelta(0) <= now - issued < timedelta(minutes=10):
            resp = self.client.post("/api/v1/auth/token", json={"username": party.username,
                                                                "password": party.password})
            assert resp.status_code == 200, resp.get_json()
            party.token = resp.get_json()["data"]["access_token"]
            issued = None
        if issued is None:
            self.issued[name] = now
        return party.headers

    def signing_key(self, name: str) -> Ed25519PrivateKey:
        """The party's Ed25519 key, registered with its account on first use."""
        if name not in self.signing:
            key = keys.generate_private_key("ed25519")
            resp = self.client.post("/api/v1/me/keys", headers=self.headers(name),
                                    json={"public_key": b64encode(keys.raw_public_bytes(key))})
            assert resp.status_code in (200, 201), resp.get_json()
            self.signing[name] = key  # type: ignore[assignment]
        return self.signing[name]

    def bidder_key(self, name: str) -> X25519PrivateKey:
        """The bidder's own X25519 key, for role-bidder slots."""
        if name not in self.bidder_x25519:
            self.bidder_x25519[name] = keys.generate_private_key("x25519")  # type: ignore[assignment]
        return self.bidder_x25519[name]

    def org(self, name: str) -> str:
        return self.parties[name].org

    # ----------------------------------------------------------------- tenders

    def create_project(self, lots: tuple[str, ...] = (LOT,), deadline: datetime = DEADLINE,
                       **extra: Any) -> int:
        body = {"title": "城区道路改造工程", "domain": "construction", "procedure": "open_tender",
                "category": "works", "tenderee": "TENDEREE1", "supervisor": "SUPERVISION1",
                "estimate": "1000000.00", "budget": "1000000.00", "max_price": "1000000.00",
                "schedule": {"documents_from": format_time(T0), "documents_until": format_time(T0 + timedelta(days=10)),
                             "bid_deadline": format_time(deadline)},
                "lots": [{"code": code, "title": f"标段 {code}"} for code in lots], **extra}
        resp = self.client.post("/api/v1/projects", headers=self.headers("agent"), json=body)
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()["data"]["id"]

    def publish(self, project_id: int) -> None:
        resp = self.client.post(f"/api/v1/projects/{project_id}/publish", headers=self.headers("agent"))
        assert resp.status_code == 200, resp.get_json()

    def policy_body(self, tender: Tender, mode: str, threshold: int | None = None) -> dict[str, Any]:
        """The PUT body for ``mode``, with fresh per-tender custodian keys and statements."""
        default_k, slots = MODES[mode]
        entries, tender.custodians = [], {}
        for i, (role, holder) in enumerate(slots, start=1):
            if holder is None:
                entries.append({"i": i, "role": "bidder"})
                tender.custodians[i] = (None, None)
                continue
            x25519 = keys.generate_private_key("x25519")
            entries.append(make_statement(tender.tender, i, role, keys.raw_public_bytes(x25519),
                                          self.signing_key(holder)))
            tender.custodians[i] = (holder, x25519)  # type: ignore[assignment]
        return {"threshold": threshold or default_k, "release_window_s": 3600, "custodians": entries}

    def set_policy(self, tender: Tender, mode: str | None = None) -> Any:
        mode = mode or tender.mode
        resp = self.client.put(f"{tender.base}/policy", headers=self.headers("agent"),
                               json=self.policy_body(tender, mode))
        assert resp.status_code == 200, resp.get_json()
        tender.mode = mode
        policy = self.client.get(f"{tender.base}/policy", headers=self.headers("agent"))
        assert policy.status_code == 200
        tender.policy_bytes = policy.data
        return resp

    def tender(self, mode: str = "officials", lots: tuple[str, ...] = (LOT,), deadline: datetime = DEADLINE,
               publish: bool = True, policy: bool = True, **extra: Any) -> Tender:
        """A tender with its policy set, published, the clock at T0 (bidding open)."""
        self.clock.set(T0)
        tender = Tender(id=self.create_project(lots, deadline, **extra), deadline=deadline, lots=list(lots),
                        mode=mode)
        if policy:
            self.set_policy(tender, mode)
        if publish:
            self.publish(tender.id)
        return tender

    # ----------------------------------------------------------------- sealing

    def seal(self, tender: Tender, bidder: str, *, price: str = "1000.00", file: str = BID_FORM_NAME,
             plaintext: bytes | None = None, lot: str | None = None, supersedes: str | None = None,
             nonce: bytes | None = None, header: dict[str, Any] | None = None,
             manifest: dict[str, Any] | None = None, signer: str | None = None,
             segment_size: int = sealed.SEGMENT_SIZE,
             mutate: Callable[[bytes], bytes] | None = None) -> SealedBid:
        """Seal one file as the offline tool does.

        ``header`` overrides header fields (tender, lot, bidder, file, policy_sha256,
        threshold, custodians) to build a file that lies about itself; ``manifest`` overrides
        manifest fields after the honest values are computed; ``mutate`` changes the file
        bytes after the manifest is made; ``signer`` signs with another party's key.
        """
        lot = lot or tender.lots[0]
        org = self.org(bidder)
        policy = parse_policy(tender.policy_bytes)
        bidder_x = self.bidder_key(bidder)
        bidder_raw = keys.raw_public_bytes(bidder_x) if policy.has_bidder_role() else None
        fields = {"tender": tender.tender, "lot": lot, "bidder": org, "file": file,
                  "policy_sha256": policy.sha256, "threshold": policy.threshold,
                  "custodians": header_custodians(policy, keys.kid(bidder_raw) if bidder_raw else None)}
        fields.update(header or {})
        header_bytes = sealed.build_header(fields["tender"], fields["lot"], fields["bidder"], fields["file"],
                                           fields["policy_sha256"], fields["threshold"], fields["custodians"],
                                           os.urandom(8), format_time(self.clock.now()), segment_size=segment_size)
        if plaintext is None:
            plaintext = bid_form(tender.tender, lot, org, price) if file == BID_FORM_NAME else os.urandom(5000)
        bid_key = os.urandom(32)
        out = io.BytesIO()
        result = sealed.seal_stream(io.BytesIO(plaintext), out, header_bytes, bid_key, segment_size=segment_size)
        h = bytes.fromhex(result.header_sha256)
        plaintexts, sealed_shares = {}, []
        for (i, y), (_, public) in zip(shamir.split(bid_key, policy.threshold, policy.n),
                                       seal_targets(policy, bidder_raw)):
            pt = shares.share_plaintext(i, y)
            plaintexts[i] = pt
            sealed_shares.append((i, shares.seal_share(public, h, i, pt), shares.share_digest(h, pt)))
        payload = make_manifest(tender.tender, lot, org, file, result.header_sha256, policy.sha256,
                                result.ciphertext_sha256, result.size, result.commitment, sealed_shares,
                                nonce or os.urandom(16), supersedes)
        payload.update(manifest or {})
        envelope = sign_object("manifest", payload, self.signing_key(signer or bidder), MANIFEST)
        ebid = out.getvalue()
        if mutate is not None:
            ebid = mutate(ebid)
        return SealedBid(ebid=ebid, envelope=envelope, manifest=payload, manifest_sha256=manifest_sha256(payload),
                         header_bytes=header_bytes, bid_key=bid_key, share_plaintexts=plaintexts,
                         plaintext=plaintext)

    # ----------------------------------------------------------------- HTTP

    def post_manifest(self, tender: Tender, bidder: str, bid: SealedBid | dict[str, Any]) -> Any:
        body = bid.envelope if isinstance(bid, SealedBid) else bid
        return self.client.post(f"{tender.base}/submissions", headers=self.headers(bidder),
                                data=canonical_json(body), content_type="application/json")

    def put_file(self, tender: Tender, bidder: str, bid: SealedBid, data: bytes | None = None) -> Any:
        return self.client.put(f"{tender.base}/uploads/{bid.manifest_sha256}", headers=self.headers(bidder),
                               data=bid.ebid if data is None else data, content_type="application/octet-stream")

    def submit(self, tender: Tender, bidder: str, bid: SealedBid) -> dict[str, Any]:
        """Post the manifest and upload the file; return the signed receipt (asserting 201s)."""
        first = self.post_manifest(tender, bidder, bid)
        assert first.status_code == 201, first.get_json()
        assert first.get_json()["data"]["upload"] == f"{tender.base}/uploads/{bid.manifest_sha256}"
        second = self.put_file(tender, bidder, bid)
        assert second.status_code == 201, second.get_json()
        return second.get_json()["data"]

    def withdrawal(self, tender: Tender, bidder: str, receipts: list[str], lot: str | None = None,
                   nonce: bytes | None = None) -> dict[str, Any]:
        payload = make_withdrawal(tender.tender, lot or tender.lots[0], self.org(bidder), receipts,
                                  nonce or os.urandom(16))
        return sign_object("withdrawal", payload, self.signing_key(bidder), WITHDRAW)

    def withdraw(self, tender: Tender, bidder: str, envelope: dict[str, Any]) -> Any:
        return self.client.post(f"{tender.base}/withdrawals", headers=self.headers(bidder),
                                data=canonical_json(envelope), content_type="application/json")

    # ----------------------------------------------------------------- reading the database

    def db(self, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(session)`` inside the app and return its result."""
        from core.db import db
        with self.world.app.app_context():
            try:
                return fn(db.session)
            finally:
                db.session.rollback()

    def count(self, model: Any, **where: Any) -> int:
        import sqlalchemy as sa

        def run(session: Any) -> int:
            query = sa.select(sa.func.count()).select_from(model)
            for name, value in where.items():
                query = query.where(getattr(model, name) == value)
            return session.execute(query).scalar_one()
        return self.db(run)

    def entries(self, action: str | None = None) -> list[dict[str, Any]]:
        """Every log entry (parsed), or those with ``action``."""
        import sqlalchemy as sa

        from audits.entries import parse_entry
        from audits.models import LogEntry

        def run(session: Any) -> list[dict[str, Any]]:
            rows = session.execute(sa.select(LogEntry.entry).order_by(LogEntry.index)).scalars()
            return [parse_entry(bytes(r)) for r in rows]
        found = self.db(run)
        return [e for e in found if action is None or e["action"] == action]

    def detail(self, index: int) -> dict[str, Any]:
        from audits.models import LogDetail
        return self.db(lambda s: dict(s.get(LogDetail, index).detail))
