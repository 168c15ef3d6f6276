"""A builder of audit log export directories for the offline verifier's tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audits.entries import hidden_entry, make_entry
from audits.merkle import Frontier, leaf_hash
from audits.notes import sign_checkpoint, verifier_key_line
from audits.verify import checkpoint_file, export_line, receipt_key_file
from crypto.canonical import b64encode
from crypto.keys import kid
from crypto.signing import RECEIPT, sign_object

ORIGIN = "ebid.test/log"
AT = "2026-05-01T09:30:00.000Z"


class ExportBuilder:
    """Writes entries, checkpoints and keys in the export format, with keys of its own."""

    ORIGIN = ORIGIN
    AT = AT

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log_key = Ed25519PrivateKey.generate()
        self.receipt_key = Ed25519PrivateKey.generate()
        self.receipt_kid = kid(self.receipt_key.public_key().public_bytes_raw())
        self._receipts = 0

    @staticmethod
    def entries(n: int) -> list[bytes]:
        """n entries; every third one a hidden bid submission."""
        return [
            hidden_entry(i, AT, "bid.submitted", "ab" * 32) if i % 3 == 1
            else make_entry(i, AT, "user:u1", "tender.amended", "tender:T-1", {"n": i}, None)
            for i in range(n)
        ]

    def sign(self, entries: list[bytes], size: int, key: Ed25519PrivateKey | None = None) -> str:
        """A checkpoint note over the first ``size`` of ``entries``."""
        frontier = Frontier()
        for entry in entries[:size]:
            frontier.append(leaf_hash(entry))
        return sign_checkpoint(ORIGIN, size, frontier.root(), key or self.log_key)

    def write(self, name: str, entries: list[bytes], sizes: list[int],
              signed_over: list[bytes] | None = None) -> Path:
        """Write an export of ``entries`` with checkpoints at ``sizes``.

        ``signed_over`` signs the checkpoints over other entries (a rewritten history).
        """
        directory = self.root / name
        (directory / "checkpoints").mkdir(parents=True)
        (directory / "keys").mkdir()
        with open(directory / "entries.jsonl", "wb") as handle:
            for index, entry in enumerate(entries):
                handle.write(export_line(index, entry))
        for size in sizes:
            checkpoint_file(directory, size).write_text(self.sign(signed_over or entries, size))
        log_public = self.log_key.public_key().public_bytes_raw()
        (directory / "keys" / "log.key").write_text(verifier_key_line(ORIGIN, log_public) + "\n")
        receipt_key_file(directory, self.receipt_kid).write_text(
            b64encode(self.receipt_key.public_key().public_bytes_raw()) + "\n")
        return directory

    def receipt(self, log_index: int, key: Ed25519PrivateKey | None = None) -> Path:
        """A signed receipt file naming ``log_index``."""
        payload = {"receipt": "cd" * 32, "tender": "T-1", "lot": "1", "bidder": "B-1",
                   "file": "bid.ebid", "manifest_sha256": "cd" * 32,
                   "ciphertext_sha256": "ef" * 32, "received_at": AT, "log_index": log_index,
                   "detail_salt": b64encode(bytes(32))}
        envelope = sign_object("receipt", payload, key or self.receipt_key, RECEIPT)
        self._receipts += 1
        path = self.root / f"receipt-{self._receipts}.json"
        path.write_text(json.dumps(envelope, indent=1))
        return path

    def impostor(self, name: str) -> "ExportBuilder":
        """Another builder with keys of its own, writing under ``name``."""
        (self.root / name).mkdir()
        return ExportBuilder(self.root / name)

    def note_file(self, name: str, note: str) -> Path:
        """A checkpoint held outside the export (a supervisor's pinned one)."""
        path = self.root / name
        path.write_text(note)
        return path


@pytest.fixture
def export_builder(tmp_path: Path) -> ExportBuilder:
    return ExportBuilder(tmp_path)
