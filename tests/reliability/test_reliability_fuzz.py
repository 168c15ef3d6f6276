"""Hostile input (issue 7.3): property-based fuzzing of every operation in
``/api/v1/openapi.json`` with schemathesis, and what fuzzing cannot reach: an upload whose
Content-Length is over the limit (413 before the body is read, over a real socket), slow
and stalled uploads against a real gunicorn, wrong content types, sealed-file names and
upload addresses that try to escape, an empty sealed file.

Already covered elsewhere and not repeated: malformed JSON, duplicate keys, floats, deep
and huge JSON, injection strings (tests/foundation/test_bad_input.py); unsafe document
names (tests/foundation/test_projects_api.py); truncated, padded, bit-flipped and unsealed
files, hash and size mismatches (tests/bidding/test_submission.py).
"""
from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from core.clock import FileClock
from crypto.canonical import canonical_json
from tests.bidding.helpers import Bench
from tests.conftest import T0
from tests.reliability.reliability_kit import Server, http, login, seed_tender, server_env

EXAMPLES_PER_OPERATION = 5   # x ~100 operations: about 500 requests, well under a minute
FUZZ_BUDGET_S = 150          # the whole fuzzing test stops generating after this long
ROLES = ("admin", "agent", "tenderee", "supervisor", "bidder", "expert", "custodian")


def _error_code(resp: Any) -> str | None:
    try:
        return (json.loads(resp.content if hasattr(resp, "content") else resp.data).get("error") or {}).get("code")
    except (ValueError, AttributeError):
        return None


@pytest.mark.slow
def test_fuzzing_every_operation_gives_no_server_error_and_conforms(app: Any, world: Any, backend: str,
                                                                    caplog: Any) -> None:
    if backend != "sqlite":
        pytest.skip("the fuzzing budget is spent on SQLite only")
    schemathesis = pytest.importorskip("schemathesis")  # the other tests here run without it
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

    parties = world.standard()
    client = app.test_client()
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    server_errors: list[str] = []
    nonconforming: dict[str, str] = {}
    calls = {"n": 0, "operations": 0}
    started = time.monotonic()

    def token_for(role: str) -> str:
        party = parties[role]
        resp = client.post("/api/v1/auth/token", json={"username": party.username, "password": party.password})
        return resp.get_json()["data"]["access_token"]

    for result in schema.get_all_operations():
        if time.monotonic() - started > FUZZ_BUDGET_S:
            break
        operation = result.ok()
        calls["operations"] += 1

        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(), role=st.sampled_from(ROLES + ("anonymous",)))
        def run(case: Any, role: str) -> None:
            headers = {} if role == "anonymous" else {"Authorization": f"Bearer {token_for(role)}"}
            label = f"{operation.method.upper()} {operation.path}"
            calls["n"] += 1
            try:
                response = case.call(headers=headers)
            except Exception as exc:  # noqa: BLE001 - TESTING propagates what would be a 500
                server_errors.append(f"{label} as {role}: {type(exc).__name__}: {str(exc)[:200]} "
                                     f"(path {case.path_parameters}, query {case.query})")
                return
            if response.status_code >= 500:
                logged = [r for r in caplog.records if r.exc_info][-1:]
                cause = f"{logged[0].exc_info[0].__name__}: {logged[0].exc_info[1]}"[:160] if logged else "?"
                server_errors.append(f"{label} as {role}: {response.status_code} {cause} "
                                     f"(path {str(case.path_parameters)[:160]}, query {str(case.query)[:80]})")
                caplog.clear()
            if response.status_code < 400:  # documented successes must match their schema
                try:
                    case.validate_response(response, checks=[response_schema_conformance,
                                                             content_type_conformance])
                except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001
                    nonconforming.setdefault(label, f"{response.status_code}: {str(exc)[:300]}")

        run()
    print("fuzz figures:", {"operations": calls["operations"], "requests": calls["n"],
                            "seconds": round(time.monotonic() - started, 1),
                            "nonconforming_operations": sorted(nonconforming)})
    known = [e for e in server_errors if is_id_overflow(e)]
    others = [e for e in server_errors if not is_id_overflow(e)]
    for line in sorted(set(server_errors)):
        print("5xx:", line)
    assert not others, "\n".join(others[:20])
    assert not nonconforming, json.dumps(nonconforming, ensure_ascii=False, indent=1)
    if known:  # the same bug test_ids_beyond_32_bits_are_4xx_not_500 pins down endpoint by endpoint
        pytest.xfail(f"{ID_OVERFLOW_BUG}: {len(known)} request(s), e.g. {known[0][:200]}")


ID_OVERFLOW_BUG = ("KNOWN BUG: ids beyond 2**31-1 in a path or query reach the database and fail with a 500 "
                   "(SQLite OverflowError, PostgreSQL integer out of range); only trading/projects.py bounds them "
                   "(MAX_ID). bidding/api.py touch_tender -> bidding/closing.py ensure_closed/closing_of run "
                   "first on every /api/v1/tenders/<int> endpoint. Fix: register a bounded int converter in "
                   "wsgi.create_app (app.url_map.converters['int'] = a werkzeug IntegerConverter subclass with "
                   "max=2**31-1, so such paths are 404) and validate.Range(min=1, max=2**31-1) on integer query "
                   "fields (e.g. ?project= of GET /api/v1/complaints)")


def is_id_overflow(message: str) -> bool:
    return "OverflowError" in message or "out of range" in message or "NumericValueOutOfRange" in message


# --------------------------------------------------------------------------- in-process


def test_ids_beyond_32_bits_are_4xx_not_500(app: Any, world: Any, backend: str) -> None:
    """Every route with an integer in its path, called with ids of 2**31 and 2**63."""
    from werkzeug.routing import IntegerConverter
    token = world.standard()["admin"].token
    client = app.test_client()
    failed = []
    calls = 0
    for rule in app.url_map.iter_rules():
        ints = [name for name, conv in rule._converters.items() if isinstance(conv, IntegerConverter)]
        if not ints:
            continue
        for huge in (2 ** 31, 2 ** 63):
            values = {name: (huge if name in ints else "0" * 64) for name in rule.arguments}
            path = rule.build(values, append_unknown=False)[1]
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                kwargs = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
                if "upload" in rule.rule:
                    kwargs = {"data": b"x", "content_type": "application/octet-stream"}
                try:
                    resp = client.open(path, method=method, headers={"Authorization": f"Bearer {token}"},
                                       **kwargs)
                    status = resp.status_code
                except Exception as exc:  # noqa: BLE001 - TESTING propagates what would be a 500
                    status = f"{type(exc).__name__}"
                calls += 1
                if not (isinstance(status, int) and status < 500):
                    failed.append(f"{method} {rule.rule} [{huge}]: {status}")
    print("huge-id figures:", {"requests": calls, "500s": len(failed)})
    if failed:
        pytest.xfail(f"{ID_OVERFLOW_BUG}. Endpoints: " + "; ".join(sorted(set(
            f.split(" [")[0] for f in failed))))


@pytest.fixture
def bench(world: Any, clock: Any, backend: str) -> Bench:
    return Bench(world, clock)


def test_wrong_content_types_on_bidding_endpoints_are_415_and_store_nothing(bench: Bench) -> None:
    from bidding.models import PendingUpload, Submission
    tender = bench.tender(mode="officials")
    bid = bench.seal(tender, "bidder")
    body = canonical_json(bid.envelope)
    headers = bench.headers("bidder")
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                  "application/octet-stream"):
        resp = bench.client.post(f"{tender.base}/submissions", headers=headers, data=body, content_type=ctype)
        assert resp.status_code == 415 and resp.get_json()["error"]["code"] == "unsupported_media_type", ctype
    assert bench.count(PendingUpload) == 0
    assert bench.post_manifest(tender, "bidder", bid).status_code == 201
    for ctype in ("application/json", "text/plain", "multipart/form-data; boundary=x", None):
        kwargs = {"content_type": ctype} if ctype else {}
        resp = bench.client.put(f"{tender.base}/uploads/{bid.manifest_sha256}", headers=headers, data=bid.ebid,
                                **kwargs)
        assert resp.status_code == 415 and resp.get_json()["error"]["code"] == "unsupported_media_type", ctype
    withdrawal = canonical_json(bench.withdrawal(tender, "bidder", [bid.manifest_sha256]))
    resp = bench.client.post(f"{tender.base}/withdrawals", headers=headers, data=withdrawal, content_type="text/plain")
    assert resp.status_code == 415
    assert bench.count(Submission) == 0


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b.bin", "..", ".hidden", "C:evil", "a\\b", "x" * 200,
                                  "bad\x00name", "new\nline", "-rf"])
def test_sealed_file_names_that_could_escape_are_refused(bench: Bench, name: str) -> None:
    from bidding.models import PendingUpload
    tender = bench.tender(mode="officials")
    bid = bench.seal(tender, "bidder", file="safe.bin", manifest={"file": name})
    resp = bench.post_manifest(tender, "bidder", bid)
    if name == "-rf":  # a legal identifier? then it must at least not match the header
        assert resp.status_code in (201, 422), resp.get_json()
    else:
        assert resp.status_code in (400, 422), (name, resp.status_code, resp.get_json())
    assert bench.count(PendingUpload) <= (1 if name == "-rf" else 0)


def test_upload_and_file_addresses_that_are_not_hashes_are_404_not_500(bench: Bench) -> None:
    tender = bench.tender(mode="officials")
    headers = bench.headers("bidder")
    for address in ("..%2F..%2Fetc%2Fpasswd", "%2e%2e", "0" * 63, "g" * 64, "A" * 64, "0" * 65):
        resp = bench.client.put(f"{tender.base}/uploads/{address}", headers=headers, data=b"x",
                                content_type="application/octet-stream")
        assert 400 <= resp.status_code < 500, (address, resp.status_code)
        resp = bench.client.get(f"{tender.base}/files/{address}", headers=bench.headers("agent"))
        assert 400 <= resp.status_code < 500, (address, resp.status_code)


def test_an_empty_sealed_file_is_refused_and_stores_nothing(bench: Bench) -> None:
    from bidding.models import Submission
    tender = bench.tender(mode="officials")
    bid = bench.seal(tender, "bidder")
    assert bench.post_manifest(tender, "bidder", bid).status_code == 201
    resp = bench.put_file(tender, "bidder", bid, data=b"")
    assert resp.status_code in (400, 422), resp.get_json()
    assert bench.count(Submission) == 0


# --------------------------------------------------------------------------- over real sockets


@pytest.fixture
def small_server(backend: str, database_url: str, tmp_path: Path) -> Any:
    """A gunicorn with `ebid serve`'s worker settings, a 64 KiB upload limit and a 3 s timeout
    (SQLite only: what is tried here happens before any database work)."""
    if backend != "sqlite":
        pytest.skip("socket-level limits do not depend on the database: run on SQLite")
    clock = FileClock(tmp_path / "clock")
    clock.set(T0)
    seeded = seed_tender(database_url, tmp_path / "instance", clock, bidders=1)
    env = server_env(database_url, tmp_path / "instance", clock, EBID_MAX_UPLOAD_BYTES=str(64 * 1024),
                     EBID_CLIENT_TIMEOUT_SECONDS="1")
    server = Server(env, tmp_path, timeout=3).start()
    try:
        yield server, seeded, tmp_path
    finally:
        server.stop()


def _pending_upload(server: Server, seeded: Any, name: str) -> tuple[str, str, bytes]:
    from crypto import keys
    from tests.reliability.reliability_client import seal_file
    bidder = seeded.bidders[0]
    token = login(server.base, bidder["username"])
    bid = seal_file(seeded.policy, str(seeded.tender), seeded.lot, bidder["org"], name,
                    keys.load_private_pem(bidder["signing_pem"].encode(), "ed25519"))
    status, raw, _ = http("POST", f"{server.base}/api/v1/tenders/{seeded.tender}/submissions", bid["manifest"],
                          token=token)
    assert status == 201, raw
    return json.loads(raw)["data"]["upload"], token, bid["ebid"]


def _put_head(port: int, path: str, token: str, length: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                 f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n".encode())
    return sock


def _read_response(sock: socket.socket) -> bytes:
    """One whole HTTP response (headers and a Content-Length body) from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    length = next((int(line.split(":", 1)[1]) for line in head.split("\r\n") if line.startswith("content-length:")), 0)
    while len(data.split(b"\r\n\r\n", 1)[1]) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.slow
@pytest.mark.e2e
def test_an_upload_declaring_more_than_the_limit_is_413_before_its_body_is_sent(small_server: Any) -> None:
    server, seeded, work = small_server
    upload, token, _ = _pending_upload(server, seeded, "big.bin")
    sock = _put_head(server.port, upload, token, 10 ** 9)  # a gigabyte announced, none of it sent
    try:
        started = time.monotonic()
        answer = _read_response(sock)
        elapsed = time.monotonic() - started
    finally:
        sock.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:200]
    assert json.loads(body)["error"]["code"] in ("payload_too_large", "upload_too_large")
    assert elapsed < 5
    assert [p for p in (work / "instance" / "blobs").rglob("*") if p.is_file()] == []  # nothing was read
    assert http("GET", f"{server.base}/api/v1/audit/key")[0] == 200


STALL_GAP = ("a client that sends the headers of a request with a Content-Length and then stalls (or "
             "trickles the body a byte at a time) holds a gunicorn gthread worker thread for as long as it "
             "likes: gunicorn's --timeout does not apply to a thread reading a request body and the platform "
             "sets no socket timeout, so workers x threads such connections (8 with `ebid serve`'s settings, "
             "any of them anonymous, e.g. on POST /api/v1/auth/token) make the platform stop answering. Fix: "
             "serve behind a buffering proxy (nginx proxy_request_buffering on, client_body_timeout), or "
             "set a receive timeout on environ['gunicorn.socket'] in a before_request hook (core/web.py or "
             "wsgi.py) and an overall upload deadline in bidding/api.py _body_chunks")


@pytest.mark.slow
@pytest.mark.e2e
def test_stalled_and_trickling_uploads_do_not_hold_the_server(small_server: Any) -> None:
    """Twice workers x threads slow uploads (half silent after 10 bytes, half trickling a byte
    every 0.5 s): within twice gunicorn's --timeout each must be cut off or answered, and the
    platform must keep answering others meanwhile."""
    server, seeded, _ = small_server
    upload, token, ebid = _pending_upload(server, seeded, "slow.bin")
    slots, bound_s = 2 * 4, 6.0  # workers x threads, as `ebid serve` runs them; 2 x --timeout 3
    held: list[socket.socket] = []
    stop = threading.Event()

    def trickle(sock: socket.socket) -> None:
        sent = 10
        while not stop.is_set() and sent < len(ebid) - 1:
            try:
                sock.sendall(ebid[sent:sent + 1])
            except OSError:
                return
            sent += 1
            stop.wait(0.5)

    try:
        for _ in range(2 * slots):
            sock = _put_head(server.port, upload, token, len(ebid))
            sock.sendall(ebid[:10])
            held.append(sock)
        for sock in held[::2]:
            threading.Thread(target=trickle, args=(sock,), daemon=True).start()
        time.sleep(1)
        started = time.monotonic()
        try:
            answered: Any = http("GET", f"{server.base}/api/v1/audit/key", timeout=4)[0]
        except OSError as exc:
            answered = type(exc).__name__
        waited = round(time.monotonic() - started, 1)
        time.sleep(max(0.0, bound_s - (time.monotonic() - started)))
        still_open = 0
        for sock in held:
            sock.setblocking(False)
            try:
                sock.recv(1)  # data (an answer) or b"" (closed): the server let go
            except BlockingIOError:
                still_open += 1
            except OSError:
                pass
        # anonymous: login requests that announce a body and never send it
        for _ in range(2 * slots):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(b"POST /api/v1/auth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"username\"")
            held.append(sock)
        time.sleep(1)
        started = time.monotonic()
        try:
            anonymous: Any = http("GET", f"{server.base}/api/v1/audit/key", timeout=4)[0]
        except OSError as exc:
            anonymous = type(exc).__name__
        figures = {"slow_uploads": 2 * slots, "still_held_after_s": bound_s, "still_held": still_open,
                   "other_request": answered, "stalled_anonymous_logins": 2 * slots,
                   "other_request_then": anonymous, "waited_s": round(time.monotonic() - started, 1)}
        print("slow-upload figures:", figures)
        if still_open or answered != 200 or anonymous != 200:
            pytest.xfail(f"{STALL_GAP} (measured: {figures})")
    finally:
        stop.set()
        for sock in held:
            sock.close()
