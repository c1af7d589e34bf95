"""Number-theoretic transform over BabyBear's 2^27 subgroup, and Reed–Solomon encoding by NTT.

Convention: ``ntt(a)[k] = sum_j a[j] · ω_n^{jk}`` with ``ω_n = field.two_adic_generator(log2 n)``, i.e.
coefficients in, evaluations on the subgroup ``<ω_n>`` in natural order out. ``intt`` inverts it.
"""

from __future__ import annotations

from functools import lru_cache

import numba as nb
import numpy as np

from blindproof.zk import field as F
from blindproof.zk._kernels import _P, P_INT

_NJ = dict(cache=True, nogil=True, boundscheck=False)


@nb.njit(**_NJ)
def _ntt_rows(a, tw):
    """In-place radix-2 DIT NTT of each row of ``a`` (B, n) with twiddles ``tw[i] = ω^i``, i < n/2."""
    B, n = a.shape
    log_n = 0
    while (1 << log_n) < n:
        log_n += 1
    for b in range(B):
        row = a[b]
        # bit-reversal permutation
        j = 0
        for i in range(1, n):
            bit = n >> 1
            while j & bit:
                j ^= bit
                bit >>= 1
            j |= bit
            if i < j:
                t = row[i]
                row[i] = row[j]
                row[j] = t
        length = 2
        while length <= n:
            half = length >> 1
            step = n // length
            for s in range(0, n, length):
                for k in range(half):
                    w = np.uint64(tw[k * step])
                    u = np.uint64(row[s + k])
                    v = (np.uint64(row[s + k + half]) * w) % _P
                    x = u + v
                    row[s + k] = x - _P if x >= _P else x
                    row[s + k + half] = u - v if u >= v else u + _P - v
            length <<= 1


@nb.njit(**_NJ)
def _scale_rows(a, s):
    B, n = a.shape
    for b in range(B):
        for i in range(n):
            a[b, i] = (np.uint64(a[b, i]) * s) % _P


@lru_cache(maxsize=64)
def _twiddles(log_n: int, inverse: bool) -> np.ndarray:
    n = 1 << log_n
    w = F.two_adic_generator(log_n)
    if inverse:
        w = pow(w, P_INT - 2, P_INT)
    half = max(n // 2, 1)
    tw = np.empty(half, dtype=np.uint32)
    # powers by repeated doubling of a prefix keeps this O(n) with numpy
    tw[0] = 1
    filled = 1
    while filled < half:
        take = min(filled, half - filled)
        tw[filled:filled + take] = F.mul(tw[:take], np.uint32(pow(w, filled, P_INT)))
        filled += take
    tw.setflags(write=False)
    return tw


def _log2_exact(n: int, what: str) -> int:
    if n < 1 or n & (n - 1):
        raise ValueError(f"{what} must be a power of two, got {n}")
    log_n = n.bit_length() - 1
    if log_n > F.TWO_ADICITY:
        raise ValueError(f"{what} = 2^{log_n} exceeds the field's 2-adic subgroup (2^{F.TWO_ADICITY})")
    return log_n


def _transform(a: np.ndarray, axis: int, inverse: bool) -> np.ndarray:
    a = F._check(a)
    if a.ndim == 0:
        raise ValueError("ntt: input must have at least one axis")
    moved = np.moveaxis(a, axis, -1)
    n = moved.shape[-1]
    log_n = _log2_exact(n, "ntt length")
    rows = np.ascontiguousarray(moved).reshape(-1, n).copy()
    _ntt_rows(rows, _twiddles(log_n, inverse))
    if inverse and n > 1:
        _scale_rows(rows, np.uint64(pow(n, P_INT - 2, P_INT)))
    return np.moveaxis(rows.reshape(moved.shape), -1, axis)


def ntt(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """Forward NTT along ``axis`` (length a power of two ≤ 2^27): coefficients -> evaluations."""
    return _transform(a, axis, inverse=False)


def intt(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """Inverse NTT along ``axis``: evaluations on the subgroup -> coefficients."""
    return _transform(a, axis, inverse=True)


def rs_encode(rows: np.ndarray, blowup: int) -> np.ndarray:
    """Reed–Solomon encode each row: row = coefficients of a polynomial of degree < C, codeword = its
    evaluations on the subgroup of order ``C · blowup`` (natural order). Returns (R, C · blowup)."""
    rows = F._check(rows, "rows")
    if rows.ndim != 2:
        raise ValueError(f"rs_encode: rows must be a 2-D (R, C) array, got shape {rows.shape}")
    if not isinstance(blowup, (int, np.integer)) or blowup < 1:
        raise ValueError(f"rs_encode: blowup must be a positive int, got {blowup!r}")
    R, C = rows.shape
    _log2_exact(C, "rs_encode row length")
    _log2_exact(int(blowup), "rs_encode blowup")
    n = C * int(blowup)
    _log2_exact(n, "rs_encode codeword length")
    padded = np.zeros((R, n), dtype=np.uint32)
    padded[:, :C] = rows
    _ntt_rows(padded, _twiddles(n.bit_length() - 1, False))
    return padded
