"""``conv``: a channel-last convolution ``y[b, p, o] = Σ_{k, c} x[b, tap(p, k), c] · W[o, k, c] (+ bias[o])``
proved by its own structure, with nothing committed beyond ``x``, ``W`` and ``y``.

Geometry (:mod:`blindproof.quant.conv`): output position ``p`` reads input position ``q = s·p + d·k −
pad`` per spatial axis; reads outside the input are the convolution's zero padding. Write the reads as a
public selector ``S(p, q, k) = [q = tap(p, k)]`` (real ``p``, ``k`` and ``q`` only), a product of one
factor per spatial axis. Then for a claim ``y(r_b, r_p, r_o) = v``

    v − [ind(r_b, r_p) · bias(r_o)] = Σ_{q, k, c} x(r_b, q, c) · W(r_o, k, c) · S(r_p, q, k),

one degree-3 sumcheck over the input positions, the kernel offsets and the channels (in that order, so
both operands' blinding variables — their last, a channel — are bound after every variable above them).
Its last point gives one claim on ``x``, one on ``W`` and the selector's value, which the verifier
computes itself in ``O(P·K)`` per axis. The prover's tables span ``Q·K·C`` entries (what im2col would
have committed; here they are only the sumcheck's working tables).

Padding. ``S`` is zero on padded kernel offsets and padded input positions, so junk there meets zero;
junk weight columns on padded channels meet ``x``'s padded channels, which
:func:`blindproof.zk.proof.config.check_padding_sound` requires pinned to zero unless ``C`` is a power
of two (as for ``linear``). Padded output positions and channels take whatever the sum gives, as for
``linear``'s padded rows; the rescale after the accumulator zeroes them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from blindproof.quant.conv import ConvGeometry, conv_shapes
from blindproof.quant.spec import Op, QuantSpec
from blindproof.zk.field import babybear as F
from blindproof.zk.iop import blind as BL
from blindproof.zk.iop import claims as CL
from blindproof.zk.iop import layout as LAY
from blindproof.zk.iop import mle
from blindproof.zk.ops import base as B

_PRODUCT = [(1, (0, 1, 2))]


def _geometry(op: Op, w_shape: Sequence[int]) -> ConvGeometry:
    return ConvGeometry.from_params(op.params, len(w_shape) - 2)


def shapes(op: Op, in_shapes: Sequence[tuple[int, ...]], spec: QuantSpec) -> dict[str, tuple[int, ...]]:
    """Output shape (no witnesses, no aux columns)."""
    (xs,) = in_shapes
    ws = spec.weights[op.params["weight"]].shape
    try:
        return {op.output: conv_shapes(xs, ws, _geometry(op, ws))}
    except ValueError as exc:
        raise ValueError(f"conv {op.output}: {exc}") from None


def aux(ctx: B.ProverContext, op: Op) -> dict[str, np.ndarray]:
    """No auxiliary columns."""
    return {}


def blind_vars(op: Op, shapes) -> dict[str, int | None]:
    """Both operands keep their default blinding variable (their last, which the sum binds) unless
    nothing of them but the fixed prefix has a variable."""
    w = LAY.weight_name(op.params["weight"])
    out: dict[str, int | None] = {}
    if not LAY.n_vars(shapes[w][1:]):
        out[w] = None
    x = op.inputs[0]
    if x in shapes and not LAY.n_vars(shapes[x][1:]):
        out[x] = None
    return out


class _Dims:
    """Variable counts of one conv: batch, input positions per axis, kernel offsets per axis, channels,
    output positions per axis, output channels."""

    def __init__(self, ctx: B.VerifierContext, op: Op) -> None:
        xs = ctx.shape(op.inputs[0])
        ws = ctx.shape(LAY.weight_name(op.params["weight"]))
        ys = ctx.shape(op.output)
        self.geom = _geometry(op, ws)
        self.sizes, self.kernel, self.outs = xs[1:-1], ws[1:-1], ys[1:-1]
        self.ys, self.sum_shape = ys, (*self.sizes, *self.kernel, xs[-1])  # the sumcheck runs over (q, k, c)
        self.vq = [LAY.dim_vars(n) for n in self.sizes]
        self.vk = [LAY.dim_vars(n) for n in self.kernel]
        self.vc = LAY.dim_vars(xs[-1])
        self.vo = LAY.dim_vars(ys[-1])
        self.n = LAY.n_vars(self.sum_shape)
        self.rows_shape = ys[:-1]

    def split_output(self, point: np.ndarray):
        """(r_b, [r_p per axis], r_o) of an output point."""
        r_b, *r_p, r_o = LAY.split_point(point, self.ys)
        return r_b, r_p, r_o

    def split_sum(self, rho: np.ndarray):
        """([ρ_q per axis], [ρ_k per axis], ρ_c) of the sumcheck's point."""
        parts, dims = LAY.split_point(rho, self.sum_shape), len(self.sizes)
        return parts[:dims], parts[dims:2 * dims], parts[-1]

    def taps(self, axis: int) -> np.ndarray:
        return self.geom.taps(axis, self.sizes[axis], self.kernel[axis], self.outs[axis])


def _selector_axis_table(d: _Dims, axis: int, r_p: np.ndarray) -> np.ndarray:
    """``S_axis(r_p, q, k)`` over ``(q, k)``: ``eq(r_p, p)`` where real ``q = tap(p, k)``, else 0."""
    taps = d.taps(axis)
    t = F.ezero((1 << d.vq[axis], 1 << d.vk[axis]))
    e = mle.eq_table(r_p)
    pp, kk = np.nonzero(taps >= 0)
    t[taps[pp, kk], kk] = e[pp]  # for one k, distinct p read distinct q: no two writes meet
    return t


def _selector_axis_eval(d: _Dims, axis: int, r_p: np.ndarray, r_q: np.ndarray, r_k: np.ndarray) -> np.ndarray:
    """``S_axis`` at ``(r_p, r_q, r_k)``: ``Σ_{p, k real, tap real} eq(r_p, p)·eq(r_k, k)·eq(r_q, tap)``."""
    taps = d.taps(axis)
    pp, kk = np.nonzero(taps >= 0)
    if pp.size == 0:
        return F.ezero()
    terms = F.emul(F.emul(mle.eq_table(r_p)[pp], mle.eq_table(r_k)[kk]), mle.eq_table(r_q)[taps[pp, kk]])
    return F.esum(terms)


def _selector_table(d: _Dims, r_p: Sequence[np.ndarray]) -> np.ndarray:
    """``S(r_p, q, k) = Π_axis S_axis`` over ``(q_1, …, k_1, …)`` (the sumcheck's variable order)."""
    dims = len(d.sizes)
    t = None
    for a in range(dims):
        s = _selector_axis_table(d, a, r_p[a])  # (Q_a, K_a, 4)
        shape = [1] * (2 * dims) + [4]
        shape[a], shape[dims + a] = s.shape[0], s.shape[1]
        s = s.reshape(shape)
        t = s if t is None else F.emul(t, s)
    return np.ascontiguousarray(t).reshape(-1, 4)


def _selector_eval(d: _Dims, r_p, r_q, r_k) -> np.ndarray:
    out = F.eone()
    for a in range(len(d.sizes)):
        out = F.emul(out, _selector_axis_eval(d, a, r_p[a], r_q[a], r_k[a]))
    return out


def _bound(ctx: B.ProverContext, name: str, prefix: np.ndarray) -> np.ndarray:
    t = ctx.table(name)
    return mle.bind_prefix(t, prefix) if prefix.shape[0] else F.embed(t)


def _tables(ctx: B.ProverContext, op: Op, d: _Dims, point: np.ndarray) -> list[np.ndarray]:
    """[x(r_b, q, c), W(r_o, k, c), S(r_p, q, k)], each over the sumcheck's (q, k, c)."""
    r_b, r_p, r_o = d.split_output(point)
    Q, K, C = 1 << sum(d.vq), 1 << sum(d.vk), 1 << d.vc
    x = _bound(ctx, op.inputs[0], r_b).reshape(Q, 1, C, 4)
    w = _bound(ctx, LAY.weight_name(op.params["weight"]), r_o).reshape(1, K, C, 4)
    s = _selector_table(d, r_p).reshape(Q, K, 1, 4)
    full = (Q, K, C, 4)
    return [np.ascontiguousarray(np.broadcast_to(t, full)).reshape(-1, 4) for t in (x, w, s)]


def _reads(op: Op, d: _Dims, point: np.ndarray) -> list[B.Read]:
    r_b, _, r_o = d.split_output(point)
    nq, nk = sum(d.vq), sum(d.vk)
    channels = BL.rounds(d.vc, nq + nk)
    return [(0, op.inputs[0], BL.fixed(r_b) + BL.rounds(nq) + channels),
            (1, LAY.weight_name(op.params["weight"]), BL.fixed(r_o) + BL.rounds(nk, nq) + channels)]


def _claims(op: Op, d: _Dims, point: np.ndarray, rho: np.ndarray, finals: np.ndarray) -> list[CL.Claim]:
    r_b, _, r_o = d.split_output(point)
    r_q, r_k, r_c = d.split_sum(rho)
    return [CL.Claim(op.inputs[0], np.concatenate([r_b, *r_q, r_c]), finals[0]),
            CL.Claim(LAY.weight_name(op.params["weight"]), np.concatenate([r_o, *r_k, r_c]), finals[1])]


def _bias_target(ctx: B.VerifierContext, op: Op, d: _Dims, claim: CL.Claim, bval: np.ndarray):
    """The sum without the bias, the bias claim and its randomizer's payback (coefficient −ind)."""
    bname = LAY.weight_name(op.params["bias"])
    _, _, r_o = d.split_output(claim.point)
    ind = LAY.indicator_eval(d.rows_shape, claim.point[:claim.point.shape[0] - d.vo])
    bclaim = CL.Claim(bname, r_o, bval)
    return F.esub(claim.value, F.emul(ind, bval)), bclaim, B.libra_for(ctx, bclaim, F.eneg(ind))


def prove(ctx: B.ProverContext, op: Op, out_claims: Sequence[CL.Claim]) -> tuple[B.OpProof, list[CL.Claim]]:
    """Reduce the first output claim to one claim on ``x``, one on ``W`` (and one on the bias); further
    claims on the output go to the commitment."""
    claim, rest = out_claims[0], list(out_claims[1:])
    d = _Dims(ctx, op)
    proof = B.OpProof()
    target, extra, libra = claim.value, [], B.libra_for(ctx, claim)
    if op.params.get("bias"):
        _, _, r_o = d.split_output(claim.point)
        bval = ctx.hat(LAY.weight_name(op.params["bias"]), r_o)
        proof.put_ext(bval[None])
        ctx.transcript.absorb_ext("ops/bias", bval)
        target, bclaim, blibra = _bias_target(ctx, op, d, claim, bval)
        extra.append(bclaim)
        libra += blibra
    rho, finals = B.prove_sum(ctx, proof, d.n, _tables(ctx, op, d, claim.point), _PRODUCT, target,
                              reads=_reads(op, d, claim.point), libra=libra)
    return proof, _claims(op, d, claim.point, rho, finals) + extra + rest


def verify(ctx: B.VerifierContext, op: Op, out_claims: Sequence[CL.Claim], proof: B.OpProof) -> list[CL.Claim]:
    """Mirror of :func:`prove`; raises Reject."""
    n = ctx.vars(op.output)
    if not out_claims or any(c.tensor != op.output or c.point.shape[0] != n for c in out_claims):
        raise CL.Reject(f"conv {op.output}: needs claims on its output with {n} coordinates")
    claim, rest = out_claims[0], list(out_claims[1:])
    d = _Dims(ctx, op)
    rd = B.ProofReader(proof)
    target, extra, libra = claim.value, [], B.libra_for(ctx, claim)
    if op.params.get("bias"):
        bval = rd.take_ext(1)[0]
        ctx.transcript.absorb_ext("ops/bias", bval)
        target, bclaim, blibra = _bias_target(ctx, op, d, claim, bval)
        extra.append(bclaim)
        libra += blibra
    rho, finals = B.verify_sum(ctx, rd, d.n, 3, _PRODUCT, target, reads=_reads(op, d, claim.point), libra=libra)
    rd.done()
    r_b, r_p, r_o = d.split_output(claim.point)
    r_q, r_k, _ = d.split_sum(rho)
    if not np.array_equal(finals[2], _selector_eval(d, r_p, r_q, r_k)):
        raise CL.Reject(f"conv {op.output}: wrong selector value")
    return _claims(op, d, claim.point, rho, finals) + extra + rest
