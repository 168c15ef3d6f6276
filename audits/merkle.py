"""RFC 9162 Merkle tree hashing (SHA-256) for the audit log, with storage-friendly proofs.

The server stores the hash of every *perfect* subtree it has completed, keyed
``(level, index)`` = the hash of leaves ``[index * 2**level, (index + 1) * 2**level)``;
level 0 holds the leaf hashes. Any subtree that RFC 9162 names while computing a root or a
proof is either perfect or splits into O(log n) perfect parts, so roots and proofs need
O(log n) node reads, batched into a single ``NodeReader.get_many`` call, and never the
whole log.

Pure: no database, no clock. Proof generation follows RFC 9162 §2.1.3.1 and §2.1.4.1;
verification follows the algorithms of §2.1.3.2 and §2.1.4.2 literally.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Iterable, Protocol, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeKey = tuple[int, int]


def leaf_hash(entry: bytes) -> bytes:
    """Return the RFC 9162 leaf hash SHA-256(0x00 || entry)."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 interior node hash SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


class NodeReader(Protocol):
    """Reads stored perfect-subtree hashes; one call per root or proof so a server can batch."""

    def get_many(self, keys: list[NodeKey]) -> dict[NodeKey, bytes]:
        """Return the hash of each (level, index) in ``keys``; every key must exist."""
        ...


def _largest_power_of_two_below(n: int) -> int:
    """The RFC 9162 split point k: the largest power of two strictly smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def nodes_completed_by_append(
    leaf_index: int, leaf_hash: bytes, get: Callable[[int, int], bytes]
) -> list[tuple[int, int, bytes]]:
    """Return the perfect-subtree nodes ``(level, index, hash)`` completed by appending a leaf.

    Level 0 (the leaf itself) comes first. Each step up needs only the left sibling, so
    ``get(level, index)`` is called once per trailing one bit of ``leaf_index``: O(log n).
    """
    if leaf_index < 0:
        raise ValueError("leaf_index must be >= 0")
    nodes = [(0, leaf_index, leaf_hash)]
    level, index, current = 0, leaf_index, leaf_hash
    while index & 1:  # a right child completes its parent
        current = node_hash(get(level, index - 1), current)
        level, index = level + 1, index >> 1
        nodes.append((level, index, current))
    return nodes


def _perfect_parts(start: int, end: int) -> list[NodeKey]:
    """Split [start, end) into perfect subtrees, largest first (start aligned as in RFC trees)."""
    parts: list[NodeKey] = []
    while start < end:
        level = (end - start).bit_length() - 1
        while start % (1 << level):
            level -= 1
        parts.append((level, start >> level))
        start += 1 << level
    return parts


def _fold(parts: Sequence[bytes]) -> bytes:
    """Hash of a subtree from its perfect parts (largest first): the right fold RFC 9162 implies."""
    current = parts[-1]
    for part in reversed(parts[:-1]):
        current = node_hash(part, current)
    return current


def _ranges_hashes(ranges: list[NodeKey], reader: NodeReader) -> list[bytes]:
    """Hash every [start, end) range with one batched read of all their perfect parts."""
    split = [_perfect_parts(start, end) for start, end in ranges]
    keys = sorted({key for parts in split for key in parts})
    found = reader.get_many(keys) if keys else {}
    missing = [key for key in keys if key not in found]
    if missing:
        raise KeyError(f"node store lacks perfect subtrees {missing[:3]}")
    return [_fold([found[key] for key in parts]) for parts in split]


def root(size: int, reader: NodeReader) -> bytes:
    """Return the RFC 9162 root of the first ``size`` leaves (EMPTY_ROOT for size 0)."""
    if size < 0:
        raise ValueError("size must be >= 0")
    if size == 0:
        return EMPTY_ROOT
    return _ranges_hashes([(0, size)], reader)[0]


def inclusion_proof(index: int, size: int, reader: NodeReader) -> list[bytes]:
    """Return PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, leaf-side hash first."""
    if not 0 <= index < size:
        raise ValueError("inclusion proof needs 0 <= index < size")
    siblings: list[NodeKey] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index < lo + k:
            siblings.append((lo + k, hi))
            hi = lo + k
        else:
            siblings.append((lo, lo + k))
            lo += k
    # The recursion appends each sibling after the deeper path, so the deepest comes first.
    return _ranges_hashes(siblings[::-1], reader)


def consistency_proof(first: int, second: int, reader: NodeReader) -> list[bytes]:
    """Return PROOF(first, D[0:second]) of RFC 9162 §2.1.4.1 (empty when first == second)."""
    if not 0 < first <= second:
        raise ValueError("consistency proof needs 0 < first <= second")
    ranges: list[NodeKey] = []
    lo, hi, m, whole = 0, second, first, True
    while m != hi - lo:
        k = _largest_power_of_two_below(hi - lo)
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:  # SUBPROOF(m, D[m], false) = {MTH(D[m])}
        ranges.append((lo, hi))
    return _ranges_hashes(ranges[::-1], reader)


def _all_hashes(values: Iterable[bytes]) -> bool:
    return all(isinstance(v, (bytes, bytearray)) and len(v) == HASH_SIZE for v in values)


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Check an inclusion proof by RFC 9162 §2.1.3.2; False for index >= size or a wrong length."""
    if not (0 <= index < size) or not _all_hashes([leaf_hash, root, *proof]):
        return False
    fn, sn, r = index, size - 1, bytes(leaf_hash)
    for p in proof:
        if sn == 0:
            return False  # more hashes than the path has levels
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Check a consistency proof by RFC 9162 §2.1.4.2.

    Equal sizes need an empty proof and equal roots (the empty tree's root at size 0).
    RFC 9162 defines proofs only for 0 < first < second, so first == 0 < second is refused.
    """
    if first < 0 or second < first:
        return False
    if first == second:
        return not proof and first_root == second_root and (first > 0 or first_root == EMPTY_ROOT)
    if first == 0 or not proof or not _all_hashes([first_root, second_root, *proof]):
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # an exact power of two: the old root is itself a node
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0


def root_from_leaf_hashes(leaves: Sequence[bytes]) -> bytes:
    """Reference MTH of RFC 9162 §2.1.1 by plain recursion; for tests and small trees."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _largest_power_of_two_below(len(leaves))
    return node_hash(root_from_leaf_hashes(leaves[:k]), root_from_leaf_hashes(leaves[k:]))


class Frontier:
    """A compact range [0, size): the perfect subtree roots of the binary digits of size.

    Streams leaves in O(log n) memory and gives the root at any moment; the offline verifier
    uses it to recompute the root at every checkpoint size in one pass.
    """

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []  # (level, hash), largest first

    def append(self, leaf: bytes) -> None:
        """Append one leaf hash."""
        level, current = 0, leaf
        while self._stack and self._stack[-1][0] == level:
            current = node_hash(self._stack.pop()[1], current)
            level += 1
        self._stack.append((level, current))
        self.size += 1

    def root(self) -> bytes:
        """Return the root of the leaves appended so far."""
        if not self._stack:
            return EMPTY_ROOT
        return _fold([h for _, h in self._stack])


class MemoryNodeStore:
    """A dict-backed node store: a NodeReader plus an appender, for tests and offline use."""

    def __init__(self) -> None:
        self.size = 0
        self.nodes: dict[NodeKey, bytes] = {}

    def append_leaf_hash(self, leaf: bytes) -> int:
        """Append a leaf hash, store the subtrees it completes, return its index."""
        index = self.size
        get = lambda level, i: self.nodes[(level, i)]  # noqa: E731
        for level, i, value in nodes_completed_by_append(index, leaf, get):
            self.nodes[(level, i)] = value
        self.size += 1
        return index

    def append(self, entry: bytes) -> int:
        """Append an entry's bytes (hashed as a leaf), return its index."""
        return self.append_leaf_hash(leaf_hash(entry))

    def get_many(self, keys: list[NodeKey]) -> dict[NodeKey, bytes]:
        """Return the stored hashes for ``keys`` (absent keys are left out)."""
        return {key: self.nodes[key] for key in keys if key in self.nodes}

    def root(self, size: int | None = None) -> bytes:
        """Root at ``size`` (default: the current size)."""
        return root(self.size if size is None else size, self)
