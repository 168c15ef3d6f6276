"""An independent RFC 9162 + C2SP signed-note verifier, written here from PROTOCOL §7
alone, checks what the HTTP endpoints serve after a scenario.

This module deliberately imports nothing from the project: only the standard library and
pyca `cryptography`. It talks to the platform over HTTP (the test client) only.
"""
from __future__ import annotations

import base64
import hashlib
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


# ----------------------------------------------------------------- RFC 9162, from scratch

def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node(mth(leaves[:k]), mth(leaves[k:]))


def verify_inclusion(index: int, size: int, leaf: bytes, path: list[bytes], root: bytes) -> bool:
    # RFC 9162 §2.1.3.2
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, root1: bytes, root2: bytes, path: list[bytes]) -> bool:
    # RFC 9162 §2.1.4.2
    if first == second:
        return not path and root1 == root2
    if first == 0:
        return not path
    if not path:
        return False
    if first & (first - 1) == 0:
        path = [root1] + path
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == root1 and sr == root2 and sn == 0


# ----------------------------------------------------------------- C2SP signed note

def parse_key_line(line: str) -> tuple[str, bytes, bytes]:
    name, keyid_hex, key_b64 = line.strip().split("+", 2)  # base64 may contain "+"
    raw = base64.b64decode(key_b64, validate=True)
    assert raw[0] == 1 and len(raw) == 33
    assert hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4] == bytes.fromhex(keyid_hex)
    return name, bytes.fromhex(keyid_hex), raw[1:]


def verify_checkpoint(note: str, key_line: str) -> tuple[int, bytes]:
    name, keyid, public = parse_key_line(key_line)
    body, _, sigs = note.partition("\n\n")
    body += "\n"
    lines = body.split("\n")
    assert len(lines) == 4 and lines[3] == "", "a checkpoint body has exactly three lines"
    origin, size_text, root_b64 = lines[:3]
    assert origin == name
    assert size_text == str(int(size_text)), "size in decimal, no leading zeros"
    root = base64.b64decode(root_b64, validate=True)
    assert len(root) == 32
    ok = False
    for sig_line in sigs.splitlines():
        assert sig_line.startswith("\u2014 ")
        signer, blob_b64 = sig_line[2:].split(" ")
        blob = base64.b64decode(blob_b64, validate=True)
        if signer == name and blob[:4] == keyid:
            try:
                Ed25519PublicKey.from_public_bytes(public).verify(blob[4:], body.encode())
                ok = True
            except InvalidSignature:
                return -1, b""
    assert ok, "no valid signature by the log key"
    return int(size_text), root


# ----------------------------------------------------------------- the scenario and the checks

def _scenario(client, world) -> None:
    parties = world.standard()
    admin = parties["admin"]
    for i in range(3):
        resp = client.post("/api/v1/organisations", headers=admin.headers,
                           json={"code": f"SUPPLIER{i}", "name": f"供应商{i}", "kind": "bidder"})
        assert resp.status_code == 201, resp.get_json()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    pub = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    resp = client.post("/api/v1/me/keys", headers=parties["bidder"].headers,
                       json={"public_key": base64.b64encode(pub).decode()})
    assert resp.status_code == 201


def _all_entries(client) -> list[bytes]:
    out: list[bytes] = []
    while True:
        resp = client.get(f"/api/v1/audit/entries?start={len(out)}&end={len(out) + 10_000}")
        if resp.status_code == 400:
            return out
        out.extend(base64.b64decode(e["leaf"], validate=True) for e in resp.get_json()["data"])


def test_independent_verifier_accepts_what_the_endpoints_serve(client, world, backend):
    key_line = client.get("/api/v1/audit/key").data.decode()
    world.org("EARLY1", "bidder")
    early_note = client.get("/api/v1/audit/checkpoint").data.decode()
    early_size, early_root = verify_checkpoint(early_note, key_line)
    _scenario(client, world)
    note = client.get("/api/v1/audit/checkpoint").data.decode()
    size, root = verify_checkpoint(note, key_line)
    assert size > early_size
    entries = _all_entries(client)
    assert len(entries) == size
    leaves = [leaf_hash(e) for e in entries]
    assert mth(leaves) == root and mth(leaves[:early_size]) == early_root
    for index, raw in enumerate(entries):
        entry = json.loads(raw)
        assert set(entry) == {"index", "at", "actor", "action", "subject", "data", "detail_sha256"}
        assert entry["index"] == index
        canonical = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        assert canonical == raw, "entries are canonical JSON"
    for index in range(size):
        proof = client.get(f"/api/v1/audit/proof/inclusion?index={index}&size={size}").get_json()["data"]
        path = [base64.b64decode(p) for p in proof["path"]]
        assert verify_inclusion(index, size, leaves[index], path, root)
    for first in range(1, size + 1):
        proof = client.get(f"/api/v1/audit/proof/consistency?first={first}&second={size}").get_json()["data"]
        path = [base64.b64decode(p) for p in proof["path"]]
        assert verify_consistency(first, size, mth(leaves[:first]), root, path), first
    # Every checkpoint ever issued verifies and is consistent with the latest.
    for cp_size in range(1, size + 1):
        resp = client.get(f"/api/v1/audit/checkpoint?size={cp_size}")
        if resp.status_code == 200:
            got_size, got_root = verify_checkpoint(resp.data.decode(), key_line)
            assert got_size == cp_size and got_root == mth(leaves[:cp_size])


def test_independent_verifier_rejects_a_forged_signature(client, world, backend):
    world.standard()
    key_line = client.get("/api/v1/audit/key").data.decode()
    note = client.get("/api/v1/audit/checkpoint").data.decode()
    body, _, sig = note.partition("\n\n")
    forged_body = body.replace(body.split("\n")[1], str(int(body.split("\n")[1]) + 1))
    assert verify_checkpoint(forged_body + "\n\n" + sig, key_line)[0] == -1
