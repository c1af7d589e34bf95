"""Matrix products: ``linear`` (x Wᵀ + b), ``qk`` (q kᵀ per head) and ``pv`` (p v per head).

A ``linear`` weight ``(O, *F)`` with more than one trailing axis contracts all of them: a classifier
reading a channel-last feature map ``(b, h, w, c)`` whole (torch's ``Flatten`` then ``Linear``, its
columns permuted to ``(h, w, c)`` order) sums over every variable of ``F`` in the same sumcheck.

``linear`` reduces one claim ``y(r) = v`` on its output by a degree-2 sumcheck over the shared
dimension (Thaler): ``v − [bias] = Σ_j x(r_rows, j) · W(r_col, j)``, the operands bound with
``mle.bind_prefix`` (linear in their sizes). ``qk`` / ``pv`` share the batch and head variables between
both operands, so their sumcheck also runs over them with an ``eq(r_bh, ·)`` factor (degree 3):
``v = Σ_{b,h,s} eq(r_bh, (b, h)) · A(b, h, s) · B(b, h, s)`` with ``A = q(·, ·, r_t, ·)``,
``B = k(·, ·, r_T, ·)`` (qk) or ``A = p(·, ·, r_t, ·)``, ``B = v(·, ·, ·, r_d)`` (pv). The sumcheck's
last point gives one claim on each operand. Further claims on the output are returned
unchanged (the commitment settles them; one random point suffices to pin the product).

Bias: the canonical output holds ``b`` on real rows only, so its MLE is ``ind_rows(r_rows) · b(r_col)``;
the prover sends ``b(r_col)`` (a claim on the committed bias).

Grouped-query attention: with ``g = H / KV`` a power of two and heads MSB-first, the head index of
``k``/``v`` is the head index of ``q`` with its low ``log2 g`` bits dropped, so the repeated ``k`` is
the MLE of ``k`` at the first coordinates of ``r_head``.
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


def _kv_head_vars(op: Op, h: int, kv: int) -> int:
    if kv < 1 or h % kv:
        raise ValueError(f"op {op.kind} -> {op.output}: {h} heads are not a multiple of {kv} kv heads")
    g = h // kv
    if g & (g - 1):
        raise ValueError(f"op {op.kind} -> {op.output}: grouped-query factor {g} must be a power of two")
    return LAY.dim_vars(h) - (g.bit_length() - 1)


def shapes(op: Op, in_shapes: Sequence[tuple[int, ...]], spec: QuantSpec) -> dict[str, tuple[int, ...]]:
    """Output shape (no witnesses, no aux columns)."""
    if op.kind == "linear":
        (xs,) = in_shapes
        ws = spec.weights[op.params["weight"]].shape
        f = len(ws) - 1  # contracted trailing axes: one for a matrix, more for a flattened feature map
        if f < 1 or len(xs) <= f or tuple(xs[-f:]) != tuple(ws[1:]):
            raise ValueError(f"linear {op.output}: input {xs} does not match weight {ws}")
        return {op.output: (*xs[:-f], ws[0])}
    a, b = in_shapes
    if len(a) != 4 or len(b) != 4 or a[0] != b[0]:
        raise ValueError(f"{op.kind} {op.output}: expected (b, H, t, ·) and (b, KV, T, ·), got {a}, {b}")
    _kv_head_vars(op, a[1], b[1])
    if op.kind == "qk":
        if a[3] != b[3]:
            raise ValueError(f"qk {op.output}: head dims differ: {a[3]} vs {b[3]}")
        return {op.output: (a[0], a[1], a[2], b[2])}
    if a[3] != b[2]:
        raise ValueError(f"pv {op.output}: p has {a[3]} keys, v has {b[2]}")
    return {op.output: (a[0], a[1], a[2], b[3])}


def aux(ctx: B.ProverContext, op: Op) -> dict[str, np.ndarray]:
    """No auxiliary columns."""
    return {}


def _bind_middle(table: np.ndarray, pre: int, point: np.ndarray) -> np.ndarray:
    """Bind the ``len(point)`` variables after the first ``pre`` ones: (2^n,) -> (2^(n-k), 4)."""
    k = point.shape[0]
    n = mle.num_vars(table)
    t = table.reshape(1 << pre, 1 << k, 1 << (n - pre - k))
    t = np.ascontiguousarray(np.swapaxes(t, 0, 1)).reshape(-1)
    return mle.bind_prefix(t, point) if k else F.embed(t)


def _repeat_heads(t: np.ndarray, vb: int, kvh: int, vh: int) -> np.ndarray:
    """(b, kv, s) extension table -> (b, h, s) with head h reading kv head h >> (vh − kvh)."""
    g = 1 << (vh - kvh)
    if g == 1:
        return t
    t = t.reshape(1 << vb, 1 << kvh, -1, 4)
    return np.ascontiguousarray(np.repeat(t, g, axis=1)).reshape(-1, 4)


def _attention_tables(ctx: B.ProverContext, op: Op, point: np.ndarray) -> list[np.ndarray]:
    """[eq(r_bh) over (b, h, s), A(b, h, s), B(b, h, s)] for the batched product over s."""
    a, b = op.inputs
    ys = ctx.shape(op.output)
    vb, vh, vt, vl = (LAY.dim_vars(d) for d in ys)
    kvh = _kv_head_vars(op, ctx.shape(a)[1], ctx.shape(b)[1])
    r_bh, r_t, r_last = point[:vb + vh], point[vb + vh:vb + vh + vt], point[vb + vh + vt:]
    ta, tb = ctx.table(a), ctx.table(b)
    A = _bind_middle(ta, vb + vh, r_t)  # a(b, h, r_t, s)
    if op.kind == "qk":  # k(b, kv, r_T, d)
        Bt = _bind_middle(tb, vb + kvh, r_last)
    else:  # v(b, kv, j, r_d)
        Bt = mle.bind_suffix(tb, r_last)
    Bt = _repeat_heads(Bt, vb, kvh, vh)
    s_vars = mle.num_vars(A) - vb - vh
    E = np.repeat(mle.eq_table(r_bh), 1 << s_vars, axis=0)
    return [E, A, Bt]


def _attention_reads(ctx: B.VerifierContext, op: Op, point: np.ndarray) -> list[B.Read]:
    """How the sumcheck over (b, h, s) reads both operands: ``a`` with its ``t`` fixed, ``k`` with its
    ``T`` fixed (qk) or ``v`` with its ``d`` fixed (pv); kv heads are the first head rounds."""
    a, b = op.inputs
    ys = ctx.shape(op.output)
    vb, vh, vt, vl = (LAY.dim_vars(d) for d in ys)
    kvh = _kv_head_vars(op, ctx.shape(a)[1], ctx.shape(b)[1])
    r_t, r_last = point[vb + vh:vb + vh + vt], point[vb + vh + vt:]
    vs = _attention_vars(ctx, op) - vb - vh
    s_rounds = BL.rounds(vs, vb + vh)
    va = BL.rounds(vb + vh) + BL.fixed(r_t) + s_rounds
    head = BL.rounds(vb) + BL.rounds(kvh, vb)
    vbv = head + (BL.fixed(r_last) + s_rounds if op.kind == "qk" else s_rounds + BL.fixed(r_last))
    return [(1, a, va), (2, b, vbv)]


def blind_vars(op: Op, shapes) -> dict[str, int | None]:
    """The blinding variable must be one the product sums: ``pv`` sums ``v`` over its third axis
    (the keys), so that axis's last; an operand whose summed axis has no variable (a width-1 head
    or a single key) cannot be blinded (None)."""
    if op.kind == "linear":  # from the weight's shape alone (the companion's tensors need no inputs)
        w = LAY.weight_name(op.params["weight"])
        return {} if LAY.n_vars(shapes[w][1:]) else {op.inputs[0]: None, w: None}
    a, b = op.inputs
    if not LAY.dim_vars(shapes[a][3]):
        return {a: None, b: None}
    if op.kind != "pv":
        return {}
    vs = shapes[b]
    return {b: LAY.dim_vars(vs[0]) + LAY.dim_vars(vs[1]) + LAY.dim_vars(vs[2]) - 1}


def _attention_claims(ctx: B.VerifierContext, op: Op, point: np.ndarray, rho: np.ndarray,
                      finals: np.ndarray) -> list[CL.Claim]:
    a, b = op.inputs
    ys = ctx.shape(op.output)
    vb, vh, vt, vl = (LAY.dim_vars(d) for d in ys)
    kvh = _kv_head_vars(op, ctx.shape(a)[1], ctx.shape(b)[1])
    r_t, r_last = point[vb + vh:vb + vh + vt], point[vb + vh + vt:]
    rho_b, rho_h, rho_s = rho[:vb], rho[vb:vb + vh], rho[vb + vh:]
    pa = np.concatenate([rho_b, rho_h, r_t, rho_s])
    if op.kind == "qk":
        pb = np.concatenate([rho_b, rho_h[:kvh], r_last, rho_s])
    else:
        pb = np.concatenate([rho_b, rho_h[:kvh], rho_s, r_last])
    return [CL.Claim(a, pa, finals[1]), CL.Claim(b, pb, finals[2])]


def _attention_vars(ctx: B.VerifierContext, op: Op) -> int:
    ys = ctx.shape(op.output)
    return LAY.dim_vars(ys[0]) + LAY.dim_vars(ys[1]) + LAY.dim_vars(ctx.shape(op.inputs[0])[3])


_EQ_DOT = [(1, (0, 1, 2))]


def _prove_attention(ctx: B.ProverContext, op: Op, out_claims: Sequence[CL.Claim]):
    """y(r) = Σ_{b,h,s} eq(r_bh, (b, h)) · A(b, h, s) · B(b, h, s): the batch variables are shared."""
    claim = out_claims[0]
    proof = B.OpProof()
    rho, finals = B.prove_sum(ctx, proof, _attention_vars(ctx, op), _attention_tables(ctx, op, claim.point),
                              _EQ_DOT, claim.value, reads=_attention_reads(ctx, op, claim.point),
                              libra=B.libra_for(ctx, claim))
    return proof, _attention_claims(ctx, op, claim.point, rho, finals) + list(out_claims[1:])


def _verify_attention(ctx: B.VerifierContext, op: Op, out_claims: Sequence[CL.Claim], proof: B.OpProof):
    claim = out_claims[0]
    rd = B.ProofReader(proof)
    rho, finals = B.verify_sum(ctx, rd, _attention_vars(ctx, op), 3, _EQ_DOT, claim.value,
                               reads=_attention_reads(ctx, op, claim.point), libra=B.libra_for(ctx, claim))
    rd.done()
    ys = ctx.shape(op.output)
    k = LAY.dim_vars(ys[0]) + LAY.dim_vars(ys[1])
    if not np.array_equal(finals[0], mle.eq_eval(claim.point[:k], rho[:k]) if k else F.eone()):
        raise CL.Reject(f"{op.kind} {op.output}: wrong eq value")
    return _attention_claims(ctx, op, claim.point, rho, finals) + list(out_claims[1:])


def _bound(ctx: B.ProverContext, name: str, prefix: np.ndarray) -> np.ndarray:
    t = ctx.table(name)
    return mle.bind_prefix(t, prefix) if prefix.shape[0] else F.embed(t)


def _check_claims(ctx: B.VerifierContext, op: Op, out_claims: Sequence[CL.Claim]) -> None:
    n = ctx.vars(op.output)
    if not out_claims or any(c.tensor != op.output or c.point.shape[0] != n for c in out_claims):
        raise CL.Reject(f"{op.kind} {op.output}: needs claims on its output with {n} coordinates")


def _contracted_vars(ctx: B.VerifierContext, w: str) -> int:
    """Variables a linear sums: the weight's trailing axes (the last input axis, or a flattened map's)."""
    return LAY.n_vars(ctx.shape(w)[1:])


def _linear_reads(ctx: B.VerifierContext, op: Op, x: str, w: str, r_rows: np.ndarray, r_col: np.ndarray
                  ) -> list[B.Read]:
    n = _contracted_vars(ctx, w)
    return [(0, x, BL.fixed(r_rows) + BL.rounds(n)), (1, w, BL.fixed(r_col) + BL.rounds(n))]


def _bias_libra(ctx: B.VerifierContext, bclaim: CL.Claim, ind: np.ndarray) -> list:
    """The sum is ``v − ind·b̂(r_col)``: the bias's randomizer is paid back with coefficient −ind."""
    return B.libra_for(ctx, bclaim, F.eneg(ind))


def prove(ctx: B.ProverContext, op: Op, out_claims: Sequence[CL.Claim]) -> tuple[B.OpProof, list[CL.Claim]]:
    """Reduce the first output claim to claims on both operands (and the bias)."""
    if op.kind != "linear":
        return _prove_attention(ctx, op, out_claims)
    claim, rest = out_claims[0], list(out_claims[1:])
    proof = B.OpProof()
    x, w = op.inputs[0], LAY.weight_name(op.params["weight"])
    kx = LAY.n_vars(ctx.shape(op.output)[:-1])
    r_rows, r_col = claim.point[:kx], claim.point[kx:]
    target, extra, libra = claim.value, [], B.libra_for(ctx, claim)
    if op.params.get("bias"):
        bname = LAY.weight_name(op.params["bias"])
        bval = ctx.hat(bname, r_col)
        proof.put_ext(bval[None])
        ctx.transcript.absorb_ext("ops/bias", bval)
        ind = LAY.indicator_eval(ctx.shape(op.output)[:-1], r_rows)
        target = F.esub(target, F.emul(ind, bval))
        extra.append(CL.Claim(bname, r_col, bval))
        libra += _bias_libra(ctx, extra[-1], ind)
    rho, finals = B.prove_sum(ctx, proof, _contracted_vars(ctx, w),
                              [_bound(ctx, x, r_rows), _bound(ctx, w, r_col)], _DOT, target,
                              reads=_linear_reads(ctx, op, x, w, r_rows, r_col), libra=libra)
    claims = [CL.Claim(x, np.concatenate([r_rows, rho]), finals[0]),
              CL.Claim(w, np.concatenate([r_col, rho]), finals[1])]
    return proof, claims + extra + rest


def verify(ctx: B.VerifierContext, op: Op, out_claims: Sequence[CL.Claim], proof: B.OpProof) -> list[CL.Claim]:
    """Mirror of :func:`prove`; raises Reject."""
    _check_claims(ctx, op, out_claims)
    if op.kind != "linear":
        return _verify_attention(ctx, op, out_claims, proof)
    claim, rest = out_claims[0], list(out_claims[1:])
    rd = B.ProofReader(proof)
    x, w = op.inputs[0], LAY.weight_name(op.params["weight"])
    kx = LAY.n_vars(ctx.shape(op.output)[:-1])
    r_rows, r_col = claim.point[:kx], claim.point[kx:]
    target, extra, libra = claim.value, [], B.libra_for(ctx, claim)
    if op.params.get("bias"):
        bname = LAY.weight_name(op.params["bias"])
        bval = rd.take_ext(1)[0]
        ctx.transcript.absorb_ext("ops/bias", bval)
        ind = LAY.indicator_eval(ctx.shape(op.output)[:-1], r_rows)
        target = F.esub(target, F.emul(ind, bval))
        extra.append(CL.Claim(bname, r_col, bval))
        libra += _bias_libra(ctx, extra[-1], ind)
    rho, finals = B.verify_sum(ctx, rd, _contracted_vars(ctx, w), 2, _DOT, target,
                               reads=_linear_reads(ctx, op, x, w, r_rows, r_col), libra=libra)
    rd.done()
    claims = [CL.Claim(x, np.concatenate([r_rows, rho]), finals[0]),
              CL.Claim(w, np.concatenate([r_col, rho]), finals[1])]
    return claims + extra + rest
