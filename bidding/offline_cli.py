"""Offline tools for bidders and custodians: ``ebid keygen``, ``ebid custodian statement``,
``ebid seal`` and ``ebid unseal`` (rulebook B5: bids can be prepared and sealed offline).

They run on the user's own machine and never talk to the platform. Outputs go to
temporary files renamed only on success, so a failure leaves nothing behind. Errors print
``error: <code>: <message>`` to stderr and exit 1, or 2 for unusable input (a missing or
unreadable file).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, NoReturn

import click

from crypto.bidform import BID_FORM_NAME, BID_FORM_SIZE, pad_bid_form, parse_bid_form
from crypto.canonical import b64decode, canonical_json, check_identifier, format_time, loads_strict
from crypto.errors import CryptoError
from crypto.keys import (dump_private_pem, dump_public_pem, generate_private_key, key_id, kid, load_private_pem,
                         load_public_pem, raw_public_bytes)
from crypto.manifest import check_manifest, make_manifest, manifest_sha256, manifest_shares
from crypto.opening import recover_bid_key
from crypto.policy import header_custodians, make_statement, parse_policy, seal_targets
from crypto.sealed import build_header, open_stream, read_header, seal_stream
from crypto.shamir import split
from crypto.shares import open_share, seal_share, share_digest, share_plaintext
from crypto.signing import MANIFEST, envelope_kid, sign_object

_HEX64 = re.compile(r"[0-9a-f]{64}")
MAX_FORM_INPUT = 1 << 20   # an unpadded bid form is small; refuse to slurp anything bigger


class _Unusable(Exception):
    """Input that cannot be used at all (exit status 2)."""


def _fail(code: str, message: str, status: int = 1) -> NoReturn:
    click.echo(f"error: {code}: {message}", err=True)
    sys.exit(status)


def _guarded(command: Callable) -> Callable:
    """Turn CryptoError and unusable input into the documented message and exit status."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except CryptoError as exc:
            _fail(exc.code, exc.message)
        except _Unusable as exc:
            _fail("unusable_input", str(exc), status=2)
        except OSError as exc:
            _fail("io_error", f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), status=2)
    return wrapper


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise _Unusable(f"cannot read {path}: {exc.strerror or exc}") from None


def _passphrase(path: str | None) -> bytes | None:
    if path is None:
        return None
    data = _read(path)
    # a passphrase file usually ends with one line end that is not part of the passphrase
    for ending in (b"\r\n", b"\n"):
        if data.endswith(ending):
            data = data[: -len(ending)]
            break
    if not data:
        raise _Unusable(f"the passphrase file {path} is empty")
    return data


@contextlib.contextmanager
def _atomic_outputs(*paths: str) -> Iterator[list[BinaryIO]]:
    """Temporary files beside each target, renamed onto them only if the block succeeds."""
    handles: list[BinaryIO] = []
    temps: list[str] = []
    renamed: list[str] = []
    try:
        for path in paths:
            target = Path(path)
            # mkstemp creates the file 0600: a plaintext being unsealed is never world-readable
            fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
            temps.append(temp)
            handles.append(os.fdopen(fd, "w+b"))
        yield handles
        for handle in handles:
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
        for temp, path in zip(temps, paths):
            os.replace(temp, path)
            renamed.append(path)
        temps.clear()
    except BaseException:
        for path in renamed:   # all outputs or none
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise
    finally:
        for handle in handles:
            handle.close()
        for temp in temps:
            with contextlib.suppress(OSError):
                os.unlink(temp)


# --- keygen -------------------------------------------------------------------------------

@click.command("keygen")
@click.option("--out", "out_dir", required=True, help="Directory for the four key files.")
@click.option("--passphrase-file", default=None, help="Encrypt the private keys with this passphrase.")
@_guarded
def keygen(out_dir: str, passphrase_file: str | None) -> None:
    """Generate an Ed25519 signing key and an X25519 sealing key."""
    passphrase = _passphrase(passphrase_file)
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    signing, sealing = generate_private_key("ed25519"), generate_private_key("x25519")
    files = {
        "signing.pem": (dump_private_pem(signing, passphrase), 0o600),
        "x25519.pem": (dump_private_pem(sealing, passphrase), 0o600),
        "signing.pub.pem": (dump_public_pem(signing), 0o644),
        "x25519.pub.pem": (dump_public_pem(sealing), 0o644),
    }
    existing = [name for name in files if (directory / name).exists()]
    if existing:
        raise _Unusable(f"refusing to overwrite {', '.join(existing)} in {directory}")
    for name, (data, mode) in files.items():
        # O_EXCL with the final mode: a private key is never readable by others, even briefly
        fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    click.echo(f"signing kid: {key_id(signing)}")
    click.echo(f"x25519 kid: {key_id(sealing)}")


# --- custodian statement ------------------------------------------------------------------

@click.group("custodian")
def custodian() -> None:
    """Custodian tools for a tender's opening policy."""


@custodian.command("statement")
@click.option("--tender", required=True)
@click.option("--i", "index", required=True, type=int, help="This custodian's position in the policy.")
@click.option("--role", required=True, help="agent, tenderee, supervisor, notary, ...")
@click.option("--signing-key", required=True, help="Your Ed25519 private key (PEM).")
@click.option("--x25519", "x25519_path", required=True, help="Your per-tender X25519 public key (PEM).")
@click.option("--passphrase-file", default=None)
@_guarded
def statement(tender: str, index: int, role: str, signing_key: str, x25519_path: str,
              passphrase_file: str | None) -> None:
    """Print this custodian's signed policy entry (canonical JSON)."""
    signer = load_private_pem(_read(signing_key), "ed25519", _passphrase(passphrase_file))
    sealing = load_public_pem(_read(x25519_path), "x25519")
    entry = make_statement(tender, index, role, raw_public_bytes(sealing), signer)
    click.echo(canonical_json(entry).decode("utf-8"))


# --- seal ---------------------------------------------------------------------------------

def _supersedes(value: str | None) -> str | None:
    """A receipt id given directly, or read from a saved signed receipt."""
    if value is None or _HEX64.fullmatch(value):
        return value
    document = loads_strict(_read(value))
    if isinstance(document, dict) and "data" in document and len(document) == 1:
        document = document["data"]   # the server's {"data": receipt} envelope
    envelope_kid(document, "receipt")
    receipt_id = document["receipt"].get("receipt")
    if not isinstance(receipt_id, str) or not _HEX64.fullmatch(receipt_id):
        raise CryptoError("bad_receipt", "the receipt file has no receipt id")
    return receipt_id


def _bid_form_bytes(path: str, tender: str, lot: str, bidder: str) -> bytes:
    """Validate a bid form (pretty or canonical) and pad it to 4096 canonical bytes."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_FORM_INPUT + 1)
    if len(data) > MAX_FORM_INPUT:
        raise CryptoError("bad_bid_form", "the bid form is far larger than 4096 bytes")
    form = loads_strict(data)
    padded = pad_bid_form(form)
    parse_bid_form(padded, tender=tender, lot=lot, bidder=bidder)
    return padded


@click.command("seal")
@click.option("--policy", "policy_path", required=True, help="The tender's policy, byte for byte as served.")
@click.option("--tender", required=True)
@click.option("--lot", required=True)
@click.option("--bidder", required=True)
@click.option("--signing-key", required=True, help="Your Ed25519 private key (PEM).")
@click.option("--in", "in_path", required=True, help="The file to seal.")
@click.option("--file", "file_name", default=None, help="The file's name in the bid (default: its basename).")
@click.option("--bidder-x25519", default=None, help="Your X25519 public key, for a role-bidder custodian.")
@click.option("--supersedes", default=None, help="Receipt id (or saved receipt) this file replaces.")
@click.option("--out", "out_path", required=True, help="Where to write FILE.ebid.")
@click.option("--manifest", "manifest_path", required=True, help="Where to write the signed manifest.")
@click.option("--passphrase-file", default=None)
@_guarded
def seal(policy_path: str, tender: str, lot: str, bidder: str, signing_key: str, in_path: str,
         file_name: str | None, bidder_x25519: str | None, supersedes: str | None, out_path: str,
         manifest_path: str, passphrase_file: str | None) -> None:
    """Seal a bid file to the tender's opening policy and sign its manifest."""
    from core.clock import clock_from_env   # the one injectable clock; imported late, CLI only

    policy = parse_policy(_read(policy_path))   # verifies every custodian statement
    for value, field in ((tender, "tender"), (lot, "lot"), (bidder, "bidder")):
        check_identifier(value, field)
    if policy.tender != tender:
        raise CryptoError("policy_mismatch", f"the policy is for tender {policy.tender}, not {tender}")
    file_name = check_identifier(file_name if file_name is not None else os.path.basename(in_path), "file")
    signer = load_private_pem(_read(signing_key), "ed25519", _passphrase(passphrase_file))
    bidder_raw = None
    if bidder_x25519 is not None:
        bidder_raw = raw_public_bytes(load_public_pem(_read(bidder_x25519), "x25519"))
    targets = seal_targets(policy, bidder_raw)
    custodians = header_custodians(policy, None if bidder_raw is None else kid(bidder_raw))
    superseded = _supersedes(supersedes)
    if not os.path.isfile(in_path):
        raise _Unusable(f"cannot read {in_path}")

    bid_key = os.urandom(32)
    header = build_header(tender, lot, bidder, file_name, policy.sha256, policy.threshold, custodians,
                          os.urandom(8), format_time(clock_from_env().now()))
    with contextlib.ExitStack() as stack:
        if file_name == BID_FORM_NAME:
            source: BinaryIO = io.BytesIO(_bid_form_bytes(in_path, tender, lot, bidder))
        else:
            source = stack.enter_context(open(in_path, "rb"))
        ebid, manifest_out = stack.enter_context(_atomic_outputs(out_path, manifest_path))
        result = seal_stream(source, ebid, header, bid_key)
        header_sha256 = bytes.fromhex(result.header_sha256)
        sealed_shares = []
        for (i, y), (slot, public) in zip(split(bid_key, policy.threshold, policy.n), targets):
            assert i == slot
            plaintext = share_plaintext(i, y)
            sealed_shares.append((i, seal_share(public, header_sha256, i, plaintext),
                                  share_digest(header_sha256, plaintext)))
        manifest = make_manifest(tender, lot, bidder, file_name, result.header_sha256, policy.sha256,
                                 result.ciphertext_sha256, result.size, result.commitment, sealed_shares,
                                 os.urandom(16), superseded)
        manifest_out.write(canonical_json(sign_object("manifest", manifest, signer, MANIFEST)))
    click.echo(f"sealed {file_name}: {result.size} bytes")
    click.echo(f"receipt id (manifest_sha256): {manifest_sha256(manifest)}")


# --- unseal -------------------------------------------------------------------------------

class _HashingReader(io.RawIOBase):
    """Pass reads through while hashing and counting them, to check the manifest's hash."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data


@click.command("unseal")
@click.option("--in", "in_path", required=True, help="The sealed FILE.ebid.")
@click.option("--manifest", "manifest_path", required=True, help="Its FILE.manifest.json.")
@click.option("--key", "key_paths", multiple=True, required=True, help="An X25519 private key (repeat for k keys).")
@click.option("--passphrase-file", default=None)
@click.option("--out", "out_path", required=True, help="Where to write the plaintext.")
@_guarded
def unseal(in_path: str, manifest_path: str, key_paths: tuple[str, ...], passphrase_file: str | None,
           out_path: str) -> None:
    """Open a sealed file with any k custodian keys (matched to custodians by key id)."""
    envelope = loads_strict(_read(manifest_path))
    envelope_kid(envelope, "manifest")   # shape only: the bidder's signing key is not at hand
    manifest = check_manifest(envelope["manifest"])
    with open(in_path, "rb") as handle:
        header_bytes, header = read_header(handle)
    header_sha256 = hashlib.sha256(header_bytes).digest()
    if header_sha256.hex() != manifest["header_sha256"]:
        raise CryptoError("manifest_mismatch", "the manifest is not for this file's header")
    for field in ("tender", "lot", "bidder", "file", "policy_sha256"):
        if manifest[field] != header[field]:
            raise CryptoError("manifest_mismatch", f"the manifest's {field} differs from the header's")
    slot_by_kid = {entry["kid"]: entry["i"] for entry in header["custodians"]}
    shares = manifest_shares(manifest)
    if set(shares) != set(slot_by_kid.values()):
        raise CryptoError("manifest_mismatch", "the manifest must carry one share per custodian")

    passphrase = _passphrase(passphrase_file)
    released: dict[int, bytes] = {}
    for path in key_paths:
        private = load_private_pem(_read(path), "x25519", passphrase)
        slot = slot_by_kid.get(key_id(private))
        if slot is None:
            click.echo(f"warning: key {path} ({key_id(private)}) holds no share of this file", err=True)
            continue
        released[slot] = open_share(private, header_sha256, slot, shares[slot][0], strict=False)
    threshold = header["threshold"]
    if len(released) < threshold:
        raise CryptoError("not_enough_shares", f"{len(released)} matching key(s) given; {threshold} needed")
    result = recover_bid_key(header_sha256, threshold, _commitment(manifest),
                             {i: digest for i, (_, digest) in shares.items()}, released, window_closed=True)
    if result.status != "opened" or result.bid_key is None:
        raise CryptoError(result.cause or "not_enough_shares", result.message or "the shares do not open this file")

    with contextlib.ExitStack() as stack:
        source = _HashingReader(stack.enter_context(open(in_path, "rb")))
        (plain,) = stack.enter_context(_atomic_outputs(out_path))
        open_stream(source, plain, result.bid_key, expected_header_sha256=manifest["header_sha256"],
                    commitment=_commitment(manifest))
        if source.digest.hexdigest() != manifest["ciphertext_sha256"] or source.size != manifest["size"]:
            raise CryptoError("manifest_mismatch", "the file's hash or size differs from the manifest")
        if header["file"] == BID_FORM_NAME:
            plain.seek(0)
            parse_bid_form(plain.read(BID_FORM_SIZE + 1), tender=header["tender"], lot=header["lot"],
                           bidder=header["bidder"])
    click.echo(f"unsealed {header['file']} with shares {', '.join(map(str, result.used))}")


def _commitment(manifest: dict) -> bytes:
    return b64decode(manifest["commitment"], "commitment", length=32)


__all__ = ["keygen", "custodian", "seal", "unseal"]
