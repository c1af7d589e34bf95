"""``split_heads`` / ``merge_heads``: relabellings, proved by a permutation of MLE variables.

With the head dimension ``hd`` a power of two, padding ``H·hd`` to a power of two is padding ``H`` to a
power of two, so the canonical table of ``x (b, t, H·hd)`` has variables ``(b, t, h, d)`` and that of
``y (b, H, t, hd)`` has ``(b, h, t, d)``: the same entries, variables permuted. A claim on one is a claim
on the other at the permuted point; the proof is empty and costs nothing.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from blindproof.zk.ops import base as B
from blindproof.zk.iop import claims as CL
from blindproof.zk.iop import layout as LAY
from blindproof.quant.spec import Op, QuantSpec


def _check_hd(op: Op, hd: int) -> None:
    if hd < 1 or hd & (hd - 1):
        raise ValueError(f"{op.kind} {op.output}: head dim {hd} must be a power of two "
                         "(the relabelling is then a permutation of MLE variables)")


def shapes(op: Op, in_shapes: Sequence[tuple[int, ...]], spec: QuantSpec) -> dict[str, tuple[int, ...]]:
    """Output shape."""
    (xs,) = in_shapes
    if op.kind == "split_heads":
        h = int(op.params["heads"])
        if len(xs) != 3 or xs[2] % h:
            raise ValueError(f"split_heads {op.output}: cannot split {xs} into {h} heads")
        _check_hd(op, xs[2] // h)
        return {op.output: (xs[0], h, xs[1], xs[2] // h)}
    if len(xs) != 4:
        raise ValueError(f"merge_heads {op.output}: expected (b, H, t, hd), got {xs}")
    _check_hd(op, xs[3])
    return {op.output: (xs[0], xs[2], xs[1] * xs[3])}


def aux(ctx: B.ProverContext, op: Op) -> dict[str, np.ndarray]:
    """No auxiliary columns."""
    return {}


def relabel(op: Op, shapes) -> tuple[str, str, list[int]]:
    """(output, input, perm): the output's variable ``i`` is the input's ``perm[i]`` (the output
    shares the input's randomizer, so a transferred claim stays exact)."""
    if op.kind == "split_heads":
        b, h, t, hd = shapes[op.output]
    else:
        b, h, t, hd = shapes[op.inputs[0]]
    vb, vh, vt, vd = (LAY.dim_vars(d) for d in (b, h, t, hd))
    B_, T_, H_, D_ = (list(range(o, o + k)) for o, k in ((0, vb), (vb, vt), (vb + vt, vh), (vb + vt + vh, vd)))
    if op.kind == "split_heads":  # y (b, h, t, d) from x (b, t, h, d)
        return op.output, op.inputs[0], B_ + H_ + T_ + D_
    Bh, Hh, Th, Dh = (list(range(o, o + k)) for o, k in ((0, vb), (vb, vh), (vb + vh, vt), (vb + vh + vt, vd)))
    return op.output, op.inputs[0], Bh + Th + Hh + Dh  # y (b, t, h, d) from x (b, h, t, d)


def _transfer(ctx: B.VerifierContext, op: Op, claim: CL.Claim) -> CL.Claim:
    if op.kind == "split_heads":
        b, h, t, hd = ctx.shape(op.output)
    else:
        b, h, t, hd = ctx.shape(op.inputs[0])
    vb, vh, vt, vd = (LAY.dim_vars(d) for d in (b, h, t, hd))
    p = claim.point
    if op.kind == "split_heads":  # y (b, h, t, d) -> x (b, t, h, d)
        rb, rh, rt, rd = p[:vb], p[vb:vb + vh], p[vb + vh:vb + vh + vt], p[vb + vh + vt:]
        return CL.Claim(op.inputs[0], np.concatenate([rb, rt, rh, rd]), claim.value)
    rb, rt, rh, rd = p[:vb], p[vb:vb + vt], p[vb + vt:vb + vt + vh], p[vb + vt + vh:]  # y (b, t, h, d)
    return CL.Claim(op.inputs[0], np.concatenate([rb, rh, rt, rd]), claim.value)


def prove(ctx: B.ProverContext, op: Op, out_claims: Sequence[CL.Claim]) -> tuple[B.OpProof, list[CL.Claim]]:
    """Transfer every claim (empty proof)."""
    return B.OpProof(), [_transfer(ctx, op, c) for c in out_claims]


def verify(ctx: B.VerifierContext, op: Op, out_claims: Sequence[CL.Claim], proof: B.OpProof) -> list[CL.Claim]:
    """Transfer every claim; the proof must be empty."""
    n = ctx.vars(op.output)
    if any(c.tensor != op.output or c.point.shape[0] != n for c in out_claims):
        raise CL.Reject(f"{op.kind} {op.output}: claims must be on its output with {n} coordinates")
    B.ProofReader(proof).done()
    return [_transfer(ctx, op, c) for c in out_claims]
