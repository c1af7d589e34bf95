"""Row-wise relations for the nonlinear ops (softmax, norms): one combined sumcheck per op.

A row-wise op works on a tensor of shape ``lead + (d,)`` and per-row tensors of shape ``lead + (1,)``
(row maxima, sums, square roots …). In canonical layout a full tensor's point splits into the row
coordinates (the leading dimensions' variables, MSB-first) and the ``k = ceil(log2 d)`` column
coordinates; a per-row tensor lives on the row coordinates alone.

:class:`Combined` proves, in ONE sumcheck over the full variables,

    Σ_x eq(τ, x) · Σ_t c_t Π f(x)            = 0                       (elementwise relations)
  + λ · Σ_x eq(ρ, row(x)) ind_col(x) Σ_u c_u Π g(x) = Σ_i a_i · R_i(ρ)   (row sums)

for fresh random ``τ`` (full) and ``ρ`` (rows). The first part says every elementwise relation holds
everywhere (a zero-check); the second says, as an identity of multilinear polynomials in the rows,
that the per-row sums ``Σ_j g(row, j)`` over the real columns (``ind_col`` is the public indicator of
real columns, so whatever a padded column holds does not count) equal linear combinations of per-row tensors ``R_i`` whose
values at ``ρ`` the prover sends (and which become claims). Factors may be committed full tensors,
per-row tensors broadcast over the column axis (:func:`row_table`: its MLE ignores the column
coordinates, so its final value is a claim on the per-row tensor at the row part of the point) or
public tables the verifier evaluates itself (the real-entries indicator ``ind`` and op-specific ones).

Shifts (``Combined.shifts``, pairs ``(P, Q)``): ``Q[…, j] = P[…, j + 1]`` along the padded last axis
(``Q[…, last] = 0``), proved in the same sumcheck as ``λ^(2+i) · Σ_y eq(ρ, row(y)) · eq(σ, col(y) − 1) ·
P(y) = λ^(2+i) · Q(ρ, σ)`` at a fresh column point ``σ``; the prover sends ``Q(ρ, σ)`` (a claim) and the
verifier evaluates the successor polynomial itself (:func:`succ_eval`). The norm uses it for suffix
sums of squares that cannot wrap around ``p``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from blindproof.zk.field import babybear as F
from blindproof.zk.iop import mle
from blindproof.zk.ops import base as B
from blindproof.zk.iop import claims as CL
from blindproof.zk.iop import layout as LAY
from blindproof.zk.iop import blind as BL

IND = "ind"  # public: real-entries indicator of the full shape


def row_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """Shape of the per-row tensors of a full tensor of ``shape``."""
    return tuple(int(d) for d in shape[:-1]) + (1,)


def col_vars(shape: Sequence[int]) -> int:
    """Number of column (last-axis) variables."""
    return LAY.dim_vars(int(shape[-1]))


def row_point(point: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The row coordinates of a full point."""
    return point[: point.shape[0] - col_vars(shape)]


def row_table(table: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """A per-row canonical table (base or extension) repeated over the padded column axis: its MLE at a
    full point is the per-row MLE at the point's row coordinates."""
    reps = 1 << col_vars(shape)
    return np.repeat(table, reps, axis=0)


@dataclass
class Combined:
    """Zero-check plus row sums over a full tensor of ``shape`` (see the module docstring).

    ``full``: committed full tensors; ``rows``: committed per-row tensors (broadcast); ``public``: names
    of public full tables with ``public_table(name)`` / ``public_eval(name, point)`` callbacks (the
    indicator ``ind`` is built in). ``zero_terms``: ``(coeff, names)`` with one or two factors;
    ``sum_terms`` likewise; ``sum_rhs``: ``(coeff, row tensor name)`` pairs forming the right-hand
    side of the row sums (the name ``"ind"`` stands for the real-rows indicator, public)."""

    label: str
    shape: tuple[int, ...]
    full: list[str]
    rows: list[str]
    zero_terms: list[tuple[object, tuple[str, ...]]]
    sum_terms: list[tuple[object, tuple[str, ...]]] = field(default_factory=list)
    sum_rhs: list[tuple[object, str]] = field(default_factory=list)
    public: list[str] = field(default_factory=list)
    public_table: Callable[[str], np.ndarray] | None = None
    public_eval: Callable[[str, np.ndarray], np.ndarray] | None = None
    shifts: list[tuple[str, str]] = field(default_factory=list)  # (P, Q): Q[..., j] = P[..., j + 1]

    # --- layout ---------------------------------------------------------------------------------------
    def _publics(self) -> list[str]:
        return [IND, *self.public]

    def _index(self) -> dict[str, int]:
        names = [*self.full, *self.rows, *self._publics(), "#eq_tau", "#eq_rho"]
        names += [f"#succ{i}" for i in range(len(self.shifts))]
        return {n: i for i, n in enumerate(names)}

    def _shift_coeffs(self, lam: np.ndarray) -> list[np.ndarray]:
        """λ², λ³, …: the weights of the shift claims (λ weighs the row sums)."""
        out, c = [], F.emul(lam, lam)
        for _ in self.shifts:
            out.append(c)
            c = F.emul(c, lam)
        return out

    def _terms(self, lam: np.ndarray) -> list[tuple[object, tuple[int, ...]]]:
        ix = self._index()
        out = []
        for c, names in self.zero_terms:
            if not 1 <= len(names) <= 2:
                raise ValueError(f"{self.label}: zero-check terms need 1 or 2 factors")
            out.append((_coeff(c), (ix["#eq_tau"], *(ix[n] for n in names))))
        for c, names in self.sum_terms:
            if not 1 <= len(names) <= 2:
                raise ValueError(f"{self.label}: row-sum terms need 1 or 2 factors")
            out.append((F.emul(lam, _coeff(c)), (ix["#eq_rho"], *(ix[n] for n in names))))
        for i, ((src, _), c) in enumerate(zip(self.shifts, self._shift_coeffs(lam))):
            out.append((c, (ix[f"#succ{i}"], ix[src])))
        return out

    def _rhs_names(self) -> list[str]:
        return [n for _, n in self.sum_rhs if n != IND]

    def _rhs(self, vals: dict[str, np.ndarray], rho: np.ndarray) -> np.ndarray:
        total = F.ezero()
        for c, n in self.sum_rhs:
            v = LAY.indicator_eval(row_shape(self.shape), rho) if n == IND else vals[n]
            total = F.eadd(total, F.emul(_coeff(c), v))
        return total

    def _public_eval(self, name: str, point: np.ndarray) -> np.ndarray:
        if name == IND:
            return LAY.indicator_eval(self.shape, point)
        assert self.public_eval is not None
        return self.public_eval(name, point)

    def _public_table(self, name: str) -> np.ndarray:
        if name == IND:
            return LAY.indicator_table(self.shape)
        assert self.public_table is not None
        return self.public_table(name)

    # --- prover / verifier ----------------------------------------------------------------------------
    def _challenges(self, ctx: B.VerifierContext) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
        n = LAY.n_vars(self.shape)
        tau = ctx.transcript.challenge_exts(f"ops/{self.label}/tau", n)
        rho = ctx.transcript.challenge_exts(f"ops/{self.label}/rho", n - col_vars(self.shape))
        lam = ctx.transcript.challenge_ext(f"ops/{self.label}/lambda")
        sig = [ctx.transcript.challenge_exts(f"ops/{self.label}/sigma", col_vars(self.shape)) for _ in self.shifts]
        return tau, rho, lam, sig

    def _reads(self) -> list[B.Read]:
        """Full tensors over every variable; per-row tensors over the row variables (the first ones)."""
        ix = self._index()
        n = LAY.n_vars(self.shape)
        nr = n - col_vars(self.shape)
        return ([(ix[m], m, BL.rounds(n)) for m in self.full] + [(ix[m], m, BL.rounds(nr)) for m in self.rows])

    def _libra(self, ctx: B.VerifierContext, lam: np.ndarray, rho: np.ndarray, rvals: dict,
               sig: list, svals: np.ndarray) -> list:
        """The randomizers inside the claimed sum: the sent row values (weights λ·a_i) and shift values
        (weights λ^(2+i))."""
        out: list = []
        for c, m in self.sum_rhs:
            if m != IND:
                out += B.libra_for(ctx, CL.Claim(m, rho, rvals[m]), F.emul(lam, _coeff(c)))
        for (_, q), sg, v, c in zip(self.shifts, sig, svals, self._shift_coeffs(lam)):
            out += B.libra_for(ctx, CL.Claim(q, np.concatenate([rho, sg]), v), c)
        return out

    def _shift_claim(self, lam: np.ndarray, svals: np.ndarray) -> np.ndarray:
        total = F.ezero()
        for c, v in zip(self._shift_coeffs(lam), svals):
            total = F.eadd(total, F.emul(c, v))
        return total

    def prove(self, ctx: B.ProverContext, proof: B.OpProof) -> list[CL.Claim]:
        """Run the combined sumcheck; returns the claims on committed tensors."""
        tau, rho, lam, sig = self._challenges(ctx)
        rhs_names = self._rhs_names()
        rvals = {n: ctx.hat(n, rho) for n in rhs_names}
        if rhs_names:
            arr = np.stack([rvals[n] for n in rhs_names])
            proof.put_ext(arr)
            ctx.transcript.absorb_ext(f"ops/{self.label}/row_values", arr)
        svals = np.zeros((0, 4), dtype=np.uint32)
        if self.shifts:
            svals = np.stack([ctx.hat(q, np.concatenate([rho, sg])) for (_, q), sg in zip(self.shifts, sig)])
            proof.put_ext(svals)
            ctx.transcript.absorb_ext(f"ops/{self.label}/shift_values", svals)
        claim = F.eadd(F.emul(lam, self._rhs(rvals, rho)), self._shift_claim(lam, svals))
        tables = ([ctx.table(n) for n in self.full] + [row_table(ctx.table(n), self.shape) for n in self.rows]
                  + [self._public_table(n) for n in self._publics()]
                  + [mle.eq_table(tau), self._row_weights(rho)] + [self._succ_weights(rho, sg) for sg in sig])
        point, finals = B.prove_sum(ctx, proof, LAY.n_vars(self.shape), tables, self._terms(lam), claim,
                                    reads=self._reads(), libra=self._libra(ctx, lam, rho, rvals, sig, svals))
        return self._claims(point, finals, rho, rvals) + self._shift_claims(rho, sig, svals)

    def verify(self, ctx: B.VerifierContext, rd: B.ProofReader) -> list[CL.Claim]:
        """Check the combined sumcheck; returns the claims. Raises Reject."""
        tau, rho, lam, sig = self._challenges(ctx)
        rhs_names = self._rhs_names()
        rvals: dict[str, np.ndarray] = {}
        if rhs_names:
            arr = rd.take_ext(len(rhs_names))
            ctx.transcript.absorb_ext(f"ops/{self.label}/row_values", arr)
            rvals = dict(zip(rhs_names, arr))
        svals = np.zeros((0, 4), dtype=np.uint32)
        if self.shifts:
            svals = rd.take_ext(len(self.shifts))
            ctx.transcript.absorb_ext(f"ops/{self.label}/shift_values", svals)
        claim = F.eadd(F.emul(lam, self._rhs(rvals, rho)), self._shift_claim(lam, svals))
        ix = self._index()
        point, finals = B.verify_sum(ctx, rd, LAY.n_vars(self.shape), len(ix), self._terms(lam), claim,
                                     reads=self._reads(), libra=self._libra(ctx, lam, rho, rvals, sig, svals))
        rp = row_point(point, self.shape)
        eq_rho = mle.eq_eval(rho, rp) if rp.shape[0] else F.eone()
        want = {"#eq_tau": mle.eq_eval(tau, point) if point.shape[0] else F.eone(),
                "#eq_rho": F.emul(eq_rho, LAY.prefix_ones_eval(int(self.shape[-1]), point[rp.shape[0]:]))}
        for n in self._publics():
            want[n] = self._public_eval(n, point)
        pc = point[rp.shape[0]:]
        for i, sg in enumerate(sig):
            want[f"#succ{i}"] = F.emul(eq_rho, succ_eval(pc, sg))
        for n, v in want.items():
            if not np.array_equal(finals[ix[n]], v):
                raise CL.Reject(f"{self.label}: wrong value of the public table {n.lstrip('#')!r}")
        return self._claims(point, finals, rho, rvals) + self._shift_claims(rho, sig, svals)

    def _succ_weights(self, rho: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """``eq(ρ, row(y)) · eq(σ, col(y) − 1)`` (0 at column 0): Σ_y of it times ``P(y)`` is the MLE of
        ``Q[..., x] = P[..., x + 1]`` at ``(ρ, σ)``."""
        w = row_table(mle.eq_table(rho), self.shape)
        e = mle.eq_table(sigma)
        col = np.concatenate([np.zeros((1, 4), dtype=e.dtype), e[:-1]]) if e.shape[0] > 1 else np.zeros_like(e)
        return F.emul(w, np.tile(col, (w.shape[0] // col.shape[0], 1)))

    def _shift_claims(self, rho, sig, svals) -> list[CL.Claim]:
        return [CL.Claim(q, np.concatenate([rho, sg]), v) for (_, q), sg, v in zip(self.shifts, sig, svals)]

    def _row_weights(self, rho: np.ndarray) -> np.ndarray:
        """``eq(ρ, row(x)) · ind_col(x)``: the row sums run over the real columns only. (The row part
        carries no indicator: the two factors depend on disjoint variables, so the table's MLE is the
        product of theirs.)"""
        w = row_table(mle.eq_table(rho), self.shape)
        col = LAY.canonical(np.ones(int(self.shape[-1]), dtype=np.int64))
        return F.escale(w, np.tile(col, w.shape[0] // col.shape[0]))

    def _claims(self, point, finals, rho, rvals) -> list[CL.Claim]:
        ix = self._index()
        rp = row_point(point, self.shape)
        out = [CL.Claim(n, point, finals[ix[n]]) for n in self.full]
        out += [CL.Claim(n, rp, finals[ix[n]]) for n in self.rows]
        out += [CL.Claim(n, rho, v) for n, v in rvals.items()]
        return out


def succ_eval(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MLE of ``[int(a) = int(b) + 1]`` over ``k``-bit indices (MSB-first coordinates) at points ``a``, ``b``:
    the sum over the bit ``l`` that flips from 0 (in ``b``) to 1 (in ``a``), the higher bits equal and the
    lower bits 1 in ``b`` and 0 in ``a``."""
    k = a.shape[0]
    one = F.eone()
    total = F.ezero()
    for lbit in range(k):
        t = F.emul(a[lbit], F.esub(one, b[lbit]))
        for i in range(lbit):  # higher bits equal: a b + (1 − a)(1 − b)
            ai, bi = a[i], b[i]
            t = F.emul(t, F.eadd(F.emul(ai, bi), F.emul(F.esub(one, ai), F.esub(one, bi))))
        for i in range(lbit + 1, k):  # lower bits: 0 in a, 1 in b
            t = F.emul(t, F.emul(F.esub(one, a[i]), b[i]))
        total = F.eadd(total, t)
    return total


def _coeff(c) -> np.ndarray:
    if isinstance(c, (int, np.integer)):
        return F.ext(int(c) % F.P)
    return F._check_ext(np.asarray(c), "coefficient").reshape(4)

