"""Anyone can re-run a published draw from the audit log and the public API alone.

The re-runner below is a small, independent implementation of PROTOCOL §7 (the Merkle
root) and §8 (commitments, seed, random stream, choice, draw), written from the text
with hashlib, json and base64 only: it imports nothing from the platform, so a shared
mistake in ``trading.draw`` cannot hide itself. It reads only what an anonymous client
can read after the result.
"""
from __future__ import annotations

import base64
import hashlib
import json

from tests.experts.conftest import LOT

TWO_64 = 1 << 64


# --------------------------------------------------------------------------- §7 and §8, again

def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def merkle_root(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    return hashlib.sha256(b"\x01" + merkle_root(leaves[:split]) + merkle_root(leaves[split:])).digest()


def commitment_of(secret: bytes) -> str:
    return hashlib.sha256(b"ebid/v1 draw-commit\n" + secret).hexdigest()


def seed_of(platform: bytes, supervisor: bytes, root: bytes, request: dict) -> bytes:
    return hashlib.sha256(b"ebid/v1 draw\n" + platform + supervisor + root + canonical(request)).digest()


def values(seed: bytes):
    counter = 0
    while True:
        block = hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        for offset in range(0, 32, 8):
            yield int.from_bytes(block[offset:offset + 8], "big")
        counter += 1


def pick(stream, m: int) -> int:
    limit = TWO_64 - (TWO_64 % m)
    while True:
        v = next(stream)
        if v < limit:
            return v % m


def rerun(seed: bytes, lists: list[list[str]], counts: list[int]) -> list[list[str]]:
    stream, taken, drawn = values(seed), set(), []
    for ids, count in zip(lists, counts):
        remaining = [e for e in sorted(ids, key=lambda s: s.encode("utf-8")) if e not in taken]
        picks = []
        for _ in range(count):
            expert = remaining.pop(pick(stream, len(remaining)))
            picks.append(expert)
            taken.add(expert)
        drawn.append(picks)
    return drawn


# --------------------------------------------------------------------------- the public data

def public_log(client) -> list[tuple[bytes, dict]]:
    entries, start = [], 0
    while True:
        resp = client.get(f"/api/v1/audit/entries?start={start}&end={start + 1000}")
        if resp.status_code == 400:
            return entries
        page = resp.get_json()["data"]
        for item in page:
            raw = base64.b64decode(item["leaf"], validate=True)
            entries.append((raw, json.loads(raw)))
        start += len(page)


def test_a_published_draw_reruns_from_the_log_and_the_public_api(bench, backend):
    from core.db import db
    from trading import expert_draw
    from trading.models import Project

    tender = bench.prepared()
    bench.drawn(tender, alternates=2)
    with bench.app.app_context():
        expert_draw.publish_committee(db.session, db.session.get(Project, tender), bench.clock.now())
        db.session.commit()

    # ---- from here on: an anonymous client and the code above only
    client = bench.world.app.test_client()
    log = public_log(client)
    mine = [(raw, e) for raw, e in log if e["subject"] == f"project:{tender}"]
    [(_, published)] = [(r, e) for r, e in mine if e["action"] == "committee.published"]
    [record] = published["data"]["draws"]
    [(_, closed)] = [(r, e) for r, e in mine if e["action"] == "tender.closed"]
    requested = next(e for _, e in mine if e["action"] == "draw.requested" and e["data"]["attempt"] == 1)

    # Commitments: logged before the tender closed, opened by the published secrets.
    committed = {e["data"]["party"]: e for _, e in mine
                 if e["action"] == "draw.committed" and e["data"]["attempt"] == 1}
    platform = bytes.fromhex(record["platform_secret"])
    supervisor = bytes.fromhex(record["supervisor_secret"])
    for party, secret in (("platform", platform), ("supervisor", supervisor)):
        assert committed[party]["data"]["commitment"] == commitment_of(secret)
        assert committed[party]["index"] < closed["index"]

    # The closing root: recomputed from the leaves up to the closing checkpoint, and equal
    # to the root in the checkpoint the log serves for that size.
    size = record["closing_size"]
    assert closed["index"] < size
    root = merkle_root([raw for raw, _ in log[:size]])
    assert root.hex() == record["closing_root"]
    note = client.get(f"/api/v1/audit/checkpoint?size={size}").get_data(as_text=True)
    origin, size_line, root_line = note.split("\n")[:3]
    assert int(size_line) == size and base64.b64decode(root_line) == root

    # The request and the eligible lists are the ones whose hashes were logged before the
    # secrets were revealed; the lists themselves come from the public draw record.
    request = record["request"]
    assert hashlib.sha256(canonical(request)).hexdigest() == requested["data"]["request_sha256"]
    lists = client.get(f"/api/v1/tenders/{tender}/draws/1?lot={LOT}").get_json()["data"]["eligible_lists"]
    assert hashlib.sha256(canonical(lists)).hexdigest() == requested["data"]["eligible_lists_sha256"]
    assert lists[-1] == sorted({e for ids in lists[:-1] for e in ids})
    assert not set(request["exclude"]) & set(lists[-1])

    # The draw itself.
    seed = seed_of(platform, supervisor, root, request)
    assert seed.hex() == record["seed"]
    counts = [g["count"] for g in request["groups"]] + [request["alternates"]]
    drawn = rerun(seed, lists, counts)
    assert {"groups": drawn[:-1], "alternates": drawn[-1]} == record["result"]
    committee = client.get(f"/api/v1/tenders/{tender}/committee?lot={LOT}").get_json()["data"]
    seated = sorted(m["expert"] for m in committee["members"] if m["role"] == "member")
    assert seated == sorted(e for group in drawn[:-1] for e in group)
