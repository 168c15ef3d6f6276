"""Collusion indicators group bidders by what they share, in one pass (RULES B6):
a thousand bidders behind one address are one indicator, not half a million pairs."""
from __future__ import annotations

from types import SimpleNamespace as NS

from bidding.closing import _shared_groups


def _org(i: int, rep: str | None = None, parent: int | None = None) -> NS:
    return NS(id=i, legal_representative=rep, controlled_by_id=parent)


def test_many_bidders_behind_one_address_are_one_group():
    orgs = {i: _org(i) for i in range(1, 1001)}
    subs = [NS(bidder_org_id=i, client_address="10.0.0.1", ciphertext_sha256=f"{i:064x}")
            for i in orgs]
    groups = _shared_groups(orgs, set(orgs), subs, [])
    assert groups == [("same_client_address", frozenset(orgs))]


def test_each_kind_of_sharing_is_found_once():
    orgs = {1: _org(1, "张三"), 2: _org(2, "张三"), 3: _org(3, parent=1), 4: _org(4, parent=9),
            5: _org(5, parent=9), 6: _org(6)}
    subs = [NS(bidder_org_id=1, client_address="a", ciphertext_sha256="f1"),
            NS(bidder_org_id=2, client_address="b", ciphertext_sha256="same"),
            NS(bidder_org_id=6, client_address="c", ciphertext_sha256="same"),
            NS(bidder_org_id=3, client_address=None, ciphertext_sha256="f3")]
    securities = [NS(bidder_org_id=4, payer_account="6222"), NS(bidder_org_id=6, payer_account="6222")]
    groups = set(_shared_groups(orgs, set(orgs), subs, securities))
    assert groups == {
        ("same_legal_representative", frozenset({1, 2})),
        ("control_relationship", frozenset({1, 3})),      # a controller and what it controls
        ("control_relationship", frozenset({4, 5})),      # siblings under one controller
        ("identical_file", frozenset({2, 6})),
        ("same_payer_account", frozenset({4, 6})),
    }


def test_unrelated_bidders_give_nothing():
    orgs = {i: _org(i, f"rep{i}") for i in range(1, 6)}
    subs = [NS(bidder_org_id=i, client_address=f"10.0.0.{i}", ciphertext_sha256=f"{i:064x}") for i in orgs]
    assert _shared_groups(orgs, set(orgs), subs, []) == []
