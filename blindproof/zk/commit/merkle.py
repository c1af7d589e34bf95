"""BLAKE3 Merkle trees over the columns of a word matrix, with batched (multi-leaf) openings.

Leaves are keyed BLAKE3 digests of whole columns (the column's words as little-endian bytes); inner
nodes are keyed BLAKE3 of the two child digests. Leaves and nodes use different keys, so a leaf can
never be passed off as a node. Opening many leaves at once sends each sibling digest only once (a
multiproof): siblings that the verifier can compute from other opened leaves are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import blake3
import numpy as np

from blindproof.zk.commit import _blake3 as B

DIGEST_BYTES = 32

_LEAF_KEY_BYTES = blake3.blake3(b"blindproof merkle leaf v1").digest()
_NODE_KEY_BYTES = blake3.blake3(b"blindproof merkle node v1").digest()
LEAF_KEY = np.frombuffer(_LEAF_KEY_BYTES, dtype="<u4").astype(np.uint32)
NODE_KEY = np.frombuffer(_NODE_KEY_BYTES, dtype="<u4").astype(np.uint32)


def digest_to_bytes(d: np.ndarray) -> bytes:
    """An 8-word digest as its 32 bytes."""
    return np.ascontiguousarray(d, dtype="<u4").tobytes()


def bytes_to_digest(b: bytes) -> np.ndarray:
    """32 bytes as an 8-word digest."""
    if not isinstance(b, (bytes, bytearray)) or len(b) != DIGEST_BYTES:
        raise ValueError(f"a digest is exactly {DIGEST_BYTES} bytes")
    return np.frombuffer(bytes(b), dtype="<u4").astype(np.uint32)


def _words(matrix: np.ndarray, what: str) -> np.ndarray:
    m = np.asarray(matrix)
    if m.dtype != np.uint32 or m.ndim != 2:
        raise TypeError(f"{what}: expected a 2-D uint32 array, got {m.dtype} with shape {m.shape}")
    return np.ascontiguousarray(m)


def hash_columns(columns: np.ndarray) -> np.ndarray:
    """Leaf digests of opened columns given as the ROWS of ``columns`` (k, height): (k, 8) uint32."""
    return B.hash_lines(_words(columns, "hash_columns"), False, LEAF_KEY)


def _check_positions(positions: np.ndarray, n_leaves: int) -> np.ndarray:
    pos = np.asarray(positions)
    if pos.ndim != 1 or pos.dtype.kind not in "iu":
        raise ValueError("positions must be a 1-D integer array")
    pos = pos.astype(np.int64)
    if pos.size and (pos[0] < 0 or pos[-1] >= n_leaves or np.any(np.diff(pos) <= 0)):
        raise ValueError(f"positions must be sorted, unique and in [0, {n_leaves})")
    return pos


class MerkleTree:
    """A Merkle tree whose leaves are the columns of ``matrix`` (R, n); n must be a power of two."""

    def __init__(self, matrix: np.ndarray) -> None:
        m = _words(matrix, "MerkleTree")
        n = m.shape[1]
        if n < 1 or n & (n - 1):
            raise ValueError(f"MerkleTree: the number of columns must be a power of two, got {n}")
        self.n_leaves = n
        self._tree = B.build_tree(m, LEAF_KEY, NODE_KEY)

    @property
    def root(self) -> bytes:
        """The 32-byte root digest (for a single leaf, the leaf digest itself)."""
        return digest_to_bytes(self._tree[1])

    @property
    def depth(self) -> int:
        """Number of levels above the leaves."""
        return self.n_leaves.bit_length() - 1

    def open(self, positions: np.ndarray) -> np.ndarray:
        """Multiproof sibling digests (m, 8) for the sorted unique leaf ``positions``."""
        return B.multiproof(self._tree, _check_positions(positions, self.n_leaves))


@dataclass(frozen=True)
class MultiProofShape:
    """Upper bound on a multiproof's length, for bounded decoding."""

    n_leaves: int
    n_positions: int

    @property
    def max_siblings(self) -> int:
        depth = self.n_leaves.bit_length() - 1
        return self.n_positions * depth


def verify(root: bytes, n_leaves: int, positions: np.ndarray, leaf_digests: np.ndarray,
           siblings: np.ndarray) -> bool:
    """True iff the leaves at sorted unique ``positions`` with ``leaf_digests`` (k, 8) and the
    multiproof ``siblings`` (m, 8) hash up to ``root``. Malformed input returns False."""
    try:
        if n_leaves < 1 or n_leaves & (n_leaves - 1):
            return False
        pos = _check_positions(positions, n_leaves)
        leaves = np.ascontiguousarray(leaf_digests, dtype=np.uint32)
        sib = np.ascontiguousarray(siblings, dtype=np.uint32).reshape(-1, 8)
        if pos.size == 0 or leaves.shape != (pos.size, 8):
            return False
        got, ok = B.multiproof_root(n_leaves, pos, leaves, sib, NODE_KEY)
        return bool(ok) and digest_to_bytes(got) == bytes(root)
    except (ValueError, TypeError):
        return False
