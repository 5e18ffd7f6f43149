"""RFC 6962 Merkle tree: tree heads, inclusion proofs and consistency proofs.

The audit log is an RFC 6962 (Certificate Transparency) tree over SHA-256:

* leaf hash ``SHA-256(0x00 || data)``, interior node ``SHA-256(0x01 || left || right)``;
* the head of ``n > 1`` leaves splits them at ``k``, the largest power of two
  smaller than ``n``: ``node(MTH(D[0:k]), MTH(D[k:n]))``; the empty tree's head
  is ``SHA-256("")``;
* proofs are bare lists of 32-byte hashes, generated as RFC 6962 §2.1.1 and
  §2.1.2 say and verified with the algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2.

Why hand-written: the one maintained Python package (``pymerkle``) builds its
own proof objects (a path with direction bits and metadata), not RFC 9162's
bare hash lists, so the transparency-dev known-answer vectors and the proofs
any other RFC 6962 verifier would accept need a translation layer; the
algorithms themselves fit in this module. It is checked against every vector
in ``tests/vectors/merkle/`` and by property tests.

Pure: hashes in, hashes out; no I/O, logging or clock. A proof that does not
verify raises :class:`~genofed.common.errors.IntegrityError`, whatever the
reason (wrong size, wrong hash length, wrong root).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from genofed.common.errors import IntegrityError

HASH_SIZE = 32
#: Head of the empty tree: SHA-256 of the empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def frontier_append(frontier: Sequence[bytes], size: int, leaf: bytes) -> list[bytes]:
    """The compact range of a tree of ``size + 1`` leaves, from that of ``size`` leaves.

    A tree's *frontier* is the list of the roots of its perfect subtrees, one
    per set bit of its size, largest first. It is all an append-only log needs
    to keep to compute its next head without re-reading its leaves.
    """
    out = list(frontier)
    merged, rest = leaf, size
    while rest & 1:
        merged = node_hash(out.pop(), merged)
        rest >>= 1
    out.append(merged)
    return out


def frontier_root(frontier: Sequence[bytes]) -> bytes:
    """The RFC 6962 head of the tree whose frontier is ``frontier``."""
    if not frontier:
        return EMPTY_ROOT
    root = frontier[-1]
    for left in reversed(frontier[:-1]):
        root = node_hash(left, root)
    return root


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """The RFC 6962 head (MTH) of the tree with these leaf hashes."""
    frontier: list[bytes] = []
    for size, leaf in enumerate(leaf_hashes):
        frontier = frontier_append(frontier, size, leaf)
    return frontier_root(frontier)


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path of leaf ``index`` in the tree of ``leaf_hashes`` (RFC 6962 §2.1.1)."""
    if not 0 <= index < len(leaf_hashes):
        raise ValueError(f"leaf {index} is not in a tree of {len(leaf_hashes)} leaves")
    path: list[bytes] = []
    lo, hi, m = 0, len(leaf_hashes), index
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            path.append(root_hash(leaf_hashes[lo + k : hi]))
            hi = lo + k
        else:
            path.append(root_hash(leaf_hashes[lo : lo + k]))
            lo, m = lo + k, m - k
    path.reverse()
    return path


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """Proof that the tree of the first ``old_size`` leaves is a prefix (RFC 6962 §2.1.2)."""
    n = len(leaf_hashes)
    if not 0 <= old_size <= n:
        raise ValueError(f"tree size {old_size} is not within a tree of {n} leaves")
    if old_size in (0, n):
        return []
    path: list[bytes] = []
    lo, hi, m, complete = 0, n, old_size, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            path.append(root_hash(leaf_hashes[lo + k : hi]))
            hi = lo + k
        else:
            path.append(root_hash(leaf_hashes[lo : lo + k]))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        path.append(root_hash(leaf_hashes[lo:hi]))
    path.reverse()
    return path


def _check_hashes(*hashes: bytes) -> None:
    for h in hashes:
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise IntegrityError()


def _same(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def verify_inclusion(
    index: int, tree_size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` (a leaf hash) is leaf ``index`` of the tree ``root`` of ``tree_size``.

    RFC 9162 §2.1.3.2. Raises :class:`IntegrityError` if it is not.
    """
    _check_hashes(leaf, root, *proof)
    if not 0 <= index < tree_size:
        raise IntegrityError()
    fn, sn, r = index, tree_size - 1, leaf
    for p in proof:
        if sn == 0:
            raise IntegrityError()
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or not _same(r, root):
        raise IntegrityError()


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree ``root1`` of ``size1`` leaves is a prefix of ``root2`` of ``size2``.

    RFC 9162 §2.1.4.2. Equal sizes need an empty proof and equal roots (the
    empty tree's root is :data:`EMPTY_ROOT`); a proof from the empty tree is
    meaningless and rejected. Raises :class:`IntegrityError` on any failure.
    """
    _check_hashes(root1, root2, *proof)
    if not 0 <= size1 <= size2:
        raise IntegrityError()
    if size1 == size2:
        if proof or not _same(root1, root2) or (size1 == 0 and not _same(root1, EMPTY_ROOT)):
            raise IntegrityError()
        return
    if size1 == 0 or not proof:
        raise IntegrityError()
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # a power of two: the old root is a node of the new tree
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise IntegrityError()
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or not _same(fr, root1) or not _same(sr, root2):
        raise IntegrityError()


__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "consistency_proof",
    "frontier_append",
    "frontier_root",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]
