"""Commands of the sealed-bid side: the offline tools, ``ebid release`` and ``ebid tick``.

``ebid release`` is the custodian's tool of PROTOCOL §6. It trusts the platform for
nothing it can check itself: it reads its own clock, verifies the signed checkpoint and
the inclusion proof of the ``tender.closed`` entry, opens only shares of files in that
entry's list after checking each header, and signs one release per share. It speaks
HTTP with the standard library only, so a custodian installs nothing beyond this package.
"""
from __future__ import annotations

import hashlib
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from audits import entries as log_entries
from audits import merkle, notes
from core.cli_support import with_app
from crypto.canonical import b64decode, format_time, parse_time
from crypto.errors import CryptoError
from crypto.keys import key_id, load_private_pem
from crypto.manifest import make_release
from crypto.policy import BIDDER, parse_policy
from crypto.sealed import parse_header
from crypto.shares import open_share, share_digest
from crypto.signing import RELEASE, sign_object

CLOSED_ACTION = "tender.closed"
TIMEOUT_S = 60


class ReleaseError(Exception):
    """A check of the custodian's tool failed; ``code`` is printed as ``error: code: ...``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _fail(code: str, message: str, status: int = 1) -> NoReturn:
    click.echo(f"error: {code}: {message}", err=True)
    sys.exit(status)


# --------------------------------------------------------------------------- HTTP


class Server:
    """A tiny JSON client for the platform (urllib: no new dependencies)."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")
        self.token: str | None = None

    def _request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes, str]:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept-Language", "en")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return response.status, response.read(), response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), exc.headers.get("Content-Type", "")
        except urllib.error.URLError as exc:
            raise ReleaseError("server_unreachable", f"{self.base}: {exc.reason}") from None

    def _checked(self, method: str, path: str, body: Any = None) -> tuple[bytes, str]:
        status, raw, ctype = self._request(method, path, body)
        if status >= 400:
            code, message = "http_error", f"{method} {path} answered {status}"
            try:
                error = json.loads(raw)["error"]
                code, message = error["code"], error["message"]
            except (ValueError, KeyError, TypeError):
                pass
            raise ReleaseError(code, message)
        return raw, ctype

    def json(self, method: str, path: str, body: Any = None) -> Any:
        raw, _ = self._checked(method, path, body)
        try:
            return json.loads(raw)
        except ValueError:
            raise ReleaseError("bad_response", f"{method} {path} did not answer JSON") from None

    def text(self, path: str) -> str:
        raw, _ = self._checked("GET", path)
        return raw.decode("utf-8")

    def raw(self, path: str) -> bytes:
        return self._checked("GET", path)[0]

    def login(self, username: str, password: str) -> None:
        answer = self.json("POST", "/api/v1/auth/token", {"username": username, "password": password})
        self.token = answer["data"]["access_token"]


# --------------------------------------------------------------------------- checks (no I/O)


@dataclass(frozen=True)
class ClosedTender:
    """What a verified ``tender.closed`` entry says, with the checkpoint that proves it."""

    deadline: datetime
    files: dict[tuple[str, str, str], dict[str, str]]  # (lot, bidder, file) -> listed entry
    checkpoint_size: int
    checkpoint_root: bytes
    index: int


def verify_closing(tender: str, closing: dict[str, Any], log_key_line: str) -> ClosedTender:
    """Verify the closing document of §9 against the log key: the checkpoint's signature, the
    inclusion proof of the entry, and that the entry is this tender's ``tender.closed``."""
    try:
        checkpoint = notes.parse_and_verify_checkpoint(closing["checkpoint"], log_key_line)
        leaf = b64decode(closing["leaf"], "leaf")
        path = [b64decode(p, "inclusion", length=32) for p in closing["inclusion"]]
        index = closing["index"]
    except notes.NoteError as exc:
        raise ReleaseError("bad_checkpoint", exc.message) from None
    except (CryptoError, KeyError, TypeError) as exc:
        raise ReleaseError("bad_closing", f"malformed closing document: {exc}") from None
    if type(index) is not int or not merkle.verify_inclusion(
            merkle.leaf_hash(leaf), index, checkpoint.size, path, checkpoint.root):
        raise ReleaseError("bad_inclusion_proof",
                           "the tender.closed entry is not in the tree the checkpoint signs")
    try:
        entry = log_entries.parse_entry(leaf)
    except log_entries.EntryError as exc:
        raise ReleaseError("bad_closing", exc.message) from None
    if entry["action"] != CLOSED_ACTION or entry["index"] != index:
        raise ReleaseError("bad_closing", f"log entry {index} is not a {CLOSED_ACTION} entry")
    data = entry["data"]
    if str(data.get("tender", _tender_of_subject(entry["subject"]))) != tender:
        raise ReleaseError("bad_closing", f"the closing entry is not for tender {tender}")
    try:
        deadline = parse_time(data["deadline"], "deadline")
        files = {}
        for item in data["files"]:
            key = (item["lot"], item["bidder"], item["file"])
            files[key] = {"header_sha256": item["header_sha256"], "manifest_sha256": item["manifest_sha256"]}
    except (CryptoError, KeyError, TypeError) as exc:
        raise ReleaseError("bad_closing", f"the closing entry's data is malformed: {exc}") from None
    return ClosedTender(deadline=deadline, files=files, checkpoint_size=checkpoint.size,
                        checkpoint_root=checkpoint.root, index=index)


def _tender_of_subject(subject: str) -> str:
    """The tender named by a subject such as ``tender:12`` or ``project:12``."""
    return subject.split(":", 1)[1] if ":" in subject else subject


@dataclass
class Plan:
    """What the tool will release, and what it refused to open, with reasons."""

    releases: list[dict[str, Any]] = field(default_factory=list)   # release payloads
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (what, why)


def plan_releases(tender: str, i: int, closed: ClosedTender, shares: list[dict[str, Any]],
                  x25519_private: Any) -> Plan:
    """Open the shares the server offered, after the §6 checks, and build release payloads.

    A share is skipped (never opened) unless its file is in the verified closing list with
    the same manifest, the served header hashes to the listed ``header_sha256`` and names
    this tender and the listed lot, bidder and file, and slot ``i`` of the header is our key.
    A share that opens to bytes missing the bidder's digest is skipped too: releasing it
    would be recorded as our fault; the remedy is to publish the per-tender private key.
    """
    plan = Plan()
    own_kid = key_id(x25519_private)
    root_hex = closed.checkpoint_root.hex()
    for item in shares:
        try:
            name = f"{item['lot']}/{item['bidder']}/{item['file']}"
            listed = closed.files.get((item["lot"], item["bidder"], item["file"]))
            if listed is None or listed["manifest_sha256"] != item["manifest_sha256"]:
                plan.skipped.append((name, "not in the closing list"))
                continue
            header_bytes = b64decode(item["header"], "header")
            h = hashlib.sha256(header_bytes).digest()
            if h.hex() != listed["header_sha256"]:
                plan.skipped.append((name, "the header's hash differs from the closing list"))
                continue
            header = parse_header(header_bytes)
            if (header["tender"], header["lot"], header["bidder"], header["file"]) != (
                    tender, item["lot"], item["bidder"], item["file"]):
                plan.skipped.append((name, "the header names another tender, lot, bidder or file"))
                continue
            slots = {c["i"]: c["kid"] for c in header["custodians"]}
            if slots.get(i) != own_kid:
                plan.skipped.append((name, f"slot {i} of the header is not this X25519 key"))
                continue
            sealed = b64decode(item["sealed"], "sealed")
            try:
                plaintext = open_share(x25519_private, h, i, sealed, strict=False)
            except CryptoError as exc:
                plan.skipped.append((name, f"the sealed share does not open ({exc.code}); "
                                           "publish the per-tender private key to prove it"))
                continue
            if share_digest(h, plaintext) != item["digest"]:
                plan.skipped.append((name, "the share misses the bidder's digest; publish the "
                                           "per-tender private key to prove it"))
                continue
            plan.releases.append(make_release(tender, item["lot"], item["bidder"], item["file"],
                                              h.hex(), i, plaintext, closed.checkpoint_size, root_hex))
        except (CryptoError, KeyError, TypeError) as exc:
            plan.skipped.append((str(item.get("file", "?")) if isinstance(item, dict) else "?",
                                 f"malformed share entry: {exc}"))
    return plan


# --------------------------------------------------------------------------- commands


def _read_secret(path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        _fail("unusable_input", f"cannot read {path}: {exc.strerror or exc}", status=2)
    for ending in (b"\r\n", b"\n"):
        if data.endswith(ending):
            return data[: -len(ending)]
    return data


def _read_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        _fail("unusable_input", f"cannot read {path}: {exc.strerror or exc}", status=2)


@click.command("release")
@click.option("--server", required=True, help="The platform's base URL, e.g. https://ebid.example.")
@click.option("--tender", required=True, help="The tender (project id).")
@click.option("--i", "index", required=True, type=click.IntRange(1, 255), help="Your slot in the policy.")
@click.option("--key", "key_path", required=True, help="Your per-tender X25519 private key (PEM).")
@click.option("--signing-key", required=True, help="Your Ed25519 signing key (PEM).")
@click.option("--passphrase-file", default=None, help="Passphrase of the private keys.")
@click.option("--username", default=None, help="Your platform account (to fetch your shares).")
@click.option("--password-file", default=None, help="A file holding the account's password.")
@click.option("--log-key", "log_key_path", default=None,
              help="The log verifier key line, pinned from a source outside the platform.")
@click.option("--dry-run", is_flag=True, help="Check and print what would be released; post nothing.")
def release(server: str, tender: str, index: int, key_path: str, signing_key: str,
            passphrase_file: str | None, username: str | None, password_file: str | None,
            log_key_path: str | None, dry_run: bool) -> None:
    """Release your shares of a closed tender, after checking the closing yourself (§6)."""
    from core.clock import clock_from_env  # the one injectable clock

    passphrase = _read_secret(passphrase_file)
    try:
        x25519 = load_private_pem(_read_file(key_path), "x25519", passphrase)
        signer = load_private_pem(_read_file(signing_key), "ed25519", passphrase)
    except CryptoError as exc:
        _fail(exc.code, exc.message)
    client = Server(server)
    t = urllib.parse.quote(tender, safe="")
    try:
        now = clock_from_env().now()
        own_files_only = _check_policy(client, t, tender, index, x25519, signer)
        if log_key_path is not None:
            log_key = _read_file(log_key_path).decode("utf-8").strip()
        else:
            log_key = client.text("/api/v1/audit/key").strip()
            click.echo("warning: the log key was fetched from the server itself; pin it with "
                       "--log-key for a check that does not trust the platform", err=True)
        closing = client.json("GET", f"/api/v1/tenders/{t}/closing")["data"]
        closed = verify_closing(tender, closing, log_key)
        if now < closed.deadline:
            raise ReleaseError("before_deadline", f"this machine's clock says {format_time(now)}, "
                               f"before the deadline {format_time(closed.deadline)}")
        if username is not None:
            password = _read_secret(password_file) if password_file else click.prompt(
                "Password", hide_input=True).encode("utf-8")
            client.login(username, (password or b"").decode("utf-8"))
        shares = client.json("GET", f"/api/v1/tenders/{t}/shares?i={index}")["data"]
        plan = plan_releases(tender, index, closed, shares, x25519)
        for what, why in plan.skipped:
            click.echo(f"warning: not releasing {what}: {why}", err=True)
        served = {(s.get("lot"), s.get("bidder"), s.get("file")) for s in shares if isinstance(s, dict)}
        if not own_files_only:
            # a platform withholding a listed file's share would keep that bid from opening
            for lot, bidder, name in sorted(set(closed.files) - served):
                click.echo(f"warning: the server served no share of listed file {lot}/{bidder}/{name}", err=True)
        if dry_run:
            for payload in plan.releases:
                click.echo(f"would release share {index} of {payload['lot']}/{payload['bidder']}/"
                           f"{payload['file']}")
            click.echo(f"dry run: {len(plan.releases)} share(s) would be released")
            return
        if not plan.releases:
            click.echo("nothing to release")
            return
        signed = [sign_object("release", payload, signer, RELEASE) for payload in plan.releases]
        answer = client.json("POST", f"/api/v1/tenders/{t}/releases", {"data": signed})
        for item in answer.get("data", []):
            click.echo(f"released share {index} of {item.get('lot')}/{item.get('bidder')}/"
                       f"{item.get('file')}: {item.get('status')}")
        click.echo(f"{len(signed)} share(s) released")
    except ReleaseError as exc:
        _fail(exc.code, exc.message)
    except CryptoError as exc:
        _fail(exc.code, exc.message)


def _check_policy(client: Server, t: str, tender: str, index: int, x25519: Any, signer: Any) -> bool:
    """Slot ``index`` of the published policy must hold our keys, or be the bidder's own slot
    (then True: a bidder is served the shares of its own files only)."""
    try:
        policy = parse_policy(client.raw(f"/api/v1/tenders/{t}/policy"))
    except CryptoError as exc:
        raise ReleaseError(exc.code, f"the served policy: {exc.message}") from None
    if policy.tender != tender:
        raise ReleaseError("policy_mismatch", f"the served policy is for tender {policy.tender}")
    if not 1 <= index <= policy.n:
        raise ReleaseError("bad_share_index", f"the policy has custodians 1..{policy.n}")
    slot = policy.custodians[index - 1]
    if slot.role == BIDDER:
        return True  # the header's kid of this slot is checked per file against our key
    if slot.kid != key_id(x25519) or slot.signer != key_id(signer):
        raise ReleaseError("not_this_custodian",
                           f"slot {index} of the policy holds other keys than the ones given")
    return False


@click.command("tick")
@with_app
def tick() -> None:
    """Close every tender whose deadline has passed (closing also happens on first touch)."""
    from bidding.closing import LogSigner, close_due
    from core.db import db
    from core.runtime import runtime
    rt = runtime()
    now = rt.clock.now()
    closed = close_due(db.session, now, LogSigner(rt.log_origin, rt.keys.log_key))
    db.session.commit()
    for closing in closed:
        click.echo(f"closed tender {closing.project_id}: {len(closing.files)} file(s) listed, "
                   f"log index {closing.log_index}")
    click.echo(f"{format_time(now)}: {len(closed)} tender(s) closed")


def attach(cli: click.Group) -> None:
    """Add the sealed-bid commands to the root ``ebid`` group."""
    from bidding import offline_cli
    for command in (offline_cli.keygen, offline_cli.custodian, offline_cli.seal, offline_cli.unseal):
        if command.name not in cli.commands:
            cli.add_command(command)
    cli.add_command(release)
    cli.add_command(tick)
    __import__("bidding.supervision_cli", fromlist=["attach"]).attach(cli)  # ebid supervise scan
    __import__("bidding.backup", fromlist=["attach"]).attach(cli)  # ebid backup DIR, ebid restore DIR


__all__ = ["attach", "release", "tick", "verify_closing", "plan_releases", "ReleaseError"]

