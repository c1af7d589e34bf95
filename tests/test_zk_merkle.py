"""BLAKE3 kernel against the reference package; Merkle multiproofs: completeness and must-reject."""

from __future__ import annotations

import blake3
import numpy as np
import pytest

from blindproof.zk.commit import _blake3 as B
from blindproof.zk.commit import merkle as M

KEY = blake3.blake3(b"test key").digest()
KEY_WORDS = np.frombuffer(KEY, dtype="<u4").astype(np.uint32)


@pytest.mark.parametrize("n_words", [0, 1, 15, 16, 17, 255, 256, 257, 512, 513, 768, 1024, 1040, 1791, 4100])
def test_blake3_matches_reference(n_words):
    rng = np.random.default_rng(n_words)
    data = rng.integers(0, 2**32, size=(3, n_words), dtype=np.uint32)
    rows = B.hash_lines(data, False, KEY_WORDS)
    cols = B.hash_lines(np.ascontiguousarray(data.T), True, KEY_WORDS)
    for r in range(3):
        want = blake3.blake3(data[r].astype("<u4").tobytes(), key=KEY).digest()
        assert M.digest_to_bytes(rows[r]) == want
        assert M.digest_to_bytes(cols[r]) == want


@pytest.mark.parametrize("height", [0, 1, 16, 17, 256, 266, 513, 1040, 2100])
@pytest.mark.parametrize("width", [16, 48, 19])
def test_lockstep_column_hashing_matches_reference(height, width):
    rng = np.random.default_rng(height * 100 + width)
    mat = rng.integers(0, 2**32, size=(height, width), dtype=np.uint32)
    got = B.hash_columns(mat, KEY_WORDS)
    for j in range(width):
        assert M.digest_to_bytes(got[j]) == blake3.blake3(mat[:, j].astype("<u4").tobytes(), key=KEY).digest()


@pytest.mark.parametrize("shape", [(5, 8), (300, 32)])
def test_tree_structure_matches_reference_hashes(shape):
    rng = np.random.default_rng(1)
    mat = rng.integers(0, 2**31, size=shape, dtype=np.uint32)
    tree = M.MerkleTree(mat)
    leaf = [blake3.blake3(mat[:, j].astype("<u4").tobytes(), key=M._LEAF_KEY_BYTES).digest()
            for j in range(shape[1])]
    level = leaf
    while len(level) > 1:
        level = [blake3.blake3(level[i] + level[i + 1], key=M._NODE_KEY_BYTES).digest()
                 for i in range(0, len(level), 2)]
    assert tree.root == level[0]


@pytest.mark.parametrize("n_leaves,k", [(1, 1), (2, 1), (2, 2), (64, 1), (64, 7), (64, 64), (1024, 150)])
def test_multiproof_roundtrip(n_leaves, k):
    rng = np.random.default_rng(n_leaves + k)
    mat = rng.integers(0, 2**31, size=(9, n_leaves), dtype=np.uint32)
    tree = M.MerkleTree(mat)
    pos = np.sort(rng.choice(n_leaves, size=k, replace=False))
    sib = tree.open(pos)
    leaves = M.hash_columns(np.ascontiguousarray(mat[:, pos].T))
    assert M.verify(tree.root, n_leaves, pos, leaves, sib)
    assert sib.shape[0] <= k * tree.depth


def _setup(n_leaves=256, k=12, seed=3):
    rng = np.random.default_rng(seed)
    mat = rng.integers(0, 2**31, size=(6, n_leaves), dtype=np.uint32)
    tree = M.MerkleTree(mat)
    pos = np.sort(rng.choice(n_leaves, size=k, replace=False))
    return mat, tree, pos, tree.open(pos)


def test_rejects_tampered_column():
    mat, tree, pos, sib = _setup()
    cols = np.ascontiguousarray(mat[:, pos].T)
    cols[3, 2] ^= 1
    assert not M.verify(tree.root, 256, pos, M.hash_columns(cols), sib)


def test_rejects_tampered_sibling_every_word():
    mat, tree, pos, sib = _setup()
    leaves = M.hash_columns(np.ascontiguousarray(mat[:, pos].T))
    for i in range(sib.shape[0]):
        bad = sib.copy()
        bad[i, i % 8] ^= 1 << (i % 32)
        assert not M.verify(tree.root, 256, pos, leaves, bad)


def test_rejects_wrong_positions_lengths_and_roots():
    mat, tree, pos, sib = _setup()
    leaves = M.hash_columns(np.ascontiguousarray(mat[:, pos].T))
    shifted = pos.copy()
    shifted[0] = (shifted[0] + 1) if shifted[0] + 1 not in pos else shifted[0] - 1
    shifted.sort()
    assert not M.verify(tree.root, 256, shifted, leaves, sib)
    assert not M.verify(tree.root, 256, pos, leaves, sib[:-1])
    assert not M.verify(tree.root, 256, pos, leaves, np.vstack([sib, sib[:1]]))
    assert not M.verify(b"\0" * 32, 256, pos, leaves, sib)
    assert not M.verify(tree.root, 512, pos, leaves, sib)
    assert not M.verify(tree.root, 256, pos[::-1], leaves, sib)  # unsorted
    assert not M.verify(tree.root, 256, np.array([], dtype=np.int64), leaves[:0], sib[:0])
    assert not M.verify(tree.root, 255, pos, leaves, sib)


def test_bad_input_raises():
    with pytest.raises(ValueError):
        M.MerkleTree(np.zeros((3, 6), dtype=np.uint32))
    with pytest.raises(TypeError):
        M.MerkleTree(np.zeros((3, 8), dtype=np.int64))
    with pytest.raises(ValueError):
        M.MerkleTree(np.zeros((3, 8), dtype=np.uint32)).open(np.array([3, 1]))
