"""NTT against the naive DFT, round trips, linearity, and Reed–Solomon distance."""

from __future__ import annotations

import numpy as np
import pytest

from blindproof.zk.field import babybear as F
from blindproof.zk.field.ntt import intt, ntt, rs_encode

P = F.P


def naive_dft(x: np.ndarray) -> np.ndarray:
    n = len(x)
    w = F.two_adic_generator(n.bit_length() - 1)
    return np.array([sum(int(x[j]) * pow(w, j * k, P) for j in range(n)) % P for k in range(n)],
                    dtype=np.uint32)


@pytest.mark.parametrize("log_n", [0, 1, 2, 3, 5, 7])
def test_matches_naive_dft(log_n):
    x = F.random(np.random.default_rng(log_n), 1 << log_n)
    np.testing.assert_array_equal(ntt(x), naive_dft(x))


@pytest.mark.parametrize("log_n", [1, 4, 10, 14])
def test_round_trip(log_n):
    x = F.random(np.random.default_rng(7), 1 << log_n)
    np.testing.assert_array_equal(intt(ntt(x)), x)
    np.testing.assert_array_equal(ntt(intt(x)), x)


def test_axis_and_batch():
    x = F.random(np.random.default_rng(2), (8, 3, 16))
    y = ntt(x, axis=0)
    for i in range(3):
        for j in range(16):
            np.testing.assert_array_equal(y[:, i, j], naive_dft(x[:, i, j]))
    np.testing.assert_array_equal(intt(y, axis=0), x)


def test_convolution_theorem():
    rng = np.random.default_rng(3)
    a, b = np.zeros(32, np.uint32), np.zeros(32, np.uint32)
    a[:16], b[:16] = F.random(rng, 16), F.random(rng, 16)
    prod = intt(F.mul(ntt(a), ntt(b)))
    want = np.zeros(32, dtype=object)
    for i in range(16):
        for j in range(16):
            want[i + j] += int(a[i]) * int(b[j])
    np.testing.assert_array_equal(prod, (want % P).astype(np.uint32))


def test_rs_encode_is_polynomial_evaluation_and_has_distance():
    rng = np.random.default_rng(4)
    rows = F.random(rng, (3, 8))
    code = rs_encode(rows, 4)
    assert code.shape == (3, 32)
    w = F.two_adic_generator(5)
    for r in range(3):
        for k in (0, 1, 17, 31):
            x = pow(w, k, P)
            assert int(code[r, k]) == sum(int(c) * pow(x, i, P) for i, c in enumerate(rows[r])) % P
    # two different messages agree on fewer than C positions (distance ≥ 32 - 8 + 1)
    diff = rows.copy()
    diff[0, 3] = (int(diff[0, 3]) + 1) % P
    agree = np.sum(rs_encode(diff, 4)[0] == code[0])
    assert agree < 8


def test_rejects_bad_lengths():
    with pytest.raises(ValueError, match="power of two"):
        ntt(np.zeros(12, dtype=np.uint32))
    with pytest.raises(ValueError, match="blowup"):
        rs_encode(np.zeros((2, 8), dtype=np.uint32), 3)
    with pytest.raises(ValueError, match="2-D"):
        rs_encode(np.zeros(8, dtype=np.uint32), 2)


@pytest.mark.parametrize("blowup", [1, 2, 8])
def test_rs_encode_equals_zero_padded_ntt(blowup):
    rows = F.random(np.random.default_rng(blowup), (5, 16))
    padded = np.zeros((5, 16 * blowup), dtype=np.uint32)
    padded[:, :16] = rows
    np.testing.assert_array_equal(rs_encode(rows, blowup), ntt(padded))
