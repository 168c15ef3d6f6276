"""End to end over real sockets: a gunicorn server with two workers, a file clock every
process reads, custodians and bidders using the ``ebid`` command line as they would on
their own machines (PROTOCOL §2–§6, §9; rulebook B3, C1–C6).

The story: a 3-of-4 tender; five bidders seal offline and submit over HTTP; one
supersedes, one withdraws; a sixth bidder's form names another tender; a bid one
millisecond late is refused; three custodians release with ``ebid release``; the agent
decrypts and publishes; the record shows the right prices and whose fault; the published
keys re-open the bid forms.
"""
from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from crypto import keys as crypto_keys
from crypto.bidform import parse_bid_form
from crypto.canonical import b64decode, b64encode, canonical_json, format_time
from crypto.manifest import make_withdrawal
from crypto.sealed import open_stream
from crypto.signing import WITHDRAW, sign_object
from tests.bidding.helpers import LOT, T0

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = T0 + timedelta(days=30)
WINDOW_S = 3600
# slot -> (username, role in the policy)
CUSTODIANS = {1: ("agent1", "agent"), 2: ("tenderee1", "tenderee"), 3: ("supervisor1", "supervisor"),
              4: ("custodian1", "notary")}
PRICES = {1: "905000.00", 2: "880000.50", 3: "910000.00", 4: "899999.99", 5: "870000.00"}
SUPERSEDED_PRICE = "950000.00"

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


# --------------------------------------------------------------------------- plumbing


class Http:
    """A JSON client over urllib, as any bidder's tool would speak to the platform."""

    def __init__(self, base: str) -> None:
        self.base = base

    def call(self, method: str, path: str, body: Any = None, token: str | None = None,
             raw: bytes | None = None, content_type: str = "application/json",
             parse: bool = True) -> tuple[int, Any]:
        url = path if path.startswith("http") else self.base + path
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, payload, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            status, payload, ctype = exc.code, exc.read(), exc.headers.get("Content-Type", "")
        return status, (json.loads(payload) if parse and "json" in ctype and payload else payload)

    def ok(self, method: str, path: str, expected: int = 200, **kwargs: Any) -> Any:
        status, payload = self.call(method, path, **kwargs)
        assert status == expected, (method, path, status, payload)
        return payload

    def login(self, username: str) -> str:
        return self.ok("POST", "/api/v1/auth/token",
                       body={"username": username, "password": password(username)})["data"]["access_token"]


def password(username: str) -> str:
    return f"pw-{username}-123456"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Clock:
    """The file clock all processes read (EBID_CLOCK=file:...)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def set(self, instant: Any) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(format_time(instant) + "\n")
        os.replace(tmp, self.path)


def ebid(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the ``ebid`` command line in a fresh process, as a user on their machine."""
    proc = subprocess.run([sys.executable, "-c", "from wsgi import cli; cli()", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def seed(settings: dict[str, Any], work: Path) -> dict[str, Any]:
    """Organisations and accounts through the app's own services, before the server starts;
    the custodians' signing keys come from ``ebid keygen`` run beforehand."""
    from core.actor import SYSTEM
    from core.db import db
    from trading import accounts
    from wsgi import create_app

    app = create_app(settings)
    found: dict[str, Any] = {"bidder_keys": {}}
    with app.app_context():
        now = app.extensions["ebid"].clock.now()
        session = db.session
        for code, kind in (("TENDEREE1", "tenderee"), ("AGENT1", "agent"), ("SUPERVISION1", "supervisory_body")):
            accounts.create_organisation(session, SYSTEM, now, code=code, name=code, kind=kind, region="430426")
        for n in range(1, 8):
            accounts.create_organisation(session, SYSTEM, now, code=f"BIDDER{n}", name=f"投标人{n}有限公司",
                                         kind="bidder", legal_representative=f"代表{n}")
        users = [("agent1", "agent", "AGENT1"), ("tenderee1", "tenderee", "TENDEREE1"),
                 ("supervisor1", "supervisor", "SUPERVISION1"), ("custodian1", "custodian", "AGENT1")]
        users += [(f"bidder{n}", "bidder", f"BIDDER{n}") for n in range(1, 8)]
        created = {}
        for username, role, org in users:
            created[username] = accounts.create_user(session, SYSTEM, now, username=username,
                                                     password=password(username), roles=(role,), org_code=org)
        session.flush()
        for slot, (username, _) in CUSTODIANS.items():
            pub = crypto_keys.load_public_pem((work / f"custodian{slot}" / "signing.pub.pem").read_bytes(), "ed25519")
            accounts.register_signing_key(session, accounts.actor_for(created[username]), now,
                                          b64encode(crypto_keys.raw_public_bytes(pub)))
        for n in range(1, 8):
            key = crypto_keys.generate_private_key("ed25519")
            folder = work / f"bidder{n}"
            folder.mkdir()
            (folder / "signing.pem").write_bytes(crypto_keys.dump_private_pem(key))
            accounts.register_signing_key(session, accounts.actor_for(created[f"bidder{n}"]), now,
                                          b64encode(crypto_keys.raw_public_bytes(key)))
            found["bidder_keys"][n] = key
        session.commit()
        rt = app.extensions["ebid"]
        from audits.notes import verifier_key_line
        # the custodians pin the log key from outside the platform (here: the instance's key files)
        (work / "log.key").write_text(verifier_key_line(rt.log_origin, rt.keys.log_public) + "\n")
        db.session.remove()
        db.engine.dispose()
    return found


def start_server(env: dict[str, str], port: int, work: Path) -> subprocess.Popen:
    log = open(work / "gunicorn.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
                             "--graceful-timeout", "5", "wsgi:create_app()"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError((work / "gunicorn.log").read_text())
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/audit/key", timeout=2) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("gunicorn did not come up: " + (work / "gunicorn.log").read_text())


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def submit(http: Http, tender: int, token: str, manifest_path: Path, ebid_path: Path) -> dict[str, Any]:
    """Post the manifest the sealing tool wrote, then upload the sealed bytes."""
    started = http.ok("POST", f"/api/v1/tenders/{tender}/submissions", 201, raw=manifest_path.read_bytes(),
                      token=token)
    receipt = http.ok("PUT", started["data"]["upload"], 201, raw=ebid_path.read_bytes(), token=token,
                      content_type="application/octet-stream")
    return receipt["data"]


# --------------------------------------------------------------------------- the story


def test_sealed_bids_opened_end_to_end(database_url: str, tmp_path: Path) -> None:
    work = tmp_path
    clock = Clock(work / "clock")
    clock.set(T0)
    instance = work / "instance"
    env = {**os.environ, "EBID_TESTING": "1", "EBID_CLOCK": f"file:{clock.path}",
           "EBID_DATABASE_URL": database_url, "EBID_INSTANCE_PATH": str(instance),
           "EBID_PUBLIC_URL": "", "PYTHONPATH": str(ROOT)}
    env.pop("EBID_TEST_DATABASE_URL", None)
    settings = {"EBID_DATABASE_URL": database_url, "EBID_INSTANCE_PATH": str(instance), "EBID_TESTING": True,
                "EBID_CLOCK": f"file:{clock.path}"}

    # custodians make their keys on their own machines
    for slot in CUSTODIANS:
        ebid(env, "keygen", "--out", str(work / f"custodian{slot}"))
    seeded = seed(settings, work)
    for username in [u for u, _ in CUSTODIANS.values()]:
        (work / f"{username}.password").write_text(password(username) + "\n")

    port = free_port()
    server = start_server(env, port, work)
    try:
        http = Http(f"http://127.0.0.1:{port}")
        agent = http.login("agent1")
        project = http.ok("POST", "/api/v1/projects", 201, token=agent, body={
            "title": "城区道路改造工程", "domain": "construction", "procedure": "open_tender",
            "category": "works", "tenderee": "TENDEREE1", "supervisor": "SUPERVISION1",
            "estimate": "1000000.00", "budget": "1000000.00", "max_price": "1000000.00",
            "schedule": {"documents_from": format_time(T0), "documents_until": format_time(T0 + timedelta(days=10)),
                         "bid_deadline": format_time(DEADLINE)},
            "lots": [{"code": LOT, "title": "标段一"}]})["data"]
        tender = project["id"]
        statements = []
        for slot, (_, role) in CUSTODIANS.items():
            out = ebid(env, "custodian", "statement", "--tender", str(tender), "--i", str(slot), "--role", role,
                       "--signing-key", str(work / f"custodian{slot}" / "signing.pem"),
                       "--x25519", str(work / f"custodian{slot}" / "x25519.pub.pem"))
            statements.append(json.loads(out.stdout))
        http.ok("PUT", f"/api/v1/tenders/{tender}/policy", token=agent,
                body={"threshold": 3, "release_window_s": WINDOW_S, "custodians": statements})
        http.ok("POST", f"/api/v1/projects/{tender}/publish", token=agent)
        policy_path = work / "policy.json"
        policy_path.write_bytes(http.ok("GET", f"/api/v1/tenders/{tender}/policy", parse=False))

        # five bidders seal offline and submit; bidder 1 later supersedes, bidder 5 withdraws
        def seal(n: int, price: str, name: str, tender_in_form: int | None = None, supersedes: str | None = None,
                 lot: str = LOT) -> tuple[Path, Path]:
            folder = work / f"bidder{n}"
            form = folder / f"{name}.json"
            form.write_text(json.dumps({"tender": str(tender_in_form or tender), "lot": lot,
                                        "bidder": f"BIDDER{n}", "price": price, "currency": "CNY",
                                        "duration_days": "180"}, ensure_ascii=False))
            out, manifest = folder / f"{name}.ebid", folder / f"{name}.manifest.json"
            args = ["seal", "--policy", str(policy_path), "--tender", str(tender), "--lot", lot,
                    "--bidder", f"BIDDER{n}", "--signing-key", str(folder / "signing.pem"), "--in", str(form),
                    "--file", "bid-form.json", "--out", str(out), "--manifest", str(manifest)]
            if supersedes:
                args += ["--supersedes", supersedes]
            ebid(env, *args)
            return manifest, out

        tokens = {n: http.login(f"bidder{n}") for n in range(1, 8)}
        receipts = {}
        for n in range(1, 6):
            first_price = SUPERSEDED_PRICE if n == 1 else PRICES[n]
            receipts[n] = submit(http, tender, tokens[n], *seal(n, first_price, "form"))
            assert receipts[n]["receipt"]["bidder"] == f"BIDDER{n}"
        newer = submit(http, tender, tokens[1], *seal(1, PRICES[1], "form2",
                                                      supersedes=receipts[1]["receipt"]["receipt"]))
        assert newer["receipt"]["receipt"] != receipts[1]["receipt"]["receipt"]
        withdrawal = make_withdrawal(str(tender), LOT, "BIDDER5", [receipts[5]["receipt"]["receipt"]], os.urandom(16))
        http.ok("POST", f"/api/v1/tenders/{tender}/withdrawals", 201, token=tokens[5],
                raw=canonical_json(sign_object("withdrawal", withdrawal, seeded["bidder_keys"][5], WITHDRAW)))

        # bidder 6: header and manifest right, but the sealed form names another tender
        # (the honest tool refuses to seal that, so it is built with the crypto core)
        wrong_manifest, wrong_ebid = _seal_wrong_tender(work, policy_path, tender, seeded["bidder_keys"][6])
        submit(http, tender, tokens[6], wrong_manifest, wrong_ebid)

        # bidder 7 seals in time but submits one millisecond after the deadline: refused
        late = seal(7, "800000.00", "form")
        clock.set(DEADLINE + timedelta(milliseconds=1))
        status, body = http.call("POST", f"/api/v1/tenders/{tender}/submissions", raw=late[0].read_bytes(),
                                 token=http.login("bidder7"))  # tokens follow the clock, too
        assert status == 409 and body["error"]["code"] == "bid_deadline_passed", body

        # three custodians check the closing themselves and release (one dry run first)
        def release(slot: int, *extra: str) -> subprocess.CompletedProcess:
            username, _ = CUSTODIANS[slot]
            folder = work / f"custodian{slot}"
            return ebid(env, "release", "--server", http.base, "--tender", str(tender), "--i", str(slot),
                        "--key", str(folder / "x25519.pem"), "--signing-key", str(folder / "signing.pem"),
                        "--username", username, "--password-file", str(work / f"{username}.password"),
                        "--log-key", str(work / "log.key"), *extra)

        dry = release(1, "--dry-run")
        assert "dry run: 5 share(s) would be released" in dry.stdout, dry.stdout
        for slot in (1, 2, 4):
            done = release(slot)
            assert "5 share(s) released" in done.stdout, (done.stdout, done.stderr)

        # the agent opens: nothing shows before the window ends (slot 3 never released)
        agent = http.login("agent1")
        http.ok("POST", f"/api/v1/tenders/{tender}/opening/start", token=agent)
        early = http.ok("POST", f"/api/v1/tenders/{tender}/opening/decrypt", token=agent)["data"]
        assert early["disclosed"] is False and all("price" not in f for f in early["files"])
        clock.set(DEADLINE + timedelta(seconds=WINDOW_S))
        agent = http.login("agent1")
        http.ok("POST", f"/api/v1/tenders/{tender}/opening/decrypt", token=agent)
        http.ok("POST", f"/api/v1/tenders/{tender}/opening/finish", token=agent)

        record = http.ok("GET", f"/api/v1/tenders/{tender}/opening-record")["data"]
        bids = {b["bidder"]: b for b in record["bids"]}
        assert sorted(bids) == ["BIDDER1", "BIDDER2", "BIDDER3", "BIDDER4", "BIDDER6"]  # 5 withdrew, 7 late
        for n in (1, 2, 3, 4):
            entry = bids[f"BIDDER{n}"]
            assert (entry["status"], entry["price"], entry["declared"]) == (
                "opened", PRICES[n], {"duration_days": "180"}), entry
        assert (bids["BIDDER6"]["status"], bids["BIDDER6"]["fault"], bids["BIDDER6"]["cause"]) == (
            "revoked", "bidder", "bid_form_mismatch")
        assert SUPERSEDED_PRICE not in json.dumps(record)

        # anyone re-opens the published bid forms with the published keys
        published = http.ok("GET", f"/api/v1/tenders/{tender}/bid-keys")["data"]
        assert sorted(k["bidder"] for k in published) == ["BIDDER1", "BIDDER2", "BIDDER3", "BIDDER4"]
        for item in published:
            assert item["ebid"].startswith(http.base)
            sealed = http.ok("GET", item["ebid"], parse=False)
            out = io.BytesIO()
            header = open_stream(io.BytesIO(sealed), out, b64decode(item["key"], "key", length=32))
            form = parse_bid_form(out.getvalue(), tender=str(tender), lot=header["lot"], bidder=header["bidder"])
            assert form["price"] == PRICES[int(item["bidder"].removeprefix("BIDDER"))]
    finally:
        stop_server(server)


def _seal_wrong_tender(work: Path, policy_path: Path, tender: int, signing: Any) -> tuple[Path, Path]:
    """A file whose header and manifest are right but whose bid form names tender 999."""
    from crypto import sealed, shamir, shares
    from crypto.bidform import pad_bid_form
    from crypto.manifest import make_manifest
    from crypto.policy import header_custodians, parse_policy, seal_targets
    from crypto.signing import MANIFEST

    policy = parse_policy(policy_path.read_bytes())
    header = sealed.build_header(str(tender), LOT, "BIDDER6", "bid-form.json", policy.sha256, policy.threshold,
                                 header_custodians(policy), os.urandom(8), format_time(T0))
    form = pad_bid_form({"tender": "999", "lot": LOT, "bidder": "BIDDER6", "price": "1.00", "currency": "CNY"})
    bid_key, out = os.urandom(32), io.BytesIO()
    result = sealed.seal_stream(io.BytesIO(form), out, header, bid_key)
    h = bytes.fromhex(result.header_sha256)
    sealed_shares = []
    for (i, y), (_, public) in zip(shamir.split(bid_key, policy.threshold, policy.n), seal_targets(policy)):
        plain = shares.share_plaintext(i, y)
        sealed_shares.append((i, shares.seal_share(public, h, i, plain), shares.share_digest(h, plain)))
    manifest = make_manifest(str(tender), LOT, "BIDDER6", "bid-form.json", result.header_sha256, policy.sha256,
                             result.ciphertext_sha256, result.size, result.commitment, sealed_shares,
                             os.urandom(16))
    manifest_path, ebid_path = work / "bidder6" / "wrong.manifest.json", work / "bidder6" / "wrong.ebid"
    manifest_path.write_bytes(canonical_json(sign_object("manifest", manifest, signing, MANIFEST)))
    ebid_path.write_bytes(out.getvalue())
    return manifest_path, ebid_path
