"""Number-theoretic transform over BabyBear's 2^27 subgroup, and Reed–Solomon encoding by NTT.

Convention: ``ntt(a)[k] = sum_j a[j] · ω_n^{jk}`` with ``ω_n = field.two_adic_generator(log2 n)``, i.e.
coefficients in, evaluations on the subgroup ``<ω_n>`` in natural order out. ``intt`` inverts it.
"""

from __future__ import annotations

from functools import lru_cache

import numba as nb
import numpy as np

from blindproof.zk.field import babybear as F
from blindproof.zk.field._kernels import _P, P_INT

_NJ = dict(cache=True, nogil=True, boundscheck=False)


@nb.njit(**_NJ)
def _ntt_rows(a, rev, tw, twp):
    """In-place radix-2 DIT NTT of each row of ``a`` (B, n).

    ``rev`` is the bit-reversal permutation; the stage with half-size h reads its twiddles
    ``ω_{2h}^k`` (k < h) contiguously at ``tw[h-1 : 2h-1]`` together with Shoup's precomputed
    ``twp = ⌊tw · 2^32 / p⌋``, so each twiddle product needs two multiplications and no division."""
    B, n = a.shape
    shift = np.uint64(32)
    for b in range(B):
        row = a[b]
        for i in range(n):
            j = rev[i]
            if i < j:
                t = row[i]
                row[i] = row[j]
                row[j] = t
        half = 1
        while half < n:
            off = half - 1
            for s in range(0, n, 2 * half):
                for k in range(half):
                    x = np.uint64(row[s + k + half])
                    q = (x * twp[off + k]) >> shift
                    v = x * tw[off + k] - q * _P  # in [0, 2p)
                    if v >= _P:
                        v -= _P
                    u = np.uint64(row[s + k])
                    y = u + v
                    row[s + k] = y - _P if y >= _P else y
                    row[s + k + half] = u - v if u >= v else u + _P - v
            half *= 2


@nb.njit(**_NJ)
def _scale_rows(a, s):
    B, n = a.shape
    for b in range(B):
        for i in range(n):
            a[b, i] = (np.uint64(a[b, i]) * s) % _P


def _powers(w: int, count: int) -> np.ndarray:
    """w^0 … w^(count-1) as uint32, by doubling a prefix (O(count) numpy work)."""
    out = np.empty(max(count, 1), dtype=np.uint32)
    out[0] = 1
    filled = 1
    while filled < count:
        take = min(filled, count - filled)
        out[filled:filled + take] = F.mul(out[:take], np.uint32(pow(w, filled, P_INT)))
        filled += take
    return out[:count]


@lru_cache(maxsize=64)
def _plan(log_n: int, inverse: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bit-reversal table and per-stage twiddles (with Shoup constants) for length 2^log_n."""
    n = 1 << log_n
    idx = np.arange(n, dtype=np.int64)
    rev = np.zeros(n, dtype=np.int64)
    for bit in range(log_n):
        rev |= ((idx >> bit) & 1) << (log_n - 1 - bit)
    w = F.two_adic_generator(log_n)
    if inverse:
        w = pow(w, P_INT - 2, P_INT)
    base = _powers(w, n // 2).astype(np.uint64)  # ω_n^i, i < n/2
    tw = np.zeros(max(n - 1, 1), dtype=np.uint64)
    half = 1
    while half < n:
        tw[half - 1: 2 * half - 1] = base[:: n // (2 * half)][:half]  # ω_{2h}^k = ω_n^{k·n/2h}
        half *= 2
    twp = (tw << np.uint64(32)) // np.uint64(P_INT)
    for arr in (rev, tw, twp):
        arr.setflags(write=False)
    return rev, tw, twp


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
    _ntt_rows(rows, *_plan(log_n, inverse))
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
    log_n = _log2_exact(n, "rs_encode codeword length")
    # (Evaluating coset by coset would skip the butterflies on the zero padding, but measured no
    # faster here: the coset scaling and the interleaving copy cost as much as they save.)
    padded = np.zeros((R, n), dtype=np.uint32)
    padded[:, :C] = rows
    _ntt_rows(padded, *_plan(log_n, False))
    return padded


@lru_cache(maxsize=16)
def _twiddles(log_n: int) -> np.ndarray:
    """Per-stage twiddles in Montgomery form, concatenated: stage h holds ω_{2h}^k for k < h."""
    n = 1 << log_n
    half = n // 2
    base = np.ones(max(half, 1), dtype=np.uint32)  # ω_n^k, k < n/2, by repeated doubling
    w = F.two_adic_generator(log_n)
    filled = 1
    while filled < half:
        take = min(filled, half - filled)
        base[filled:filled + take] = F.mul(base[:take], np.uint32(pow(w, filled, F.P)))
        filled += take
    mont = F.mul(base, np.uint32((1 << 32) % F.P))
    out = np.empty(max(n - 1, 0), dtype=np.uint32)
    h = half
    while h >= 1:
        out[h - 1:2 * h - 1] = mont[:: n // (2 * h)][:h]
        h //= 2
    out.setflags(write=False)
    return out


@lru_cache(maxsize=16)
def plain_twiddles(log_n: int) -> np.ndarray:
    """:func:`_twiddles` as plain residues (not Montgomery form), for the torch kernel."""
    out = F.mul(_twiddles(log_n), np.uint32(pow(1 << 32, -1, F.P)))
    out.setflags(write=False)
    return out
