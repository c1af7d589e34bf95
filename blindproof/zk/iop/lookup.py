"""logUp-GKR lookups: every witness row lies in a public table, with committed multiplicities.

For a challenge ``α`` (and ``β`` to fold multi-column rows ``(c_0, c_1, …) ↦ c_0 + β c_1 + …``):

    sum_{groups g} sum_i 1 / (α - w_g[i])  =  sum_j m[j] / (α - t[j])

Both sides go into ONE signed fraction tree per repetition (logUp-GKR, Papini–Haböck, ePrint
2023/1284 §3): witness leaves ``(1, α − w_i)``, table leaves ``(−m_j, α − t_j)`` side by side
(:class:`TreeLayout`), padding ``(0, 1)``, parent ``(p0 q1 + p1 q0, q0 q1)``. The lookup holds iff the
root numerator is 0: the prover sends only the root denominator ``q`` (checked ≠ 0) and the verifier
walks all trees down together, one GKR layer at a time: layer ``k`` is a degree-3 sumcheck over ``k``
variables of ``eq(r, x) · (p0 q1 + p1 q0 + λ q0 q1)`` (one such term pair per tree, batched with
powers of ``λ``), followed by a fresh coordinate ``μ`` (the next layer's last) that turns the four
child values into a claim on the next layer. Node ``j``'s children are ``2j`` and ``2j + 1`` (a node
covers a contiguous run of leaves, so padding is a suffix of every layer) and each layer sumcheck
binds its last variable first (the suffix halves every round; the prover sums it in closed form).
No inverse column is ever committed. Trees of different depths share the random
point; a tree drops out when its leaves are reached.

At the leaves the prover sends each group's column values and the multiplicities at their blocks'
points; the verifier checks the tree's leaf claim ``(p, q)`` against them, the public table's MLE
(computed itself) and the padding, and returns evaluation claims on the witness columns and the
multiplicity column (:class:`~blindproof.zk.iop.sumcheck.EvalClaim`) for the commitment to open; the caller
must have absorbed the commitments of the witness columns AND of the multiplicities into the
transcript before calling :func:`prove` / :func:`verify` (the challenges ``α``, ``β`` are drawn inside).

Zero knowledge: given the program's masks (:mod:`blindproof.zk.iop.masks`, sizes from
:func:`mask_sizes`), every tree also holds a blinding leaf ``(0, d)`` with ``d`` a fresh committed
extension element (adds 0 to the fraction sum, multiplies ``q`` by ``d``, so the sent ``q`` is uniform;
``d ≠ 0`` follows from ``q ≠ 0``), and :func:`prove_many` works with every layer below the root as its
randomized extension (Libra, CRYPTO 2019, §4): ``p̂_L(y, x) = p̃_L(x) + y(1 − y)·Φ_t(c)`` with a dummy
variable ``y`` that the layer sumcheck above sums in one more round of degree 4 and a fresh committed
``Φ`` per tree and layer (:class:`_Randomizer`), which the layer's own sumcheck pays back through a
payback table at a fresh point (:class:`_Payback`). Every layer sumcheck runs on ``f + ρ·g`` with its
own committed mask ``g``. No leaf value is sent: each tree's leaf check becomes two linear claims —
``Σ`` (selector × column or multiplicity values) ``+ d + z·Φ = p̂, q̂`` at the leaf point — that the
commitment's opening settles (:func:`_zk_leaf_claims`). What a proof then reveals about the witness —
the root denominators, each layer's child values, the payback values, the masked round messages — is
uniform (docs/proofs.md §5; ``tests/test_zk_lookup_masks.py`` counts the rank).

Range checks: :meth:`LookupTable.range` (``0 ≤ v < 2^bits``, bits ≤ 22, typically 16-bit limbs,
see :func:`split_limbs`). Nonlinear functions: :meth:`LookupTable.function` of (input, output) pairs.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from typing import Sequence

import blake3
import numba as nb
import numpy as np

from blindproof.zk.field import babybear as F
from blindproof.zk.iop import mle
from blindproof.zk.commit import pcs
from blindproof.zk.proof import soundness
from blindproof.zk.iop import sumcheck as S
from blindproof.zk.field._kernels import _P, _W, e_mul, e_mul_by
from blindproof.zk.field.encoding import ProofFormatError, Reader, Writer
from blindproof.zk.iop.transcript import Transcript
from blindproof.zk.verdict import VerifyResult, guarded


MAX_TABLE_LOG = 24
MAX_GROUP_LOG = 30
MAX_WIDTH = 2
MAX_GROUPS = 14  # witness groups per lookup (bounds the work of one layer)
_MAGIC = b"BPLK"
_VERSION = 6  # 6: randomized layers, leaf checks as linear claims (zero knowledge); 5: layer masks' values
# are linear claims; 4: one signed tree per lookup and repetition (root (0, q)), blinding leaves

_NJ = dict(cache=True, nogil=True, boundscheck=False)


# --- kernels -----------------------------------------------------------------------------------------

@nb.njit(**_NJ)
def _parent_layer(p, q):
    """Children -> parents: p = p0 q1 + p1 q0, q = q0 q1, where parent j's children are nodes 2j and
    2j + 1 (a node covers a contiguous run of leaves). Only a layer's live nodes are stored (padding
    ``(0, 1)`` is a suffix of every layer), *split*: a layer of ``live`` nodes is two halves of
    ``h = ⌈live/2⌉`` entries, node ``2j + c`` at position ``c·h + j`` (node ``live`` itself, when
    ``live`` is odd, is stored as padding), so a parent's children are ``j`` and ``h + j`` and a layer
    sumcheck's child tables are the two halves. The ``h`` parents come out stored the same way."""
    h = p.shape[0] // 2
    h2 = (h + 1) // 2
    pp = np.zeros((2 * h2, 4), dtype=np.uint32)
    qq = np.zeros((2 * h2, 4), dtype=np.uint32)
    qq[2 * h2 - 1, 0] = 1  # parent h (when h is odd) is padding
    for j in range(h):
        o = (j & 1) * h2 + (j >> 1)
        a0, a1, a2, a3 = np.uint64(p[j, 0]), np.uint64(p[j, 1]), np.uint64(p[j, 2]), np.uint64(p[j, 3])
        b0, b1, b2, b3 = np.uint64(p[h + j, 0]), np.uint64(p[h + j, 1]), np.uint64(p[h + j, 2]), np.uint64(p[h + j, 3])
        c0, c1, c2, c3 = np.uint64(q[j, 0]), np.uint64(q[j, 1]), np.uint64(q[j, 2]), np.uint64(q[j, 3])
        d0, d1, d2, d3 = np.uint64(q[h + j, 0]), np.uint64(q[h + j, 1]), np.uint64(q[h + j, 2]), np.uint64(q[h + j, 3])
        x0, x1, x2, x3 = e_mul(a0, a1, a2, a3, d0, d1, d2, d3)
        y0, y1, y2, y3 = e_mul(b0, b1, b2, b3, c0, c1, c2, c3)
        pp[o, 0] = (x0 + y0) % _P
        pp[o, 1] = (x1 + y1) % _P
        pp[o, 2] = (x2 + y2) % _P
        pp[o, 3] = (x3 + y3) % _P
        z0, z1, z2, z3 = e_mul(c0, c1, c2, c3, d0, d1, d2, d3)
        qq[o, 0] = z0
        qq[o, 1] = z1
        qq[o, 2] = z2
        qq[o, 3] = z3
    return pp, qq


@nb.njit(**_NJ)
def _leaf_denominators(cols, alpha, beta):
    """q[i] = α - sum_c β^c cols[c, i] for base columns (w, n) -> (n, 4)."""
    w, n = cols.shape
    q = np.empty((n, 4), dtype=np.uint32)
    # powers of beta
    bp = np.empty((w, 4), dtype=np.uint64)
    bp[0, 0], bp[0, 1], bp[0, 2], bp[0, 3] = np.uint64(1), np.uint64(0), np.uint64(0), np.uint64(0)
    for c in range(1, w):
        bp[c, 0], bp[c, 1], bp[c, 2], bp[c, 3] = e_mul(bp[c - 1, 0], bp[c - 1, 1], bp[c - 1, 2], bp[c - 1, 3],
                                                       np.uint64(beta[0]), np.uint64(beta[1]),
                                                       np.uint64(beta[2]), np.uint64(beta[3]))
    for i in range(n):
        s0 = np.uint64(0)
        s1 = np.uint64(0)
        s2 = np.uint64(0)
        s3 = np.uint64(0)
        for c in range(w):
            v = np.uint64(cols[c, i])
            s0 += (bp[c, 0] * v) % _P
            s1 += (bp[c, 1] * v) % _P
            s2 += (bp[c, 2] * v) % _P
            s3 += (bp[c, 3] * v) % _P
        s0 %= _P
        s1 %= _P
        s2 %= _P
        s3 %= _P
        a0, a1, a2, a3 = np.uint64(alpha[0]), np.uint64(alpha[1]), np.uint64(alpha[2]), np.uint64(alpha[3])
        q[i, 0] = a0 - s0 if a0 >= s0 else a0 + _P - s0
        q[i, 1] = a1 - s1 if a1 >= s1 else a1 + _P - s1
        q[i, 2] = a2 - s2 if a2 >= s2 else a2 + _P - s2
        q[i, 3] = a3 - s3 if a3 >= s3 else a3 + _P - s3
    return q


@nb.njit(**_NJ)
def _gkr_round(tabs, length, eqs, lam, tree_coeffs, live):
    """h(X) = sum_j eqs[j] · sum_t c_t (p0 q1 + q0 (p1 + λ q1))(j, X) at X = 0 and X = 2: the round
    binds the LAST remaining variable (pairs 2j, 2j + 1), so padding stays a suffix that halves.

    ``tabs`` holds (p0, p1, q0, q1) per tree, each (≥ length, 4); ``eqs`` is eq(r_{<last}, ·) of length/2.
    Entries of tree t from ``live[t]`` on are padding (p, q) = (0, 1), where the term is the constant
    λ: those pairs are summed in closed form, ``λ (1 − Σ_{j < ⌈live/2⌉} eqs[j])`` (eq sums to 1).
    Tree by tree (each tree's four tables are read front to back), ``c_t`` applied once per tree:
    ``Σ_t c_t Σ_j eqs[j] · term_t(j)``. p0 q1 + p1 q0 + λ q0 q1 is written with three products
    instead of four; the product by the fixed λ uses precomputed W-multiples."""
    K = tabs.shape[0]
    n_trees = K // 4
    h = length // 2
    l0, l1, l2, l3 = np.uint64(lam[0]), np.uint64(lam[1]), np.uint64(lam[2]), np.uint64(lam[3])
    lw1, lw2, lw3 = (_W * l1) % _P, (_W * l2) % _P, (_W * l3) % _P
    m = np.empty(n_trees, dtype=np.int64)
    top = 0
    for t in range(n_trees):
        m[t] = min(h, (live[t] + 1) // 2)
        top = max(top, m[t])
    run = np.zeros((top + 1, 4), dtype=np.uint64)  # prefix sums of eqs (each tree's live bound)
    for j in range(top):
        for c in range(4):
            run[j + 1, c] = (run[j, c] + np.uint64(eqs[j, c])) % _P
    v = np.empty((2, 4, 4), dtype=np.uint64)  # (X = 0, X = 2) × (p0, p1, q0, q1) × coefficient
    s = np.empty((2, 4), dtype=np.uint64)
    acc = np.zeros((2, 4), dtype=np.uint64)
    for t in range(n_trees):
        for x in range(2):
            for c in range(4):
                s[x, c] = 0
        for j in range(m[t]):
            for f in range(4):
                for c in range(4):
                    lo = np.uint64(tabs[4 * t + f, 2 * j, c])
                    hi = np.uint64(tabs[4 * t + f, 2 * j + 1, c])
                    y = hi + hi  # value at X = 2 is 2·hi - lo
                    if y >= _P:
                        y -= _P
                    v[0, f, c] = lo
                    v[1, f, c] = y - lo if y >= lo else y + _P - lo
            w0, w1, w2, w3 = np.uint64(eqs[j, 0]), np.uint64(eqs[j, 1]), np.uint64(eqs[j, 2]), np.uint64(eqs[j, 3])
            for x in range(2):
                # a = p1 + λ q1 ; b = q0 · a ; c = p0 · q1 ; term = b + c
                m0, m1, m2, m3 = e_mul_by(v[x, 3, 0], v[x, 3, 1], v[x, 3, 2], v[x, 3, 3], l0, l1, l2, l3, lw1, lw2, lw3)
                a0 = (v[x, 1, 0] + m0) % _P
                a1 = (v[x, 1, 1] + m1) % _P
                a2 = (v[x, 1, 2] + m2) % _P
                a3 = (v[x, 1, 3] + m3) % _P
                b0, b1, b2, b3 = e_mul(v[x, 2, 0], v[x, 2, 1], v[x, 2, 2], v[x, 2, 3], a0, a1, a2, a3)
                c0, c1, c2, c3 = e_mul(v[x, 0, 0], v[x, 0, 1], v[x, 0, 2], v[x, 0, 3],
                                       v[x, 3, 0], v[x, 3, 1], v[x, 3, 2], v[x, 3, 3])
                r0, r1, r2, r3 = e_mul(w0, w1, w2, w3, (b0 + c0) % _P, (b1 + c1) % _P, (b2 + c2) % _P,
                                       (b3 + c3) % _P)
                s[x, 0] = (s[x, 0] + r0) % _P
                s[x, 1] = (s[x, 1] + r1) % _P
                s[x, 2] = (s[x, 2] + r2) % _P
                s[x, 3] = (s[x, 3] + r3) % _P
        if m[t] < h:  # padding pairs: λ (1 − Σ_{j < m} eqs[j]), the same at X = 0 and X = 2
            d0 = (np.uint64(1) + _P - run[m[t], 0]) % _P
            d1 = (_P - run[m[t], 1]) % _P
            d2 = (_P - run[m[t], 2]) % _P
            d3 = (_P - run[m[t], 3]) % _P
            e0, e1, e2, e3 = e_mul(d0, d1, d2, d3, l0, l1, l2, l3)
            for x in range(2):
                s[x, 0] = (s[x, 0] + e0) % _P
                s[x, 1] = (s[x, 1] + e1) % _P
                s[x, 2] = (s[x, 2] + e2) % _P
                s[x, 3] = (s[x, 3] + e3) % _P
        k0, k1, k2, k3 = (np.uint64(tree_coeffs[t, 0]), np.uint64(tree_coeffs[t, 1]), np.uint64(tree_coeffs[t, 2]),
                          np.uint64(tree_coeffs[t, 3]))
        for x in range(2):
            r0, r1, r2, r3 = e_mul(s[x, 0], s[x, 1], s[x, 2], s[x, 3], k0, k1, k2, k3)
            acc[x, 0] = (acc[x, 0] + r0) % _P
            acc[x, 1] = (acc[x, 1] + r1) % _P
            acc[x, 2] = (acc[x, 2] + r2) % _P
            acc[x, 3] = (acc[x, 3] + r3) % _P
    return acc.astype(np.uint32)


@nb.njit(**_NJ)
def _fold_live(tabs, length, r, live):
    """Bind the last variable of every tree's tables (p0, p1, q0, q1) to r: t[j] <- t[2j] + r·(t[2j+1]
    − t[2j]) for j < ⌈live[t]/2⌉; the entries after that which held live values become padding
    (0 for numerators, 1 for denominators); the rest already are."""
    h = length // 2
    r0, r1, r2, r3 = np.uint64(r[0]), np.uint64(r[1]), np.uint64(r[2]), np.uint64(r[3])
    w1, w2, w3 = (r1 * _W) % _P, (r2 * _W) % _P, (r3 * _W) % _P
    for k in range(tabs.shape[0]):
        u = min(length, live[k // 4])
        m = min(h, (u + 1) // 2)
        for j in range(m):
            l0, l1, l2, l3 = (np.uint64(tabs[k, 2 * j, 0]), np.uint64(tabs[k, 2 * j, 1]),
                              np.uint64(tabs[k, 2 * j, 2]), np.uint64(tabs[k, 2 * j, 3]))
            u0, u1, u2, u3 = (np.uint64(tabs[k, 2 * j + 1, 0]), np.uint64(tabs[k, 2 * j + 1, 1]),
                              np.uint64(tabs[k, 2 * j + 1, 2]), np.uint64(tabs[k, 2 * j + 1, 3]))
            d0 = u0 - l0 if u0 >= l0 else u0 + _P - l0
            d1 = u1 - l1 if u1 >= l1 else u1 + _P - l1
            d2 = u2 - l2 if u2 >= l2 else u2 + _P - l2
            d3 = u3 - l3 if u3 >= l3 else u3 + _P - l3
            p0, p1, p2, p3 = e_mul_by(d0, d1, d2, d3, r0, r1, r2, r3, w1, w2, w3)
            tabs[k, j, 0] = (l0 + p0) % _P
            tabs[k, j, 1] = (l1 + p1) % _P
            tabs[k, j, 2] = (l2 + p2) % _P
            tabs[k, j, 3] = (l3 + p3) % _P
        pad = 1 if k % 4 >= 2 else 0
        for j in range(m, min(u, h)):
            tabs[k, j, 0] = pad
            tabs[k, j, 1] = 0
            tabs[k, j, 2] = 0
            tabs[k, j, 3] = 0


@nb.njit(**_NJ)
def _horner_kernel(vals, x):
    """sum_j x^j vals[j] for canonical (n, 4) vals and x (4,)."""
    x0, x1, x2, x3 = np.uint64(x[0]), np.uint64(x[1]), np.uint64(x[2]), np.uint64(x[3])
    a0, a1, a2, a3 = np.uint64(0), np.uint64(0), np.uint64(0), np.uint64(0)
    for j in range(vals.shape[0] - 1, -1, -1):
        a0, a1, a2, a3 = e_mul(a0, a1, a2, a3, x0, x1, x2, x3)
        a0 = (a0 + np.uint64(vals[j, 0])) % _P
        a1 = (a1 + np.uint64(vals[j, 1])) % _P
        a2 = (a2 + np.uint64(vals[j, 2])) % _P
        a3 = (a3 + np.uint64(vals[j, 3])) % _P
    out = np.empty(4, dtype=np.uint32)
    out[0], out[1], out[2], out[3] = a0, a1, a2, a3
    return out


@nb.njit(**_NJ)
def _tree_terms(fin, lam):
    """Per active tree t, p0 q1 + q0 (p1 + λ q1) from a layer's final values (1 + 4A, 4) -> (A, 4)."""
    n = (fin.shape[0] - 1) // 4
    l0, l1, l2, l3 = np.uint64(lam[0]), np.uint64(lam[1]), np.uint64(lam[2]), np.uint64(lam[3])
    out = np.empty((n, 4), dtype=np.uint32)
    for t in range(n):
        b = 1 + 4 * t
        m0, m1, m2, m3 = e_mul(np.uint64(fin[b + 3, 0]), np.uint64(fin[b + 3, 1]), np.uint64(fin[b + 3, 2]),
                               np.uint64(fin[b + 3, 3]), l0, l1, l2, l3)
        a0 = (np.uint64(fin[b + 1, 0]) + m0) % _P
        a1 = (np.uint64(fin[b + 1, 1]) + m1) % _P
        a2 = (np.uint64(fin[b + 1, 2]) + m2) % _P
        a3 = (np.uint64(fin[b + 1, 3]) + m3) % _P
        c0, c1, c2, c3 = e_mul(np.uint64(fin[b + 2, 0]), np.uint64(fin[b + 2, 1]), np.uint64(fin[b + 2, 2]),
                               np.uint64(fin[b + 2, 3]), a0, a1, a2, a3)
        d0, d1, d2, d3 = e_mul(np.uint64(fin[b, 0]), np.uint64(fin[b, 1]), np.uint64(fin[b, 2]),
                               np.uint64(fin[b, 3]), np.uint64(fin[b + 3, 0]), np.uint64(fin[b + 3, 1]),
                               np.uint64(fin[b + 3, 2]), np.uint64(fin[b + 3, 3]))
        out[t, 0] = (c0 + d0) % _P
        out[t, 1] = (c1 + d1) % _P
        out[t, 2] = (c2 + d2) % _P
        out[t, 3] = (c3 + d3) % _P
    return out


@nb.njit(**_NJ)
def _next_claims_kernel(fin, mu):
    """Per active tree, (p, q) = (p0 + μ (p1 - p0), q0 + μ (q1 - q0)) from (1 + 4A, 4) -> (A, 2, 4)."""
    n = (fin.shape[0] - 1) // 4
    u0, u1, u2, u3 = np.uint64(mu[0]), np.uint64(mu[1]), np.uint64(mu[2]), np.uint64(mu[3])
    out = np.empty((n, 2, 4), dtype=np.uint32)
    for t in range(n):
        for k in range(2):
            lo = 1 + 4 * t + 2 * k
            d = np.empty(4, dtype=np.uint64)
            for c in range(4):
                a = np.uint64(fin[lo, c])
                b = np.uint64(fin[lo + 1, c])
                d[c] = b - a if b >= a else b + _P - a
            m0, m1, m2, m3 = e_mul(d[0], d[1], d[2], d[3], u0, u1, u2, u3)
            out[t, k, 0] = (np.uint64(fin[lo, 0]) + m0) % _P
            out[t, k, 1] = (np.uint64(fin[lo, 1]) + m1) % _P
            out[t, k, 2] = (np.uint64(fin[lo, 2]) + m2) % _P
            out[t, k, 3] = (np.uint64(fin[lo, 3]) + m3) % _P
    return out


# --- tables ------------------------------------------------------------------------------------------

def _arange_offset(col: np.ndarray) -> int | None:
    """If ``col[j] = offset + j (mod p)`` for all j, return offset, else None."""
    offset = int(col[0])
    want = (np.arange(col.shape[0], dtype=np.int64) + offset) % F.P
    return offset if np.array_equal(col.astype(np.int64), want) else None


@dataclass(frozen=True)
class LookupTable:
    """A public table of ``2^log_size`` rows and ``width`` base-field columns (width 1 or 2)."""

    name: str
    columns: tuple[np.ndarray, ...]

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError("LookupTable: name must be a non-empty str")
        if not 1 <= len(self.columns) <= MAX_WIDTH:
            raise ValueError(f"LookupTable: width must be 1..{MAX_WIDTH}, got {len(self.columns)}")
        cols = tuple(F._check(c, f"table column {i}") for i, c in enumerate(self.columns))
        n = cols[0].shape[0]
        if any(c.ndim != 1 or c.shape[0] != n for c in cols):
            raise ValueError("LookupTable: columns must be 1-D and of equal length")
        if n & (n - 1) or not 1 <= n <= 1 << MAX_TABLE_LOG:
            raise ValueError(f"LookupTable: length must be a power of two ≤ 2^{MAX_TABLE_LOG}, got {n}")
        object.__setattr__(self, "columns", cols)
        object.__setattr__(self, "_offsets", tuple(_arange_offset(c) for c in cols))

    @staticmethod
    def range(bits: int) -> "LookupTable":
        """Values ``0 … 2^bits - 1`` (range check)."""
        if not 1 <= bits <= MAX_TABLE_LOG:
            raise ValueError(f"LookupTable.range: bits must be in [1, {MAX_TABLE_LOG}], got {bits}")
        return _range_table(bits)

    @staticmethod
    def function(name: str, inputs: np.ndarray, outputs: np.ndarray) -> "LookupTable":
        """An indexed table of (input, output) pairs for a nonlinear function; inputs must be distinct."""
        inputs, outputs = F._check(inputs, "inputs"), F._check(outputs, "outputs")
        if np.unique(inputs).size != inputs.size:
            raise ValueError("LookupTable.function: inputs must be distinct")
        return LookupTable(name, (inputs, outputs))

    @property
    def log_size(self) -> int:
        return self.columns[0].shape[0].bit_length() - 1

    @property
    def width(self) -> int:
        return len(self.columns)

    def digest_bytes(self) -> bytes:
        """A description bound into the transcript (name, shape and the table's contents hash);
        computed once per table."""
        cached = self.__dict__.get("_digest")
        if cached is None:
            h = blake3.blake3()
            for c in self.columns:
                h.update(np.ascontiguousarray(c, dtype="<u4").tobytes())
            name = self.name.encode()
            cached = struct.pack("<I", len(name)) + name + struct.pack("<II", self.log_size, self.width) \
                + h.digest()
            object.__setattr__(self, "_digest", cached)
        return cached

    def column_mle(self, c: int, point: np.ndarray) -> np.ndarray:
        """MLE of column ``c`` at an extension point; O(log n) when the column is offset + index."""
        off = self._offsets[c]  # type: ignore[attr-defined]
        if off is None:
            return mle.evaluate(self.columns[c], point)
        n = point.shape[0]
        weights = np.array([pow(2, n - 1 - i, F.P) for i in range(n)], dtype=np.uint32)
        return F.eadd(F.edot(point, weights) if n else F.ezero(), F.ext(off))

    def multiplicities(self, groups: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
        """How often each table row is looked up; raises ValueError naming a row not in the table."""
        n = self.columns[0].shape[0]
        off = self._offsets[0]  # type: ignore[attr-defined]
        if off is None:
            keys = self._keys(self.columns)
            order = np.argsort(keys, kind="stable")
            sorted_keys = keys[order]
        counts = np.zeros(n, dtype=np.int64)
        for g, group in enumerate(groups):
            cols = [F._check(c, f"group {g} column") for c in group]
            if len(cols) != self.width:
                raise ValueError(f"group {g} has {len(cols)} columns, table {self.name!r} has {self.width}")
            if off is not None:  # first column is offset + row index: the row is known directly
                rows = (cols[0].astype(np.int64) - off) % F.P
                ok = rows < n
                rows_c = np.where(ok, rows, 0)
                for c in range(1, self.width):
                    ok &= self.columns[c][rows_c] == cols[c]
            else:
                qk = self._keys(cols)
                pos_c = np.minimum(np.searchsorted(sorted_keys, qk), n - 1)
                ok = sorted_keys[pos_c] == qk
                rows_c = order[pos_c]
            bad = np.nonzero(~ok)[0]
            if bad.size:
                i = int(bad[0])
                row = tuple(int(c[i]) for c in cols)
                raise ValueError(f"group {g} row {i} = {row} is not in table {self.name!r}")
            counts += np.bincount(rows_c, minlength=n)
        if counts.max(initial=0) >= F.P:
            raise ValueError("multiplicity overflows the field")
        return counts.astype(np.uint32)

    @staticmethod
    def _keys(cols: Sequence[np.ndarray]) -> np.ndarray:
        key = np.asarray(cols[0], dtype=np.uint64)
        if len(cols) == 2:
            key = (key << np.uint64(32)) | np.asarray(cols[1], dtype=np.uint64)
        return key


@functools.lru_cache(maxsize=None)
def _range_table(bits: int) -> LookupTable:
    """One shared (read-only) instance per size: its digest and offsets are computed once."""
    col = np.arange(1 << bits, dtype=np.uint32)
    col.flags.writeable = False
    return LookupTable(f"range{bits}", (col,))


def split_limbs(values: np.ndarray, bits: int, n_limbs: int) -> list[np.ndarray]:
    """Split non-negative integers into ``n_limbs`` limbs of ``bits`` bits (least significant first);
    raises if a value does not fit. Range-check each limb against ``LookupTable.range(bits)`` and the
    recomposition ``sum_k limb_k · 2^{k·bits}`` linearly."""
    v = np.asarray(values, dtype=np.int64)
    if v.size and (v.min() < 0 or (bits * n_limbs < 63 and v.max() >= 1 << (bits * n_limbs))):
        raise ValueError(f"split_limbs: values must lie in [0, 2^{bits * n_limbs})")
    mask = (1 << bits) - 1
    return [((v >> (k * bits)) & mask).astype(np.uint32) for k in range(n_limbs)]


# --- statement and proof -----------------------------------------------------------------------------

MAX_REPS = 2


@dataclass(frozen=True)
class LookupStatement:
    """Public shape: the table, for each witness group its name and log2 length, and the number of
    independent logUp repetitions (``reps`` challenge sets ``(α, β)`` against the same committed
    columns; see :func:`blindproof.zk.proof.soundness.logup_error_log2`)."""

    table: LookupTable
    group_names: tuple[str, ...]
    group_logs: tuple[int, ...]
    reps: int = 1

    def __post_init__(self) -> None:
        if not 1 <= len(self.group_logs) <= MAX_GROUPS or len(self.group_names) != len(self.group_logs):
            raise ValueError(f"LookupStatement: need 1..{MAX_GROUPS} named groups")
        if any(not 0 <= g <= MAX_GROUP_LOG for g in self.group_logs):
            raise ValueError(f"LookupStatement: group sizes must be 2^0..2^{MAX_GROUP_LOG}")
        if len(set(self.group_names)) != len(self.group_names):
            raise ValueError("LookupStatement: group names must be distinct")
        if not isinstance(self.reps, int) or not 1 <= self.reps <= MAX_REPS:
            raise ValueError(f"LookupStatement: reps must be an int in 1..{MAX_REPS}, got {self.reps!r}")

    def layout(self, blinded: bool = False) -> "TreeLayout":
        """Where each group, the table and the blinding leaf sit among the leaves of the one signed
        fraction tree of a repetition (:func:`tree_layout`)."""
        return tree_layout(self.group_logs, self.table.log_size, blinded)

    @property
    def tree_logs(self) -> tuple[int, ...]:
        """Depth of the fraction tree of one repetition (witness groups and table in one tree, with
        room for a blinding leaf: the depth the soundness figure charges)."""
        return (self.layout(True).depth,)

    def all_tree_logs(self, blinded: bool = False) -> tuple[int, ...]:
        """Depths of every fraction tree, repetition after repetition."""
        return (self.layout(blinded).depth,) * self.reps

    @property
    def queries(self) -> int:
        """Number of looked-up rows."""
        return sum(1 << g for g in self.group_logs)

    @property
    def draws(self) -> int:
        """Challenges drawn per repetition (α, and β for two-column tables)."""
        return 1 if self.table.width == 1 else 2

    def error_log2(self, reps: int | None = None) -> float:
        """``log2`` of the logUp challenge error of this lookup with ``reps`` (default: its own)."""
        # the identity's poles: ≤ queries witness values and 2^log table rows (the tree's depth and
        # padding do not add any; the GKR's own rounds are charged separately)
        return soundness.logup_error_log2(self.queries, max(self.table.log_size, *self.group_logs), self.draws,
                                          self.reps if reps is None else reps)

    def absorb(self, transcript: Transcript) -> None:
        """Bind the lookup's shape into the transcript."""
        transcript.absorb_bytes("lookup/table", self.table.digest_bytes())
        transcript.absorb_bytes("lookup/groups", struct.pack(f"<{len(self.group_logs)}I", *self.group_logs)
                                + "\0".join(self.group_names).encode())
        transcript.absorb_bytes("lookup/reps", struct.pack("<I", self.reps))

    def column_names(self, g: int) -> list[str]:
        """Names of group g's columns in evaluation claims."""
        if self.table.width == 1:
            return [self.group_names[g]]
        return [f"{self.group_names[g]}[{c}]" for c in range(self.table.width)]


MULTIPLICITY_COLUMN = "multiplicities"


@dataclass(frozen=True)
class TreeLayout:
    """The leaves of one signed fraction tree (logUp-GKR, Papini–Haböck §3): each witness group and
    the table occupy a block of ``2^log`` leaves at an offset aligned to its size (largest first), the
    blinding leaf ``(0, d)`` (zero knowledge only) the next free leaf, padding ``(0, 1)`` the rest.
    Aligned blocks make each block's MLE a sub-cube: at a leaf point ``r`` (first coordinate = most
    significant bit) the tree's leaf MLE is ``Σ_b eq(r_high, offset_b) · block_b(r_low)``."""

    depth: int
    offsets: tuple[int, ...]  # leaf offset of each group, then of the table
    logs: tuple[int, ...]  # log2 block size of each group, then of the table
    blind: int | None  # leaf index of the blinding leaf, or None
    used: int  # leaves that are not padding (a prefix: padding is the suffix)

    def live(self, k: int) -> int:
        """Nodes of layer ``k`` (``2^k`` nodes, node ``j`` covering leaves ``[j·2^(depth−k), …)``) that
        are not padding ``(0, 1)``: a prefix."""
        return -(-self.used >> (self.depth - k))

    def selector(self, offset: int, log: int, point: Sequence) -> tuple[int, int, int, int]:
        """eq of the point's first ``depth - log`` coordinates with the block's prefix ``offset >> log``."""
        top = self.depth - log
        prefix = offset >> log
        sel = _ONE
        for k in range(top):
            r = point[k]
            sel = _MUL(sel, r if (prefix >> (top - 1 - k)) & 1 else _sub4(_ONE, r))
        return sel

    def block(self, i: int, point: Sequence) -> tuple[tuple[int, int, int, int], list]:
        """Block ``i``'s (group ``i``, or the table for ``i = len(groups)``) selector and own point."""
        return self.selector(self.offsets[i], self.logs[i], point), list(point[self.depth - self.logs[i]:])


@functools.lru_cache(maxsize=1024)
def tree_layout(group_logs: tuple[int, ...], table_log: int, blinded: bool) -> TreeLayout:
    """The public leaf layout of one lookup's tree (sizes only)."""
    logs = tuple(group_logs) + (table_log,)
    order = sorted(range(len(logs)), key=lambda i: (-logs[i], i))
    offsets = [0] * len(logs)
    at = 0
    for i in order:  # decreasing powers of two: every offset is a multiple of its block's size
        offsets[i] = at
        at += 1 << logs[i]
    blind = at if blinded else None
    total = at + (1 if blinded else 0)
    return TreeLayout(max(1, (total - 1).bit_length()), tuple(offsets), logs, blind, total)


ZK_Y_DEGREE = 4  # degree of a zero-knowledge layer's last round (the dummy variable y)


@dataclass(frozen=True)
class _LayerShape:
    """What :meth:`SumcheckProof.read` needs to read one GKR layer: k rounds of a degree-3 polynomial
    (with zero knowledge, one more round of degree 4 for the dummy variable ``y``), and the eq value
    plus (p0, p1, q0, q1) per active tree (with zero knowledge and k ≥ 1, then the payback value)."""

    n_vars: int
    degree: int
    n_tables: int
    zk: bool = False

    @property
    def round_degrees(self) -> tuple[int, ...]:
        if self.zk:
            return (3,) * (self.n_vars - 1) + (ZK_Y_DEGREE,)
        return (self.degree,) * self.n_vars


@functools.lru_cache(maxsize=1024)
def _layer_shape(k: int, active: int, zk: bool = False) -> _LayerShape:
    if zk:
        return _LayerShape(k + 1, ZK_Y_DEGREE, 1 + 4 * active + (1 if k else 0), True)
    return _LayerShape(k, 3, 1 + 4 * active)


def _statements(sts) -> tuple[LookupStatement, ...]:
    sts = (sts,) if isinstance(sts, LookupStatement) else tuple(sts)
    if not sts or not all(isinstance(st, LookupStatement) for st in sts):
        raise ValueError("expected a LookupStatement or a non-empty sequence of them")
    return sts


def _tree_logs(sts: Sequence[LookupStatement], blinded: bool) -> tuple[int, ...]:
    """Depths of every fraction tree of a (multi-)lookup: statement after statement, one per repetition."""
    return tuple(n for st in sts for n in st.all_tree_logs(blinded))


@dataclass
class LookupProof:
    """Root denominators (the root numerators are 0) and one sumcheck per GKR layer; without zero
    knowledge also the values at the leaf point (each group's columns, each statement's
    multiplicities), which with zero knowledge are never sent (the leaf checks are linear claims).
    One proof may cover several statements (:func:`prove_many`): their trees share every GKR layer."""

    root_q: np.ndarray  # (trees, 4): the root denominator of each tree
    layers: list[S.SumcheckProof]
    column_evals: list[np.ndarray]  # per group of every statement: (width, 4); empty with zero knowledge
    mult_evals: np.ndarray  # (statements, 4): the multiplicity column at the table block's point; (0, 4) zk
    zk: bool = False  # randomized layers and blinding leaves (:func:`prove_many` with masks)
    root_p: np.ndarray | None = None  # the prover's root numerators (not sent; a strict prover checks 0)

    def to_bytes(self, sts: "LookupStatement | Sequence[LookupStatement]") -> bytes:
        """Serialize (format version 6)."""
        sts = _statements(sts)
        w = Writer()
        w.header(_MAGIC, _VERSION)
        w.u8(len(sts))
        for st in sts:
            w.u8(st.table.log_size)
            w.u8(st.table.width)
            w.u8(len(st.group_logs))
            w.u8(st.reps)
            for g in st.group_logs:
                w.u8(g)
        w.u8(1 if self.zk else 0)
        w.ext_fixed(self.root_q.reshape(-1, 4))
        logs = _tree_logs(sts, self.zk)
        for k, layer in enumerate(self.layers):
            layer.write(w, _layer_shape(k, sum(1 for n in logs if n > k), self.zk))
        if not self.zk:
            for ev in self.column_evals:
                w.ext_fixed(ev)
            w.ext_fixed(self.mult_evals.reshape(-1, 4))
        return w.getvalue()

    @staticmethod
    def from_bytes(data: bytes, sts: "LookupStatement | Sequence[LookupStatement]") -> "LookupProof":
        """Parse for the expected statement(s); ProofFormatError on any mismatch or malformation."""
        sts = _statements(sts)
        depth = max(_tree_logs(sts, True))  # the larger layout bounds the size
        n_trees = len(_tree_logs(sts, True))
        n_groups = sum(len(st.group_logs) for st in sts)
        # a layer: mask sum and value, final values (and the payback value), rounds
        per_layer = 16 * (3 + 4 * (1 + 4 * n_trees) + 3 * depth + ZK_Y_DEGREE) + 2
        r = Reader(data, max_total=64 + 8 * n_groups + 32 * n_trees + depth * per_layer
                   + 16 * MAX_WIDTH * n_groups + 16 * len(sts))
        r.header(_MAGIC, (_VERSION,))
        if r.u8() != len(sts):
            raise ProofFormatError("lookup proof covers another number of statements")
        for st in sts:
            shape = (r.u8(), r.u8(), r.u8(), r.u8())
            if shape != (st.table.log_size, st.table.width, len(st.group_logs), st.reps):
                raise ProofFormatError(f"lookup proof shape {shape} does not match the statement")
            got = tuple(r.u8() for _ in st.group_logs)
            if got != st.group_logs:
                raise ProofFormatError(f"lookup group sizes {got} do not match the statement {st.group_logs}")
        zk = bool(r.u8(max_value=1))
        logs = _tree_logs(sts, zk)
        root_q = r.ext_fixed(len(logs))
        layers = []
        for k in range(max(logs)):
            active = sum(1 for n in logs if n > k)
            layers.append(S.SumcheckProof.read(r, _layer_shape(k, active, zk)))
        if zk:
            evals, mult_evals = [], np.zeros((0, 4), dtype=np.uint32)
        else:
            evals = [r.ext_fixed(st.table.width) for st in sts for _ in st.group_logs]
            mult_evals = r.ext_fixed(len(sts))
        r.finish()
        return LookupProof(root_q, layers, evals, mult_evals, zk)


# --- extension arithmetic on Python ints (a few products per round: cheaper than numpy calls) ---------

def _ints(x: np.ndarray) -> list[int]:
    """One validated extension element as Python ints."""
    return F._check_ext(x, "x").reshape(4).tolist()


def _add4(a, b) -> tuple[int, int, int, int]:
    P = F.P
    return ((a[0] + b[0]) % P, (a[1] + b[1]) % P, (a[2] + b[2]) % P, (a[3] + b[3]) % P)


def _sub4(a, b) -> tuple[int, int, int, int]:
    P = F.P
    return ((a[0] - b[0]) % P, (a[1] - b[1]) % P, (a[2] - b[2]) % P, (a[3] - b[3]) % P)


def _shift4(a, c: int) -> tuple[int, int, int, int]:
    """a - c for a base constant c."""
    return ((a[0] - c) % F.P, a[1], a[2], a[3])


def _scale4(a, c: int) -> tuple[int, int, int, int]:
    P = F.P
    return (a[0] * c % P, a[1] * c % P, a[2] * c % P, a[3] * c % P)


_MUL = F._emul4
_ONE = (1, 0, 0, 0)


def _eq1(a, b):
    """eq(a, b) for single coordinates: a b + (1 - a)(1 - b) = 2ab - a - b + 1."""
    ab = _MUL(a, b)
    P = F.P
    return ((2 * ab[0] - a[0] - b[0] + 1) % P, (2 * ab[1] - a[1] - b[1]) % P,
            (2 * ab[2] - a[2] - b[2]) % P, (2 * ab[3] - a[3] - b[3]) % P)


def _combine(claims: np.ndarray, active: np.ndarray, lam: np.ndarray) -> tuple[int, int, int, int]:
    """sum over active trees of λ^{2t} (p_t + λ q_t): the layer's claim (claims: (trees, 2, 4))."""
    return tuple(_horner_kernel(np.ascontiguousarray(claims[active].reshape(-1, 4)), lam).tolist())


def _compose(fin: np.ndarray, lam: np.ndarray) -> tuple[int, int, int, int]:
    """eq · sum_t λ^{2t} (p0 q1 + p1 q0 + λ q0 q1) from a layer's final values (1 + 4A, 4)."""
    lam2 = np.array(_MUL(lam.tolist(), lam.tolist()), dtype=np.uint32)
    return _MUL(fin[0].tolist(), _horner_kernel(_tree_terms(fin, lam), lam2).tolist())


def _fold_row(vals, pw) -> tuple[int, int, int, int]:
    """sum_c β^c vals[c]."""
    total = (0, 0, 0, 0)
    for v, b in zip(vals, pw):
        total = _add4(total, _MUL(v, b))
    return total


_ZERO_POINT = np.zeros((1, 4), dtype=np.uint32)


def _blind_value(mask: S.MaskPolynomial) -> np.ndarray:
    """A blinding leaf's ``d``: the value at 0 of a fresh one-variable mask (its constant coefficient, an
    extension element), settled like every mask value as a linear claim on its committed table."""
    return mask.evaluate(_ZERO_POINT)


# --- prover ------------------------------------------------------------------------------------------

def _draw_challenges(st: LookupStatement, transcript: Transcript) -> tuple[np.ndarray, np.ndarray]:
    """(reps, 4) α and β (β zero for one-column tables)."""
    st.absorb(transcript)
    alpha = transcript.challenge_exts("lookup/alpha", st.reps)
    beta = (transcript.challenge_exts("lookup/beta", st.reps) if st.table.width > 1
            else np.zeros((st.reps, 4), dtype=np.uint32))
    return alpha, beta


def prove(st: LookupStatement, groups: Sequence[Sequence[np.ndarray]], mult: np.ndarray,
          transcript: Transcript) -> LookupProof:
    """Prove that every row of every group is in ``st.table`` with multiplicities ``mult``
    (from :meth:`LookupTable.multiplicities`). The caller has absorbed the commitments of the group
    columns and of ``mult``. Returns the proof; :func:`prove_with_claims` also returns its claims."""
    return prove_with_claims(st, groups, mult, transcript)[0]


def prove_with_claims(st: LookupStatement, groups: Sequence[Sequence[np.ndarray]], mult: np.ndarray,
                      transcript: Transcript) -> tuple[LookupProof, tuple[S.EvalClaim, ...]]:
    """As :func:`prove`, and also the evaluation claims :func:`verify` returns on acceptance (the
    prover knows them without replaying the verifier)."""
    proof, claims = prove_many([st], [groups], [mult], transcript)
    return proof, claims[0]


def _check_witness(st: LookupStatement, groups, mult) -> tuple[list[np.ndarray], np.ndarray]:
    if len(groups) != len(st.group_logs):
        raise ValueError(f"statement has {len(st.group_logs)} groups, got {len(groups)}")
    cols_per_group = []
    for g, (group, n) in enumerate(zip(groups, st.group_logs)):
        cols = np.stack([F._check(c, f"group {g} column") for c in group]).astype(np.uint32)
        if cols.shape != (st.table.width, 1 << n):
            raise ValueError(f"group {g} must be {st.table.width} columns of length 2^{n}, got {cols.shape}")
        cols_per_group.append(np.ascontiguousarray(cols))
    mult = F._check(mult, "mult")
    if mult.shape != (1 << st.table.log_size,):
        raise ValueError(f"mult must have length 2^{st.table.log_size}, got {mult.shape}")
    return cols_per_group, mult


def _zk_degrees(k: int) -> tuple[int, ...]:
    """Round degrees of zero-knowledge layer ``k``: its ``k`` variables, then ``y``."""
    return (3,) * k + (ZK_Y_DEGREE,)


def mask_sizes(sts: "LookupStatement | Sequence[LookupStatement]") -> list[tuple[int, "int | tuple[int, ...]"]]:
    """(n_vars, degree) of the committed zero-knowledge randomness a :func:`prove_many` proof takes,
    in order: one 4-entry table ``(1, 3)`` per tree (its blinding leaf's denominator ``d``), then per
    layer sumcheck ``k`` (k = 0 … depth − 1): the two randomizers of layer ``k + 1``
    (:class:`_Randomizer`: ``T + 2`` variables, degree 1, ``T`` the trees that deep) and the
    sumcheck's own mask (``k + 1`` variables, :func:`_zk_degrees`). Depends only on the statements
    (public shapes)."""
    logs = _tree_logs(_statements(sts), True)
    out: list = [(1, 3)] * len(logs)
    for k in range(max(logs)):
        n = sum(1 for d in logs if d > k) + 2
        out += [(n, 1), (n, 1), (k + 1, _zk_degrees(k))]
    return out


# --- zero knowledge: randomized layers ------------------------------------------------------------

_HALF = (F.P + 1) // 2
_HALF4 = (_HALF, 0, 0, 0)
_ZERO4 = (0, 0, 0, 0)


@dataclass(frozen=True)
class _Randomizer:
    """The randomized extension of layer ``L`` of every tree at least ``L`` deep (``trees``, in order;
    Libra, CRYPTO 2019, §4, with one dummy variable):

        p̂_L(y, x) = p̃_L(x) + y (1 − y) · Φ_t(c),   Φ_t(c) = Σ_{w ∈ {0,1}²} R_t(c, w) = 4·R_t(c, ½, ½),
        R_t(c, w_0, w_1) = g_t(c) + g_T(w_0) + g_{T+1}(w_1)

    with ``c`` the layer's last variable (its child bit), ``y`` a variable the layer's reader sums
    last (``p̂ = p̃`` on the cube, so every layer relation is unchanged), ``g`` a committed degree-1
    mask over ``T + 2`` variables with extension coefficients (:class:`sumcheck.MaskPolynomial`; one
    variable per tree, two shared), and ``q̂`` alike with a second mask. Each value a proof reveals
    about ``p̂_L`` (the reader's ``p̂(r_y, s, 0)``, ``p̂(r_y, s, 1)``) carries the fresh ``g_t(0)``,
    ``g_t(1)``; the producer pays ``Φ`` back through ``R`` at a fresh point (:func:`_payback`)."""

    trees: tuple[int, ...]
    names: tuple[str, str]  # committed masks: numerators, denominators
    masks: "tuple[S.MaskPolynomial, S.MaskPolynomial] | None" = None  # prover only

    @property
    def n_vars(self) -> int:
        return len(self.trees) + 2

    def pos(self, t: int) -> int:
        return self.trees.index(t)

    def phis(self) -> np.ndarray:
        """``Φ_t(0)``, ``Φ_t(1)`` of both sides for every tree, as (trees, [Φ^p(0), Φ^p(1), Φ^q(0), Φ^q(1)], 4)
        (prover): with degree-1 masks ``g_t(0) = a_t``, ``g_t(1) = a_t + b_t`` and ``g(½) = a + b/2``
        — additions only."""
        T = len(self.trees)
        out = np.empty((T, 4, 4), dtype=np.uint32)
        for side in (0, 1):
            co = self.masks[side].coeffs  # (T + 2, 2, 4): a, b per variable
            a, b = co[:T, 0], co[:T, 1]
            half_b = F.emul(co[T:, 1], F.ext(_HALF))
            shared = F.eadd(F.eadd(co[T, 0], half_b[0]), F.eadd(co[T + 1, 0], half_b[1]))
            at0 = F.eadd(a, shared[None, :])
            out[:, 2 * side] = F.emul(at0, F.ext(4))
            out[:, 2 * side + 1] = F.emul(F.eadd(at0, b), F.ext(4))
        return out

    def phi_terms(self, side: int, t: int, c, coef) -> tuple:
        """Claim terms of ``coef · Φ_t(c)`` on the committed mask."""
        T, c4 = len(self.trees), _scale4(coef, 4)
        return S.mask_var_terms(self.names[side], self.n_vars, 1,
                                [(self.pos(t), c, c4), (T, _HALF4, c4), (T + 1, _HALF4, c4)])


def _take_randomizer(masks, trees: tuple[int, ...]) -> _Randomizer:
    """The next two committed masks as layer randomizers (prover: :class:`ProverMasks`)."""
    (np_, gp), (nq, gq) = masks.take(len(trees) + 2, 1), masks.take(len(trees) + 2, 1)
    return _Randomizer(trees, (np_, nq), (gp, gq))


def _name_randomizer(masks, trees: tuple[int, ...]) -> _Randomizer:
    """Verifier side of :func:`_take_randomizer`: the names only."""
    return _Randomizer(trees, (masks.next_name(), masks.next_name()))


@dataclass(frozen=True)
class _Payback:
    """Layer ``k``'s randomizer term in its own sumcheck (the producer of the claims on ``p̂_k``): the
    claim ``Σ_t c_t (p̂_k,t + λ q̂_k,t)(ρ_y, ρ)`` exceeds ``Σ eq·F`` by
    ``z Σ_t c_t (Φ^p_t(μ) + λ Φ^q_t(μ))`` (``z = ρ_y(1 − ρ_y)``, ``μ`` the point's last coordinate),
    summed as the table ``2^−(n−2) P(w)`` over the sumcheck's first two rounds' variables ``w``,

        P(w_0, w_1) = z · Σ_t c_t (R^p_t(μ, w) + λ R^q_t(μ, w)),

    so the proof reveals ``V = P(r_0, r_1)/z`` — ``R`` at a fresh point — and never ``Φ(μ)``, which
    would give ``p̃_k`` away. ``V`` is a linear claim on the two masks."""

    rz: _Randomizer
    trees: tuple[int, ...]  # the sumcheck's active trees, in order
    coeffs: tuple  # c_t per active tree (λ^{2t})
    lam: tuple
    z: tuple
    mu: tuple

    def _sides(self):
        return ((0, _ONE), (1, self.lam))

    def value(self, w0, w1) -> tuple[int, int, int, int]:
        """``V(w) = Σ_t c_t (R^p_t(μ, w) + λ R^q_t(μ, w))`` (prover)."""
        T = len(self.rz.trees)
        if "_s0" not in self.__dict__:  # Σ_t c_t (g^p_t(μ) + λ g^q_t(μ)) and Σ_t c_t, once
            s0 = _ZERO4
            for side, f in self._sides():
                g = self.rz.masks[side]
                for t, c in zip(self.trees, self.coeffs):
                    s0 = _add4(s0, _MUL(_MUL(c, f), g._univariate_ints(self.rz.pos(t), self.mu)))
            object.__setattr__(self, "_s0", s0)
            object.__setattr__(self, "_csum", functools.reduce(_add4, self.coeffs, _ZERO4))
        shared = _ZERO4
        for side, f in self._sides():
            g = self.rz.masks[side]
            shared = _add4(shared, _MUL(f, _add4(g._univariate_ints(T, w0), g._univariate_ints(T + 1, w1))))
        return _add4(self._s0, _MUL(self._csum, shared))

    def round_values(self, j: int, n: int, r: list, xs) -> list:
        """The payback table's round-``j`` polynomial at each ``x`` of ``xs`` (``n`` variables in all;
        ``r``: the challenges so far): round 0 sums ``w_1``, round 1 binds it, later rounds see a
        constant ``2^(1−j)·z·V(r_0, r_1)``."""
        if j == 0:
            return [_MUL(self.z, _add4(self.value(x, _ZERO4), self.value(x, _ONE))) for x in xs]
        if j == 1:
            return [_MUL(self.z, self.value(r[0], x)) for x in xs]
        v = _MUL(_pow2_inv(j - 1), _MUL(self.z, self.value(r[0], r[1])))
        return [v] * len(xs)

    def terms(self, r0, r1) -> tuple:
        """Claim terms of ``V(r_0, r_1)`` on the two masks."""
        T = len(self.rz.trees)
        csum = functools.reduce(_add4, self.coeffs, _ZERO4)
        out: tuple = ()
        for side, f in self._sides():
            items = [(self.rz.pos(t), self.mu, _MUL(c, f)) for t, c in zip(self.trees, self.coeffs)]
            items += [(T, r0, _MUL(csum, f)), (T + 1, r1, _MUL(csum, f))]
            out += S.mask_var_terms(self.rz.names[side], self.rz.n_vars, 1, items)
        return out


def _lambda_powers(lam, n: int) -> tuple:
    """``λ^{2t}`` for t < n: the trees' batching coefficients in a layer (as :func:`_combine`)."""
    out, c, lam2 = [], _ONE, _MUL(lam, lam)
    for _ in range(n):
        out.append(c)
        c = _MUL(c, lam2)
    return tuple(out)


def _pow2_inv(e: int) -> tuple[int, int, int, int]:
    """``2^−e`` (e ≥ 0) as an extension element."""
    return (pow(pow(2, e, F.P), F.P - 2, F.P), 0, 0, 0)


def _zk_leaf_claims(st: "LookupStatement", challenges, point: list, z, ps: list, qs: list, trees: range,
                    rz: _Randomizer, d_names: Sequence[str]) -> list[pcs.LinearClaim]:
    """One statement's leaf checks as linear claims (prover and verifier alike), per repetition: the
    tree's claim ``(p̂, q̂)`` at the leaf point is the blocks' values (the committed columns and the
    multiplicities at their blocks' points, the public table, the blinding ``d``, padding) plus
    ``z·Φ`` of the leaf layer's randomizer. Terms name the statement's columns
    (:meth:`LookupStatement.column_names`), :data:`MULTIPLICITY_COLUMN` and the committed masks; no
    value of a column is sent."""
    alpha, beta = challenges
    lay = st.layout(True)
    n_groups = len(st.group_logs)
    blocks = [lay.block(i, point) for i in range(n_groups + 1)]
    pts = [np.array(pt, dtype=np.uint32).reshape(-1, 4) for _, pt in blocks]
    tvals = [tuple(st.table.column_mle(c, pts[-1]).tolist()) for c in range(st.table.width)]
    sel_d = lay.selector(lay.blind, 0, point)
    pad = _sub4(_ONE, sel_d)
    for sel, _ in blocks:
        pad = _sub4(pad, sel)
    mu = point[-1]
    out = []
    for r, t in enumerate(trees):
        a, b = tuple(alpha[r].tolist()), tuple(beta[r].tolist())
        pw = [_ONE, b][: st.table.width]
        # numerators: Σ_g sel_g · 1 − sel_T · m + z Φ^p = p̂
        known = _ZERO4
        for sel, _ in blocks[:-1]:
            known = _add4(known, sel)
        terms = _nonzero(((MULTIPLICITY_COLUMN, pts[-1], _sub4(_ZERO4, blocks[-1][0])),)) \
            + rz.phi_terms(0, t, mu, z)
        out.append(pcs.LinearClaim(terms, np.array(_sub4(ps[r], known), dtype=np.uint32)))
        # denominators: Σ_g sel_g (α − Σ_c β^c w_gc) + sel_T (α − Σ_c β^c t_c) + sel_d d + pad + z Φ^q = q̂
        known = _add4(pad, _MUL(blocks[-1][0], _sub4(a, _fold_row(tvals, pw))))
        terms = ()
        for g in range(n_groups):
            sel = blocks[g][0]
            known = _add4(known, _MUL(sel, a))
            terms += _nonzero(tuple((name, pts[g], _sub4(_ZERO4, _MUL(sel, pw[c])))
                                    for c, name in enumerate(st.column_names(g))))
        terms += S.mask_var_terms(d_names[r], 1, 3, [(0, _ZERO4, sel_d)]) + rz.phi_terms(1, t, mu, z)
        out.append(pcs.LinearClaim(terms, np.array(_sub4(qs[r], known), dtype=np.uint32)))
    return out


def _nonzero(terms: tuple) -> tuple:
    """Terms with a nonzero coefficient (as arrays); the others add nothing."""
    return tuple((n, p, np.array(c, dtype=np.uint32)) for n, p, c in terms if any(c))


def _leaves(lay: TreeLayout, cols_per_group, neg_mult, tcols, alpha, beta, d) -> tuple[np.ndarray, np.ndarray]:
    """The signed tree's live leaves (natural order, an even count): ``(1, α − w)`` per group row,
    ``(−m, α − t)`` per table row, the blinding leaf ``(0, d)``, then padding ``(0, 1)``."""
    n = lay.used + (lay.used & 1)
    p = np.zeros((n, 4), dtype=np.uint32)
    q = np.zeros((n, 4), dtype=np.uint32)
    q[:, 0] = 1
    for g, cols in enumerate(cols_per_group):
        o, size = lay.offsets[g], 1 << lay.logs[g]
        p[o:o + size, 0] = 1
        q[o:o + size] = _leaf_denominators(cols, alpha, beta)
    o, size = lay.offsets[-1], 1 << lay.logs[-1]
    p[o:o + size] = neg_mult
    q[o:o + size] = _leaf_denominators(tcols, alpha, beta)
    if lay.blind is not None:
        q[lay.blind] = d
    return p, q


def _statement_trees(sts: Sequence[LookupStatement], blinded: bool) -> list[range]:
    """Per statement, the global indices of its trees (one per repetition)."""
    out, base = [], 0
    for st in sts:
        out.append(range(base, base + st.reps))
        base += st.reps
    return out


def prove_many(sts: Sequence[LookupStatement], groups: Sequence[Sequence[Sequence[np.ndarray]]],
               mults: Sequence[np.ndarray], transcript: Transcript, masks: "ProverMasks | None" = None
               ) -> tuple[LookupProof, list[tuple]]:
    """Prove several lookups with ONE logUp-GKR: every statement draws its own challenges and builds
    one signed fraction tree per repetition (:class:`TreeLayout`, root ``(0, q)``), and the trees of
    all of them share each layer sumcheck (the per-round cost is paid once). Returns the proof and,
    per statement, the claims :func:`verify_many` returns for it.

    ``masks`` (zero knowledge, :class:`blindproof.zk.iop.masks.ProverMasks`, sizes from
    :func:`mask_sizes`): each tree gets a blinding leaf ``(0, d)`` (``d`` a committed fresh mask value:
    it multiplies the root denominator, which is then uniform); every layer below the root is worked
    with as its randomized extension (:class:`_Randomizer`), read by the layer sumcheck above it in a
    last round over the dummy variable ``y`` and paid back by its own sumcheck (:class:`_Payback`);
    every layer sumcheck runs on ``f + ρ·g`` with its own committed mask ``g``; and the leaf checks
    become linear claims (:func:`_zk_leaf_claims`) instead of sent column values. ``g(r)`` and the
    payback values are linear claims on the masks, handed to ``masks.add_claim``/``add_linear``; the
    leaf claims are returned (per statement, :class:`pcs.LinearClaim`)."""
    sts = _statements(sts)
    if len(groups) != len(sts) or len(mults) != len(sts):
        raise ValueError(f"{len(sts)} statements need as many group lists and multiplicity columns")
    zk = masks is not None
    witness = [_check_witness(st, g, m) for st, g, m in zip(sts, groups, mults)]
    logs = _tree_logs(sts, zk)
    d_masks = [masks.take(1, 3) for _ in logs] if zk else []
    trees = []  # trees[i][k] = (p, q) at layer k (its live nodes, split-stored), k = 0 … depth
    challenges = []
    for s_i, (st, (cols_per_group, mult)) in enumerate(zip(sts, witness)):
        alpha, beta = _draw_challenges(st, transcript)
        challenges.append((alpha, beta))
        tcols = np.ascontiguousarray(np.stack(st.table.columns))
        neg_mult = F.embed(F.neg(mult))
        for r in range(st.reps):
            d = _blind_value(d_masks[len(trees)][1]) if zk else None
            lay = st.layout(zk)
            layers = [tuple(_split(a) for a in _leaves(lay, cols_per_group, neg_mult, tcols, alpha[r], beta[r], d))]
            for _ in range(lay.depth):
                layers.append(_parent_layer(*layers[-1]))
            trees.append(layers[::-1])
    root_p = np.stack([tr[0][0][0] for tr in trees])
    root_q = np.stack([tr[0][1][0] for tr in trees])
    transcript.absorb_ext("lookup/root_q", root_q)

    per_st = _statement_trees(sts, zk)
    tree_lay = [st.layout(zk) for st in sts for _ in range(st.reps)]
    depth = max(logs)
    point: list = []
    claims = np.zeros((len(logs), 2, 4), dtype=np.uint32)  # each tree's (p, q) claim on its current layer
    claims[:, 1] = root_q  # the root numerator is 0
    logs_a = np.array(logs)
    layer_proofs = []
    leaf_vals: dict[int, tuple] = {}
    leaf_claims: dict[int, list] = {}
    pending = None  # (randomizer, z, μ) of the layer the next sumcheck produces (zero knowledge)
    for k in range(depth):
        active = np.nonzero(logs_a > k)[0]
        act = tuple(int(i) for i in active)
        lam_a = transcript.challenge_ext("lookup/lambda")
        lam = tuple(lam_a.tolist())
        live = np.array([-(-tree_lay[i].live(k + 1) // 2) for i in active], dtype=np.int64)
        children = _layer_tables([trees[i][k + 1] for i in active], live)
        for i in active:
            if logs[i] == k + 1:
                trees[i] = None  # its last layer is in children: free the tree
        claim = _combine(claims, active, lam_a)
        if zk:
            payer = None if pending is None else _Payback(pending[0], act, _lambda_powers(lam, len(act)), lam,
                                                          pending[1], pending[2])
            reader = _take_randomizer(masks, act)
            name, mask = masks.take(k + 1, _zk_degrees(k))
            layer, s_point, r_y = _prove_zk_layer(point, children, lam, claim, transcript, mask, live, reader,
                                                  payer)
            masks.add_claim(name, k + 1, ZK_Y_DEGREE,
                            np.array(s_point + [r_y], dtype=np.uint32).reshape(-1, 4), layer.mask_eval)
            if payer is not None:
                r1 = s_point[1] if k >= 2 else r_y
                masks.add_linear(payer.terms(s_point[0], r1), layer.final_evals[-1])
            fin = layer.final_evals[:1 + 4 * len(act)]
        else:
            layer, s_point = _prove_layer(point, children, lam, claim, transcript, live)
            fin = layer.final_evals
        del children
        layer_proofs.append(layer)
        mu_a = transcript.challenge_ext("lookup/mu")
        mu = tuple(mu_a.tolist())
        claims[active] = _next_claims_kernel(np.ascontiguousarray(fin), mu_a)
        point = s_point[::-1] + [mu]  # rounds bound the last variable first
        if zk:
            z = _MUL(r_y, _sub4(_ONE, r_y))
            pending = (reader, z, mu)
        for s_i, st in enumerate(sts):
            tr = per_st[s_i]
            if logs[tr[0]] != k + 1:
                continue  # not at its leaves yet
            if zk:
                leaf_claims[s_i] = _zk_leaf_claims(
                    st, challenges[s_i], point, z, [tuple(claims[i, 0].tolist()) for i in tr],
                    [tuple(claims[i, 1].tolist()) for i in tr], tr, reader, [d_masks[i][0] for i in tr])
            else:
                leaf_vals[s_i] = _leaf_values(st.layout(False), *witness[s_i], point)
                transcript.absorb_ext("lookup/columns", _leaf_message(leaf_vals[s_i]))
    if zk:
        return (LookupProof(root_q, layer_proofs, [], np.zeros((0, 4), dtype=np.uint32), True, root_p),
                [tuple(leaf_claims[s_i]) for s_i in range(len(sts))])
    out = []
    for s_i, st in enumerate(sts):
        evals, mval, pts = leaf_vals[s_i]
        cl = [S.EvalClaim(name, pts[g], evals[g][c].copy())
              for g in range(len(st.group_logs)) for c, name in enumerate(st.column_names(g))]
        cl.append(S.EvalClaim(MULTIPLICITY_COLUMN, pts[-1], mval.copy()))
        out.append(tuple(cl))
    evals = [ev for s_i in range(len(sts)) for ev in leaf_vals[s_i][0]]
    mult_evals = np.stack([leaf_vals[s_i][1] for s_i in range(len(sts))])
    return LookupProof(root_q, layer_proofs, evals, mult_evals, False, root_p), out


def _layer_tables(nodes: list, live: np.ndarray) -> np.ndarray:
    """(p0, p1, q0, q1) per tree for a layer sumcheck: node j's children are 2j and 2j + 1 (the new
    variable is the last one), the two halves of a split-stored layer (:func:`_parent_layer`), whose
    ``live[t]`` parents are copied; the tables end there (rounded up to an even length, which the
    round kernels read as padding (0, 0, 1, 1))."""
    size = max(1, max(u + (u & 1) for u in live.tolist()))
    tabs = np.zeros((4 * len(nodes), size, 4), dtype=np.uint32)
    for t, ((p, q), u) in enumerate(zip(nodes, live.tolist())):
        h = p.shape[0] // 2
        tabs[4 * t + 2:4 * t + 4, u:, 0] = 1
        tabs[4 * t, :u] = p[:u]
        tabs[4 * t + 1, :u] = p[h:h + u]
        tabs[4 * t + 2, :u] = q[:u]
        tabs[4 * t + 3, :u] = q[h:h + u]
    return tabs


def _split(a: np.ndarray) -> np.ndarray:
    """A layer in natural node order -> split order (node 2j + c at c·h + j)."""
    return np.concatenate([a[0::2], a[1::2]]) if a.shape[0] > 1 else a


def _leaf_values(lay: TreeLayout, cols_per_group, mult, point: list):
    """Each group's column values and the multiplicities at their blocks' points, and the points."""
    pts = [np.array(lay.block(i, point)[1], dtype=np.uint32).reshape(-1, 4) for i in range(len(lay.logs))]
    evals = [np.stack([_ext_eval(c, pt) for c in cols]) for cols, pt in zip(cols_per_group, pts)]
    return evals, _ext_eval(mult, pts[-1]), pts


def _ext_eval(col: np.ndarray, pt: np.ndarray) -> np.ndarray:
    """A base column's MLE at an extension point (a one-entry column: the entry itself)."""
    return mle.evaluate(col, pt) if pt.shape[0] else F.embed(col[:1])[0]


def _leaf_message(leaf_vals) -> np.ndarray:
    """What the transcript absorbs at a statement's leaves: column values, multiplicities."""
    evals, mval, _ = leaf_vals
    return np.concatenate([*evals, mval[None, :]])


def _prove_layer(point: list, children: "list[np.ndarray] | np.ndarray", lam, claim, transcript: Transcript,
                 live: np.ndarray | None = None) -> tuple[S.SumcheckProof, list]:
    """Prover of one GKR layer (without zero knowledge): the sumcheck over k = len(point) variables of
    ``eq(point, x) · sum_t λ^{2t} (p0 q1 + p1 q0 + λ q0 q1)(x)`` with tables ``children`` (p0, p1, q0, q1
    per active tree), rounds by :func:`_x_rounds`. Transcript per round: the values at 0, 2, 3, then
    the challenge; then the final values. ``live[t]``: entries of tree t's tables from which on all
    four are padding ``(0, 0, 1, 1)`` (default: none). Returns the proof and the challenges in round
    order (the point is their reverse)."""
    k = len(point)
    tabs = children if isinstance(children, np.ndarray) else np.stack(children).astype(np.uint32)
    live = np.full(tabs.shape[0] // 4, 1 << k, dtype=np.int64) if live is None else np.array(live, dtype=np.int64)
    rounds, s_point, eq_pref, _ = _x_rounds(point, tabs, lam, claim, transcript, live)
    finals = np.concatenate([np.array(eq_pref, dtype=np.uint32)[None, :], tabs[:, 0, :]])
    transcript.absorb_ext("lookup/final", finals)
    return S.SumcheckProof(rounds, finals), s_point


def _x_rounds(point: list, tabs: np.ndarray, lam, claim, transcript: Transcript, live: np.ndarray,
              mask: "S.MaskPolynomial | None" = None, rho=None, pay=None, width: int = 3):
    """The rounds over a GKR layer's ``k = len(point)`` variables, shared by both layer provers. Round j
    binds variable k − 1 − j (the last one left: padding, a suffix of each table, halves every round
    and is summed in closed form); eq(point, x) is split as eq(r_{k−1−j}, X) · eq(r_{<k−1−j}, ·)
    (Gruen), so the inner sum has degree 2 and is computed at X = 0, 2 only; its value at 1 follows
    from the running claim. With a ``mask`` the message is the round polynomial of ``f + ρ·g`` (the
    claim stays f's); ``pay(j, xs, r)`` adds a payback table's round polynomial given the challenges
    ``r`` so far (zero knowledge). Folds
    ``tabs`` in place. Returns the rounds ((k, width, 4), values at 0, 2, 3 in the first three), the
    challenges in round order, the eq value at them and ``Σ_j g_j(r_j)`` of the mask."""
    k = len(point)
    n_trees = tabs.shape[0] // 4
    lam_a = np.array(lam, dtype=np.uint32)
    tree_coeffs = np.array(_lambda_powers(lam, n_trees), dtype=np.uint32).reshape(-1, 4)
    pt_arr = np.array(point, dtype=np.uint32).reshape(-1, 4)
    bound = F.ezero()  # sum_{i<j} g_i(r_i)
    eq_pref = _ONE
    rounds = np.zeros((k, width, 4), dtype=np.uint32)
    s_point: list = []
    length = 1 << k
    for j in range(k):  # round j binds variable k − 1 − j (the last one left)
        rj = point[k - 1 - j]
        p0, p1, p2, p3 = (pay(j, [_ZERO4, _ONE, (2, 0, 0, 0), (3, 0, 0, 0)], s_point) if pay is not None
                          else [_ZERO4] * 4)
        claim_eq = _sub4(claim, _add4(p0, p1))  # the eq part's sum
        eqs = mle.eq_table(pt_arr[:k - 1 - j])
        h0, h2 = (tuple(v) for v in _gkr_round(tabs, length, eqs, lam_a, tree_coeffs, live).tolist())
        # claim_eq = eq_pref · ((1 - r_j) h(0) + r_j h(1))
        one_minus = _sub4(_ONE, rj)
        h1 = _MUL(_sub4(_MUL(claim_eq, F._einv4(eq_pref)), _MUL(one_minus, h0)), F._einv4(rj))
        h3 = _add4(_sub4(h0, _scale4(h1, 3)), _scale4(h2, 3))  # quadratic through 0, 1, 2
        e2 = _shift4(_scale4(rj, 3), 1)  # eq(r_j, 2) = 3 r_j - 1
        e3 = _shift4(_scale4(rj, 5), 2)  # eq(r_j, 3) = 5 r_j - 2
        g0 = _add4(_MUL(eq_pref, _MUL(one_minus, h0)), p0)
        g2 = _add4(_MUL(eq_pref, _MUL(e2, h2)), p2)
        g3 = _add4(_MUL(eq_pref, _MUL(e3, h3)), p3)
        rounds[j, :3] = (g0, g2, g3)
        if mask is not None:  # the message is the round polynomial of f + ρ·g; the claim stays f's
            m = mask.round_values(j, bound, 3).tolist()
            rounds[j, :3] = [_add4(v, _MUL(rho, m[x])) for v, x in ((g0, 0), (g2, 2), (g3, 3))]
        transcript.absorb_ext("lookup/round", rounds[j, :3])
        s_arr = transcript.challenge_ext("lookup/r")
        s = tuple(s_arr.tolist())
        s_point.append(s)
        if mask is not None:
            bound = F.eadd(bound, mask._univariate(j, s_arr))
        claim = S.interpolate_ints((g0, _sub4(claim, g0), g2, g3), s)
        eq_pref = _MUL(eq_pref, _eq1(rj, s))
        _fold_live(tabs, length, s_arr, live)
        length //= 2
        live = np.minimum((live + 1) // 2, length)
    return rounds, s_point, eq_pref, bound


def _prove_zk_layer(point: list, tabs: np.ndarray, lam, claim, transcript: Transcript, mask: S.MaskPolynomial,
                    live: np.ndarray, reader: _Randomizer, payer: "_Payback | None"
                    ) -> tuple[S.SumcheckProof, list, tuple]:
    """Prover of one zero-knowledge GKR layer ``k = len(point)``: the sumcheck over ``(x, y)`` of

        ½ · eq(point, x) · Σ_t λ^{2t} (p̂0 q̂1 + p̂1 q̂0 + λ q̂0 q̂1)(y, x)  +  2^−(k−1) · z · V(w)

    where the children are layer ``k + 1``'s randomized extensions (``reader``; on ``y ∈ {0, 1}`` they
    are the plain tables, so the ``x`` rounds are :func:`_prove_layer`'s) and the second term is layer
    ``k``'s own randomizer paid back (``payer``, k ≥ 1; :class:`_Payback`). Rounds bind ``x`` last
    variable first, then ``y`` (degree 4); all run on ``f + ρ·g`` with the committed mask ``g``.
    Final values: eq, then (p̂0, p̂1, q̂0, q̂1) at ``(r_y, s)`` per tree, then ``V(r_0, r_1)`` (k ≥ 1).
    Returns the proof, the ``x`` challenges in round order, and ``r_y``."""
    k = len(point)
    n_trees = tabs.shape[0] // 4
    coeffs = _lambda_powers(lam, n_trees)
    mask_sum = mask.hypercube_sum()
    transcript.absorb_ext("lookup/mask_sum", mask_sum)
    rho = tuple(transcript.challenge_ext("lookup/rho").tolist())
    pay = (lambda j, xs, r: payer.round_values(j, k + 1, r, xs)) if payer is not None else None
    x_rounds, s_point, eq_pref, bound = _x_rounds(point, tabs, lam, claim, transcript,
                                                  np.array(live, dtype=np.int64), mask, rho, pay, ZK_Y_DEGREE)
    rounds = np.zeros((k + 1, ZK_Y_DEGREE, 4), dtype=np.uint32)
    rounds[:k] = x_rounds
    # the y round: the children's randomizers appear (p̂ = p + y(1 − y) Φ), degree 4; all trees at once
    vals = np.ascontiguousarray(tabs[:, 0, :]).reshape(n_trees, 4, 4)  # (trees, p0 p1 q0 q1, 4)
    phis = reader.phis()  # the same layout
    coeff_a = np.array(coeffs, dtype=np.uint32).reshape(-1, 4)
    lam_a = np.array(lam, dtype=np.uint32)
    half_eq = _MUL(_HALF4, eq_pref)

    def hatted(u) -> np.ndarray:
        return F.eadd(vals, F.emul(phis, np.array(u, dtype=np.uint32)))

    def layer_sum(u):
        h = hatted(u)
        p0, p1, q0, q1 = h[:, 0], h[:, 1], h[:, 2], h[:, 3]
        term = F.eadd(F.eadd(F.emul(p0, q1), F.emul(p1, q0)), F.emul(lam_a, F.emul(q0, q1)))
        return _MUL(half_eq, tuple(F.edot_ext(coeff_a, term).tolist()))

    ys = [_ZERO4, (2, 0, 0, 0), (3, 0, 0, 0), (4, 0, 0, 0)]
    py = pay(k, ys, s_point) if pay is not None else [_ZERO4] * len(ys)
    fy = [_add4(layer_sum(((y[0] * (1 - y[0])) % F.P, 0, 0, 0)), p) for y, p in zip(ys, py)]
    m = mask.round_values(k, bound, ZK_Y_DEGREE).tolist()
    rounds[k] = [_add4(v, _MUL(rho, m[x])) for v, x in zip(fy, (0, 2, 3, 4))]
    transcript.absorb_ext("lookup/round", rounds[k])
    ry_arr = transcript.challenge_ext("lookup/r")
    r_y = tuple(ry_arr.tolist())
    z_y = _MUL(r_y, _sub4(_ONE, r_y))
    finals = [eq_pref] + [tuple(v) for v in hatted(z_y).reshape(-1, 4).tolist()]
    if payer is not None:
        finals.append(payer.value(s_point[0], s_point[1] if k >= 2 else r_y))
    finals_a = np.array(finals, dtype=np.uint32)
    transcript.absorb_ext("lookup/final", finals_a)
    proof = S.SumcheckProof(rounds, finals_a)
    proof.mask_sum = mask_sum
    proof.mask_eval = mask.evaluate(np.array(s_point + [r_y], dtype=np.uint32).reshape(-1, 4))
    transcript.absorb_ext("lookup/mask_eval", proof.mask_eval)
    return proof, s_point, r_y


def verify(st: LookupStatement, proof: LookupProof, transcript: Transcript) -> VerifyResult:
    """Check a lookup proof. On acceptance, ``result.claims`` lists the evaluation claims the commitment
    must settle: one per witness column (named by :meth:`LookupStatement.column_names`) and one for
    ``"multiplicities"``. Never raises."""
    return guarded(lambda: _verify([st], proof, transcript), "lookup")


def verify_many(sts: Sequence[LookupStatement], proof: LookupProof, transcript: Transcript,
                masks: "VerifierMasks | None" = None) -> VerifyResult:
    """Check a :func:`prove_many` proof; on acceptance the claims of every statement, statement after
    statement (each as :func:`verify` lists them). With ``masks``
    (:class:`blindproof.zk.iop.masks.VerifierMasks`) every layer with rounds MUST be masked: its mask
    value becomes a linear claim on the mask's committed table via ``masks.add_claim`` (named
    ``masks.next_name()``); without, a masked layer is rejected. Never raises."""
    return guarded(lambda: _verify(_statements(sts), proof, transcript, masks), "lookup")


def verify_bytes(st: "LookupStatement | Sequence[LookupStatement]", data: bytes,
                 transcript: Transcript) -> VerifyResult:
    """Parse then verify (one statement or several); malformed bytes are a rejection."""
    def run() -> VerifyResult:
        sts = _statements(st)
        try:
            proof = LookupProof.from_bytes(data, sts)
        except ProofFormatError as exc:
            return VerifyResult.reject(f"lookup: malformed proof: {exc}")
        return _verify(sts, proof, transcript)
    return guarded(run, "lookup")


def _verify(sts: Sequence[LookupStatement], proof: LookupProof, transcript: Transcript,
            masks: "VerifierMasks | None" = None) -> VerifyResult:
    zk = masks is not None
    logs = _tree_logs(sts, zk)
    n_trees = len(logs)
    depth = max(logs)
    n_groups = sum(len(st.group_logs) for st in sts)
    if proof.zk != zk:
        return VerifyResult.reject("lookup: a zero-knowledge lookup needs randomized layers and blinding leaves"
                                   if zk else "lookup: unexpected zero-knowledge (randomized) lookup")
    if proof.root_q.shape != (n_trees, 4) or len(proof.layers) != depth \
            or len(proof.column_evals) != (0 if zk else n_groups) \
            or proof.mult_evals.shape != ((0 if zk else len(sts)), 4):
        return VerifyResult.reject("lookup: proof shape does not match the statement")
    for k, layer in enumerate(proof.layers):
        shape = _layer_shape(k, sum(1 for n in logs if n > k), zk)
        if layer.round_evals.shape[:1] != (shape.n_vars,) or layer.round_evals.shape[1] < max(shape.round_degrees, default=0) \
                or layer.final_evals.shape != (shape.n_tables, 4):
            return VerifyResult.reject(f"lookup: layer {k}: proof shape does not match the statement")
        masked = zk
        if masked and (layer.mask_sum is None or layer.mask_eval is None):
            return VerifyResult.reject(f"lookup: layer {k}: a masked (zero-knowledge) layer is required")
        if not masked and (layer.mask_sum is not None or layer.mask_eval is not None):
            return VerifyResult.reject(f"lookup: layer {k}: unexpected mask")
    evals, e = [], 0
    if not zk:
        for st in sts:
            for _ in st.group_logs:
                ev = proof.column_evals[e]
                e += 1
                if ev.shape != (st.table.width, 4):
                    return VerifyResult.reject("lookup: wrong number of column values")
                evals.append(ev)
    d_names = [masks.next_name() for _ in logs] if zk else []
    challenges = [_draw_challenges(st, transcript) for st in sts]
    transcript.absorb_ext("lookup/root_q", proof.root_q)
    root_q = F._check_ext(proof.root_q, "root denominators")
    if any(not q.any() for q in root_q):  # q ≠ 0: then p = 0 means the fractions cancel
        return VerifyResult.reject("lookup: a root denominator is zero")
    mult_evals = None if zk else F._check_ext(proof.mult_evals, "multiplicity values")

    per_st = _statement_trees(sts, zk)
    claims = np.zeros((n_trees, 2, 4), dtype=np.uint32)  # (trees, 2, 4)
    claims[:, 1] = root_q  # every root numerator is 0 (witness and table fractions cancel)
    logs_a = np.array(logs)
    point: list = []
    leaf: dict[int, list] = {}
    out: list = []
    pending = None  # (randomizer, z, μ) of the layer the next sumcheck produces (zero knowledge)
    for k in range(depth):
        active = np.nonzero(logs_a > k)[0]
        act = tuple(int(i) for i in active)
        lam_a = transcript.challenge_ext("lookup/lambda")
        lam = tuple(lam_a.tolist())
        layer = proof.layers[k]
        claim = _combine(claims, active, lam_a)
        payer = reader = None
        if zk:
            payer = None if pending is None else _Payback(pending[0], act, _lambda_powers(lam, len(act)), lam,
                                                          pending[1], pending[2])
            reader = _name_randomizer(masks, act)
            mask_name = masks.next_name()
        rho = None
        if layer.mask_sum is not None:
            transcript.absorb_ext("lookup/mask_sum", layer.mask_sum)
            rho = tuple(transcript.challenge_ext("lookup/rho").tolist())
            claim = _add4(claim, _MUL(rho, _ints(layer.mask_sum)))
        s_point = []
        degrees = _zk_degrees(k) if zk else (3,) * k
        rvals = F._check_ext(layer.round_evals, "round values")
        for j, dj in enumerate(degrees):
            ev = [tuple(v) for v in rvals[j, :dj].tolist()]
            transcript.absorb_ext("lookup/round", layer.round_evals[j, :dj])
            s = tuple(transcript.challenge_ext("lookup/r").tolist())
            claim = S.interpolate_ints((ev[0], _sub4(claim, ev[0]), *ev[1:]), s)
            s_point.append(s)
        r_y = s_point.pop() if zk else None
        transcript.absorb_ext("lookup/final", layer.final_evals)
        fin_all = np.ascontiguousarray(F._check_ext(layer.final_evals, "final values"))
        fin = np.ascontiguousarray(fin_all[:1 + 4 * len(act)])
        expect = _compose(fin, lam_a)
        if zk:
            expect = _MUL(_HALF4, expect)
            if payer is not None:  # layer k's randomizer, paid back: 2^−(k−1) z V
                expect = _add4(expect, _MUL(_MUL(_pow2_inv(k - 1), payer.z), tuple(fin_all[-1].tolist())))
        if rho is not None:
            transcript.absorb_ext("lookup/mask_eval", layer.mask_eval)
            expect = _add4(expect, _MUL(rho, _ints(layer.mask_eval)))
        if expect != claim and k == 0:  # no rounds: the children do not combine to the root (0, q)
            return VerifyResult.reject("lookup: layer 0: the root is not (0, q) (the witness and table "
                                       "fractional sums differ, or q is wrong)")
        if expect != claim:
            return VerifyResult.reject(f"lookup: layer {k}: final values do not match the last round polynomial")
        eq = _ONE
        for a, b in zip(point[::-1], s_point):  # round j bound variable k − 1 − j
            eq = _MUL(eq, _eq1(a, b))
        if tuple(fin[0].tolist()) != eq:
            return VerifyResult.reject(f"lookup: layer {k}: wrong eq value")
        try:
            if zk:  # g(r) and the payback value: linear claims on the committed masks
                masks.add_claim(mask_name, k + 1, ZK_Y_DEGREE,
                                np.array(s_point + [r_y], dtype=np.uint32).reshape(-1, 4), layer.mask_eval)
                if payer is not None:
                    masks.add_linear(payer.terms(s_point[0], s_point[1] if k >= 2 else r_y), fin_all[-1])
        except F.FieldError:
            return VerifyResult.reject(f"lookup: layer {k}: a challenge without a geometric point")
        mu_a = transcript.challenge_ext("lookup/mu")
        mu = tuple(mu_a.tolist())
        claims[active] = _next_claims_kernel(fin, mu_a)
        point = s_point[::-1] + [mu]  # rounds bound the last variable first
        if zk:
            z = _MUL(r_y, _sub4(_ONE, r_y))
            pending = (reader, z, mu)
        e = 0
        for s_i, st in enumerate(sts):
            trees = per_st[s_i]
            if logs[trees[0]] == k + 1:  # this statement's trees reached their leaves
                leaf[s_i] = point
                if zk:
                    try:
                        leaf[s_i] = _zk_leaf_claims(st, challenges[s_i], point, z,
                                               [tuple(claims[i, 0].tolist()) for i in trees],
                                               [tuple(claims[i, 1].tolist()) for i in trees], trees, reader,
                                               [d_names[i] for i in trees])
                    except F.FieldError:
                        return VerifyResult.reject("lookup: a leaf point without a geometric point")
                else:
                    msg = np.concatenate([*evals[e:e + len(st.group_logs)], mult_evals[s_i][None, :]])
                    transcript.absorb_ext("lookup/columns", msg)
            e += len(st.group_logs)
    if zk:
        return VerifyResult.accept(tuple(c for s_i in range(len(sts)) for c in leaf[s_i]))
    e = 0
    for s_i, st in enumerate(sts):
        trees = per_st[s_i]
        res = _leaf_checks(st, challenges[s_i], leaf[s_i], [tuple(claims[i, 0].tolist()) for i in trees],
                           [tuple(claims[i, 1].tolist()) for i in trees], evals[e:e + len(st.group_logs)],
                           mult_evals[s_i])
        if isinstance(res, str):
            return VerifyResult.reject(res)
        out += res
        e += len(st.group_logs)
    return VerifyResult.accept(tuple(out))


def _leaf_checks(st: LookupStatement, challenges, point: list, ps: list, qs: list, evals, mval: np.ndarray
                 ) -> "list[S.EvalClaim] | str":
    """One statement's leaf checks: per repetition, the tree's final claim ``(p, q)`` at the leaf
    point against the blocks' values (column values, the public table, the multiplicities, the
    padding); its claims, or the reason for rejecting (without zero knowledge)."""
    alpha, beta = challenges
    lay = st.layout(False)
    n_groups = len(st.group_logs)
    evs = [[tuple(v) for v in F._check_ext(ev, "column values").tolist()] for ev in evals]
    blocks = [lay.block(i, point) for i in range(n_groups + 1)]
    pts = [np.array(pt, dtype=np.uint32).reshape(-1, 4) for _, pt in blocks]
    tvals = [tuple(st.table.column_mle(c, pts[-1]).tolist()) for c in range(st.table.width)]
    m = tuple(mval.tolist())
    pad = _ONE  # the padding's selector: 1 − every block's
    for sel, _ in blocks:
        pad = _sub4(pad, sel)
    p_want = _sub4((0, 0, 0, 0), _MUL(blocks[-1][0], m))
    for sel, _ in blocks[:-1]:
        p_want = _add4(p_want, sel)
    for r in range(st.reps):
        a, b = tuple(alpha[r].tolist()), tuple(beta[r].tolist())
        pw = [_ONE, b][: st.table.width]
        if ps[r] != p_want:
            return "lookup: leaf numerators do not match the groups and the multiplicities"
        q_want = _add4(pad, _MUL(blocks[-1][0], _sub4(a, _fold_row(tvals, pw))))
        for g in range(n_groups):
            q_want = _add4(q_want, _MUL(blocks[g][0], _sub4(a, _fold_row(evs[g], pw))))
        if qs[r] != q_want:
            return "lookup: leaf denominators do not match the column values and the public table"
    out = [S.EvalClaim(name, pts[g], evals[g][c].copy())
           for g in range(n_groups) for c, name in enumerate(st.column_names(g))]
    out.append(S.EvalClaim(MULTIPLICITY_COLUMN, pts[-1], mval.copy()))
    return out
