"""Compiled (numba) kernels for the zero-knowledge sumcheck masks (:class:`sumcheck.MaskPolynomial`):
``g(x) = Σ_i g_i(x_i)`` with extension coefficients ``coeffs[i, k]`` (uint32, (n, d + 1, 4)), and the
terms of the linear claims that open ``g`` on its committed table (:func:`sumcheck.mask_var_terms`).

A prover makes thousands of these small evaluations per proof; on Python ints each costs tens of
microseconds. Every value is a canonical residue; results are the same field elements as the
plain-Python definitions in :mod:`blindproof.zk.iop.sumcheck`.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from blindproof.zk.field._kernels import _P, e_inv, e_mul

_NJ = dict(cache=True, nogil=True, boundscheck=False)


@nb.njit(inline="always", **_NJ)
def _horner(coeffs, i, x0, x1, x2, x3):
    """g_i(x) (uint64 coefficients)."""
    d = coeffs.shape[1] - 1
    a0, a1, a2, a3 = (np.uint64(coeffs[i, d, 0]), np.uint64(coeffs[i, d, 1]), np.uint64(coeffs[i, d, 2]),
                      np.uint64(coeffs[i, d, 3]))
    for k in range(d - 1, -1, -1):
        a0, a1, a2, a3 = e_mul(a0, a1, a2, a3, x0, x1, x2, x3)
        a0 = (a0 + np.uint64(coeffs[i, k, 0])) % _P
        a1 = (a1 + np.uint64(coeffs[i, k, 1])) % _P
        a2 = (a2 + np.uint64(coeffs[i, k, 2])) % _P
        a3 = (a3 + np.uint64(coeffs[i, k, 3])) % _P
    return a0, a1, a2, a3


@nb.njit(**_NJ)
def univariate(coeffs, i, x0, x1, x2, x3):
    """g_i(x) for x given by its four canonical coefficients; a tuple of four ints."""
    a0, a1, a2, a3 = _horner(coeffs, i, np.uint64(x0), np.uint64(x1), np.uint64(x2), np.uint64(x3))
    return np.int64(a0), np.int64(a1), np.int64(a2), np.int64(a3)


@nb.njit(**_NJ)
def evaluate(coeffs, pts):
    """Σ_i g_i(pts[i]) for an extension point (n, 4); (4,) uint32."""
    s0, s1, s2, s3 = np.uint64(0), np.uint64(0), np.uint64(0), np.uint64(0)
    for i in range(coeffs.shape[0]):
        a0, a1, a2, a3 = _horner(coeffs, i, np.uint64(pts[i, 0]), np.uint64(pts[i, 1]), np.uint64(pts[i, 2]),
                                 np.uint64(pts[i, 3]))
        s0 = (s0 + a0) % _P
        s1 = (s1 + a1) % _P
        s2 = (s2 + a2) % _P
        s3 = (s3 + a3) % _P
    out = np.empty(4, dtype=np.uint32)
    out[0], out[1], out[2], out[3] = s0, s1, s2, s3
    return out


@nb.njit(**_NJ)
def round_values(coeffs, j, bound, degree, count, const):
    """``(bound + g_j(x)) · count + const`` at x = 0..degree; (degree + 1, 4) uint32 (``bound``,
    ``const``: (4,) canonical; ``count`` < p)."""
    d = coeffs.shape[1] - 1
    out = np.empty((degree + 1, 4), dtype=np.uint32)
    cnt = np.uint64(count)
    for x in range(degree + 1):
        ux = np.uint64(x)
        for c in range(4):
            g = np.uint64(coeffs[j, d, c])
            for k in range(d - 1, -1, -1):
                g = (g * ux + np.uint64(coeffs[j, k, c])) % _P
            out[x, c] = (((np.uint64(bound[c]) + g) % _P) * cnt + np.uint64(const[c])) % _P
    return out


@nb.njit(**_NJ)
def claim_terms(xs, var, coefs, ce, le, ell, kbits):
    """Per item ``(var[j], xs[j], coefs[j])`` of :func:`sumcheck.mask_var_terms`: the point
    ``(c_e, bits of var[j] (MSB first), c_k)`` and the coefficient ``coef · λ_e · λ_k`` of its term,
    with ``(c_k, λ_k)`` the geometric point of ``xs[j]`` over ``kbits`` bits (as
    :func:`sumcheck._geometric_points`, one inversion per factor). Returns (coords, coefficients,
    index of an item whose geometric point does not exist, or -1)."""
    n = xs.shape[0]
    coords = np.zeros((n, 2 + ell + kbits, 4), dtype=np.uint32)
    out = np.empty((n, 4), dtype=np.uint32)
    one = np.uint64(1)
    for j in range(n):
        for q in range(2):
            for c in range(4):
                coords[j, q, c] = ce[q, c]
        v = var[j]
        for q in range(ell):
            coords[j, 2 + q, 0] = (v >> (ell - 1 - q)) & 1
        p0, p1, p2, p3 = np.uint64(xs[j, 0]), np.uint64(xs[j, 1]), np.uint64(xs[j, 2]), np.uint64(xs[j, 3])
        l0, l1, l2, l3 = np.uint64(le[0]), np.uint64(le[1]), np.uint64(le[2]), np.uint64(le[3])
        for b in range(kbits):  # p = y^(2^b); the factor (1 + p)·eq(p / (1 + p), k_b)
            if b > 0:
                p0, p1, p2, p3 = e_mul(p0, p1, p2, p3, p0, p1, p2, p3)
            o0 = (p0 + one) % _P
            i0, i1, i2, i3 = e_inv(o0, p1, p2, p3)
            if i0 == 0 and i1 == 0 and i2 == 0 and i3 == 0:
                return coords, out, j
            l0, l1, l2, l3 = e_mul(l0, l1, l2, l3, o0, p1, p2, p3)
            c0, c1, c2, c3 = e_mul(p0, p1, p2, p3, i0, i1, i2, i3)
            k = 2 + ell + kbits - 1 - b  # MSB first: the top bit carries y^(2^(kbits-1))
            coords[j, k, 0], coords[j, k, 1], coords[j, k, 2], coords[j, k, 3] = c0, c1, c2, c3
        r0, r1, r2, r3 = e_mul(np.uint64(coefs[j, 0]), np.uint64(coefs[j, 1]), np.uint64(coefs[j, 2]),
                               np.uint64(coefs[j, 3]), l0, l1, l2, l3)
        out[j, 0], out[j, 1], out[j, 2], out[j, 3] = r0, r1, r2, r3
    return coords, out, -1
