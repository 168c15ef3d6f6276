"""Commands of the expert draw and the pool.

``ebid draw commit`` / ``ebid draw reveal`` run on the supervising body's own machine
(PROTOCOL §8): the secret is made there and never leaves it until the draw.
``ebid experts verify-draw`` re-runs a published draw from public data alone and says
whether it matches (exit 0 match, 1 mismatch, 2 unusable). ``ebid experts import`` and
``export`` are the pool keeper's offline equivalents of the HTTP endpoints.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, NoReturn

import click

from core.actor import Actor
from core.cli_support import fail, with_app

TIMEOUT_S = 60
#: Who the operator's commands act as: the system, with the pool keeper's role (whoever
#: can run commands on the server already holds the database).
_OPERATOR = Actor(user_id=None, username="system", roles=frozenset({"system", "admin"}))


# --------------------------------------------------------------------------- draw commit / reveal

@click.group("draw", help="The supervising body's side of the expert draw (PROTOCOL §8).")
def draw_group() -> None:
    pass


@draw_group.command("commit", help="Make a fresh 32-byte secret in a new local file and "
                                   "print its commitment (post it before the draw).")
@click.option("--secret-file", "secret_file", required=True, type=click.Path(path_type=Path),
              help="Where to keep the secret (created; never overwritten).")
def draw_commit(secret_file: Path) -> None:
    from trading.draw import SECRET_SIZE, commitment
    secret = secrets.token_bytes(SECRET_SIZE)
    try:
        # O_EXCL: an existing secret file is somebody's earlier commitment; never clobber it.
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        fail("file_exists", f"{secret_file} exists: each draw needs a fresh secret", 2)
    except OSError as exc:
        fail("cannot_write", f"{secret_file}: {exc.strerror}", 2)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secret.hex() + "\n")
    click.echo(commitment(secret))


def _read_secret(secret_file: Path) -> bytes:
    from trading.draw import SECRET_SIZE
    try:
        text = secret_file.read_text(encoding="ascii").strip()
        secret = bytes.fromhex(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        fail("bad_secret_file", f"{secret_file}: {exc}", 2)
    if len(secret) != SECRET_SIZE:
        fail("bad_secret_file", f"{secret_file}: the secret must be {SECRET_SIZE} bytes", 2)
    return secret


@draw_group.command("reveal", help="Print the secret (hex) to post at the draw.")
@click.option("--secret-file", "secret_file", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--commitment", "expected", default=None,
              help="Check the secret against this commitment first.")
def draw_reveal(secret_file: Path, expected: str | None) -> None:
    from trading.draw import check_reveal, commitment
    secret = _read_secret(secret_file)
    if expected is not None and not check_reveal(secret, expected.strip().lower()):
        fail("commitment_mismatch", f"this secret commits to {commitment(secret)}, "
                                    f"not {expected}: revealing it would void the draw", 1)
    click.echo(secret.hex())


# --------------------------------------------------------------------------- verify-draw

class Unusable(Exception):
    """The draw cannot be judged (server unreachable, not published, malformed answer)."""


class Mismatch(Exception):
    """A check failed: the published draw does not hold together."""


def _get(base: str, path: str, *, text: bool = False) -> Any:
    request = urllib.request.Request(base.rstrip("/") + path, headers={"Accept-Language": "en"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode("utf-8", "replace")
        raise Unusable(f"GET {path} answered {exc.code}: {detail}") from None
    except urllib.error.URLError as exc:
        raise Unusable(f"{base}: {exc.reason}") from None
    if text:
        return raw.decode("utf-8")
    try:
        return json.loads(raw)
    except ValueError:
        raise Unusable(f"GET {path} did not answer JSON") from None


def _b64(text: str) -> bytes:
    from crypto.canonical import b64decode
    return b64decode(text, "value")


def verify_draw(base: str, tender: str, attempt: int, lot: str | None) -> list[str]:
    """Re-run one draw from public data; return what was checked. Raises :class:`Mismatch`
    or :class:`Unusable`."""
    from audits import entries as log_entries
    from audits import merkle, notes
    from crypto.canonical import canonical_json
    from trading import draw

    checked: list[str] = []
    key_line = _get(base, "/api/v1/audit/key", text=True).strip()
    query = f"?lot={urllib.parse.quote(lot)}" if lot else ""
    record = _get(base, f"/api/v1/tenders/{tender}/draws/{attempt}{query}")["data"]
    if not record.get("public"):
        raise Unusable("the draw is not published yet (committee names are secret until the result)")
    if record["status"] != "valid":
        raise Unusable(f"the draw is {record['status']}: there is no committee to re-run")
    try:
        closing = record["closing"]
        request, lists, result = record["request"], record["eligible_lists"], record["result"]
        platform = bytes.fromhex(record["commitments"]["platform"]["secret"])
        supervisor = bytes.fromhex(record["commitments"]["supervisor"]["secret"])
    except (KeyError, TypeError, ValueError) as exc:
        raise Unusable(f"the draw record lacks {exc}") from None

    # The closing checkpoint: signed with the log key, and it includes tender.closed.
    try:
        checkpoint = notes.parse_and_verify_checkpoint(closing["checkpoint"], key_line)
    except notes.NoteError as exc:
        raise Mismatch(f"closing checkpoint: {exc.message}") from None
    if checkpoint.size != closing["size"] or checkpoint.root.hex() != closing["root"]:
        raise Mismatch("the closing root is not the signed checkpoint's root")
    leaf = _b64(closing["leaf"])
    path = [_b64(p) for p in closing["inclusion"]]
    if not merkle.verify_inclusion(merkle.leaf_hash(leaf), closing["index"], checkpoint.size,
                                   path, checkpoint.root):
        raise Mismatch("the tender.closed entry is not in the closing checkpoint's tree")
    entry = log_entries.parse_entry(leaf)
    if entry["action"] != "tender.closed" or entry["subject"] not in (f"project:{tender}", f"tender:{tender}"):
        raise Mismatch(f"log entry {closing['index']} is not this tender's tender.closed")
    checked.append(f"closing checkpoint {checkpoint.size} signed; tender.closed #{closing['index']} included")

    # Commitments, request and lists against what the log recorded before the draw.
    latest = notes.parse_and_verify_checkpoint(_get(base, "/api/v1/audit/checkpoint", text=True), key_line)
    if latest.size > checkpoint.size:
        proof = _get(base, f"/api/v1/audit/proof/consistency?first={checkpoint.size}&second={latest.size}")
        if not merkle.verify_consistency(checkpoint.size, latest.size, checkpoint.root, latest.root,
                                         [_b64(p) for p in proof["data"]["path"]]):
            raise Mismatch("the latest checkpoint is not consistent with the closing checkpoint")

    def logged(index: int) -> dict[str, Any]:
        raw = _get(base, f"/api/v1/audit/entries?start={index}&end={index + 1}")["data"][0]["leaf"]
        proof = _get(base, f"/api/v1/audit/proof/inclusion?index={index}&size={latest.size}")
        leaf_bytes = _b64(raw)
        if not merkle.verify_inclusion(merkle.leaf_hash(leaf_bytes), index, latest.size,
                                       [_b64(p) for p in proof["data"]["path"]], latest.root):
            raise Mismatch(f"log entry {index} is not in the latest checkpoint's tree")
        return log_entries.parse_entry(leaf_bytes)

    for party, secret in (("platform", platform), ("supervisor", supervisor)):
        info = record["commitments"][party]
        if not draw.check_reveal(secret, info["commitment"]):
            raise Mismatch(f"the {party}'s secret does not open its commitment")
        committed = logged(info["log_index"])
        if committed["action"] != "draw.committed" or committed["data"].get("commitment") != info["commitment"]:
            raise Mismatch(f"the {party}'s commitment is not the one logged at #{info['log_index']}")
        if attempt == 1 and info["log_index"] > closing["index"]:
            raise Mismatch(f"the {party} committed after the tender closed")
        if info["log_index"] > record["log"]["requested"]:
            raise Mismatch(f"the {party} committed after the request was logged")
    checked.append("both secrets open their commitments, logged in time")
    requested = logged(record["log"]["requested"])
    if hashlib.sha256(canonical_json(request)).hexdigest() != requested["data"].get("request_sha256"):
        raise Mismatch("the request is not the one logged")
    if draw.eligible_lists_sha256(lists) != requested["data"].get("eligible_lists_sha256"):
        raise Mismatch("the eligible lists are not the ones logged")
    checked.append(f"request and eligible lists match draw.requested #{record['log']['requested']}")

    seed = draw.seed(platform, supervisor, checkpoint.root, request)
    if record.get("seed") not in (None, seed.hex()):
        raise Mismatch("the published seed differs from the recomputed one")
    rerun = draw.draw_committee(seed, request, lists).to_json()
    if rerun != result:
        raise Mismatch(f"re-run gives {rerun}, published {result}")
    checked.append(f"seed {seed.hex()}; the same committee: {rerun}")
    return checked


@click.group("experts", help="The expert pool and the draw's verifier.")
def experts_group() -> None:
    pass


@experts_group.command("verify-draw", help="Re-run a published draw from public data alone. "
                                           "Exit 0 match, 1 mismatch, 2 unusable.")
@click.option("--server", required=True, help="Base URL of the platform.")
@click.option("--tender", required=True)
@click.option("--attempt", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--lot", default=None)
def verify_draw_command(server: str, tender: str, attempt: int, lot: str | None) -> None:
    try:
        checked = verify_draw(server, tender, attempt, lot)
    except Mismatch as exc:
        _finish(1, f"MISMATCH: {exc}")
    except Unusable as exc:
        _finish(2, f"unusable: {exc}")
    except Exception as exc:  # a malformed answer anywhere is unusable input, not a verdict
        from trading.draw import DrawError
        code = 1 if isinstance(exc, DrawError) else 2
        _finish(code, f"{'MISMATCH' if code == 1 else 'unusable'}: {exc}")
    for line in checked:
        click.echo(f"ok: {line}")
    click.echo("MATCH")


def _finish(code: int, message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


@experts_group.command("import", help="Import a pool file (CSV or XLSX), all or nothing.")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_app
def import_command(path: Path) -> None:
    from core.db import db
    from core.errors import AppError
    from core.runtime import runtime
    from trading import experts
    now = runtime().clock.now()
    data = path.read_bytes()
    try:
        report = experts.import_experts(db.session, _OPERATOR, now, data,
                                        experts.file_format(None, path.name))
        db.session.commit()
    except AppError as exc:
        db.session.rollback()
        for error in exc.details.get("errors", []):
            click.echo(f"row {error['row']}: {error['column'] or '-'}: {error['message']}", err=True)
        fail(exc.code, exc.message_en)
    click.echo(f"imported {report.rows} rows: {report.created} new, {report.updated} replaced "
               f"(log #{report.log_index})")


@experts_group.command("export", help="Export the pool as CSV or XLSX.")
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]), default="csv", show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@with_app
def export_command(fmt: str, out: Path) -> None:
    from core.db import db
    from core.runtime import runtime
    from trading import experts
    experts.log_export(db.session, _OPERATOR, runtime().clock.now(), fmt)
    db.session.commit()
    chunks = (experts.export_xlsx(db.session, release_between_pages=True) if fmt == "xlsx"
              else experts.export_csv(db.session, release_between_pages=True))
    with open(out, "wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
    click.echo(f"wrote {out}")


def attach(cli: click.Group) -> None:
    cli.add_command(draw_group)
    cli.add_command(experts_group)
