"""``mean_pool``: ``y[b, :] = ⌊(Σ_t x[b, t, :] + ⌊T/2⌋) / T⌋`` with remainder ``0 ≤ r < T``.

``t`` runs over every middle axis: the sequence of a ``(b, t, d)`` tensor, or the positions of a
channel-last ``(b, h, w, c)`` feature map (global average pooling); ``T`` is their number.

Relation ``Σ_t x + ⌊T/2⌋ = T·y + r``, checked at the first output claim's point ``(r_b, r_d)``: with the
prover's ``r(r)``, the sum ``Σ_t x(r_b, t, r_d) = T·y + r − ⌊T/2⌋·ind`` is proved by one degree-2
sumcheck of ``x(r_b, t, d)·eq(r_d, d)`` over the positions and the features, so ``x`` is read at a
random point (reading it at ``(r_b, ½, …, ½, r_d)`` gave base-field randomizer coordinates: two proofs
revealed the per-channel sums of a private map, and with them a 2×2 head). ``r`` is range-checked, and
so is ``y`` (its declared range): then ``T·y + r`` spans fewer than ``T·2^16 < p`` values and the
relation has one solution. Without the check on ``y``, ``(y − T⁻¹ mod p, r + 1)`` also solves it — a
huge value a verifier would accept as the public pooled output. The range check reads the COMMITTED
``y``, so every claim on the output is returned for the commitment to open: a reader then sees that
``y`` (when the claims were only reduced through the relation, a prover committed the honest ``y`` and
fed its reader another solution with a different remainder).

Padded rows. The sum over the padded axis counts the padded rows of ``x``, and nothing else forces
them to zero (a norm output's padded rows, for one, are free: its root is 0 there). When ``t`` is not a
power of two a zero-check of ``(1 − ind_t)·x ≡ 0`` (``ind_t`` the public real-rows indicator) pins
every padded row of the committed ``x`` to zero first; it leaves one more claim on ``x``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from blindproof.zk.field import babybear as F
from blindproof.zk.ops import base as B
from blindproof.zk.iop import claims as CL
from blindproof.zk.iop import blind as BL
from blindproof.zk.iop import layout as LAY
from blindproof.zk.iop import mle
from blindproof.quant.spec import Op, QuantSpec


def shapes(op: Op, in_shapes: Sequence[tuple[int, ...]], spec: QuantSpec) -> dict[str, tuple[int, ...]]:
    """Output, witness r, range-check columns."""
    (xs,) = in_shapes
    if len(xs) < 3:
        raise ValueError(f"mean_pool {op.output}: expected (b, t, d) or (b, *spatial, c), got {xs}")
    ys = (xs[0], xs[-1])
    out = {op.output: ys, LAY.witness_name(op.output, "r"): ys}
    out.update(_checks(op, xs, spec).columns())
    return out


def check_bounds(op: Op, spec: QuantSpec) -> None:
    """ValueError unless every mean the reference can compute lies in the output's declared range.

    The proof checks ``Σ_t x + ⌊T/2⌋ = T·y + r`` mod p with ``y`` in its declared ``[lo, hi]``; that has
    the reference's solution only when the reference's ``y`` is in that range. A mean of values in
    ``[a, b]`` lies in ``[a, b]``, so the input's PROVEN range (:func:`domain.proven_ranges`, not its
    declaration) must lie inside ``[lo, hi]``; otherwise a sum the reference computes exactly could
    leave the window and only its residue mod p would verify (a hostile spec: an accumulator pooled
    into a narrow declared range)."""
    from blindproof.zk.ops.domain import proven_ranges, within

    ts = spec.tensors[op.output]
    r = proven_ranges(spec).get(op.inputs[0])
    if not within(r, ts.lo, ts.hi):
        raise ValueError(f"mean_pool {op.output}: the input's proven range {r if r is not None else 'none (±2^29)'} "
                         f"is not inside the output's declared range [{ts.lo}, {ts.hi}]; rescale the input first")


def _count(xs: tuple[int, ...]) -> int:
    """``T``: the number of entries each mean averages."""
    return int(np.prod(xs[1:-1]))


def _mid_vars(xs: tuple[int, ...]) -> int:
    return sum(LAY.dim_vars(n) for n in xs[1:-1])


def _checks(op: Op, xs: tuple[int, ...], spec: QuantSpec) -> B.Checks:
    ys = (xs[0], xs[-1])
    ts = spec.tensors[op.output]
    check_bounds(op, spec)
    rc = B.RangeCheck(LAY.aux_name(op.output, "r"), LAY.witness_name(op.output, "r"), ys, 0, _count(xs) - 1,
                      limb_bits=B.small_limbs(ys))
    yc = B.RangeCheck(LAY.aux_name(op.output, "y"), op.output, ys, ts.lo, ts.hi, limb_bits=B.small_limbs(ys))
    if (ts.hi - ts.lo + 1) * _count(xs) >= F.P:
        raise ValueError(f"mean_pool {op.output}: range [{ts.lo}, {ts.hi}] too wide for a unique quotient")
    return B.Checks(LAY.aux_name(op.output, "chk"), ranges=[rc, yc])


def aux(ctx: B.ProverContext, op: Op) -> dict[str, np.ndarray]:
    """Range-check columns of the remainder."""
    return _checks(op, ctx.shape(op.inputs[0]), ctx.spec).witness(ctx.value, ctx.strict)


def _sum_tables(ctx: B.ProverContext, op: Op, c: CL.Claim) -> list[np.ndarray]:
    """[x(r_b, t, d), eq(r_d, d)] over the sumcheck's (t, d): their product sums to ``Σ_t x(r_b, t, r_d)``."""
    xs = ctx.shape(op.inputs[0])
    vb, vt, vd = LAY.dim_vars(xs[0]), _mid_vars(xs), LAY.dim_vars(xs[-1])
    t = ctx.table(op.inputs[0])
    x = mle.bind_prefix(t, c.point[:vb]) if vb else F.embed(t)
    e = mle.eq_table(c.point[vb:])
    return [x, np.ascontiguousarray(np.broadcast_to(e[None], (1 << vt, 1 << vd, 4))).reshape(-1, 4)]


def _sum_vars(ctx: B.VerifierContext, op: Op) -> int:
    xs = ctx.shape(op.inputs[0])
    return _mid_vars(xs) + LAY.dim_vars(xs[-1])


def _sum_reads(ctx: B.VerifierContext, op: Op, c: CL.Claim) -> list[B.Read]:
    vb = LAY.dim_vars(ctx.shape(op.inputs[0])[0])
    return [(0, op.inputs[0], BL.fixed(c.point[:vb]) + BL.rounds(_sum_vars(ctx, op)))]


def _sum_target(ctx: B.VerifierContext, op: Op, c: CL.Claim, rv: np.ndarray) -> tuple[np.ndarray, list]:
    """``Σ_t x(r_b, t, r_d) = T·y(r) + r(r) − ⌊T/2⌋·ind`` and the randomizers of ``y`` and ``r`` inside it."""
    xs = ctx.shape(op.inputs[0])
    t = _count(xs)
    ind = LAY.indicator_eval((xs[0], xs[-1]), c.point)
    target = F.esub(F.eadd(F.emul(F.ext(t), c.value), rv), F.emul(F.ext(t // 2), ind))
    rclaim = CL.Claim(LAY.witness_name(op.output, "r"), c.point, rv)
    return target, B.libra_for(ctx, c, F.ext(t)) + B.libra_for(ctx, rclaim)


def _x_claim(ctx: B.VerifierContext, op: Op, c: CL.Claim, rho: np.ndarray, value: np.ndarray) -> CL.Claim:
    vb = LAY.dim_vars(ctx.shape(op.inputs[0])[0])
    return CL.Claim(op.inputs[0], np.concatenate([c.point[:vb], rho]), value)


def _pad_rows_table(xs: tuple[int, ...]) -> np.ndarray:
    """1 on the padded positions (any middle index past its size; every batch and feature entry, padded or
    not), else 0."""
    m = np.ones(LAY.padded_shape(xs), dtype=np.uint32)
    m[(slice(None), *[slice(0, n) for n in xs[1:-1]], slice(None))] = 0
    return m.reshape(-1)


def _pad_rows_eval(xs: tuple[int, ...], point: np.ndarray) -> np.ndarray:
    real, at = F.eone(), LAY.dim_vars(xs[0])
    for n in xs[1:-1]:
        v = LAY.dim_vars(n)
        real = F.emul(real, LAY.prefix_ones_eval(n, point[at:at + v]))
        at += v
    return F.esub(F.eone(), real)


def _has_pad_rows(xs: tuple[int, ...]) -> bool:
    return any(n != 1 << LAY.dim_vars(n) for n in xs[1:-1])


_PAD_TERMS = [(1, (0, 1))]
_SUM_TERMS = [(1, (0, 1))]


def prove(ctx: B.ProverContext, op: Op, out_claims: Sequence[CL.Claim]) -> tuple[B.OpProof, list[CL.Claim]]:
    """The relation at the first output claim's point (its sum over positions by a sumcheck, so ``x`` is
    read at a random point, never at ½); every output claim is returned for the commitment to open, so
    the reader's ``y`` is the committed, range-checked one; range checks of ``y`` and ``r``."""
    proof = B.OpProof()
    c = out_claims[0]
    rname = LAY.witness_name(op.output, "r")
    rv = ctx.hat(rname, c.point)
    proof.put_ext(rv[None])
    ctx.transcript.absorb_ext("ops/pool_r", rv)
    target, libra = _sum_target(ctx, op, c, rv)
    rho, finals = B.prove_sum(ctx, proof, _sum_vars(ctx, op), _sum_tables(ctx, op, c), _SUM_TERMS, target,
                              reads=_sum_reads(ctx, op, c), libra=libra)
    claims = [CL.Claim(rname, c.point, rv), _x_claim(ctx, op, c, rho, finals[0])]
    xs = ctx.shape(op.inputs[0])
    if _has_pad_rows(xs):  # the padded rows of x are zero
        point, vals = B.prove_zero_check(ctx, proof, LAY.n_vars(xs), [_pad_rows_table(xs), ctx.table(op.inputs[0])],
                                         _PAD_TERMS, [None, op.inputs[0]])
        claims.append(CL.Claim(op.inputs[0], point, vals[1]))
    claims += _checks(op, xs, ctx.spec).prove(ctx, proof)
    return proof, claims + list(out_claims)


def verify(ctx: B.VerifierContext, op: Op, out_claims: Sequence[CL.Claim], proof: B.OpProof) -> list[CL.Claim]:
    """Mirror of :func:`prove`; raises Reject."""
    n = ctx.vars(op.output)
    if not out_claims or any(c.tensor != op.output or c.point.shape[0] != n for c in out_claims):
        raise CL.Reject(f"mean_pool {op.output}: needs claims on its output with {n} coordinates")
    rd = B.ProofReader(proof)
    c = out_claims[0]
    rname = LAY.witness_name(op.output, "r")
    rv = rd.take_ext(1)[0]
    ctx.transcript.absorb_ext("ops/pool_r", rv)
    target, libra = _sum_target(ctx, op, c, rv)
    rho, finals = B.verify_sum(ctx, rd, _sum_vars(ctx, op), 2, _SUM_TERMS, target, reads=_sum_reads(ctx, op, c),
                               libra=libra)
    xs = ctx.shape(op.inputs[0])
    vb, vd = LAY.dim_vars(xs[0]), LAY.dim_vars(xs[-1])
    if not np.array_equal(finals[1], mle.eq_eval(c.point[vb:], rho[rho.shape[0] - vd:])):
        raise CL.Reject(f"mean_pool {op.output}: wrong eq value")
    claims = [CL.Claim(rname, c.point, rv), _x_claim(ctx, op, c, rho, finals[0])]
    if _has_pad_rows(xs):
        point, vals = B.verify_zero_check(ctx, rd, LAY.n_vars(xs), 2, _PAD_TERMS, [None, op.inputs[0]])
        if not np.array_equal(vals[0], _pad_rows_eval(xs, point)):
            raise CL.Reject(f"mean_pool {op.output}: wrong padded-rows indicator value")
        claims.append(CL.Claim(op.inputs[0], point, vals[1]))
    claims += _checks(op, xs, ctx.spec).verify(ctx, rd)
    rd.done()
    return claims + list(out_claims)
