"""The opening policy of PROTOCOL §2: custodian statements and policy parsing.

A policy names the threshold k and the custodians 1..n. Each custodian other than the
role ``bidder`` signs a statement binding its per-tender X25519 key to (tender, i, role),
so a sealing tool can check that the platform did not swap a key in.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from crypto.canonical import b64decode, b64encode, canonical_json, check_identifier, parse_canonical, sha256_hex
from crypto.errors import CryptoError
from crypto.keys import kid, raw_public_bytes
from crypto.signing import CUSTODIAN, sign, verify

BIDDER = "bidder"
POLICY_KEYS = frozenset({"tender", "threshold", "release_window_s", "custodians"})
CUSTODIAN_KEYS = frozenset({"i", "role", "x25519", "kid", "signing_key", "signer", "statement"})
MAX_CUSTODIANS = 255
# the protocol names agent, tenderee, supervisor, notary and bidder; other short lower-case
# role words are accepted so a province can add one without a protocol change
_ROLE_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")


@dataclass(frozen=True)
class Custodian:
    """One policy entry. ``x25519``, ``kid``, ``signing_key`` and ``signer`` are None for role bidder."""
    i: int
    role: str
    x25519: bytes | None = None
    kid: str | None = None
    signing_key: bytes | None = None
    signer: str | None = None


@dataclass(frozen=True)
class Policy:
    """A parsed, verified policy together with its exact bytes and their hash."""
    tender: str
    threshold: int
    release_window_s: int
    custodians: tuple[Custodian, ...]
    raw: bytes
    sha256: str

    @property
    def n(self) -> int:
        """The number of custodians."""
        return len(self.custodians)

    @property
    def bidder_slots(self) -> tuple[int, ...]:
        """Indices whose share is sealed to the bidder's own key (for ``opening.recover_bid_key``)."""
        return tuple(c.i for c in self.custodians if c.role == BIDDER)

    def has_bidder_role(self) -> bool:
        """True when one custodian slot is the bidder itself."""
        return bool(self.bidder_slots)


def _statement_payload(tender: str, i: int, role: str, x25519_b64: str) -> dict:
    return {"tender": tender, "i": i, "role": role, "x25519": x25519_b64}


def _check_role(role: Any) -> str:
    if not isinstance(role, str) or not _ROLE_RE.fullmatch(role):
        raise CryptoError("bad_policy", f"role {role!r} must be a short lower-case word")
    return role


def make_statement(tender: str, i: int, role: str, x25519_public_raw: bytes,
                   signing_private_key: Ed25519PrivateKey) -> dict:
    """A custodian's signed policy entry (§2), as its own tool produces it."""
    check_identifier(tender, "tender")
    if type(i) is not int or not 1 <= i <= MAX_CUSTODIANS:
        raise CryptoError("bad_policy", "i must be 1..255")
    if _check_role(role) == BIDDER:
        raise CryptoError("bad_policy", "role bidder has no statement")
    x25519_b64 = b64encode(x25519_public_raw)
    signing_raw = raw_public_bytes(signing_private_key)
    signature = sign(signing_private_key, CUSTODIAN, _statement_payload(tender, i, role, x25519_b64))
    return {"i": i, "role": role, "x25519": x25519_b64, "kid": kid(x25519_public_raw),
            "signing_key": b64encode(signing_raw), "signer": kid(signing_raw),
            "statement": b64encode(signature)}


def verify_statement(tender: str, entry: Any) -> Custodian:
    """Check one non-bidder entry: exact shape, key ids, and the statement's signature."""
    if not isinstance(entry, dict) or set(entry) != CUSTODIAN_KEYS:
        raise CryptoError("bad_policy", "a custodian entry has exactly i, role, x25519, kid, signing_key, signer, statement")
    role = _check_role(entry["role"])
    try:
        x25519 = b64decode(entry["x25519"], "x25519", length=32)
        signing_key = b64decode(entry["signing_key"], "signing_key", length=32)
        statement = b64decode(entry["statement"], "statement", length=64)
    except CryptoError as exc:
        raise CryptoError("bad_policy", exc.message) from None
    if entry["kid"] != kid(x25519):
        raise CryptoError("bad_statement", f"custodian {entry['i']}: kid is not the id of its x25519 key")
    if entry["signer"] != kid(signing_key):
        raise CryptoError("bad_statement", f"custodian {entry['i']}: signer is not the id of its signing key")
    try:
        verify(signing_key, CUSTODIAN, _statement_payload(tender, entry["i"], role, entry["x25519"]), statement)
    except CryptoError as exc:
        raise CryptoError("bad_statement", f"custodian {entry['i']}: {exc.message}") from None
    return Custodian(i=entry["i"], role=role, x25519=x25519, kid=entry["kid"],
                     signing_key=signing_key, signer=entry["signer"])


def parse_policy(policy_bytes: bytes) -> Policy:
    """Parse canonical policy bytes and verify every custodian statement.

    Raises ``bad_policy`` for shape problems and ``bad_statement`` for an entry whose
    signature, ``kid`` or ``signer`` does not check out.
    """
    try:
        policy = parse_canonical(policy_bytes)
    except CryptoError as exc:
        raise CryptoError("bad_policy", exc.message) from None
    if not isinstance(policy, dict) or set(policy) != POLICY_KEYS:
        raise CryptoError("bad_policy", "a policy has exactly tender, threshold, release_window_s, custodians")
    try:
        tender = check_identifier(policy["tender"], "tender")
    except CryptoError as exc:
        raise CryptoError("bad_policy", exc.message) from None
    if type(policy["release_window_s"]) is not int:
        raise CryptoError("bad_policy", "release_window_s is a whole number of seconds")
    entries = policy["custodians"]
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_CUSTODIANS:
        raise CryptoError("bad_policy", "custodians must list 1..255 entries")
    custodians = []
    for position, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or type(entry.get("i")) is not int or entry["i"] != position:
            raise CryptoError("bad_policy", "custodians must be in ascending i = 1..n with no gaps")
        if entry.get("role") == BIDDER:
            if set(entry) != {"i", "role"}:
                raise CryptoError("bad_policy", "a bidder entry is exactly {i, role}")
            custodians.append(Custodian(i=position, role=BIDDER))
        else:
            custodians.append(verify_statement(tender, entry))
    if sum(c.role == BIDDER for c in custodians) > 1:
        raise CryptoError("bad_policy", "at most one custodian has role bidder")
    kids = [c.kid for c in custodians if c.kid is not None]
    if len(set(kids)) != len(kids):
        # one key in two slots would hand one holder two shares and confuse kid lookups
        raise CryptoError("bad_policy", "two custodians share one x25519 key")
    threshold = policy["threshold"]
    if type(threshold) is not int or not 1 <= threshold <= len(custodians):
        raise CryptoError("bad_policy", "threshold must be 1..n")
    return Policy(tender=tender, threshold=threshold, release_window_s=policy["release_window_s"],
                  custodians=tuple(custodians), raw=bytes(policy_bytes), sha256=sha256_hex(policy_bytes))


def make_policy(tender: str, threshold: int, release_window_s: int, entries: list[dict]) -> bytes:
    """Assemble canonical policy bytes from custodian entries, and check them by parsing."""
    data = canonical_json({"tender": tender, "threshold": threshold,
                           "release_window_s": release_window_s, "custodians": entries})
    parse_policy(data)
    return data


def policy_sha256(policy_bytes: bytes) -> str:
    """Hex SHA-256 of the policy exactly as published."""
    return sha256_hex(policy_bytes)


def seal_targets(policy: Policy, bidder_x25519_raw: bytes | None = None) -> list[tuple[int, bytes]]:
    """``(i, x25519 public key)`` for every custodian; role bidder gets the bidder's own key."""
    targets = []
    for custodian in policy.custodians:
        if custodian.role == BIDDER:
            if bidder_x25519_raw is None:
                raise CryptoError("bidder_key_required", "the policy seals a share to the bidder's own X25519 key")
            kid(bidder_x25519_raw)  # checks the length
            targets.append((custodian.i, bytes(bidder_x25519_raw)))
        else:
            assert custodian.x25519 is not None
            targets.append((custodian.i, custodian.x25519))
    return targets


def header_custodians(policy: Policy, bidder_x25519_kid: str | None = None) -> list[dict]:
    """The header's ``custodians`` list ``[{"i", "kid"}]``; role bidder uses the bidder's key id."""
    result = []
    for custodian in policy.custodians:
        if custodian.role == BIDDER:
            if bidder_x25519_kid is None:
                raise CryptoError("bidder_key_required", "the policy seals a share to the bidder's own X25519 key")
            result.append({"i": custodian.i, "kid": bidder_x25519_kid})
        else:
            result.append({"i": custodian.i, "kid": custodian.kid})
    return result
