"""Sumcheck for sums of products of multilinears (degree ≤ 3 per term), optionally zero-knowledge masked.

Statement: ``claim = sum_{x ∈ {0,1}^n} sum_t c_t · prod_{k ∈ term t} f_k(x)``. Each round binds the first
(most significant, see :mod:`blindproof.zk.iop.mle`) variable; the prover sends the round polynomial as
its values at ``0, 2, 3, …, d`` (the value at 1 follows from the running claim). Rounds run in the
base field while every table is still a base table (saves a factor ~4 on the first, largest round).
The proof ends with the prover's claimed values ``f_k(r)``; the verifier checks the composition and
returns them as evaluation claims for a commitment (or the caller) to settle.

Zero knowledge (Libra's zk-sumcheck): the prover samples ``g(x) = sum_i g_i(x_i)`` with random
univariate ``g_i`` of degree ``d`` and coefficients in the EXTENSION (:class:`MaskPolynomial`), commits
to its coefficients (with the PCS; the caller absorbs that commitment), and sends ``H = sum_x g(x)``.
After the challenge ``ρ`` the sumcheck runs on ``f + ρ·g`` with claim ``claim + ρ·H``; the final
claim includes ``ρ·g(r)``, and ``g(r)`` becomes a linear claim on the committed mask table
(:func:`mask_claim_terms`) that the hiding commitment settles without revealing anything else about
``g``. The round messages are then uniformly masked; the final values ``f_k(r)`` must be randomized
(:mod:`blindproof.zk.iop.blind`) and opened by the hiding commitment.

Transcript order (prover and verifier alike): shape parameters, claim, [mask sum, ρ], for each round
(round values, challenge), final values.
"""

from __future__ import annotations

import dataclasses
import functools
import struct
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numba as nb
import numpy as np

from blindproof.zk.field import babybear as F
from blindproof.zk.field._kernels import _P, e_mul, mulmod
from blindproof.zk.iop import _mask_kernels as MK
from blindproof.zk.field.encoding import ProofFormatError, Reader, Writer
from blindproof.zk.iop import mle
from blindproof.zk.iop.mle import _fold_base_to_ext, _fold_ext_inplace, is_ext_table, num_vars
from blindproof.zk.iop.transcript import Transcript
from blindproof.zk.verdict import VerifyResult, guarded

MAX_DEGREE = 3        # factors per term
MAX_ROUND_DEGREE = 15  # round polynomial degree (a factor blinded in that round counts 2 + its self-degree,
# at most 3: three such factors of a two-entry tensor's round make 15)
MAX_VARS = 40
MAX_TABLES = 64
_MAGIC = b"BPSC"
_VERSION = 2  # 2: per-round degrees (randomized extensions)

_NJ = dict(cache=True, nogil=True, boundscheck=False)


class SumcheckError(ValueError):
    """A sumcheck proof does not verify (raised internally; public verifiers return VerifyResult)."""


# --- kernels -----------------------------------------------------------------------------------------

@nb.njit(**_NJ)
def _round_ext(tabs, length, terms, degree, offs, use_offs):
    """Per-term sums over j < length/2 of prod_k f_k(X, x_j) at X = 0, 2..degree (X = 1 left zero).
    With ``use_offs`` table k's value at X gains ``offs[k, X]`` (a blinded table's round, constant in j)."""
    K = tabs.shape[0]
    T = terms.shape[0]
    D1 = degree + 1
    h = length // 2
    vals = np.empty((K, D1, 4), dtype=np.uint64)
    acc = np.zeros((T, D1, 4), dtype=np.uint64)
    for j in range(h):
        for k in range(K):
            for c in range(4):
                lo = np.uint64(tabs[k, j, c])
                hi = np.uint64(tabs[k, j + h, c])
                d = hi - lo if hi >= lo else hi + _P - lo
                vals[k, 0, c] = lo
                if D1 > 1:
                    vals[k, 1, c] = hi
                v = hi
                for x in range(2, D1):
                    v = v + d
                    if v >= _P:
                        v -= _P
                    vals[k, x, c] = v
                if use_offs:
                    for x in range(2, D1):
                        vals[k, x, c] = (vals[k, x, c] + np.uint64(offs[k, x, c])) % _P
        for t in range(T):
            k0 = terms[t, 0]
            k1 = terms[t, 1]
            k2 = terms[t, 2]
            for x in range(D1):
                if x == 1:  # g(1) = claim - g(0): never computed
                    continue
                a0, a1, a2, a3 = vals[k0, x, 0], vals[k0, x, 1], vals[k0, x, 2], vals[k0, x, 3]
                if k1 >= 0:
                    a0, a1, a2, a3 = e_mul(a0, a1, a2, a3, vals[k1, x, 0], vals[k1, x, 1],
                                           vals[k1, x, 2], vals[k1, x, 3])
                if k2 >= 0:
                    a0, a1, a2, a3 = e_mul(a0, a1, a2, a3, vals[k2, x, 0], vals[k2, x, 1],
                                           vals[k2, x, 2], vals[k2, x, 3])
                acc[t, x, 0] += a0
                acc[t, x, 1] += a1
                acc[t, x, 2] += a2
                acc[t, x, 3] += a3
    for t in range(T):
        for x in range(D1):
            for c in range(4):
                acc[t, x, c] %= _P
    return acc


@nb.njit(**_NJ)
def _round_base(tabs, length, terms, degree):
    """As ``_round_ext`` for base tables (K, m); returns base sums (T, degree+1)."""
    K = tabs.shape[0]
    T = terms.shape[0]
    D1 = degree + 1
    h = length // 2
    vals = np.empty((K, D1), dtype=np.uint64)
    acc = np.zeros((T, D1), dtype=np.uint64)
    for j in range(h):
        for k in range(K):
            lo = np.uint64(tabs[k, j])
            hi = np.uint64(tabs[k, j + h])
            d = hi - lo if hi >= lo else hi + _P - lo
            vals[k, 0] = lo
            if D1 > 1:
                vals[k, 1] = hi
            v = hi
            for x in range(2, D1):
                v = v + d
                if v >= _P:
                    v -= _P
                vals[k, x] = v
        for t in range(T):
            k0 = terms[t, 0]
            k1 = terms[t, 1]
            k2 = terms[t, 2]
            for x in range(D1):
                if x == 1:  # g(1) = claim - g(0): never computed
                    continue
                a = vals[k0, x]
                if k1 >= 0:
                    a = mulmod(a, vals[k1, x])
                if k2 >= 0:
                    a = mulmod(a, vals[k2, x])
                acc[t, x] += a
    for t in range(T):
        for x in range(D1):
            acc[t, x] %= _P
    return acc


@nb.njit(**_NJ)
def _round_poly(sums, coeffs, mvals, rho, claim):
    """A round's values at X = 0..d: ``Σ_t c_t · sums[t] + ρ · mvals`` with the value at 1 replaced
    by ``claim − value at 0`` (the prover's per-round arithmetic in one call)."""
    T, D1 = sums.shape[0], sums.shape[1]
    out = np.empty((D1, 4), dtype=np.uint32)
    r0, r1, r2, r3 = np.uint64(rho[0]), np.uint64(rho[1]), np.uint64(rho[2]), np.uint64(rho[3])
    for x in range(D1):
        a0, a1, a2, a3 = e_mul(r0, r1, r2, r3, np.uint64(mvals[x, 0]), np.uint64(mvals[x, 1]),
                               np.uint64(mvals[x, 2]), np.uint64(mvals[x, 3]))
        for t in range(T):
            c0, c1, c2, c3 = e_mul(np.uint64(coeffs[t, 0]), np.uint64(coeffs[t, 1]), np.uint64(coeffs[t, 2]),
                                   np.uint64(coeffs[t, 3]), np.uint64(sums[t, x, 0]), np.uint64(sums[t, x, 1]),
                                   np.uint64(sums[t, x, 2]), np.uint64(sums[t, x, 3]))
            a0, a1, a2, a3 = (a0 + c0) % _P, (a1 + c1) % _P, (a2 + c2) % _P, (a3 + c3) % _P
        out[x, 0], out[x, 1], out[x, 2], out[x, 3] = a0, a1, a2, a3
    if D1 > 1:
        for c in range(4):
            out[1, c] = (np.uint64(claim[c]) + _P - np.uint64(out[0, c])) % _P
    return out


@nb.njit(**_NJ)
def _fold_all_ext(tabs, length, r):
    for k in range(tabs.shape[0]):
        _fold_ext_inplace(tabs[k], length, r)


@nb.njit(**_NJ)
def _fold_all_base(tabs, r):
    K, m = tabs.shape
    out = np.empty((K, m // 2, 4), dtype=np.uint32)
    for k in range(K):
        out[k] = _fold_base_to_ext(tabs[k], r)
    return out


@nb.njit(**_NJ)
def _interpolate(evals, r):
    """Value at r (extension) of the polynomial with values evals[x] at x = 0..d (Lagrange)."""
    D1 = evals.shape[0]
    r0, r1, r2, r3 = np.uint64(r[0]), np.uint64(r[1]), np.uint64(r[2]), np.uint64(r[3])
    out = np.zeros(4, dtype=np.uint64)
    for i in range(D1):
        # L_i(r) = prod_{j≠i} (r - j) / (i - j)
        l0, l1, l2, l3 = np.uint64(1), np.uint64(0), np.uint64(0), np.uint64(0)
        denom = np.uint64(1)
        for j in range(D1):
            if j == i:
                continue
            jj = np.uint64(j)
            s0 = r0 - jj if r0 >= jj else r0 + _P - jj
            l0, l1, l2, l3 = e_mul(l0, l1, l2, l3, s0, r1, r2, r3)
            diff = np.uint64(i - j) if i > j else _P - np.uint64(j - i)
            denom = (denom * diff) % _P
        # invert the small denominator
        inv = np.uint64(1)
        b = denom
        e = _P - np.uint64(2)
        while e > 0:
            if e & np.uint64(1):
                inv = (inv * b) % _P
            b = (b * b) % _P
            e >>= np.uint64(1)
        w0, w1, w2, w3 = e_mul(l0, l1, l2, l3, np.uint64(evals[i, 0]), np.uint64(evals[i, 1]),
                               np.uint64(evals[i, 2]), np.uint64(evals[i, 3]))
        out[0] = (out[0] + (w0 * inv) % _P) % _P
        out[1] = (out[1] + (w1 * inv) % _P) % _P
        out[2] = (out[2] + (w2 * inv) % _P) % _P
        out[3] = (out[3] + (w3 * inv) % _P) % _P
    return out.astype(np.uint32)


def interpolate(evals: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Value at extension point ``r`` of the polynomial given by its values at ``0, 1, …, d``."""
    ev = F._check_ext(evals, "evals")
    return _interpolate(np.ascontiguousarray(ev.reshape(-1, 4)), F._check_ext(r, "r").reshape(4))


_INV_SMALL = tuple(pow(k, F.P - 2, F.P) if k else 0 for k in range(MAX_ROUND_DEGREE + 1))


def interpolate_ints(vals, r) -> tuple[int, int, int, int]:
    """:func:`interpolate` on canonical Python ints: ``vals`` are the values at 0..d (each four ints),
    ``r`` the point. Newton's form ``Δ0 + r (Δ1 + (r-1)/2 (Δ2 + (r-2)/3 (Δ3 …)))`` over the forward
    differences Δ costs d extension products (the verifier's per-round work)."""
    P = F.P
    diffs = [list(v) for v in vals]
    d = len(diffs) - 1
    if not 0 <= d < len(_INV_SMALL):
        raise ValueError(f"interpolate_ints: degree {d} outside 0..{len(_INV_SMALL) - 1}")
    delta = [diffs[0]]
    for _ in range(d):
        diffs = [[(b - a) for a, b in zip(x, y)] for x, y in zip(diffs, diffs[1:])]
        delta.append(diffs[0])
    acc = [c % P for c in delta[d]]
    for k in range(d - 1, -1, -1):
        inv = _INV_SMALL[k + 1]
        f = ((r[0] - k) * inv % P, r[1] * inv % P, r[2] * inv % P, r[3] * inv % P)  # (r - k)/(k + 1)
        m = F._emul4(f, acc)
        acc = [a + b for a, b in zip(delta[k], m)]
    return (acc[0] % P, acc[1] % P, acc[2] % P, acc[3] % P)


# --- statement ---------------------------------------------------------------------------------------

def _as_coeff(c) -> np.ndarray:
    if F._ints4(c) is not None:  # already one canonical extension element (the common case)
        return c
    if isinstance(c, (int, np.integer)):
        return F.ext(int(c))
    arr = F._check(np.asarray(c), "term coefficient")
    if arr.shape == (4,):
        return arr
    if arr.shape == ():
        return F.embed(arr)
    raise ValueError(f"term coefficient must be an int, a base element or an extension element, got {arr.shape}")


@dataclass(frozen=True)
class SumcheckSpec:
    """Public shape of a sumcheck: number of variables, tables, and terms ``(coefficient, factors)``.
    ``blinded`` lists ``(table, round, e)``: that table is a randomized extension ``T̃ + x_s(1 − x_s)·c``
    whose blinding variable ``x_s`` the sumcheck binds in that round (:class:`Blinder`), ``c`` of
    degree ``e`` in ``x_s`` (0 but for a tensor with no variable above ``x_s``), so the table has
    degree ``2 + e`` there. Round degrees are per round (:attr:`round_degrees`)."""

    n_vars: int
    n_tables: int
    terms: tuple[tuple[np.ndarray, tuple[int, ...]], ...]
    blinded: tuple[tuple[int, int, int], ...] = ()

    @staticmethod
    def make(n_vars: int, n_tables: int, terms: Sequence[tuple[object, Sequence[int]]],
             blinded: Sequence["int | tuple[int, int] | tuple[int, int, int]"] = ()) -> "SumcheckSpec":
        """Validate and normalise a spec (a blinded table given alone is blinded in the last round;
        a pair has self-degree 0)."""
        if not isinstance(n_vars, (int, np.integer)) or not 0 <= n_vars <= MAX_VARS:
            raise ValueError(f"n_vars must be in [0, {MAX_VARS}], got {n_vars!r}")
        if not 1 <= n_tables <= MAX_TABLES:
            raise ValueError(f"n_tables must be in [1, {MAX_TABLES}], got {n_tables}")
        if not terms:
            raise ValueError("a sumcheck needs at least one term")
        norm = []
        for coeff, factors in terms:
            factors = tuple(int(k) for k in factors)
            if not 1 <= len(factors) <= MAX_DEGREE:
                raise ValueError(f"each term needs 1..{MAX_DEGREE} factors, got {factors}")
            if any(not 0 <= k < n_tables for k in factors):
                raise ValueError(f"term factors {factors} out of range for {n_tables} tables")
            norm.append((_as_coeff(coeff), factors))
        if blinded and n_vars == 0:
            raise ValueError("a blinded table needs a sumcheck variable to blind")
        pairs = sorted({(int(b), n_vars - 1, 0) if isinstance(b, (int, np.integer))
                        else (int(b[0]), int(b[1]), int(b[2]) if len(b) > 2 else 0) for b in blinded})
        if any(not 0 <= k < n_tables or not 0 <= j < n_vars or not 0 <= e <= MAX_ROUND_DEGREE
               for k, j, e in pairs):
            raise ValueError(f"blinded (table, round, self-degree) {pairs} out of range")
        if len({k for k, _, _ in pairs}) != len(pairs):
            raise ValueError("a table is blinded in one round only")
        spec = SumcheckSpec(int(n_vars), int(n_tables), tuple(norm), tuple(pairs))
        if spec.degree > MAX_ROUND_DEGREE:
            raise ValueError(f"round degree {spec.degree} exceeds {MAX_ROUND_DEGREE}")
        return spec

    @functools.cached_property
    def round_degrees(self) -> tuple[int, ...]:
        """Degree of each round polynomial: the longest product, a table blinded in that round
        counting 2 plus its self-degree."""
        base = max(len(f) for _, f in self.terms)
        out = [base] * self.n_vars
        for j in {j for _, j, _ in self.blinded}:
            bl = {k: 2 + e for k, jj, e in self.blinded if jj == j}
            out[j] = max(sum(bl.get(k, 1) for k in f) for _, f in self.terms)
        return tuple(out)

    @property
    def degree(self) -> int:
        """The largest round degree (the mask's degree)."""
        return max(self.round_degrees, default=max(len(f) for _, f in self.terms))

    @property
    def round_values(self) -> int:
        """Extension values the rounds send: ``d_j`` per round (the value at 1 is implied)."""
        return sum(self.round_degrees)

    def term_array(self) -> np.ndarray:
        """Terms as an int64 (T, 3) array padded with -1 (for the kernels)."""
        arr = -np.ones((len(self.terms), MAX_DEGREE), dtype=np.int64)
        for t, (_, factors) in enumerate(self.terms):
            arr[t, : len(factors)] = factors
        return arr

    def compose(self, values: np.ndarray) -> np.ndarray:
        """``sum_t c_t · prod_k values[k]`` for per-table extension values (K, 4) -> (4,)."""
        if type(values) is np.ndarray and values.ndim == 2 and values.shape[1] == 4:
            # validated once, then composed on Python ints (a handful of tiny products per call)
            vals = F._check_ext(values, "values").tolist()
            P = F.P
            t0 = t1 = t2 = t3 = 0
            for coeff, factors in self.terms:
                prod = coeff.tolist()
                for k in factors:
                    prod = F._emul4(prod, vals[k])
                t0, t1, t2, t3 = t0 + prod[0], t1 + prod[1], t2 + prod[2], t3 + prod[3]
            return np.array((t0 % P, t1 % P, t2 % P, t3 % P), dtype=np.uint32)
        total = F.ezero()
        for coeff, factors in self.terms:
            prod = coeff
            for k in factors:
                prod = F.emul(prod, values[k])
            total = F.eadd(total, prod)
        return total

    def absorb(self, transcript: Transcript) -> None:
        """Bind the shape of the statement into the transcript."""
        transcript.absorb_bytes("sumcheck/shape", struct.pack("<III", self.n_vars, self.n_tables,
                                                              self.degree))
        if any(e for _, _, e in self.blinded):  # self-degrees: their own label (other proofs unchanged)
            transcript.absorb_bytes("sumcheck/blinded_deg", np.asarray(self.blinded, dtype="<i4").tobytes())
        elif self.blinded:
            transcript.absorb_bytes("sumcheck/blinded",
                                    np.asarray([(k, j) for k, j, _ in self.blinded], dtype="<i4").tobytes())
        transcript.absorb_field("sumcheck/terms", np.stack([c for c, _ in self.terms]))
        transcript.absorb_bytes("sumcheck/factors", self.term_array().astype("<i8").tobytes())


def hypercube_sum(spec: SumcheckSpec, tables: Sequence[np.ndarray]) -> np.ndarray:
    """The honest value of the sum (used by provers to state the claim and by tests)."""
    ext = [F.embed(t) if not is_ext_table(t) else t for t in tables]
    total = F.ezero()
    for coeff, factors in spec.terms:
        prod = ext[factors[0]]
        for k in factors[1:]:
            prod = F.emul(prod, ext[k])
        s = np.array([int(v) for v in np.sum(prod.astype(np.uint64), axis=0) % F.P], dtype=np.uint32)
        total = F.eadd(total, F.emul(coeff, s))
    return total


# --- zero-knowledge mask -----------------------------------------------------------------------------

@dataclass
class MaskPolynomial:
    """``g(x) = sum_i g_i(x_i)`` with ``g_i(X) = sum_k coeffs[i, k] X^k`` and EXTENSION coefficients
    (Libra's zk-sumcheck mask over the field the sumcheck runs in: base-field coefficients would mask
    one of the four base coordinates of each round value, and leave three in the clear)."""

    coeffs: np.ndarray  # (n, d+1, 4) uint32
    _suffix: list | None = field(default=None, init=False, repr=False, compare=False)

    @staticmethod
    def random(rng: np.random.Generator, n_vars: int, degree: "int | Sequence[int]") -> "MaskPolynomial":
        """A uniformly random mask for ``n_vars`` variables and round degree ``degree`` (or one degree
        per round: the coefficients above a round's degree are zero)."""
        degs = [int(degree)] * n_vars if isinstance(degree, (int, np.integer)) else [int(x) for x in degree]
        if len(degs) != n_vars:
            raise ValueError(f"{len(degs)} round degrees for {n_vars} variables")
        coeffs = F.random(rng, (n_vars, max(degs, default=0) + 1, 4))
        for i, dj in enumerate(degs):
            coeffs[i, dj + 1:] = 0
        return MaskPolynomial(coeffs)

    def fits(self, round_degrees: Sequence[int]) -> bool:
        """Whether no round's mask has a degree above that round's."""
        return all(not self.coeffs[i, dj + 1:].any() for i, dj in enumerate(round_degrees))

    @property
    def n_vars(self) -> int:
        return self.coeffs.shape[0]

    @property
    def degree(self) -> int:
        return self.coeffs.shape[1] - 1

    def _univariate(self, i: int, x: np.ndarray) -> np.ndarray:
        """g_i at extension x (Horner)."""
        return np.array(self._univariate_ints(i, F._check_ext(x, "x").reshape(4).tolist()), dtype=np.uint32)

    def _univariate_ints(self, i: int, x) -> tuple[int, int, int, int]:
        """g_i at extension x given as four canonical ints (Horner, compiled)."""
        if not 0 <= i < self.n_vars:
            raise IndexError(f"a mask of {self.n_vars} variables has no variable {i}")
        return MK.univariate(self.coeffs, i, x[0], x[1], x[2], x[3])

    def _g01(self) -> list[tuple[int, int, int, int]]:
        """g_i(0) + g_i(1) for every i (extension elements as ints)."""
        return [tuple(g) for g in self._g01_array().tolist()]

    def _g01_array(self) -> np.ndarray:
        """g_i(0) + g_i(1) for every i, as an (n, 4) int64 array of canonical residues."""
        c = self.coeffs.astype(np.int64)
        return (c.sum(axis=1) + c[:, 0]) % F.P

    def hypercube_sum(self) -> np.ndarray:
        """``H = sum_x g(x) = 2^{n-1} · sum_i (g_i(0) + g_i(1))``."""
        n = self.n_vars
        if n == 0:
            return F.ezero()
        P = F.P
        tot = self._g01_array().sum(axis=0).tolist()
        scale = pow(2, n - 1, P)
        return np.array([t % P * scale % P for t in tot], dtype=np.uint32)

    def evaluate(self, point: np.ndarray) -> np.ndarray:
        """``g(point)`` for an extension point (n, 4)."""
        pts = F._check_ext(point, "point")
        if pts.ndim != 2 or pts.shape[0] < self.n_vars:
            raise IndexError(f"a mask of {self.n_vars} variables evaluated at a point of shape {pts.shape}")
        return MK.evaluate(self.coeffs, np.ascontiguousarray(pts))

    def committed_table(self) -> np.ndarray:
        """The coefficients as the base table the PCS commits, ``T[c, i, k]`` row-major: ``c`` the
        extension coordinate (4), ``i`` the variable (padded to a power of two), ``k`` the power
        (:func:`mask_columns`, zero-padded). :func:`mask_claim_terms` opens ``g(r)`` from it."""
        rows = 1 << max(0, (self.n_vars - 1).bit_length())
        table = np.zeros((4, rows, mask_columns(self.degree)), dtype=np.uint32)
        table[:, : self.n_vars, : self.degree + 1] = np.transpose(self.coeffs, (2, 0, 1))
        return table.reshape(-1)

    def round_values(self, j: int, bound_sum: np.ndarray, degree: int) -> np.ndarray:
        """Values at X = 0..degree of the mask's round-j polynomial, given ``sum_{i<j} g_i(r_i)``."""
        n = self.n_vars
        P = F.P
        inv2 = (P + 1) // 2
        if self._suffix is None:  # sum_{i>=j} (g_i(0)+g_i(1)) per j, once per mask (the prover's rounds)
            acc, suf = (0, 0, 0, 0), [(0, 0, 0, 0)] * (n + 1)
            for i, g in reversed(list(enumerate(self._g01()))):
                acc = tuple((a + b) % P for a, b in zip(acc, g))
                suf[i] = acc
            self._suffix = suf
        count = pow(2, n - j - 1, P)  # assignments of the variables after j
        # every later variable contributes (g_i(0) + g_i(1)) / 2 per assignment on average
        const = np.array([t * count % P * inv2 % P for t in self._suffix[j + 1]], dtype=np.uint32)
        b = F._check_ext(bound_sum, "bound_sum").reshape(4)
        return MK.round_values(self.coeffs, j, b, degree, count, const)  # (b + g_j(x)) · count + const


# --- proof -------------------------------------------------------------------------------------------

@dataclass
class SumcheckProof:
    """Round values at 0, 2..d per round, the final table values, and the optional mask messages."""

    round_evals: np.ndarray  # (n, d, 4), d the largest round degree; round j sends its first d_j
    final_evals: np.ndarray  # (K, 4)
    mask_sum: np.ndarray | None = None
    mask_eval: np.ndarray | None = None

    def write(self, w: Writer, spec: "SumcheckSpec | SumcheckShape | None" = None) -> None:
        """Append this proof to a writer (shape is implied by the spec the reader passes)."""
        if spec is None:
            w.ext_fixed(self.round_evals.reshape(-1, 4))
        else:
            for j, dj in enumerate(spec.round_degrees):
                w.ext_fixed(self.round_evals[j, :dj])
        w.ext_fixed(self.final_evals)
        w.u8(0 if self.mask_sum is None else 1)
        if self.mask_sum is not None:
            w.ext_fixed(self.mask_sum.reshape(1, 4))
            w.ext_fixed(self.mask_eval.reshape(1, 4))

    @staticmethod
    def read(r: Reader, spec: "SumcheckSpec | SumcheckShape") -> "SumcheckProof":
        """Read a proof shaped by ``spec``."""
        n, d = spec.n_vars, spec.degree
        rounds = np.zeros((n, d, 4), dtype=np.uint32)
        for j, dj in enumerate(spec.round_degrees):
            rounds[j, :dj] = r.ext_fixed(dj)
        finals = r.ext_fixed(spec.n_tables)
        masked = r.u8(max_value=1)
        if masked:
            return SumcheckProof(rounds, finals, r.ext_fixed(1)[0], r.ext_fixed(1)[0])
        return SumcheckProof(rounds, finals)

    def to_bytes(self, spec: "SumcheckSpec | SumcheckShape") -> bytes:
        """Self-describing bytes: magic, version, shape (with the round degrees when they differ),
        body."""
        w = Writer()
        w.header(_MAGIC, _VERSION)
        _write_shape(w, SumcheckShape.of(spec))
        self.write(w, spec)
        return w.getvalue()

    @staticmethod
    def from_bytes(data: bytes, spec: "SumcheckSpec | SumcheckShape") -> "SumcheckProof":
        """Parse bytes written by :meth:`to_bytes` for the expected ``spec``; ProofFormatError otherwise."""
        want = SumcheckShape.of(spec)
        r = Reader(data, max_total=64 + want.n_vars + 16 * (want.round_values + want.n_tables + 2))
        r.header(_MAGIC, (_VERSION,))
        got = _read_shape(r)
        if got != want:
            raise ProofFormatError(f"proof shape {got.summary()} does not match the statement {want.summary()}")
        proof = SumcheckProof.read(r, want)
        r.finish()
        return proof


@dataclass(frozen=True)
class SumcheckShape:
    """What a sumcheck proof's bytes are shaped by: variables, tables, per-round degrees."""

    n_vars: int
    n_tables: int
    round_degrees: tuple[int, ...]
    degree: int

    @staticmethod
    def of(spec) -> "SumcheckShape":
        """The shape of a spec (or of any object with ``n_vars``, ``n_tables``, ``degree``)."""
        degs = tuple(getattr(spec, "round_degrees", (spec.degree,) * spec.n_vars))
        return SumcheckShape(int(spec.n_vars), int(spec.n_tables), degs, int(spec.degree))

    @property
    def round_values(self) -> int:
        return sum(self.round_degrees)

    def summary(self) -> tuple:
        return (self.n_vars, self.degree, self.n_tables) + ((self.round_degrees,) if self.uneven else ())

    @property
    def uneven(self) -> bool:
        return any(dj != self.degree for dj in self.round_degrees)


def _write_shape(w: Writer, shape: SumcheckShape) -> None:
    w.u8(shape.n_vars)
    w.u8(shape.degree)
    w.u8(shape.n_tables)
    w.u8(1 if shape.uneven else 0)
    if shape.uneven:
        for dj in shape.round_degrees:
            w.u8(dj)


def _read_shape(r: Reader) -> SumcheckShape:
    n, d, k = r.u8(max_value=MAX_VARS), r.u8(max_value=MAX_ROUND_DEGREE), r.u8(max_value=MAX_TABLES)
    uneven = r.u8(max_value=1)
    degs = tuple(r.u8(max_value=d) for _ in range(n)) if uneven else (d,) * n
    if uneven and all(dj == d for dj in degs):  # one byte form per proof: even degrees are not listed
        raise ProofFormatError("round degrees listed although they are all equal")
    return SumcheckShape(n, k, degs, d)


def shape_of_bytes(data: bytes) -> SumcheckShape | None:
    """The shape a serialized sumcheck proof declares (tools and tests); None if it is not one."""
    if not isinstance(data, (bytes, bytearray)) or bytes(data[:4]) != _MAGIC:
        return None
    r = Reader(bytes(data))
    try:
        r.header(_MAGIC, (_VERSION,))
        return _read_shape(r)
    except ProofFormatError:
        return None


@dataclass
class ProverOutput:
    """What the prover learns: the proof, the random point, and the tables' values there (K, 4)."""

    proof: SumcheckProof
    point: np.ndarray  # (n, 4)
    final_evals: np.ndarray


# --- prover ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Blinder:
    """Table ``table`` of a sumcheck is the randomized extension ``T̂ = T̃ + x_s(1 − x_s)·c`` of its
    multilinear values, ``x_s`` being the variable the sumcheck binds in round ``round`` (the last one
    when None); ``coeff(point)`` returns ``c`` (an extension element) from the challenges of the
    earlier rounds, so ``c`` must not depend on the variables bound later. ``T̂ = T̃`` on the
    hypercube, so the sum is unchanged; round ``round`` has degree 2 in that table, and its final
    value is ``T̂(r)``."""

    table: int
    coeff: Callable[[np.ndarray], np.ndarray]
    round: int | None = None
    self_degree: int = 0  # c's degree in x_s itself: ``coeff`` then gets this round's X (or r) last


_ZERO4 = np.zeros(4, dtype=np.uint32)


def _with_tail_sums(tail: _Tails, sums: np.ndarray, rem: int, d: int, n_terms: int) -> np.ndarray:
    """The kernel's per-term sums of the main terms, with the tail terms' closed forms, in spec order."""
    full = np.empty((n_terms, d + 1, 4), dtype=np.uint32)
    full[tail.main_terms] = sums
    ts = tail.round_sums(rem, d)
    for t, k in tail.tail_terms:
        full[t] = ts[k]
    return full


def _blinder_coeff(b: Blinder, point: np.ndarray, x: np.ndarray | None) -> np.ndarray:
    """``c`` of a blinder from the earlier challenges (and this round's ``x`` when ``c`` depends on it)."""
    if b.self_degree:
        point = np.concatenate([point, np.asarray(x, dtype=np.uint32).reshape(1, 4)])
    return F._check_ext(np.asarray(b.coeff(point)), "blinder").reshape(4)


def _blinded_round(n_tables: int, d: int, blinders: Sequence[Blinder], point: np.ndarray) -> np.ndarray:
    """Offsets ``X(1 − X)·c(X)`` at X = 0..d per table blinded in this round."""
    offs = np.zeros((n_tables, d + 1, 4), dtype=np.uint32)
    for b in blinders:
        if b.self_degree:
            for x in range(2, d + 1):  # 0 at X = 0 and 1
                offs[b.table, x] = F.emul(F.ext((x * (1 - x)) % F.P), _blinder_coeff(b, point, F.ext(x)))
        else:
            cl = _blinder_coeff(b, point, None).tolist()
            offs[b.table] = [[(x * (1 - x)) % F.P * ci % F.P for ci in cl] for x in range(d + 1)]
    return offs


class _Tails:
    """Tables given over the sumcheck's last ``m`` variables only (constant in the others), each the
    single factor of its terms: their round sums are closed forms, so they are never stored at full
    size, and they leave the other tables on the base-field fast path. The proof is the same as with
    the tables expanded."""

    def __init__(self, spec: SumcheckSpec, tails: Mapping[int, np.ndarray]):
        n = spec.n_vars
        self.tabs = {}
        for k, t in tails.items():
            t = np.asarray(t, dtype=np.uint32)
            if not (is_ext_table(t) and num_vars(t) <= n):
                raise ValueError(f"tail table {k} must be an extension table over at most {n} variables")
            self.tabs[int(k)] = t.copy()
        for _, factors in spec.terms:
            if len(factors) > 1 and set(factors) & set(self.tabs):
                raise ValueError("a tail table must be the only factor of its terms")
        if set(self.tabs) & {k for k, _, _ in spec.blinded}:
            raise ValueError("a tail table cannot be blinded")
        self.main = [k for k in range(spec.n_tables) if k not in self.tabs]
        where = {k: i for i, k in enumerate(self.main)}
        self.main_terms = [t for t, (_, f) in enumerate(spec.terms) if f[0] not in self.tabs]
        self.tail_terms = [(t, f[0]) for t, (_, f) in enumerate(spec.terms) if f[0] in self.tabs]
        arr = -np.ones((len(self.main_terms), MAX_DEGREE), dtype=np.int64)
        for i, t in enumerate(self.main_terms):
            f = spec.terms[t][1]
            arr[i, : len(f)] = [where[k] for k in f]
        self.term_array = arr

    def round_sums(self, rem: int, d: int) -> dict[int, np.ndarray]:
        """Per tail table, ``Σ L(X, rest)`` at X = 0..d with ``rem`` variables left unbound."""
        out = {}
        for k, t in self.tabs.items():
            m = num_vars(t)
            if rem > m:  # X is not one of L's variables: a constant, 2^(rem−1−m) · Σ L
                tot = F.emul(F.ext(pow(2, rem - 1 - m, F.P)), F.esum(t))
                out[k] = np.repeat(tot[None], d + 1, axis=0)
            else:  # X is L's first variable
                h = t.shape[0] // 2
                s0, s1 = F.esum(t[:h]), F.esum(t[h:])
                out[k] = np.stack([F.eadd(F.emul(F.ext((1 - x) % F.P), s0), F.emul(F.ext(x), s1))
                                   for x in range(d + 1)])
        return out

    def fold(self, rem: int, r: np.ndarray) -> None:
        """Bind the first of ``rem`` unbound variables to ``r`` (a tail table only where it is its own)."""
        for k, t in self.tabs.items():
            if num_vars(t) == rem:
                h = t.shape[0] // 2
                self.tabs[k] = F.eadd(t[:h], F.emul(r[None], F.esub(t[h:], t[:h])))


def prove(spec: SumcheckSpec, tables: Sequence[np.ndarray | None], claim: np.ndarray, transcript: Transcript,
          mask: MaskPolynomial | None = None, blinders: Sequence[Blinder] = (),
          tails: Mapping[int, np.ndarray] | None = None) -> ProverOutput:
    """Prove ``claim = sum_x sum_t c_t prod_k tables[k](x)``; tables are consumed read-only. With
    ``blinders``, those tables are randomized extensions in the last variable (see :class:`Blinder`).
    ``tails``: tables given over the last few variables only (see :class:`_Tails`; their entry in
    ``tables`` is ignored)."""
    if len(tables) != spec.n_tables:
        raise ValueError(f"spec has {spec.n_tables} tables, got {len(tables)}")
    n, d = spec.n_vars, spec.degree
    tail = _Tails(spec, tails) if tails else None
    if tail is not None:
        if not tail.main:
            raise ValueError("a sumcheck needs at least one table that is not a tail")
        where = {k: i for i, k in enumerate(tail.main)}
        for b in blinders:
            if b.table not in where:
                raise ValueError(f"blinded table {b.table} is a tail table")
        blinders = [dataclasses.replace(b, table=where[b.table]) for b in blinders]
        tables = [tables[k] for k in tail.main]
    for k, t in enumerate(tables):
        if num_vars(t) != n:
            raise ValueError(f"table {k} has {num_vars(t)} variables, spec says {n}")
    if len(blinders) != len(spec.blinded):
        raise ValueError(f"{len(blinders)} blinders, the spec says {spec.blinded}")
    by_round: dict[int, list[Blinder]] = {}
    for b in blinders:
        j = n - 1 if b.round is None else int(b.round)
        if (tail.main[b.table] if tail else b.table, j, b.self_degree) not in spec.blinded:
            raise ValueError(f"blinder of table {b.table} in round {j}, the spec says {spec.blinded}")
        by_round.setdefault(j, []).append(b)
    if mask is not None and (mask.n_vars != n or mask.degree > d or not mask.fits(spec.round_degrees)):
        raise ValueError(f"mask shape (n={mask.n_vars}, d={mask.degree}) does not fit the spec (n={n}, d={d})")
    claim = F._check_ext(claim, "claim").reshape(4)
    terms = spec.term_array() if tail is None else tail.term_array
    coeffs = np.stack([c for c, _ in spec.terms])
    n_main = spec.n_tables if tail is None else len(tail.main)

    spec.absorb(transcript)
    transcript.absorb_ext("sumcheck/claim", claim)
    rho = None
    if mask is not None:
        mask_sum = mask.hypercube_sum()
        transcript.absorb_ext("sumcheck/mask_sum", mask_sum)
        rho = transcript.challenge_ext("sumcheck/rho")
        claim = F.eadd(claim, F.emul(rho, mask_sum))

    base_mode = all(not is_ext_table(t) for t in tables) and 0 not in by_round
    if base_mode:
        tabs = np.stack([np.asarray(t, dtype=np.uint32) for t in tables])
    else:
        tabs = np.stack([t if is_ext_table(t) else F.embed(t) for t in tables]).astype(np.uint32)
    length = 1 << n
    rounds = np.empty((n, d, 4), dtype=np.uint32)
    point = np.empty((n, 4), dtype=np.uint32)
    bound_mask = F.ezero()
    no_offs = np.zeros((1, 1, 4), dtype=np.uint32)
    rounds[:] = 0
    for j in range(n):
        special = by_round.get(j)
        dj = spec.round_degrees[j]
        if base_mode:
            sums = F.embed(_round_base(tabs, length, terms, dj).astype(np.uint32))
        elif special:
            offs = _blinded_round(n_main, dj, special, point[:j])
            sums = _round_ext(tabs, length, terms, dj, offs, True).astype(np.uint32)
        else:
            sums = _round_ext(tabs, length, terms, dj, no_offs, False).astype(np.uint32)
        if tail is not None:
            sums = _with_tail_sums(tail, sums, n - j, dj, len(spec.terms))
        mvals = mask.round_values(j, bound_mask, dj) if mask is not None else np.zeros((dj + 1, 4), np.uint32)
        vals = _round_poly(np.ascontiguousarray(sums, dtype=np.uint32), coeffs, mvals,
                           rho if mask is not None else _ZERO4, claim)
        rounds[j, 0] = vals[0]
        rounds[j, 1:dj] = vals[2:]
        transcript.absorb_ext("sumcheck/round", rounds[j, :dj])
        r = transcript.challenge_ext("sumcheck/r")
        point[j] = r
        claim = interpolate(vals, r)
        if mask is not None:
            bound_mask = F.eadd(bound_mask, mask._univariate(j, r))
        if base_mode:
            tabs = _fold_all_base(tabs, r)
            base_mode = False
        else:
            _fold_all_ext(tabs, length, r)
        if special:  # T̂(.., r, ..) = T̃(.., r, ..) + r(1 − r)·c(r) on every entry left
            zc = F.emul(r, F.esub(F.eone(), r))
            for b in special:
                c = _blinder_coeff(b, point[:j], r)
                tabs[b.table, :length // 2] = F.eadd(tabs[b.table, :length // 2], F.emul(zc, c)[None, :])
        if tail is not None:
            tail.fold(n - j, r)
        length //= 2
    if n == 0:
        tabs = tabs if tabs.ndim == 3 else F.embed(tabs)
    finals = np.ascontiguousarray(tabs[:, 0, :])
    if tail is not None:
        full = np.empty((spec.n_tables, 4), dtype=np.uint32)
        full[tail.main] = finals
        for k, t in tail.tabs.items():
            full[k] = t[0]
        finals = full
    transcript.absorb_ext("sumcheck/final", finals)
    proof = SumcheckProof(rounds, finals)
    if mask is not None:
        proof.mask_sum = mask_sum
        proof.mask_eval = mask.evaluate(point)
        transcript.absorb_ext("sumcheck/mask_eval", proof.mask_eval)
    return ProverOutput(proof, point, finals)


# --- verifier ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EvalClaim:
    """A claim ``column(point) = value`` to be settled by a commitment opening or by the verifier."""

    column: str
    point: np.ndarray  # (n, 4)
    value: np.ndarray  # (4,)


def verify_rounds(spec: SumcheckSpec, claim: np.ndarray, proof: SumcheckProof,
                  transcript: Transcript) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Replay the rounds; returns (point, final claim on f + ρ·g, ρ or None). Raises SumcheckError.
    Low level: the caller must check the final claim, and settle ``g(r)`` if the proof is masked."""
    n, d = spec.n_vars, spec.degree
    if proof.round_evals.shape != (n, d, 4) or proof.final_evals.shape != (spec.n_tables, 4):
        raise SumcheckError("proof shape does not match the statement")
    for j, dj in enumerate(spec.round_degrees):
        if proof.round_evals[j, dj:].any():
            raise SumcheckError("round values beyond the round's degree")
    claim = F._check_ext(claim, "claim").reshape(4)
    spec.absorb(transcript)
    transcript.absorb_ext("sumcheck/claim", claim)
    rho = None
    if proof.mask_sum is not None:
        transcript.absorb_ext("sumcheck/mask_sum", proof.mask_sum)
        rho = transcript.challenge_ext("sumcheck/rho")
        claim = F.eadd(claim, F.emul(rho, proof.mask_sum))
    point = np.empty((n, 4), dtype=np.uint32)
    rounds = F._check_ext(proof.round_evals, "round values").tolist()
    cur = claim.tolist()
    P = F.P
    for j in range(n):
        dj = spec.round_degrees[j]
        transcript.absorb_ext("sumcheck/round", proof.round_evals[j, :dj])
        r = transcript.challenge_ext("sumcheck/r")
        ev = rounds[j][:dj]
        g1 = [(c - e) % P for c, e in zip(cur, ev[0])]  # g(0) + g(1) = claim by construction
        cur = interpolate_ints([ev[0], g1, *ev[1:]], r.tolist())
        point[j] = r
    claim = np.array(cur, dtype=np.uint32)
    transcript.absorb_ext("sumcheck/final", proof.final_evals)
    if proof.mask_eval is not None:
        transcript.absorb_ext("sumcheck/mask_eval", proof.mask_eval)
    return point, claim, rho


def verify(spec: SumcheckSpec, claim: np.ndarray, proof: SumcheckProof, transcript: Transcript,
           table_names: Sequence[str] | None = None, masked: bool = False) -> VerifyResult:
    """Verify a sumcheck proof. On success the result carries :class:`EvalClaim` s: one per table
    (``table_names[k]`` at the random point) and, if ``masked``, ``"mask"`` with the value ``g(r)``.
    ``masked`` states whether the protocol uses a zero-knowledge mask: a proof with the other shape is
    rejected (an unexpected mask would be an unconstrained value unless someone settles its claim).
    Never raises."""
    names = list(table_names) if table_names is not None else [f"table{k}" for k in range(spec.n_tables)]

    def run() -> VerifyResult:
        if len(names) != spec.n_tables:
            return VerifyResult.reject("sumcheck: wrong number of table names")
        if masked and (proof.mask_sum is None or proof.mask_eval is None):
            return VerifyResult.reject("sumcheck: a masked (zero-knowledge) proof is required")
        if not masked and (proof.mask_sum is not None or proof.mask_eval is not None):
            return VerifyResult.reject("sumcheck: unexpected mask in an unmasked sumcheck")
        point, final, rho = verify_rounds(spec, claim, proof, transcript)
        expect = spec.compose(proof.final_evals)
        if rho is not None:
            expect = F.eadd(expect, F.emul(rho, proof.mask_eval))
        if not np.array_equal(expect, final):
            return VerifyResult.reject("sumcheck: final values do not match the last round polynomial")
        claims = [EvalClaim(nm, point, proof.final_evals[k].copy()) for k, nm in enumerate(names)]
        if proof.mask_eval is not None:
            claims.append(EvalClaim("mask", point, proof.mask_eval.copy()))
        return VerifyResult.accept(tuple(claims))

    return guarded(run, "sumcheck")


def verify_bytes(spec: SumcheckSpec, claim: np.ndarray, data: bytes, transcript: Transcript,
                 table_names: Sequence[str] | None = None, masked: bool = False) -> VerifyResult:
    """Parse and verify serialized proof bytes; malformed input is a rejection, never an exception."""
    def run() -> VerifyResult:
        try:
            proof = SumcheckProof.from_bytes(data, spec)
        except ProofFormatError as exc:
            return VerifyResult.reject(f"sumcheck: malformed proof: {exc}")
        return verify(spec, claim, proof, transcript, table_names, masked)

    return guarded(run, "sumcheck")


# --- opening the mask: g(r) as a linear claim on the committed coefficient table ----------------------

def mask_columns(degree: int) -> int:
    """Columns (powers) of a mask's committed coefficient table: the powers of two above its degree,
    at least 4 (4 up to degree 3, 8 up to 7, 16 up to 15)."""
    if not 0 <= degree <= MAX_ROUND_DEGREE:
        raise ValueError(f"mask degree {degree} outside 0..{MAX_ROUND_DEGREE}")
    return max(4, 1 << degree.bit_length())


def _geometric_points(ys: list, bits: int) -> list[tuple[list, tuple]]:
    """Per ``y`` (four ints), ``(c, λ)`` with ``y^k = λ · eq(c, k)`` for ``k < 2^bits`` (MSB first):
    ``y^k = Π_b (y^(2^b))^(k_b)`` and each factor is ``(1 + y^(2^b))·eq(c_b, k_b)`` for
    ``c_b = y^(2^b) / (1 + y^(2^b))``; so ``λ = Π_b (1 + y^(2^b))``. One inversion for all of them
    (Montgomery's trick). FieldError in the negligible case ``y^(2^b) = −1``."""
    P, mul = F.P, F._emul4
    pows, ones = [], []
    for y in ys:
        pw = [tuple(y)]
        for _ in range(bits - 1):
            pw.append(mul(pw[-1], pw[-1]))
        pows.append(pw)
        ones.append([((a[0] + 1) % P, a[1], a[2], a[3]) for a in pw])
    flat = [o for os_ in ones for o in os_]
    prefix, acc = [], (1, 0, 0, 0)
    for o in flat:
        prefix.append(acc)
        acc = mul(acc, o)
    inv = F._einv4(acc)  # FieldError when some 1 + y^(2^b) is 0
    invs = [None] * len(flat)
    for j in range(len(flat) - 1, -1, -1):
        invs[j] = mul(inv, prefix[j])
        inv = mul(inv, flat[j])
    out, j = [], 0
    for pw, os_ in zip(pows, ones):
        lam, c = (1, 0, 0, 0), []
        for b in range(bits):
            lam = mul(lam, os_[b])
        for q in reversed(range(bits)):  # MSB first: the top bit carries y^(2^(bits-1))
            c.append(mul(pw[q], invs[j + q]))
        j += bits
        out.append((c, lam))
    return out


_X = (0, 1, 0, 0)  # the generator x: coordinate c of a coefficient is its x^c part


@functools.lru_cache(maxsize=1)
def _coordinate_point() -> tuple[tuple, tuple]:
    (c, lam), = _geometric_points([_X], 2)
    return tuple(c), lam


@functools.lru_cache(maxsize=64)
def _row_bits(ell: int, i: int) -> tuple:
    return tuple((((i >> (ell - 1 - q)) & 1), 0, 0, 0) for q in range(ell))


def mask_claim_terms(name: str, n_vars: int, degree: int, point: np.ndarray) -> tuple:
    """The terms ``(tensor, point, coefficient)`` of the linear claim ``g(point) = Σ terms`` on the
    committed table ``name`` of a mask with ``n_vars`` variables and ``degree``: for each variable ``i``,
    ``g_i(r_i) = Σ_{c,k} x^c r_i^k T[c, i, k]`` is ONE evaluation of ``T̃`` scaled (geometric points for
    ``c`` and ``k``, the bits of ``i``). Settled by the PCS with the other claims: nothing about the
    mask but ``g(point)`` is revealed (no reduction sumcheck)."""
    pt = F._check_ext(point, "point")
    if pt.shape[0] != n_vars:
        raise ValueError(f"a mask of {n_vars} variables evaluated at a point of {pt.shape[0]}")
    return mask_var_terms(name, n_vars, degree, [(i, x, _ONE4) for i, x in enumerate(pt.tolist())])


_ONE4 = (1, 0, 0, 0)


def mask_var_terms(name: str, n_vars: int, degree: int, items: Sequence) -> tuple:
    """The terms of ``Σ coef · g_i(x)`` over ``items`` ``(i, x, coef)`` (``x``, ``coef``: extension
    elements as four ints) on a mask's committed table: one scaled evaluation of the table per item,
    as in :func:`mask_claim_terms` (which is the case ``coef = 1``, one item per variable). Items
    with coefficient 0 are left out (the PCS refuses zero coefficients; they add nothing)."""
    ell = max(0, (n_vars - 1).bit_length())
    kbits = mask_columns(degree).bit_length() - 1
    ce, le = _coordinate_point()
    items = [(int(i), tuple(x), tuple(c)) for i, x, c in items if any(c)]
    if any(not 0 <= i < n_vars for i, _, _ in items):
        raise ValueError(f"a mask of {n_vars} variables has no variable outside 0..{n_vars - 1}")
    if not items:
        return ()
    xs = np.array([x for _, x, _ in items], dtype=np.int64)
    cs = np.array([c for _, _, c in items], dtype=np.int64)
    if xs.min() < 0 or xs.max() >= F.P or cs.min() < 0 or cs.max() >= F.P:
        raise F.FieldError("mask_var_terms: points and coefficients must be canonical extension elements")
    coords, coefs, bad = MK.claim_terms(xs.astype(np.uint32), np.array([i for i, _, _ in items], dtype=np.int64),
                                      cs.astype(np.uint32), np.array(ce, dtype=np.uint32),
                                      np.array(le, dtype=np.uint32), ell, kbits)
    if bad >= 0:
        raise F.FieldError("einv: extension element is zero")
    return tuple((name, coords[j], coefs[j]) for j in range(len(items)))
