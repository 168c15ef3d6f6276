"""Share plaintexts, their HPKE sealing to custodians, and their digests (PROTOCOL §4).

A share plaintext is 33 bytes: the custodian index ``i`` then the 32 Shamir y-bytes.
It is sealed with RFC 9180 HPKE base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
AES-256-GCM, with ``info = "ebid/v1 share|" + hex(H) + "|" + str(i)`` and empty aad, so a
sealed share only opens for the file and the custodian slot it was made for.
"""
from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from crypto.errors import CryptoError
from crypto.keys import load_public_raw

SHARE_PLAINTEXT_SIZE = 33
SEALED_SHARE_SIZE = 81          # enc (32) || ciphertext (33 + 16)
DIGEST_LABEL = b"ebid/v1 share\n"

_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


def _check_index(i: int) -> None:
    if type(i) is not int or not 1 <= i <= 255:
        raise CryptoError("bad_share", f"share index {i!r} is outside 1..255")


def _check_hash(header_sha256: bytes) -> bytes:
    if not isinstance(header_sha256, (bytes, bytearray)) or len(header_sha256) != 32:
        raise ValueError("the header hash is 32 raw bytes")
    return bytes(header_sha256)


def share_info(header_sha256: bytes, i: int) -> bytes:
    """The HPKE info string binding a sealed share to file H and custodian ``i``."""
    _check_index(i)
    return b"ebid/v1 share|" + _check_hash(header_sha256).hex().encode("ascii") + b"|" + str(i).encode("ascii")


def share_plaintext(i: int, y: bytes) -> bytes:
    """The 33-byte share plaintext ``i || y``."""
    _check_index(i)
    if not isinstance(y, (bytes, bytearray)) or len(y) != 32:
        raise CryptoError("bad_share", "share y-bytes are 32 bytes")
    return bytes([i]) + bytes(y)


def parse_share_plaintext(plaintext: bytes, i: int) -> bytes:
    """Return the 32 y-bytes; reject a length other than 33 or a first byte other than ``i``."""
    _check_index(i)
    if not isinstance(plaintext, (bytes, bytearray)) or len(plaintext) != SHARE_PLAINTEXT_SIZE:
        raise CryptoError("bad_share", "a share plaintext is 33 bytes")
    if plaintext[0] != i:
        raise CryptoError("bad_share", f"share plaintext is for index {plaintext[0]}, not {i}")
    return bytes(plaintext[1:])


def seal_share(x25519_public: bytes | X25519PublicKey, header_sha256: bytes, i: int, plaintext: bytes) -> bytes:
    """HPKE-seal a share plaintext to custodian ``i``'s X25519 key: 81 bytes ``enc || ct``."""
    parse_share_plaintext(plaintext, i)
    key = x25519_public if isinstance(x25519_public, X25519PublicKey) else load_public_raw("x25519", x25519_public)
    try:
        sealed = _SUITE.encrypt(bytes(plaintext), key, info=share_info(header_sha256, i))
    except ValueError:
        # a low-order public key makes the X25519 shared secret all zero
        raise CryptoError("bad_key", "cannot seal to this X25519 key") from None
    assert len(sealed) == SEALED_SHARE_SIZE
    return sealed


def open_share(x25519_private: X25519PrivateKey, header_sha256: bytes, i: int, sealed: bytes,
               strict: bool = True) -> bytes:
    """Open a sealed share with custodian ``i``'s private key; return the 33-byte plaintext.

    With ``strict`` (the default) a plaintext whose first byte is not ``i`` is refused.
    A custodian's tool may pass ``strict=False`` to release such a share anyway: it then
    matches the bidder's digest and the opener records the failure as the bidder's.
    """
    if not isinstance(x25519_private, X25519PrivateKey):
        raise CryptoError("bad_key", "opening a share needs an X25519 private key")
    if not isinstance(sealed, (bytes, bytearray)) or len(sealed) != SEALED_SHARE_SIZE:
        raise CryptoError("bad_share", "a sealed share is 81 bytes")
    try:
        plaintext = _SUITE.decrypt(bytes(sealed), x25519_private, info=share_info(header_sha256, i))
    except (InvalidTag, ValueError):
        raise CryptoError("share_open_failed", f"share {i} does not open with this key") from None
    if strict:
        parse_share_plaintext(plaintext, i)
    return plaintext


def share_digest(header_sha256: bytes, plaintext: bytes) -> str:
    """Hex SHA-256 of ``"ebid/v1 share\\n" || H || plaintext``: what the manifest commits to."""
    return hashlib.sha256(DIGEST_LABEL + _check_hash(header_sha256) + bytes(plaintext)).hexdigest()
