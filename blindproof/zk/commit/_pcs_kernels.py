"""Compiled kernels of the batched PCS opening (:mod:`blindproof.zk.commit.pcs`).

The opening's column sumcheck runs over terms ``Σ_t A_t(x)·B_t(x)`` with extension tables ``A_t`` and
tables ``B_t`` that are either committed base-field rows (read in place from the message matrix) or
extension rows. Claims are described by flat arrays (one entry per claim, points concatenated), so
that building the weight tables and the verifier's row weights costs one call, not one per claim.

Values are canonical residues in ``[0, P)``; sums of reduced products are accumulated in uint64 and
reduced once per term (each term adds at most 2^16 values below 2^31).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from blindproof.zk.field._kernels import _P, _W, e_mul, e_mul_by
from blindproof.zk.field._kernels import addmod as _add
from blindproof.zk.field._kernels import submod as _sub

_NJ = dict(cache=True, nogil=True, boundscheck=False)
_ZERO = np.uint64(0)
_ONE = np.uint64(1)
_TWO = np.uint64(2)
_TWO_P = np.uint64(2 * 2013265921)


@nb.njit(inline="always", **_NJ)
def _line2(lo, hi):
    """Value at X = 2 of the line through (0, lo), (1, hi): 2·hi - lo."""
    return _sub(_add(hi, hi), lo)


@nb.njit(inline="always", **_NJ)
def _accumulate_round(acc, x0, x1, x2, x3, y0, y1, y2, y3, u0, u1, u2, u3, v0, v1, v2, v3):
    """Add the next round's terms of one folded pair: A·B at X = 0 into acc[:4], at X = 2 into acc[4:]
    (x, y: A at j and j + q; u, v: B at j and j + q)."""
    p0, p1, p2, p3 = e_mul(x0, x1, x2, x3, u0, u1, u2, u3)
    acc[0] += p0
    acc[1] += p1
    acc[2] += p2
    acc[3] += p3
    p0, p1, p2, p3 = e_mul(_line2(x0, y0), _line2(x1, y1), _line2(x2, y2), _line2(x3, y3),
                           _line2(u0, v0), _line2(u1, v1), _line2(u2, v2), _line2(u3, v3))
    acc[4] += p0
    acc[5] += p1
    acc[6] += p2
    acc[7] += p3


@nb.njit(**_NJ)
def _eq_seeded(out, c0, c1, c2, c3, pts, off, k):
    """out[:2^k] = c · eq(pts[off:off+k], ·) (first coordinate = most significant index bit)."""
    out[0, 0], out[0, 1], out[0, 2], out[0, 3] = c0, c1, c2, c3
    size = 1
    for i in range(k):
        r0, r1, r2, r3 = (np.uint64(pts[off + i, 0]), np.uint64(pts[off + i, 1]), np.uint64(pts[off + i, 2]),
                          np.uint64(pts[off + i, 3]))
        w1, w2, w3 = (r1 * _W) % _P, (r2 * _W) % _P, (r3 * _W) % _P
        for j in range(size - 1, -1, -1):  # backwards: new[2j], new[2j+1] overwrite nothing still needed
            a0, a1, a2, a3 = np.uint64(out[j, 0]), np.uint64(out[j, 1]), np.uint64(out[j, 2]), np.uint64(out[j, 3])
            h0, h1, h2, h3 = e_mul_by(a0, a1, a2, a3, r0, r1, r2, r3, w1, w2, w3)
            out[2 * j + 1, 0], out[2 * j + 1, 1], out[2 * j + 1, 2], out[2 * j + 1, 3] = h0, h1, h2, h3
            out[2 * j, 0] = a0 - h0 if a0 >= h0 else a0 + _P - h0
            out[2 * j, 1] = a1 - h1 if a1 >= h1 else a1 + _P - h1
            out[2 * j, 2] = a2 - h2 if a2 >= h2 else a2 + _P - h2
            out[2 * j, 3] = a3 - h3 if a3 >= h3 else a3 + _P - h3
        size *= 2


@nb.njit(**_NJ)
def _add_eq_seeded(dst, scratch, c0, c1, c2, c3, pts, off, k):
    """dst[:2^k] += c · eq(pts[off:off+k], ·): the table up to its last level in ``scratch``, the
    last level added straight into dst."""
    if k == 0:
        dst[0, 0] = _add(np.uint64(dst[0, 0]), c0)
        dst[0, 1] = _add(np.uint64(dst[0, 1]), c1)
        dst[0, 2] = _add(np.uint64(dst[0, 2]), c2)
        dst[0, 3] = _add(np.uint64(dst[0, 3]), c3)
        return
    _eq_seeded(scratch, c0, c1, c2, c3, pts, off, k - 1)
    o = off + k - 1
    r0, r1, r2, r3 = np.uint64(pts[o, 0]), np.uint64(pts[o, 1]), np.uint64(pts[o, 2]), np.uint64(pts[o, 3])
    w1, w2, w3 = (r1 * _W) % _P, (r2 * _W) % _P, (r3 * _W) % _P
    for j in range(1 << (k - 1)):
        a0, a1, a2, a3 = np.uint64(scratch[j, 0]), np.uint64(scratch[j, 1]), np.uint64(scratch[j, 2]), np.uint64(scratch[j, 3])
        h0, h1, h2, h3 = e_mul_by(a0, a1, a2, a3, r0, r1, r2, r3, w1, w2, w3)
        y = 2 * j
        dst[y, 0] = _add(np.uint64(dst[y, 0]), _sub(a0, h0))
        dst[y, 1] = _add(np.uint64(dst[y, 1]), _sub(a1, h1))
        dst[y, 2] = _add(np.uint64(dst[y, 2]), _sub(a2, h2))
        dst[y, 3] = _add(np.uint64(dst[y, 3]), _sub(a3, h3))
        dst[y + 1, 0] = _add(np.uint64(dst[y + 1, 0]), h0)
        dst[y + 1, 1] = _add(np.uint64(dst[y + 1, 1]), h1)
        dst[y + 1, 2] = _add(np.uint64(dst[y + 1, 2]), h2)
        dst[y + 1, 3] = _add(np.uint64(dst[y + 1, 3]), h3)


@nb.njit(**_NJ)
def _add_into(dst, src, n):
    for j in range(n):
        for k in range(4):
            s = np.uint64(dst[j, k]) + np.uint64(src[j, k])
            dst[j, k] = s - _P if s >= _P else s


@nb.njit(**_NJ)
def build_terms(A, M, rows, Bx, t_ptr, e_claim, e_row, row_vars, col_vars, col_start, pt_off, pts, alpha):
    """Fill the term tables A (T, C, 4) and return the first round's s(0), s(2).

    Term t sums the entries ``t_ptr[t]:t_ptr[t+1]``: entry (j, i) adds ``α_j·eq(row point_j)[i]·
    eq(col point_j)`` on claim j's column segment (``i = -1``: no row factor). Each table is built and
    its first-round contribution taken while it is in cache. Terms t < len(rows) have B_t =
    M[rows[t]] (base), the others B_t = Bx[t - len(rows)]."""
    T, C = A.shape[0], A.shape[1]
    h = C // 2
    tr = rows.shape[0]
    cw = np.empty((C, 4), dtype=np.uint32)
    out = np.zeros((2, 4), dtype=np.uint64)
    for t in range(T):
        a = A[t]
        a[:] = 0
        for e in range(t_ptr[t], t_ptr[t + 1]):
            j, i = e_claim[e], e_row[e]
            c0, c1, c2, c3 = np.uint64(alpha[j, 0]), np.uint64(alpha[j, 1]), np.uint64(alpha[j, 2]), np.uint64(alpha[j, 3])
            rv = row_vars[j]
            if i >= 0:
                for l in range(rv):  # eq(row point, i): r_l or 1 - r_l by the bits of i, MSB first
                    o = pt_off[j] + l
                    z0, z1, z2, z3 = np.uint64(pts[o, 0]), np.uint64(pts[o, 1]), np.uint64(pts[o, 2]), np.uint64(pts[o, 3])
                    if not (i >> (rv - 1 - l)) & 1:
                        z0, z1, z2, z3 = _sub(_ONE, z0), _sub(_ZERO, z1), _sub(_ZERO, z2), _sub(_ZERO, z3)
                    c0, c1, c2, c3 = e_mul(c0, c1, c2, c3, z0, z1, z2, z3)
            kc, s0 = col_vars[j], col_start[j]
            _add_eq_seeded(a[s0:], cw, c0, c1, c2, c3, pts, pt_off[j] + rv, kc)
        acc = np.zeros(8, dtype=np.uint64)
        for j in range(h):
            a0, a1, a2, a3 = np.uint64(a[j, 0]), np.uint64(a[j, 1]), np.uint64(a[j, 2]), np.uint64(a[j, 3])
            e0, e1 = _line2(a0, np.uint64(a[j + h, 0])), _line2(a1, np.uint64(a[j + h, 1]))
            e2, e3 = _line2(a2, np.uint64(a[j + h, 2])), _line2(a3, np.uint64(a[j + h, 3]))
            if t < tr:
                b = np.uint64(M[rows[t], j])
                b2 = _line2(b, np.uint64(M[rows[t], j + h]))
                acc[0] += (a0 * b) % _P
                acc[1] += (a1 * b) % _P
                acc[2] += (a2 * b) % _P
                acc[3] += (a3 * b) % _P
                acc[4] += (e0 * b2) % _P
                acc[5] += (e1 * b2) % _P
                acc[6] += (e2 * b2) % _P
                acc[7] += (e3 * b2) % _P
            else:
                x = Bx[t - tr]
                b0, b1, b2_, b3 = np.uint64(x[j, 0]), np.uint64(x[j, 1]), np.uint64(x[j, 2]), np.uint64(x[j, 3])
                p0, p1, p2, p3 = e_mul(a0, a1, a2, a3, b0, b1, b2_, b3)
                q0, q1, q2, q3 = e_mul(e0, e1, e2, e3, _line2(b0, np.uint64(x[j + h, 0])), _line2(b1, np.uint64(x[j + h, 1])),
                                       _line2(b2_, np.uint64(x[j + h, 2])), _line2(b3, np.uint64(x[j + h, 3])))
                acc[0] += p0
                acc[1] += p1
                acc[2] += p2
                acc[3] += p3
                acc[4] += q0
                acc[5] += q1
                acc[6] += q2
                acc[7] += q3
        for k in range(4):
            out[0, k] = (out[0, k] + acc[k]) % _P
            out[1, k] = (out[1, k] + acc[4 + k]) % _P
    return out.astype(np.uint32)


@nb.njit(**_NJ)
def claim_row_weights(n_rows, row0, row_vars, col_vars, col_start, pt_off, pts, alpha, zeta):
    """Row weights (n_rows, 4) ``Σ_j α_j·cw_j(ζ)·rw_j`` of a batch of claims: ``cw_j(ζ)`` is the MLE of
    claim j's column weights at ζ (eq of its segment bits, then of its column point), ``rw_j`` the eq
    table of its row point placed on its rows."""
    log_c = zeta.shape[0]
    w = np.zeros((n_rows, 4), dtype=np.uint32)
    max_r = 1
    for j in range(row0.shape[0]):
        if (1 << row_vars[j]) > max_r:
            max_r = 1 << row_vars[j]
    rw = np.empty((max_r, 4), dtype=np.uint32)
    for j in range(row0.shape[0]):
        kc = col_vars[j]
        nb_ = log_c - kc
        seg = col_start[j] >> kc
        c0, c1, c2, c3 = np.uint64(alpha[j, 0]), np.uint64(alpha[j, 1]), np.uint64(alpha[j, 2]), np.uint64(alpha[j, 3])
        for b in range(nb_):  # the segment's index bits, MSB first: ζ_b or 1 - ζ_b
            z0, z1, z2, z3 = np.uint64(zeta[b, 0]), np.uint64(zeta[b, 1]), np.uint64(zeta[b, 2]), np.uint64(zeta[b, 3])
            if not (seg >> (nb_ - 1 - b)) & 1:
                z0 = (_ONE + _P - z0) % _P
                z1 = (_P - z1) % _P
                z2 = (_P - z2) % _P
                z3 = (_P - z3) % _P
            c0, c1, c2, c3 = e_mul(c0, c1, c2, c3, z0, z1, z2, z3)
        off = pt_off[j] + row_vars[j]
        for i in range(kc):  # eq(a, z) = 2az - a - z + 1
            a0, a1, a2, a3 = np.uint64(pts[off + i, 0]), np.uint64(pts[off + i, 1]), np.uint64(pts[off + i, 2]), np.uint64(pts[off + i, 3])
            z0, z1, z2, z3 = (np.uint64(zeta[nb_ + i, 0]), np.uint64(zeta[nb_ + i, 1]), np.uint64(zeta[nb_ + i, 2]),
                              np.uint64(zeta[nb_ + i, 3]))
            p0, p1, p2, p3 = e_mul(a0, a1, a2, a3, z0, z1, z2, z3)
            t0 = (_TWO * p0 + _ONE + _TWO_P - a0 - z0) % _P
            t1 = (_TWO * p1 + _TWO_P - a1 - z1) % _P
            t2 = (_TWO * p2 + _TWO_P - a2 - z2) % _P
            t3 = (_TWO * p3 + _TWO_P - a3 - z3) % _P
            c0, c1, c2, c3 = e_mul(c0, c1, c2, c3, t0, t1, t2, t3)
        _eq_seeded(rw, c0, c1, c2, c3, pts, pt_off[j], row_vars[j])
        _add_into(w[row0[j]:], rw, 1 << row_vars[j])
    return w


@nb.njit(inline="always", **_NJ)
def _fold1(x, j, h, r0, r1, r2, r3, w1, w2, w3):
    """x[j] + r·(x[j+h] - x[j]) for an extension table x."""
    l0, l1, l2, l3 = np.uint64(x[j, 0]), np.uint64(x[j, 1]), np.uint64(x[j, 2]), np.uint64(x[j, 3])
    u0, u1, u2, u3 = np.uint64(x[j + h, 0]), np.uint64(x[j + h, 1]), np.uint64(x[j + h, 2]), np.uint64(x[j + h, 3])
    p0, p1, p2, p3 = e_mul_by(_sub(u0, l0), _sub(u1, l1), _sub(u2, l2), _sub(u3, l3), r0, r1, r2, r3, w1, w2, w3)
    return _add(l0, p0), _add(l1, p1), _add(l2, p2), _add(l3, p3)


@nb.njit(inline="always", **_NJ)
def _fold_base(row, j, h, r0, r1, r2, r3):
    """row[j] + r·(row[j+h] - row[j]) for a base-field row and an extension r."""
    lo = np.uint64(row[j])
    d = _sub(np.uint64(row[j + h]), lo)
    return _add(lo, (d * r0) % _P), (d * r1) % _P, (d * r2) % _P, (d * r3) % _P


@nb.njit(**_NJ)
def first_fold(A, M, rows, Bx, r):
    """Bind the first column variable to r. A's terms are folded into A[:, :C/2] and the B tables
    (base rows M[rows[t]] or extension rows Bx) into A[:, C/2:], which the fold frees. Returns the
    next round's s(0), s(2) (zeros when no variable is left)."""
    T, C = A.shape[0], A.shape[1]
    h = C // 2
    q = h // 2
    tr = rows.shape[0]
    r0, r1, r2, r3 = np.uint64(r[0]), np.uint64(r[1]), np.uint64(r[2]), np.uint64(r[3])
    w1, w2, w3 = (r1 * _W) % _P, (r2 * _W) % _P, (r3 * _W) % _P
    out = np.zeros((2, 4), dtype=np.uint64)
    for t in range(T):
        a = A[t]
        if q == 0:
            x0, x1, x2, x3 = _fold1(a, 0, h, r0, r1, r2, r3, w1, w2, w3)
            if t < tr:
                u0, u1, u2, u3 = _fold_base(M[rows[t]], 0, h, r0, r1, r2, r3)
            else:
                u0, u1, u2, u3 = _fold1(Bx[t - tr], 0, h, r0, r1, r2, r3, w1, w2, w3)
            a[0, 0], a[0, 1], a[0, 2], a[0, 3] = x0, x1, x2, x3
            a[h, 0], a[h, 1], a[h, 2], a[h, 3] = u0, u1, u2, u3
            continue
        acc = np.zeros(8, dtype=np.uint64)
        for j in range(q):
            x0, x1, x2, x3 = _fold1(a, j, h, r0, r1, r2, r3, w1, w2, w3)
            y0, y1, y2, y3 = _fold1(a, j + q, h, r0, r1, r2, r3, w1, w2, w3)
            if t < tr:
                row = M[rows[t]]
                u0, u1, u2, u3 = _fold_base(row, j, h, r0, r1, r2, r3)
                v0, v1, v2, v3 = _fold_base(row, j + q, h, r0, r1, r2, r3)
            else:
                bx = Bx[t - tr]
                u0, u1, u2, u3 = _fold1(bx, j, h, r0, r1, r2, r3, w1, w2, w3)
                v0, v1, v2, v3 = _fold1(bx, j + q, h, r0, r1, r2, r3, w1, w2, w3)
            # every read of this j is done: write the folded A and B (B where A's upper half was)
            a[j, 0], a[j, 1], a[j, 2], a[j, 3] = x0, x1, x2, x3
            a[j + q, 0], a[j + q, 1], a[j + q, 2], a[j + q, 3] = y0, y1, y2, y3
            a[h + j, 0], a[h + j, 1], a[h + j, 2], a[h + j, 3] = u0, u1, u2, u3
            a[h + j + q, 0], a[h + j + q, 1], a[h + j + q, 2], a[h + j + q, 3] = v0, v1, v2, v3
            _accumulate_round(acc, x0, x1, x2, x3, y0, y1, y2, y3, u0, u1, u2, u3, v0, v1, v2, v3)
        for k in range(4):
            out[0, k] = (out[0, k] + acc[k]) % _P
            out[1, k] = (out[1, k] + acc[4 + k]) % _P
    return out.astype(np.uint32)


@nb.njit(**_NJ)
def fold_and_round(A, B, length, r):
    """Bind the next variable of A and B (T, ≥length, 4) to r in place (length -> length/2) and return
    the following round's s(0), s(2) (zeros when no variable is left)."""
    h = length // 2
    q = h // 2
    T = A.shape[0]
    r0, r1, r2, r3 = np.uint64(r[0]), np.uint64(r[1]), np.uint64(r[2]), np.uint64(r[3])
    w1, w2, w3 = (r1 * _W) % _P, (r2 * _W) % _P, (r3 * _W) % _P
    out = np.zeros((2, 4), dtype=np.uint64)
    for t in range(T):
        a, b = A[t], B[t]
        if q == 0:
            a[0, 0], a[0, 1], a[0, 2], a[0, 3] = _fold1(a, 0, h, r0, r1, r2, r3, w1, w2, w3)
            b[0, 0], b[0, 1], b[0, 2], b[0, 3] = _fold1(b, 0, h, r0, r1, r2, r3, w1, w2, w3)
            continue
        acc = np.zeros(8, dtype=np.uint64)
        for j in range(q):
            x0, x1, x2, x3 = _fold1(a, j, h, r0, r1, r2, r3, w1, w2, w3)
            y0, y1, y2, y3 = _fold1(a, j + q, h, r0, r1, r2, r3, w1, w2, w3)
            u0, u1, u2, u3 = _fold1(b, j, h, r0, r1, r2, r3, w1, w2, w3)
            v0, v1, v2, v3 = _fold1(b, j + q, h, r0, r1, r2, r3, w1, w2, w3)
            a[j, 0], a[j, 1], a[j, 2], a[j, 3] = x0, x1, x2, x3
            a[j + q, 0], a[j + q, 1], a[j + q, 2], a[j + q, 3] = y0, y1, y2, y3
            b[j, 0], b[j, 1], b[j, 2], b[j, 3] = u0, u1, u2, u3
            b[j + q, 0], b[j + q, 1], b[j + q, 2], b[j + q, 3] = v0, v1, v2, v3
            _accumulate_round(acc, x0, x1, x2, x3, y0, y1, y2, y3, u0, u1, u2, u3, v0, v1, v2, v3)
        for k in range(4):
            out[0, k] = (out[0, k] + acc[k]) % _P
            out[1, k] = (out[1, k] + acc[4 + k]) % _P
    return out.astype(np.uint32)


@nb.njit(**_NJ)
def combine_terms(row_coefs, row_idx, M, x_coefs, Bx):
    """Σ_t row_coefs[t]·M[row_idx[t]] + Σ_k x_coefs[k]·Bx[k]: extension coefficients, base rows and
    extension rows -> (C, 4)."""
    C = M.shape[1]
    acc = np.zeros((C, 4), dtype=np.uint64)
    for t in range(row_idx.shape[0]):
        e0, e1, e2, e3 = np.uint64(row_coefs[t, 0]), np.uint64(row_coefs[t, 1]), np.uint64(row_coefs[t, 2]), np.uint64(row_coefs[t, 3])
        row = M[row_idx[t]]
        for c in range(C):
            s = np.uint64(row[c])
            acc[c, 0] += (e0 * s) % _P
            acc[c, 1] += (e1 * s) % _P
            acc[c, 2] += (e2 * s) % _P
            acc[c, 3] += (e3 * s) % _P
    for k in range(Bx.shape[0]):
        e0, e1, e2, e3 = np.uint64(x_coefs[k, 0]), np.uint64(x_coefs[k, 1]), np.uint64(x_coefs[k, 2]), np.uint64(x_coefs[k, 3])
        x = Bx[k]
        for c in range(C):
            p0, p1, p2, p3 = e_mul(e0, e1, e2, e3, np.uint64(x[c, 0]), np.uint64(x[c, 1]), np.uint64(x[c, 2]), np.uint64(x[c, 3]))
            acc[c, 0] += p0
            acc[c, 1] += p1
            acc[c, 2] += p2
            acc[c, 3] += p3
    out = np.empty((C, 4), dtype=np.uint32)
    for c in range(C):
        for k in range(4):
            out[c, k] = acc[c, k] % _P
    return out


@nb.njit(**_NJ)
def weighted_rows(Wt, M):
    """Row combinations: Wt (P, R, 4) extension weights, M (R, C) base -> (P, C, 4) with
    out[p] = Σ_r Wt[p, r]·M[r]. Columns in blocks so the accumulators stay in cache; zero weights skip."""
    n_p, R = Wt.shape[0], Wt.shape[1]
    C = M.shape[1]
    out = np.empty((n_p, C, 4), dtype=np.uint32)
    blk = 512
    acc = np.zeros((n_p, blk, 4), dtype=np.uint64)
    for c0 in range(0, C, blk):
        cb = min(blk, C - c0)
        acc[:] = 0
        for r in range(R):
            row = M[r, c0:c0 + cb]
            for p in range(n_p):
                e0, e1, e2, e3 = np.uint64(Wt[p, r, 0]), np.uint64(Wt[p, r, 1]), np.uint64(Wt[p, r, 2]), np.uint64(Wt[p, r, 3])
                if e0 == 0 and e1 == 0 and e2 == 0 and e3 == 0:
                    continue
                ac = acc[p]
                for c in range(cb):
                    s = np.uint64(row[c])
                    ac[c, 0] += (e0 * s) % _P
                    ac[c, 1] += (e1 * s) % _P
                    ac[c, 2] += (e2 * s) % _P
                    ac[c, 3] += (e3 * s) % _P
        for p in range(n_p):
            for c in range(cb):
                for k in range(4):
                    out[p, c0 + c, k] = acc[p, c, k] % _P
    return out
