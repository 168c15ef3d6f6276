"""Domain-separated Ed25519 signatures and signed envelopes (PROTOCOL §1)."""
from __future__ import annotations

import pytest

from crypto import signing
from crypto.canonical import b64encode, canonical_json
from crypto.errors import CryptoError
from crypto.keys import generate_private_key, kid, raw_public_bytes

DOMAINS = [signing.CUSTODIAN, signing.MANIFEST, signing.RECEIPT, signing.WITHDRAW, signing.RELEASE]
PAYLOAD = {"tender": "T1", "i": 1, "nested": {"list": [1, "two", None]}}


def test_domain_lines_are_exact():
    assert [d.decode() for d in DOMAINS] == [
        "ebid/v1 custodian\n", "ebid/v1 manifest\n", "ebid/v1 receipt\n", "ebid/v1 withdraw\n", "ebid/v1 release\n"]


@pytest.mark.parametrize("domain", DOMAINS)
def test_sign_and_verify_each_domain(domain):
    key = generate_private_key("ed25519")
    public = raw_public_bytes(key)
    signature = signing.sign(key, domain, PAYLOAD)
    # the signature is plain Ed25519 over DOMAIN || canonical_json(payload)
    key.public_key().verify(signature, domain + canonical_json(PAYLOAD))
    signing.verify(public, domain, PAYLOAD, signature)
    envelope = signing.sign_object("doc", PAYLOAD, key, domain)
    assert set(envelope) == {"doc", "signature", "kid"} and envelope["kid"] == kid(public)
    assert signing.verify_object(envelope, "doc", domain, public) == PAYLOAD
    # the same signature under any other domain fails: no cross-purpose replay
    for other in DOMAINS:
        if other != domain:
            with pytest.raises(CryptoError) as info:
                signing.verify_object(envelope, "doc", other, public)
            assert info.value.code == "bad_signature"


def test_verify_object_failures():
    key, other = generate_private_key("ed25519"), generate_private_key("ed25519")
    public = raw_public_bytes(key)
    good = signing.sign_object("manifest", PAYLOAD, key, signing.MANIFEST)

    def code(envelope, public_key=public):
        with pytest.raises(CryptoError) as info:
            signing.verify_object(envelope, "manifest", signing.MANIFEST, public_key)
        return info.value.code

    assert code(good, raw_public_bytes(other)) == "unknown_kid"
    assert code({**good, "manifest": {**PAYLOAD, "i": 2}}) == "bad_signature"
    forged = signing.sign_object("manifest", PAYLOAD, other, signing.MANIFEST)
    assert code({**forged, "kid": good["kid"]}) == "bad_signature"
    assert code({**good, "extra": 1}) == "bad_envelope"
    assert code({k: v for k, v in good.items() if k != "kid"}) == "bad_envelope"
    assert code({"receipt": PAYLOAD, "signature": good["signature"], "kid": good["kid"]}) == "bad_envelope"
    assert code({**good, "manifest": [1]}) == "bad_envelope"
    assert code({**good, "kid": good["kid"].upper()}) == "bad_envelope"
    assert code({**good, "signature": b64encode(bytes(63))}) == "bad_envelope"
    assert code({**good, "signature": good["signature"].rstrip("=")}) == "bad_envelope"
    assert code([good]) == "bad_envelope"
    assert code({**good, "manifest": {**PAYLOAD, "f": 1.5}}) == "bad_canonical_json"


def test_envelope_kid_and_bad_domain():
    key = generate_private_key("ed25519")
    envelope = signing.sign_object("release", PAYLOAD, key, signing.RELEASE)
    assert signing.envelope_kid(envelope, "release") == kid(raw_public_bytes(key))
    with pytest.raises(ValueError):
        signing.sign(key, b"ebid/v1 release", PAYLOAD)      # no line end
    with pytest.raises(ValueError):
        signing.sign_object("kid", PAYLOAD, key, signing.RELEASE)
    with pytest.raises(CryptoError) as info:
        signing.sign(generate_private_key("x25519"), signing.RELEASE, PAYLOAD)
    assert info.value.code == "bad_key"
