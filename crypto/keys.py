"""Key ids and PEM key files for Ed25519 (signing) and X25519 (sealing) keys (PROTOCOL §1).

Private keys are PKCS#8 PEM, unencrypted or encrypted with a passphrase; public keys are
SubjectPublicKeyInfo PEM. Functions here turn keys into bytes and back; writing files
(and their permissions) is the caller's business.
"""
from __future__ import annotations

import hashlib
from typing import Literal, Union

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from crypto.canonical import b64decode
from crypto.errors import CryptoError

KeyKind = Literal["ed25519", "x25519"]
PrivateKey = Union[Ed25519PrivateKey, X25519PrivateKey]
PublicKey = Union[Ed25519PublicKey, X25519PublicKey]

_PRIVATE = {"ed25519": Ed25519PrivateKey, "x25519": X25519PrivateKey}
_PUBLIC = {"ed25519": Ed25519PublicKey, "x25519": X25519PublicKey}


def kid(raw_public_key: bytes) -> str:
    """The key id: the first 16 hex digits of SHA-256 of the raw 32-byte public key."""
    if not isinstance(raw_public_key, (bytes, bytearray)) or len(raw_public_key) != 32:
        raise CryptoError("bad_key", "a raw public key is 32 bytes")
    return hashlib.sha256(bytes(raw_public_key)).hexdigest()[:16]


def key_kind(key: PrivateKey | PublicKey) -> KeyKind:
    """``"ed25519"`` or ``"x25519"`` for a key object of either kind, public or private."""
    if isinstance(key, (Ed25519PrivateKey, Ed25519PublicKey)):
        return "ed25519"
    if isinstance(key, (X25519PrivateKey, X25519PublicKey)):
        return "x25519"
    raise CryptoError("bad_key", f"unsupported key type {type(key).__name__}")


def _check_kind(kind: str) -> None:
    if kind not in _PRIVATE:
        raise CryptoError("bad_key", f"unknown key kind {kind!r}; use ed25519 or x25519")


def generate_private_key(kind: KeyKind) -> PrivateKey:
    """A fresh private key of ``kind``."""
    _check_kind(kind)
    return _PRIVATE[kind].generate()


def raw_public_bytes(key: PrivateKey | PublicKey) -> bytes:
    """The raw 32-byte public key of a private or public key object."""
    key_kind(key)
    public = key.public_key() if isinstance(key, (Ed25519PrivateKey, X25519PrivateKey)) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: PrivateKey | PublicKey) -> str:
    """The key id of a key object (its public half)."""
    return kid(raw_public_bytes(key))


def dump_private_pem(key: PrivateKey, passphrase: bytes | None = None) -> bytes:
    """PKCS#8 PEM, encrypted with the best available scheme when a passphrase is given."""
    key_kind(key)
    if passphrase is not None and not passphrase:
        raise CryptoError("bad_passphrase", "the passphrase is empty")
    encryption = (serialization.BestAvailableEncryption(passphrase) if passphrase
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def dump_public_pem(key: PrivateKey | PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM of the public half of ``key``."""
    key_kind(key)
    public = key.public_key() if isinstance(key, (Ed25519PrivateKey, X25519PrivateKey)) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_pem(data: bytes, kind: KeyKind, passphrase: bytes | None = None) -> PrivateKey:
    """Load a PKCS#8 PEM private key of ``kind``.

    A passphrase given for an unencrypted key is ignored, so one passphrase file can
    serve a signing key and a sealing key of which only one is encrypted.
    """
    _check_kind(kind)
    if b"-----BEGIN PRIVATE KEY-----" not in data and b"-----BEGIN ENCRYPTED PRIVATE KEY-----" not in data:
        raise CryptoError("bad_key", "not a PKCS#8 PEM private key")
    encrypted = b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data
    if encrypted and not passphrase:
        raise CryptoError("passphrase_required", "the private key is encrypted; give a passphrase")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase if encrypted else None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        if encrypted:
            raise CryptoError("bad_passphrase", "the passphrase does not open this key (or the file is damaged)") from None
        raise CryptoError("bad_key", "unreadable PEM private key") from None
    if not isinstance(key, _PRIVATE[kind]):
        raise CryptoError("bad_key", f"expected an {kind} private key")
    return key


def load_public_pem(data: bytes, kind: KeyKind) -> PublicKey:
    """Load a SubjectPublicKeyInfo PEM public key of ``kind``."""
    _check_kind(kind)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CryptoError("bad_key", "unreadable PEM public key") from None
    if not isinstance(key, _PUBLIC[kind]):
        raise CryptoError("bad_key", f"expected an {kind} public key")
    return key


def load_public_raw(kind: KeyKind, raw: bytes) -> PublicKey:
    """A public key object from its raw 32 bytes."""
    _check_kind(kind)
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != 32:
        raise CryptoError("bad_key", "a raw public key is 32 bytes")
    try:
        return _PUBLIC[kind].from_public_bytes(bytes(raw))
    except ValueError:
        raise CryptoError("bad_key", f"not an {kind} public key") from None


def load_public_key_b64(kind: KeyKind, text: str) -> PublicKey:
    """A public key object from base64 of its raw 32 bytes (as in policies and registries)."""
    _check_kind(kind)
    return load_public_raw(kind, b64decode(text, f"{kind} public key", length=32))
