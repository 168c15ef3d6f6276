"""Domain-separated Ed25519 signatures and signed envelopes (PROTOCOL §1).

Every signature covers ``DOMAIN || canonical_json(payload)``; the domain line keeps a
signature made for one purpose (a manifest) from being replayed as another (a release).
A signed object travels as ``{"<name>": payload, "signature": base64, "kid": kid}``.
"""
from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from crypto.canonical import b64decode, b64encode, canonical_json
from crypto.errors import CryptoError
from crypto.keys import kid, load_public_raw, raw_public_bytes

CUSTODIAN = b"ebid/v1 custodian\n"
MANIFEST = b"ebid/v1 manifest\n"
RECEIPT = b"ebid/v1 receipt\n"
WITHDRAW = b"ebid/v1 withdraw\n"
RELEASE = b"ebid/v1 release\n"

DOMAINS: frozenset[bytes] = frozenset({CUSTODIAN, MANIFEST, RECEIPT, WITHDRAW, RELEASE})

SIGNATURE_SIZE = 64


def _check_domain(domain: bytes) -> None:
    # any "ebid/v1 <label>\n" line, so other modules may add domains without editing this one
    if (not isinstance(domain, bytes) or not domain.startswith(b"ebid/v1 ")
            or not domain.endswith(b"\n") or domain.count(b"\n") != 1 or not domain.isascii()):
        raise ValueError(f"not a signature domain line: {domain!r}")


def _public_key(public_key: bytes | Ed25519PublicKey) -> Ed25519PublicKey:
    if isinstance(public_key, Ed25519PublicKey):
        return public_key
    return load_public_raw("ed25519", public_key)  # type: ignore[return-value]


def sign(private_key: Ed25519PrivateKey, domain: bytes, payload: Any) -> bytes:
    """The 64-byte Ed25519 signature over ``domain || canonical_json(payload)``."""
    _check_domain(domain)
    if not isinstance(private_key, Ed25519PrivateKey):
        raise CryptoError("bad_key", "signing needs an Ed25519 private key")
    return private_key.sign(domain + canonical_json(payload))


def verify(public_key: bytes | Ed25519PublicKey, domain: bytes, payload: Any, signature: bytes) -> None:
    """Raise ``bad_signature`` unless ``signature`` is valid for ``domain || canonical_json(payload)``."""
    _check_domain(domain)
    key = _public_key(public_key)
    message = domain + canonical_json(payload)
    if not isinstance(signature, (bytes, bytearray)) or len(signature) != SIGNATURE_SIZE:
        raise CryptoError("bad_signature", "an Ed25519 signature is 64 bytes")
    try:
        key.verify(bytes(signature), message)
    except InvalidSignature:
        raise CryptoError("bad_signature", "the signature does not verify") from None


def sign_object(name: str, payload: dict, private_key: Ed25519PrivateKey, domain: bytes) -> dict:
    """Sign ``payload`` and wrap it as ``{name: payload, "signature": b64, "kid": kid}``."""
    if name in ("signature", "kid"):
        raise ValueError(f"envelope name {name!r} clashes with the envelope's own keys")
    signature = sign(private_key, domain, payload)
    return {name: payload, "signature": b64encode(signature), "kid": kid(raw_public_bytes(private_key))}


def envelope_kid(envelope: Any, name: str) -> str:
    """Check the envelope's shape and return its ``kid``, to look the signer's key up.

    Raises ``bad_envelope`` unless the envelope has exactly the keys ``name``,
    ``signature`` and ``kid``, with an object payload, a 64-byte base64 signature
    and a 16-hex-digit kid.
    """
    if not isinstance(envelope, dict) or set(envelope) != {name, "signature", "kid"}:
        raise CryptoError("bad_envelope", f"a signed {name} has exactly the keys {name}, signature, kid")
    if not isinstance(envelope[name], dict):
        raise CryptoError("bad_envelope", f"the {name} must be an object")
    key_id = envelope["kid"]
    if not isinstance(key_id, str) or len(key_id) != 16 or any(c not in "0123456789abcdef" for c in key_id):
        raise CryptoError("bad_envelope", "kid must be 16 lower-case hex digits")
    try:
        b64decode(envelope["signature"], "signature", length=SIGNATURE_SIZE)
    except CryptoError as exc:
        raise CryptoError("bad_envelope", exc.message) from None
    return key_id


def verify_object(envelope: Any, name: str, domain: bytes, public_key_raw: bytes | Ed25519PublicKey) -> dict:
    """Verify a signed envelope against the signer's public key and return its payload.

    Raises ``bad_envelope`` for a wrong shape, ``unknown_kid`` when the envelope names
    a different key than the one given, ``bad_signature`` when the signature fails.
    """
    key_id = envelope_kid(envelope, name)
    key = _public_key(public_key_raw)
    if key_id != kid(raw_public_bytes(key)):
        raise CryptoError("unknown_kid", f"the {name} is signed by key {key_id}, not the key given")
    payload = envelope[name]
    verify(key, domain, payload, b64decode(envelope["signature"], "signature", length=SIGNATURE_SIZE))
    return payload
