"""Null spaces: float SVD basis and exact integer kernels."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from blindproof.fingerprint.linalg import integer_null_space, null_space


def test_null_space_is_orthonormal_and_annihilated():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20, 50))
    b = null_space(a)
    assert b.shape == (30, 50)
    assert np.allclose(b @ b.T, np.eye(30), atol=1e-12)
    assert np.abs(a @ b.T).max() < 1e-12


def test_null_space_sees_rank_deficiency():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((6, 4)) @ rng.standard_normal((4, 10))  # rank 4
    assert null_space(a).shape == (6, 10)
    assert null_space(np.eye(5)).shape == (0, 5)
    assert null_space(np.zeros((3, 4))).shape == (4, 4)


def test_null_space_rejects_non_matrix():
    with pytest.raises(ValueError, match="2-D"):
        null_space(np.zeros(5))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_integer_kernel_is_exact_and_complete(m, n, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(-5, 6, (m, n))
    if m > 1:
        w[-1] = w[0] - 2 * w[-2]  # force some rank deficiency
    for reduce in (False, True):
        basis = integer_null_space(w, reduce=reduce)
        assert len(basis) == n - np.linalg.matrix_rank(w)
        for v in basis:
            assert all(isinstance(x, int) for x in v)
            assert (w.astype(object) @ np.array(v, dtype=object) == 0).all()
        if basis:
            assert np.linalg.matrix_rank(np.array(basis, dtype=float)) == len(basis)


def test_lll_gives_short_integer_vectors_for_int8_weights():
    rng = np.random.default_rng(3)
    w = rng.integers(-127, 128, (16, 32))
    raw = integer_null_space(w, reduce=False)
    short = integer_null_space(w, reduce=True)
    assert len(raw) == len(short) == 16
    assert max(abs(x) for v in raw for x in v).bit_length() > 60  # Cramer-sized minors
    assert max(abs(x) for v in short for x in v) < 2**15  # fits an int16 input


def test_integer_kernel_rejects_floats():
    with pytest.raises(TypeError, match="integer matrix"):
        integer_null_space(np.ones((2, 3)) * 0.5)
