"""C2SP signed-note checkpoints: known answers, round trips and strict refusals."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from audits.notes import (
    Checkpoint,
    NoteError,
    checkpoint_body,
    key_id,
    parse_and_verify_checkpoint,
    parse_verifier_key,
    sign_checkpoint,
    sign_note,
    verifier_key_line,
)

ORIGIN = "ebid.example/log"
ROOT = bytes(range(32))


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


@pytest.fixture(scope="module")
def log_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def vkey(log_key: Ed25519PrivateKey) -> str:
    return verifier_key_line(ORIGIN, _raw(log_key))


def _code(note: str | bytes, vkey: str) -> str:
    with pytest.raises(NoteError) as caught:
        parse_and_verify_checkpoint(note, vkey)
    return caught.value.code


def test_go_sumdb_note_known_answer() -> None:
    # The example of golang.org/x/mod/sumdb/note: a fixed seed gives fixed key id and signature.
    seed = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
    key = Ed25519PrivateKey.from_private_bytes(seed)
    line = verifier_key_line("PeterNeumann", _raw(key))
    assert line == "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    text = ("If you think cryptography is the answer to your problem,\n"
            "then you don't know what your problem is.\n")
    assert sign_note(text, "PeterNeumann", key) == text + (
        "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNX"
        "gKvqfqdngotpRZb6KE6RyyBwJnAM=\n")
    assert key_id("PeterNeumann", _raw(key)).hex() == "c74f20a3"


def test_body_and_note_layout(log_key: Ed25519PrivateKey, vkey: str) -> None:
    body = checkpoint_body(ORIGIN, 12, ROOT)
    assert body == f"{ORIGIN}\n12\n{base64.b64encode(ROOT).decode()}\n".encode()
    note = sign_checkpoint(ORIGIN, 12, ROOT, log_key)
    head, sig_line, end = note.rpartition("\n\u2014 ")
    assert head == body.decode() and end.endswith("\n")
    name, sig = end[:-1].split(" ")
    raw = base64.b64decode(sig)
    assert name == ORIGIN and len(raw) == 68 and raw[:4] == key_id(ORIGIN, _raw(log_key))
    assert parse_and_verify_checkpoint(note, vkey) == Checkpoint(ORIGIN, 12, ROOT)
    assert parse_and_verify_checkpoint(note.encode(), vkey + "\n") == Checkpoint(ORIGIN, 12, ROOT)


@settings(max_examples=30, deadline=None)
@given(size=st.integers(0, 2**63 - 1), root=st.binary(min_size=32, max_size=32))
def test_round_trip(log_key: Ed25519PrivateKey, vkey: str, size: int, root: bytes) -> None:
    note = sign_checkpoint(ORIGIN, size, root, log_key)
    assert parse_and_verify_checkpoint(note, vkey) == Checkpoint(ORIGIN, size, root)


def test_edited_body_is_a_bad_signature(log_key: Ed25519PrivateKey, vkey: str) -> None:
    note = sign_checkpoint(ORIGIN, 12, ROOT, log_key)
    assert _code(note.replace("\n12\n", "\n13\n", 1), vkey) == "bad_signature"
    other_root = base64.b64encode(bytes(32)).decode()
    assert _code(note.replace(base64.b64encode(ROOT).decode(), other_root), vkey) == "bad_signature"


def test_forged_signatures(log_key: Ed25519PrivateKey, vkey: str) -> None:
    forger = Ed25519PrivateKey.generate()
    # Another key under our name has another key id: nothing signed by our key.
    assert _code(sign_checkpoint(ORIGIN, 12, ROOT, forger), vkey) == "unknown_key"
    # A forger who copies our key id still cannot make the signature verify.
    body = checkpoint_body(ORIGIN, 12, ROOT)
    forged = key_id(ORIGIN, _raw(log_key)) + forger.sign(body)
    note = body.decode() + f"\n\u2014 {ORIGIN} {base64.b64encode(forged).decode()}\n"
    assert _code(note, vkey) == "bad_signature"


def test_other_signers_are_ignored_but_ours_must_all_verify(
    log_key: Ed25519PrivateKey, vkey: str
) -> None:
    note = sign_checkpoint(ORIGIN, 12, ROOT, log_key)
    witness = sign_note(checkpoint_body(ORIGIN, 12, ROOT).decode(), "witness.example",
                        Ed25519PrivateKey.generate())
    cosigned = note + witness.rpartition("\n\n")[2]
    assert parse_and_verify_checkpoint(cosigned, vkey).size == 12
    bad = base64.b64encode(key_id(ORIGIN, _raw(log_key)) + bytes(64)).decode()
    assert _code(note + f"\u2014 {ORIGIN} {bad}\n", vkey) == "bad_signature"


def test_origin_must_be_the_key_name(log_key: Ed25519PrivateKey) -> None:
    note = sign_note(checkpoint_body("other.example", 1, ROOT).decode(), ORIGIN, log_key)
    assert _code(note, verifier_key_line(ORIGIN, _raw(log_key))) == "wrong_origin"


@pytest.mark.parametrize(
    "body",
    [
        f"{ORIGIN}\n012\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n+12\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n-1\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n1 \n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n\u0661\n{base64.b64encode(ROOT).decode()}\n",  # an Arabic-Indic digit
        f"{ORIGIN}\n{'9' * 5000}\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n{2**63}\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n12\n{base64.b64encode(ROOT[:31]).decode()}\n",
        f"{ORIGIN}\n12\n{base64.b64encode(ROOT).decode().rstrip('=')}\n",
        f"{ORIGIN}\n12\n{base64.b64encode(ROOT).decode()}\nextension line\n",
        f"{ORIGIN}\n12\n",
        f"{ORIGIN} \n12\n{base64.b64encode(ROOT).decode()}\n",
    ],
)
def test_malformed_bodies(log_key: Ed25519PrivateKey, vkey: str, body: str) -> None:
    # Signed by the right key, so only the strict body parser can refuse them.
    with pytest.raises(NoteError) as caught:
        parse_and_verify_checkpoint(_sign_raw(body, log_key), vkey)
    assert caught.value.code == "bad_note"


def _sign_raw(text: str, key: Ed25519PrivateKey) -> str:
    sig = key_id(ORIGIN, _raw(key)) + key.sign(text.encode())
    return f"{text}\n\u2014 {ORIGIN} {base64.b64encode(sig).decode()}\n"


def test_non_canonical_root_base64_is_refused(log_key: Ed25519PrivateKey, vkey: str) -> None:
    good = base64.b64encode(ROOT[:31] + b"\x00").decode()  # ends in 'AA=': 2 slack bits
    slack = good[:-2] + "B="
    assert base64.b64decode(slack) == ROOT[:31] + b"\x00"
    assert _code(_sign_raw(f"{ORIGIN}\n1\n{slack}\n", log_key), vkey) == "bad_note"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda n: n.replace("\n\n", "\n"),  # no blank line
        lambda n: n[:-1],  # no final newline
        lambda n: n.replace("\u2014 ", "-- "),
        lambda n: n.replace("\u2014 ", "\u2014  "),
        lambda n: n.replace("\n", "\r\n"),
        lambda n: n + "\n",
        lambda n: n.replace("\n\n", "\n\t\n"),
        lambda n: n + "\u2014 x\n",
    ],
)
def test_malformed_notes(log_key: Ed25519PrivateKey, vkey: str, mangle) -> None:
    assert _code(mangle(sign_checkpoint(ORIGIN, 3, ROOT, log_key)), vkey) == "bad_note"


def test_non_utf8_note(vkey: str) -> None:
    assert _code(b"\xff\n1\n\n", vkey) == "bad_note"


def test_verifier_key_parsing(log_key: Ed25519PrivateKey, vkey: str) -> None:
    parsed = parse_verifier_key(vkey)
    assert parsed.name == ORIGIN and parsed.public_raw == _raw(log_key)
    name, hex_id, encoded = vkey.split("+", 2)
    wrong_type = base64.b64encode(bytes([2]) + _raw(log_key)).decode()
    bad_lines = [
        "",
        ORIGIN,
        f"{name}+{hex_id}",
        f"{name}+{hex_id.upper()}+{encoded}",
        f"{name}+00000000+{encoded}",
        f"other.example+{hex_id}+{encoded}",
        f"{name}+{hex_id}+{encoded}=",
        f"{name}+{hex_id}+{encoded[:-1]}",
        f"{name}+{hex_id}+{wrong_type}",
        f"{name}+{hex_id}+{base64.b64encode(_raw(log_key)).decode()}",
        f"a b+{hex_id}+{encoded}",
        vkey + "\n\n",
        " " + vkey,
    ]
    for line in bad_lines:
        with pytest.raises(NoteError) as caught:
            parse_verifier_key(line)
        assert caught.value.code == "bad_key", line
    note = sign_checkpoint(ORIGIN, 1, ROOT, log_key)
    assert _code(note, "garbage") == "bad_key"


def test_signing_refuses_bad_input(log_key: Ed25519PrivateKey) -> None:
    for args in [("", 1, ROOT), ("a b", 1, ROOT), (ORIGIN, -1, ROOT), (ORIGIN, 1, ROOT[:5]),
                 (ORIGIN, True, ROOT)]:
        with pytest.raises(NoteError):
            sign_checkpoint(*args, log_key)
