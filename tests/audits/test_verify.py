"""The offline verifier against exports built, and then tampered with, in the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audits.entries import make_entry
from audits.verify import MAX_PROBLEMS, Report, count_entries, export_line, verify_export

AT = "2026-05-01T09:30:00.000Z"


def _codes(report: Report) -> set[str]:
    return {p.code for p in report.problems}


def _lines(directory: Path) -> list[bytes]:
    return (directory / "entries.jsonl").read_bytes().splitlines(keepends=True)


def _write_lines(directory: Path, lines: list[bytes]) -> None:
    (directory / "entries.jsonl").write_bytes(b"".join(lines))


@pytest.fixture
def good(export_builder) -> Path:
    return export_builder.write("good", export_builder.entries(20), [0, 5, 13, 20])


def test_valid_export(export_builder, good: Path) -> None:
    receipts = [export_builder.receipt(1), export_builder.receipt(19)]
    seen: list[int] = []
    report = verify_export(good, [], receipts, progress=seen.append)
    assert report.verdict == "valid", report.problems
    assert (report.entries, report.checkpoints, report.receipts, report.size) == (20, 4, 2, 20)
    assert report.root is not None and report.warnings == []
    assert seen[-1] == 20 and count_entries(good) == 20


def test_deleted_row(good: Path) -> None:
    lines = _lines(good)
    _write_lines(good, lines[:7] + lines[8:])
    report = verify_export(good, [], [])
    assert report.verdict == "invalid"
    assert {"index_gap", "root_mismatch", "checkpoint_beyond_log"} <= _codes(report)


def test_deleted_last_row_under_a_checkpoint(good: Path) -> None:
    _write_lines(good, _lines(good)[:-1])
    report = verify_export(good, [], [])
    assert report.verdict == "invalid" and _codes(report) == {"checkpoint_beyond_log"}


def test_edited_row(good: Path) -> None:
    lines = _lines(good)
    forged = make_entry(9, AT, "user:u1", "tender.amended", "tender:T-1", {"n": 9}, "00" * 32)
    lines[9] = export_line(9, forged)
    _write_lines(good, lines)
    report = verify_export(good, [], [])
    assert report.verdict == "invalid" and _codes(report) == {"root_mismatch"}
    # Sizes 0 and 5 still match; 13 and 20 cover the edited row.
    assert len(report.problems) == 2


def test_reordered_rows(good: Path) -> None:
    lines = _lines(good)
    lines[3], lines[4] = lines[4], lines[3]
    _write_lines(good, lines)
    report = verify_export(good, [], [])
    assert report.verdict == "invalid"
    assert {"index_gap", "entry_index_mismatch", "root_mismatch"} <= _codes(report)


def test_reordered_rows_with_renumbered_lines(export_builder) -> None:
    entries = export_builder.entries(8)
    directory = export_builder.write("x", entries, [8])
    swapped = entries[:2] + [entries[3], entries[2]] + entries[4:]
    _write_lines(directory, [export_line(i, e) for i, e in enumerate(swapped)])
    report = verify_export(directory, [], [])
    assert {"entry_index_mismatch", "root_mismatch"} <= _codes(report)
    assert "index_gap" not in _codes(report)


@pytest.mark.parametrize(
    "line",
    [b"not json\n", b'{"index":20}\n', b'{"index":20,"leaf":"AAA"}\n',
     b'{"index":20,"leaf":"AA==","x":1}\n', b'{"index":"20","leaf":"AA=="}\n',
     b'{"index":20,"index":20,"leaf":"AA=="}\n', b"\n"],
)
def test_malformed_lines(good: Path, line: bytes) -> None:
    _write_lines(good, _lines(good) + [line])
    report = verify_export(good, [], [])
    assert report.verdict == "invalid" and "bad_entries_line" in _codes(report)


def test_boolean_index_is_refused(good: Path) -> None:
    lines = _lines(good)
    lines[1] = lines[1].replace(b'"index":1,', b'"index":true,')
    _write_lines(good, lines)
    assert "bad_entries_line" in _codes(verify_export(good, [], []))


def test_non_canonical_entry_is_refused_even_when_signed(export_builder) -> None:
    entries = export_builder.entries(4)
    entries[2] = json.dumps(json.loads(entries[2])).encode()  # spaces: not canonical
    directory = export_builder.write("x", entries, [4])
    report = verify_export(directory, [], [])
    assert report.verdict == "invalid" and _codes(report) == {"bad_entry"}


def test_forged_checkpoint_signature(export_builder, good: Path) -> None:
    forger = Ed25519PrivateKey.generate()
    (good / "checkpoints" / "13.txt").write_text(
        export_builder.sign(export_builder.entries(20), 13, key=forger))
    report = verify_export(good, [], [])
    assert report.verdict == "invalid" and _codes(report) == {"bad_checkpoint_signature"}
    assert report.checkpoints == 3


def test_checkpoint_with_a_flipped_root(good: Path) -> None:
    path = good / "checkpoints" / "13.txt"
    body, _, signatures = path.read_text().partition("\n\n")
    origin, size, root = body.split("\n")
    flipped = ("B" if root[0] == "A" else "A") + root[1:]
    path.write_text(f"{origin}\n{size}\n{flipped}\n\n{signatures}")
    assert "bad_checkpoint_signature" in _codes(verify_export(good, [], []))


def test_checkpoint_that_is_not_text(good: Path) -> None:
    (good / "checkpoints" / "13.txt").write_bytes(b"\xff\xfe")
    assert _codes(verify_export(good, [], [])) == {"bad_checkpoint"}


def test_checkpoint_under_the_wrong_name(good: Path) -> None:
    (good / "checkpoints" / "13.txt").rename(good / "checkpoints" / "12.txt")
    report = verify_export(good, [], [])
    assert _codes(report) == {"bad_checkpoint"}


def test_rewritten_history_resigned_with_the_right_key(export_builder) -> None:
    original = export_builder.entries(20)
    pinned = export_builder.note_file("pinned-13.txt", export_builder.sign(original, 13))
    rewritten = list(original)
    rewritten[4] = make_entry(4, AT, "user:u9", "tender.amended", "tender:T-1", {"n": 0}, None)
    directory = export_builder.write("rewritten", rewritten, [5, 13, 20])
    # On its own the rewritten export is self-consistent: the log key signed it all.
    assert verify_export(directory, [], []).verdict == "valid"
    report = verify_export(directory, [pinned], [])
    assert report.verdict == "invalid"
    assert _codes(report) == {"inconsistent_checkpoints", "inconsistent_checkpoint"}


def test_pinned_checkpoint_at_a_size_the_export_lacks(export_builder) -> None:
    original = export_builder.entries(20)
    pinned = export_builder.note_file("p.txt", export_builder.sign(original, 11))
    good = export_builder.write("good", original, [20])
    assert verify_export(good, [pinned], []).verdict == "valid"
    rewritten = list(original)
    rewritten[10] = make_entry(10, AT, "user:u9", "tender.amended", "tender:T-1", {}, None)
    bad = export_builder.write("bad", rewritten, [20])
    report = verify_export(bad, [pinned], [])
    assert report.verdict == "invalid" and _codes(report) == {"inconsistent_checkpoint"}


def test_pinned_checkpoint_beyond_a_truncated_export(export_builder) -> None:
    entries = export_builder.entries(20)
    pinned = export_builder.note_file("p.txt", export_builder.sign(entries, 20))
    truncated = export_builder.write("t", entries[:15], [15])
    report = verify_export(truncated, [pinned], [])
    assert report.verdict == "invalid" and _codes(report) == {"checkpoint_beyond_log"}


def test_pinned_checkpoint_from_another_key(export_builder, good: Path) -> None:
    other = export_builder.note_file(
        "o.txt", export_builder.sign(export_builder.entries(20), 5, Ed25519PrivateKey.generate()))
    assert _codes(verify_export(good, [other], [])) == {"bad_checkpoint_signature"}


def test_pinned_log_key(export_builder, good: Path) -> None:
    held = export_builder.root / "held.key"
    held.write_text((good / "keys" / "log.key").read_text())
    assert verify_export(good, [], [], log_key=held).verdict == "valid"
    # An export whose key and checkpoints were all replaced fails against the held key.
    impostor = export_builder.impostor("impostor")
    swapped = impostor.write("e", export_builder.entries(20), [20])
    report = verify_export(swapped, [], [], log_key=held)
    assert _codes(report) == {"log_key_mismatch", "bad_checkpoint_signature"}


def test_receipts(export_builder, good: Path) -> None:
    ok = export_builder.receipt(4)
    beyond = export_builder.receipt(20)
    not_a_submission = export_builder.receipt(5)
    forged = export_builder.receipt(7, key=Ed25519PrivateKey.generate())
    edited = export_builder.receipt(10)
    envelope = json.loads(edited.read_text())
    envelope["receipt"]["log_index"] = 13
    edited.write_text(json.dumps(envelope))
    garbage = export_builder.note_file("garbage.json", "{")
    not_utf8 = export_builder.note_file("latin1.json", "")
    not_utf8.write_bytes(b"\xff{}")
    given = [ok, beyond, not_a_submission, forged, edited, garbage, not_utf8]
    report = verify_export(good, [], given)
    assert report.verdict == "invalid" and report.receipts == 7
    assert sorted(p.code for p in report.problems) == sorted([
        "receipt_not_in_log", "receipt_entry_mismatch", "unknown_receipt_key",
        "bad_receipt_signature", "bad_receipt", "bad_receipt"])


def test_receipt_at_a_hidden_submission_is_valid(export_builder, good: Path) -> None:
    assert verify_export(good, [], [export_builder.receipt(16)]).verdict == "valid"


def test_unusable_inputs(export_builder, good: Path, tmp_path: Path) -> None:
    def code(*args, **kwargs) -> str:
        report = verify_export(*args, **kwargs)
        assert report.verdict == "unusable"
        return report.problems[0].code

    assert code(tmp_path / "nope", [], []) == "missing_export"
    assert code(good, [tmp_path / "nope.txt"], []) == "missing_file"
    assert code(good, [], [tmp_path / "nope.json"]) == "missing_file"
    assert code(good, [], [], log_key=tmp_path / "nope.key") == "missing_file"
    receipt = export_builder.receipt(1)
    key_file = next((good / "keys").glob("receipt-*.pub"))
    key_file.write_text("not base64")
    assert code(good, [], [receipt]) == "bad_receipt_key"
    (good / "keys" / "log.key").write_text("garbage\n")
    assert code(good, [], []) == "bad_log_key"
    (good / "keys" / "log.key").unlink()
    assert code(good, [], []) == "missing_file"
    (good / "entries.jsonl").unlink()
    assert code(good, [], []) == "missing_file"
    empty = export_builder.write("empty", export_builder.entries(3), [])
    assert code(empty, [], []) == "no_checkpoints"


def test_tail_without_checkpoint_is_a_warning(export_builder) -> None:
    directory = export_builder.write("x", export_builder.entries(10), [6])
    (directory / "checkpoints" / "README").write_text("hello")
    report = verify_export(directory, [], [])
    assert report.verdict == "valid" and report.size == 6 and len(report.warnings) == 2


def test_problems_are_bounded(export_builder) -> None:
    entries = export_builder.entries(300)
    directory = export_builder.write("x", entries, list(range(2, 301)))
    lines = _lines(directory)
    lines[1] = export_line(1, b"{}")
    _write_lines(directory, lines)
    report = verify_export(directory, [], [])
    assert len(report.problems) == MAX_PROBLEMS and report.omitted_problems > 0


def test_streaming_a_longer_log(export_builder) -> None:
    entries = export_builder.entries(3000)
    directory = export_builder.write("x", entries, [1, 1024, 2047, 3000])
    seen: list[int] = []
    report = verify_export(directory, [], [], progress=seen.append)
    assert report.verdict == "valid" and report.entries == 3000
    assert seen == [1024, 2048, 3000]


@pytest.mark.parametrize("name", ["merkle", "notes", "entries", "verify", "offline_cli"])
def test_modules_are_pure(name: str) -> None:
    source = (Path(__file__).resolve().parents[2] / "audits" / f"{name}.py").read_text()
    for banned in ("flask", "sqlalchemy", "import time", ".now(", "utcnow", "core."):
        assert banned not in source, f"{name}.py mentions {banned}"
