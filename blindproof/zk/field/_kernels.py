"""Compiled (numba) kernels for BabyBear and its quartic extension.

Every value is a canonical residue in ``[0, P)``. Products are formed in uint64 (< 2^62) and reduced
by a constant modulus, which LLVM turns into a multiply-high instead of a division. Sums of up to four
products still fit in uint64 ((P-1)^2 · 4 < 2^64), which the extension multiply exploits to reduce
six times instead of sixteen.

All functions here use ``cache=True`` so that a cold start compiles once per machine. numba's on-disk
cache does not notice edits to a callee in another file (these helpers are inlined into kernels in
mle/sumcheck/lookup): after editing this file, delete the ``__pycache__`` folder of ``blindproof/zk``.
"""

from __future__ import annotations

import numba as nb
import numpy as np

P_INT = 2013265921
W_INT = 11  # extension: F_p[x] / (x^4 - W)

_P = np.uint64(P_INT)
_W = np.uint64(W_INT)
_ZERO = np.uint64(0)
_ONE = np.uint64(1)
_TWO = np.uint64(2)

_NJ = dict(cache=True, nogil=True, fastmath=False, boundscheck=False)


# --- scalar helpers (inlined into the loops below) -------------------------------------------------

@nb.njit(inline="always", **_NJ)
def mulmod(a, b):
    return (a * b) % _P


@nb.njit(inline="always", **_NJ)
def addmod(a, b):
    s = a + b
    return s - _P if s >= _P else s


@nb.njit(inline="always", **_NJ)
def submod(a, b):
    return a - b if a >= b else a + _P - b


@nb.njit(inline="always", **_NJ)
def e_mul(a0, a1, a2, a3, b0, b1, b2, b3):
    """Product of two extension elements given by their coefficients (uint64, canonical)."""
    c0 = (a0 * b0 + _W * ((a1 * b3 + a2 * b2 + a3 * b1) % _P)) % _P
    c1 = (a0 * b1 + a1 * b0) % _P
    c1 = (c1 + _W * ((a2 * b3 + a3 * b2) % _P)) % _P
    c2 = (a0 * b2 + a1 * b1 + a2 * b0) % _P
    c2 = (c2 + _W * ((a3 * b3) % _P)) % _P
    c3 = (a0 * b3 + a1 * b2 + a2 * b1 + a3 * b0) % _P
    return c0, c1, c2, c3


@nb.njit(inline="always", **_NJ)
def e_mul_by(a0, a1, a2, a3, r0, r1, r2, r3, w1, w2, w3):
    """a · r where r is fixed and ``w_k = W · r_k mod p`` is precomputed: every output coefficient is
    a sum of four products (< 2^64), so four reductions instead of six (folds, eq tables)."""
    return ((a0 * r0 + a1 * w3 + a2 * w2 + a3 * w1) % _P, (a0 * r1 + a1 * r0 + a2 * w3 + a3 * w2) % _P,
            (a0 * r2 + a1 * r1 + a2 * r0 + a3 * w3) % _P, (a0 * r3 + a1 * r2 + a2 * r1 + a3 * r0) % _P)


@nb.njit(inline="always", **_NJ)
def powmod(a, e):
    r = _ONE
    b = a % _P
    e = np.uint64(e)
    while e > _ZERO:
        if e & _ONE:
            r = (r * b) % _P
        b = (b * b) % _P
        e >>= _ONE
    return r


@nb.njit(inline="always", **_NJ)
def invmod(a):
    return powmod(a, np.uint64(P_INT - 2))


@nb.njit(inline="always", **_NJ)
def e_inv(a0, a1, a2, a3):
    """Inverse in F_p[x]/(x^4 - W) by two conjugations; returns zeros for zero input."""
    # a = E(y) + x·O(y) with y = x^2;  a·(E - x·O) = E^2 - y·O^2 = b0 + b1·y  in F_p[y]/(y^2 - W)
    e0, e1, o0, o1 = a0, a2, a1, a3
    # E^2 = e0^2 + 2 e0 e1 y + e1^2 W ;  y·O^2 = o0^2 y + 2 o0 o1 W + o1^2 W y
    b0 = submod((e0 * e0 + _W * ((e1 * e1) % _P)) % _P, (_W * ((_TWO * o0 * o1) % _P)) % _P)
    b1 = submod((_TWO * e0 * e1) % _P, (o0 * o0 + _W * ((o1 * o1) % _P)) % _P)
    n = submod((b0 * b0) % _P, (_W * ((b1 * b1) % _P)) % _P)
    if n == 0:
        return _ZERO, _ZERO, _ZERO, _ZERO
    ni = invmod(n)
    # inverse = (E - x·O)(b0 - b1·y) / n ; (E - x O) = e0 - o0 x + e1 x^2 - o1 x^3 ; (b0 - b1 y) = b0 - b1 x^2
    nb1 = submod(_ZERO, b1)
    r0, r1, r2, r3 = e_mul(e0, submod(_ZERO, o0), e1, submod(_ZERO, o1), b0, _ZERO, nb1, _ZERO)
    return (r0 * ni) % _P, (r1 * ni) % _P, (r2 * ni) % _P, (r3 * ni) % _P


# --- vector kernels over flat arrays -------------------------------------------------------------

@nb.njit(**_NJ)
def mul_flat(a, b, out):
    for i in range(a.shape[0]):
        out[i] = (np.uint64(a[i]) * np.uint64(b[i])) % _P


@nb.njit(**_NJ)
def add_flat(a, b, out):
    for i in range(a.shape[0]):
        s = np.uint64(a[i]) + np.uint64(b[i])
        out[i] = s - _P if s >= _P else s


@nb.njit(**_NJ)
def sub_flat(a, b, out):
    for i in range(a.shape[0]):
        x = np.uint64(a[i])
        y = np.uint64(b[i])
        out[i] = x - y if x >= y else x + _P - y


@nb.njit(**_NJ)
def dot_flat(a, b):
    """Inner product of two base vectors, reduced lazily (16 products per reduction would overflow)."""
    acc = _ZERO
    for i in range(a.shape[0]):
        acc += (np.uint64(a[i]) * np.uint64(b[i])) % _P
        if acc >= np.uint64(1) << np.uint64(62):
            acc %= _P
    return acc % _P


@nb.njit(**_NJ)
def pow_flat(a, e, out):
    for i in range(a.shape[0]):
        out[i] = powmod(np.uint64(a[i]), np.uint64(e[i]))


@nb.njit(**_NJ)
def batch_inv_flat(a, out):
    """Montgomery's trick: one exponentiation and 3(n-1) multiplications. Returns index of a zero or -1."""
    n = a.shape[0]
    if n == 0:
        return -1
    acc = _ONE
    for i in range(n):
        v = np.uint64(a[i])
        if v == 0:
            return i
        out[i] = acc
        acc = (acc * v) % _P
    inv = invmod(acc)
    for i in range(n - 1, -1, -1):
        v = np.uint64(a[i])
        out[i] = (np.uint64(out[i]) * inv) % _P
        inv = (inv * v) % _P
    return -1


@nb.njit(**_NJ)
def emul_flat(a, b, out):
    for i in range(a.shape[0]):
        c0, c1, c2, c3 = e_mul(np.uint64(a[i, 0]), np.uint64(a[i, 1]), np.uint64(a[i, 2]),
                               np.uint64(a[i, 3]), np.uint64(b[i, 0]), np.uint64(b[i, 1]),
                               np.uint64(b[i, 2]), np.uint64(b[i, 3]))
        out[i, 0] = c0
        out[i, 1] = c1
        out[i, 2] = c2
        out[i, 3] = c3


@nb.njit(**_NJ)
def einv_flat(a, out):
    """Elementwise extension inverse; returns index of a zero or -1."""
    for i in range(a.shape[0]):
        a0, a1, a2, a3 = np.uint64(a[i, 0]), np.uint64(a[i, 1]), np.uint64(a[i, 2]), np.uint64(a[i, 3])
        if a0 == 0 and a1 == 0 and a2 == 0 and a3 == 0:
            return i
        c0, c1, c2, c3 = e_inv(a0, a1, a2, a3)
        out[i, 0] = c0
        out[i, 1] = c1
        out[i, 2] = c2
        out[i, 3] = c3
    return -1


@nb.njit(**_NJ)
def ebatch_inv_flat(a, out):
    """Montgomery's trick in the extension. Returns index of a zero or -1."""
    n = a.shape[0]
    if n == 0:
        return -1
    c0, c1, c2, c3 = _ONE, _ZERO, _ZERO, _ZERO
    for i in range(n):
        a0, a1, a2, a3 = np.uint64(a[i, 0]), np.uint64(a[i, 1]), np.uint64(a[i, 2]), np.uint64(a[i, 3])
        if a0 == 0 and a1 == 0 and a2 == 0 and a3 == 0:
            return i
        out[i, 0] = c0
        out[i, 1] = c1
        out[i, 2] = c2
        out[i, 3] = c3
        c0, c1, c2, c3 = e_mul(c0, c1, c2, c3, a0, a1, a2, a3)
    i0, i1, i2, i3 = e_inv(c0, c1, c2, c3)
    for i in range(n - 1, -1, -1):
        a0, a1, a2, a3 = np.uint64(a[i, 0]), np.uint64(a[i, 1]), np.uint64(a[i, 2]), np.uint64(a[i, 3])
        r0, r1, r2, r3 = e_mul(np.uint64(out[i, 0]), np.uint64(out[i, 1]), np.uint64(out[i, 2]),
                               np.uint64(out[i, 3]), i0, i1, i2, i3)
        out[i, 0] = r0
        out[i, 1] = r1
        out[i, 2] = r2
        out[i, 3] = r3
        i0, i1, i2, i3 = e_mul(i0, i1, i2, i3, a0, a1, a2, a3)
    return -1


@nb.njit(**_NJ)
def escale_flat(e, b, out):
    """Extension element times base element, elementwise."""
    for i in range(e.shape[0]):
        s = np.uint64(b[i])
        for k in range(4):
            out[i, k] = (np.uint64(e[i, k]) * s) % _P


@nb.njit(**_NJ)
def edot_base(e, b):
    """sum_i e[i] · b[i] for e (n, 4) extension and b (n,) base, lazily reduced."""
    acc = np.zeros(4, dtype=np.uint64)
    lim = np.uint64(1) << np.uint64(62)
    for i in range(e.shape[0]):
        s = np.uint64(b[i])
        for k in range(4):
            acc[k] += (np.uint64(e[i, k]) * s) % _P
            if acc[k] >= lim:
                acc[k] %= _P
    out = np.empty(4, dtype=np.uint32)
    for k in range(4):
        out[k] = acc[k] % _P
    return out


@nb.njit(**_NJ)
def edot_ext(a, b):
    """sum_i a[i] · b[i] for two (n, 4) extension vectors."""
    acc = np.zeros(4, dtype=np.uint64)
    lim = np.uint64(1) << np.uint64(62)
    for i in range(a.shape[0]):
        c0, c1, c2, c3 = e_mul(np.uint64(a[i, 0]), np.uint64(a[i, 1]), np.uint64(a[i, 2]),
                               np.uint64(a[i, 3]), np.uint64(b[i, 0]), np.uint64(b[i, 1]),
                               np.uint64(b[i, 2]), np.uint64(b[i, 3]))
        acc[0] += c0
        acc[1] += c1
        acc[2] += c2
        acc[3] += c3
        if acc[0] >= lim or acc[1] >= lim or acc[2] >= lim or acc[3] >= lim:
            for k in range(4):
                acc[k] %= _P
    out = np.empty(4, dtype=np.uint32)
    for k in range(4):
        out[k] = acc[k] % _P
    return out


@nb.njit(**_NJ)
def evec_base_mat(e, m):
    """e (R, 4) extension vector times base matrix m (R, C): returns (C, 4) = sum_r e[r] · m[r, :]."""
    R, C = m.shape
    acc = np.zeros((C, 4), dtype=np.uint64)
    lim = np.uint64(1) << np.uint64(62)
    for r in range(R):
        e0, e1, e2, e3 = np.uint64(e[r, 0]), np.uint64(e[r, 1]), np.uint64(e[r, 2]), np.uint64(e[r, 3])
        for c in range(C):
            s = np.uint64(m[r, c])
            acc[c, 0] += (e0 * s) % _P
            acc[c, 1] += (e1 * s) % _P
            acc[c, 2] += (e2 * s) % _P
            acc[c, 3] += (e3 * s) % _P
        if (r & 0x3FFFFFFF) == 0x3FFFFFFF:  # never reached for realistic R; keeps the bound explicit
            for c in range(C):
                for k in range(4):
                    acc[c, k] %= _P
    out = np.empty((C, 4), dtype=np.uint32)
    for c in range(C):
        for k in range(4):
            out[c, k] = acc[c, k] % _P
    return out
