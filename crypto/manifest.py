"""Signed documents of PROTOCOL §5-§6: manifests, receipts, withdrawals and releases.

Builders return payload dicts (sign them with ``crypto.signing.sign_object``); checkers
validate a payload's exact shape and formats. Checks that need the database (registered
keys, used nonces, live receipts, the deadline) belong to the server, not here.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from crypto.canonical import (b64decode, b64encode, canonical_json, check_hex, check_identifier,
                              format_time, parse_time, sha256_hex)
from crypto.errors import CryptoError
from crypto.policy import BIDDER, Policy
from crypto.sealed import header_hash, parse_header
from crypto.shares import SEALED_SHARE_SIZE, SHARE_PLAINTEXT_SIZE

MANIFEST_KEYS = frozenset({"tender", "lot", "bidder", "file", "header_sha256", "policy_sha256",
                           "ciphertext_sha256", "size", "commitment", "shares", "nonce", "supersedes"})
RECEIPT_KEYS = frozenset({"receipt", "tender", "lot", "bidder", "file", "manifest_sha256",
                          "ciphertext_sha256", "received_at", "log_index", "detail_salt"})
WITHDRAWAL_KEYS = frozenset({"tender", "lot", "bidder", "receipts", "nonce"})
RELEASE_KEYS = frozenset({"tender", "lot", "bidder", "file", "header_sha256", "i", "share",
                          "checkpoint_size", "checkpoint_root"})
NONCE_SIZE = 16
SALT_SIZE = 32


def _recode(code: str, check: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a field check, reporting its failure under the document's own error code."""
    try:
        return check(*args, **kwargs)
    except CryptoError as exc:
        raise CryptoError(code, exc.message) from None


def _check_shape(code: str, payload: Any, keys: frozenset[str], what: str) -> dict:
    if not isinstance(payload, dict) or set(payload) != keys:
        raise CryptoError(code, f"a {what} has exactly the keys {', '.join(sorted(keys))}")
    try:
        canonical_json(payload)
    except CryptoError as exc:
        raise CryptoError(code, exc.message) from None
    return payload


def _check_ids(code: str, payload: dict, fields: Iterable[str]) -> None:
    for field in fields:
        _recode(code, check_identifier, payload[field], field)


def _check_int(code: str, value: Any, field: str, minimum: int = 0) -> int:
    if type(value) is not int or value < minimum:
        raise CryptoError(code, f"{field} must be an integer >= {minimum}")
    return value


# --- manifest -----------------------------------------------------------------------------

def make_manifest(tender: str, lot: str, bidder: str, file: str, header_sha256: str, policy_sha256: str,
                  ciphertext_sha256: str, size: int, commitment: bytes,
                  shares: list[tuple[int, bytes, str]], nonce: bytes, supersedes: str | None = None) -> dict:
    """The §5 manifest payload; ``shares`` is ``[(i, sealed 81 bytes, digest hex), ...]``."""
    manifest = {
        "tender": tender, "lot": lot, "bidder": bidder, "file": file,
        "header_sha256": header_sha256, "policy_sha256": policy_sha256,
        "ciphertext_sha256": ciphertext_sha256, "size": size, "commitment": b64encode(commitment),
        "shares": [{"i": i, "sealed": b64encode(sealed), "digest": digest}
                   for i, sealed, digest in sorted(shares, key=lambda s: s[0])],
        "nonce": b64encode(nonce), "supersedes": supersedes,
    }
    return check_manifest(manifest)


def check_manifest(manifest: Any) -> dict:
    """Structural checks of a manifest payload; raises ``bad_manifest``."""
    _check_shape("bad_manifest", manifest, MANIFEST_KEYS, "manifest")
    _check_ids("bad_manifest", manifest, ("tender", "lot", "bidder", "file"))
    for field in ("header_sha256", "policy_sha256", "ciphertext_sha256"):
        _recode("bad_manifest", check_hex, manifest[field], field)
    _check_int("bad_manifest", manifest["size"], "size", minimum=1)
    _recode("bad_manifest", b64decode, manifest["commitment"], "commitment", length=32)
    _recode("bad_manifest", b64decode, manifest["nonce"], "nonce", length=NONCE_SIZE)
    if manifest["supersedes"] is not None:
        _recode("bad_manifest", check_hex, manifest["supersedes"], "supersedes")
    shares = manifest["shares"]
    if not isinstance(shares, list) or not 1 <= len(shares) <= 255:
        raise CryptoError("bad_manifest", "shares must list 1..255 entries")
    previous = 0
    for share in shares:
        if not isinstance(share, dict) or set(share) != {"i", "sealed", "digest"}:
            raise CryptoError("bad_manifest", "each share is exactly {i, sealed, digest}")
        if type(share["i"]) is not int or share["i"] <= previous or share["i"] > 255:
            raise CryptoError("bad_manifest", "shares must be in strictly ascending i within 1..255")
        previous = share["i"]
        _recode("bad_manifest", b64decode, share["sealed"], "sealed", length=SEALED_SHARE_SIZE)
        _recode("bad_manifest", check_hex, share["digest"], "digest")
    return manifest


def manifest_sha256(manifest: dict) -> str:
    """The receipt id: hex SHA-256 of the canonical manifest payload."""
    return sha256_hex(canonical_json(manifest))


def manifest_shares(manifest: dict) -> dict[int, tuple[bytes, str]]:
    """``{i: (sealed bytes, digest hex)}`` of a checked manifest."""
    return {s["i"]: (b64decode(s["sealed"], "sealed"), s["digest"]) for s in manifest["shares"]}


def check_manifest_against_header(manifest: dict, header_bytes: bytes, policy: Policy) -> dict:
    """Cross-check a manifest, the uploaded header and the published policy; return the header.

    Raises ``bad_header`` for a malformed header, ``manifest_mismatch`` when the manifest
    and the header disagree, ``policy_mismatch`` when either departs from the policy.
    """
    check_manifest(manifest)
    header = parse_header(header_bytes)
    if manifest["header_sha256"] != header_hash(header_bytes).hex():
        raise CryptoError("manifest_mismatch", "header_sha256 is not the hash of the uploaded header")
    for field in ("tender", "lot", "bidder", "file", "policy_sha256"):
        if manifest[field] != header[field]:
            raise CryptoError("manifest_mismatch", f"the manifest's {field} differs from the header's")
    if manifest["tender"] != policy.tender or manifest["policy_sha256"] != policy.sha256:
        raise CryptoError("policy_mismatch", "the file is not sealed under the published policy")
    if header["threshold"] != policy.threshold or len(header["custodians"]) != policy.n:
        raise CryptoError("policy_mismatch", "the header's threshold or custodians differ from the policy")
    for entry, custodian in zip(header["custodians"], policy.custodians):
        # a role-bidder slot carries the bidder's own key id, which the policy does not know
        if custodian.role != BIDDER and entry["kid"] != custodian.kid:
            raise CryptoError("policy_mismatch", f"custodian {custodian.i}'s key differs from the policy")
    if [s["i"] for s in manifest["shares"]] != [c.i for c in policy.custodians]:
        raise CryptoError("policy_mismatch", "the manifest must carry one share per custodian")
    return header


def check_manifest_against_upload(manifest: dict, ciphertext_sha256: str, size: int) -> None:
    """The upload's hash and size must be those the manifest signed."""
    if manifest["ciphertext_sha256"] != ciphertext_sha256 or manifest["size"] != size:
        raise CryptoError("manifest_mismatch", "the upload's hash or size differs from the manifest")


# --- receipt ------------------------------------------------------------------------------

def make_receipt(manifest: dict, received_at: datetime | str, log_index: int, detail_salt: bytes) -> dict:
    """The §5 receipt payload for a stored manifest (sign with domain RECEIPT)."""
    receipt_id = manifest_sha256(manifest)
    receipt = {
        "receipt": receipt_id, "tender": manifest["tender"], "lot": manifest["lot"],
        "bidder": manifest["bidder"], "file": manifest["file"], "manifest_sha256": receipt_id,
        "ciphertext_sha256": manifest["ciphertext_sha256"],
        "received_at": received_at if isinstance(received_at, str) else format_time(received_at),
        "log_index": log_index, "detail_salt": b64encode(detail_salt),
    }
    return check_receipt(receipt)


def check_receipt(receipt: Any) -> dict:
    """Structural checks of a receipt payload; raises ``bad_receipt``."""
    _check_shape("bad_receipt", receipt, RECEIPT_KEYS, "receipt")
    _check_ids("bad_receipt", receipt, ("tender", "lot", "bidder", "file"))
    for field in ("receipt", "manifest_sha256", "ciphertext_sha256"):
        _recode("bad_receipt", check_hex, receipt[field], field)
    if receipt["receipt"] != receipt["manifest_sha256"]:
        raise CryptoError("bad_receipt", "the receipt id is the manifest_sha256")
    _recode("bad_receipt", parse_time, receipt["received_at"], "received_at")
    _check_int("bad_receipt", receipt["log_index"], "log_index")
    _recode("bad_receipt", b64decode, receipt["detail_salt"], "detail_salt", length=SALT_SIZE)
    return receipt


# --- withdrawal ---------------------------------------------------------------------------

def make_withdrawal(tender: str, lot: str, bidder: str, receipts: list[str], nonce: bytes) -> dict:
    """The §5 withdrawal payload (sign with domain WITHDRAW)."""
    return check_withdrawal({"tender": tender, "lot": lot, "bidder": bidder,
                             "receipts": list(receipts), "nonce": b64encode(nonce)})


def check_withdrawal(withdrawal: Any) -> dict:
    """Structural checks of a withdrawal payload; raises ``bad_withdrawal``."""
    _check_shape("bad_withdrawal", withdrawal, WITHDRAWAL_KEYS, "withdrawal")
    _check_ids("bad_withdrawal", withdrawal, ("tender", "lot", "bidder"))
    receipts = withdrawal["receipts"]
    if not isinstance(receipts, list) or not receipts:
        raise CryptoError("bad_withdrawal", "receipts must list at least one receipt id")
    for receipt_id in receipts:
        _recode("bad_withdrawal", check_hex, receipt_id, "receipt")
    if len(set(receipts)) != len(receipts):
        raise CryptoError("bad_withdrawal", "a receipt is listed twice")
    _recode("bad_withdrawal", b64decode, withdrawal["nonce"], "nonce", length=NONCE_SIZE)
    return withdrawal


# --- release ------------------------------------------------------------------------------

def make_release(tender: str, lot: str, bidder: str, file: str, header_sha256: str, i: int, share: bytes,
                 checkpoint_size: int, checkpoint_root: str) -> dict:
    """The §6 release payload of one opened share (sign with domain RELEASE)."""
    return check_release({"tender": tender, "lot": lot, "bidder": bidder, "file": file,
                          "header_sha256": header_sha256, "i": i, "share": b64encode(share),
                          "checkpoint_size": checkpoint_size, "checkpoint_root": checkpoint_root})


def check_release(release: Any) -> dict:
    """Structural checks of a release payload; raises ``bad_release``.

    ``checkpoint_root`` is lower-case hex (PROTOCOL §1: hashes are hex unless said otherwise).
    """
    _check_shape("bad_release", release, RELEASE_KEYS, "release")
    _check_ids("bad_release", release, ("tender", "lot", "bidder", "file"))
    _recode("bad_release", check_hex, release["header_sha256"], "header_sha256")
    _recode("bad_release", check_hex, release["checkpoint_root"], "checkpoint_root")
    if type(release["i"]) is not int or not 1 <= release["i"] <= 255:
        raise CryptoError("bad_release", "i must be 1..255")
    _check_int("bad_release", release["checkpoint_size"], "checkpoint_size", minimum=1)
    # the share's index byte is not checked here: the opener checks it after the digest,
    # so a wrong byte is attributed to the bidder (digest matches) or the custodian (not)
    _recode("bad_release", b64decode, release["share"], "share", length=SHARE_PLAINTEXT_SIZE)
    return release


def release_share(release: dict) -> bytes:
    """The 33 share bytes of a checked release."""
    return b64decode(release["share"], "share", length=SHARE_PLAINTEXT_SIZE)
