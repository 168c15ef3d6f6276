"""The opening policy (PROTOCOL §2): set by the manager from custodians' signed statements,
served byte for byte, frozen once a bid is in."""
from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from bidding.models import OpeningPolicy
from crypto import keys
from crypto.canonical import canonical_json
from crypto.policy import make_statement, parse_policy
from tests.bidding.helpers import Bench


def test_officials_policy_is_served_as_the_exact_canonical_bytes(bench: Bench) -> None:
    tender = bench.tender(mode="officials")
    raw = tender.policy_bytes
    policy = parse_policy(raw)  # verifies every statement, and that the bytes are canonical
    assert policy.tender == tender.tender and policy.threshold == 2 and policy.n == 3
    assert [c.role for c in policy.custodians] == ["agent", "custodian", "supervisor"]
    anonymous = bench.client.get(f"{tender.base}/policy")  # public once published
    assert anonymous.status_code == 200 and anonymous.mimetype == "application/json"
    assert anonymous.data == raw
    logged = bench.entries("policy.set")
    assert logged[-1]["data"]["policy_sha256"] == hashlib.sha256(raw).hexdigest()
    assert logged[-1]["data"]["mode"] == "officials"


@pytest.mark.parametrize("mode,n", [("bidder", 1), ("joint", 2)])
def test_bidder_decrypts_and_joint_modes(bench: Bench, mode: str, n: int) -> None:
    tender = bench.tender(mode=mode)
    policy = parse_policy(tender.policy_bytes)
    assert policy.n == n and policy.threshold == n and policy.has_bidder_role()


def test_draft_policy_is_not_public(bench: Bench) -> None:
    tender = bench.tender(publish=False)
    assert bench.client.get(f"{tender.base}/policy").status_code == 404
    assert bench.client.get(f"{tender.base}/policy", headers=bench.headers("agent")).data == tender.policy_bytes


def test_unsupported_modes_are_refused(bench: Bench) -> None:
    tender = bench.tender(policy=False, publish=False)
    one_official = bench.policy_body(tender, "officials", threshold=1)
    resp = bench.client.put(f"{tender.base}/policy", headers=bench.headers("agent"), json=one_official)
    assert resp.status_code == 422 and resp.get_json()["error"]["code"] == "policy_mode_unsupported"
    assert bench.count(OpeningPolicy) == 0


def test_statement_for_another_tender_is_refused(bench: Bench) -> None:
    tender = bench.tender(policy=False, publish=False)
    body = bench.policy_body(tender, "officials")
    x = keys.generate_private_key("x25519")
    body["custodians"][0] = make_statement("999", 1, "agent", keys.raw_public_bytes(x), bench.signing_key("agent"))
    resp = bench.client.put(f"{tender.base}/policy", headers=bench.headers("agent"), json=body)
    assert resp.status_code == 422 and resp.get_json()["error"]["code"] == "bad_statement"


def test_unregistered_signing_key_is_refused(bench: Bench) -> None:
    tender = bench.tender(policy=False, publish=False)
    body = bench.policy_body(tender, "officials")
    stranger = keys.generate_private_key("ed25519")  # never registered
    x = keys.generate_private_key("x25519")
    body["custodians"][1] = make_statement(tender.tender, 2, "custodian", keys.raw_public_bytes(x), stranger)
    resp = bench.client.put(f"{tender.base}/policy", headers=bench.headers("agent"), json=body)
    error = resp.get_json()["error"]
    assert resp.status_code == 422 and error["code"] == "unknown_key" and error["details"]["i"] == 2


def test_key_of_an_account_not_entitled_to_the_slot_is_refused(bench: Bench) -> None:
    tender = bench.tender(policy=False, publish=False)
    body = bench.policy_body(tender, "officials")
    x = keys.generate_private_key("x25519")
    # a bidder's registered key posing as the agent's custodian
    body["custodians"][0] = make_statement(tender.tender, 1, "agent", keys.raw_public_bytes(x),
                                           bench.signing_key("bidder"))
    resp = bench.client.put(f"{tender.base}/policy", headers=bench.headers("agent"), json=body)
    assert resp.status_code == 422 and resp.get_json()["error"]["code"] == "key_not_custodian"


def test_one_key_in_two_slots_is_refused(bench: Bench) -> None:
    tender = bench.tender(policy=False, publish=False)
    body = bench.policy_body(tender, "officials")
    x = keys.generate_private_key("x25519")
    body["custodians"][2] = make_statement(tender.tender, 3, "custodian", keys.raw_public_bytes(x),
                                           bench.signing_key("custodian"))
    resp = bench.client.put(f"{tender.base}/policy", headers=bench.headers("agent"), json=body)
    assert resp.status_code == 422 and resp.get_json()["error"]["code"] == "duplicate_custodian"


@pytest.mark.parametrize("who", ["tenderee", "bidder", "supervisor"])
def test_only_the_manager_sets_the_policy(bench: Bench, who: str) -> None:
    tender = bench.tender(policy=False, publish=False)
    body = bench.policy_body(tender, "officials")
    resp = bench.client.put(f"{tender.base}/policy", headers=bench.headers(who), json=body)
    assert resp.status_code in (403, 404)


def test_dry_run_checks_without_storing(bench: Bench) -> None:
    tender = bench.tender(policy=False, publish=False)
    body = bench.policy_body(tender, "joint")
    size = len(bench.entries())
    resp = bench.client.post(f"{tender.base}/policy", headers=bench.headers("agent"), json=body)
    data = resp.get_json()["data"]
    assert resp.status_code == 200 and data["mode"] == "joint"
    assert hashlib.sha256(canonical_json(data["policy"])).hexdigest() == data["policy_sha256"]
    assert bench.count(OpeningPolicy) == 0 and len(bench.entries()) == size


def test_policy_may_be_replaced_until_the_first_bid_then_is_frozen(bench: Bench) -> None:
    tender = bench.tender(mode="officials")
    first = tender.policy_bytes
    bench.set_policy(tender, "joint")  # published, no bid yet: still allowed
    assert tender.policy_bytes != first
    bench.submit(tender, "bidder", bench.seal(tender, "bidder"))
    resp = bench.client.put(f"{tender.base}/policy", headers=bench.headers("agent"),
                            json=bench.policy_body(tender, "officials"))
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "policy_frozen"
    assert bench.client.get(f"{tender.base}/policy").data == tender.policy_bytes


def test_policy_cannot_be_set_after_the_deadline(bench: Bench) -> None:
    tender = bench.tender(mode="officials")
    bench.clock.set(tender.deadline)
    resp = bench.client.put(f"{tender.base}/policy", headers=bench.headers("agent"),
                            json=bench.policy_body(tender, "joint"))
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "policy_frozen"


def test_a_tender_without_policy_refuses_bids(bench: Bench) -> None:
    tender = bench.tender(policy=False)
    # seal against a policy that was never published for this tender
    other = bench.tender(mode="officials")
    tender.policy_bytes = other.policy_bytes
    bench.clock.set(tender.deadline - timedelta(days=1))
    bid = bench.seal(tender, "bidder", header={"policy_sha256": parse_policy(other.policy_bytes).sha256})
    resp = bench.post_manifest(tender, "bidder", bid)
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "no_policy"
