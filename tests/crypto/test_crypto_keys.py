"""Key ids and PEM key files (PROTOCOL §1)."""
from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key as ec_key

from crypto.canonical import b64encode
from crypto.errors import CryptoError
from crypto.keys import (dump_private_pem, dump_public_pem, generate_private_key, key_id, kid, load_private_pem,
                         load_public_key_b64, load_public_pem, raw_public_bytes)


def test_kid_is_the_first_16_hex_digits_of_sha256():
    raw = bytes(range(32))
    assert kid(raw) == hashlib.sha256(raw).hexdigest()[:16] == "630dcd2966c43366"
    for bad in (b"", bytes(31), bytes(33), "00" * 32):
        with pytest.raises(CryptoError) as info:
            kid(bad)
        assert info.value.code == "bad_key"


@pytest.mark.parametrize("kind", ["ed25519", "x25519"])
@pytest.mark.parametrize("passphrase", [None, b"correct horse"])
def test_pem_round_trip(kind, passphrase):
    key = generate_private_key(kind)
    pem = dump_private_pem(key, passphrase)
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----" if passphrase else b"-----BEGIN PRIVATE KEY-----")
    loaded = load_private_pem(pem, kind, passphrase)
    assert raw_public_bytes(loaded) == raw_public_bytes(key)
    public = load_public_pem(dump_public_pem(key), kind)
    assert dump_public_pem(key).startswith(b"-----BEGIN PUBLIC KEY-----")
    assert key_id(public) == key_id(key) == kid(raw_public_bytes(key))
    assert raw_public_bytes(load_public_key_b64(kind, b64encode(raw_public_bytes(key)))) == raw_public_bytes(key)


def test_passphrase_errors():
    key = generate_private_key("x25519")
    pem = dump_private_pem(key, b"secret")
    for passphrase, code in ((None, "passphrase_required"), (b"wrong", "bad_passphrase")):
        with pytest.raises(CryptoError) as info:
            load_private_pem(pem, "x25519", passphrase)
        assert info.value.code == code
    # a passphrase for an unencrypted key is harmless: one file serves both keys
    plain = dump_private_pem(key)
    assert key_id(load_private_pem(plain, "x25519", b"unused")) == key_id(key)


def test_wrong_kind_and_format_refused():
    ed = generate_private_key("ed25519")
    ec = ec_key(SECP256R1())
    traditional = ed.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                   serialization.NoEncryption())
    cases = [
        lambda: load_private_pem(dump_private_pem(ed), "x25519"),
        lambda: load_public_pem(dump_public_pem(ed), "x25519"),
        lambda: load_private_pem(ec.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()), "ed25519"),
        lambda: load_private_pem(traditional, "ed25519"),
        lambda: load_private_pem(b"garbage", "ed25519"),
        lambda: load_private_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "ed25519"),
        lambda: load_public_pem(b"garbage", "ed25519"),
        lambda: load_public_key_b64("rsa", "AAAA"),
        lambda: raw_public_bytes(ec),
    ]
    for case in cases:
        with pytest.raises(CryptoError) as info:
            case()
        assert info.value.code == "bad_key"
    with pytest.raises(CryptoError) as info:
        load_public_key_b64("ed25519", b64encode(bytes(31)))
    assert info.value.code == "bad_base64"
    assert isinstance(load_private_pem(dump_private_pem(ed), "ed25519"), Ed25519PrivateKey)
