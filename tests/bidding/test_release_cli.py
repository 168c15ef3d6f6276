"""The custodian's ``ebid release`` checks (PROTOCOL §6) and ``ebid tick``.

``ebid release`` speaks HTTP with urllib; here its transport is routed to the Flask test
client, so the command runs whole, in-process, against the real endpoints.
"""
from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from audits import entries as log_entries
from bidding import cli as release_cli
from bidding.models import Closing, Release
from core.clock import format_instant
from crypto import keys
from crypto.canonical import b64decode, b64encode
from tests.bidding.helpers import Bench
from tests.bidding.test_opening_kit import OpeningKit


@pytest.fixture
def kit(bench: Bench) -> OpeningKit:
    return OpeningKit(bench)


def _closed_tender(kit: OpeningKit):
    tender = kit.tender()
    bids = [kit.bid(tender, n, price) for n, price in ((1, "900000.00"), (2, "880000.50"), (3, "910000.00"))]
    closing = kit.close(tender)
    return tender, bids, closing


def _log_key(kit: OpeningKit) -> str:
    return kit.client.get("/api/v1/audit/key").get_data(as_text=True)


def test_verify_closing_accepts_the_real_proof_and_lists_the_files(kit: OpeningKit):
    tender, bids, closing = _closed_tender(kit)
    closed = release_cli.verify_closing(tender.tender, closing, _log_key(kit))
    assert closed.deadline == tender.deadline
    assert sorted(org for _, org, _ in closed.files) == sorted(b.org for b in bids)


def test_verify_closing_refuses_forgeries(kit: OpeningKit):
    tender, _, closing = _closed_tender(kit)
    key = _log_key(kit)
    other_key = "ebid.local/log+00000000+" + b64encode(b"\x01" + bytes(32))
    with pytest.raises(release_cli.ReleaseError) as wrong_key:
        release_cli.verify_closing(tender.tender, closing, other_key)
    assert wrong_key.value.code == "bad_checkpoint"
    # the platform drops a file from the list: the leaf no longer matches the proof
    entry = log_entries.parse_entry(b64decode(closing["leaf"]))
    entry["data"]["files"] = entry["data"]["files"][1:]
    forged = dict(closing, leaf=b64encode(json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()))
    with pytest.raises(release_cli.ReleaseError) as dropped:
        release_cli.verify_closing(tender.tender, forged, key)
    assert dropped.value.code == "bad_inclusion_proof"
    with pytest.raises(release_cli.ReleaseError) as elsewhere:
        release_cli.verify_closing("424242", closing, key)
    assert elsewhere.value.code == "bad_closing"


def test_plan_releases_opens_only_checked_shares_of_listed_files(kit: OpeningKit):
    tender, bids, closing = _closed_tender(kit)
    closed = release_cli.verify_closing(tender.tender, closing, _log_key(kit))
    shares = kit.client.get(f"{tender.base}/shares?i=1", headers=kit.bench.headers("agent")).get_json()["data"]
    _, x25519 = tender.custodians[1]
    plan = release_cli.plan_releases(tender.tender, 1, closed, shares, x25519)
    assert len(plan.releases) == 3 and not plan.skipped
    assert {r["share"] for r in plan.releases} == {b64encode(b.sealed.share_plaintexts[1]) for b in bids}

    tampered = [dict(shares[0], header=b64encode(b64decode(shares[0]["header"]) + b" ")),
                dict(shares[1], manifest_sha256="00" * 32),
                dict(shares[2], digest="11" * 32)]
    plan = release_cli.plan_releases(tender.tender, 1, closed, tampered, x25519)
    assert not plan.releases
    reasons = [why for _, why in plan.skipped]
    assert "closing list" in reasons[0] and "not in the closing list" == reasons[1]
    assert "digest" in reasons[2]
    wrong_key = release_cli.plan_releases(tender.tender, 1, closed, shares, keys.generate_private_key("x25519"))
    assert not wrong_key.releases and all("not this X25519 key" in why for _, why in wrong_key.skipped)


class _TestClientTransport:
    """Route the command's urllib calls to the Flask test client."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __call__(self, server: release_cli.Server, method: str, path: str, body: Any = None) -> tuple[int, bytes, str]:
        headers = {"Accept-Language": "en"}
        if server.token:
            headers["Authorization"] = f"Bearer {server.token}"
        resp = self.client.open(path, method=method, headers=headers,
                                data=None if body is None else json.dumps(body),
                                content_type="application/json" if body is not None else None)
        return resp.status_code, resp.data, resp.headers.get("Content-Type", "")


def _write_keys(tmp_path: Path, kit: OpeningKit, tender: Any, slot: int) -> dict[str, str]:
    holder, x25519 = tender.custodians[slot]
    (tmp_path / "x25519.pem").write_bytes(keys.dump_private_pem(x25519))
    (tmp_path / "signing.pem").write_bytes(keys.dump_private_pem(kit.bench.signing_key(holder)))
    party = kit.bench.party(holder)
    (tmp_path / "password").write_text(party.password + "\n")
    (tmp_path / "log.key").write_text(_log_key(kit))
    return {"username": party.username}


def _run(tmp_path: Path, tender: Any, slot: int, username: str, *extra: str) -> Any:
    return CliRunner().invoke(release_cli.release, [
        "--server", "http://platform.test", "--tender", tender.tender, "--i", str(slot),
        "--key", str(tmp_path / "x25519.pem"), "--signing-key", str(tmp_path / "signing.pem"),
        "--username", username, "--password-file", str(tmp_path / "password"), *extra])


@pytest.fixture
def routed(kit: OpeningKit, monkeypatch: pytest.MonkeyPatch) -> OpeningKit:
    transport = _TestClientTransport(kit.client)
    monkeypatch.setattr(release_cli.Server, "_request",
                        lambda server, method, path, body=None: transport(server, method, path, body))
    return kit


def test_the_release_command_checks_then_releases(routed: OpeningKit, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch):
    kit = routed
    tender, bids, _ = _closed_tender(kit)
    who = _write_keys(tmp_path, kit, tender, 2)
    monkeypatch.setenv("EBID_TESTING", "1")

    monkeypatch.setenv("EBID_CLOCK", f"fixed:{format_instant(tender.deadline - timedelta(seconds=1))}")
    early = _run(tmp_path, tender, 2, who["username"], "--log-key", str(tmp_path / "log.key"))
    assert early.exit_code == 1 and "error: before_deadline" in early.output

    monkeypatch.setenv("EBID_CLOCK", f"fixed:{format_instant(tender.deadline)}")
    dry = _run(tmp_path, tender, 2, who["username"], "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "warning: the log key was fetched from the server" in dry.output
    assert "dry run: 3 share(s) would be released" in dry.output
    assert kit.bench.count(Release) == 0

    done = _run(tmp_path, tender, 2, who["username"], "--log-key", str(tmp_path / "log.key"))
    assert done.exit_code == 0, done.output
    assert "3 share(s) released" in done.output
    assert kit.bench.count(Release, i=2) == 3
    again = _run(tmp_path, tender, 2, who["username"], "--log-key", str(tmp_path / "log.key"))
    assert again.exit_code == 0 and again.output.count(": already") == 3


def test_the_release_command_refuses_a_slot_that_is_not_its_own(routed: OpeningKit, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch):
    kit = routed
    tender, _, _ = _closed_tender(kit)
    who = _write_keys(tmp_path, kit, tender, 2)
    monkeypatch.setenv("EBID_TESTING", "1")
    monkeypatch.setenv("EBID_CLOCK", f"fixed:{format_instant(tender.deadline)}")
    result = _run(tmp_path, tender, 3, who["username"], "--log-key", str(tmp_path / "log.key"))
    assert result.exit_code == 1 and "error: not_this_custodian" in result.output


def test_the_release_command_warns_when_a_listed_files_share_is_withheld(routed: OpeningKit, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch):
    kit = routed
    tender, bids, _ = _closed_tender(kit)
    who = _write_keys(tmp_path, kit, tender, 2)
    inner = release_cli.Server._request

    def withholding(server: Any, method: str, path: str, body: Any = None) -> tuple[int, bytes, str]:
        status, raw, ctype = inner(server, method, path, body)
        if "/shares" in path:
            data = json.loads(raw)
            raw = json.dumps({"data": data["data"][1:]}).encode()
        return status, raw, ctype

    monkeypatch.setattr(release_cli.Server, "_request", withholding)
    monkeypatch.setenv("EBID_TESTING", "1")
    monkeypatch.setenv("EBID_CLOCK", f"fixed:{format_instant(tender.deadline)}")
    result = _run(tmp_path, tender, 2, who["username"], "--dry-run", "--log-key", str(tmp_path / "log.key"))
    assert result.exit_code == 0, result.output
    assert "warning: the server served no share of listed file" in result.output
    assert "dry run: 2 share(s) would be released" in result.output


def test_tick_closes_due_tenders_once(kit: OpeningKit, database_url: str, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch):
    tender = kit.tender()
    kit.bid(tender, 1, "1.00")
    for name, value in {"EBID_DATABASE_URL": database_url, "EBID_INSTANCE_PATH": str(tmp_path / "instance"),
                        "EBID_TESTING": "1",
                        "EBID_CLOCK": f"fixed:{format_instant(tender.deadline - timedelta(milliseconds=1))}"}.items():
        monkeypatch.setenv(name, value)
    early = CliRunner().invoke(release_cli.tick, [])
    assert early.exit_code == 0, early.output
    assert "0 tender(s) closed" in early.output
    monkeypatch.setenv("EBID_CLOCK", f"fixed:{format_instant(tender.deadline)}")
    first = CliRunner().invoke(release_cli.tick, [])
    assert first.exit_code == 0, first.output
    assert f"closed tender {tender.id}: 1 file(s) listed" in first.output
    assert kit.bench.count(Closing) == 1
    assert "0 tender(s) closed" in CliRunner().invoke(release_cli.tick, []).output
    assert [e["actor"] for e in kit.entries("tender.closed")] == ["system"]


def test_attach_adds_the_offline_tools_and_the_release_commands():
    import click
    group = click.Group("ebid")
    release_cli.attach(group)
    assert {"keygen", "custodian", "seal", "unseal", "release", "tick"} <= set(group.commands)
    assert base64  # the module stays importable without a server
