"""Reed–Solomon encoding for the commitment: a row-wise NTT that LLVM vectorises.

Decimation in frequency (natural-order input, bit-reversed output), so no permutation pass is needed:
``out[j] = p(ω_N^{bitrev(j)})`` for the polynomial ``p`` whose coefficients are the input row. The
commitment only needs some fixed order of distinct nonzero evaluation points, and prover and
verifier both encode with this function. Twiddles are stored in Montgomery form (``w·2^32 mod p``), so
one Montgomery product ``(u - v)·w`` returns a canonical residue without a division, and the long
butterfly loops compile to AVX-512/AVX2 vector code; the last stages (half-length < 32) stay scalar.
"""

from __future__ import annotations


import numba as nb
import numpy as np

from blindproof.zk import device
from blindproof.zk.field import babybear as F
from blindproof.zk.field.ntt import _twiddles

_NJ = dict(cache=True, nogil=True, boundscheck=False, error_model="numpy")

_P = np.uint64(F.P)
_PINV_NEG = np.uint64((-pow(F.P, -1, 1 << 32)) % (1 << 32))  # -p^{-1} mod 2^32
_M32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_VECTOR_MIN_HALF = 32


@nb.njit(**_NJ)
def _butterflies(lo, hi, tw, h):
    """lo, hi <- lo + hi, (lo - hi)·tw (Montgomery) over h contiguous entries: vectorised."""
    for k in range(h):
        u = np.uint64(lo[k])
        v = np.uint64(hi[k])
        x = u + v
        lo[k] = np.uint32(x - _P if x >= _P else x)
        t = (u + _P - v) * np.uint64(tw[k])
        m = (t * _PINV_NEG) & _M32
        r = (t + m * _P) >> _S32
        hi[k] = np.uint32(r - _P if r >= _P else r)


@nb.njit(**_NJ)
def _dif_rows(a, tw):
    """In-place DIF NTT of every row of ``a`` (B, n); stage with half-length h uses tw[h-1 : 2h-1]."""
    n = a.shape[1]
    for b in range(a.shape[0]):
        row = a[b]
        h = n >> 1
        while h >= 1:
            if h >= _VECTOR_MIN_HALF:
                t = tw[h - 1:2 * h - 1]
                for s in range(0, n, 2 * h):
                    _butterflies(row[s:s + h], row[s + h:s + 2 * h], t, h)
            else:  # short runs: calls would cost more than the work
                t0 = h - 1
                for s in range(0, n, 2 * h):
                    for k in range(h):
                        u = np.uint64(row[s + k])
                        v = np.uint64(row[s + k + h])
                        x = u + v
                        row[s + k] = np.uint32(x - _P if x >= _P else x)
                        tt = (u + _P - v) * np.uint64(tw[t0 + k])
                        m = (tt * _PINV_NEG) & _M32
                        r = (tt + m * _P) >> _S32
                        row[s + k + h] = np.uint32(r - _P if r >= _P else r)
            h >>= 1


def encode_rows(coeffs: np.ndarray, n: int) -> np.ndarray:
    """Evaluate each row of ``coeffs`` (B, k), as polynomial coefficients, at the n-th roots of
    unity in bit-reversed order: (B, n) uint32. ``k ≤ n``, n a power of two.

    Large matrices run on the prover device (:mod:`blindproof.zk.device`) when one is chosen; the
    result is bit-identical either way."""
    c = F._check(coeffs, "coeffs")
    if c.ndim != 2 or c.shape[1] > n or n < 1 or n & (n - 1):
        raise ValueError(f"encode_rows: need (B, k) coefficients with k ≤ n = power of two, got "
                         f"{c.shape} and n = {n}")
    dev = device.device_for_encode(c.shape[0], n)
    if dev is not None:
        done = device.attempt(device.encode_rows, c, n, device=dev)
        if done is not None:
            return done
    out = np.zeros((c.shape[0], n), dtype=np.uint32)
    out[:, :c.shape[1]] = c
    if n > 1:
        _dif_rows(out, _twiddles(n.bit_length() - 1))
    return out


def bit_reverse_permutation(n: int) -> np.ndarray:
    """``perm[j] = bitrev(j)``: column j of :func:`encode_rows` is the evaluation at ω_n^{perm[j]}."""
    log_n = n.bit_length() - 1
    idx = np.arange(n, dtype=np.int64)
    rev = np.zeros(n, dtype=np.int64)
    for b in range(log_n):
        rev |= ((idx >> b) & 1) << (log_n - 1 - b)
    return rev
