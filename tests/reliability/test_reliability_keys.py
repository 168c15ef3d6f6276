"""The platform's keys (issue 7.6): loaded from files named by EBID_LOG_KEY_FILE and
EBID_RECEIPT_KEY_FILE for production, and rotated with ``ebid keys rotate-receipt`` while
the old key stays for verification, across a real restart of gunicorn.

Already covered elsewhere: keys generated on first start, owner-only (0700 folder, 0600
files), the log key differing from every receipt key, ``rotate_receipt_key`` keeping the old
key in-process (tests/audit_storage/test_log_storage.py).
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from audits.notes import parse_and_verify_checkpoint, verifier_key_line
from core.clock import FileClock
from crypto import keys as crypto_keys
from crypto.canonical import b64decode, b64encode
from crypto.signing import RECEIPT, verify_object
from tests.bidding.helpers import Bench
from tests.conftest import T0, World, make_app
from tests.reliability.reliability_client import seal_file
from tests.reliability.reliability_kit import Server, audit_check, ebid_cli, http, login, seed_tender, server_env


def _key_file(path: Path) -> Any:
    key = crypto_keys.generate_private_key("ed25519")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(crypto_keys.dump_private_pem(key))
    return key


def test_keys_are_loaded_from_the_files_the_environment_names(database_url: str, tmp_path: Path, clock: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from core.db import db
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    log_key, receipt_key = _key_file(secrets / "log.pem"), _key_file(secrets / "receipt.pem")
    monkeypatch.setenv("EBID_LOG_KEY_FILE", str(secrets / "log.pem"))
    monkeypatch.setenv("EBID_RECEIPT_KEY_FILE", str(secrets / "receipt.pem"))
    app = make_app(database_url, tmp_path / "instance", clock)
    try:
        client = app.test_client()
        log_public = crypto_keys.raw_public_bytes(log_key)
        receipt_public = crypto_keys.raw_public_bytes(receipt_key)
        origin = app.extensions["ebid"].log_origin
        assert client.get("/api/v1/audit/key").data.decode().strip() == verifier_key_line(origin, log_public)
        assert client.get("/api/v1/audit/key?kind=receipt").data.decode().strip() == b64encode(receipt_public)
        bench = Bench(World(app, client), clock)
        tender = bench.tender(mode="officials")
        signed = bench.submit(tender, "bidder", bench.seal(tender, "bidder"))
        assert signed["kid"] == crypto_keys.kid(receipt_public)
        verify_object(signed, "receipt", RECEIPT, receipt_public)
        note = client.get("/api/v1/audit/checkpoint").data.decode()
        assert parse_and_verify_checkpoint(note, verifier_key_line(origin, log_public)).size > 0
        # the instance folder's own generated keys sign nothing
        folder = Path(app.instance_path) / "keys"
        assert crypto_keys.kid(receipt_public) not in {p.name for p in folder.iterdir()}
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.mark.slow
@pytest.mark.e2e
def test_a_rotated_receipt_key_still_verifies_old_receipts_after_a_restart(backend: str, database_url: str,
                                                                           tmp_path: Path) -> None:
    if backend != "sqlite":
        pytest.skip("key rotation does not depend on the database: run on SQLite")
    clock = FileClock(tmp_path / "clock")
    clock.set(T0)
    instance = tmp_path / "instance"
    seeded = seed_tender(database_url, instance, clock, bidders=1)
    env = server_env(database_url, instance, clock)
    bidder = seeded.bidders[0]
    signing = crypto_keys.load_private_pem(bidder["signing_pem"].encode(), "ed25519")

    def submit(server: Server, name: str) -> tuple[dict[str, Any], bytes]:
        bid = seal_file(seeded.policy, str(seeded.tender), seeded.lot, bidder["org"], name, signing)
        token = login(server.base, bidder["username"])
        status, raw, _ = http("POST", f"{server.base}/api/v1/tenders/{seeded.tender}/submissions", bid["manifest"],
                              token=token)
        assert status == 201, raw
        status, raw, _ = http("PUT", server.base + json.loads(raw)["data"]["upload"], bid["ebid"], token=token,
                              content_type="application/octet-stream")
        assert status == 201, raw
        return json.loads(raw)["data"], bid["manifest"]

    def key(server: Server, kid: str | None = None) -> tuple[int, bytes]:
        status, raw, _ = http("GET", f"{server.base}/api/v1/audit/key?kind=receipt" + (f"&kid={kid}" if kid else ""))
        return status, b64decode(raw.decode().strip(), "key") if status == 200 else raw

    server = Server(env, tmp_path).start()
    try:
        old, old_manifest = submit(server, "before.bin")
        old_kid = old["kid"]
        rotated = ebid_cli(env, "keys", "rotate-receipt")
        assert rotated.returncode == 0, rotated.stderr
        new_kid = rotated.stdout.split()[3].rstrip(";")
        assert new_kid != old_kid
        mode = stat.S_IMODE(os.stat(instance / "keys" / f"receipt-{new_kid}.pem").st_mode)
        assert mode == 0o600
        # the running server signs with the key it loaded until it restarts
        assert submit(server, "still-old.bin")[0]["kid"] == old_kid
        server.stop()
        server.start()
        status, current = key(server)
        assert status == 200 and crypto_keys.kid(current) == new_kid
        status, retired = key(server, old_kid)
        assert status == 200 and crypto_keys.kid(retired) == old_kid
        verify_object(old, "receipt", RECEIPT, retired)
        with pytest.raises(Exception):
            verify_object(old, "receipt", RECEIPT, current)
        new, _ = submit(server, "after.bin")
        assert new["kid"] == new_kid
        verify_object(new, "receipt", RECEIPT, current)
        # a retry of the old manifest: the original receipt, signed again with the current key
        token = login(server.base, bidder["username"])
        status, raw, _ = http("POST", f"{server.base}/api/v1/tenders/{seeded.tender}/submissions", old_manifest,
                              token=token)
        assert status == 200
        again = json.loads(raw)["data"]
        assert again["receipt"] == old["receipt"] and again["kid"] == new_kid
        verify_object(again, "receipt", RECEIPT, current)
        assert key(server, "0" * 16)[0] == 404
    finally:
        server.stop()
    audit_check(env)
