"""The offline verifier: check an exported audit log with no server and no database.

Export directory format (v1)::

    DIR/
      entries.jsonl             one line per entry, in order 0 .. n-1, each a JSON object
                                {"index": i, "leaf": "<standard base64 of the entry bytes>"}
                                ending in "\\n" (writers emit canonical JSON: export_line())
      checkpoints/<size>.txt    one signed checkpoint note (PROTOCOL §7) per file, named by
                                its tree size in decimal, e.g. checkpoints/1024.txt
      keys/log.key              the log's verifier key line name+hex(keyid)+base64(0x01||pub)
      keys/receipt-<kid>.pub    base64 of a raw 32-byte Ed25519 receipt public key, one per
                                key id, current and retired, so old receipts still verify

What is checked, streaming the entries once in O(log n) memory (a Merkle frontier): the
indices run 0 .. n-1 with no gap; each entry parses strictly and its "index" is its
position; the root recomputed at every checkpoint size equals the signed root; every
checkpoint, in the export or given by the caller (a supervisor's pinned ones), verifies
with the log key; two checkpoints of one size agree; and each receipt given verifies with
its receipt key, points inside the log, at a ``bid.submitted`` entry.

Verdicts: ``valid``; ``invalid`` (the evidence shows the export differs from what was
signed, or a receipt or checkpoint is bad); ``unusable`` (input missing or unreadable:
nothing was judged).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from audits.entries import EntryError, parse_entry
from audits.merkle import EMPTY_ROOT, Frontier, leaf_hash
from audits.notes import NoteError, VerifierKey, parse_and_verify_checkpoint, parse_verifier_key
from crypto.canonical import b64decode, b64encode, canonical_json, loads_strict
from crypto.errors import CryptoError
from crypto.keys import kid as receipt_kid
from crypto.signing import RECEIPT, envelope_kid, verify_object

ENTRIES_FILE = "entries.jsonl"
CHECKPOINTS_DIR = "checkpoints"
LOG_KEY_FILE = "keys/log.key"
SUBMISSION_ACTION = "bid.submitted"
LARGE_LOG = 10_000
MAX_PROBLEMS = 100  # one bad line early on makes every later root wrong; say so once
PROGRESS_EVERY = 1024

_CHECKPOINT_NAME_RE = re.compile(r"(0|[1-9][0-9]{0,18})\.txt")


@dataclass(frozen=True)
class Problem:
    """One finding: a stable ``code`` and a message for people."""

    code: str
    message: str


@dataclass
class Report:
    """The outcome of verify_export."""

    verdict: Literal["valid", "invalid", "unusable"] = "valid"
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    omitted_problems: int = 0
    entries: int = 0
    checkpoints: int = 0  # checkpoints whose signature verified
    receipts: int = 0  # receipts given
    size: int = 0  # the largest checkpoint size within the export
    root: bytes | None = None  # the root recomputed from the entries at that size

    def add(self, code: str, message: str) -> None:
        """Record a problem, keeping the list bounded."""
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(code, message))
        else:
            self.omitted_problems += 1


def export_line(index: int, entry: bytes) -> bytes:
    """The entries.jsonl line for one entry, as exporters should write it."""
    return canonical_json({"index": index, "leaf": b64encode(entry)}) + b"\n"


def checkpoint_file(directory: Path, size: int) -> Path:
    """Where the checkpoint of a given size lives in an export."""
    return Path(directory) / CHECKPOINTS_DIR / f"{size}.txt"


def receipt_key_file(directory: Path, kid: str) -> Path:
    """Where the receipt public key with this key id lives in an export."""
    return Path(directory) / "keys" / f"receipt-{kid}.pub"


def count_entries(directory: Path) -> int:
    """Count the lines of entries.jsonl cheaply, to size a progress bar."""
    count = 0
    with open(Path(directory) / ENTRIES_FILE, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            count += chunk.count(b"\n")
    return count


@dataclass
class _Signed:
    """A verified checkpoint and where it came from."""

    source: str
    size: int
    root: bytes
    pinned: bool  # given by the caller rather than found in the export


@dataclass
class _Receipt:
    source: str
    log_index: int


class _Unusable(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise _Unusable("missing_file", f"{what} not found: {path}") from None
    except OSError as exc:
        raise _Unusable("unreadable_file", f"cannot read {what} {path}: {exc}") from None


def _read_text(path: Path, what: str) -> str:
    try:
        return _read_bytes(path, what).decode("utf-8")
    except UnicodeDecodeError:
        raise _Unusable("unreadable_file", f"{what} {path} is not UTF-8 text") from None


def _load_log_key(directory: Path, log_key: Path | None, report: Report) -> VerifierKey:
    text = _read_text(directory / LOG_KEY_FILE, "log key")
    try:
        exported = parse_verifier_key(text)
        pinned = parse_verifier_key(_read_text(log_key, "log key")) if log_key else exported
    except NoteError as exc:
        raise _Unusable("bad_log_key", f"the log verifier key is unusable: {exc.message}") from None
    if pinned != exported:
        report.add("log_key_mismatch", "keys/log.key is not the log key you hold")
    return pinned


def _checkpoint(path: Path, key: VerifierKey, pinned: bool, report: Report) -> _Signed | None:
    """Verify one checkpoint note; record a problem and return None when it fails."""
    note = _read_bytes(path, "checkpoint")  # not UTF-8 is a bad note, not unusable input
    try:
        cp = parse_and_verify_checkpoint(note, key)
    except NoteError as exc:
        signature = exc.code in ("bad_signature", "unknown_key")
        code = "bad_checkpoint_signature" if signature else "bad_checkpoint"
        report.add(code, f"{path.name}: {exc.message}")
        return None
    if not pinned and path.name != f"{cp.size}.txt":
        report.add("bad_checkpoint", f"{path.name} holds the checkpoint of size {cp.size}")
        return None
    report.checkpoints += 1
    return _Signed(str(path), cp.size, cp.root, pinned)


def _load_checkpoints(
    directory: Path, extra: list[Path], key: VerifierKey, report: Report
) -> dict[int, list[_Signed]]:
    for path in extra:  # fail fast on a typo before any work
        if not Path(path).is_file():
            raise _Unusable("missing_file", f"checkpoint not found: {path}")
    found: list[tuple[Path, bool]] = []
    folder = directory / CHECKPOINTS_DIR
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if _CHECKPOINT_NAME_RE.fullmatch(path.name) and path.is_file():
                found.append((path, False))
            else:
                report.warnings.append(f"ignored {path.name} in {CHECKPOINTS_DIR}/")
    found += [(Path(p), True) for p in extra]
    if not found:
        raise _Unusable("no_checkpoints", "no checkpoint to check the entries against")
    by_size: dict[int, list[_Signed]] = {}
    for path, pinned in found:
        signed = _checkpoint(path, key, pinned, report)
        if signed:
            by_size.setdefault(signed.size, []).append(signed)
    for size, group in sorted(by_size.items()):
        if len({s.root for s in group}) > 1:
            names = ", ".join(Path(s.source).name for s in group)
            report.add("inconsistent_checkpoints", f"checkpoints of size {size} disagree: {names}")
    return by_size


def _load_receipt(path: Path, directory: Path, report: Report) -> _Receipt | None:
    """Verify a receipt envelope with its key from the export; None when it fails."""
    data = _read_bytes(Path(path), "receipt")
    name = Path(path).name
    try:
        envelope = loads_strict(data)
        kid = envelope_kid(envelope, "receipt")
    except CryptoError as exc:
        report.add("bad_receipt", f"{name}: {exc.message}")
        return None
    key_path = receipt_key_file(directory, kid)
    if not key_path.is_file():
        report.add("unknown_receipt_key", f"{name}: no receipt key {kid} in the export")
        return None
    try:
        raw = b64decode(_read_text(key_path, "receipt key").strip(), "receipt key", length=32)
        if receipt_kid(raw) != kid:
            raise CryptoError("bad_key", f"{key_path.name} does not hold key {kid}")
    except CryptoError as exc:
        raise _Unusable("bad_receipt_key", f"{key_path.name}: {exc.message}") from None
    try:
        payload = verify_object(envelope, "receipt", RECEIPT, raw)
    except CryptoError as exc:
        report.add("bad_receipt_signature", f"{name}: {exc.message}")
        return None
    log_index = payload.get("log_index")
    if isinstance(log_index, bool) or not isinstance(log_index, int):
        report.add("bad_receipt", f"{name}: log_index must be an integer")
        return None
    return _Receipt(name, log_index)


def _parse_line(line: bytes, position: int, report: Report) -> bytes | None:
    """Return the entry bytes of one entries.jsonl line, or None (problem recorded)."""
    try:
        item: Any = loads_strict(line.rstrip(b"\n"))
        if (not isinstance(item, dict) or set(item) != {"index", "leaf"}
                or isinstance(item["index"], bool) or not isinstance(item["index"], int)):
            raise CryptoError("bad_canonical_json", 'a line is {"index": i, "leaf": base64}')
        entry = b64decode(item["leaf"], "leaf")
    except CryptoError as exc:
        report.add("bad_entries_line", f"line {position + 1}: {exc.message}")
        return None
    index = item["index"]
    if index != position:
        report.add("index_gap", f"line {position + 1} has index {index!r}, expected {position}")
    return entry


def _stream_entries(
    directory: Path,
    by_size: dict[int, list[_Signed]],
    wanted: set[int],
    report: Report,
    progress: Callable[[int], None] | None,
) -> dict[int, str | None]:
    """One pass: check each line and entry, compare roots at checkpoint sizes.

    Returns the action of each entry whose index a receipt names.
    """
    frontier = Frontier()
    actions: dict[int, str | None] = {}
    _compare(0, EMPTY_ROOT, by_size, report)
    with open(directory / ENTRIES_FILE, "rb") as handle:
        for position, line in enumerate(handle):
            entry = _parse_line(line, position, report)
            action = None
            if entry is None:
                entry = line  # hash something so later roots are still attempted
            else:
                try:
                    parsed = parse_entry(entry)
                    action = parsed["action"]
                    if parsed["index"] != position:
                        report.add("entry_index_mismatch",
                                   f"entry {position} says its index is {parsed['index']}")
                except EntryError as exc:
                    report.add("bad_entry", f"entry {position}: {exc.message}")
            if position in wanted:
                actions[position] = action
            frontier.append(leaf_hash(entry))
            if frontier.size in by_size:
                _compare(frontier.size, frontier.root(), by_size, report)
            if progress and frontier.size % PROGRESS_EVERY == 0:
                progress(frontier.size)
    report.entries = frontier.size
    if progress:
        progress(frontier.size)
    return actions


def _compare(size: int, root: bytes, by_size: dict[int, list[_Signed]], report: Report) -> None:
    if size in by_size:  # sizes only grow while streaming: this ends as the largest covered
        report.size, report.root = size, root
    for signed in by_size.get(size, []):
        if signed.root == root:
            continue
        if signed.pinned:
            report.add("inconsistent_checkpoint",
                       f"the export's history differs from the checkpoint you hold at size {size}"
                       f" ({Path(signed.source).name}): the log was rewritten")
        else:
            report.add("root_mismatch", f"entries 0..{size - 1} do not hash to the root signed"
                                        f" in {Path(signed.source).name}")


def verify_export(
    directory: Path,
    extra_checkpoints: list[Path] | None = None,
    receipts: list[Path] | None = None,
    progress: Callable[[int], None] | None = None,
    log_key: Path | None = None,
) -> Report:
    """Verify an export directory against its checkpoints, extra (pinned) ones and receipts.

    ``progress`` is called with the number of entries read so far; ``log_key`` is a
    verifier key file the caller holds, used instead of trusting keys/log.key.
    """
    directory = Path(directory)
    report = Report()
    try:
        if not directory.is_dir():
            raise _Unusable("missing_export", f"no export directory at {directory}")
        if not (directory / ENTRIES_FILE).is_file():
            raise _Unusable("missing_file", f"{ENTRIES_FILE} not found in {directory}")
        for path in receipts or []:
            if not Path(path).is_file():
                raise _Unusable("missing_file", f"receipt not found: {path}")
        key = _load_log_key(directory, log_key, report)
        by_size = _load_checkpoints(directory, list(extra_checkpoints or []), key, report)
        loaded = [_load_receipt(Path(p), directory, report) for p in receipts or []]
        report.receipts = len(loaded)
        actions = _stream_entries(directory, by_size, {r.log_index for r in loaded if r},
                                  report, progress)
    except _Unusable as exc:
        report.verdict = "unusable"
        report.problems.append(Problem(exc.code, exc.message))
        return report
    except OSError as exc:
        report.verdict = "unusable"
        report.problems.append(Problem("unreadable_file", str(exc)))
        return report
    _finish(report, by_size, loaded, actions)
    return report


def _finish(
    report: Report,
    by_size: dict[int, list[_Signed]],
    loaded: list[_Receipt | None],
    actions: dict[int, str | None],
) -> None:
    n = report.entries
    for size in sorted(s for s in by_size if s > n):
        report.add("checkpoint_beyond_log",
                   f"a checkpoint covers {size} entries but the export has only {n}")
    for receipt in filter(None, loaded):
        if receipt.log_index >= n:
            report.add("receipt_not_in_log",
                       f"{receipt.source}: log_index {receipt.log_index} is beyond the {n} entries")
        elif actions.get(receipt.log_index) != SUBMISSION_ACTION:
            report.add("receipt_entry_mismatch",
                       f"{receipt.source}: entry {receipt.log_index} is not a {SUBMISSION_ACTION} entry")
    if n > report.size:
        report.warnings.append(f"entries {report.size}..{n - 1} are not covered by any checkpoint")
    if report.problems or report.omitted_problems:
        report.verdict = "invalid"
