"""`ebid audit verify`: verdicts, exit codes and the progress bar, through click's runner."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audits import offline_cli
from audits.entries import make_entry
from audits.verify import export_line


def _run(*args: str | Path) -> Result:
    return CliRunner().invoke(offline_cli.verify, [str(a) for a in args])


@pytest.fixture
def good(export_builder) -> Path:
    return export_builder.write("good", export_builder.entries(30), [10, 30])


def test_is_a_click_command() -> None:
    assert isinstance(offline_cli.verify, click.Command) and offline_cli.verify.name == "verify"


def test_valid(export_builder, good: Path) -> None:
    result = _run(good, "--receipt", export_builder.receipt(1), "--checkpoint",
                  good / "checkpoints" / "10.txt")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("VALID")
    assert "size 30" in result.stdout and "receipts given: 1" in result.stdout
    assert "Verifying" not in result.stderr  # small logs draw no bar


def test_deleted_row_exits_1(good: Path) -> None:
    lines = (good / "entries.jsonl").read_bytes().splitlines(keepends=True)
    (good / "entries.jsonl").write_bytes(b"".join(lines[:12] + lines[13:]))
    result = _run(good)
    assert result.exit_code == 1
    assert result.stdout.startswith("INVALID") and "index_gap" in result.stdout


def test_edited_row_exits_1(good: Path) -> None:
    lines = (good / "entries.jsonl").read_bytes().splitlines(keepends=True)
    edited = make_entry(3, "2026-05-01T09:30:00.000Z", "user:u1", "tender.amended",
                        "tender:T-1", {"n": 4}, None)
    lines[3] = export_line(3, edited)
    (good / "entries.jsonl").write_bytes(b"".join(lines))
    result = _run(good)
    assert result.exit_code == 1 and "root_mismatch" in result.stdout


def test_reordered_rows_exit_1(good: Path) -> None:
    lines = (good / "entries.jsonl").read_bytes().splitlines(keepends=True)
    lines[20], lines[21] = lines[21], lines[20]
    (good / "entries.jsonl").write_bytes(b"".join(lines))
    assert _run(good).exit_code == 1


def test_forged_checkpoint_exits_1(export_builder, good: Path) -> None:
    note = export_builder.sign(export_builder.entries(30), 30, Ed25519PrivateKey.generate())
    (good / "checkpoints" / "30.txt").write_text(note)
    result = _run(good)
    assert result.exit_code == 1 and "bad_checkpoint_signature" in result.stdout


def test_rewritten_history_caught_by_pinned_checkpoint(export_builder) -> None:
    original = export_builder.entries(30)
    pinned = export_builder.note_file("pinned.txt", export_builder.sign(original, 10))
    rewritten = list(original)
    rewritten[2] = make_entry(2, "2026-05-01T09:30:00.000Z", "user:u2", "tender.amended",
                              "tender:T-1", {}, None)
    directory = export_builder.write("rewritten", rewritten, [10, 30])
    assert _run(directory).exit_code == 0
    result = _run(directory, "--checkpoint", pinned)
    assert result.exit_code == 1 and "inconsistent_checkpoint" in result.stdout


def test_unusable_input_exits_2(export_builder, good: Path, tmp_path: Path) -> None:
    assert _run(tmp_path / "missing").exit_code == 2
    assert _run(good, "--checkpoint", tmp_path / "missing.txt").exit_code == 2
    assert _run(good, "--receipt", tmp_path / "missing.json").exit_code == 2
    (good / "keys" / "log.key").write_text("not a key\n")
    result = _run(good)
    assert result.exit_code == 2 and result.stdout.startswith("UNUSABLE")
    assert "bad_log_key" in result.stdout


def test_pinned_log_key_option(export_builder, good: Path, tmp_path: Path) -> None:
    held = tmp_path / "held.key"
    held.write_text((good / "keys" / "log.key").read_text())
    assert _run(good, "--log-key", held).exit_code == 0
    other = export_builder.impostor("other").write("o", export_builder.entries(3), [3])
    result = _run(other, "--log-key", held)
    assert result.exit_code == 1 and "log_key_mismatch" in result.stdout


def test_progress_bar_on_large_logs(export_builder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offline_cli, "LARGE_LOG", 100)
    directory = export_builder.write("big", export_builder.entries(2100), [2100])
    result = _run(directory)
    assert result.exit_code == 0
    assert "Verifying entries" in result.stderr and "Verifying" not in result.stdout


def test_really_large_log(export_builder) -> None:
    # Above the real threshold, end to end: 10,001 entries stream well within a second or two.
    directory = export_builder.write("huge", export_builder.entries(10_001), [5000, 10_001])
    result = _run(directory)
    assert result.exit_code == 0 and "Verifying entries" in result.stderr
