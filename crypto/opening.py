"""Pure helpers for the opener (开标): recover a bid key from released shares and say whose
fault a failure is (PROTOCOL §6, rulebook C4).

Shamir has no integrity, so every released share is checked against the digest the
bidder signed in its manifest: a mismatch is the custodian's doing, a digest-matching
share that is still unusable is the bidder's. With more than k good shares in, subsets
are tried until one satisfies the commitment.
"""
from __future__ import annotations

import hmac
import io
import itertools
from dataclasses import dataclass, field
from typing import Collection, Literal, Mapping

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from crypto.bidform import BID_FORM_NAME, parse_bid_form
from crypto.errors import CryptoError
from crypto.keys import key_id
from crypto.sealed import check_commitment, open_stream
from crypto.shamir import combine
from crypto.shares import open_share, parse_share_plaintext, share_digest

Fault = Literal["bidder", "custodian", "platform"]
Status = Literal["opened", "pending", "failed"]

# Whose fault each error met while opening a stored file is (§6). Anything the bidder
# signed or sealed is the bidder's; a stored file that differs from its receipt is the
# platform's; custodian faults come from share checks in recover_bid_key.
FAULT_BY_CODE: dict[str, Fault] = {
    "stored_file_mismatch": "platform",
    **{code: "bidder" for code in (
        "bad_magic", "bad_header", "header_too_large", "header_mismatch", "bad_framing", "truncated",
        "trailing_bytes", "segment_auth_failed", "commitment_mismatch", "bad_bid_form",
        "bid_form_mismatch", "bad_manifest", "manifest_mismatch", "policy_mismatch", "bad_signature",
        "bad_envelope", "unknown_kid", "bad_share", "share_open_failed", "not_enough_shares",
    )},
}


@dataclass(frozen=True)
class OpeningResult:
    """The outcome of :func:`recover_bid_key`.

    ``status`` is ``opened`` (``bid_key`` set), ``pending`` (wait for more releases) or
    ``failed`` (``fault`` and ``cause`` set). The index tuples record every share's fate.
    """
    status: Status
    bid_key: bytes | None = field(default=None, repr=False)  # keep K out of logs
    fault: Fault | None = None
    cause: str | None = None
    message: str = ""
    used: tuple[int, ...] = ()          # shares combined into the key
    valid: tuple[int, ...] = ()         # released, matching their digests, well formed
    bad: tuple[int, ...] = ()           # released but not matching their digests (custodian)
    malformed: tuple[int, ...] = ()     # matching their digests but not well formed (bidder)
    inconsistent: tuple[int, ...] = ()  # valid, but not on the polynomial that opened (bidder)
    missing: tuple[int, ...] = ()       # no release yet
    late: tuple[int, ...] = ()          # missing after the release window (their holders' fault)


def recover_bid_key(header_sha256: bytes, threshold: int, commitment: bytes,
                    share_digests: Mapping[int, str], released: Mapping[int, bytes],
                    bidder_slots: Collection[int] = (), window_closed: bool = False,
                    max_subsets: int = 10_000) -> OpeningResult:
    """Check released shares, combine ``threshold`` of them and check the commitment.

    ``share_digests`` is ``{i: digest hex}`` from the manifest (one per custodian);
    ``released`` is ``{i: 33-byte share}`` as released; ``bidder_slots`` are the indices
    whose custodian is the bidder itself; ``window_closed`` says the release window has
    passed, so a missing release is a fault rather than something to wait for.
    """
    unknown = set(released) - set(share_digests)
    if unknown:
        raise CryptoError("bad_share", f"releases for indices {sorted(unknown)} that the manifest does not have")
    valid: dict[int, bytes] = {}
    bad, malformed = [], []
    for i in sorted(released):
        share = released[i]
        if not hmac.compare_digest(share_digest(header_sha256, share), share_digests[i]):
            bad.append(i)
            continue
        try:
            valid[i] = parse_share_plaintext(share, i)
        except CryptoError:
            malformed.append(i)  # the bidder sealed exactly these bytes
    missing = tuple(i for i in sorted(share_digests) if i not in released)
    late = missing if window_closed else ()
    report = dict(valid=tuple(valid), bad=tuple(bad), malformed=tuple(malformed), missing=missing, late=late)

    if len(valid) >= threshold:
        tried = 0
        for subset in itertools.combinations(sorted(valid), threshold):
            tried += 1
            if tried > max_subsets:
                break
            key = combine([(i, valid[i]) for i in subset])
            try:
                check_commitment(key, header_sha256, commitment)
            except CryptoError:
                continue
            inconsistent = _inconsistent(subset, valid, key)
            return OpeningResult("opened", bid_key=key, used=subset, inconsistent=inconsistent, **report)
        if missing and not window_closed:
            return OpeningResult("pending", message="no set of shares released so far satisfies the commitment",
                                 **report)
        return OpeningResult("failed", fault="bidder", cause="commitment_mismatch",
                             message="shares matching the bidder's digests do not satisfy its commitment", **report)

    pending = () if window_closed else missing
    if len(valid) + len(pending) >= threshold:
        return OpeningResult("pending", message=f"{len(valid)} of {threshold} shares in", **report)
    custodian_failed = bad + [i for i in late if i not in bidder_slots]
    bidder_failed = malformed + [i for i in late if i in bidder_slots]
    # the bidder is at fault only when its own failures alone stood in the way: if the
    # custodians behaving would have been enough, or both were needed, it is theirs
    cured_by_custodians = len(valid) + len(pending) + len(custodian_failed) >= threshold
    cured_by_bidder = len(valid) + len(pending) + len(bidder_failed) >= threshold
    if custodian_failed and (cured_by_custodians or not cured_by_bidder):
        fault: Fault = "custodian"
        cause = "share_digest_mismatch" if bad else "not_enough_shares"
    else:
        fault, cause = "bidder", ("bad_share" if malformed else "not_enough_shares")
    return OpeningResult("failed", fault=fault, cause=cause,
                         message=f"{len(valid)} usable shares of the {threshold} needed", **report)


def _inconsistent(subset: tuple[int, ...], valid: Mapping[int, bytes], key: bytes) -> tuple[int, ...]:
    """Valid shares outside ``subset`` that do not lie on the polynomial that gave ``key``."""
    anchor = subset[:-1]
    result = []
    for i in sorted(set(valid) - set(subset)):
        if combine([(j, valid[j]) for j in anchor] + [(i, valid[i])]) != key:
            result.append(i)
    return tuple(result)


def fault_of(error: CryptoError) -> Fault:
    """Whose fault an error raised while opening a stored file is (§6)."""
    return FAULT_BY_CODE.get(error.code, "bidder")


def check_stored_file(stored_sha256: str, receipt_ciphertext_sha256: str) -> None:
    """The stored file must be the one the receipt acknowledged; otherwise the platform lost it."""
    if not hmac.compare_digest(stored_sha256, receipt_ciphertext_sha256):
        raise CryptoError("stored_file_mismatch", "the stored file's hash differs from the receipt's")


def decrypt_bid_form(ebid: bytes, bid_key: bytes, header_sha256: str, commitment: bytes) -> tuple[dict, dict]:
    """Open a sealed ``bid-form.json`` held in memory; return ``(header, form)``.

    Checks the header hash and commitment, decrypts, and requires the form's tender, lot
    and bidder to equal the header's. Any CryptoError here is the bidder's fault.
    """
    out = io.BytesIO()
    header = open_stream(io.BytesIO(ebid), out, bid_key, expected_header_sha256=header_sha256,
                         commitment=commitment)
    if header["file"] != BID_FORM_NAME:
        raise CryptoError("bad_bid_form", f"the file is {header['file']}, not {BID_FORM_NAME}")
    form = parse_bid_form(out.getvalue(), tender=header["tender"], lot=header["lot"], bidder=header["bidder"])
    return header, form


def custodian_proves_unopenable(x25519_private_raw: bytes, slot_kid: str, header_sha256: bytes, i: int,
                                sealed: bytes, digest: str) -> bool:
    """True when a published per-tender private key shows the bidder's sealed share is bad.

    The key must be the one the header names for slot ``i``; the share is then bad if it
    does not open, or opens to bytes that miss the digest or the index byte.
    """
    try:
        private = X25519PrivateKey.from_private_bytes(bytes(x25519_private_raw))
    except ValueError:
        return False
    if key_id(private) != slot_kid:
        return False
    try:
        plaintext = open_share(private, header_sha256, i, sealed, strict=False)
    except CryptoError:
        return True
    if not hmac.compare_digest(share_digest(header_sha256, plaintext), digest):
        return True
    try:
        parse_share_plaintext(plaintext, i)
    except CryptoError:
        return True
    return False
