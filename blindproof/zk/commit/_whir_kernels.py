"""Compiled kernels for :mod:`blindproof.zk.commit.whir`: hypercube/coefficient transforms, the
weighted sumcheck's rounds and folds, and eq tables added into a weight table.

Tables follow :mod:`blindproof.zk.iop.mle` (MSB-first: binding the first variable folds the two
halves). Extension tables are (n, 4) uint32 arrays of canonical residues.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from blindproof.zk.field._kernels import P_INT, _P, _TWO, _W, addmod, e_mul, e_mul_by, powmod, submod

_NJ = dict(cache=True, nogil=True, boundscheck=False)


@nb.njit(**_NJ)
def zeta_base(t):
    """Coefficients -> hypercube values, in place: ``t[x] <- Σ_{S ⊆ x} t[S]`` (base field)."""
    n = t.shape[0]
    h = n // 2
    while h >= 1:
        for s in range(0, n, 2 * h):
            for j in range(s, s + h):
                t[j + h] = addmod(np.uint64(t[j + h]), np.uint64(t[j]))
        h //= 2


@nb.njit(**_NJ)
def mobius_base(t):
    """Hypercube values -> coefficients, in place (the inverse of :func:`zeta_base`)."""
    n = t.shape[0]
    h = n // 2
    while h >= 1:
        for s in range(0, n, 2 * h):
            for j in range(s, s + h):
                t[j + h] = submod(np.uint64(t[j + h]), np.uint64(t[j]))
        h //= 2


@nb.njit(**_NJ)
def round_s02(f, w, length):
    """First-variable round message of ``Σ_x f(x)·w(x)`` over the first ``length`` entries:
    ``s(0) = Σ_{j<h} f_j w_j`` and ``s(2) = Σ_{j<h} (2f_{j+h} − f_j)(2w_{j+h} − w_j)``; (2, 4)."""
    h = length // 2
    acc = np.zeros((2, 4), dtype=np.uint64)
    for j in range(h):
        a0, a1, a2, a3 = np.uint64(f[j, 0]), np.uint64(f[j, 1]), np.uint64(f[j, 2]), np.uint64(f[j, 3])
        b0, b1, b2, b3 = np.uint64(w[j, 0]), np.uint64(w[j, 1]), np.uint64(w[j, 2]), np.uint64(w[j, 3])
        p0, p1, p2, p3 = e_mul(a0, a1, a2, a3, b0, b1, b2, b3)
        acc[0, 0] = addmod(acc[0, 0], p0)
        acc[0, 1] = addmod(acc[0, 1], p1)
        acc[0, 2] = addmod(acc[0, 2], p2)
        acc[0, 3] = addmod(acc[0, 3], p3)
        # value at 2 of the linear extension: 2·hi − lo
        c0 = submod((np.uint64(f[j + h, 0]) * _TWO) % _P, a0)
        c1 = submod((np.uint64(f[j + h, 1]) * _TWO) % _P, a1)
        c2 = submod((np.uint64(f[j + h, 2]) * _TWO) % _P, a2)
        c3 = submod((np.uint64(f[j + h, 3]) * _TWO) % _P, a3)
        d0 = submod((np.uint64(w[j + h, 0]) * _TWO) % _P, b0)
        d1 = submod((np.uint64(w[j + h, 1]) * _TWO) % _P, b1)
        d2 = submod((np.uint64(w[j + h, 2]) * _TWO) % _P, b2)
        d3 = submod((np.uint64(w[j + h, 3]) * _TWO) % _P, b3)
        q0, q1, q2, q3 = e_mul(c0, c1, c2, c3, d0, d1, d2, d3)
        acc[1, 0] = addmod(acc[1, 0], q0)
        acc[1, 1] = addmod(acc[1, 1], q1)
        acc[1, 2] = addmod(acc[1, 2], q2)
        acc[1, 3] = addmod(acc[1, 3], q3)
    out = np.empty((2, 4), dtype=np.uint32)
    for i in range(2):
        for c in range(4):
            out[i, c] = acc[i, c]
    return out


@nb.njit(**_NJ)
def fold_table(t, length, r):
    """Hypercube table: ``t[j] <- t[j] + r·(t[j+h] − t[j])`` for j < h = length/2 (in place)."""
    h = length // 2
    r0, r1, r2, r3 = np.uint64(r[0]), np.uint64(r[1]), np.uint64(r[2]), np.uint64(r[3])
    w1, w2, w3 = (r1 * _W) % _P, (r2 * _W) % _P, (r3 * _W) % _P
    for j in range(h):
        l0, l1, l2, l3 = np.uint64(t[j, 0]), np.uint64(t[j, 1]), np.uint64(t[j, 2]), np.uint64(t[j, 3])
        d0 = submod(np.uint64(t[j + h, 0]), l0)
        d1 = submod(np.uint64(t[j + h, 1]), l1)
        d2 = submod(np.uint64(t[j + h, 2]), l2)
        d3 = submod(np.uint64(t[j + h, 3]), l3)
        p0, p1, p2, p3 = e_mul_by(d0, d1, d2, d3, r0, r1, r2, r3, w1, w2, w3)
        t[j, 0] = addmod(l0, p0)
        t[j, 1] = addmod(l1, p1)
        t[j, 2] = addmod(l2, p2)
        t[j, 3] = addmod(l3, p3)


@nb.njit(**_NJ)
def fold_coefs(c, length, r):
    """Coefficient vector: bind the first variable, ``c[j] <- c[j] + r·c[j+h]`` (in place)."""
    h = length // 2
    r0, r1, r2, r3 = np.uint64(r[0]), np.uint64(r[1]), np.uint64(r[2]), np.uint64(r[3])
    w1, w2, w3 = (r1 * _W) % _P, (r2 * _W) % _P, (r3 * _W) % _P
    for j in range(h):
        p0, p1, p2, p3 = e_mul_by(np.uint64(c[j + h, 0]), np.uint64(c[j + h, 1]), np.uint64(c[j + h, 2]),
                                  np.uint64(c[j + h, 3]), r0, r1, r2, r3, w1, w2, w3)
        c[j, 0] = addmod(np.uint64(c[j, 0]), p0)
        c[j, 1] = addmod(np.uint64(c[j, 1]), p1)
        c[j, 2] = addmod(np.uint64(c[j, 2]), p2)
        c[j, 3] = addmod(np.uint64(c[j, 3]), p3)


@nb.njit(**_NJ)
def add_pow_eqs(w, xs, coefs, scratch):
    """(The plain version; the prover uses :func:`add_pow_eqs_split`, tests compare the two.) ``w += Σ_l coefs[l] · eq(pow(xs[l]), ·)`` for base-field points ``xs`` (L,), where
    ``pow(x) = (x, x^2, x^4, …)`` has one coordinate per variable of ``w`` (len(w) = 2^n); the eq
    table of a base point is built in the base field (``scratch``: (2^n,) uint64), then added with
    its extension coefficient."""
    n_tab = w.shape[0]
    n = 0
    while (1 << n) < n_tab:
        n += 1
    for l in range(xs.shape[0]):
        scratch[0] = 1
        size = 1
        x = np.uint64(xs[l])
        for i in range(n):
            # new[2j+1] = t[j]·x, new[2j] = t[j]·(1 − x); backwards, in place
            omx = submod(np.uint64(1), x)
            for j in range(size - 1, -1, -1):
                v = scratch[j]
                scratch[2 * j + 1] = (v * x) % _P
                scratch[2 * j] = (v * omx) % _P
            size *= 2
            x = (x * x) % _P
        g0, g1, g2, g3 = np.uint64(coefs[l, 0]), np.uint64(coefs[l, 1]), np.uint64(coefs[l, 2]), np.uint64(coefs[l, 3])
        for j in range(n_tab):
            e = scratch[j]
            w[j, 0] = addmod(np.uint64(w[j, 0]), (e * g0) % _P)
            w[j, 1] = addmod(np.uint64(w[j, 1]), (e * g1) % _P)
            w[j, 2] = addmod(np.uint64(w[j, 2]), (e * g2) % _P)
            w[j, 3] = addmod(np.uint64(w[j, 3]), (e * g3) % _P)


@nb.njit(**_NJ)
def add_eq(w, stride, offset, point, coef):
    """``w[offset + stride·x] += coef · eq(point, x)`` for every x in {0,1}^len(point) (extension
    point (k, 4)): a claim on the unpadded polynomial lands on the padded table's even entries."""
    k = point.shape[0]
    m = 1 << k
    t = np.zeros((m, 4), dtype=np.uint32)
    t[0, 0], t[0, 1], t[0, 2], t[0, 3] = coef[0], coef[1], coef[2], coef[3]
    size = 1
    for i in range(k):
        r0, r1, r2, r3 = np.uint64(point[i, 0]), np.uint64(point[i, 1]), np.uint64(point[i, 2]), np.uint64(point[i, 3])
        w1, w2, w3 = (r1 * _W) % _P, (r2 * _W) % _P, (r3 * _W) % _P
        for j in range(size - 1, -1, -1):
            a0, a1, a2, a3 = np.uint64(t[j, 0]), np.uint64(t[j, 1]), np.uint64(t[j, 2]), np.uint64(t[j, 3])
            h0, h1, h2, h3 = e_mul_by(a0, a1, a2, a3, r0, r1, r2, r3, w1, w2, w3)
            t[2 * j + 1, 0], t[2 * j + 1, 1], t[2 * j + 1, 2], t[2 * j + 1, 3] = h0, h1, h2, h3
            t[2 * j, 0] = submod(a0, h0)
            t[2 * j, 1] = submod(a1, h1)
            t[2 * j, 2] = submod(a2, h2)
            t[2 * j, 3] = submod(a3, h3)
        size *= 2
    for x in range(m):
        o = offset + stride * x
        for c in range(4):
            w[o, c] = addmod(np.uint64(w[o, c]), np.uint64(t[x, c]))


@nb.njit(**_NJ)
def add_pow_eqs_split(w, xs, coefs):
    """As :func:`add_pow_eqs`, with each eq table split into the product of a table over the first
    half of the variables and one over the second (``eq(pow(x), (a, b)) = E_a(x)·E_b(x)``): the
    extension coefficient is folded into the short first factor, and the long loop adds four
    products before each reduction."""
    n_tab = w.shape[0]
    n = 0
    while (1 << n) < n_tab:
        n += 1
    h = n // 2
    lo = n - h
    L = xs.shape[0]
    na, nb = 1 << h, 1 << lo
    ea = np.empty((L, na), dtype=np.uint64)
    eb = np.empty((L, nb), dtype=np.uint64)
    for l in range(L):
        x = np.uint64(xs[l])
        ea[l, 0] = 1
        size = 1
        for i in range(h):
            omx = submod(np.uint64(1), x)
            for j in range(size - 1, -1, -1):
                v = ea[l, j]
                ea[l, 2 * j + 1] = (v * x) % _P
                ea[l, 2 * j] = (v * omx) % _P
            size *= 2
            x = (x * x) % _P
        eb[l, 0] = 1
        size = 1
        for i in range(lo):
            omx = submod(np.uint64(1), x)
            for j in range(size - 1, -1, -1):
                v = eb[l, j]
                eb[l, 2 * j + 1] = (v * x) % _P
                eb[l, 2 * j] = (v * omx) % _P
            size *= 2
            x = (x * x) % _P
    D = w.shape[1]
    acc = np.empty((D, nb), dtype=np.uint64)
    g = np.empty((L, D), dtype=np.uint64)
    for a in range(na):
        for l in range(L):
            e = ea[l, a]
            for c in range(D):
                g[l, c] = (e * np.uint64(coefs[l, c])) % _P
        acc[:] = 0
        # four products (each ≤ (p−1)^2 < 2^61.9) and a reduced sum stay below 2^64: one reduction per four
        for l0 in range(0, L, 4):
            l1, l2, l3 = min(l0 + 1, L - 1), min(l0 + 2, L - 1), min(l0 + 3, L - 1)
            m1 = np.uint64(1) if l0 + 1 < L else np.uint64(0)
            m2 = np.uint64(1) if l0 + 2 < L else np.uint64(0)
            m3 = np.uint64(1) if l0 + 3 < L else np.uint64(0)
            for c in range(D):
                g0, g1, g2, g3 = g[l0, c], g[l1, c] * m1, g[l2, c] * m2, g[l3, c] * m3
                for b in range(nb):
                    acc[c, b] = (acc[c, b] + g0 * eb[l0, b] + g1 * eb[l1, b] + g2 * eb[l2, b]
                                 + g3 * eb[l3, b]) % _P
        base = a * nb
        for b in range(nb):
            for c in range(D):
                w[base + b, c] = addmod(np.uint64(w[base + b, c]), acc[c, b] % _P)


@nb.njit(inline="always", **_NJ)
def _fold1(lo0, lo1, lo2, lo3, hi0, hi1, hi2, hi3, r0, r1, r2, r3, w1, w2, w3):
    p0, p1, p2, p3 = e_mul_by(submod(hi0, lo0), submod(hi1, lo1), submod(hi2, lo2), submod(hi3, lo3),
                              r0, r1, r2, r3, w1, w2, w3)
    return addmod(lo0, p0), addmod(lo1, p1), addmod(lo2, p2), addmod(lo3, p3)


@nb.njit(**_NJ)
def fold2_s02(f, w, length, r):
    """Bind the first variable of both tables to r (in place, to length/2) and return the next
    round's ``(s(0), s(2))`` of ``Σ f·w`` over the folded tables, in one pass (length ≥ 4)."""
    h = length // 2
    q = h // 2
    r0, r1, r2, r3 = np.uint64(r[0]), np.uint64(r[1]), np.uint64(r[2]), np.uint64(r[3])
    w1, w2, w3 = (r1 * _W) % _P, (r2 * _W) % _P, (r3 * _W) % _P
    acc = np.zeros((2, 4), dtype=np.uint64)
    for j in range(q):
        a0, a1, a2, a3 = _fold1(np.uint64(f[j, 0]), np.uint64(f[j, 1]), np.uint64(f[j, 2]), np.uint64(f[j, 3]),
                                np.uint64(f[j + h, 0]), np.uint64(f[j + h, 1]), np.uint64(f[j + h, 2]),
                                np.uint64(f[j + h, 3]), r0, r1, r2, r3, w1, w2, w3)
        b0, b1, b2, b3 = _fold1(np.uint64(f[j + q, 0]), np.uint64(f[j + q, 1]), np.uint64(f[j + q, 2]),
                                np.uint64(f[j + q, 3]), np.uint64(f[j + h + q, 0]), np.uint64(f[j + h + q, 1]),
                                np.uint64(f[j + h + q, 2]), np.uint64(f[j + h + q, 3]), r0, r1, r2, r3, w1, w2, w3)
        c0, c1, c2, c3 = _fold1(np.uint64(w[j, 0]), np.uint64(w[j, 1]), np.uint64(w[j, 2]), np.uint64(w[j, 3]),
                                np.uint64(w[j + h, 0]), np.uint64(w[j + h, 1]), np.uint64(w[j + h, 2]),
                                np.uint64(w[j + h, 3]), r0, r1, r2, r3, w1, w2, w3)
        d0, d1, d2, d3 = _fold1(np.uint64(w[j + q, 0]), np.uint64(w[j + q, 1]), np.uint64(w[j + q, 2]),
                                np.uint64(w[j + q, 3]), np.uint64(w[j + h + q, 0]), np.uint64(w[j + h + q, 1]),
                                np.uint64(w[j + h + q, 2]), np.uint64(w[j + h + q, 3]), r0, r1, r2, r3, w1, w2, w3)
        f[j, 0], f[j, 1], f[j, 2], f[j, 3] = a0, a1, a2, a3
        f[j + q, 0], f[j + q, 1], f[j + q, 2], f[j + q, 3] = b0, b1, b2, b3
        w[j, 0], w[j, 1], w[j, 2], w[j, 3] = c0, c1, c2, c3
        w[j + q, 0], w[j + q, 1], w[j + q, 2], w[j + q, 3] = d0, d1, d2, d3
        p0, p1, p2, p3 = e_mul(a0, a1, a2, a3, c0, c1, c2, c3)
        acc[0, 0] = addmod(acc[0, 0], p0)
        acc[0, 1] = addmod(acc[0, 1], p1)
        acc[0, 2] = addmod(acc[0, 2], p2)
        acc[0, 3] = addmod(acc[0, 3], p3)
        x0, x1, x2, x3 = (submod((b0 * _TWO) % _P, a0), submod((b1 * _TWO) % _P, a1),
                          submod((b2 * _TWO) % _P, a2), submod((b3 * _TWO) % _P, a3))
        y0, y1, y2, y3 = (submod((d0 * _TWO) % _P, c0), submod((d1 * _TWO) % _P, c1),
                          submod((d2 * _TWO) % _P, c2), submod((d3 * _TWO) % _P, c3))
        s0, s1, s2, s3 = e_mul(x0, x1, x2, x3, y0, y1, y2, y3)
        acc[1, 0] = addmod(acc[1, 0], s0)
        acc[1, 1] = addmod(acc[1, 1], s1)
        acc[1, 2] = addmod(acc[1, 2], s2)
        acc[1, 3] = addmod(acc[1, 3], s3)
    out = np.empty((2, 4), dtype=np.uint32)
    for i in range(2):
        for c in range(4):
            out[i, c] = acc[i, c]
    return out


@nb.njit(**_NJ)
def fold_blocks(vals, ys, rs, roots):
    """Fold opened blocks (q, 2^k, 4) with challenges rs (k, 4): entry t of block b sits at
    ``ys[b]·ζ^t`` (ζ of order 2^k), so entries i and i + 2^{k−1} are ``±x`` and fold to
    ``(a+b)/2 + r·(a−b)/(2x)`` at ``x^2``; ``roots[l]`` is the order-2^{k−l} generator. Returns (q, 4)."""
    q, size = vals.shape[0], vals.shape[1]
    k = 0
    while (1 << k) < size:
        k += 1
    inv2 = np.uint64((P_INT + 1) // 2)
    out = np.empty((q, 4), dtype=np.uint32)
    cur = np.empty((size, 4), dtype=np.uint64)
    for b in range(q):
        for j in range(size):
            for c in range(4):
                cur[j, c] = vals[b, j, c]
        y = np.uint64(ys[b])
        n = size
        for l in range(k):
            half = n // 2
            zeta = np.uint64(roots[l])
            r0, r1, r2, r3 = np.uint64(rs[l, 0]), np.uint64(rs[l, 1]), np.uint64(rs[l, 2]), np.uint64(rs[l, 3])
            w1, w2, w3 = (r1 * _W) % _P, (r2 * _W) % _P, (r3 * _W) % _P
            x = y
            for i in range(half):
                inv2x = powmod((x * _TWO) % _P, np.uint64(P_INT - 2))
                a0, a1, a2, a3 = cur[i, 0], cur[i, 1], cur[i, 2], cur[i, 3]
                b0, b1, b2, b3 = cur[i + half, 0], cur[i + half, 1], cur[i + half, 2], cur[i + half, 3]
                o0 = (submod(a0, b0) * inv2x) % _P
                o1 = (submod(a1, b1) * inv2x) % _P
                o2 = (submod(a2, b2) * inv2x) % _P
                o3 = (submod(a3, b3) * inv2x) % _P
                p0, p1, p2, p3 = e_mul_by(o0, o1, o2, o3, r0, r1, r2, r3, w1, w2, w3)
                cur[i, 0] = addmod((addmod(a0, b0) * inv2) % _P, p0)
                cur[i, 1] = addmod((addmod(a1, b1) * inv2) % _P, p1)
                cur[i, 2] = addmod((addmod(a2, b2) * inv2) % _P, p2)
                cur[i, 3] = addmod((addmod(a3, b3) * inv2) % _P, p3)
                x = (x * zeta) % _P
            n = half
            y = (y * y) % _P
        for c in range(4):
            out[b, c] = cur[0, c]
    return out


# --- the degree-8 extension F_p[y]/(y^8 − 11) (contains F_p[x]/(x^4 − 11) by x ↦ y^2) -----------------

@nb.njit(inline="always", **_NJ)
def _mul8(x, y, out):
    """out <- x·y for degree-8 extension elements given as uint64 arrays of 8 canonical residues.
    With x = y^2 the field is F4[y]/(y^2 − x): a = A0(x) + y·A1(x) (even and odd coefficients), and
    a·b = A0B0 + x·A1B1 + y·((A0+A1)(B0+B1) − A0B0 − A1B1): three degree-4 products (Karatsuba)."""
    p0, p1, p2, p3 = e_mul(x[0], x[2], x[4], x[6], y[0], y[2], y[4], y[6])
    q0, q1, q2, q3 = e_mul(x[1], x[3], x[5], x[7], y[1], y[3], y[5], y[7])
    s0, s1, s2, s3 = e_mul(addmod(x[0], x[1]), addmod(x[2], x[3]), addmod(x[4], x[5]), addmod(x[6], x[7]),
                           addmod(y[0], y[1]), addmod(y[2], y[3]), addmod(y[4], y[5]), addmod(y[6], y[7]))
    # even part: P + x·Q, with x·(q0, q1, q2, q3) = (11·q3, q0, q1, q2)
    out[0] = addmod(p0, (_W * q3) % _P)
    out[2] = addmod(p1, q0)
    out[4] = addmod(p2, q1)
    out[6] = addmod(p3, q2)
    out[1] = submod(submod(s0, p0), q0)
    out[3] = submod(submod(s1, p1), q1)
    out[5] = submod(submod(s2, p2), q2)
    out[7] = submod(submod(s3, p3), q3)


@nb.njit(**_NJ)
def e8_mul_flat(a, b):
    """Elementwise product of (n, 8) arrays."""
    n = a.shape[0]
    out = np.empty((n, 8), dtype=np.uint32)
    x = np.empty(8, dtype=np.uint64)
    y = np.empty(8, dtype=np.uint64)
    z = np.empty(8, dtype=np.uint64)
    for i in range(n):
        for c in range(8):
            x[c] = a[i, c]
            y[c] = b[i, c]
        _mul8(x, y, z)
        for c in range(8):
            out[i, c] = z[c]
    return out


@nb.njit(**_NJ)
def round_s02_8(f, w, length):
    """:func:`round_s02` over the degree-8 extension: (2, 8)."""
    h = length // 2
    acc = np.zeros((2, 8), dtype=np.uint64)
    x = np.empty(8, dtype=np.uint64)
    y = np.empty(8, dtype=np.uint64)
    z = np.empty(8, dtype=np.uint64)
    for j in range(h):
        for c in range(8):
            x[c] = f[j, c]
            y[c] = w[j, c]
        _mul8(x, y, z)
        for c in range(8):
            acc[0, c] = addmod(acc[0, c], z[c])
            x[c] = submod((np.uint64(f[j + h, c]) * _TWO) % _P, np.uint64(f[j, c]))
            y[c] = submod((np.uint64(w[j + h, c]) * _TWO) % _P, np.uint64(w[j, c]))
        _mul8(x, y, z)
        for c in range(8):
            acc[1, c] = addmod(acc[1, c], z[c])
    out = np.empty((2, 8), dtype=np.uint32)
    for i in range(2):
        for c in range(8):
            out[i, c] = acc[i, c]
    return out


@nb.njit(**_NJ)
def fold_table_8(t, length, r):
    """:func:`fold_table` over the degree-8 extension (r: (8,))."""
    h = length // 2
    rr = np.empty(8, dtype=np.uint64)
    for c in range(8):
        rr[c] = r[c]
    d = np.empty(8, dtype=np.uint64)
    z = np.empty(8, dtype=np.uint64)
    for j in range(h):
        for c in range(8):
            d[c] = submod(np.uint64(t[j + h, c]), np.uint64(t[j, c]))
        _mul8(d, rr, z)
        for c in range(8):
            t[j, c] = addmod(np.uint64(t[j, c]), z[c])


@nb.njit(**_NJ)
def fold_coefs_8(cf, length, r):
    """:func:`fold_coefs` over the degree-8 extension."""
    h = length // 2
    rr = np.empty(8, dtype=np.uint64)
    for c in range(8):
        rr[c] = r[c]
    d = np.empty(8, dtype=np.uint64)
    z = np.empty(8, dtype=np.uint64)
    for j in range(h):
        for c in range(8):
            d[c] = cf[j + h, c]
        _mul8(d, rr, z)
        for c in range(8):
            cf[j, c] = addmod(np.uint64(cf[j, c]), z[c])


@nb.njit(**_NJ)
def fold_blocks_8(vals, ys, rs, roots):
    """:func:`fold_blocks` over the degree-8 extension: vals (q, 2^k, 8), rs (k, 8) -> (q, 8)."""
    q, size = vals.shape[0], vals.shape[1]
    k = 0
    while (1 << k) < size:
        k += 1
    inv2 = np.uint64((P_INT + 1) // 2)
    out = np.empty((q, 8), dtype=np.uint32)
    cur = np.empty((size, 8), dtype=np.uint64)
    d = np.empty(8, dtype=np.uint64)
    rr = np.empty(8, dtype=np.uint64)
    z = np.empty(8, dtype=np.uint64)
    for b in range(q):
        for j in range(size):
            for c in range(8):
                cur[j, c] = vals[b, j, c]
        y = np.uint64(ys[b])
        n = size
        for l in range(k):
            half = n // 2
            zeta = np.uint64(roots[l])
            for c in range(8):
                rr[c] = rs[l, c]
            x = y
            for i in range(half):
                inv2x = powmod((x * _TWO) % _P, np.uint64(P_INT - 2))
                for c in range(8):
                    d[c] = (submod(cur[i, c], cur[i + half, c]) * inv2x) % _P
                _mul8(d, rr, z)
                for c in range(8):
                    cur[i, c] = addmod((addmod(cur[i, c], cur[i + half, c]) * inv2) % _P, z[c])
                x = (x * zeta) % _P
            n = half
            y = (y * y) % _P
        for c in range(8):
            out[b, c] = cur[0, c]
    return out


@nb.njit(**_NJ)
def fold2_s02_8(f, w, length, r):
    """:func:`fold2_s02` over the degree-8 extension: fold both tables to length/2 and return the
    next round's (s(0), s(2)) in one pass (length ≥ 4)."""
    h = length // 2
    q = h // 2
    rr = np.empty(8, dtype=np.uint64)
    for c in range(8):
        rr[c] = r[c]
    d = np.empty(8, dtype=np.uint64)
    z = np.empty(8, dtype=np.uint64)
    a = np.empty(8, dtype=np.uint64)
    b = np.empty(8, dtype=np.uint64)
    x = np.empty(8, dtype=np.uint64)
    y = np.empty(8, dtype=np.uint64)
    acc = np.zeros((2, 8), dtype=np.uint64)
    for j in range(q):
        # f: lo half j and j+q, w likewise; each folded from (j, j+h) and (j+q, j+q+h)
        for c in range(8):
            d[c] = submod(np.uint64(f[j + h, c]), np.uint64(f[j, c]))
        _mul8(d, rr, z)
        for c in range(8):
            a[c] = addmod(np.uint64(f[j, c]), z[c])
            d[c] = submod(np.uint64(f[j + q + h, c]), np.uint64(f[j + q, c]))
        _mul8(d, rr, z)
        for c in range(8):
            b[c] = addmod(np.uint64(f[j + q, c]), z[c])
            f[j, c] = a[c]
            f[j + q, c] = b[c]
            d[c] = submod(np.uint64(w[j + h, c]), np.uint64(w[j, c]))
        _mul8(d, rr, z)
        for c in range(8):
            x[c] = addmod(np.uint64(w[j, c]), z[c])
            d[c] = submod(np.uint64(w[j + q + h, c]), np.uint64(w[j + q, c]))
        _mul8(d, rr, z)
        for c in range(8):
            y[c] = addmod(np.uint64(w[j + q, c]), z[c])
            w[j, c] = x[c]
            w[j + q, c] = y[c]
        _mul8(a, x, z)
        for c in range(8):
            acc[0, c] = addmod(acc[0, c], z[c])
            b[c] = submod((b[c] * _TWO) % _P, a[c])
            y[c] = submod((y[c] * _TWO) % _P, x[c])
        _mul8(b, y, z)
        for c in range(8):
            acc[1, c] = addmod(acc[1, c], z[c])
    out = np.empty((2, 8), dtype=np.uint32)
    for i in range(2):
        for c in range(8):
            out[i, c] = acc[i, c]
    return out


@nb.njit(**_NJ)
def edot_base_d(w, b):
    """``Σ_x w[x]·b[x]`` for an extension table w (n, d) (any degree) and a base table b (n,): (d,)."""
    d = w.shape[1]
    acc = np.zeros(d, dtype=np.uint64)
    for x in range(w.shape[0]):
        bx = np.uint64(b[x])
        for c in range(d):
            acc[c] += (np.uint64(w[x, c]) * bx) % _P
        if (x & 0xFFFFFF) == 0xFFFFFF:  # sums of up to 2^24 reduced terms stay below 2^55
            for c in range(d):
                acc[c] %= _P
    out = np.empty(d, dtype=np.uint32)
    for c in range(d):
        out[c] = acc[c] % _P
    return out


@nb.njit(**_NJ)
def combine_many(a, bs, rs):
    """``a + Σ_g rs[g]·bs[g]`` for base tables a (n,), bs (G, n) and scalars rs (G, d) of the
    challenge field (base × extension products only): (n, d)."""
    n = a.shape[0]
    G, d = rs.shape[0], rs.shape[1]
    out = np.empty((n, d), dtype=np.uint32)
    for j in range(n):
        for c in range(d):
            # up to three raw products (each ≤ (p−1)^2 < 2^61.9) and a residue fit in 64 bits
            acc = np.uint64(a[j]) if c == 0 else np.uint64(0)
            for g in range(G):
                if g % 3 == 2:
                    acc %= _P
                acc += np.uint64(bs[g, j]) * np.uint64(rs[g, c])
            out[j, c] = acc % _P
    return out


# --- encoding: multilinear coefficients straight to natural-order evaluations ------------------------

_PINV_NEG = np.uint64((-pow(P_INT, -1, 1 << 32)) % (1 << 32))
_M32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)


@nb.njit(**_NJ)
def _dit_butterflies(lo, hi, tw, h):
    """lo, hi <- lo + hi·tw, lo − hi·tw (tw in Montgomery form) over h contiguous entries."""
    for k in range(h):
        t = np.uint64(hi[k]) * np.uint64(tw[k])
        m = (t * _PINV_NEG) & _M32
        r = (t + m * _P) >> _S32
        v = r - _P if r >= _P else r
        u = np.uint64(lo[k])
        x = u + v
        lo[k] = np.uint32(x - _P if x >= _P else x)
        hi[k] = np.uint32(u - v if u >= v else u + _P - v)


@nb.njit(**_NJ)
def encode_natural(coefs, log_n, tw):
    """Reed–Solomon codewords of multilinear coefficient rows (R, 2^m) on the 2^log_n-th roots of
    unity, in NATURAL order: ``out[r, j] = P_u(ω^j)`` with ``P_u(x) = Σ_i c_i x^{rev_m(i)}``.

    The coefficient vector in multilinear order IS the univariate one in bit-reversed order, so a
    decimation-in-time NTT takes it as it is (no permutation pass); the zero padding up to 2^log_n
    makes the first log2(blowup) stages copies, done as one broadcast. ``tw``: ``ntt._twiddles``."""
    R, mlen = coefs.shape
    n = 1 << log_n
    b = n // mlen
    out = np.empty((R, n), dtype=np.uint32)
    for r in range(R):
        row = out[r]
        for j in range(mlen):
            v = coefs[r, j]
            for t in range(b):
                row[j * b + t] = v
        h = b
        while h < n:
            t0 = h - 1
            if h >= 32:
                for s in range(0, n, 2 * h):
                    _dit_butterflies(row[s:s + h], row[s + h:s + 2 * h], tw[t0:t0 + h], h)
            else:
                for s in range(0, n, 2 * h):
                    for k in range(h):
                        t = np.uint64(row[s + k + h]) * np.uint64(tw[t0 + k])
                        m = (t * _PINV_NEG) & _M32
                        rr = (t + m * _P) >> _S32
                        v2 = rr - _P if rr >= _P else rr
                        u = np.uint64(row[s + k])
                        x = u + v2
                        row[s + k] = np.uint32(x - _P if x >= _P else x)
                        row[s + k + h] = np.uint32(u - v2 if u >= v2 else u + _P - v2)
            h *= 2
    return out
