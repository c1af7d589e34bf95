"""``softmax`` (public causal mask): the exact integer semantics of ``quant.reference`` proved.

Input scores ``s`` of shape ``(b, H, t, K)``; witnesses from the trace ``max``, ``sum`` (per row) and
``diff``, ``z``, ``e``, ``r`` (full); output ``p``. ``mask`` is the public allowed-key indicator
(``j ≤ start + i`` when causal) on real entries, ``ind`` the real-entries indicator, ``T`` the exp
table (``T[0] = 2^15``), ``F = frac``. Relations (one zero-check over the full tensor, γ-batched):

- shift: ``diff = mask·(max − s)``; ``diff = z + d`` with ``z ∈ [0, zmax]`` and ``d ∈ [0, 2^30)``, so
  ``diff ≥ 0`` (``max ≥ s_j`` on every allowed key); ``d·(zmax − z) = 0``, so ``z = min(diff, zmax)``.
- the maximum is attained (the softmax shift trap, closed exactly): a committed one-hot ``a`` with
  ``a = a·mask`` (only allowed keys), ``a·diff = 0`` and ``Σ_j a_j = 1`` per real row. So ``max`` equals
  one of the row's scores and is the true maximum, not merely an upper bound. ``sum ≥ T[0]`` (one
  unit) is checked as well, as docs/quant.md states it (it follows from the above).
- exp: ``e = mask·(g + T[0])`` and ``(z, g)`` a row of the table ``(i, T[i] − T[0])`` (shifted so the
  padding pair ``(0, 0)`` is a row; see :func:`lookup_ops.extended_table`).
- sum: ``Σ_j e_j = sum`` per row (row sums of :mod:`rowwise`).
- division ``e·2^F + ⌊sum/2⌋ = p·sum + r``, ``0 ≤ r < sum``: per row ``sum = 2h + b`` (``b ∈ {0,1}``,
  ``h`` range-checked, so ``h = ⌊sum/2⌋``) and ``sum = 2^15·S_hi + S_lo`` (``S_lo < 2^15``); per entry
  ``B = p·S_hi`` (aux, ``B ∈ [0, Bmax]``), ``e·2^F + ind·h − r − 2^15·B − p·S_lo = 0``,
  ``u = ind·(sum − 1) − r`` (aux) with ``r, u ∈ [0, 2^kS)`` and ``p ∈ [0, 2^F]``.

Why the split of ``sum``: ``p·sum`` can exceed ``p`` (the field), e.g. ``p = 608``, ``sum = 2^22`` for a
flat row of 128 keys, and a range check on ``p`` alone then admits a wrong quotient that wraps
around. With ``S_hi``, ``S_lo`` every product in the relation is below ``2^29`` and the whole relation
spans less than ``p``, so it holds over the integers (:func:`_Plan.bounds_ok` verifies this from the
shapes; it holds for every ``K ≤ 2^14``).

Spread of the scores: ``max ≥ s_j`` over the integers needs every row's spread below
``p − 2^30 − 2^16 ≈ 0.87·2^30`` (a true ``max − s_j < 0`` then maps to a field value above what ``z + d``
can reach: with scores ±534,256,996 the smallest score would verify as the maximum). The protocol's
score domain is ``[-2^28, 2^28)`` (``spec.SCORE_LO/HI``; the reference raises BoundError outside it), a
spread below ``2^29``. The proof enforces it: the scores are range-checked here unless the op that made
them proves them inside it already (:func:`~blindproof.zk.ops.domain.proven_range`: in the quantized
models a rescale's clamp or quotient window does). A declared range is never trusted.

The exp table is the protocol's: ``exp_neg`` over ``[0, 2^16 − 1]`` (``spec.check_exp_table``, also
enforced when a spec is loaded), and ``z = min(diff, 2^16 − 1)`` uses the protocol's constant, as the
reference does; ``in_exp``/``out_exp`` are the spec's and the table is regenerated from them.
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
from blindproof.zk.ops.lookup_ops import extended_table
from blindproof.quant.spec import EXP_DOMAIN_MAX, SCORE_HI, SCORE_LO, Op, QuantSpec, check_exp_table
from blindproof.quant.functions import table_values

MASK = "mask"
SPLIT = 15  # sum = 2^15·S_hi + S_lo
D_BITS = 30  # range of the clamp excess diff − z


def allowed(t: int, k: int, start: int, causal: bool) -> np.ndarray:
    """The (t, k) allowed-key pattern of one head (int64 0/1)."""
    if not causal:
        return np.ones((t, k), dtype=np.int64)
    return (np.arange(k)[None, :] <= (start + np.arange(t))[:, None]).astype(np.int64)


class _Plan:
    def __init__(self, op: Op, shape: tuple[int, ...], spec: QuantSpec, start: int) -> None:
        if op.kind != "softmax":
            raise ValueError(f"softmax proves 'softmax' ops, got {op.kind!r}")
        if len(shape) < 2:
            raise ValueError(f"softmax {op.output}: scores need at least 2 dimensions, got {shape}")
        self.shape, self.rshape = tuple(shape), RW.row_shape(shape)
        self.causal, self.frac, self.start = bool(op.params["causal"]), int(op.params["frac"]), int(start)
        ts = spec.tables[op.params["table"]]
        check_exp_table(op, ts)
        vals = table_values(ts)
        self.t0 = int(vals[0])
        if int(vals.max()) != self.t0 or int(vals.min()) < 0:
            raise ValueError(f"softmax {op.output}: the exp table must start at 0 with its maximum T[0]")
        self.zmax = EXP_DOMAIN_MAX  # the protocol's clamp of max − s, as the reference's (never the spec's)
        self.table = extended_table(ts, shift_out=self.t0)
        K = int(shape[-1])
        # scores in [-2^28, 2^28): a spread below 2^29 < p − 2^30 − 2^16, so max − s cannot wrap; range-
        # checked here unless the proof of the op that made them already bounds them that tightly
        self.s_check = not D.within(D.proven_range(spec, op.inputs[0]), SCORE_LO, SCORE_HI)
        if (SCORE_HI - SCORE_LO) >= F.P - (1 << D_BITS) - (self.zmax + 1):  # pragma: no cover - constants
            raise AssertionError("softmax score domain too wide")
        self.kS = (K * self.t0 - 1).bit_length()  # sum − T[0], r, u < sum ≤ K·T[0] ≤ 2^kS
        self.n_max = (self.t0 << self.frac) + (K * self.t0) // 2  # numerator e·2^F + ⌊sum/2⌋
        # B = p·S_hi ≤ n_max / 2^15; a power-of-two range needs one limb column instead of two, and is
        # used when the division relation keeps its margin below p with it
        self.b_max = (1 << (self.n_max >> SPLIT).bit_length()) - 1
        if not self.bounds_ok():
            self.b_max = self.n_max >> SPLIT
        if not self.bounds_ok():
            raise ValueError(f"softmax over {K} keys: the division relation could wrap around p")
        w = lambda k: LAY.witness_name(op.output, k)  # noqa: E731
        a = lambda k: LAY.aux_name(op.output, k)  # noqa: E731
        self.s, self.p = op.inputs[0], op.output
        self.max, self.diff, self.z, self.e, self.sum, self.r = (w(k) for k in ("max", "diff", "z", "e", "sum", "r"))
        self.am, self.g, self.d, self.bq, self.u = (a(k) for k in ("argmax", "g", "dpos", "b", "u"))
        self.h, self.hb, self.shi, self.slo = (a(k) for k in ("half", "odd", "s_hi", "s_lo"))
        R, fs, rs = B.RangeCheck, self.shape, self.rshape
        top = lambda bits: (1 << max(bits, 1)) - 1  # noqa: E731
        ranges = [R(a("rz"), self.z, fs, 0, self.zmax), R(a("rd"), self.d, fs, 0, top(D_BITS)),
                  R(a("rp"), self.p, fs, 0, 1 << self.frac), R(a("rr"), self.r, fs, 0, top(self.kS)),
                  R(a("ru"), self.u, fs, 0, top(self.kS)), R(a("rb"), self.bq, fs, 0, self.b_max),
                  R(a("rsum"), self.sum, rs, self.t0, self.t0 + top(self.kS)),
                  R(a("rodd"), self.hb, rs, 0, 1), R(a("rhalf"), self.h, rs, 0, top(self.kS)),
                  R(a("rhi"), self.shi, rs, 0, top(self.kS + 1 - SPLIT)), R(a("rlo"), self.slo, rs, 0, top(SPLIT))]
        if self.s_check:
            ranges.append(R(a("rs"), self.s, fs, SCORE_LO, SCORE_HI))
        fl = B.FunctionLookup((self.z, self.g), fs, self.table)
        self.checks = B.Checks(a("chk"), ranges=ranges, functions=[fl])

    def bounds_ok(self) -> bool:
        """The division relation cannot wrap around p (see the module docstring)."""
        pmax = 1 << self.frac
        low = (1 << self.kS) + (self.b_max << SPLIT) + pmax * ((1 << SPLIT) - 1)
        return (self.n_max < F.P and low < F.P and self.kS <= 29
                and pmax * (1 << max(self.kS + 1 - SPLIT, 1)) < F.P)

    def witnesses(self) -> dict[str, tuple[int, ...]]:
        fs, rs = self.shape, self.rshape
        return {self.max: rs, self.sum: rs, self.diff: fs, self.z: fs, self.e: fs, self.r: fs}

    def columns(self) -> dict[str, tuple[int, ...]]:
        fs, rs = self.shape, self.rshape
        out = {self.am: fs, self.g: fs, self.d: fs, self.bq: fs, self.u: fs,
               self.h: rs, self.hb: rs, self.shi: rs, self.slo: rs}
        out.update(self.checks.columns())
        return out

    # --- public mask -------------------------------------------------------------------------------------
    def pattern(self) -> np.ndarray:
        return allowed(int(self.shape[-2]), int(self.shape[-1]), self.start, self.causal)

    def mask_table(self, name: str) -> np.ndarray:
        return LAY.canonical(np.broadcast_to(self.pattern(), self.shape))

    def mask_eval(self, name: str, point: np.ndarray) -> np.ndarray:
        lead = self.shape[:-2]
        k = LAY.n_vars(lead)
        return F.emul(LAY.indicator_eval(lead, point[:k]) if lead else F.eone(),
                      LAY.public_eval(self.pattern(), point[k:]))

    # --- per-row zero-check: sum = 2h + b, sum = 2^15 S_hi + S_lo ---------------------------------------
    def row_names(self) -> list[str]:
        return [self.sum, self.h, self.hb, self.shi, self.slo]

    @staticmethod
    def row_terms(g: np.ndarray) -> list:
        m1 = F.eneg(F.eone())
        return [(1, (0,)), (F.ext(-2), (1,)), (m1, (2,)),
                (g, (0,)), (F.emul(g, F.ext(-(1 << SPLIT))), (3,)), (F.eneg(g), (4,))]

    # --- full-tensor relations ------------------------------------------------------------------------
    def combined(self, g: np.ndarray) -> RW.Combined:
        gp = [F.eone()]
        for _ in range(8):
            gp.append(F.emul(gp[-1], g))
        neg, I, M = F.eneg, RW.IND, MASK
        c = lambda k, v: F.emul(gp[k], F.ext(v))  # noqa: E731
        z = [  # R0 diff = mask·(max − s)
            (gp[0], (self.diff,)), (neg(gp[0]), (M, self.max)), (gp[0], (M, self.s)),
            # R1 a = a·mask ; R2 a·diff = 0
            (gp[1], (self.am,)), (neg(gp[1]), (self.am, M)), (gp[2], (self.am, self.diff)),
            # R3 e = mask·g + T0·mask
            (gp[3], (self.e,)), (neg(gp[3]), (M, self.g)), (c(3, -self.t0), (M,)),
            # R4 e·2^F + ind·h − r − 2^15·B − p·S_lo = 0
            (c(4, 1 << self.frac), (self.e,)), (gp[4], (I, self.h)), (neg(gp[4]), (self.r,)),
            (c(4, -(1 << SPLIT)), (self.bq,)), (neg(gp[4]), (self.p, self.slo)),
            # R5 B = p·S_hi
            (gp[5], (self.bq,)), (neg(gp[5]), (self.p, self.shi)),
            # R6 u = ind·(2^15 S_hi + S_lo − 1) − r
            (gp[6], (self.u,)), (c(6, -(1 << SPLIT)), (I, self.shi)), (neg(gp[6]), (I, self.slo)),
            (gp[6], (I,)), (gp[6], (self.r,)),
            # R7 diff = z + d ; R8 d·(zmax − z) = 0
            (gp[7], (self.diff,)), (neg(gp[7]), (self.z,)), (neg(gp[7]), (self.d,)),
            (c(8, self.zmax), (self.d,)), (neg(gp[8]), (self.d, self.z)),
        ]
        sums = [(1, (self.e,)), (g, (self.am,))]
        rhs = [(1, self.sum), (g, RW.IND)]
        full = [self.s, self.diff, self.z, self.e, self.p, self.r, self.am, self.g, self.d, self.bq, self.u]
        rows = [self.max, self.h, self.shi, self.slo]
        return RW.Combined(f"softmax:{self.p}", self.shape, full, rows, z, sums, rhs, public=[MASK],
                           public_table=self.mask_table, public_eval=self.mask_eval)


def shapes(op: Op, in_shapes: Sequence[tuple[int, ...]], spec: QuantSpec) -> dict[str, tuple[int, ...]]:
    """Output, witnesses and aux columns (the shapes do not depend on the position offset)."""
    (xs,) = in_shapes
    plan = _Plan(op, tuple(xs), spec, 0)
    out = {op.output: tuple(xs), **plan.witnesses()}
    out.update(plan.columns())
    return out


def aux(ctx: B.ProverContext, op: Op) -> dict[str, np.ndarray]:
    """argmax one-hot, g, excess, B, u, the per-row split of sum, limbs and multiplicities."""
    plan = _Plan(op, ctx.shape(op.output), ctx.spec, ctx.start)
    mask = np.broadcast_to(plan.pattern(), plan.shape).astype(bool)
    diff, z, e, p, r = (ctx.value(n) for n in (plan.diff, plan.z, plan.e, plan.p, plan.r))
    total = ctx.value(plan.sum)
    hit = mask & (diff == 0)
    first = np.argmax(hit, axis=-1)[..., None]
    am = (np.arange(plan.shape[-1]) == first).astype(np.int64) * hit.any(-1, keepdims=True)
    shi, slo = total >> SPLIT, total & ((1 << SPLIT) - 1)
    vals = {plan.am: am, plan.g: np.where(mask, e - plan.t0, 0), plan.d: diff - z, plan.bq: p * shi,
            plan.u: total - 1 - r, plan.h: total // 2, plan.hb: total % 2, plan.shi: shi, plan.slo: slo}
    vals.update(plan.checks.witness(lambda n: vals[n] if n in vals else ctx.value(n), ctx.strict))
    return vals


def prove(ctx: B.ProverContext, op: Op, out_claims: Sequence[CL.Claim]) -> tuple[B.OpProof, list[CL.Claim]]:
    """Row zero-check, combined sumcheck, range checks and the exp lookup."""
    plan = _Plan(op, ctx.shape(op.output), ctx.spec, ctx.start)
    proof = B.OpProof()
    g = ctx.transcript.challenge_ext("ops/softmax/gamma")
    names = plan.row_names()
    point, vals = B.prove_zero_check(ctx, proof, LAY.n_vars(plan.rshape), [ctx.table(n) for n in names],
                                     plan.row_terms(g), names)
    claims = [CL.Claim(n, point, v) for n, v in zip(names, vals)]
    claims += plan.combined(g).prove(ctx, proof)
    claims += plan.checks.prove(ctx, proof)
    return proof, claims + list(out_claims)


def verify(ctx: B.VerifierContext, op: Op, out_claims: Sequence[CL.Claim], proof: B.OpProof) -> list[CL.Claim]:
    """Mirror of :func:`prove`; raises Reject."""
    plan = _Plan(op, ctx.shape(op.output), ctx.spec, ctx.start)
    rd = B.ProofReader(proof)
    g = ctx.transcript.challenge_ext("ops/softmax/gamma")
    names = plan.row_names()
    point, vals = B.verify_zero_check(ctx, rd, LAY.n_vars(plan.rshape), len(names), plan.row_terms(g), names)
    claims = [CL.Claim(n, point, v) for n, v in zip(names, vals)]
    claims += plan.combined(g).verify(ctx, rd)
    claims += plan.checks.verify(ctx, rd)
    rd.done()
    return claims + list(out_claims)
