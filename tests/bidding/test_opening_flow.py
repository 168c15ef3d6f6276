"""The opening ceremony over HTTP (PROTOCOL §6; rulebook C1–C6): start, decrypt, finish,
the published record and keys, objections, C2, and two agents starting at once."""
from __future__ import annotations

import io
import threading
from datetime import timedelta
from typing import Any

import pytest

from bidding.models import OpeningResult, OpeningSession
from crypto.bidform import parse_bid_form
from crypto.canonical import b64decode, canonical_json, sha256_hex
from crypto.sealed import open_stream
from tests.bidding.helpers import Bench, bid_form
from tests.bidding.test_opening_kit import WINDOW_S, OpeningKit, flip


@pytest.fixture
def kit(bench: Bench) -> OpeningKit:
    return OpeningKit(bench)


PRICES = {1: "900000.00", 2: "880000.50", 3: "910000.00"}


def _tender_with_bids(kit: OpeningKit, *, wrong_tender_form: bool = False):
    tender = kit.tender()
    bids = [kit.bid(tender, n, price) for n, price in PRICES.items()]
    if wrong_tender_form:
        # header and manifest right, but the sealed form names another tender
        org = kit.bench.org(kit.bidder(4))
        bids.append(kit.bid(tender, 4, "1.00", plaintext=bid_form("999", "L1", org, "1.00")))
    return tender, bids


def _status(kit: OpeningKit, tender: Any) -> str:
    return kit.client.get(f"/api/v1/projects/{tender.id}").get_json()["data"]["status"]


def _bids_by_org(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["bidder"]: b for b in record["bids"]}


def test_the_whole_ceremony_publishes_prices_and_whose_fault(kit: OpeningKit):
    tender, bids = _tender_with_bids(kit, wrong_tender_form=True)
    kit.close(tender)
    assert _status(kit, tender) == "closed"
    start = kit.agent(tender, "start")
    assert start.status_code == 200, start.get_json()
    assert _status(kit, tender) == "opening"
    kit.release_all(tender, (1, 2, 3))

    # within the window with slot 4 missing: nothing decrypted is shown, finishing waits
    early = kit.agent(tender, "decrypt").get_json()["data"]
    assert early["disclosed"] is False
    assert all("price" not in f and "status" not in f for f in early["files"])
    refused = kit.agent(tender, "finish")
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "release_window_open"
    assert kit.client.get(f"{tender.base}/opening-record").status_code == 404
    assert kit.client.get(f"{tender.base}/bid-keys").status_code == 404

    kit.bench.clock.set(tender.deadline + timedelta(seconds=WINDOW_S))
    shown = kit.agent(tender, "decrypt").get_json()["data"]
    assert shown["disclosed"] is True
    finish = kit.agent(tender, "finish")
    assert finish.status_code == 200, finish.get_json()
    assert _status(kit, tender) == "evaluation"

    record = kit.client.get(f"{tender.base}/opening-record").get_json()["data"]
    assert record == finish.get_json()["data"]
    by_org = _bids_by_org(record)
    for bid in bids[:3]:
        entry = by_org[bid.org]
        assert (entry["status"], entry["decryption"], entry["price"], entry["currency"]) == (
            "opened", "opened", bid.price, "CNY")
        assert entry["files"][0]["shares_used"] == [1, 2, 3]
        assert entry["files"][0]["shares_missing"] == [4]
    wrong = by_org[bids[3].org]
    assert (wrong["status"], wrong["fault"], wrong["cause"], wrong["price"]) == (
        "revoked", "bidder", "bid_form_mismatch", None)
    published = kit.entries("opening.published")
    assert len(published) == 1
    assert published[0]["data"]["record_sha256"] == sha256_hex(canonical_json(record))

    keys = kit.client.get(f"{tender.base}/bid-keys").get_json()["data"]
    assert sorted(k["bidder"] for k in keys) == sorted(b.org for b in bids[:3])  # opened forms only
    for item in keys:
        assert item["file"] == "bid-form.json"
        ebid = kit.client.get(item["ebid"].replace("http://localhost", ""))
        assert ebid.status_code == 200
        out = io.BytesIO()
        header = open_stream(io.BytesIO(ebid.data), out, b64decode(item["key"], "key", length=32))
        form = parse_bid_form(out.getvalue(), tender=tender.tender, lot=header["lot"], bidder=header["bidder"])
        assert form["price"] == kit.bids[item["bidder"]].price


def test_every_share_in_discloses_before_the_window_ends(kit: OpeningKit):
    tender, _ = _tender_with_bids(kit)
    kit.close(tender)
    kit.agent(tender, "start")
    kit.release_all(tender, (1, 2, 3, 4))
    data = kit.agent(tender, "decrypt").get_json()["data"]
    assert data["disclosed"] is True
    assert sorted(f["price"] for f in data["files"]) == sorted(PRICES.values())
    assert kit.agent(tender, "finish").status_code == 200


def test_a_bad_share_among_more_than_k_is_named_and_the_opening_goes_on(kit: OpeningKit):
    tender, bids = _tender_with_bids(kit)
    kit.close(tender)
    kit.agent(tender, "start")
    target = bids[0]
    kit.release_all(tender, (1, 2, 3, 4),
                    tamper=lambda i, bid: flip(bid.sealed.share_plaintexts[i]) if (i, bid) == (2, target) else None)
    assert kit.agent(tender, "finish").status_code == 200
    by_org = _bids_by_org(kit.client.get(f"{tender.base}/opening-record").get_json()["data"])
    entry = by_org[target.org]
    assert entry["status"] == "opened" and entry["price"] == target.price
    assert entry["files"][0]["shares_mismatched"] == [2]
    assert 2 not in entry["files"][0]["shares_used"]
    assert all(by_org[b.org]["status"] == "opened" for b in bids)


def test_k_minus_one_shares_do_not_open_and_are_the_custodians_fault_after_the_window(kit: OpeningKit):
    tender, bids = _tender_with_bids(kit)
    kit.close(tender)
    kit.agent(tender, "start")
    kit.release_all(tender, (1, 2, 3), bids=bids[1:])
    kit.release_all(tender, (1, 2), bids=bids[:1])
    kit.agent(tender, "decrypt")
    assert kit.bench.count(OpeningResult) == 2   # the short bid is still pending
    kit.bench.clock.set(tender.deadline + timedelta(seconds=WINDOW_S))
    assert kit.agent(tender, "finish").status_code == 200
    entry = _bids_by_org(kit.client.get(f"{tender.base}/opening-record").get_json()["data"])[bids[0].org]
    # C4: not the bidder's fault, so treated as withdrawn (its security is refunded)
    assert (entry["status"], entry["fault"], entry["cause"], entry["price"]) == (
        "withdrawn", "custodian", "not_enough_shares", None)
    assert entry["files"][0]["shares_missing"] == [3, 4]
    keys = kit.client.get(f"{tender.base}/bid-keys").get_json()["data"]
    assert bids[0].org not in {k["bidder"] for k in keys}


def test_fewer_than_three_bids_means_no_opening_and_the_project_fails(kit: OpeningKit):
    tender = kit.tender()
    kit.bid(tender, 1, "1.00")
    kit.bid(tender, 2, "2.00")
    kit.close(tender)
    resp = kit.agent(tender, "start")
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["data"]["status"] == "failed"
    assert _status(kit, tender) == "failed"
    not_opened = kit.entries("opening.not_opened")
    assert not_opened[0]["data"] == {"rule": "C2", "min_bids": 3, "bids": [{"lot": "L1", "bids": 2}], "outcome": "retender"}
    failed = kit.entries("project.fail")
    assert "C2" in failed[0]["data"]["reason"]
    decrypt = kit.agent(tender, "decrypt")
    assert decrypt.status_code == 409 and decrypt.get_json()["error"]["code"] == "opening_closed"


def test_the_opening_waits_for_the_deadline_and_for_the_agent(kit: OpeningKit):
    tender, _ = _tender_with_bids(kit)
    kit.bench.clock.set(tender.deadline - timedelta(milliseconds=1))
    early = kit.agent(tender, "start")
    assert early.status_code == 403 and early.get_json()["error"]["code"] == "tender_not_closed"
    kit.bench.clock.set(tender.deadline)
    other = kit.client.post(f"{tender.base}/opening/start", headers=kit.bench.headers("tenderee"))
    assert other.status_code == 403 and other.get_json()["error"]["code"] == "not_manager"
    assert [e["data"]["code"] for e in kit.entries("opening.refused")] == ["tender_not_closed", "not_manager"]
    assert kit.agent(tender, "start").status_code == 200
    again = kit.agent(tender, "start")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "opening_already_started"


def test_two_agents_starting_at_once_one_wins(kit: OpeningKit):
    tender, _ = _tender_with_bids(kit)
    kit.close(tender)
    second = kit.bench.world.user("agent2", "agent", org="AGENT1")
    app = kit.bench.world.app
    barrier = threading.Barrier(2)
    answers: list[tuple[int, str | None]] = []

    def start(headers: dict[str, str]) -> None:
        client = app.test_client()
        barrier.wait()
        resp = client.post(f"{tender.base}/opening/start", headers=headers)
        body = resp.get_json()
        answers.append((resp.status_code, body.get("error", {}).get("code")))

    threads = [threading.Thread(target=start, args=(h,)) for h in (kit.bench.headers("agent"), second.headers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [(200, None), (409, "opening_already_started")]
    assert kit.bench.count(OpeningSession) == 1
    assert len(kit.entries("project.start_opening")) == 1


def test_objections_are_raised_answered_and_recorded(kit: OpeningKit):
    tender, bids = _tender_with_bids(kit)
    kit.close(tender)
    before = kit.client.post(f"{tender.base}/opening/objections", headers=kit.bench.headers("bidder"),
                             json={"data": {"text": "too early"}})
    assert before.status_code == 409 and before.get_json()["error"]["code"] == "opening_not_started"
    kit.agent(tender, "start")
    raised = kit.client.post(f"{tender.base}/opening/objections", headers=kit.bench.headers("bidder"),
                             json={"data": {"text": "第2号投标人的密封时间有疑问"}})
    assert raised.status_code == 201, raised.get_json()
    objection = raised.get_json()["data"]
    assert objection["bidder"] == bids[0].org and objection["answer"] is None
    outsider = kit.client.post(f"{tender.base}/opening/objections", headers=kit.bench.headers("expert"),
                               json={"data": {"text": "x"}})
    assert outsider.status_code == 403 and outsider.get_json()["error"]["code"] == "not_a_bidder"

    kit.release_all(tender, (1, 2, 3, 4))
    blocked = kit.agent(tender, "finish")
    assert blocked.status_code == 409 and blocked.get_json()["error"]["code"] == "objections_unanswered"
    by_bidder = kit.client.post(f"{tender.base}/opening/objections/{objection['id']}/answer",
                                headers=kit.bench.headers("bidder"), json={"data": {"text": "no"}})
    assert by_bidder.status_code == 403
    answer = kit.client.post(f"{tender.base}/opening/objections/{objection['id']}/answer",
                             headers=kit.bench.headers("agent"), json={"data": {"text": "已核实，密封时间在截止前"}})
    assert answer.status_code == 200 and answer.get_json()["data"]["answer"] == "已核实，密封时间在截止前"
    twice = kit.client.post(f"{tender.base}/opening/objections/{objection['id']}/answer",
                            headers=kit.bench.headers("agent"), json={"data": {"text": "again"}})
    assert twice.status_code == 409 and twice.get_json()["error"]["code"] == "objection_answered"
    assert kit.agent(tender, "finish").status_code == 200
    record = kit.client.get(f"{tender.base}/opening-record").get_json()["data"]
    assert [(o["bidder"], o["answer"]) for o in record["objections"]] == [(bids[0].org, "已核实，密封时间在截止前")]
    assert len(kit.entries("opening.objection_raised")) == 1
    assert len(kit.entries("opening.objection_answered")) == 1
    late = kit.client.post(f"{tender.base}/opening/objections", headers=kit.bench.headers("bidder"),
                           json={"data": {"text": "after"}})
    assert late.status_code == 409 and late.get_json()["error"]["code"] == "opening_closed"


def test_keys_of_files_other_than_the_bid_form_are_never_published(kit: OpeningKit):
    tender, bids = _tender_with_bids(kit)
    proposal = kit.bench.seal(tender, "bidder", file="proposal.pdf")
    kit.bench.submit(tender, "bidder", proposal)
    kit.close(tender)
    kit.agent(tender, "start")
    cp = kit.checkpoint()
    for i in (1, 2, 3, 4):
        holder, _ = tender.custodians[i]
        batch = [kit.release(tender, i, bid, checkpoint=cp) for bid in bids]
        from crypto.manifest import make_release
        from crypto.signing import RELEASE, sign_object
        payload = make_release(tender.tender, "L1", bids[0].org, "proposal.pdf", proposal.manifest["header_sha256"],
                               i, proposal.share_plaintexts[i], cp.size, cp.root_hex)
        batch.append(sign_object("release", payload, kit.bench.signing_key(holder), RELEASE))
        assert kit.post_releases(tender, holder, batch).status_code == 201
    assert kit.agent(tender, "finish").status_code == 200
    record = kit.client.get(f"{tender.base}/opening-record").get_json()["data"]
    files = {f["file"]: f["status"] for f in _bids_by_org(record)[bids[0].org]["files"]}
    assert files == {"bid-form.json": "opened", "proposal.pdf": "opened"}
    keys = kit.client.get(f"{tender.base}/bid-keys").get_json()["data"]
    assert {k["file"] for k in keys} == {"bid-form.json"} and len(keys) == 3
    stored = kit.bench.db(lambda s: s.query(OpeningResult).filter_by(file="proposal.pdf").one().bid_key)
    assert bytes(stored) == proposal.bid_key   # kept for the committee, not published


def test_under_role_bidder_each_bidder_releases_its_own_share_or_answers_for_it(kit: OpeningKit):
    """Joint practice (2 of 2, bidder and agent): a bidder that does not release its own
    share in the window has failed its own bid (§6: revoked under C4)."""
    tender = kit.bench.tender(mode="joint")
    bids = [kit.bid(tender, n, price) for n, price in PRICES.items()]
    kit.close(tender)
    kit.agent(tender, "start")
    kit.release_all(tender, (2,))
    cp = kit.checkpoint()
    mine = kit.release(tender, 1, bids[0], checkpoint=cp, signer=bids[0].bidder)
    stolen = kit.release(tender, 1, bids[0], checkpoint=cp, signer=bids[1].bidder)
    resp = kit.post_releases(tender, bids[1].bidder, [stolen])
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "not_custodian"
    assert kit.post_releases(tender, bids[1].bidder, [mine]).get_json()["error"]["code"] == "not_custodian"
    assert kit.post_releases(tender, bids[0].bidder, [mine]).status_code == 201
    second = kit.release(tender, 1, bids[1], checkpoint=cp, signer=bids[1].bidder)
    assert kit.post_releases(tender, bids[1].bidder, [second]).status_code == 201
    kit.bench.clock.set(tender.deadline + timedelta(seconds=3600))
    assert kit.agent(tender, "finish").status_code == 200
    by_org = _bids_by_org(kit.client.get(f"{tender.base}/opening-record").get_json()["data"])
    assert [by_org[b.org]["status"] for b in bids[:2]] == ["opened", "opened"]
    assert (by_org[bids[2].org]["status"], by_org[bids[2].org]["fault"]) == ("revoked", "bidder")


def test_a_lot_with_too_few_bids_is_not_opened_while_the_others_are(kit: OpeningKit):
    tender = kit.tender(lots=("L1", "L2"))
    tender.lots = ["L1", "L2"]
    bids = [kit.bid(tender, n, price) for n, price in PRICES.items()]
    short = [kit.bid(tender, n, "5.00", lot="L2") for n in (1, 2)]
    kit.close(tender)
    start = kit.agent(tender, "start").get_json()["data"]
    assert start["status"] == "open" and start["lots_not_opened"] == ["L2"]
    assert {(f["lot"], f["bidder"]) for f in start["files"]} == {("L1", b.org) for b in bids}
    kit.release_all(tender, (1, 2, 3, 4), bids=bids)
    record = kit.agent(tender, "finish").get_json()["data"]
    assert record["lots"] == [{"lot": "L1", "bids": 3, "opened": True}, {"lot": "L2", "bids": 2, "opened": False}]
    assert {b["lot"] for b in record["bids"]} == {"L1"}
    assert short and len(record["bids"]) == 3
