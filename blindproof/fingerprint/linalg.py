"""Null spaces: floating point (SVD) for float models, exact integer for integer models."""

from __future__ import annotations

from math import gcd
from typing import Sequence

import numpy as np


def null_space(matrix: np.ndarray, rtol: float | None = None) -> np.ndarray:
    """Orthonormal basis (k, n) of the null space of a (m, n) matrix, from its SVD in float64.

    A singular value counts as zero below ``rtol * sigma_max`` (default ``max(m, n) * eps``), the usual
    numerical-rank rule; directions with no constraint at all (n > m) are always in the basis.
    """
    a = np.asarray(matrix, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"null_space needs a 2-D matrix, got shape {a.shape}")
    m, n = a.shape
    if n == 0:
        return np.zeros((0, 0))
    if m == 0 or not np.any(a):
        return np.eye(n)
    _, s, vt = np.linalg.svd(a, full_matrices=True)
    tol = (max(m, n) * np.finfo(np.float64).eps if rtol is None else rtol) * s[0]
    rank = int(np.sum(s > tol))
    return vt[rank:].copy()


def _as_int_rows(matrix: Sequence[Sequence[int]] | np.ndarray) -> list[list[int]]:
    arr = np.asarray(matrix)
    if arr.ndim != 2:
        raise ValueError(f"integer_null_space needs a 2-D matrix, got shape {arr.shape}")
    if arr.dtype.kind not in "iub" and not (arr.dtype == object and all(isinstance(v, int) for v in arr.flat)):
        raise TypeError(f"integer_null_space needs an integer matrix, got dtype {arr.dtype}")
    return [[int(v) for v in row] for row in arr]


def integer_null_space(matrix: Sequence[Sequence[int]] | np.ndarray, reduce: bool = True) -> list[list[int]]:
    """Exact integer basis of the null space of an integer matrix.

    Fraction-free Gauss-Jordan elimination (Bareiss) finds the rank and a basis: every intermediate is an
    integer and every division is exact, so no rounding enters, but its entries are minors with hundreds of
    bits. With ``reduce`` the basis is instead the LLL-reduced basis of the whole integer kernel lattice
    (python-flint), whose entries are small enough to be added to an integer model's inputs. Every vector
    v satisfies ``matrix @ v == 0``, checked in Python integers before returning.
    """
    rows = _as_int_rows(matrix)
    basis, rank = _bareiss_kernel(rows)
    n = len(rows[0]) if rows else 0
    if reduce and basis:
        basis = _lll_kernel(rows, n, n - rank)
    for v in basis:
        if any(sum(w * x for w, x in zip(row, v)) != 0 for row in rows):
            raise ArithmeticError("integer null vector failed its exact check")  # a bug, never bad input
    return basis


def _bareiss_kernel(rows: list[list[int]]) -> tuple[list[list[int]], int]:
    m = len(rows)
    n = len(rows[0]) if m else 0
    a = [r[:] for r in rows]
    den, pivots, r = 1, [], 0
    for c in range(n):
        if r == m:
            break
        piv = next((i for i in range(r, m) if a[i][c] != 0), None)
        if piv is None:
            continue
        a[r], a[piv] = a[piv], a[r]
        p = a[r][c]
        for i in range(m):
            if i != r:  # every other row is rescaled, so all pivots stay equal to `den`
                f = a[i][c]
                a[i] = [(p * x - f * y) // den for x, y in zip(a[i], a[r])]
        den = p
        pivots.append(c)
        r += 1
    # After fraction-free Gauss-Jordan every pivot entry equals the last pivot `den`.
    pivot_set = set(pivots)
    basis = []
    for f in (c for c in range(n) if c not in pivot_set):
        v = [0] * n
        v[f] = den
        for i, c in enumerate(pivots):
            v[c] = -a[i][f]
        g = 0
        for x in v:
            g = gcd(g, x)
        basis.append([x // g for x in v])
    return basis, len(pivots)


def _lll_kernel(rows: list[list[int]], n: int, dim: int) -> list[list[int]]:
    """Short basis of {v in Z^n : A v = 0} by LLL on [I | K A^T] (rows with a zero tail span the kernel)."""
    try:
        import flint
    except ImportError as exc:  # pragma: no cover - python-flint is a declared dependency
        raise ImportError("integer_null_space(reduce=True) needs python-flint") from exc
    m = len(rows)
    bits = 2 * max(1, max((abs(x) for r in rows for x in r), default=1).bit_length()) + n
    for _ in range(6):
        k = flint.fmpz(2) ** bits
        emb = flint.fmpz_mat(n, n + m)
        for i in range(n):
            emb[i, i] = 1
            for j in range(m):
                emb[i, n + j] = k * rows[j][i]
        red = emb.lll()
        kernel = [[int(red[i, j]) for j in range(n)] for i in range(n)
                  if all(red[i, n + j] == 0 for j in range(m))]
        if len(kernel) == dim:
            return kernel
        bits *= 2  # the weight K was too small to force the tail to zero; make it heavier
    raise ArithmeticError("LLL did not isolate the integer kernel")
