"""`ebid audit …` commands: export, verify (offline), check (storage) and witness."""
from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import click

from audits.offline_cli import verify
from core.cli_support import fail, with_app


@click.group("audit", help="The tamper-evident audit log: export, verify, check, witness.")
def audit_group() -> None:
    pass


audit_group.add_command(verify)


@audit_group.command("export", help="Write entries, checkpoints and keys to DIR for offline verification.")
@click.argument("directory", type=click.Path(path_type=Path))
@with_app
def export(directory: Path) -> None:
    import sqlalchemy as sa

    from audits.models import Checkpoint, LogEntry
    from audits.notes import verifier_key_line
    from audits.verify import CHECKPOINTS_DIR, ENTRIES_FILE, LOG_KEY_FILE, export_line, receipt_key_file
    from core.db import db
    from core.runtime import runtime
    from crypto.canonical import b64encode

    rt = runtime()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CHECKPOINTS_DIR).mkdir(exist_ok=True)
    (directory / "keys").mkdir(exist_ok=True)
    count, last = 0, -1
    tmp = directory / (ENTRIES_FILE + ".tmp")
    with open(tmp, "wb") as out:
        while True:  # in batches: a million entries never sit in memory at once
            rows = db.session.execute(sa.select(LogEntry.index, LogEntry.entry)
                                      .where(LogEntry.index > last).order_by(LogEntry.index)
                                      .limit(5000)).all()
            if not rows:
                break
            for index, entry in rows:
                out.write(export_line(index, bytes(entry)))
                last, count = index, count + 1
    os.replace(tmp, directory / ENTRIES_FILE)
    notes = 0
    for size, note in db.session.execute(sa.select(Checkpoint.size, Checkpoint.note)):
        (directory / CHECKPOINTS_DIR / f"{size}.txt").write_text(note, encoding="utf-8")
        notes += 1
    (directory / LOG_KEY_FILE).write_text(verifier_key_line(rt.log_origin, rt.keys.log_public) + "\n")
    receipt_key_file(directory, rt.keys.receipt_kid).write_text(b64encode(rt.keys.receipt_public) + "\n")
    for kid, public in rt.keys.retired_receipt_keys.items():
        receipt_key_file(directory, kid).write_text(b64encode(public) + "\n")
    click.echo(f"exported {count} entries and {notes} checkpoints to {directory}")


@audit_group.command("check", help="Recompute the tree from storage and compare with the checkpoints.")
@with_app
def check() -> None:
    from audits.notes import verifier_key_line
    from audits.storage_check import check_storage
    from core.db import db
    from core.runtime import runtime

    rt = runtime()
    result = check_storage(db.session, verifier_key_line(rt.log_origin, rt.keys.log_public))
    if result.ok:
        click.echo(f"ok: {result.size} entries, {result.checkpoints} checkpoints agree with storage")
        return
    for problem in result.problems:
        click.echo(f"problem: {problem}", err=True)
    click.echo(f"INVALID: the stored log does not match what was signed ({len(result.problems)} problems)",
               err=True)
    raise SystemExit(1)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 (operator-given URL)
        return resp.read()


@audit_group.command("witness", help="Pin the server's latest checkpoint after checking it extends the last one pinned.")
@click.option("--server", required=True, help="Base URL, e.g. http://127.0.0.1:8000")
@click.option("--state", "state_dir", required=True, type=click.Path(path_type=Path),
              help="The supervisor's own folder of pinned checkpoints.")
def witness(server: str, state_dir: Path) -> None:
    """A supervisor's witness: a fork (a checkpoint inconsistent with one pinned) is proof of
    tampering; the evidence is kept and the command exits 1."""
    from audits import merkle
    from audits.notes import NoteError, parse_and_verify_checkpoint
    from crypto.canonical import b64decode

    base = server.rstrip("/") + "/api/v1/audit"
    state_dir.mkdir(parents=True, exist_ok=True)
    key_file = state_dir / "log.key"
    served_key = _get(f"{base}/key").decode().strip()
    if key_file.exists():
        pinned_key = key_file.read_text().strip()
        if pinned_key != served_key:
            fail("key_changed", "the server's log key differs from the one pinned in the state folder")
    else:
        key_file.write_text(served_key + "\n")
        click.echo("pinned the log key (first run): check it against a source outside the platform")
        pinned_key = served_key
    note = _get(f"{base}/checkpoint").decode()
    try:
        new = parse_and_verify_checkpoint(note, pinned_key)
    except NoteError as exc:
        fail("bad_checkpoint", f"the server's checkpoint does not verify: {exc}")
    latest = state_dir / "latest.txt"
    if latest.exists():
        old_note = latest.read_text()
        old = parse_and_verify_checkpoint(old_note, pinned_key)
        if new.size < old.size:
            _fork(state_dir, old_note, note, "the server's log shrank")
        if new.size == old.size and new.root != old.root:
            _fork(state_dir, old_note, note, "two different roots for one size")
        if new.size > old.size:
            body = json.loads(_get(f"{base}/proof/consistency?first={old.size}&second={new.size}"))
            path = [b64decode(p) for p in body["data"]["path"]]
            if not merkle.verify_consistency(old.size, new.size, old.root, new.root, path):
                _fork(state_dir, old_note, note, "the new checkpoint does not extend the pinned one")
    (state_dir / "history").mkdir(exist_ok=True)
    (state_dir / "history" / f"{new.size}.txt").write_text(note)
    latest.write_text(note)
    click.echo(f"ok: pinned checkpoint at size {new.size}")


def _fork(state_dir: Path, old_note: str, new_note: str, why: str) -> None:
    evidence = state_dir / "FORK-EVIDENCE"
    evidence.mkdir(exist_ok=True)
    (evidence / "pinned.txt").write_text(old_note)
    (evidence / "served.txt").write_text(new_note)
    click.echo(f"FORK DETECTED: {why}. Evidence kept in {evidence}. Report this to the "
               f"supervising authority: the log has been rewritten.", err=True)
    raise SystemExit(1)


@click.group("keys", help="The platform's signing keys.")
def keys_group() -> None:
    pass


@keys_group.command("rotate-receipt", help="Make a new receipt key; old receipts still verify.")
def rotate_receipt() -> None:
    from audits.keys import rotate_receipt_key
    from core.config import load_config
    kid = rotate_receipt_key(load_config()["EBID_INSTANCE_PATH"])
    click.echo(f"new receipt key {kid}; restart the server to use it")


def attach(cli: click.Group) -> None:
    cli.add_command(audit_group)
    cli.add_command(keys_group)
