"""RFC 9162 hashing, stored-node roots and proofs, and verification against the shared vectors."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audits.merkle import (
    EMPTY_ROOT,
    Frontier,
    MemoryNodeStore,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    nodes_completed_by_append,
    root,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).resolve().parents[2] / ".." / "shared" / "testvectors" / "merkle"
SKIP_REASON = "../shared/testvectors/merkle not found: RFC 9162 vectors skipped"

# The eight leaves of PROTOCOL §7 (and of transparency-dev/merkle's test data).
LEAVES = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
              "606162636465666768696a6b6c6d6e6f"]
]
KNOWN_ROOTS = {
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}


def _store(leaves: list[bytes]) -> MemoryNodeStore:
    store = MemoryNodeStore()
    for entry in leaves:
        store.append(entry)
    return store


def _vector_files(kind: str) -> list[Path | None]:
    if not VECTORS.is_dir():
        return [None]
    files = sorted((VECTORS / kind).rglob("*.json"))
    assert files, f"no {kind} vectors under {VECTORS}"
    return files


def _load(path: Path | None) -> dict:
    if path is None:
        pytest.skip(SKIP_REASON)
    return json.loads(path.read_text())


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _ids(paths: list[Path | None]) -> list[str]:
    return [str(p.relative_to(VECTORS)) if p else "absent" for p in paths]


# --- known answers --------------------------------------------------------------------


def test_known_answers() -> None:
    assert EMPTY_ROOT.hex().startswith("e3b0c442") and EMPTY_ROOT.hex().endswith("7852b855")
    assert leaf_hash(b"").hex().startswith("6e340b9c")
    assert leaf_hash(b"").hex().endswith("17afa01d")
    hashes = [leaf_hash(x) for x in LEAVES]
    for n, want in KNOWN_ROOTS.items():
        assert root_from_leaf_hashes(hashes[:n]).hex() == want
        assert _store(LEAVES[:n]).root().hex() == want
    assert root(0, MemoryNodeStore()) == EMPTY_ROOT


def test_domain_separation() -> None:
    left, right = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(left, right) != leaf_hash(left + right)


# --- the shared RFC 9162 vectors ------------------------------------------------------

INCLUSION = _vector_files("inclusion")
CONSISTENCY = _vector_files("consistency")


@pytest.mark.parametrize("path", INCLUSION, ids=_ids(INCLUSION))
def test_inclusion_vector(path: Path | None) -> None:
    v = _load(path)
    proof = [_b64(p) for p in v["proof"] or []]
    ok = verify_inclusion(_b64(v["leafHash"]), v["leafIdx"], v["treeSize"], proof, _b64(v["root"]))
    assert ok is (not v["wantErr"]), v["desc"]


@pytest.mark.parametrize("path", CONSISTENCY, ids=_ids(CONSISTENCY))
def test_consistency_vector(path: Path | None) -> None:
    v = _load(path)
    proof = [_b64(p) for p in v["proof"] or []]
    ok = verify_consistency(v["size1"], v["size2"], _b64(v["root1"]), _b64(v["root2"]), proof)
    assert ok is (not v["wantErr"]), v["desc"]


def _happy(paths: list[Path | None]) -> list[Path | None]:
    if paths == [None]:
        return [None]
    return [p for p in paths if p and p.name == "happy-path.json"]


@pytest.mark.parametrize("path", _happy(INCLUSION), ids=_ids(_happy(INCLUSION)))
def test_inclusion_vector_is_what_the_store_produces(path: Path | None) -> None:
    v = _load(path)
    store = _store(LEAVES)
    assert store.root(v["treeSize"]) == _b64(v["root"])
    assert leaf_hash(LEAVES[v["leafIdx"]]) == _b64(v["leafHash"])
    want = [_b64(p) for p in v["proof"] or []]
    assert inclusion_proof(v["leafIdx"], v["treeSize"], store) == want


@pytest.mark.parametrize("path", _happy(CONSISTENCY), ids=_ids(_happy(CONSISTENCY)))
def test_consistency_vector_is_what_the_store_produces(path: Path | None) -> None:
    v = _load(path)
    store = _store(LEAVES)
    assert store.root(v["size1"]) == _b64(v["root1"])
    assert store.root(v["size2"]) == _b64(v["root2"])
    want = [_b64(p) for p in v["proof"] or []]
    assert consistency_proof(v["size1"], v["size2"], store) == want


# --- refusals ---------------------------------------------------------------------------


def test_inclusion_refuses_index_at_or_past_size_extra_and_missing_hashes() -> None:
    store = _store(LEAVES[:7])
    r = store.root()
    h = leaf_hash(LEAVES[3])
    proof = inclusion_proof(3, 7, store)
    assert verify_inclusion(h, 3, 7, proof, r)
    assert not verify_inclusion(h, 7, 7, proof, r)
    assert not verify_inclusion(h, 8, 7, proof, r)
    assert not verify_inclusion(h, -1, 7, proof, r)
    assert not verify_inclusion(h, 3, 7, proof + [EMPTY_ROOT], r)
    assert not verify_inclusion(h, 3, 7, [EMPTY_ROOT] + proof, r)
    assert not verify_inclusion(h, 3, 7, proof[:-1], r)
    assert not verify_inclusion(h, 3, 7, proof[1:], r)
    assert not verify_inclusion(h, 3, 7, [p[:31] for p in proof], r)
    with pytest.raises(ValueError):
        inclusion_proof(7, 7, store)


def test_consistency_refuses_extra_and_missing_hashes_and_bad_sizes() -> None:
    store = _store(LEAVES[:7])
    r3, r7 = store.root(3), store.root(7)
    proof = consistency_proof(3, 7, store)
    assert verify_consistency(3, 7, r3, r7, proof)
    assert not verify_consistency(3, 7, r3, r7, proof + [EMPTY_ROOT])
    assert not verify_consistency(3, 7, r3, r7, [EMPTY_ROOT] + proof)
    assert not verify_consistency(3, 7, r3, r7, proof[:-1])
    assert not verify_consistency(7, 3, r7, r3, proof)
    assert not verify_consistency(0, 7, EMPTY_ROOT, r7, [])
    assert verify_consistency(7, 7, r7, r7, [])
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert consistency_proof(7, 7, store) == []
    with pytest.raises(ValueError):
        consistency_proof(0, 7, store)
    with pytest.raises(ValueError):
        consistency_proof(5, 3, store)


def test_missing_node_is_an_error_not_a_wrong_root() -> None:
    with pytest.raises(KeyError):
        root(3, _store(LEAVES[:2]))


# --- the stored-node algorithm against a naive reference -------------------------------


def _ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH by direct recursion."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return _ref_path(m, leaves[:k]) + [root_from_leaf_hashes(leaves[k:])]
    return _ref_path(m - k, leaves[k:]) + [root_from_leaf_hashes(leaves[:k])]


def _ref_subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    """RFC 9162 §2.1.4.1 SUBPROOF by direct recursion."""
    n = len(leaves)
    if m == n:
        return [] if whole else [root_from_leaf_hashes(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return _ref_subproof(m, leaves[:k], whole) + [root_from_leaf_hashes(leaves[k:])]
    return _ref_subproof(m - k, leaves[k:], False) + [root_from_leaf_hashes(leaves[:k])]


class CountingReader:
    """Wraps a store to count batched reads and node keys asked for."""

    def __init__(self, store: MemoryNodeStore) -> None:
        self.store, self.calls, self.keys = store, 0, 0

    def get_many(self, keys: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        self.calls += 1
        self.keys += len(keys)
        return self.store.get_many(keys)


@st.composite
def tree_and_indices(draw: st.DrawFn) -> tuple[int, int, int]:
    size = draw(st.integers(min_value=1, max_value=300))
    return size, draw(st.integers(0, size - 1)), draw(st.integers(1, size))


_BIG = [leaf_hash(i.to_bytes(4, "big")) for i in range(300)]
_BIG_STORE = MemoryNodeStore()
for _h in _BIG:
    _BIG_STORE.append_leaf_hash(_h)


@settings(max_examples=200, deadline=None)
@given(tree_and_indices())
def test_stored_node_proofs_equal_reference(case: tuple[int, int, int]) -> None:
    size, index, first = case
    leaves = _BIG[:size]
    reader = CountingReader(_BIG_STORE)
    want_root = root_from_leaf_hashes(leaves)
    assert root(size, reader) == want_root

    path = inclusion_proof(index, size, reader)
    assert path == _ref_path(index, leaves)
    assert verify_inclusion(leaves[index], index, size, path, want_root)

    proof = consistency_proof(first, size, reader)
    assert proof == ([] if first == size else _ref_subproof(first, leaves, True))
    assert verify_consistency(first, size, root_from_leaf_hashes(leaves[:first]), want_root, proof)

    # One batched read per root or proof, each touching O(log n) nodes.
    assert reader.calls <= 3
    assert reader.keys <= 3 * 2 * size.bit_length()


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=0, max_value=300))
def test_frontier_matches_reference(size: int) -> None:
    frontier = Frontier()
    for h in _BIG[:size]:
        frontier.append(h)
    assert frontier.size == size
    assert frontier.root() == root_from_leaf_hashes(_BIG[:size])


def test_append_reads_only_left_siblings() -> None:
    store = MemoryNodeStore()
    for i, h in enumerate(_BIG[:64]):
        reads: list[tuple[int, int]] = []

        def get(level: int, index: int) -> bytes:
            reads.append((level, index))
            return store.nodes[(level, index)]

        nodes = nodes_completed_by_append(i, h, get)
        trailing_ones = (i ^ (i + 1)).bit_length() - 1
        assert len(reads) == trailing_ones
        assert len(nodes) == trailing_ones + 1
        assert nodes[0] == (0, i, h)
        for level, index, value in nodes:
            store.nodes[(level, index)] = value
        store.size += 1
    assert store.nodes[(6, 0)] == root_from_leaf_hashes(_BIG[:64])

