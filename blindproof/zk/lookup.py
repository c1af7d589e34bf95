"""logUp-GKR lookups: every witness row lies in a public table, with committed multiplicities.

For a challenge ``α`` (and ``β`` to fold multi-column rows ``(c_0, c_1, …) ↦ c_0 + β c_1 + …``):

    sum_{groups g} sum_i 1 / (α - w_g[i])  =  sum_j m[j] / (α - t[j])

Each side is a fractional sum, computed by a binary tree of fractions ``(p, q)`` with parent
``(p0 q1 + p1 q0, q0 q1)``. The prover sends the roots; the verifier checks that they add up to zero
and then walks all trees down together, one GKR layer at a time: layer ``k`` is a degree-3 sumcheck
over ``k`` variables of ``eq(r, x) · (p0 q1 + p1 q0 + λ q0 q1)`` (one such term pair per tree, batched
with powers of ``λ``), followed by a fresh coordinate ``μ`` that turns the four child values into a claim
on the next layer. No inverse column is ever committed. Trees of different depths share the random
point; a tree drops out when its leaves are reached.

At the leaves the verifier knows the numerators of witness trees (1) and computes the table's MLE
itself (public table), so what remains are evaluation claims on the witness columns (one per column,
at its group's leaf point) and on the multiplicity column. :func:`verify` returns them as
:class:`~blindproof.zk.sumcheck.EvalClaim` s for the commitment to open; the caller must have absorbed
the commitments of the witness columns AND of the multiplicities into the transcript before calling
:func:`prove` / :func:`verify` (the challenges ``α``, ``β`` are drawn inside).

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

from blindproof.zk import field as F
from blindproof.zk import mle
from blindproof.zk import sumcheck as S
from blindproof.zk._kernels import _P, e_mul
from blindproof.zk.encoding import ProofFormatError, Reader, Writer
from blindproof.zk.transcript import Transcript
from blindproof.zk.verdict import VerifyResult, guarded

MAX_TABLE_LOG = 24
MAX_GROUP_LOG = 30
MAX_WIDTH = 2
MAX_GROUPS = 14  # 1 + 4·(groups + 1) tables per layer sumcheck must stay within sumcheck.MAX_TABLES
_MAGIC = b"BPLK"
_VERSION = 1

_NJ = dict(cache=True, nogil=True, boundscheck=False)


# --- kernels -----------------------------------------------------------------------------------------

@nb.njit(**_NJ)
def _parent_layer(p, q):
    """Children (2h, 4) -> parents (h, 4): p = p0 q1 + p1 q0, q = q0 q1, children at j and j + h."""
    h = p.shape[0] // 2
    pp = np.empty((h, 4), dtype=np.uint32)
    qq = np.empty((h, 4), dtype=np.uint32)
    for j in range(h):
        a0, a1, a2, a3 = np.uint64(p[j, 0]), np.uint64(p[j, 1]), np.uint64(p[j, 2]), np.uint64(p[j, 3])
        b0, b1, b2, b3 = (np.uint64(p[j + h, 0]), np.uint64(p[j + h, 1]), np.uint64(p[j + h, 2]),
                          np.uint64(p[j + h, 3]))
        c0, c1, c2, c3 = np.uint64(q[j, 0]), np.uint64(q[j, 1]), np.uint64(q[j, 2]), np.uint64(q[j, 3])
        d0, d1, d2, d3 = (np.uint64(q[j + h, 0]), np.uint64(q[j + h, 1]), np.uint64(q[j + h, 2]),
                          np.uint64(q[j + h, 3]))
        x0, x1, x2, x3 = e_mul(a0, a1, a2, a3, d0, d1, d2, d3)
        y0, y1, y2, y3 = e_mul(b0, b1, b2, b3, c0, c1, c2, c3)
        pp[j, 0] = (x0 + y0) % _P
        pp[j, 1] = (x1 + y1) % _P
        pp[j, 2] = (x2 + y2) % _P
        pp[j, 3] = (x3 + y3) % _P
        z0, z1, z2, z3 = e_mul(c0, c1, c2, c3, d0, d1, d2, d3)
        qq[j, 0] = z0
        qq[j, 1] = z1
        qq[j, 2] = z2
        qq[j, 3] = z3
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
def _gkr_round(tabs, length, eqs, lam, tree_coeffs):
    """h(X) = sum_j eqs[j] · sum_t c_t (p0 q1 + q0 (p1 + λ q1))(X, j) at X = 0 and X = 2.

    ``tabs`` holds (p0, p1, q0, q1) per tree, each (≥ length, 4); ``eqs`` is eq(r_{>j}, ·) of length/2.
    p0 q1 + p1 q0 + λ q0 q1 is written with three products instead of four."""
    K = tabs.shape[0]
    n_trees = K // 4
    h = length // 2
    acc = np.zeros((2, 4), dtype=np.uint64)
    l0, l1, l2, l3 = np.uint64(lam[0]), np.uint64(lam[1]), np.uint64(lam[2]), np.uint64(lam[3])
    v = np.empty((4, 4), dtype=np.uint64)
    for j in range(h):
        w0, w1, w2, w3 = np.uint64(eqs[j, 0]), np.uint64(eqs[j, 1]), np.uint64(eqs[j, 2]), np.uint64(eqs[j, 3])
        for x in range(2):
            s0 = np.uint64(0)
            s1 = np.uint64(0)
            s2 = np.uint64(0)
            s3 = np.uint64(0)
            for t in range(n_trees):
                for f in range(4):
                    for c in range(4):
                        lo = np.uint64(tabs[4 * t + f, j, c])
                        if x == 0:
                            v[f, c] = lo
                        else:  # value at X = 2 is 2·hi - lo
                            hi = np.uint64(tabs[4 * t + f, j + h, c])
                            y = (hi + hi) % _P
                            v[f, c] = y - lo if y >= lo else y + _P - lo
                # a = p1 + λ q1 ; b = q0 · a ; c = p0 · q1 ; term = b + c
                m0, m1, m2, m3 = e_mul(v[3, 0], v[3, 1], v[3, 2], v[3, 3], l0, l1, l2, l3)
                a0 = (v[1, 0] + m0) % _P
                a1 = (v[1, 1] + m1) % _P
                a2 = (v[1, 2] + m2) % _P
                a3 = (v[1, 3] + m3) % _P
                b0, b1, b2, b3 = e_mul(v[2, 0], v[2, 1], v[2, 2], v[2, 3], a0, a1, a2, a3)
                c0, c1, c2, c3 = e_mul(v[0, 0], v[0, 1], v[0, 2], v[0, 3], v[3, 0], v[3, 1], v[3, 2], v[3, 3])
                t0 = (b0 + c0) % _P
                t1 = (b1 + c1) % _P
                t2 = (b2 + c2) % _P
                t3 = (b3 + c3) % _P
                if t > 0:
                    t0, t1, t2, t3 = e_mul(t0, t1, t2, t3, np.uint64(tree_coeffs[t, 0]),
                                           np.uint64(tree_coeffs[t, 1]), np.uint64(tree_coeffs[t, 2]),
                                           np.uint64(tree_coeffs[t, 3]))
                s0 += t0
                s1 += t1
                s2 += t2
                s3 += t3
            s0 %= _P
            s1 %= _P
            s2 %= _P
            s3 %= _P
            r0, r1, r2, r3 = e_mul(s0, s1, s2, s3, w0, w1, w2, w3)
            acc[x, 0] += r0
            acc[x, 1] += r1
            acc[x, 2] += r2
            acc[x, 3] += r3
    for x in range(2):
        for c in range(4):
            acc[x, c] %= _P
    return acc.astype(np.uint32)


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
        return LookupTable(f"range{bits}", (np.arange(1 << bits, dtype=np.uint32),))

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

@dataclass(frozen=True)
class LookupStatement:
    """Public shape: the table, and for each witness group its name and log2 length."""

    table: LookupTable
    group_names: tuple[str, ...]
    group_logs: tuple[int, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.group_logs) <= MAX_GROUPS or len(self.group_names) != len(self.group_logs):
            raise ValueError(f"LookupStatement: need 1..{MAX_GROUPS} named groups")
        if any(not 0 <= g <= MAX_GROUP_LOG for g in self.group_logs):
            raise ValueError(f"LookupStatement: group sizes must be 2^0..2^{MAX_GROUP_LOG}")
        if len(set(self.group_names)) != len(self.group_names):
            raise ValueError("LookupStatement: group names must be distinct")

    @property
    def tree_logs(self) -> tuple[int, ...]:
        """Depths of the fraction trees: the groups, then the table."""
        return tuple(self.group_logs) + (self.table.log_size,)

    def absorb(self, transcript: Transcript) -> None:
        """Bind the lookup's shape into the transcript."""
        transcript.absorb_bytes("lookup/table", self.table.digest_bytes())
        transcript.absorb_bytes("lookup/groups", struct.pack(f"<{len(self.group_logs)}I", *self.group_logs)
                                + "\0".join(self.group_names).encode())

    def column_names(self, g: int) -> list[str]:
        """Names of group g's columns in evaluation claims."""
        if self.table.width == 1:
            return [self.group_names[g]]
        return [f"{self.group_names[g]}[{c}]" for c in range(self.table.width)]


MULTIPLICITY_COLUMN = "multiplicities"


def _layer_spec(k: int, active: int, lam: np.ndarray) -> S.SumcheckSpec:
    """Layer-k sumcheck: tables [eq, then (p0, p1, q0, q1) per active tree]."""
    terms: list[tuple[object, tuple[int, ...]]] = []
    lam_c = F._check_ext(lam, "lam").reshape(4).tolist()  # powers of λ on Python ints (tiny products)
    coeff = F.eone()
    c = (1, 0, 0, 0)
    for t in range(active):
        b = 1 + 4 * t
        terms.append((coeff, (0, b, b + 3)))  # eq · p0 · q1
        terms.append((coeff, (0, b + 1, b + 2)))  # eq · p1 · q0
        c = F._emul4(c, lam_c)
        coeff = np.array(c, dtype=np.uint32)
        terms.append((coeff, (0, b + 2, b + 3)))  # λ eq · q0 · q1
        c = F._emul4(c, lam_c)
        coeff = np.array(c, dtype=np.uint32)
    return S.SumcheckSpec.make(k, 1 + 4 * active, terms)


@functools.lru_cache(maxsize=1024)
def _layer_shape(k: int, active: int) -> S.SumcheckSpec:
    """A layer spec for reading proofs, where only its shape matters (public, so built once)."""
    return _layer_spec(k, active, F.eone())


@dataclass
class LookupProof:
    """Roots, one sumcheck per GKR layer, and the witness columns' values at their leaf points."""

    roots: np.ndarray  # (trees, 2, 4): (p, q) per tree
    layers: list[S.SumcheckProof]
    column_evals: list[np.ndarray]  # per group: (width, 4)

    def to_bytes(self, st: LookupStatement) -> bytes:
        """Serialize (format version 1)."""
        w = Writer()
        w.header(_MAGIC, _VERSION)
        w.u8(st.table.log_size)
        w.u8(st.table.width)
        w.u8(len(st.group_logs))
        for g in st.group_logs:
            w.u8(g)
        w.ext_fixed(self.roots.reshape(-1, 4))
        for layer in self.layers:
            layer.write(w)
        for ev in self.column_evals:
            w.ext_fixed(ev)
        return w.getvalue()

    @staticmethod
    def from_bytes(data: bytes, st: LookupStatement) -> "LookupProof":
        """Parse for the expected statement; ProofFormatError on any mismatch or malformation."""
        depth = max(st.tree_logs)
        per_layer = 16 * (2 + 4 * (1 + 4 * len(st.tree_logs)) + 3 * depth)
        r = Reader(data, max_total=64 + 32 * len(st.tree_logs) + depth * per_layer
                   + 16 * MAX_WIDTH * len(st.group_logs))
        r.header(_MAGIC, (_VERSION,))
        shape = (r.u8(), r.u8(), r.u8())
        if shape != (st.table.log_size, st.table.width, len(st.group_logs)):
            raise ProofFormatError(f"lookup proof shape {shape} does not match the statement")
        logs = tuple(r.u8() for _ in st.group_logs)
        if logs != st.group_logs:
            raise ProofFormatError(f"lookup group sizes {logs} do not match the statement {st.group_logs}")
        roots = r.ext_fixed(2 * len(st.tree_logs)).reshape(-1, 2, 4)
        layers = []
        for k in range(depth):
            active = sum(1 for n in st.tree_logs if n > k)
            layers.append(S.SumcheckProof.read(r, _layer_shape(k, active)))
        evals = [r.ext_fixed(st.table.width) for _ in st.group_logs]
        r.finish()
        return LookupProof(roots, layers, evals)


# --- prover ------------------------------------------------------------------------------------------

def _draw_challenges(st: LookupStatement, transcript: Transcript) -> tuple[np.ndarray, np.ndarray]:
    st.absorb(transcript)
    alpha = transcript.challenge_ext("lookup/alpha")
    beta = transcript.challenge_ext("lookup/beta") if st.table.width > 1 else F.ezero()
    return alpha, beta


def prove(st: LookupStatement, groups: Sequence[Sequence[np.ndarray]], mult: np.ndarray,
          transcript: Transcript) -> LookupProof:
    """Prove that every row of every group is in ``st.table`` with multiplicities ``mult``
    (from :meth:`LookupTable.multiplicities`). The caller has absorbed the commitments of the group
    columns and of ``mult``. Returns the proof (its claims come out of :func:`verify`)."""
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

    alpha, beta = _draw_challenges(st, transcript)
    # leaves: witness (1, α - w), table (-m, α - t)
    leaves = [(F.eone(1 << n), _leaf_denominators(cols, alpha, beta))
              for cols, n in zip(cols_per_group, st.group_logs)]
    tcols = np.ascontiguousarray(np.stack(st.table.columns))
    leaves.append((F.embed(F.neg(mult)), _leaf_denominators(tcols, alpha, beta)))
    trees = []  # trees[i][k] = (p, q) at layer k (2^k nodes), k = 0 … depth
    for p, q in leaves:
        layers = [(p, q)]
        while layers[-1][0].shape[0] > 1:
            layers.append(_parent_layer(*layers[-1]))
        trees.append(layers[::-1])
    roots = np.stack([np.stack([tr[0][0][0], tr[0][1][0]]) for tr in trees])
    transcript.absorb_ext("lookup/roots", roots)

    logs = st.tree_logs
    depth = max(logs)
    point = F.ezero(0)
    claims = [(roots[i, 0], roots[i, 1]) for i in range(len(trees))]
    layer_proofs = []
    column_evals: list[np.ndarray] = [F.ezero(0)] * len(st.group_logs)
    for k in range(depth):
        active = [i for i, n in enumerate(logs) if n > k]
        lam = transcript.challenge_ext("lookup/lambda")
        spec = _layer_spec(k, len(active), lam)
        claim = _combine(claims, active, lam)
        children = []
        for i in active:
            p, q = trees[i][k + 1]
            h = 1 << k
            children += [p[:h], p[h:], q[:h], q[h:]]
        layer, s_point = _prove_layer(spec, point, children, lam, claim, transcript)
        layer_proofs.append(layer)
        mu = transcript.challenge_ext("lookup/mu")
        claims = _next_claims(claims, active, layer.final_evals, mu)
        point = np.concatenate([mu[None, :], s_point])
        for i in active:
            if logs[i] == k + 1 and i < len(st.group_logs):  # a witness tree reached its leaves
                column_evals[i] = np.stack([mle.evaluate(c, point) for c in cols_per_group[i]])
                transcript.absorb_ext("lookup/columns", column_evals[i])
    for i, n in enumerate(st.group_logs):
        if n == 0:  # a single-row group: its leaf point is empty
            column_evals[i] = np.stack([F.embed(c[0]) for c in cols_per_group[i]])
    return LookupProof(roots, layer_proofs, column_evals)


def _prove_layer(spec: S.SumcheckSpec, point: np.ndarray, children: list[np.ndarray], lam: np.ndarray,
                 claim: np.ndarray, transcript: Transcript) -> tuple[S.SumcheckProof, np.ndarray]:
    """Prover of one GKR layer sumcheck, message for message the same as ``sumcheck.prove`` on
    ``_layer_spec`` with tables ``[eq(point, ·)] + children``, but faster: eq(point, x) is split as
    eq(r_j, X) · eq(r_{>j}, x_{>j}) (Gruen), so the inner sum has degree 2 and is computed at X = 0, 2
    only; its value at 1 follows from the running claim. Returns the proof and the random point."""
    k = spec.n_vars
    spec.absorb(transcript)
    transcript.absorb_ext("sumcheck/claim", claim)
    tabs = np.stack(children).astype(np.uint32)
    n_trees = tabs.shape[0] // 4
    lam2 = F.emul(lam, lam)
    tree_coeffs = np.empty((n_trees, 4), dtype=np.uint32)
    c = F.eone()
    for t in range(n_trees):
        tree_coeffs[t] = c
        c = F.emul(c, lam2)
    eq_pref = F.eone()
    rounds = np.empty((k, 3, 4), dtype=np.uint32)
    s_point = np.empty((k, 4), dtype=np.uint32)
    length = 1 << k
    one = F.eone()
    for j in range(k):
        rj = point[j]
        eqs = mle.eq_table(point[j + 1:])
        h0, h2 = _gkr_round(tabs, length, eqs, lam, tree_coeffs)
        # claim = eq_pref · ((1 - r_j) h(0) + r_j h(1))
        one_minus = F.esub(one, rj)
        h1 = F.emul(F.esub(F.emul(claim, F.einv(eq_pref)), F.emul(one_minus, h0)), F.einv(rj))
        h3 = F.eadd(F.esub(h0, F.emul(F.ext(3), h1)), F.emul(F.ext(3), h2))  # quadratic through 0, 1, 2
        e2 = F.esub(F.emul(F.ext(3), rj), one)  # eq(r_j, 2) = 3 r_j - 1
        e3 = F.esub(F.emul(F.ext(5), rj), F.ext(2))  # eq(r_j, 3) = 5 r_j - 2
        g0 = F.emul(eq_pref, F.emul(one_minus, h0))
        g2 = F.emul(eq_pref, F.emul(e2, h2))
        g3 = F.emul(eq_pref, F.emul(e3, h3))
        rounds[j] = np.stack([g0, g2, g3])
        transcript.absorb_ext("sumcheck/round", rounds[j])
        s = transcript.challenge_ext("sumcheck/r")
        s_point[j] = s
        claim = S.interpolate(np.stack([g0, F.esub(claim, g0), g2, g3]), s)
        eq_pref = F.emul(eq_pref, F.eadd(F.emul(one_minus, F.esub(one, s)), F.emul(rj, s)))
        S._fold_all_ext(tabs, length, s)
        length //= 2
    finals = np.concatenate([eq_pref[None, :], tabs[:, 0, :]])
    transcript.absorb_ext("sumcheck/final", finals)
    return S.SumcheckProof(rounds, finals), s_point


def _ints(x: np.ndarray) -> list[int]:
    """One validated extension element as Python ints (for chains of tiny products)."""
    return F._check_ext(x, "x").reshape(4).tolist()


def _combine(claims, active, lam) -> np.ndarray:
    P = F.P
    lam_c = _ints(lam)
    coeff = (1, 0, 0, 0)
    t0 = t1 = t2 = t3 = 0
    for i in active:
        for v in claims[i]:  # p then q, each with the next power of λ
            m = F._emul4(coeff, _ints(v))
            t0, t1, t2, t3 = t0 + m[0], t1 + m[1], t2 + m[2], t3 + m[3]
            coeff = F._emul4(coeff, lam_c)
    return np.array((t0 % P, t1 % P, t2 % P, t3 % P), dtype=np.uint32)


def _next_claims(claims, active, finals, mu):
    P = F.P
    mu_c = _ints(mu)
    fin = F._check_ext(finals, "finals").tolist()
    out = list(claims)
    for t, i in enumerate(active):
        pair = []
        for lo, hi in (fin[1 + 4 * t], fin[2 + 4 * t]), (fin[3 + 4 * t], fin[4 + 4 * t]):
            m = F._emul4(mu_c, [(h - l) % P for h, l in zip(hi, lo)])  # lo + μ (hi - lo)
            pair.append(np.array([(l + x) % P for l, x in zip(lo, m)], dtype=np.uint32))
        out[i] = tuple(pair)
    return out


# --- verifier ----------------------------------------------------------------------------------------

def verify(st: LookupStatement, proof: LookupProof, transcript: Transcript) -> VerifyResult:
    """Check a lookup proof. On acceptance, ``result.claims`` lists the evaluation claims the commitment
    must settle: one per witness column (named by :meth:`LookupStatement.column_names`) and one for
    ``"multiplicities"``. Never raises."""
    return guarded(lambda: _verify(st, proof, transcript), "lookup")


def verify_bytes(st: LookupStatement, data: bytes, transcript: Transcript) -> VerifyResult:
    """Parse then verify; malformed bytes are a rejection."""
    def run() -> VerifyResult:
        try:
            proof = LookupProof.from_bytes(data, st)
        except ProofFormatError as exc:
            return VerifyResult.reject(f"lookup: malformed proof: {exc}")
        return _verify(st, proof, transcript)
    return guarded(run, "lookup")


def _verify(st: LookupStatement, proof: LookupProof, transcript: Transcript) -> VerifyResult:
    logs = st.tree_logs
    n_trees = len(logs)
    depth = max(logs)
    if proof.roots.shape != (n_trees, 2, 4) or len(proof.layers) != depth \
            or len(proof.column_evals) != len(st.group_logs):
        return VerifyResult.reject("lookup: proof shape does not match the statement")
    alpha, beta = _draw_challenges(st, transcript)
    transcript.absorb_ext("lookup/roots", proof.roots)

    # the fractions must cancel: sum_i p_i / q_i = 0 with every q_i ≠ 0
    qs = proof.roots[:, 1]
    if np.any(np.all(qs == 0, axis=-1)):
        return VerifyResult.reject("lookup: a root denominator is zero")
    total = F.ezero()
    for i in range(n_trees):
        term = proof.roots[i, 0]
        for j in range(n_trees):
            if j != i:
                term = F.emul(term, qs[j])
        total = F.eadd(total, term)
    if np.any(total != 0):
        return VerifyResult.reject("lookup: the witness and table fractional sums differ "
                                   "(a row is outside the table or the multiplicities are wrong)")

    claims = [(proof.roots[i, 0], proof.roots[i, 1]) for i in range(n_trees)]
    point = F.ezero(0)
    leaf_claims: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    out: list[S.EvalClaim] = []
    for i, n in enumerate(logs):
        if n == 0:
            leaf_claims[i] = (point, *claims[i])
    for k in range(depth):
        active = [i for i, n in enumerate(logs) if n > k]
        lam = transcript.challenge_ext("lookup/lambda")
        spec = _layer_spec(k, len(active), lam)
        res = S.verify(spec, _combine(claims, active, lam), proof.layers[k], transcript)
        if not res.ok:
            return VerifyResult.reject(f"lookup: layer {k}: {res.reason}")
        finals = proof.layers[k].final_evals
        s_point = res.claims[0].point
        if not np.array_equal(finals[0], mle.eq_eval(point, s_point) if k else F.eone()):
            return VerifyResult.reject(f"lookup: layer {k}: wrong eq value")
        mu = transcript.challenge_ext("lookup/mu")
        claims = _next_claims(claims, active, finals, mu)
        point = np.concatenate([mu[None, :], s_point])
        for i in active:
            if logs[i] == k + 1:
                leaf_claims[i] = (point, *claims[i])
                if i < len(st.group_logs):
                    if proof.column_evals[i].shape != (st.table.width, 4):
                        return VerifyResult.reject("lookup: wrong number of column values")
                    transcript.absorb_ext("lookup/columns", proof.column_evals[i])

    pw = _beta_powers(beta, st.table.width)
    for g in range(len(st.group_logs)):
        pt, p, q = leaf_claims[g]
        if not np.array_equal(p, F.eone()):
            return VerifyResult.reject(f"lookup: group {st.group_names[g]!r}: numerator is not 1")
        ev = proof.column_evals[g]
        if not np.array_equal(q, F.esub(alpha, _fold_row(ev, pw))):
            return VerifyResult.reject(f"lookup: group {st.group_names[g]!r}: column values do not match "
                                       "the leaf denominator")
        for c, name in enumerate(st.column_names(g)):
            out.append(S.EvalClaim(name, pt, ev[c].copy()))
    pt, p, q = leaf_claims[n_trees - 1]
    tvals = np.stack([st.table.column_mle(c, pt) for c in range(st.table.width)])
    if not np.array_equal(q, F.esub(alpha, _fold_row(tvals, pw))):
        return VerifyResult.reject("lookup: table denominator does not match the public table")
    out.append(S.EvalClaim(MULTIPLICITY_COLUMN, pt, F.eneg(p)))
    return VerifyResult.accept(tuple(out))


def _beta_powers(beta: np.ndarray, width: int) -> list[np.ndarray]:
    pw = [F.eone()]
    for _ in range(1, width):
        pw.append(F.emul(pw[-1], beta))
    return pw


def _fold_row(vals: np.ndarray, pw: list[np.ndarray]) -> np.ndarray:
    total = F.ezero()
    for v, b in zip(vals, pw):
        total = F.eadd(total, F.emul(v, b))
    return total
