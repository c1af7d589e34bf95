"""Multilinear extensions over the boolean hypercube: evaluation, eq tables, folding.

Convention (shared by sumcheck, lookups and the commitment): a table ``f`` of length ``2^n`` is the
multilinear polynomial with ``f(b_0, …, b_{n-1}) = f[index]`` where ``b_0`` is the MOST significant bit
of ``index``. A point is a sequence ``(r_0, …, r_{n-1})``; binding ``r_0`` first folds the two halves
``f[:half]`` and ``f[half:]``. So a row-major (rows, cols) matrix is an MLE whose first ``log2 rows``
variables pick the row.

Base tables are (2^n,) uint32, extension tables (2^n, 4) uint32; points are (n, 4) extension arrays
or (n,) base arrays.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from blindproof.zk.field import babybear as F
from blindproof.zk.field._kernels import _P, _W, addmod, e_mul, e_mul_by, submod

_NJ = dict(cache=True, nogil=True, boundscheck=False)


@nb.njit(**_NJ)
def _fold_ext_into(src, dst, length, r):
    """dst[j] <- src[j] + r·(src[j+h] - src[j]) for j < h = length/2 (dst may be src: in place)."""
    h = length // 2
    r0, r1, r2, r3 = np.uint64(r[0]), np.uint64(r[1]), np.uint64(r[2]), np.uint64(r[3])
    w1, w2, w3 = (r1 * _W) % _P, (r2 * _W) % _P, (r3 * _W) % _P
    for j in range(h):
        l0, l1, l2, l3 = np.uint64(src[j, 0]), np.uint64(src[j, 1]), np.uint64(src[j, 2]), np.uint64(src[j, 3])
        u0, u1, u2, u3 = (np.uint64(src[j + h, 0]), np.uint64(src[j + h, 1]), np.uint64(src[j + h, 2]),
                          np.uint64(src[j + h, 3]))
        d0 = u0 - l0 if u0 >= l0 else u0 + _P - l0
        d1 = u1 - l1 if u1 >= l1 else u1 + _P - l1
        d2 = u2 - l2 if u2 >= l2 else u2 + _P - l2
        d3 = u3 - l3 if u3 >= l3 else u3 + _P - l3
        p0, p1, p2, p3 = e_mul_by(d0, d1, d2, d3, r0, r1, r2, r3, w1, w2, w3)
        dst[j, 0] = (l0 + p0) % _P
        dst[j, 1] = (l1 + p1) % _P
        dst[j, 2] = (l2 + p2) % _P
        dst[j, 3] = (l3 + p3) % _P


@nb.njit(**_NJ)
def _fold_ext_inplace(t, length, r):
    """t (m, 4): t[j] <- t[j] + r·(t[j+h] - t[j]) for j < h = length/2."""
    _fold_ext_into(t, t, length, r)


@nb.njit(**_NJ)
def _fold_base_to_ext(t, r):
    """Base table t (m,) bound at its first variable to extension r: returns (m/2, 4)."""
    h = t.shape[0] // 2
    out = np.empty((h, 4), dtype=np.uint32)
    for j in range(h):
        lo = np.uint64(t[j])
        hi = np.uint64(t[j + h])
        d = hi - lo if hi >= lo else hi + _P - lo
        out[j, 0] = (lo + (d * np.uint64(r[0])) % _P) % _P
        for c in range(1, 4):
            out[j, c] = (d * np.uint64(r[c])) % _P
    return out


@nb.njit(**_NJ)
def _fold_base_inplace(t, length, r):
    h = length // 2
    rr = np.uint64(r)
    for j in range(h):
        lo = np.uint64(t[j])
        hi = np.uint64(t[j + h])
        d = hi - lo if hi >= lo else hi + _P - lo
        t[j] = (lo + (d * rr) % _P) % _P


@nb.njit(**_NJ)
def _eq_table_ext(point):
    n = point.shape[0]
    m = 1 << n
    t = np.zeros((m, 4), dtype=np.uint32)
    t[0, 0] = 1
    size = 1
    for i in range(n):
        r0, r1, r2, r3 = (np.uint64(point[i, 0]), np.uint64(point[i, 1]), np.uint64(point[i, 2]),
                          np.uint64(point[i, 3]))
        w1, w2, w3 = (r1 * _W) % _P, (r2 * _W) % _P, (r3 * _W) % _P
        # new[2j+1] = t[j]·r, new[2j] = t[j] - t[j]·r ; walk backwards to do it in place
        for j in range(size - 1, -1, -1):
            a0, a1, a2, a3 = np.uint64(t[j, 0]), np.uint64(t[j, 1]), np.uint64(t[j, 2]), np.uint64(t[j, 3])
            h0, h1, h2, h3 = e_mul_by(a0, a1, a2, a3, r0, r1, r2, r3, w1, w2, w3)
            t[2 * j + 1, 0] = h0
            t[2 * j + 1, 1] = h1
            t[2 * j + 1, 2] = h2
            t[2 * j + 1, 3] = h3
            t[2 * j, 0] = a0 - h0 if a0 >= h0 else a0 + _P - h0
            t[2 * j, 1] = a1 - h1 if a1 >= h1 else a1 + _P - h1
            t[2 * j, 2] = a2 - h2 if a2 >= h2 else a2 + _P - h2
            t[2 * j, 3] = a3 - h3 if a3 >= h3 else a3 + _P - h3
        size *= 2
    return t


def _as_point(point: np.ndarray) -> tuple[np.ndarray, bool]:
    """Return (point, is_ext)."""
    pt = F._check(point, "point")
    if pt.ndim == 2 and pt.shape[1] == 4:
        return np.ascontiguousarray(pt), True
    if pt.ndim == 1:
        return np.ascontiguousarray(pt), False
    raise ValueError(f"point must have shape (n, 4) (extension) or (n,) (base), got {pt.shape}")


def num_vars(table: np.ndarray) -> int:
    """log2 of a table's length; raises if the length is not a power of two."""
    m = table.shape[0]
    if m < 1 or m & (m - 1):
        raise ValueError(f"MLE table length must be a power of two, got {m}")
    return m.bit_length() - 1


def is_ext_table(table: np.ndarray) -> bool:
    """True for (m, 4) extension tables, False for (m,) base tables."""
    if table.ndim == 1:
        return False
    if table.ndim == 2 and table.shape[1] == 4:
        return True
    raise ValueError(f"MLE table must have shape (m,) or (m, 4), got {table.shape}")


def eq_table(point: np.ndarray) -> np.ndarray:
    """Table of ``eq(point, x)`` over the hypercube (first coordinate = most significant bit).

    Extension point (n, 4) -> (2^n, 4); base point (n,) -> (2^n, 4) as well (embedded)."""
    pt, is_ext = _as_point(point)
    if not is_ext:
        pt = F.embed(pt)
    return _eq_table_ext(pt)


def eq_eval(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``eq(a, b) = prod_i (a_i b_i + (1 - a_i)(1 - b_i))`` for two extension points -> (4,)."""
    a, _ = _as_point(a if np.asarray(a).ndim == 2 else F.embed(a))
    b, _ = _as_point(b if np.asarray(b).ndim == 2 else F.embed(b))
    if a.shape != b.shape:
        raise ValueError(f"eq_eval: points differ in length: {a.shape} vs {b.shape}")
    return _eq_eval_ext(a, b)  # both points validated above; one kernel call for the whole product


@nb.njit(**_NJ)
def _eq_eval_ext(a, b):
    """prod_i (2 a_i b_i - a_i - b_i + 1) for canonical (n, 4) points -> (4,)."""
    o0, o1, o2, o3 = np.uint64(1), np.uint64(0), np.uint64(0), np.uint64(0)
    for i in range(a.shape[0]):
        x0, x1, x2, x3 = np.uint64(a[i, 0]), np.uint64(a[i, 1]), np.uint64(a[i, 2]), np.uint64(a[i, 3])
        y0, y1, y2, y3 = np.uint64(b[i, 0]), np.uint64(b[i, 1]), np.uint64(b[i, 2]), np.uint64(b[i, 3])
        p0, p1, p2, p3 = e_mul(x0, x1, x2, x3, y0, y1, y2, y3)
        t0 = addmod(submod(submod(addmod(p0, p0), x0), y0), np.uint64(1))
        t1 = submod(submod(addmod(p1, p1), x1), y1)
        t2 = submod(submod(addmod(p2, p2), x2), y2)
        t3 = submod(submod(addmod(p3, p3), x3), y3)
        o0, o1, o2, o3 = e_mul(o0, o1, o2, o3, t0, t1, t2, t3)
    out = np.empty(4, dtype=np.uint32)
    out[0], out[1], out[2], out[3] = o0, o1, o2, o3
    return out


def fold(table: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Bind the first (most significant) variable of ``table`` to the extension element ``r``."""
    t = F._check(table, "table")
    if num_vars(t) < 1:
        raise ValueError("fold: table has no variable left")
    r = F._check_ext(r, "r").reshape(4)
    if is_ext_table(t):
        out = np.array(t, dtype=np.uint32, copy=True)
        _fold_ext_inplace(out, out.shape[0], r)
        return out[: out.shape[0] // 2].copy()
    return _fold_base_to_ext(np.ascontiguousarray(t), r)


def evaluate(table: np.ndarray, point: np.ndarray) -> np.ndarray:
    """The MLE of ``table`` at ``point``. Extension point or extension table -> (4,); both base -> scalar."""
    t = F._check(table, "table")
    n = num_vars(t)
    pt, pt_ext = _as_point(point)
    if pt.shape[0] != n:
        raise ValueError(f"evaluate: table has {n} variables, point has {pt.shape[0]}")
    t_ext = is_ext_table(t)
    if not pt_ext and not t_ext:
        buf = np.array(t, dtype=np.uint32, copy=True)
        length = buf.shape[0]
        for i in range(n):
            _fold_base_inplace(buf, length, pt[i])
            length //= 2
        return buf[0]
    if not pt_ext:
        pt = F.embed(pt)
    if not t_ext and n == 0:
        return F.embed(t[0])
    return _evaluate_ext(np.ascontiguousarray(t), np.ascontiguousarray(pt))


@nb.njit(**_NJ)
def _evaluate_ext(t, pt):
    """The MLE of a base (m,) or extension (m, 4) table at an extension point (n, 4), n ≥ 1 for a base
    table: the first variable bound out of place (into a half-size buffer), the others in place."""
    n = pt.shape[0]
    if t.ndim == 1:
        buf = _fold_base_to_ext(t, pt[0])
    elif n == 0:
        return t[0].copy()
    else:
        buf = np.empty((t.shape[0] // 2, 4), dtype=np.uint32)
        _fold_ext_into(t, buf, t.shape[0], pt[0])
    length = buf.shape[0]
    for i in range(1, n):
        _fold_ext_inplace(buf, length, pt[i])
        length //= 2
    return buf[0].copy()


def evaluate_by_eq(table: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Reference evaluation ``sum_x table[x] · eq(point, x)`` (slower; used to cross-check)."""
    t = F._check(table, "table")
    eq = eq_table(point)
    if is_ext_table(t):
        return F.edot_ext(eq, t)
    return F.edot(eq, t)


def _bind_args(table: np.ndarray, point: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Checked table, extension eq table of the point, and the number k of variables it binds."""
    t = F._check(table, "table")
    n = num_vars(t)
    pt, is_ext = _as_point(point)
    if not is_ext:
        pt = F.embed(pt)
    k = pt.shape[0]
    if k > n:
        raise ValueError(f"{what}: point has {k} coordinates, table only {n} variables")
    return t, _eq_table_ext(pt), k


def bind_prefix(table: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Bind the first ``k = len(point)`` variables: returns the (2^{n-k}, 4) table of
    ``x ↦ f(point, x)``. For a row-major matrix with 2^k rows this is ``eq(point, ·)ᵀ · M``."""
    t, eq, k = _bind_args(table, point, "bind_prefix")
    rows = 1 << k
    if is_ext_table(t):
        return _bind_prefix_ext(eq, np.ascontiguousarray(t.reshape(rows, -1, 4)))
    return F.edot(eq, np.ascontiguousarray(t.reshape(rows, -1)))


def bind_suffix(table: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Bind the last ``k = len(point)`` variables: returns the (2^{n-k}, 4) table of
    ``x ↦ f(x, point)``. For a row-major matrix with 2^k columns this is ``M · eq(point, ·)``."""
    t, eq, k = _bind_args(table, point, "bind_suffix")
    cols = 1 << k
    if is_ext_table(t):
        m = np.ascontiguousarray(np.swapaxes(t.reshape(-1, cols, 4), 0, 1))
        return _bind_prefix_ext(eq, m)
    return F.edot(eq, np.ascontiguousarray(t.reshape(-1, cols).T))


@nb.njit(**_NJ)
def _bind_prefix_ext(eq, m):
    """sum_r eq[r] · m[r, c] for extension m (R, C, 4) -> (C, 4)."""
    R, C = m.shape[0], m.shape[1]
    acc = np.zeros((C, 4), dtype=np.uint64)
    for r in range(R):
        e0, e1, e2, e3 = np.uint64(eq[r, 0]), np.uint64(eq[r, 1]), np.uint64(eq[r, 2]), np.uint64(eq[r, 3])
        for c in range(C):
            p0, p1, p2, p3 = e_mul(e0, e1, e2, e3, np.uint64(m[r, c, 0]), np.uint64(m[r, c, 1]),
                                   np.uint64(m[r, c, 2]), np.uint64(m[r, c, 3]))
            acc[c, 0] += p0
            acc[c, 1] += p1
            acc[c, 2] += p2
            acc[c, 3] += p3
        if (r & 0x3FFFFFFF) == 0x3FFFFFFF:
            for c in range(C):
                for i in range(4):
                    acc[c, i] %= _P
    out = np.empty((C, 4), dtype=np.uint32)
    for c in range(C):
        for i in range(4):
            out[c, i] = acc[c, i] % _P
    return out
