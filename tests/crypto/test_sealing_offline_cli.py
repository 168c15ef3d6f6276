"""The offline tools: keygen -> custodian statement -> policy -> seal -> unseal."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from bidding.offline_cli import custodian, keygen, seal, unseal
from crypto.bidform import parse_bid_form
from crypto.canonical import canonical_json, loads_strict, parse_canonical
from crypto.keys import load_public_pem, raw_public_bytes
from crypto.manifest import manifest_sha256
from crypto.sealed import read_header
from crypto.signing import MANIFEST, verify_object

NOW = "2026-05-01T09:30:00.000Z"
ENV = {"EBID_TESTING": "1", "EBID_CLOCK": f"fixed:{NOW}"}
TENDER, LOT, BIDDER = "T-2026-007", "L1", "B-acme"


def run(command, args, ok=True):
    result = CliRunner().invoke(command, [str(a) for a in args], env=ENV, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.stderr
    return result


def make_keys(directory: Path, passphrase_file: Path | None = None) -> Path:
    args = ["--out", directory] + (["--passphrase-file", passphrase_file] if passphrase_file else [])
    result = run(keygen, args)
    assert "signing kid:" in result.stdout and "x25519 kid:" in result.stdout
    return directory


def statement(keys: Path, i: int, role: str, passphrase_file: Path | None = None) -> dict:
    args = ["statement", "--tender", TENDER, "--i", i, "--role", role, "--signing-key", keys / "signing.pem",
            "--x25519", keys / "x25519.pub.pem"] + (["--passphrase-file", passphrase_file] if passphrase_file else [])
    out = run(custodian, args).stdout.strip().encode()
    assert canonical_json(parse_canonical(out)) == out
    return parse_canonical(out)


def write_policy(path: Path, entries: list[dict], threshold: int) -> Path:
    path.write_bytes(canonical_json({"tender": TENDER, "threshold": threshold, "release_window_s": 1800,
                                     "custodians": entries}))
    return path


def seal_args(tmp: Path, policy: Path, bidder_keys: Path, source: Path, *extra) -> list:
    return ["--policy", policy, "--tender", TENDER, "--lot", LOT, "--bidder", BIDDER,
            "--signing-key", bidder_keys / "signing.pem", "--in", source,
            "--out", tmp / "out.ebid", "--manifest", tmp / "out.manifest.json", *extra]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


@pytest.fixture(scope="module")
def officials(tmp_path_factory):
    base = tmp_path_factory.mktemp("officials")
    return [make_keys(base / f"c{i}") for i in range(1, 5)]


@pytest.fixture(scope="module")
def bidder_keys(tmp_path_factory):
    return make_keys(tmp_path_factory.mktemp("bidder") / "keys")


@pytest.fixture(scope="module")
def policy_3_of_4(officials, tmp_path_factory):
    roles = ["agent", "tenderee", "supervisor", "notary"]
    entries = [statement(keys, i, role) for i, (keys, role) in enumerate(zip(officials, roles), start=1)]
    return write_policy(tmp_path_factory.mktemp("policy") / "policy.json", entries, 3)


def test_keygen_writes_pkcs8_files_with_private_modes(tmp_path):
    keys = make_keys(tmp_path / "k")
    for name, mode in (("signing.pem", 0o600), ("x25519.pem", 0o600)):
        assert stat.S_IMODE((keys / name).stat().st_mode) == mode
        assert (keys / name).read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    for name in ("signing.pub.pem", "x25519.pub.pem"):
        assert (keys / name).read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    again = run(keygen, ["--out", keys], ok=False)
    assert again.exit_code == 2 and again.stderr.startswith("error: unusable_input:")


def test_round_trip_3_of_4(tmp_path, officials, bidder_keys, policy_3_of_4):
    source = tmp_path / "technical-proposal.pdf"
    source.write_bytes(os.urandom(1048576 + 1000))   # two segments at the real size
    result = run(seal, seal_args(tmp_path, policy_3_of_4, bidder_keys, source))
    envelope = loads_strict((tmp_path / "out.manifest.json").read_bytes())
    signer = raw_public_bytes(load_public_pem((bidder_keys / "signing.pub.pem").read_bytes(), "ed25519"))
    manifest = verify_object(envelope, "manifest", MANIFEST, signer)
    assert manifest["file"] == "technical-proposal.pdf" and len(manifest["shares"]) == 4
    assert manifest_sha256(manifest) in result.stdout
    with open(tmp_path / "out.ebid", "rb") as handle:
        _, header = read_header(handle)
    assert header["created"] == NOW and header["threshold"] == 3
    assert leftovers(tmp_path) == []

    keys = [officials[i] / "x25519.pem" for i in (0, 2, 3)]
    out = tmp_path / "opened.pdf"
    run(unseal, ["--in", tmp_path / "out.ebid", "--manifest", tmp_path / "out.manifest.json",
                 *sum((["--key", k] for k in keys), []), "--out", out])
    assert out.read_bytes() == source.read_bytes()

    # k - 1 keys: a clear error and nothing written
    out.unlink()
    failed = run(unseal, ["--in", tmp_path / "out.ebid", "--manifest", tmp_path / "out.manifest.json",
                          "--key", keys[0], "--key", keys[1], "--out", out], ok=False)
    assert failed.exit_code == 1 and failed.stderr.startswith("error: not_enough_shares:")
    assert not out.exists() and leftovers(tmp_path) == []
    # a key of no custodian does not count
    failed = run(unseal, ["--in", tmp_path / "out.ebid", "--manifest", tmp_path / "out.manifest.json",
                          "--key", keys[0], "--key", keys[1], "--key", bidder_keys / "x25519.pem", "--out", out],
                 ok=False)
    assert "error: not_enough_shares:" in failed.stderr and "holds no share" in failed.stderr
    assert not out.exists()


def test_tampering_is_refused_without_output(tmp_path, officials, bidder_keys, policy_3_of_4):
    source = tmp_path / "spec.txt"
    source.write_bytes(b"technical proposal " * 100)
    run(seal, seal_args(tmp_path, policy_3_of_4, bidder_keys, source))
    keys = sum((["--key", officials[i] / "x25519.pem"] for i in (0, 1, 2)), [])
    ebid = (tmp_path / "out.ebid").read_bytes()
    manifest_bytes = (tmp_path / "out.manifest.json").read_bytes()
    out = tmp_path / "opened.txt"
    tampered_files = {
        "last byte": (ebid[:-1] + bytes([ebid[-1] ^ 1]), manifest_bytes),
        "trailing": (ebid + b"\x00", manifest_bytes),
        "header": (ebid.replace(b'"lot":"L1"', b'"lot":"L2"', 1), manifest_bytes),
    }
    envelope = json.loads(manifest_bytes)
    envelope["manifest"]["commitment"] = envelope["manifest"]["commitment"][:-4] + "AAA="
    tampered_files["commitment"] = (ebid, canonical_json(envelope))
    for name, (ebid_bytes, manifest_data) in tampered_files.items():
        (tmp_path / "t.ebid").write_bytes(ebid_bytes)
        (tmp_path / "t.manifest.json").write_bytes(manifest_data)
        failed = run(unseal, ["--in", tmp_path / "t.ebid", "--manifest", tmp_path / "t.manifest.json", *keys,
                              "--out", out], ok=False)
        assert failed.exit_code == 1 and failed.stderr.startswith("error: "), name
        assert not out.exists() and leftovers(tmp_path) == [], name


def test_round_trip_1_of_1_bidder_policy_with_bid_form(tmp_path):
    passphrase = tmp_path / "pass.txt"
    passphrase.write_text("let me in\n")
    bidder_keys = make_keys(tmp_path / "bidder", passphrase)
    assert (bidder_keys / "x25519.pem").read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    policy = write_policy(tmp_path / "policy.json", [{"i": 1, "role": "bidder"}], 1)
    form = tmp_path / "bid-form.json"
    form.write_text(json.dumps({"tender": TENDER, "lot": LOT, "bidder": BIDDER, "price": "880000.00",
                                "currency": "CNY", "duration_days": 90}, indent=2), encoding="utf-8")
    args = seal_args(tmp_path, policy, bidder_keys, form, "--passphrase-file", passphrase)
    failed = run(seal, args, ok=False)
    assert failed.exit_code == 1 and failed.stderr.startswith("error: bidder_key_required:")
    assert not (tmp_path / "out.ebid").exists()
    run(seal, args + ["--bidder-x25519", bidder_keys / "x25519.pub.pem", "--supersedes", "ab" * 32])
    manifest = loads_strict((tmp_path / "out.manifest.json").read_bytes())["manifest"]
    assert manifest["file"] == "bid-form.json" and manifest["supersedes"] == "ab" * 32
    out = tmp_path / "opened-form.json"
    run(unseal, ["--in", tmp_path / "out.ebid", "--manifest", tmp_path / "out.manifest.json",
                 "--key", bidder_keys / "x25519.pem", "--passphrase-file", passphrase, "--out", out])
    data = out.read_bytes()
    assert len(data) == 4096
    assert parse_bid_form(data, tender=TENDER, lot=LOT, bidder=BIDDER)["price"] == "880000.00"
    failed = run(unseal, ["--in", tmp_path / "out.ebid", "--manifest", tmp_path / "out.manifest.json",
                          "--key", bidder_keys / "x25519.pem", "--out", tmp_path / "x"], ok=False)
    assert failed.stderr.startswith("error: passphrase_required:")


def test_seal_refusals(tmp_path, officials, bidder_keys, policy_3_of_4):
    source = tmp_path / "a.pdf"
    source.write_bytes(b"%PDF")
    document = parse_canonical(policy_3_of_4.read_bytes())
    # a platform that swapped a custodian's key for its own
    document["custodians"][1]["x25519"] = document["custodians"][0]["x25519"]
    forged = tmp_path / "forged.json"
    forged.write_bytes(canonical_json(document))
    cases = [
        (seal_args(tmp_path, forged, bidder_keys, source), 1, "bad_statement"),
        (seal_args(tmp_path, policy_3_of_4, bidder_keys, tmp_path / "missing.pdf"), 2, "unusable_input"),
        (seal_args(tmp_path, policy_3_of_4, bidder_keys, source, "--file", "../evil"), 1, "bad_identifier"),
        ([*seal_args(tmp_path, policy_3_of_4, bidder_keys, source)[:2], "--tender", "T-other",
          *seal_args(tmp_path, policy_3_of_4, bidder_keys, source)[4:]], 1, "policy_mismatch"),
        (seal_args(tmp_path, policy_3_of_4, bidder_keys, source, "--supersedes", tmp_path / "nope.json"), 2,
         "unusable_input"),
    ]
    form = tmp_path / "bid-form.json"
    form.write_text(json.dumps({"tender": TENDER, "lot": LOT, "bidder": "B-other", "price": "1.00",
                                "currency": "CNY"}))
    cases.append((seal_args(tmp_path, policy_3_of_4, bidder_keys, form), 1, "bid_form_mismatch"))
    form2 = tmp_path / "f.json"
    form2.write_text('{"tender": "%s", "price": 1.5}' % TENDER)
    cases.append((seal_args(tmp_path, policy_3_of_4, bidder_keys, form2, "--file", "bid-form.json"), 1,
                  "bad_canonical_json"))
    for args, status, code in cases:
        failed = run(seal, args, ok=False)
        assert failed.exit_code == status and failed.stderr.startswith(f"error: {code}:"), (code, failed.stderr)
        assert not (tmp_path / "out.ebid").exists() and not (tmp_path / "out.manifest.json").exists()
        assert leftovers(tmp_path) == []


def test_statement_refuses_role_bidder(tmp_path):
    keys = make_keys(tmp_path / "k")
    result = run(custodian, ["statement", "--tender", TENDER, "--i", 1, "--role", "bidder", "--signing-key",
                             keys / "signing.pem", "--x25519", keys / "x25519.pub.pem"], ok=False)
    assert result.exit_code == 1 and result.stderr.startswith("error: bad_policy:")
    result = run(custodian, ["statement", "--tender", TENDER, "--i", 1, "--role", "agent", "--signing-key",
                             keys / "x25519.pem", "--x25519", keys / "x25519.pub.pem"], ok=False)
    assert result.exit_code == 1 and result.stderr.startswith("error: bad_key:")


@pytest.mark.parametrize("size", [0, 1, 1048576], ids=["empty", "one-byte", "segment-boundary"])
def test_round_trip_sizes_through_the_commands(tmp_path, officials, bidder_keys, policy_3_of_4, size):
    """ebid seal then ebid unseal give back the exact bytes for an empty file, one byte and
    exactly one segment (the 100 MB case is measured in bench/, item 3)."""
    source = tmp_path / "annex.bin"
    source.write_bytes(os.urandom(size))
    run(seal, seal_args(tmp_path, policy_3_of_4, bidder_keys, source))
    out = tmp_path / "opened.bin"
    keys = [officials[i] / "x25519.pem" for i in (1, 2, 3)]
    run(unseal, ["--in", tmp_path / "out.ebid", "--manifest", tmp_path / "out.manifest.json",
                 *sum((["--key", k] for k in keys), []), "--out", out])
    assert out.read_bytes() == source.read_bytes()
