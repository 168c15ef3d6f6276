"""Item 3: sealing and opening under a 3-of-4 policy.

- ``ebid seal`` of one large file (1 GiB; quick: 100 MiB) as a subprocess, and ``ebid unseal``
  of it with three custodian keys: MB/s and the subprocess's peak RSS (``wait4``).
- The 100 MiB case's peak memory: ``ebid seal`` and ``ebid unseal`` of 100 MiB, peak RSS
  beside the interpreter's own floor (``ebid seal --help``) and the file size (in the
  quick run, the large file is that 100 MiB case).
- ``ebid seal`` of 1,000 small bids (quick: 50), each a ``bid-form.json``: the command run
  in process (``seal.main(...)``, what each subprocess runs after start-up; one subprocess
  start is timed separately).
- The server's opening: after the deadline, closing, and three custodians' signed releases,
  ``bidding.opening.decrypt`` (what ``POST /api/v1/tenders/{T}/opening/decrypt`` runs) over
  every listed file: stored-file hash, header, share digests, combine 3 of 4, commitment,
  streaming decryption, bid-form checks, results stored and logged (bench/ceremony.py, the
  platform's services in process). Without those services, the pure per-file opener
  ``bidding.opening.open_listed_file`` is timed instead and the row says so.

Baseline: raw AES-256-GCM (pyca ``cryptography``) over the same bytes in this process, in
the same 1 MiB segments, reading and writing files as the tool does (no header, framing,
hashing, shares, signatures or fsync).
"""
from __future__ import annotations

import contextlib
import io
import os
import struct
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bench.core import Context, Row, mb, not_measured, repeat_for
from bench.sealkit import LOT, Cast, write_random_file
from bench.tools import Finished, ebid
from crypto.bidform import BID_FORM_NAME, pad_bid_form
from crypto.keys import dump_private_pem
from crypto.policy import make_policy

SEGMENT = 1 << 20
BIG = {"quick": 100 << 20, "full": 1 << 30}
SMALL = {"quick": 50, "full": 1000}
MEMORY_CASE = 100 << 20
TENDER = "T-bench-3"


class _Setup:
    """Keys, policy and key files for one 3-of-4 tender."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.cast = Cast.make(1)
        self.policy_bytes = make_policy(TENDER, 3, 3600, self.cast.statements(TENDER))
        self.policy = folder / "policy.json"
        self.policy.write_bytes(self.policy_bytes)
        self.signing = folder / "bidder-signing.pem"
        self.signing.write_bytes(dump_private_pem(self.cast.bidder_keys[0]))
        self.custodian_keys = []
        for c in self.cast.custodians[:3]:
            path = folder / f"custodian{c.i}-x25519.pem"
            path.write_bytes(dump_private_pem(c.x25519))
            self.custodian_keys.append(path)

    def seal_args(self, src: Path, out: Path, manifest: Path, bidder: str = "B00000",
                  file: str | None = None) -> list[str]:
        args = ["seal", "--policy", str(self.policy), "--tender", TENDER, "--lot", LOT, "--bidder", bidder,
                "--signing-key", str(self.signing), "--in", str(src), "--out", str(out), "--manifest", str(manifest)]
        return args + (["--file", file] if file else [])

    def unseal_args(self, src: Path, manifest: Path, out: Path) -> list[str]:
        args = ["unseal", "--in", str(src), "--manifest", str(manifest), "--out", str(out)]
        for key in self.custodian_keys:
            args += ["--key", str(key)]
        return args


# --------------------------------------------------------------------------- baselines

def _aes_pair(src: Path, ct_path: Path, plain_out: Path) -> tuple[float, float]:
    """Encrypt ``src`` to ``ct_path``, then decrypt it to ``plain_out``: (enc s, dec s)."""
    key, prefix = os.urandom(32), os.urandom(8)
    aead = AESGCM(key)
    t0 = time.perf_counter()
    with open(src, "rb") as inp, open(ct_path, "wb") as out:
        counter = 0
        while chunk := inp.read(SEGMENT):
            ct = aead.encrypt(prefix + struct.pack(">I", counter), chunk, None)
            out.write(struct.pack(">I", len(ct)) + ct)
            counter += 1
    enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    with open(ct_path, "rb") as inp, open(plain_out, "wb") as out:
        counter = 0
        while head := inp.read(4):
            ct = inp.read(struct.unpack(">I", head)[0])
            out.write(aead.decrypt(prefix + struct.pack(">I", counter), ct, None))
            counter += 1
    dec = time.perf_counter() - t0
    return enc, dec


def _aes_small_rate(plaintexts: list[bytes]) -> tuple[float, float]:
    """(encryptions/s, decryptions/s) of raw AES-256-GCM over each 4096-byte form."""
    aead = AESGCM(os.urandom(32))
    nonce = os.urandom(12)
    cts = [aead.encrypt(nonce, p, None) for p in plaintexts]

    def enc() -> int:
        for p in plaintexts:
            aead.encrypt(nonce, p, None)
        return len(plaintexts)

    def dec() -> int:
        for c in cts:
            aead.decrypt(nonce, c, None)
        return len(cts)
    return repeat_for(enc), repeat_for(dec)


# --------------------------------------------------------------------------- the server's opener

def _open_rate(setup: _Setup, files: list[tuple[Path, Path]]) -> tuple[float, int]:
    """Put each sealed file in a blob store, release 3 shares, and time the platform's
    opener over all of them. Returns (seconds, bytes opened)."""
    from bidding.opening import ListedFile, open_listed_file
    from core.blobs import FolderBlobStore, read_chunks
    from crypto.canonical import b64decode, loads_strict
    from crypto.manifest import manifest_shares
    from crypto.shares import open_share

    store = FolderBlobStore(setup.folder / "blobs")
    work = []
    for ebid_path, manifest_path in files:
        manifest = loads_strict(manifest_path.read_bytes())["manifest"]
        with open(ebid_path, "rb") as handle:
            blob = store.put_stream(read_chunks(handle))
        h = bytes.fromhex(manifest["header_sha256"])
        shares = manifest_shares(manifest)
        released = {c.i: open_share(c.x25519, h, c.i, shares[c.i][0]) for c in setup.cast.custodians[:3]}
        listed = ListedFile(lot=manifest["lot"], bidder=manifest["bidder"], file=manifest["file"],
                            header_sha256=manifest["header_sha256"], manifest_sha256="0" * 64,
                            ciphertext_sha256=blob.sha256,
                            commitment=b64decode(manifest["commitment"], "commitment", length=32),
                            share_digests={i: d for i, (_, d) in shares.items()})
        work.append((listed, blob, released))
    start = time.perf_counter()
    total = 0
    for listed, blob, released in work:
        outcome = open_listed_file(listed, lambda sha=blob.sha256: store.open(sha), 3, released,
                                   window_closed=True)
        if outcome.status != "opened":
            raise RuntimeError(f"the opener did not open {listed.bidder}/{listed.file}: {outcome.cause} "
                               f"{outcome.message}")
        total += blob.size
    return time.perf_counter() - start, total


def _opening_large(ctx: Context, setup: _Setup, label: str, src: Path, sealed: Path, manifest: Path,
                   base_dec: float) -> Row:
    """The server's opening of a tender whose bids include the large file."""
    from bench import ceremony
    reason = ceremony.available()
    if reason is None:
        opened = ceremony.run_ceremony(ctx, "opening-large", 3, big_file=src)
        return Row(f"server opening: {label} file + 3 bid forms", "MB/s", "MiB/s", mb(opened.bytes) / opened.seconds,
                   base_dec, note=f"bidding.opening.decrypt after closing and 3 custodians' releases: "
                                  f"{opened.opened}/{opened.files} files opened in {opened.seconds:.2f} s "
                                  "(hash, check, combine, decrypt, store, log); baseline: raw AES-256-GCM decrypt")
    ctx.log(f"sealing: the platform's per-file opener over the sealed {label} ({reason})")
    open_s, opened_bytes = _open_rate(setup, [(sealed, manifest)])
    return Row(f"server opener, {label} file", "MB/s", "MiB/s", mb(opened_bytes) / open_s, base_dec,
               note=f"pure bidding.opening.open_listed_file only ({reason}); baseline: raw AES-256-GCM decrypt")


def _clear_blobs(setup: _Setup) -> None:
    import shutil
    shutil.rmtree(setup.folder / "blobs", ignore_errors=True)


# --------------------------------------------------------------------------- measurements

def _check(result: Finished, what: str) -> Finished:
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}): {result.stderr[-600:]}")
    return result


def _large(ctx: Context, setup: _Setup, size: int, details: dict[str, Any]) -> list[Row]:
    folder = setup.folder
    src, sealed, manifest = folder / "big.bin", folder / "big.ebid", folder / "big.manifest.json"
    plain, ct, back = folder / "big.out", folder / "big.aes", folder / "big.aes.out"
    label = f"{size >> 20} MiB" if size < 1 << 30 else f"{size >> 30} GiB"
    write_random_file(str(src), size)
    ctx.log(f"sealing: ebid seal of {label}")
    seal = _check(ebid(*setup.seal_args(src, sealed, manifest, file="proposal.bin")), "ebid seal")
    ctx.log(f"sealing: ebid unseal of {label}")
    unseal = _check(ebid(*setup.unseal_args(sealed, manifest, plain)), "ebid unseal")
    if os.path.getsize(plain) != size:
        raise RuntimeError("ebid unseal wrote the wrong size")
    plain.unlink()
    enc_s, dec_s = _aes_pair(src, ct, back)
    for path in (ct, back):
        path.unlink()
    ctx.shared["sealing_runs"] = (seal, unseal)
    opening_row = _opening_large(ctx, setup, label, src, sealed, manifest, mb(size) / dec_s)
    for path in (src, sealed):
        path.unlink()
    _clear_blobs(setup)
    base_enc, base_dec = mb(size) / enc_s, mb(size) / dec_s
    details["large"] = {"bytes": size, "seal": vars(seal) | {"stdout": seal.stdout[-200:]},
                        "unseal": vars(unseal) | {"stdout": unseal.stdout[-200:]},
                        "aes_encrypt_s": enc_s, "aes_decrypt_s": dec_s}
    for d in ("seal", "unseal"):
        details["large"][d].pop("stderr", None)
    return [
        Row(f"`ebid seal` {label}", "MB/s", "MiB/s", mb(size) / seal.wall_s, base_enc,
            note=f"subprocess wall {seal.wall_s:.2f} s incl. start-up; peak RSS {seal.max_rss_kb / 1024:.0f} MB; "
                 "baseline: raw AES-256-GCM encrypt"),
        Row(f"`ebid unseal` {label} (3 of 4 keys)", "MB/s", "MiB/s", mb(size) / unseal.wall_s, base_dec,
            note=f"subprocess wall {unseal.wall_s:.2f} s; peak RSS {unseal.max_rss_kb / 1024:.0f} MB; "
                 "baseline: raw AES-256-GCM decrypt"),
        opening_row,
    ]


def _memory(ctx: Context, setup: _Setup, details: dict[str, Any],
            measured: tuple[Finished, Finished] | None = None) -> list[Row]:
    """Peak RSS of `ebid seal` and `ebid unseal` of 100 MiB (``measured``: already run)."""
    floor = _check(ebid("seal", "--help"), "ebid seal --help")
    if measured is None:
        folder = setup.folder / "mem"
        folder.mkdir()
        src, sealed, manifest, plain = (folder / "100m.bin", folder / "100m.ebid", folder / "100m.manifest.json",
                                        folder / "100m.out")
        write_random_file(str(src), MEMORY_CASE)
        ctx.log("sealing: peak memory of ebid seal/unseal at 100 MiB")
        seal = _check(ebid(*setup.seal_args(src, sealed, manifest, file="proposal.bin")), "ebid seal")
        unseal = _check(ebid(*setup.unseal_args(sealed, manifest, plain)), "ebid unseal")
        for path in (src, sealed, plain):
            path.unlink()
    else:
        seal, unseal = measured
    details["memory_100mib"] = {"floor_kb": floor.max_rss_kb, "seal_kb": seal.max_rss_kb,
                                "unseal_kb": unseal.max_rss_kb, "file_bytes": MEMORY_CASE}
    rows = []
    floor_mb = floor.max_rss_kb / 1024
    for name, result in (("seal", seal), ("unseal", unseal)):
        peak = result.max_rss_kb / 1024
        growth = peak - floor_mb
        rows.append(Row(f"`ebid {name}` 100 MiB", "peak RSS", "MB", peak, floor_mb, better="lower",
                        goal="far below the file: peak − floor < 10 MiB", goal_met=growth < 10,
                        note=f"+{growth:.1f} MB over the floor = {growth / 100:.1%} of the 100 MiB file; "
                             "baseline (floor): `ebid seal --help`, the interpreter and imports"))
    return rows


def _small(ctx: Context, setup: _Setup, count: int, details: dict[str, Any]) -> list[Row]:
    from bidding.offline_cli import seal as seal_command
    folder = setup.folder / "small"
    folder.mkdir()
    forms, args = [], []
    for i in range(count):
        bidder = Cast.bidder_code(i)
        form = folder / f"{bidder}-form.json"
        form.write_text('{"tender": "%s", "lot": "%s", "bidder": "%s", "price": "%d.00", "currency": "CNY"}'
                        % (TENDER, LOT, bidder, 10_000_000 + i))
        forms.append(pad_bid_form({"tender": TENDER, "lot": LOT, "bidder": bidder,
                                   "price": f"{10_000_000 + i}.00", "currency": "CNY"}))
        args.append(setup.seal_args(form, folder / f"{bidder}.ebid", folder / f"{bidder}.manifest.json",
                                    bidder=bidder, file=BID_FORM_NAME)[1:])
    ctx.log(f"sealing: ebid seal of {count} bid forms (in process)")
    sink = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(sink):
        for a in args:
            seal_command.main(a, standalone_mode=False)
    seal_s = time.perf_counter() - start
    one = _check(ebid("seal", *args[0][:-4], "--out", str(folder / "one.ebid"),
                      "--manifest", str(folder / "one.manifest.json")), "ebid seal (one subprocess)")
    from bench import ceremony
    enc_rate, dec_rate = _aes_small_rate(forms)
    reason = ceremony.available()
    if reason is None:
        opened = ceremony.run_ceremony(ctx, "opening-small", count)
        open_s = opened.seconds
        opening_note = (f"bidding.opening.decrypt after closing and 3 custodians' releases ({3 * count:,} signed "
                        f"releases accepted in {opened.releases_s:.1f} s): {opened.opened}/{opened.files} opened; "
                        "shares checked and combined, commitment, decrypt, bid-form checks, results stored and "
                        "logged; baseline: raw AES-256-GCM decrypt of the form")
    else:
        ctx.log(f"sealing: the platform's per-file opener over {count} bid forms ({reason})")
        open_s, _ = _open_rate(setup, [(folder / f"{Cast.bidder_code(i)}.ebid",
                                        folder / f"{Cast.bidder_code(i)}.manifest.json") for i in range(count)])
        opening_note = f"pure bidding.opening.open_listed_file only ({reason}); baseline: raw AES-256-GCM decrypt"
    details["small"] = {"count": count, "seal_s": seal_s, "one_subprocess_s": one.wall_s, "opener_s": open_s,
                        "aes_encrypt_per_s": enc_rate, "aes_decrypt_per_s": dec_rate}
    return [
        Row(f"`ebid seal` × {count} bid forms", "bids/s", "1/s", count / seal_s, enc_rate,
            note=f"the command in process (HPKE to 4 custodians, Shamir, sign, fsync of 2 files each); "
                 f"one subprocess `ebid seal` takes {one.wall_s:.2f} s with start-up; "
                 "baseline: raw AES-256-GCM of the 4096-byte form"),
        Row(f"server opening × {count} bid forms", "bids/s", "1/s", count / open_s, dec_rate, note=opening_note),
    ]


def run(ctx: Context, details: dict[str, Any]) -> list[Row]:
    folder = ctx.scratch("sealing")
    setup = _Setup(folder)
    size = BIG[ctx.mode]
    rows = _large(ctx, setup, size, details)
    runs = ctx.shared.pop("sealing_runs", None)
    rows += _memory(ctx, setup, details, runs if size == MEMORY_CASE else None)
    rows += _small(ctx, setup, SMALL[ctx.mode], details)
    return rows
