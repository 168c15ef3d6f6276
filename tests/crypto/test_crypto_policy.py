"""Opening policies and custodian statements (PROTOCOL §2)."""
from __future__ import annotations

import pytest

from crypto import policy as policy_mod
from crypto.canonical import b64decode, b64encode, canonical_json, parse_canonical, sha256_hex
from crypto.errors import CryptoError
from crypto.keys import kid, raw_public_bytes
from crypto.signing import CUSTODIAN, verify
from crypto_testkit import TENDER, build_policy, new_party


def policy_code(document) -> str:
    data = document if isinstance(document, bytes) else canonical_json(document)
    with pytest.raises(CryptoError) as info:
        policy_mod.parse_policy(data)
    return info.value.code


def test_statement_is_the_signed_entry_of_section_2(four_custodians):
    party = four_custodians[0]
    entry = policy_mod.make_statement(TENDER, 1, "agent", party.x25519_raw, party.signing)
    assert set(entry) == {"i", "role", "x25519", "kid", "signing_key", "signer", "statement"}
    assert entry["kid"] == kid(party.x25519_raw) and entry["signer"] == kid(raw_public_bytes(party.signing))
    payload = {"tender": TENDER, "i": 1, "role": "agent", "x25519": b64encode(party.x25519_raw)}
    verify(raw_public_bytes(party.signing), CUSTODIAN, payload, b64decode(entry["statement"]))


def test_parse_a_good_policy(policy_3_of_4, four_custodians):
    policy = policy_mod.parse_policy(policy_3_of_4)
    assert (policy.tender, policy.threshold, policy.n, policy.release_window_s) == (TENDER, 3, 4, 3600)
    assert policy.sha256 == sha256_hex(policy_3_of_4) == policy_mod.policy_sha256(policy_3_of_4)
    assert policy_mod.header_custodians(policy) == [{"i": i + 1, "kid": p.x25519_kid} for i, p in enumerate(four_custodians)]
    assert policy_mod.seal_targets(policy) == [(i + 1, p.x25519_raw) for i, p in enumerate(four_custodians)]


def test_bidder_role():
    agent, bidder = new_party(), new_party()
    data = build_policy([None, agent], 2)
    policy = policy_mod.parse_policy(data)
    assert policy.has_bidder_role() and policy.custodians[0].role == "bidder" and policy.bidder_slots == (1,)
    for call in (lambda: policy_mod.header_custodians(policy), lambda: policy_mod.seal_targets(policy)):
        with pytest.raises(CryptoError) as info:
            call()
        assert info.value.code == "bidder_key_required"
    assert policy_mod.header_custodians(policy, bidder.x25519_kid)[0] == {"i": 1, "kid": bidder.x25519_kid}
    assert policy_mod.seal_targets(policy, bidder.x25519_raw)[0] == (1, bidder.x25519_raw)
    one_of_one = policy_mod.parse_policy(build_policy([None], 1))
    assert one_of_one.n == 1 and one_of_one.threshold == 1
    with pytest.raises(CryptoError) as info:
        policy_mod.make_statement(TENDER, 1, "bidder", bidder.x25519_raw, bidder.signing)
    assert info.value.code == "bad_policy"


def test_a_forged_statement_is_refused(policy_3_of_4):
    document = parse_canonical(policy_3_of_4)
    mallory = new_party()
    # the platform swaps custodian 2's sealing key for its own, keeping the old statement
    swapped = dict(document["custodians"][1], x25519=b64encode(mallory.x25519_raw), kid=mallory.x25519_kid)
    assert policy_code({**document, "custodians": [document["custodians"][0], swapped] + document["custodians"][2:]}) \
        == "bad_statement"
    # ... or re-signs with its own signing key while claiming the custodian's
    forged = policy_mod.make_statement(TENDER, 2, "tenderee", mallory.x25519_raw, mallory.signing)
    forged = dict(forged, signing_key=document["custodians"][1]["signing_key"], signer=document["custodians"][1]["signer"])
    assert policy_code({**document, "custodians": [document["custodians"][0], forged] + document["custodians"][2:]}) \
        == "bad_statement"
    # a statement made for another tender, slot or role does not carry over
    entry = document["custodians"][0]
    for changed in ({**document, "tender": "T-other"},
                    {**document, "custodians": [dict(entry, role="notary")] + document["custodians"][1:]}):
        assert policy_code(changed) == "bad_statement"
    assert policy_code({**document, "custodians": [dict(entry, kid="0" * 16)] + document["custodians"][1:]}) \
        == "bad_statement"
    assert policy_code({**document, "custodians": [dict(entry, signer="0" * 16)] + document["custodians"][1:]}) \
        == "bad_statement"


def test_policy_shape_rejections(policy_3_of_4):
    document = parse_canonical(policy_3_of_4)
    entries = document["custodians"]
    bad = [
        {**document, "extra": 1},
        {k: v for k, v in document.items() if k != "release_window_s"},
        {**document, "threshold": 0}, {**document, "threshold": 5}, {**document, "threshold": True},
        {**document, "release_window_s": False},
        {**document, "custodians": []},
        {**document, "custodians": [entries[1], entries[0]] + entries[2:]},
        {**document, "custodians": entries[:2] + entries[3:]},
        {**document, "custodians": entries + [{"i": 5, "role": "bidder", "x25519": entries[0]["x25519"]}]},
        {**document, "custodians": entries + [{"i": 5, "role": "bidder"}, {"i": 6, "role": "bidder"}]},
        {**document, "custodians": [dict(entries[0], role="Agent")] + entries[1:]},
        {**document, "custodians": [dict(entries[0], extra=1)] + entries[1:]},
        {**document, "custodians": [dict(entries[0], x25519="AAAA")] + entries[1:]},
        {**document, "tender": "bad tender"},
    ]
    for document_ in bad:
        assert policy_code(document_) == "bad_policy", document_
    assert policy_code(policy_3_of_4 + b" ") == "bad_policy"
    assert policy_code(b"[]") == "bad_policy"


def test_one_key_in_two_slots_is_refused():
    party = new_party()
    entries = [policy_mod.make_statement(TENDER, i, "agent", party.x25519_raw, party.signing) for i in (1, 2)]
    assert policy_code({"tender": TENDER, "threshold": 2, "release_window_s": 60, "custodians": entries}) == "bad_policy"
