"""Elementwise ops: ``add``, ``add_weight`` (+ clamp) and ``mul``, ``mul_weight`` (exact products).

add / add_weight: ``raw = a + b`` (or ``a + w`` with ``w`` broadcast over the last axis, whose MLE on
the padded tensor is ``ind_lead · w(r_last)``), ``y = clamp(raw)``. When the output range holds every
possible ``raw`` (from the ranges a proof enforces on the inputs, ``domain.proven_range``, or the 2^29
bound of the integer model where none does) the clamp is the
identity: each claim ``y(r) = v`` is reduced linearly for ``add`` (the prover sends ``a(r)``) and by a
degree-3 sumcheck ``Σ_x eq(r, x)·[a(x) + ind(x)·w(x_last)]`` for ``add_weight`` (the weight read at a
fresh point, never split from the trace by a linear relation: see :func:`_prove_add_weight`).
Otherwise the Clamp gadget proves ``y = clamp(raw)`` at a random point, where ``raw = a + b`` is
checked linearly; the claims on ``y`` are then settled by the commitment.

mul / mul_weight: ``y(r) = Σ_x eq(r, x) · a(x) · b(x)`` (degree-3 sumcheck) reduces the first claim
to claims on both factors; the broadcast weight's value becomes a claim on ``w`` at the last-axis
coordinates. Further claims on ``y`` are returned unchanged.
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
from blindproof.zk.ops import domain as D
from blindproof.quant.spec import Op, QuantSpec

_EQ_PROD = [(1, (0, 1, 2))]


def shapes(op: Op, in_shapes: Sequence[tuple[int, ...]], spec: QuantSpec) -> dict[str, tuple[int, ...]]:
    """Output (and for add kinds the witness raw and the clamp's aux columns)."""
    xs = tuple(in_shapes[0])
    if op.kind in ("add", "mul") and tuple(in_shapes[1]) != xs:
        raise ValueError(f"{op.kind} {op.output}: operand shapes differ: {xs} vs {tuple(in_shapes[1])}")
    if op.kind in ("add_weight", "mul_weight"):
        ws = spec.weights[op.params["weight"]].shape
        if ws != (xs[-1],):
            raise ValueError(f"{op.kind} {op.output}: weight shape {ws} does not broadcast over {xs}")
    out = {op.output: xs}
    if op.kind in ("add", "add_weight"):
        out[LAY.witness_name(op.output, "raw")] = xs
        clamp, checks = _clamp_plan(op, xs, spec)
        if clamp is not None:
            out.update(clamp.columns())
            out.update(checks.columns())
    return out


def _clamp_plan(op: Op, shape: tuple[int, ...], spec: QuantSpec):
    # |raw| from the ranges a proof enforces on the operands (domain.proven_range), never from their
    # declarations alone: an unproven operand counts with the reference's 2^29, so the clamp is skipped
    # only when no value can need it
    q_bound, _ = D.add_bound(op, spec, D.proven_ranges(spec))
    ts = spec.tensors[op.output]
    if -ts.lo >= q_bound and ts.hi >= q_bound:
        return None, None
    clamp = B.Clamp(LAY.aux_name(op.output, "clamp"), LAY.witness_name(op.output, "raw"), op.output, shape,
                    ts.lo, ts.hi, q_bound, B.small_limbs(shape))
    return clamp, B.Checks(LAY.aux_name(op.output, "chk"), ranges=clamp.ranges())


def aux(ctx: B.ProverContext, op: Op) -> dict[str, np.ndarray]:
    """Clamp excesses and range-check columns (add kinds with a real clamp)."""
    if op.kind not in ("add", "add_weight"):
        return {}
    clamp, checks = _clamp_plan(op, ctx.shape(op.output), ctx.spec)
    if clamp is None:
        return {}
    vals = clamp.witness(ctx.value(LAY.witness_name(op.output, "raw")), ctx.strict)
    vals.update(checks.witness(lambda n: vals[n] if n in vals else ctx.value(n), ctx.strict))
    return vals


# --- add -----------------------------------------------------------------------------------------

def _add_relation(ctx: B.VerifierContext, op: Op, c: CL.Claim) -> B.Relation:
    """``y − a − b = 0`` at the claim's point, ``y`` the claim's tensor (the output, or the raw sum
    before a clamp)."""
    return [(1, c.tensor, c.point, not c.plain), (-1, op.inputs[0], c.point, True), (-1, op.inputs[1], c.point, True)]


def _add_split(op: Op, c: CL.Claim, sent: np.ndarray, delta: np.ndarray) -> list[CL.Claim]:
    """Given ``ŷ(p) = v``, the sent ``â(p)`` and δ (``ŷ − â − b̂ = δ``), the two claims."""
    return [CL.Claim(op.inputs[0], c.point, sent), CL.Claim(op.inputs[1], c.point, F.esub(F.esub(c.value, delta), sent))]


# add_weight: y(p) = Σ_x eq(p, x)·[a(x) + ind(x)·w(x_last)] — a sumcheck, so that the weight is read
# at a fresh point through its randomized extension. (A linear split ``ŷ − â − ind·ŵ = δ`` needs one δ
# per opening, and the weight opening's part, ``ind·z·Φ_w(p)``, would give ``w̃(p)`` away beside ``ŵ(p)``.)
_ADD_W = [(1, (0, 1)), (1, (0, 2, 3))]  # tables: 0 eq, 1 a, 2 ind (public), 3 w broadcast


def _add_weight_reads(ctx: B.VerifierContext, op: Op, n: int) -> list[B.Read]:
    k = LAY.dim_vars(ctx.shape(op.output)[-1])
    return [(1, op.inputs[0], BL.rounds(n)), (3, LAY.weight_name(op.params["weight"]), BL.rounds(k, n - k))]


def _add_weight_claims(ctx: B.VerifierContext, op: Op, rho: np.ndarray, finals: np.ndarray) -> list[CL.Claim]:
    k = LAY.dim_vars(ctx.shape(op.output)[-1])
    return [CL.Claim(op.inputs[0], rho, finals[1]),
            CL.Claim(LAY.weight_name(op.params["weight"]), rho[rho.shape[0] - k:], finals[3])]


def _prove_add_weight(ctx: B.ProverContext, proof: B.OpProof, op: Op, c: CL.Claim) -> list[CL.Claim]:
    shape = ctx.shape(op.output)
    n = c.point.shape[0]
    tables = [mle.eq_table(c.point), ctx.table(op.inputs[0]), LAY.indicator_table(shape),
              LAY.broadcast_table(ctx.value(LAY.weight_name(op.params["weight"])), shape)]
    rho, finals = B.prove_sum(ctx, proof, n, tables, _ADD_W, c.value, reads=_add_weight_reads(ctx, op, n),
                              libra=B.libra_for(ctx, c))
    return _add_weight_claims(ctx, op, rho, finals)


def _verify_add_weight(ctx: B.VerifierContext, rd: B.ProofReader, op: Op, c: CL.Claim) -> list[CL.Claim]:
    n = c.point.shape[0]
    rho, finals = B.verify_sum(ctx, rd, n, 4, _ADD_W, c.value, reads=_add_weight_reads(ctx, op, n),
                               libra=B.libra_for(ctx, c))
    if not np.array_equal(finals[0], mle.eq_eval(c.point, rho) if n else F.eone()):
        raise CL.Reject(f"add_weight {op.output}: wrong eq value")
    if not np.array_equal(finals[2], LAY.indicator_eval(ctx.shape(op.output), rho)):
        raise CL.Reject(f"add_weight {op.output}: wrong indicator value")
    return _add_weight_claims(ctx, op, rho, finals)


def _prove_add(ctx: B.ProverContext, op: Op, out_claims: Sequence[CL.Claim]):
    proof = B.OpProof()
    clamp, checks = _clamp_plan(op, ctx.shape(op.output), ctx.spec)
    if clamp is None:
        points = list(out_claims)
        claims: list[CL.Claim] = []
    else:
        claims = clamp.prove(ctx, proof)
        points = [claims[0]]
        claims += checks.prove(ctx, proof) + list(out_claims)
    if op.kind == "add_weight":
        for c in points:
            claims += _prove_add_weight(ctx, proof, op, c)
        return proof, claims
    sent = np.stack([ctx.hat(op.inputs[0], c.point) for c in points])
    proof.put_ext(sent)
    ctx.transcript.absorb_ext("ops/add_values", sent)
    for c, v in zip(points, sent):
        delta = B.prove_relation(ctx, proof, _add_relation(ctx, op, c), "add")
        claims += _add_split(op, c, v, delta)
    return proof, claims


def _verify_add(ctx: B.VerifierContext, op: Op, out_claims: Sequence[CL.Claim], proof: B.OpProof):
    rd = B.ProofReader(proof)
    clamp, checks = _clamp_plan(op, ctx.shape(op.output), ctx.spec)
    if clamp is None:
        points = list(out_claims)
        claims: list[CL.Claim] = []
    else:
        claims = clamp.verify(ctx, rd)
        points = [claims[0]]
        claims += checks.verify(ctx, rd) + list(out_claims)
    if op.kind == "add_weight":
        for c in points:
            claims += _verify_add_weight(ctx, rd, op, c)
        rd.done()
        return claims
    sent = rd.take_ext(len(points))
    ctx.transcript.absorb_ext("ops/add_values", sent)
    for c, v in zip(points, sent):
        delta = B.verify_relation(ctx, rd, _add_relation(ctx, op, c), "add")
        claims += _add_split(op, c, v, delta)
    rd.done()
    return claims


# --- mul -----------------------------------------------------------------------------------------

def _second(ctx: B.ProverContext, op: Op) -> np.ndarray:
    if op.kind == "mul":
        return ctx.table(op.inputs[1])
    return LAY.broadcast_table(ctx.value(LAY.weight_name(op.params["weight"])), ctx.shape(op.output))


def _mul_claims(ctx: B.VerifierContext, op: Op, rho: np.ndarray, finals: np.ndarray) -> list[CL.Claim]:
    out = [CL.Claim(op.inputs[0], rho, finals[1])]
    if op.kind == "mul":
        return out + [CL.Claim(op.inputs[1], rho, finals[2])]
    k = LAY.dim_vars(ctx.shape(op.output)[-1])
    return out + [CL.Claim(LAY.weight_name(op.params["weight"]), rho[rho.shape[0] - k:], finals[2])]


def _mul_reads(ctx: B.VerifierContext, op: Op, n: int) -> list[B.Read]:
    reads: list[B.Read] = [(1, op.inputs[0], BL.rounds(n))]
    if op.kind == "mul":
        return reads + [(2, op.inputs[1], BL.rounds(n))]
    k = LAY.dim_vars(ctx.shape(op.output)[-1])
    return reads + [(2, LAY.weight_name(op.params["weight"]), BL.rounds(k, n - k))]


def _prove_mul(ctx: B.ProverContext, op: Op, out_claims: Sequence[CL.Claim]):
    proof = B.OpProof()
    c = out_claims[0]
    n = c.point.shape[0]
    tables = [mle.eq_table(c.point), ctx.table(op.inputs[0]), _second(ctx, op)]
    rho, finals = B.prove_sum(ctx, proof, n, tables, _EQ_PROD, c.value, reads=_mul_reads(ctx, op, n),
                              libra=B.libra_for(ctx, c))
    return proof, _mul_claims(ctx, op, rho, finals) + list(out_claims[1:])


def _verify_mul(ctx: B.VerifierContext, op: Op, out_claims: Sequence[CL.Claim], proof: B.OpProof):
    rd = B.ProofReader(proof)
    c = out_claims[0]
    n = c.point.shape[0]
    rho, finals = B.verify_sum(ctx, rd, n, 3, _EQ_PROD, c.value, reads=_mul_reads(ctx, op, n),
                               libra=B.libra_for(ctx, c))
    rd.done()
    if not np.array_equal(finals[0], mle.eq_eval(c.point, rho) if rho.shape[0] else F.eone()):
        raise CL.Reject(f"{op.kind} {op.output}: wrong eq value")
    return _mul_claims(ctx, op, rho, finals) + list(out_claims[1:])


def _check_claims(ctx: B.VerifierContext, op: Op, out_claims: Sequence[CL.Claim]) -> None:
    n = ctx.vars(op.output)
    if not out_claims or any(c.tensor != op.output or c.point.shape[0] != n for c in out_claims):
        raise CL.Reject(f"{op.kind} {op.output}: needs claims on its output with {n} coordinates")


def prove(ctx: B.ProverContext, op: Op, out_claims: Sequence[CL.Claim]) -> tuple[B.OpProof, list[CL.Claim]]:
    """Prove an elementwise op (see the module docstring)."""
    if op.kind in ("add", "add_weight"):
        return _prove_add(ctx, op, out_claims)
    return _prove_mul(ctx, op, out_claims)


def verify(ctx: B.VerifierContext, op: Op, out_claims: Sequence[CL.Claim], proof: B.OpProof) -> list[CL.Claim]:
    """Mirror of :func:`prove`; raises Reject."""
    _check_claims(ctx, op, out_claims)
    if op.kind in ("add", "add_weight"):
        return _verify_add(ctx, op, out_claims, proof)
    return _verify_mul(ctx, op, out_claims, proof)
