"""The bidder's and custodians' side, in process: keys, a 3-of-4 policy, sealed bid forms.

Sealing here calls the same crypto functions, in the same order, as ``ebid seal``
(bidding/offline_cli.py); the bench does it in process because thousands of bidders
sealing is setup, not what item 1 measures (item 3 measures ``ebid seal`` itself).

A :class:`Cast` (custodians and bidders with their keys) is made once per size and reused
on SQLite and PostgreSQL: Ed25519 is deterministic, so the same custodian statements give
the same policy bytes for the same tender id, and the same sealed files stay valid.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from crypto import keys, sealed, shamir, shares
from crypto.bidform import BID_FORM_NAME, pad_bid_form
from crypto.canonical import canonical_json, format_time
from crypto.manifest import make_manifest, manifest_sha256
from crypto.policy import header_custodians, make_statement, parse_policy, seal_targets
from crypto.signing import MANIFEST, sign_object

THRESHOLD, CUSTODIANS = 3, 4
ROLES = ["agent", "tenderee", "supervisor", "notary"]
LOT = "1"
RELEASE_WINDOW_S = 3600


@dataclass
class Custodian:
    i: int
    role: str
    signing: Ed25519PrivateKey
    x25519: X25519PrivateKey


@dataclass
class Cast:
    """Four custodians and ``n`` bidders (codes B00000 …), each with an Ed25519 key."""

    custodians: list[Custodian]
    bidder_keys: list[Ed25519PrivateKey]
    sealed: dict[tuple[str, int], "SealedFile"] = field(default_factory=dict)   # (tender, i) -> bid

    @staticmethod
    def make(bidders: int) -> "Cast":
        custodians = [Custodian(i, ROLES[i - 1], keys.generate_private_key("ed25519"),  # type: ignore[arg-type]
                                keys.generate_private_key("x25519")) for i in range(1, CUSTODIANS + 1)]
        bidder_keys = [keys.generate_private_key("ed25519") for _ in range(bidders)]
        return Cast(custodians, bidder_keys)  # type: ignore[arg-type]

    @staticmethod
    def bidder_code(i: int) -> str:
        return f"B{i:05d}"

    def statements(self, tender: str) -> list[dict[str, Any]]:
        return [make_statement(tender, c.i, c.role, keys.raw_public_bytes(c.x25519), c.signing)
                for c in self.custodians]

    def policy_body(self, tender: str) -> dict[str, Any]:
        """The body of PUT /api/v1/tenders/{T}/policy: 3 of 4 officials."""
        return {"threshold": THRESHOLD, "release_window_s": RELEASE_WINDOW_S, "custodians": self.statements(tender)}


@dataclass
class SealedFile:
    """A sealed file and its signed manifest, as ``ebid seal`` writes them."""

    ebid: bytes | None                 # None for a file sealed to disk
    envelope: dict[str, Any]
    manifest_sha256: str
    header_sha256: str
    size: int

    @property
    def manifest_bytes(self) -> bytes:
        return canonical_json(self.envelope)


_POLICIES: dict[bytes, Any] = {}


def _policy(policy_bytes: bytes) -> Any:
    """The parsed policy (``ebid seal`` parses it once per run; so does a bidder's tool)."""
    if policy_bytes not in _POLICIES:
        _POLICIES.clear()
        _POLICIES[policy_bytes] = parse_policy(policy_bytes)
    return _POLICIES[policy_bytes]


def _seal(source: BinaryIO, dest: BinaryIO, policy_bytes: bytes, tender: str, bidder: str, file: str,
          signer: Ed25519PrivateKey, created: str, lot: str = LOT) -> tuple[dict[str, Any], Any]:
    policy = _policy(policy_bytes)
    bid_key = os.urandom(32)
    header = sealed.build_header(tender, lot, bidder, file, policy.sha256, policy.threshold,
                                 header_custodians(policy, None), os.urandom(8), created)
    result = sealed.seal_stream(source, dest, header, bid_key)
    h = bytes.fromhex(result.header_sha256)
    sealed_shares = []
    for (i, y), (_, public) in zip(shamir.split(bid_key, policy.threshold, policy.n), seal_targets(policy, None)):
        plaintext = shares.share_plaintext(i, y)
        sealed_shares.append((i, shares.seal_share(public, h, i, plaintext), shares.share_digest(h, plaintext)))
    manifest = make_manifest(tender, lot, bidder, file, result.header_sha256, policy.sha256,
                             result.ciphertext_sha256, result.size, result.commitment, sealed_shares,
                             os.urandom(16), None)
    return sign_object("manifest", manifest, signer, MANIFEST), result


def seal_bid_form(policy_bytes: bytes, tender: str, bidder: str, signer: Ed25519PrivateKey, price: str,
                  created: str, lot: str = LOT) -> SealedFile:
    form = pad_bid_form({"tender": tender, "lot": lot, "bidder": bidder, "price": price, "currency": "CNY",
                         "duration_days": 365})
    out = io.BytesIO()
    envelope, result = _seal(io.BytesIO(form), out, policy_bytes, tender, bidder, BID_FORM_NAME, signer, created,
                             lot)
    return SealedFile(out.getvalue(), envelope, manifest_sha256(envelope["manifest"]), result.header_sha256,
                      result.size)


def _seal_one(job: tuple[bytes, str, str, bytes, str, str, str]) -> SealedFile:
    policy_bytes, tender, bidder, private_raw, price, created, lot = job
    signer = Ed25519PrivateKey.from_private_bytes(private_raw)
    return seal_bid_form(policy_bytes, tender, bidder, signer, price, created, lot)


def seal_bid_forms(policy_bytes: bytes, tender: str, bidders: list[tuple[str, Ed25519PrivateKey, str]],
                   created: str, lots: list[str] | None = None) -> list[SealedFile]:
    """Seal many bid forms ``(bidder code, signing key, price)`` (bidder k in ``lots[k]``,
    default lot 1), on every CPU (setup work: each bidder seals on its own machine)."""
    from cryptography.hazmat.primitives import serialization
    raw = serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    jobs = [(policy_bytes, tender, code, key.private_bytes(*raw), price, created, lots[k] if lots else LOT)
            for k, (code, key, price) in enumerate(bidders)]
    if len(jobs) < 200:
        return [_seal_one(job) for job in jobs]
    import multiprocessing
    with multiprocessing.get_context("fork").Pool(os.cpu_count() or 1) as pool:
        return pool.map(_seal_one, jobs, chunksize=100)


def seal_file(path_in: str, path_out: str, policy_bytes: bytes, tender: str, bidder: str, file: str,
              signer: Ed25519PrivateKey, created: str) -> SealedFile:
    """Seal a large file from disk to disk, streaming."""
    with open(path_in, "rb") as source, open(path_out, "wb") as dest:
        envelope, result = _seal(source, dest, policy_bytes, tender, bidder, file, signer, created)
    return SealedFile(None, envelope, manifest_sha256(envelope["manifest"]), result.header_sha256, result.size)


def now_text() -> str:
    from datetime import datetime, timezone
    return format_time(datetime.now(timezone.utc))


def write_random_file(path: str, size: int, block: int = 16 << 20) -> None:
    """``size`` bytes of random-looking data (a random 16 MiB block repeated; nothing
    downstream compresses or deduplicates)."""
    pattern = os.urandom(min(block, max(size, 1)))
    with open(path, "wb") as out:
        left = size
        while left > 0:
            piece = pattern[:left]
            out.write(piece)
            left -= len(piece)
