"""``norm`` (RMSNorm and LayerNorm core): exact integer semantics of ``quant.reference`` proved.

Per row of width ``d`` (docs/quant.md §3.1), with witnesses from the trace and aux columns:

1. LayerNorm: ``Σ_i x_i + ⌊d/2⌋ = d·mean + mean_r``, ``0 ≤ mean_r < d``, ``mean ∈ [−2^15, 2^15)``;
   ``c = ind·(x − mean)``. The mean's range makes it unique: ``d·mean + mean_r`` then spans fewer than
   ``d·2^16 + d < p`` values (without it, ``mean − t·d⁻¹ mod p`` with ``mean_r + t`` also solves the row
   sum, a huge field element that can leave ``S`` unchanged and shift the output when ``d | C·t``).
   RMSNorm: ``c = x`` (as ``ind·x``: padded entries of the input never count).
2. ``S = Σ_i c_i² + E`` (row sums, see :mod:`rowwise`).
3. ``s = ⌊√S⌋``: ``g₁ = S − s²`` and ``g₂ = s² + 2s − S`` with ``g₁, g₂ ∈ [0, 2^16)``, ``s ∈ [0, 2^15)``,
   ``S ∈ [0, 2^a)``: then ``s² ≤ S < (s+1)²`` over the integers. Nothing is computed outside the proof.
4. ``s = 2·hs + sb`` with ``sb ∈ {0, 1}``, ``hs ∈ [0, 2^14)`` (so ``hs = ⌊s/2⌋``), and
   ``c·C + hs = n·s + r`` with ``0 ≤ r`` and ``u = s − 1 − r ≥ 0`` (aux ``u``), ``n ∈ [−C, C]``.
5. ``y = clamp(n, lo', hi')`` with the output range cut to ``[lo', hi'] = [max(lo, −C), min(hi, C)]``
   (the same function on ``n ∈ [−C, C]``): the base ``Clamp`` relations with ``y ∈ [lo', hi']`` and
   excesses ``d⁺ ∈ [0, C − hi']``, ``d⁻ ∈ [0, C + lo']``, which give ``n ∈ [−C, C]`` for ANY declared
   range (for ``C = 2^15`` the excesses are bits); or ``y = n`` in the zero-check and ``n ∈ [−C, C]``
   when ``[−C, C] ⊆ [lo, hi]`` (the clamp is then the identity). Without the cut, an output range
   ``[−32767, 2^28]`` with ``C = 40000`` admitted ``n' = n + ⌊(num + p)/s⌋`` (y = 544056 beside 10599).
   LayerNorm widths ``d > 30720`` are refused with the spec (``QuantSpec``): the mean window spans
   ``d·2^16 ≥ p`` values.

2a. ``Σ c²`` is an integer below ``2^a``, not merely ``S − E`` modulo ``p``: aux suffix sums ``P`` (full
   shape, 0 on padding: ``P = ind·P``) with ``P − Q − c² = 0`` and ``Q[…, j] = P[…, j + 1]`` (a shift
   sumcheck, :class:`rowwise.Combined` ``shifts``), ``P ∈ [0, 2^a)`` and ``c ∈ [−2^15, 2^15)`` on real
   entries (``c`` unchecked for RMS when the op that made ``x`` proves it in that range). Each step adds
   ``c_j² ≤ 2^30`` to ``P_{j+1} < 2^29``, so none wraps and ``P_0 = Σ c²`` exactly; with ``S ≡ Σc² + E`` and
   both below ``2^29``, ``S = Σ c² + E`` over the integers. Without it an input with ``Σ x² ≥ p`` (the
   reference raises BoundError) verified with ``S = Σx² + E − p`` and an output of the reference's
   domain's choosing (x = 17000 ×8: every output 32767).

No wrap-around: ``|c_i| ≤ s`` follows from 2–3 (now over the integers, by 2a), so every term of step 4
is below ``C·s`` and the relation holds over the integers when ``2·C·s + 2·s < p``. That bounds ``s`` and so ``S``:
``a = quant.spec.norm_sq_bits(C)``, the largest exponent ≤ 29 with ``2·(C + 1)·⌊√(2^a − 1)⌋ + 2 < p``
(``a = 29`` for ``C ≤ 43444``; the quantizer keeps ``a ≥ 29`` and calibration data at ``S < 2^28``).
The reference raises BoundError for ``S ≥ 2^a``, so the integer program has the proof's domain; a
trace beyond it is refused by the prover with a ValueError naming the bound. ``S`` itself equals
``Σ c² + E`` as an integer whenever that integer is below ``p``.

Proof: one zero-check over the per-row tensors (step 3 and 4's split of ``s``), one combined
sumcheck over the full tensor (steps 1, 2, 4, 5 — :class:`rowwise.Combined`), the clamp gadget if
needed, then every range check in one :class:`~blindproof.zk.ops.base.Checks` bundle.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from blindproof.zk.field import babybear as F
from blindproof.zk.ops import base as B
from blindproof.zk.iop import claims as CL
from blindproof.zk.iop import layout as LAY
from blindproof.zk.ops import domain as D
from blindproof.zk.ops import rowwise as RW
from blindproof.quant.spec import Op, QuantSpec, norm_sq_bits


def sum_sq_bits(C: int) -> int:
    """Largest ``a ≤ 29`` such that ``S < 2^a`` keeps the division relation free of wrap-around."""
    return norm_sq_bits(C, F.P)


class _Plan:
    def __init__(self, op: Op, shape: tuple[int, ...], spec: QuantSpec) -> None:
        if op.kind != "norm":
            raise ValueError(f"norm proves 'norm' ops, got {op.kind!r}")
        p = op.params
        self.layer = p["kind"] == "layer"
        self.d, self.E, self.C = int(p["d"]), int(p["E"]), int(p["C"])
        if shape[-1] != self.d:
            raise ValueError(f"norm {op.output}: input width {shape[-1]} != d = {self.d}")
        if self.C < 1 or self.E < 1:
            raise ValueError(f"norm {op.output}: C and E must be ≥ 1")
        self.shape, self.rshape = shape, RW.row_shape(shape)
        self.a = sum_sq_bits(self.C)
        ys = spec.tensors[op.output]
        # the honest n lies in [−C, C], so clamp(n, lo, hi) = clamp(n, lo', hi') with the output range cut
        # to [−C, C]; checking y in the cut range (and the excesses below) then bounds n for ANY declared
        # range: with hi = 2^28 > C, a y up to 2^28 would admit n' = n + ⌊(num + p)/s⌋
        self.lo, self.hi = max(ys.lo, -self.C), min(ys.hi, self.C)
        if self.lo >= self.hi:
            raise ValueError(f"norm {op.output}: output range [{ys.lo}, {ys.hi}] misses [−C, C] = [{-self.C}, {self.C}]")
        o, w, a = op.output, (lambda k: LAY.witness_name(op.output, k)), (lambda k: LAY.aux_name(op.output, k))
        self.x, self.y = op.inputs[0], o
        self.mean, self.mean_r, self.c = w("mean"), w("mean_r"), w("centred")
        self.S, self.s, self.n, self.r = w("S"), w("s"), w("n"), w("r")
        self.hs, self.sb, self.g1, self.g2, self.u = a("hs"), a("sb"), a("g1"), a("g2"), a("u")
        self.P, self.Q = a("sqsum"), a("sqnext")  # suffix sums of c² and the same shifted by one column
        self.identity = self.C <= min(-self.lo, self.hi)
        self.clamp = None if self.identity else B.Clamp(a("clamp"), self.n, self.y, shape, self.lo, self.hi,
                                                        self.C)
        R = B.RangeCheck
        ranges = [R(a("rr"), self.r, shape, 0, (1 << 15) - 1), R(a("ru"), self.u, shape, 0, (1 << 15) - 1),
                  R(a("rS"), self.S, self.rshape, 0, (1 << self.a) - 1),
                  R(a("rs"), self.s, self.rshape, 0, (1 << 15) - 1),
                  R(a("rg1"), self.g1, self.rshape, 0, (1 << 16) - 1),
                  R(a("rg2"), self.g2, self.rshape, 0, (1 << 16) - 1),
                  R(a("rhs"), self.hs, self.rshape, 0, (1 << 14) - 1),
                  R(a("rsb"), self.sb, self.rshape, 0, 1)]
        if self.layer:
            ranges += [R(a("rmr"), self.mean_r, self.rshape, 0, self.d - 1),
                       R(a("rmean"), self.mean, self.rshape, -(1 << 15), (1 << 15) - 1)]
        # Σ c² as an integer: suffix sums P ∈ [0, 2^a) with P_j = P_{j+1} + c_j² and |c_j| ≤ 2^15, so no
        # step wraps (2^29 + 2^30 < p); c is checked unless the op that made x proves it (RMS)
        ranges.append(R(a("rP"), self.P, shape, 0, (1 << self.a) - 1))
        cc = self.c if self.layer else self.x
        if self.layer or not D.within(D.proven_range(spec, self.x), -(1 << 15), (1 << 15) - 1):
            ranges.append(R(a("rc"), cc, shape, -(1 << 15), (1 << 15) - 1))
        if self.clamp is None:
            ranges.append(R(a("rn"), self.n, shape, -self.C, self.C))
        else:
            # y ∈ [lo', hi'] ⊆ [−C, C], d⁺ ∈ [0, C − hi'], d⁻ ∈ [0, C + lo']: d⁺ > 0 forces y = hi', so
            # n = hi' + d⁺ ≤ C; d⁻ > 0 forces y = lo', so n ≥ −C; else n = y. So n ∈ [−C, C] without a
            # range check of its own (the base clamp's excess range would be far wider)
            ranges += [self.clamp.ranges()[0], R(a("rdp"), self.clamp.dpos, shape, 0, self.C - self.hi),
                       R(a("rdn"), self.clamp.dneg, shape, 0, self.C + self.lo)]
        self.checks = B.Checks(a("chk"), ranges=ranges)

    def witnesses(self) -> dict[str, tuple[int, ...]]:
        out = {self.S: self.rshape, self.s: self.rshape, self.n: self.shape, self.r: self.shape}
        if self.layer:
            out.update({self.mean: self.rshape, self.mean_r: self.rshape, self.c: self.shape})
        return out

    def columns(self) -> dict[str, tuple[int, ...]]:
        out = {self.hs: self.rshape, self.sb: self.rshape, self.g1: self.rshape, self.g2: self.rshape,
               self.u: self.shape, self.P: self.shape, self.Q: self.shape}
        out.update(self.checks.columns())
        if self.clamp is not None:
            out.update(self.clamp.columns())
        return out

    # --- per-row zero-check: g1 = S − s², g2 = s² + 2s − S, s = 2 hs + sb ---------------------------
    def row_names(self) -> list[str]:
        return [self.g1, self.g2, self.S, self.s, self.hs, self.sb]

    @staticmethod
    def row_terms(g: np.ndarray) -> list:
        g2 = F.emul(g, g)
        m1 = F.eneg(F.eone())
        # tables: 0 g1, 1 g2, 2 S, 3 s, 4 hs, 5 sb
        return [(1, (0,)), (m1, (2,)), (1, (3, 3)),
                (g, (1,)), (F.eneg(g), (3, 3)), (F.emul(g, F.ext(-2)), (3,)), (g, (2,)),
                (g2, (3,)), (F.emul(g2, F.ext(-2)), (4,)), (F.eneg(g2), (5,))]

    # --- full-tensor relations ---------------------------------------------------------------------------
    def combined(self, g: np.ndarray) -> RW.Combined:
        gp = [F.eone()]
        for _ in range(6):
            gp.append(F.emul(gp[-1], g))
        full = [self.x, self.n, self.r, self.u, self.P, self.Q] + ([self.c] if self.layer else []) + \
            ([self.y] if self.identity else [])
        rows = [self.s, self.hs] + ([self.mean] if self.layer else [])
        neg = F.eneg
        z: list = []
        # division: C·c + ind·hs − n·s − r = 0  (c = ind·x for RMS)
        if self.layer:
            z += [(F.ext(self.C), (self.c,))]
        else:
            z += [(F.ext(self.C), (RW.IND, self.x))]
        z += [(1, (RW.IND, self.hs)), (neg(F.eone()), (self.n, self.s)), (neg(F.eone()), (self.r,))]
        # u = ind·(s − 1) − r
        z += [(gp[1], (self.u,)), (neg(gp[1]), (RW.IND, self.s)), (gp[1], (RW.IND,)), (gp[1], (self.r,))]
        if self.layer:  # c = ind·(x − mean)
            z += [(gp[2], (self.c,)), (neg(gp[2]), (RW.IND, self.x)), (gp[2], (RW.IND, self.mean))]
        if self.identity:  # y = n
            z += [(gp[3], (self.y,)), (neg(gp[3]), (self.n,))]
        cc = self.c if self.layer else self.x
        # P − Q − c² = 0 everywhere (padding: P, Q, c all 0 — which pins the padding of x to 0 for RMS);
        # P − ind·P = 0: P is 0 on padding, so the suffix chain starts at 0 after the last real column
        z += [(gp[5], (self.P,)), (neg(gp[5]), (self.Q,)), (neg(gp[5]), (cc, cc)),
              (gp[6], (self.P,)), (neg(gp[6]), (RW.IND, self.P))]
        sums = [(1, (cc, cc))]
        rhs: list = [(1, self.S), (-self.E, RW.IND)]
        if self.layer:  # Σ x + ⌊d/2⌋ = d·mean + mean_r
            sums += [(gp[4], (self.x,))]
            rhs += [(F.emul(gp[4], F.ext(self.d)), self.mean), (gp[4], self.mean_r),
                    (F.emul(gp[4], F.ext(-(self.d // 2))), RW.IND)]
        return RW.Combined(f"norm:{self.y}", self.shape, full, rows, z, sums, rhs, shifts=[(self.P, self.Q)])


def shapes(op: Op, in_shapes: Sequence[tuple[int, ...]], spec: QuantSpec) -> dict[str, tuple[int, ...]]:
    """Output, the witnesses (mean, mean_r, centred for LayerNorm; S, s, n, r) and the aux columns."""
    (xs,) = in_shapes
    plan = _Plan(op, tuple(xs), spec)
    out = {op.output: tuple(xs), **plan.witnesses()}
    out.update(plan.columns())
    return out


def aux(ctx: B.ProverContext, op: Op) -> dict[str, np.ndarray]:
    """hs, sb, g1, g2, u, clamp excesses, limbs and multiplicities."""
    plan = _Plan(op, ctx.shape(op.output), ctx.spec)
    S, s, r = ctx.value(plan.S), ctx.value(plan.s), ctx.value(plan.r)
    if ctx.strict and S.size and int(S.max()) >= 1 << plan.a:
        raise ValueError(f"norm {op.output}: sum of squares {int(S.max())} ≥ 2^{plan.a}, beyond what the "
                         f"proof of the division covers for C = {plan.C}")
    c = ctx.value(plan.c if plan.layer else plan.x)
    P = np.flip(np.cumsum(np.flip(c * c, -1), -1), -1)  # P_j = Σ_{i ≥ j} c_i²
    Q = np.concatenate([P[..., 1:], np.zeros_like(P[..., :1])], -1)
    vals = {plan.hs: s // 2, plan.sb: s % 2, plan.g1: S - s * s, plan.g2: s * s + 2 * s - S,
            plan.u: s - 1 - r, plan.P: P, plan.Q: Q}
    if plan.clamp is not None:
        vals.update(plan.clamp.witness(ctx.value(plan.n), ctx.strict))
    vals.update(plan.checks.witness(lambda n: vals[n] if n in vals else ctx.value(n), ctx.strict))
    return vals


def prove(ctx: B.ProverContext, op: Op, out_claims: Sequence[CL.Claim]) -> tuple[B.OpProof, list[CL.Claim]]:
    """Row zero-check, combined sumcheck, clamp, range checks."""
    plan = _Plan(op, ctx.shape(op.output), ctx.spec)
    proof = B.OpProof()
    g = ctx.transcript.challenge_ext("ops/norm/gamma")
    names = plan.row_names()
    point, vals = B.prove_zero_check(ctx, proof, LAY.n_vars(plan.rshape), [ctx.table(n) for n in names],
                                     plan.row_terms(g), names)
    claims = [CL.Claim(n, point, v) for n, v in zip(names, vals)]
    claims += plan.combined(g).prove(ctx, proof)
    if plan.clamp is not None:
        claims += plan.clamp.prove(ctx, proof)
    claims += plan.checks.prove(ctx, proof)
    return proof, claims + list(out_claims)


def verify(ctx: B.VerifierContext, op: Op, out_claims: Sequence[CL.Claim], proof: B.OpProof) -> list[CL.Claim]:
    """Mirror of :func:`prove`; raises Reject."""
    plan = _Plan(op, ctx.shape(op.output), ctx.spec)
    rd = B.ProofReader(proof)
    g = ctx.transcript.challenge_ext("ops/norm/gamma")
    names = plan.row_names()
    point, vals = B.verify_zero_check(ctx, rd, LAY.n_vars(plan.rshape), len(names), plan.row_terms(g), names)
    claims = [CL.Claim(n, point, v) for n, v in zip(names, vals)]
    claims += plan.combined(g).verify(ctx, rd)
    if plan.clamp is not None:
        claims += plan.clamp.verify(ctx, rd)
    claims += plan.checks.verify(ctx, rd)
    rd.done()
    return claims + list(out_claims)
