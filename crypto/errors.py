"""One exception type for every refusal in the sealed-bid protocol.

Each error carries a stable snake_case ``code``: the server maps it to its HTTP error
shape and the opener maps it to whose fault a failure is (PROTOCOL §6), so codes are part
of the interface and must not be renamed.
"""
from __future__ import annotations

from typing import Any

# Every code raised under crypto/. A test checks that the source raises no other.
CODES: frozenset[str] = frozenset({
    # encodings (PROTOCOL §1)
    "bad_canonical_json",   # not canonical JSON, or a value outside the §1 subset
    "duplicate_key",        # a JSON object repeats a key
    "bad_base64",           # not strict, padded, standard base64 (or wrong length)
    "bad_hex",              # not lower-case hex of the expected length
    "bad_identifier",       # tender / lot / bidder / file outside the §1 pattern
    "bad_money",            # not a §1 decimal money string
    "bad_time",             # not YYYY-MM-DDTHH:MM:SS.mmmZ
    # keys and signatures
    "bad_key",              # unusable key bytes or PEM, or the wrong kind of key
    "bad_passphrase",       # an encrypted key that the passphrase does not open
    "passphrase_required",  # an encrypted key given without a passphrase
    "bad_envelope",         # a signed object without exactly {name, signature, kid}
    "bad_signature",
    "unknown_kid",          # the envelope names a key other than the one given
    # the sealed file (PROTOCOL §3)
    "bad_magic",
    "bad_header",
    "header_too_large",
    "header_mismatch",      # the header hash differs from the one expected
    "bad_framing",
    "truncated",
    "trailing_bytes",
    "segment_auth_failed",
    "commitment_mismatch",
    # shares (PROTOCOL §4)
    "bad_share",
    "share_open_failed",    # HPKE could not open a sealed share with the key given
    "share_digest_mismatch",
    "not_enough_shares",
    # policy (PROTOCOL §2)
    "bad_policy",
    "bad_statement",
    "bidder_key_required",  # the policy has a role-bidder custodian and no bidder key was given
    # documents (PROTOCOL §3, §5, §6)
    "bad_bid_form",
    "bid_form_mismatch",
    "bad_manifest",
    "manifest_mismatch",    # manifest vs header / upload
    "policy_mismatch",      # manifest or header vs the published policy
    "bad_withdrawal",
    "bad_release",
    "bad_receipt",
    # opening (PROTOCOL §6)
    "stored_file_mismatch", # the platform's stored file differs from its receipt
})


class CryptoError(Exception):
    """A refusal with a stable ``code`` (see :data:`CODES`) and a human message."""

    def __init__(self, code: str, message: str = "", **details: Any) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message or code
        self.details = details
