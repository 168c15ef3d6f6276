"""Shared builders for the crypto tests: parties with keys, policies, sealed files.

A uniquely named module rather than conftest.py, so test files can import it without
clashing with other packages' conftest modules.
"""
from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass


from crypto import keys, policy as policy_mod, sealed, shamir, shares
from crypto.manifest import make_manifest

TENDER = "T-2026-001"
LOT = "L1"
BIDDER = "B-acme"
CREATED = "2026-05-01T09:30:00.000Z"
ROLES = ["agent", "tenderee", "supervisor", "notary"]


@dataclass
class Party:
    """A custodian or bidder with a signing key and a per-tender X25519 key."""
    signing: object
    x25519: object

    @property
    def x25519_raw(self) -> bytes:
        return keys.raw_public_bytes(self.x25519)

    @property
    def x25519_kid(self) -> str:
        return keys.key_id(self.x25519)


def new_party() -> Party:
    return Party(keys.generate_private_key("ed25519"), keys.generate_private_key("x25519"))


def build_policy(parties: list[Party | None], threshold: int, tender: str = TENDER) -> bytes:
    """Policy bytes; ``None`` in ``parties`` stands for a role-bidder slot."""
    entries = []
    for i, party in enumerate(parties, start=1):
        if party is None:
            entries.append({"i": i, "role": "bidder"})
        else:
            entries.append(policy_mod.make_statement(tender, i, ROLES[(i - 1) % len(ROLES)], party.x25519_raw,
                                                     party.signing))
    return policy_mod.make_policy(tender, threshold, 3600, entries)


@dataclass
class SealedBid:
    ebid: bytes
    header_bytes: bytes
    header_hash: bytes
    result: sealed.SealResult
    bid_key: bytes
    manifest: dict
    share_plaintexts: dict[int, bytes]


def seal_bid(plaintext: bytes, policy_bytes: bytes, bidder_x25519_raw: bytes | None = None,
             file: str = "proposal.pdf", segment_size: int = sealed.SEGMENT_SIZE) -> SealedBid:
    """Seal ``plaintext`` the way the offline tool does, returning every intermediate value."""
    policy = policy_mod.parse_policy(policy_bytes)
    bidder_kid = keys.kid(bidder_x25519_raw) if bidder_x25519_raw else None
    header = sealed.build_header(policy.tender, LOT, BIDDER, file, policy.sha256, policy.threshold,
                                 policy_mod.header_custodians(policy, bidder_kid), os.urandom(8), CREATED,
                                 segment_size=segment_size)
    bid_key = os.urandom(32)
    out = io.BytesIO()
    result = sealed.seal_stream(io.BytesIO(plaintext), out, header, bid_key, segment_size=segment_size)
    h = bytes.fromhex(result.header_sha256)
    plaintexts, sealed_shares = {}, []
    for (i, y), (_, public) in zip(shamir.split(bid_key, policy.threshold, policy.n),
                                   policy_mod.seal_targets(policy, bidder_x25519_raw)):
        pt = shares.share_plaintext(i, y)
        plaintexts[i] = pt
        sealed_shares.append((i, shares.seal_share(public, h, i, pt), shares.share_digest(h, pt)))
    manifest = make_manifest(policy.tender, LOT, BIDDER, file, result.header_sha256, policy.sha256,
                             result.ciphertext_sha256, result.size, result.commitment, sealed_shares,
                             os.urandom(16), None)
    return SealedBid(out.getvalue(), header, h, result, bid_key, manifest, plaintexts)


# --- sealed files at a tiny segment size ---------------------------------------------------

SEG = 16
CUSTODIANS = [{"i": 1, "kid": "0123456789abcdef"}, {"i": 2, "kid": "fedcba9876543210"}]


def make_header(segment_size: int = SEG, **overrides) -> bytes:
    args = dict(tender="T-1", lot="L1", bidder="B1", file="proposal.pdf", policy_sha256="ab" * 32, threshold=2,
                custodians=CUSTODIANS, nonce_prefix=os.urandom(8), created="2026-05-01T09:30:00.000Z")
    args.update(overrides)
    return sealed.build_header(segment_size=segment_size, **args)


def seal(plaintext: bytes, segment_size: int = SEG, header: bytes | None = None, key: bytes | None = None):
    header = header or make_header(segment_size)
    key = key or os.urandom(32)
    out = io.BytesIO()
    result = sealed.seal_stream(io.BytesIO(plaintext), out, header, key, segment_size=segment_size)
    return out.getvalue(), result, key


def unseal(data: bytes, key: bytes, segment_size: int = SEG, **kwargs) -> bytes:
    out = io.BytesIO()
    sealed.open_stream(io.BytesIO(data), out, key, segment_size=segment_size, **kwargs)
    return out.getvalue()


def frames(data: bytes) -> tuple[bytes, list[bytes]]:
    """Split a sealed file into its header and segment ciphertexts."""
    assert data[:6] == b"EBID1\n"
    (hlen,) = struct.unpack(">I", data[6:10])
    header, pos, segments = data[10:10 + hlen], 10 + hlen, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        segments.append(data[pos + 4:pos + 4 + length])
        pos += 4 + length
    return header, segments


def assemble(header: bytes, segments: list[bytes]) -> bytes:
    return (b"EBID1\n" + struct.pack(">I", len(header)) + header
            + b"".join(struct.pack(">I", len(s)) + s for s in segments))
