"""``rescale``: ``y = clamp(q)`` with ``x·A + H = q·C + r``, ``0 ≤ r < 2^s`` (round half up).

Per last-axis channel ``j`` with shift ``s_j``: ``s_j > 0``: ``A = 1``, ``C = 2^s_j``, ``H = 2^(s_j−1)``;
``s_j ≤ 0``: ``A = 2^−s_j``, ``C = 1``, ``H = 0`` and ``r = 0`` (reference.shift_round). The relation is
one zero-check over the tensor with public tables ``A``, ``C``, ``H`` that hold these values on real
entries and ``A = H = 0``, ``C = 1`` on padding: there ``q + r = 0`` with both range-checked, so
``q``, ``r`` and the output are zero on every padded entry whatever ``x`` holds (a junk-padded input, or
junk weight padding that reached it, stops here; docs/zk-ops.md §5a).

Uniqueness (why the field relation is the integer one). ``x`` is fixed by the ops before (a field
value: the integer of the reference, whose rescale quotients lie in ``[-2^(29−s), 2^(29−s))``, else it
raises BoundError; spec.quotient_bits). Its bound comes from what a proof enforces on it
(:func:`~blindproof.zk.ops.domain.proven_range`; the reference's ``2^29`` when nothing does), never
from its declared range alone: the clamp is skipped only when no value of ``x`` can need it. For ``s_j > 0`` the prover picks ``(q, r)``; two solutions of
``x + H ≡ q·2^s + r (mod p)`` differ by a multiple of ``p`` in ``q·2^s + r``. The proof range-checks ``q``
into ``[-2^w, 2^w)`` with ``w ≤ 29 − s`` (the honest window, tightened by the input's declared range) and
``r`` into ``[0, 2^s)``, so ``q·2^s + r`` takes fewer than ``2^30 < p`` values: one solution, the
reference's. (Without the window, ``q − 61440·k, r + k`` with ``s = 15`` also solves it, since
``61440·2^15 = p − 1``.) For ``s_j ≤ 0`` there is nothing to pick: ``q = x·2^−s`` and ``r = 0``.

Remainder range: one shift ``s`` for all channels: ``r ∈ [0, 2^s)``. Per-channel shifts: ``r ∈
[0, 2^smax)`` and the aux column ``r' = r ⊙ 2^(smax − s_j)`` in ``[0, 2^smax)`` (checked in the same
zero-check): since ``r < 2^smax`` and ``2^(2 smax − smin) < p`` nothing wraps, so ``r < 2^s_j``.

Quotient window: channels share one window ``[-2^W, 2^W)`` when their honest windows ``w_j`` agree, and
``q`` (or ``y`` when it plays ``q``) is checked in it. Otherwise the aux column ``q' = q ⊙ 2^(W − w_j)``
is checked in ``[-2^W, 2^W)`` (same zero-check) next to a loose bound ``|q| ≤ L`` (the clamp's window,
or a check of ``y`` in ``[-2^W, 2^W)``); with ``L·2^(W − w_min) + 2^W < p`` nothing wraps, so
``|q| < 2^w_j`` per channel.

Clamp: when the honest range of ``q`` lies inside ``[lo, hi]`` the clamp is the identity and ``y`` itself
plays ``q``; otherwise the :class:`~blindproof.zk.ops.base.Clamp` gadget ties ``y`` to the witness
``q``, with ``|q| ≤ q_bound`` from the window (at most ``2^29``, so even a left shift of a full-range
accumulator has a sound clamp).

The claims on ``y`` are returned unchanged (settled by the commitment); the zero-check draws its own
random point.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from blindproof.zk.field import babybear as F
from blindproof.zk.ops import base as B
from blindproof.zk.iop import claims as CL
from blindproof.zk.iop import layout as LAY
from blindproof.zk.ops import domain as D
from blindproof.quant.spec import Op, QuantSpec


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
        # |x| from the range a proof enforces on x (domain.proven_range), never from its declaration:
        # a declared-but-unproven bound would let y = q skip a clamp the reference applies
        lay = D.rescale_layout(op, spec, D.proven_range(spec, op.inputs[0]))
        wins, q_lo, q_hi = lay["wins"], lay["q_lo"], lay["q_hi"]
        self.q_bound = max(-q_lo, q_hi)
        self.y, self.q_name = op.output, LAY.witness_name(op.output, "q")
        self.r = LAY.witness_name(op.output, "r")
        self.identity = lay["identity"]
        lb = B.small_limbs(shape)
        self.clamp = None if self.identity else B.Clamp(LAY.aux_name(op.output, "clamp"), self.q_name, self.y,
                                                         shape, self.lo, self.hi, self.q_bound, lb)
        self.scaled = None
        ranges = []
        if self.uniform:
            ranges.append(B.RangeCheck(LAY.aux_name(op.output, "r"), self.r, shape, 0,
                                       (1 << max(int(s[0]), 0)) - 1, limb_bits=lb))
        else:
            if 2 * self.smax - self.smin > 30:
                raise ValueError(f"rescale {op.output}: per-channel shifts {self.smin}..{self.smax} too spread")
            self.scaled = LAY.aux_name(op.output, "r_scaled")
            self.D = np.left_shift(1, self.smax - np.maximum(s, 0))
            top = (1 << self.smax) - 1
            ranges += [B.RangeCheck(LAY.aux_name(op.output, "r"), self.r, shape, 0, top, limb_bits=lb),
                       B.RangeCheck(LAY.aux_name(op.output, "rs"), self.scaled, shape, 0, top, limb_bits=lb)]
        ranges += self._window(wins, shape, lb)
        if self.clamp is not None:
            ranges += self.clamp.ranges()
        self.checks = B.Checks(LAY.aux_name(op.output, "chk"), ranges=ranges)

    def _window(self, wins: dict[int, int], shape: tuple[int, ...], lb: int) -> list[B.RangeCheck]:
        """Range checks that make the quotient unique (module docstring); none when no shift is positive.
        Sets ``self.q_cols``: aux columns ``q ⊙ V`` (public ``V`` per channel) proved in the zero-check."""
        self.q_cols: list[tuple[str, np.ndarray]] = []
        free = sorted({wins[int(sj)] for sj in self.s if sj > 0})
        if not free:
            return []  # q = x·2^-s is fixed by x: nothing for the prover to choose
        W = max(wins.values())
        tag = lambda t: LAY.aux_name(self.op.output, t)  # noqa: E731
        window = lambda t, name, w: B.RangeCheck(tag(t), name, shape, -(1 << w), (1 << w) - 1,  # noqa: E731
                                                  limb_bits=lb)
        w_of = np.array([wins[int(sj)] for sj in self.s], dtype=np.int64)
        if np.all(w_of == W):
            return [window("qw", self.qq, W)]
        E = np.left_shift(1, W - w_of)
        if self.clamp is not None:  # the clamp's own window bounds q
            loose, out = max(abs(self.lo), abs(self.hi)) + (1 << self.clamp.bits) - 1, []
        else:
            loose, out = 1 << W, [window("qw", self.qq, W)]
        if loose * (1 << (W - free[0])) + (1 << W) < F.P:  # q' = q·E cannot wrap: one scaled column
            self.q_cols = [(tag("q_scaled"), E)]
            return out + [window("qsw", tag("q_scaled"), W)]
        # shifts too spread for one scaled column: q·M_w (M_w the channels of window w) per window below W
        out = [window("qw", self.qq, W)]
        for k, w in enumerate(x for x in free if x < W):
            name = tag(f"q_win{k}")
            self.q_cols.append((name, (w_of == w).astype(np.int64)))
            out.append(window(f"qw{k}", name, w))
        return out

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
        out.update({name: self.shape for name, _ in self.q_cols})
        return out

    def _real_rows(self, vec: np.ndarray) -> np.ndarray:
        """``vec`` broadcast over the real rows, zero on every padded entry."""
        lead = self.shape[:-1]
        t = LAY.broadcast_table(vec, self.shape)
        ind = LAY.indicator_table(lead + (1,))
        return F.mul(t.reshape(-1, LAY.padded_shape(self.shape)[-1]), ind.reshape(-1, 1)).reshape(-1)

    def tables(self) -> list[np.ndarray]:
        """Public tables: A, C, H (real entries; A = H = 0, C = 1 on padding), then D, E if present."""
        c = F.add(self._real_rows(self.C - 1), np.ones(1, dtype=np.uint32))
        out = [self._real_rows(self.A), c, self._real_rows(self.H)]
        if self.scaled is not None:
            out.append(LAY.broadcast_table(self.D, self.shape))
        out += [LAY.broadcast_table(v, self.shape) for _, v in self.q_cols]
        return out

    def public_evals(self, point: np.ndarray) -> list[np.ndarray]:
        k = LAY.dim_vars(self.shape[-1])
        ind = LAY.indicator_eval(self.shape[:-1], point[:point.shape[0] - k])
        real = lambda v: F.emul(ind, LAY.broadcast_eval(v, self.shape, point))  # noqa: E731
        out = [real(self.A), F.eadd(F.eone(), real(self.C - 1)), real(self.H)]
        if self.scaled is not None:
            out.append(LAY.broadcast_eval(self.D, self.shape, point))
        out += [LAY.broadcast_eval(v, self.shape, point) for _, v in self.q_cols]
        return out

    def names(self) -> list[str]:
        """Committed tables of the zero-check, in order (then the public ones)."""
        return ([self.op.inputs[0], self.qq, self.r] + ([self.scaled] if self.scaled else [])
                + [name for name, _ in self.q_cols])

    def terms(self, gamma: np.ndarray) -> list:
        # tables: committed x, q, r, [r'], q-columns, then public A, C, H, [D], their multipliers
        nc = len(self.names())
        first_q = nc - len(self.q_cols)
        a, c, h = nc, nc + 1, nc + 2
        m1 = F.eneg(F.eone())
        t = [(1, (0, a)), (1, (h,)), (m1, (1, c)), (m1, (2,))]
        nxt = nc + 3
        if self.scaled is not None:  # γ (r' − r·D)
            t += [(gamma, (3,)), (F.eneg(gamma), (2, nxt))]
            nxt += 1
        g = gamma
        for i in range(len(self.q_cols)):  # γ^(2+i) (q_i − q·V_i)
            g = F.emul(g, gamma)
            t += [(g, (first_q + i,)), (F.eneg(g), (1, nxt + i))]
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
    for name, v in plan.q_cols:
        vals[name] = ctx.value(plan.qq) * v
    vals.update(plan.checks.witness(lambda n: vals[n] if n in vals else ctx.value(n), ctx.strict))
    return vals


def prove(ctx: B.ProverContext, op: Op, out_claims: Sequence[CL.Claim]) -> tuple[B.OpProof, list[CL.Claim]]:
    """Zero-check of the rounding relation, clamp, range checks."""
    plan = _Plan(op, ctx.shape(op.output), ctx.spec)
    proof = B.OpProof()
    gamma = ctx.transcript.challenge_ext("ops/rescale_gamma")
    names = plan.names()
    point, vals = B.prove_zero_check(ctx, proof, LAY.n_vars(plan.shape),
                                     [ctx.table(n) for n in names] + plan.tables(), plan.terms(gamma), names)
    claims = [CL.Claim(n, point, v) for n, v in zip(names, vals)]
    if plan.clamp is not None:
        claims += plan.clamp.prove(ctx, proof)
    claims += plan.checks.prove(ctx, proof)
    return proof, claims + list(out_claims)


def verify(ctx: B.VerifierContext, op: Op, out_claims: Sequence[CL.Claim], proof: B.OpProof) -> list[CL.Claim]:
    """Mirror of :func:`prove`; raises Reject."""
    plan = _Plan(op, ctx.shape(op.output), ctx.spec)
    rd = B.ProofReader(proof)
    gamma = ctx.transcript.challenge_ext("ops/rescale_gamma")
    names = plan.names()
    n_pub = 3 + (plan.scaled is not None) + len(plan.q_cols)
    point, vals = B.verify_zero_check(ctx, rd, LAY.n_vars(plan.shape), len(names) + n_pub, plan.terms(gamma), names)
    for got, want in zip(vals[len(names):], plan.public_evals(point)):
        if not np.array_equal(got, want):
            raise CL.Reject(f"rescale {op.output}: wrong public table value")
    claims = [CL.Claim(n, point, v) for n, v in zip(names, vals)]
    if plan.clamp is not None:
        claims += plan.clamp.verify(ctx, rd)
    claims += plan.checks.verify(ctx, rd)
    rd.done()
    return claims + list(out_claims)
