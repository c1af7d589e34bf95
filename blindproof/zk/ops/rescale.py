"""``rescale``: ``y = clamp(q)`` with ``x·A + H = q·C + r``, ``0 ≤ r < 2^s`` (round half up).

Per last-axis channel ``j`` with shift ``s_j``: ``s_j > 0``: ``A = 1``, ``C = 2^s_j``, ``H = 2^(s_j−1)``;
``s_j ≤ 0``: ``A = 2^−s_j``, ``C = 1``, ``H = 0`` and ``r = 0`` (reference.shift_round). The relation is
one zero-check over the tensor with the public broadcast tables ``A``, ``C`` and ``H·ind``.

Remainder range: one shift ``s`` for all channels: ``r ∈ [0, 2^s)``. Per-channel shifts: ``r ∈
[0, 2^smax)`` and the aux column ``r' = r ⊙ 2^(smax − s_j)`` in ``[0, 2^smax)`` (checked in the same
zero-check): since ``r < 2^smax`` and ``2^(2 smax − smin) < p`` nothing wraps, so ``r < 2^s_j``.

Clamp: ``|q|`` is bounded from the declared range of ``x`` (below 2^30 in the integer model). A
clamp on a left shift (``s ≤ 0``) of a full-range accumulator has no sound excess bound and is refused. When
``[−q_bound, q_bound] ⊆ [lo, hi]`` the clamp is the identity and ``y`` itself plays ``q``; otherwise
the :class:`~blindproof.zk.ops.base.Clamp` gadget ties ``y`` to the witness ``q``.

The claims on ``y`` are returned unchanged (settled by the commitment); the zero-check draws its own
random point.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from blindproof.zk import field as F
from blindproof.zk.ops import base as B
from blindproof.zk.quant.spec import ACC_BOUND, Op, QuantSpec


def _shifts(op: Op, n: int) -> np.ndarray:
    s = np.asarray(op.params["shift"], dtype=np.int64).reshape(-1)
    if s.size == 1:
        return np.full(n, int(s[0]), dtype=np.int64)
    if s.size != n:
        raise ValueError(f"rescale {op.output}: {s.size} shifts for {n} channels")
    return s


class _Plan:
    def __init__(self, op: Op, shape: tuple[int, ...], spec: QuantSpec) -> None:
        self.op, self.shape = op, shape
        s = _shifts(op, shape[-1])
        self.s = s
        self.smax, self.smin = int(max(s.max(), 0)), int(s.min())
        self.A = np.where(s > 0, 1, np.left_shift(1, np.maximum(-s, 0)))
        self.C = np.where(s > 0, np.left_shift(1, np.maximum(s, 0)), 1)
        self.H = np.where(s > 0, np.left_shift(1, np.maximum(s - 1, 0)), 0)
        self.uniform = bool(np.all(s == s[0]))
        ts = spec.tensors[op.output]
        self.lo, self.hi = ts.lo, ts.hi
        xs = spec.tensors[op.inputs[0]]
        xb = min(max(abs(xs.lo), abs(xs.hi)), ACC_BOUND - 1)  # |x| from its declared range
        qb = [(xb << int(-sj)) if sj <= 0 else ((xb + (1 << int(sj - 1))) >> int(sj)) + 1 for sj in set(s.tolist())]
        self.q_bound = min(max(qb), ACC_BOUND - 1)
        self.y, self.q_name = op.output, B.witness_name(op.output, "q")
        self.r = B.witness_name(op.output, "r")
        self.identity = -self.lo >= self.q_bound and self.hi >= self.q_bound
        lb = B.small_limbs(shape)
        self.clamp = None if self.identity else B.Clamp(B.aux_name(op.output, "clamp"), self.q_name, self.y,
                                                         shape, self.lo, self.hi, self.q_bound, lb)
        self.scaled = None
        ranges = []
        if self.uniform:
            ranges.append(B.RangeCheck(B.aux_name(op.output, "r"), self.r, shape, 0,
                                       (1 << max(int(s[0]), 0)) - 1, limb_bits=lb))
        else:
            if 2 * self.smax - self.smin > 30:
                raise ValueError(f"rescale {op.output}: per-channel shifts {self.smin}..{self.smax} too spread")
            self.scaled = B.aux_name(op.output, "r_scaled")
            self.D = np.left_shift(1, self.smax - np.maximum(s, 0))
            top = (1 << self.smax) - 1
            ranges += [B.RangeCheck(B.aux_name(op.output, "r"), self.r, shape, 0, top, limb_bits=lb),
                       B.RangeCheck(B.aux_name(op.output, "rs"), self.scaled, shape, 0, top, limb_bits=lb)]
        if self.clamp is not None:
            ranges += self.clamp.ranges()
        self.checks = B.Checks(B.aux_name(op.output, "chk"), ranges=ranges)

    @property
    def qq(self) -> str:
        """The tensor that plays q in the rounding relation."""
        return self.y if self.identity else self.q_name

    def columns(self) -> dict[str, tuple[int, ...]]:
        out = dict(self.checks.columns())
        if self.clamp is not None:
            out.update(self.clamp.columns())
        if self.scaled is not None:
            out[self.scaled] = self.shape
        return out

    def tables(self) -> list[np.ndarray]:
        """Public tables: A, C, H (on real entries) and, per-channel, D."""
        lead = self.shape[:-1]
        h = B.broadcast_table(self.H, self.shape)
        ind = B.indicator_table(lead + (1,))  # real rows
        h = F.mul(h.reshape(-1, B.padded_shape(self.shape)[-1]), ind.reshape(-1, 1)).reshape(-1)
        out = [B.broadcast_table(self.A, self.shape), B.broadcast_table(self.C, self.shape), h]
        if self.scaled is not None:
            out.append(B.broadcast_table(self.D, self.shape))
        return out

    def public_evals(self, point: np.ndarray) -> list[np.ndarray]:
        k = B.dim_vars(self.shape[-1])
        ind = B.indicator_eval(self.shape[:-1], point[:point.shape[0] - k])
        out = [B.broadcast_eval(self.A, self.shape, point), B.broadcast_eval(self.C, self.shape, point),
               F.emul(ind, B.broadcast_eval(self.H, self.shape, point))]
        if self.scaled is not None:
            out.append(B.broadcast_eval(self.D, self.shape, point))
        return out

    def names(self) -> list[str]:
        """Committed tables of the zero-check, in order (then the public ones)."""
        return [self.op.inputs[0], self.qq, self.r] + ([self.scaled] if self.scaled else [])

    def terms(self, gamma: np.ndarray) -> list:
        # tables: committed x, q, r, [r'] then public A, C, H, [D]
        nc = len(self.names())
        a, c, h = nc, nc + 1, nc + 2
        m1 = F.eneg(F.eone())
        t = [(1, (0, a)), (1, (h,)), (m1, (1, c)), (m1, (2,))]
        if self.scaled is not None:  # γ (r' − r·D)
            t += [(gamma, (3,)), (F.eneg(gamma), (2, nc + 3))]
        return t


def shapes(op: Op, in_shapes: Sequence[tuple[int, ...]], spec: QuantSpec) -> dict[str, tuple[int, ...]]:
    """Output, witnesses q and r, and the aux columns."""
    (xs,) = in_shapes
    plan = _Plan(op, tuple(xs), spec)
    out = {op.output: tuple(xs), plan.q_name: tuple(xs), plan.r: tuple(xs)}
    out.update(plan.columns())
    return out


def aux(ctx: B.ProverContext, op: Op) -> dict[str, np.ndarray]:
    """Clamp excesses, scaled remainders, limbs and multiplicities."""
    plan = _Plan(op, ctx.shape(op.output), ctx.spec)
    vals: dict[str, np.ndarray] = {}
    if plan.clamp is not None:
        vals.update(plan.clamp.witness(ctx.value(plan.q_name), ctx.strict))
    if plan.scaled is not None:
        vals[plan.scaled] = ctx.value(plan.r) * plan.D
    vals.update(plan.checks.witness(lambda n: vals[n] if n in vals else ctx.value(n), ctx.strict))
    return vals


def prove(ctx: B.ProverContext, op: Op, out_claims: Sequence[B.Claim]) -> tuple[B.OpProof, list[B.Claim]]:
    """Zero-check of the rounding relation, clamp, range checks."""
    plan = _Plan(op, ctx.shape(op.output), ctx.spec)
    proof = B.OpProof()
    gamma = ctx.transcript.challenge_ext("ops/rescale_gamma")
    names = plan.names()
    point, vals = B.prove_zero_check(ctx, proof, B.n_vars(plan.shape),
                                     [ctx.table(n) for n in names] + plan.tables(), plan.terms(gamma))
    claims = [B.Claim(n, point, v) for n, v in zip(names, vals)]
    if plan.clamp is not None:
        claims += plan.clamp.prove(ctx, proof)
    claims += plan.checks.prove(ctx, proof)
    return proof, claims + list(out_claims)


def verify(ctx: B.VerifierContext, op: Op, out_claims: Sequence[B.Claim], proof: B.OpProof) -> list[B.Claim]:
    """Mirror of :func:`prove`; raises Reject."""
    plan = _Plan(op, ctx.shape(op.output), ctx.spec)
    rd = B.ProofReader(proof)
    gamma = ctx.transcript.challenge_ext("ops/rescale_gamma")
    names = plan.names()
    n_pub = 4 if plan.scaled is not None else 3
    point, vals = B.verify_zero_check(ctx, rd, B.n_vars(plan.shape), len(names) + n_pub, plan.terms(gamma))
    for got, want in zip(vals[len(names):], plan.public_evals(point)):
        if not np.array_equal(got, want):
            raise B.Reject(f"rescale {op.output}: wrong public table value")
    claims = [B.Claim(n, point, v) for n, v in zip(names, vals)]
    if plan.clamp is not None:
        claims += plan.clamp.verify(ctx, rd)
    claims += plan.checks.verify(ctx, rd)
    rd.done()
    return claims + list(out_claims)
