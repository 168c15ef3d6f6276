"""A bidder's client, run as its own process by the reliability tests:
``python -m tests.reliability.reliability_client JOB.json``.

It seals its files in-process with the crypto core (as a bidder's tool does), writes
``ready-<username>`` beside the job, waits for the ``go`` file, then submits every file over
a real socket: POST the signed manifest, PUT the ``.ebid`` bytes. A connection error or a
5xx (a worker killed mid-request, a server restarting) is retried with the SAME manifest
bytes (same nonce) until the time budget ends. A refusal (4xx) ends that file. At the end
it posts every stored manifest once more, a deliberate retry, which must answer 200 with
the original receipt. Everything it saw goes to the job's ``out`` file as JSON.

Modes: ``burst`` (submit as fast as possible) and ``deadline`` (the same; the test moves the
file clock across the deadline while the clients run).
"""
from __future__ import annotations

import http.client
import io
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from crypto import keys, sealed, shamir, shares
from crypto.canonical import canonical_json
from crypto.manifest import make_manifest, manifest_sha256
from crypto.policy import header_custodians, parse_policy, seal_targets
from crypto.signing import MANIFEST, sign_object

RETRYABLE = {500, 502, 503, 504}


def seal_file(policy_bytes: bytes, tender: str, lot: str, org: str, name: str, signing_key: Any,
              now_text: str = "2026-03-02T01:00:00.000Z") -> dict[str, Any]:
    """One sealed file (random 3 KB content) and its signed manifest, as the offline tool makes them."""
    policy = parse_policy(policy_bytes)
    header = sealed.build_header(tender, lot, org, name, policy.sha256, policy.threshold,
                                 header_custodians(policy), os.urandom(8), now_text)
    bid_key, out = os.urandom(32), io.BytesIO()
    result = sealed.seal_stream(io.BytesIO(os.urandom(3000)), out, header, bid_key)
    h = bytes.fromhex(result.header_sha256)
    sealed_shares = []
    for (i, y), (_, public) in zip(shamir.split(bid_key, policy.threshold, policy.n), seal_targets(policy)):
        plain = shares.share_plaintext(i, y)
        sealed_shares.append((i, shares.seal_share(public, h, i, plain), shares.share_digest(h, plain)))
    payload = make_manifest(tender, lot, org, name, result.header_sha256, policy.sha256, result.ciphertext_sha256,
                            result.size, result.commitment, sealed_shares, os.urandom(16))
    envelope = sign_object("manifest", payload, signing_key, MANIFEST)
    return {"file": name, "manifest": canonical_json(envelope), "ebid": out.getvalue(),
            "manifest_sha256": manifest_sha256(payload), "ciphertext_sha256": result.ciphertext_sha256,
            "nonce": payload["nonce"], "bid_key": bid_key}


class Client:
    """HTTP/1.1 over one fresh connection per request (a killed worker takes only that one)."""

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.token: str | None = None

    def call(self, method: str, path: str, body: bytes | None = None,
             content_type: str = "application/json") -> tuple[int, Any]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            headers = {"Accept-Language": "en"}
            if body is not None:
                headers["Content-Type"] = content_type
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = raw.decode(errors="replace")[:200]
            return resp.status, parsed
        finally:
            conn.close()


def error_code(body: Any) -> str | None:
    return (body.get("error") or {}).get("code") if isinstance(body, dict) else None


def submit(client: Client, tender: str, bid: dict[str, Any], until: float) -> dict[str, Any]:
    """Submit one file, retrying faults with the same manifest; return what happened."""
    record: dict[str, Any] = {"file": bid["file"], "manifest_sha256": bid["manifest_sha256"],
                              "ciphertext_sha256": bid["ciphertext_sha256"], "nonce": bid["nonce"],
                              "attempts": 0, "faults": [], "receipts": [], "statuses": [],
                              "refused": None, "found_stored": False}
    while time.monotonic() < until:
        record["attempts"] += 1
        try:
            status, body = client.call("POST", f"/api/v1/tenders/{tender}/submissions", bid["manifest"])
            record["statuses"].append(["POST", status])
            if status == 200:
                record["receipts"].append(body["data"])
                record["found_stored"] = True
                return record
            if status == 201:
                status, body = client.call("PUT", body["data"]["upload"], bid["ebid"], "application/octet-stream")
                record["statuses"].append(["PUT", status])
                if status in (200, 201):
                    record["receipts"].append(body["data"])
                    record["found_stored"] = record["found_stored"] or status == 200
                    return record
            if status in RETRYABLE:
                record["faults"].append(f"http {status}")
            else:
                record["refused"] = {"status": status, "code": error_code(body)}
                return record
        except (OSError, http.client.HTTPException) as exc:
            record["faults"].append(type(exc).__name__)
        time.sleep(random.uniform(0.02, 0.1))
    record["refused"] = {"status": None, "code": "client_gave_up"}
    return record


def login(client: Client, username: str, password: str, until: float) -> None:
    body = canonical_json({"password": password, "username": username})
    while time.monotonic() < until:
        try:
            status, answer = client.call("POST", "/api/v1/auth/token", body)
            if status == 200:
                client.token = answer["data"]["access_token"]
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.1)
    raise SystemExit("could not log in")


def main(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    folder = Path(job_path).parent
    signing_key = keys.load_private_pem(job["signing_pem"].encode(), "ed25519")
    policy = job["policy"].encode()
    bids = [seal_file(policy, job["tender"], job["lot"], job["org"], f"part-{n:03d}.bin", signing_key)
            for n in range(1, job["count"] + 1)]
    (folder / f"ready-{job['username']}").write_text("ready")
    go = Path(job["go"])
    wait_until = time.monotonic() + 120
    while not go.exists() and time.monotonic() < wait_until:
        time.sleep(0.01)
    started = time.monotonic()
    until = started + job["budget_s"]
    client = Client(job["base"])
    login(client, job["username"], job["password"], until)
    records = [submit(client, job["tender"], bid, until) for bid in bids]
    # a deliberate retry of every stored manifest: the original receipt, never a second bid
    retries = []
    for bid, record in zip(bids, records):
        if record["receipts"]:
            for _ in range(20):
                try:
                    status, body = client.call("POST", f"/api/v1/tenders/{job['tender']}/submissions",
                                               bid["manifest"])
                    if status in RETRYABLE:
                        time.sleep(0.1)
                        continue
                    retries.append({"manifest_sha256": bid["manifest_sha256"], "status": status,
                                    "receipt": (body or {}).get("data") if status == 200 else None,
                                    "code": error_code(body)})
                    break
                except (OSError, http.client.HTTPException):
                    time.sleep(0.1)
    out = {"username": job["username"], "org": job["org"], "bids": records, "retries": retries,
           "seconds": round(time.monotonic() - started, 3),
           "secrets": {"bid_keys": [bid["bid_key"].hex() for bid in bids], "token": client.token}}
    tmp = Path(job["out"] + ".tmp")
    tmp.write_text(json.dumps(out))
    os.replace(tmp, job["out"])


if __name__ == "__main__":
    main(sys.argv[1])
