"""Compiled kernels of the batched PCS opening (:mod:`blindproof.zk.pcs`).

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

from blindproof.zk._kernels import _P, _W, e_mul, e_mul_by

_NJ = dict(cache=True, nogil=True, boundscheck=False)
_ONE = np.uint64(1)
_TWO = np.uint64(2)
_TWO_P = np.uint64(2 * 2013265921)


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
def _add_into(dst, src, n):
    for j in range(n):
        for k in range(4):
            s = np.uint64(dst[j, k]) + np.uint64(src[j, k])
            dst[j, k] = s - _P if s >= _P else s


@nb.njit(**_NJ)
def fill_weight_tables(A, term_of_row, claim_term, row0, row_vars, col_vars, col_start, pt_off, pts, alpha):
    """Add every claim's column weights into the term tables A (T, C, 4).

    A claim with ``claim_term[j] >= 0`` owns that term: ``A[t, segment] += α_j·eq(col point)``. Otherwise
    it is spread over the row terms of its rows: ``A[term_of_row[row0 + i], segment] +=
    α_j·eq(row point)[i]·eq(col point)``, so that every claim on a row shares that row's term.
    """
    max_c = A.shape[1]
    max_r = 1
    for j in range(row0.shape[0]):
        if claim_term[j] < 0 and (1 << row_vars[j]) > max_r:
            max_r = 1 << row_vars[j]
    cw = np.empty((max_c, 4), dtype=np.uint32)
    rw = np.empty((max_r, 4), dtype=np.uint32)
    for j in range(row0.shape[0]):
        a0, a1, a2, a3 = np.uint64(alpha[j, 0]), np.uint64(alpha[j, 1]), np.uint64(alpha[j, 2]), np.uint64(alpha[j, 3])
        kc, s0 = col_vars[j], col_start[j]
        width = 1 << kc
        off_c = pt_off[j] + row_vars[j]
        if claim_term[j] >= 0:
            _eq_seeded(cw, a0, a1, a2, a3, pts, off_c, kc)
            _add_into(A[claim_term[j], s0:], cw, width)
        elif row_vars[j] == 0:
            _eq_seeded(cw, a0, a1, a2, a3, pts, off_c, kc)
            _add_into(A[term_of_row[row0[j]], s0:], cw, width)
        else:
            _eq_seeded(rw, a0, a1, a2, a3, pts, pt_off[j], row_vars[j])
            _eq_seeded(cw, _ONE, np.uint64(0), np.uint64(0), np.uint64(0), pts, off_c, kc)
            for i in range(1 << row_vars[j]):
                r0, r1, r2, r3 = np.uint64(rw[i, 0]), np.uint64(rw[i, 1]), np.uint64(rw[i, 2]), np.uint64(rw[i, 3])
                w1, w2, w3 = (r1 * _W) % _P, (r2 * _W) % _P, (r3 * _W) % _P
                dst = A[term_of_row[row0[j] + i]]
                for x in range(width):
                    p0, p1, p2, p3 = e_mul_by(np.uint64(cw[x, 0]), np.uint64(cw[x, 1]), np.uint64(cw[x, 2]),
                                              np.uint64(cw[x, 3]), r0, r1, r2, r3, w1, w2, w3)
                    y = s0 + x
                    dst[y, 0] = (np.uint64(dst[y, 0]) + p0) % _P
                    dst[y, 1] = (np.uint64(dst[y, 1]) + p1) % _P
                    dst[y, 2] = (np.uint64(dst[y, 2]) + p2) % _P
                    dst[y, 3] = (np.uint64(dst[y, 3]) + p3) % _P


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


@nb.njit(**_NJ)
def first_round(A, M, rows, Bx):
    """Round polynomial s(0), s(2) of the first column variable. Terms t < len(rows) have
    B_t = M[rows[t]] (base), the others B_t = Bx[t - len(rows)] (extension)."""
    T, C = A.shape[0], A.shape[1]
    h = C // 2
    tr = rows.shape[0]
    out = np.zeros((2, 4), dtype=np.uint64)
    for t in range(T):
        acc = np.zeros(8, dtype=np.uint64)
        for j in range(h):
            a0, a1, a2, a3 = np.uint64(A[t, j, 0]), np.uint64(A[t, j, 1]), np.uint64(A[t, j, 2]), np.uint64(A[t, j, 3])
            e0 = (_TWO * np.uint64(A[t, j + h, 0]) + _P - a0) % _P
            e1 = (_TWO * np.uint64(A[t, j + h, 1]) + _P - a1) % _P
            e2 = (_TWO * np.uint64(A[t, j + h, 2]) + _P - a2) % _P
            e3 = (_TWO * np.uint64(A[t, j + h, 3]) + _P - a3) % _P
            if t < tr:
                b = np.uint64(M[rows[t], j])
                b2 = (_TWO * np.uint64(M[rows[t], j + h]) + _P - b) % _P
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
                f0 = (_TWO * np.uint64(x[j + h, 0]) + _P - b0) % _P
                f1 = (_TWO * np.uint64(x[j + h, 1]) + _P - b1) % _P
                f2 = (_TWO * np.uint64(x[j + h, 2]) + _P - b2_) % _P
                f3 = (_TWO * np.uint64(x[j + h, 3]) + _P - b3) % _P
                q0, q1, q2, q3 = e_mul(e0, e1, e2, e3, f0, f1, f2, f3)
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


@nb.njit(inline="always", **_NJ)
def _fold1(x, j, h, r0, r1, r2, r3, w1, w2, w3):
    """x[j] + r·(x[j+h] - x[j]) for an extension table x."""
    l0, l1, l2, l3 = np.uint64(x[j, 0]), np.uint64(x[j, 1]), np.uint64(x[j, 2]), np.uint64(x[j, 3])
    u0, u1, u2, u3 = np.uint64(x[j + h, 0]), np.uint64(x[j + h, 1]), np.uint64(x[j + h, 2]), np.uint64(x[j + h, 3])
    p0, p1, p2, p3 = e_mul_by((u0 + _P - l0) % _P, (u1 + _P - l1) % _P, (u2 + _P - l2) % _P, (u3 + _P - l3) % _P,
                              r0, r1, r2, r3, w1, w2, w3)
    return (l0 + p0) % _P, (l1 + p1) % _P, (l2 + p2) % _P, (l3 + p3) % _P


@nb.njit(**_NJ)
def first_fold(A, M, rows, Bx, r, Bout):
    """Bind the first column variable to r: A in place (its first C/2 entries), B into Bout (T, C/2, 4);
    returns the next round's s(0), s(2) (zeros when no variable is left)."""
    T, C = A.shape[0], A.shape[1]
    h = C // 2
    q = h // 2
    tr = rows.shape[0]
    r0, r1, r2, r3 = np.uint64(r[0]), np.uint64(r[1]), np.uint64(r[2]), np.uint64(r[3])
    w1, w2, w3 = (r1 * _W) % _P, (r2 * _W) % _P, (r3 * _W) % _P
    for t in range(T):
        a, b = A[t], Bout[t]
        for j in range(h):
            a[j, 0], a[j, 1], a[j, 2], a[j, 3] = _fold1(a, j, h, r0, r1, r2, r3, w1, w2, w3)
        if t < tr:
            row = M[rows[t]]
            for j in range(h):
                lo = np.uint64(row[j])
                d = (np.uint64(row[j + h]) + _P - lo) % _P
                b[j, 0] = (lo + (d * r0) % _P) % _P
                b[j, 1] = (d * r1) % _P
                b[j, 2] = (d * r2) % _P
                b[j, 3] = (d * r3) % _P
        else:
            x = Bx[t - tr]
            for j in range(h):
                b[j, 0], b[j, 1], b[j, 2], b[j, 3] = _fold1(x, j, h, r0, r1, r2, r3, w1, w2, w3)
    return round_evals(A, Bout, h)


@nb.njit(**_NJ)
def round_evals(A, B, length):
    """s(0), s(2) of the next variable for tables A, B (T, ≥length, 4) of current length ``length``."""
    h = length // 2
    out = np.zeros((2, 4), dtype=np.uint64)
    if h == 0:
        return out.astype(np.uint32)
    for t in range(A.shape[0]):
        a, b = A[t], B[t]
        acc = np.zeros(8, dtype=np.uint64)
        for j in range(h):
            x0, x1, x2, x3 = np.uint64(a[j, 0]), np.uint64(a[j, 1]), np.uint64(a[j, 2]), np.uint64(a[j, 3])
            u0, u1, u2, u3 = np.uint64(b[j, 0]), np.uint64(b[j, 1]), np.uint64(b[j, 2]), np.uint64(b[j, 3])
            p0, p1, p2, p3 = e_mul(x0, x1, x2, x3, u0, u1, u2, u3)
            acc[0] += p0
            acc[1] += p1
            acc[2] += p2
            acc[3] += p3
            p0, p1, p2, p3 = e_mul((_TWO * np.uint64(a[j + h, 0]) + _P - x0) % _P,
                                   (_TWO * np.uint64(a[j + h, 1]) + _P - x1) % _P,
                                   (_TWO * np.uint64(a[j + h, 2]) + _P - x2) % _P,
                                   (_TWO * np.uint64(a[j + h, 3]) + _P - x3) % _P,
                                   (_TWO * np.uint64(b[j + h, 0]) + _P - u0) % _P,
                                   (_TWO * np.uint64(b[j + h, 1]) + _P - u1) % _P,
                                   (_TWO * np.uint64(b[j + h, 2]) + _P - u2) % _P,
                                   (_TWO * np.uint64(b[j + h, 3]) + _P - u3) % _P)
            acc[4] += p0
            acc[5] += p1
            acc[6] += p2
            acc[7] += p3
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
            p0, p1, p2, p3 = e_mul(x0, x1, x2, x3, u0, u1, u2, u3)
            acc[0] += p0
            acc[1] += p1
            acc[2] += p2
            acc[3] += p3
            p0, p1, p2, p3 = e_mul((_TWO * y0 + _P - x0) % _P, (_TWO * y1 + _P - x1) % _P,
                                   (_TWO * y2 + _P - x2) % _P, (_TWO * y3 + _P - x3) % _P,
                                   (_TWO * v0 + _P - u0) % _P, (_TWO * v1 + _P - u1) % _P,
                                   (_TWO * v2 + _P - u2) % _P, (_TWO * v3 + _P - u3) % _P)
            acc[4] += p0
            acc[5] += p1
            acc[6] += p2
            acc[7] += p3
        for k in range(4):
            out[0, k] = (out[0, k] + acc[k]) % _P
            out[1, k] = (out[1, k] + acc[4 + k]) % _P
    return out.astype(np.uint32)


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
