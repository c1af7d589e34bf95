"""``embed``: rows of a committed table selected by public indices (token ids or positions).

For a claim ``y(r_rows, r_d) = v`` with ``y[row] = W[idx[row]]``:

    v = Σ_i O(i) · W(i, r_d),   O(i) = Σ_{real rows} eq(r_rows, row) · [idx[row] = i]

a degree-2 sumcheck over the table's rows; ``O`` is public (the verifier builds it in
O(rows + vocabulary)), ``W(·, r_d)`` is the committed table with its column variables bound. The
sumcheck ends in one claim on the table. Positions: ``idx[b, t] = start + t``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from blindproof.zk.field import babybear as F
from blindproof.zk.iop import mle
from blindproof.zk.ops import base as B
from blindproof.zk.iop import claims as CL
from blindproof.zk.iop import layout as LAY
from blindproof.zk.iop import blind as BL
from blindproof.quant.spec import Op, QuantSpec

_DOT = [(1, (0, 1))]


def shapes(op: Op, in_shapes: Sequence[tuple[int, ...]], spec: QuantSpec) -> dict[str, tuple[int, ...]]:
    """Output shape: the index shape plus the table width."""
    (xs,) = in_shapes
    ws = spec.weights[op.params["weight"]].shape
    return {op.output: (*xs, ws[1])}


def blind_vars(op: Op, shapes) -> dict[str, int]:
    """The product sums the table over its rows: the blinding variable is the row axis's last."""
    w = LAY.weight_name(op.params["weight"])
    return {w: LAY.dim_vars(shapes[w][0]) - 1} if LAY.dim_vars(shapes[w][0]) else {w: None}


def aux(ctx: B.ProverContext, op: Op) -> dict[str, np.ndarray]:
    """No auxiliary columns."""
    return {}


def _indices(ctx: B.VerifierContext, op: Op) -> np.ndarray:
    src = op.inputs[0]
    if src not in ctx.public:
        raise CL.Reject(f"embed {op.output}: index tensor {src!r} must be public")
    idx = np.asarray(ctx.public[src], dtype=np.int64)
    rows = ctx.spec.weights[op.params["weight"]].shape[0]
    if op.params["index"] == "positions":
        idx = np.broadcast_to(ctx.start + np.arange(idx.shape[-1]), idx.shape)
    if idx.size and (idx.min() < 0 or idx.max() >= rows):
        raise CL.Reject(f"embed {op.output}: indices outside the table's {rows} rows")
    return idx


def _onehot_weights(ctx: B.VerifierContext, op: Op, r_rows: np.ndarray) -> np.ndarray:
    """O(i) for every padded table row i, as an extension table."""
    idx = _indices(ctx, op)
    rows = ctx.spec.weights[op.params["weight"]].shape[0]
    eq = mle.eq_table(r_rows).reshape(LAY.padded_shape(idx.shape) + (4,))
    eq = eq[tuple(slice(0, d) for d in idx.shape)].reshape(-1, 4).astype(np.uint64)
    acc = np.zeros((1 << LAY.dim_vars(rows), 4), dtype=np.uint64)
    np.add.at(acc, idx.reshape(-1), eq)  # ≤ 2^32 terms of < 2^31: no overflow for realistic sizes
    return (acc % F.P).astype(np.uint32)


def _split(ctx: B.VerifierContext, op: Op, point: np.ndarray):
    k = LAY.n_vars(ctx.shape(op.output)[:-1])
    return point[:k], point[k:]


def prove(ctx: B.ProverContext, op: Op, out_claims: Sequence[CL.Claim]) -> tuple[B.OpProof, list[CL.Claim]]:
    """Reduce the first output claim to one claim on the table; further claims are returned as-is."""
    proof = B.OpProof()
    c = out_claims[0]
    r_rows, r_d = _split(ctx, op, c.point)
    wname = LAY.weight_name(op.params["weight"])
    tables = [_onehot_weights(ctx, op, r_rows), mle.bind_suffix(ctx.table(wname), r_d)]
    n = LAY.dim_vars(ctx.spec.weights[op.params["weight"]].shape[0])
    rho, finals = B.prove_sum(ctx, proof, n, tables, _DOT, c.value, reads=[(1, wname, BL.rounds(n) + BL.fixed(r_d))],
                              libra=B.libra_for(ctx, c))
    return proof, [CL.Claim(wname, np.concatenate([rho, r_d]), finals[1])] + list(out_claims[1:])


def verify(ctx: B.VerifierContext, op: Op, out_claims: Sequence[CL.Claim], proof: B.OpProof) -> list[CL.Claim]:
    """Mirror of :func:`prove`; raises Reject."""
    n_out = ctx.vars(op.output)
    if not out_claims or any(c.tensor != op.output or c.point.shape[0] != n_out for c in out_claims):
        raise CL.Reject(f"embed {op.output}: needs claims on its output with {n_out} coordinates")
    rd = B.ProofReader(proof)
    c = out_claims[0]
    r_rows, r_d = _split(ctx, op, c.point)
    n = LAY.dim_vars(ctx.spec.weights[op.params["weight"]].shape[0])
    wname = LAY.weight_name(op.params["weight"])
    rho, finals = B.verify_sum(ctx, rd, n, 2, _DOT, c.value, reads=[(1, wname, BL.rounds(n) + BL.fixed(r_d))],
                               libra=B.libra_for(ctx, c))
    rd.done()
    if not np.array_equal(finals[0], mle.evaluate(_onehot_weights(ctx, op, r_rows), rho)):
        raise CL.Reject(f"embed {op.output}: wrong one-hot weight value")
    return [CL.Claim(wname, np.concatenate([rho, r_d]), finals[1])] + list(out_claims[1:])
