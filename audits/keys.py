"""The platform's own keys: the log (checkpoint) key, the receipt key and the session secret.

Generated on first start into ``<instance>/keys`` with owner-only permissions, or loaded
from files named by the environment in production. Receipt keys rotate; retired ones stay
so that old receipts still verify. The log key and the receipt key are different keys.
"""
from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


def _kid(public: bytes) -> str:
    return hashlib.sha256(public).hexdigest()[:16]


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _write_private(path: Path, key: Ed25519PrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)


def _load_private(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


@dataclass
class PlatformKeys:
    """The keys a running platform signs with."""

    log_key: Ed25519PrivateKey
    receipt_key: Ed25519PrivateKey
    secret_key: str
    retired_receipt_keys: dict[str, bytes] = field(default_factory=dict)

    @property
    def log_public(self) -> bytes:
        return _raw(self.log_key.public_key())

    @property
    def receipt_public(self) -> bytes:
        return _raw(self.receipt_key.public_key())

    @property
    def receipt_kid(self) -> str:
        return _kid(self.receipt_public)

    def receipt_public_by_kid(self, kid: str) -> bytes | None:
        """The current or a retired receipt public key by its key id."""
        if kid == self.receipt_kid:
            return self.receipt_public
        return self.retired_receipt_keys.get(kid)


def key_dir(instance_path: str | os.PathLike[str]) -> Path:
    return Path(instance_path) / "keys"


def ensure_keys(instance_path: str | os.PathLike[str]) -> Path:
    """Create any missing platform key in ``<instance>/keys`` (0700 folder, 0600 files).

    Call before gunicorn forks, so every worker loads the same keys.
    """
    folder = key_dir(instance_path)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    log_path = folder / "log.pem"
    if not log_path.exists():
        _write_private(log_path, Ed25519PrivateKey.generate())
    current = folder / "receipt.current"
    if not current.exists():
        key = Ed25519PrivateKey.generate()
        kid = _kid(_raw(key.public_key()))
        _write_private(folder / f"receipt-{kid}.pem", key)
        current.write_text(kid + "\n")
    secret = folder / "secret.key"
    if not secret.exists():
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return folder


def rotate_receipt_key(instance_path: str | os.PathLike[str]) -> str:
    """Make a new current receipt key; the old one stays for verification. Returns its kid."""
    folder = ensure_keys(instance_path)
    key = Ed25519PrivateKey.generate()
    kid = _kid(_raw(key.public_key()))
    _write_private(folder / f"receipt-{kid}.pem", key)
    tmp = folder / "receipt.current.tmp"
    tmp.write_text(kid + "\n")
    os.replace(tmp, folder / "receipt.current")
    return kid


def load_keys(instance_path: str | os.PathLike[str], *, log_key_file: str | None = None,
              receipt_key_file: str | None = None, secret_key: str | None = None) -> PlatformKeys:
    """Load the platform keys, preferring files named by the environment."""
    folder = key_dir(instance_path)
    log_key = _load_private(Path(log_key_file) if log_key_file else folder / "log.pem")
    retired: dict[str, bytes] = {}
    for path in sorted(folder.glob("receipt-*.pem")) if folder.exists() else []:
        pub = _raw(_load_private(path).public_key())
        retired[_kid(pub)] = pub
    if receipt_key_file:
        receipt_key = _load_private(Path(receipt_key_file))
    else:
        current = (folder / "receipt.current").read_text().strip()
        receipt_key = _load_private(folder / f"receipt-{current}.pem")
    retired.pop(_kid(_raw(receipt_key.public_key())), None)
    log_public = _raw(log_key.public_key())
    if log_public == _raw(receipt_key.public_key()) or log_public in retired.values():
        # PROTOCOL §7: the log key and the receipt key are different keys.
        raise ValueError("the log key must differ from every receipt key")
    secret = secret_key or (folder / "secret.key").read_text().strip()
    return PlatformKeys(log_key=log_key, receipt_key=receipt_key, secret_key=secret,
                        retired_receipt_keys=retired)
