"""A content-addressed blob store for documents and sealed bid files.

Files stream in and out in fixed-size chunks; nothing is held whole in memory. A blob is
named by the SHA-256 of its bytes, written to a temporary file, synced, then renamed into
place, so a reader never sees a partial blob and a crash leaves at most a stray temp file.
The folder store is the default; an S3-compatible store can implement the same interface.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Protocol

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int


class BlobStore(Protocol):
    def put_stream(self, chunks: Iterator[bytes], *, inspect: Callable[[bytes], None] | None = None,
                   max_size: int | None = None) -> StoredBlob: ...
    def open(self, sha256: str) -> BinaryIO: ...
    def exists(self, sha256: str) -> bool: ...


class BlobTooLarge(Exception):
    """The stream passed ``max_size`` bytes; nothing was stored."""


class FolderBlobStore:
    """Blobs as files ``<root>/<aa>/<bb>/<sha256>``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("not a SHA-256 hex digest")  # also stops path traversal
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def path(self, sha256: str) -> Path:
        return self._path(sha256)

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).exists()

    def open(self, sha256: str) -> BinaryIO:
        return open(self._path(sha256), "rb")

    def put_stream(self, chunks: Iterator[bytes], *, inspect: Callable[[bytes], None] | None = None,
                   max_size: int | None = None) -> StoredBlob:
        """Store a stream of chunks; ``inspect`` sees every chunk (e.g. a framing validator)
        and may raise to abort, in which case nothing is stored."""
        self.root.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(prefix=".incoming-", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    if not chunk:
                        continue
                    size += len(chunk)
                    if max_size is not None and size > max_size:
                        raise BlobTooLarge(f"more than {max_size} bytes")
                    if inspect is not None:
                        inspect(chunk)
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            final = self._path(sha)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_name, final)
            _fsync_dir(final.parent)
            return StoredBlob(sha, size)
        except BaseException:
            try:
                os.unlink(tmp_name)
            except FileNotFoundError:
                pass
            raise

    def put_bytes(self, data: bytes) -> StoredBlob:
        return self.put_stream(iter([data]))

    def iter_all(self) -> Iterator[str]:
        """Every stored blob's hash (for backups and checks)."""
        if not self.root.exists():
            return
        for path in self.root.glob("??/??/*"):
            if len(path.name) == 64:
                yield path.name


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_chunks(stream: BinaryIO, chunk_size: int = CHUNK) -> Iterator[bytes]:
    while True:
        chunk = stream.read(chunk_size)
        if not chunk:
            return
        yield chunk
