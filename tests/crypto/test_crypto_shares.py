"""HPKE-sealed share plaintexts and their digests (PROTOCOL §4), checked against an
independent RFC 9180 implementation that reproduces the RFC's own test vector."""
from __future__ import annotations

import hashlib
import hmac
import os
import struct

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crypto import shares
from crypto.errors import CryptoError
from crypto.keys import generate_private_key, raw_public_bytes

H = hashlib.sha256(b"a header").digest()


# --- RFC 9180 base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, written from the RFC ----

def _extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()


def _expand(prk: bytes, info: bytes, length: int) -> bytes:
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out, counter = out + block, counter + 1
    return out[:length]


def _labeled_extract(suite: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _extract(salt, b"HPKE-v1" + suite + label + ikm)


def _labeled_expand(suite: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return _expand(prk, struct.pack(">H", length) + b"HPKE-v1" + suite + label + info, length)


KEM_SUITE = b"KEM" + struct.pack(">H", 0x0020)


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def ref_shared_secret(dh: bytes, enc: bytes, pk_r: bytes) -> bytes:
    eae_prk = _labeled_extract(KEM_SUITE, b"", b"eae_prk", dh)
    return _labeled_expand(KEM_SUITE, eae_prk, b"shared_secret", enc + pk_r, 32)


def ref_key_schedule(shared: bytes, info: bytes, aead_id: int, key_size: int) -> tuple[bytes, bytes]:
    suite = b"HPKE" + struct.pack(">HHH", 0x0020, 0x0001, aead_id)
    context = (b"\x00" + _labeled_extract(suite, b"", b"psk_id_hash", b"")
               + _labeled_extract(suite, b"", b"info_hash", info))
    secret = _labeled_extract(suite, shared, b"secret", b"")
    return (_labeled_expand(suite, secret, b"key", context, key_size),
            _labeled_expand(suite, secret, b"base_nonce", context, 12))


def ref_open(sealed: bytes, private: X25519PrivateKey, info: bytes) -> bytes:
    enc, ct = sealed[:32], sealed[32:]
    shared = ref_shared_secret(private.exchange(X25519PublicKey.from_public_bytes(enc)), enc,
                               _raw(private.public_key()))
    key, nonce = ref_key_schedule(shared, info, 0x0002, 32)     # AES-256-GCM
    return AESGCM(key).decrypt(nonce, ct, b"")


def ref_seal(plaintext: bytes, public: X25519PublicKey, info: bytes) -> bytes:
    ephemeral = X25519PrivateKey.generate()
    enc = _raw(ephemeral.public_key())
    shared = ref_shared_secret(ephemeral.exchange(public), enc, _raw(public))
    key, nonce = ref_key_schedule(shared, info, 0x0002, 32)
    return enc + AESGCM(key).encrypt(nonce, plaintext, b"")


def test_reference_hpke_reproduces_rfc9180_a_1_1():
    # RFC 9180 A.1.1: the same KEM and KDF with AES-128-GCM (the RFC has no X25519/AES-256 vector)
    sk_r = X25519PrivateKey.from_private_bytes(bytes.fromhex(
        "4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8"))
    enc = bytes.fromhex("37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431")
    assert _raw(sk_r.public_key()).hex() == "3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d"
    shared = ref_shared_secret(sk_r.exchange(X25519PublicKey.from_public_bytes(enc)), enc, _raw(sk_r.public_key()))
    assert shared.hex() == "fe0e18c9f024ce43799ae393c7e8fe8fce9d218875e8227b0187c04e7d2ea1fc"
    key, nonce = ref_key_schedule(shared, b"Ode on a Grecian Urn", 0x0001, 16)
    assert (key.hex(), nonce.hex()) == ("4531685d41d65f03dc48f6b8302c05b0", "56d890e5accaaf011cff4b7d")
    ct = AESGCM(key).encrypt(nonce, b"Beauty is truth, truth beauty", b"Count-0")
    assert ct.hex() == ("f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a9"
                        "6d8770ac83d07bea87e13c512a")


# --- the protocol's shares ------------------------------------------------------------------

def test_info_string():
    assert shares.share_info(H, 3) == b"ebid/v1 share|" + H.hex().encode() + b"|3"
    assert shares.share_info(H, 12).endswith(b"|12")


def test_seal_open_round_trip_and_interop_with_the_reference():
    private = generate_private_key("x25519")
    plaintext = shares.share_plaintext(2, os.urandom(32))
    sealed = shares.seal_share(raw_public_bytes(private), H, 2, plaintext)
    assert len(sealed) == 81
    assert shares.open_share(private, H, 2, sealed) == plaintext
    # both directions against the independent implementation
    assert ref_open(sealed, private, b"ebid/v1 share|" + H.hex().encode() + b"|2") == plaintext
    theirs = ref_seal(plaintext, private.public_key(), b"ebid/v1 share|" + H.hex().encode() + b"|2")
    assert shares.open_share(private, H, 2, theirs) == plaintext


def test_a_sealed_share_opens_only_for_its_file_slot_and_key():
    private = generate_private_key("x25519")
    plaintext = shares.share_plaintext(1, os.urandom(32))
    sealed = shares.seal_share(private.public_key(), H, 1, plaintext)
    other_h = hashlib.sha256(b"another header").digest()
    for args in ((private, other_h, 1, sealed), (generate_private_key("x25519"), H, 1, sealed),
                 (private, H, 1, sealed[:-1] + bytes([sealed[-1] ^ 1])), (private, H, 1, bytes(32) + sealed[32:])):
        with pytest.raises(CryptoError) as info:
            shares.open_share(*args)
        assert info.value.code == "share_open_failed"
    # a different slot: wrong info, so it does not open either
    with pytest.raises(CryptoError) as info:
        shares.open_share(private, H, 2, sealed)
    assert info.value.code == "share_open_failed"
    for bad in (sealed[:-1], sealed + b"\x00"):
        with pytest.raises(CryptoError) as info:
            shares.open_share(private, H, 1, bad)
        assert info.value.code == "bad_share"


def test_plaintext_format_and_index_byte():
    y = os.urandom(32)
    assert shares.share_plaintext(7, y) == b"\x07" + y
    assert shares.parse_share_plaintext(b"\x07" + y, 7) == y
    for bad, i in ((b"\x07" + y, 6), (b"\x07" + y[:-1], 7), (b"\x07" + y + b"\x00", 7), (b"", 1), (b"\x00" + y, 0)):
        with pytest.raises(CryptoError) as info:
            shares.parse_share_plaintext(bad, i)
        assert info.value.code == "bad_share"
    # a bidder that sealed the wrong index byte: strict opening refuses, lenient returns the bytes
    private = generate_private_key("x25519")
    wrong = ref_seal(b"\x05" + y, private.public_key(), shares.share_info(H, 4))
    with pytest.raises(CryptoError) as info:
        shares.open_share(private, H, 4, wrong)
    assert info.value.code == "bad_share"
    assert shares.open_share(private, H, 4, wrong, strict=False) == b"\x05" + y


def test_digest():
    plaintext = shares.share_plaintext(1, bytes(32))
    assert shares.share_digest(H, plaintext) == hashlib.sha256(b"ebid/v1 share\n" + H + plaintext).hexdigest()
    with pytest.raises(ValueError):
        shares.share_digest(H.hex().encode(), plaintext)


def test_sealing_to_a_low_order_key_is_refused():
    with pytest.raises(CryptoError) as info:
        shares.seal_share(bytes(32), H, 1, shares.share_plaintext(1, bytes(32)))
    assert info.value.code == "bad_key"
