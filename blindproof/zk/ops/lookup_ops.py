"""``lookup``: ``index = clamp(x, T.lo, T.hi)``, ``y = T[index − T.lo]`` (SiLU, GELU, any function table).

The public table ``T`` (``quant.tables``) has ``hi − lo + 1`` entries, not a power of two (the
activation tables cover ``[−32767, 32767]``). It is proved against the *extended* table
(:func:`extended_table`): inputs ``[hi + 1 − 2^k, hi]`` (the smallest power-of-two window ending at
``hi``), outputs ``T[clamp(i)]``. The rows added below ``lo`` agree with the clamp semantics, so the
extension changes no answer; it also contains the padding pair ``(0, 0)`` (``f(0) = 0``), checked.

Two paths, chosen from public data (the input tensor's range in the spec):

- *identity* (the input range lies inside ``[lo, hi]``, the case of every int16 activation): the clamp
  is the identity, so ``index = x``. One width-2 logUp lookup of the pairs ``(index, y)``; at a fresh
  random point ``τ`` drawn when the op is proved the prover sends ``v = index(τ)``, and the claims
  ``index(τ) = v`` (opened) and ``x(τ) = v`` (for the op that computed ``x``) tie the witness to the
  input (two multilinears that agree at a random point are equal). The tie is made at op time, not
  at the lookup's leaf point: the lookups are deferred to the end of the program, after the op that
  computed ``x`` has had its turn, so a claim made there would never reach it.
- *clamped* (a wider input): the base :class:`~blindproof.zk.ops.base.Clamp` gadget proves
  ``index = clamp(x, lo, hi)`` (with its range checks), then the same lookup of ``(index, y)``.

The claims on ``y`` from the consumer are returned unchanged (``y`` is committed; the settler opens it).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from blindproof.zk.field import babybear as F
from blindproof.zk.iop import lookup as L
from blindproof.zk.ops import base as B
from blindproof.zk.iop import claims as CL
from blindproof.zk.iop import layout as LAY
from blindproof.quant.spec import Op, QuantSpec, TableSpec
from blindproof.quant.functions import table_values

_TABLES: dict[tuple[str, str, int], L.LookupTable] = {}


def extended_table(ts: TableSpec, shift_out: int = 0) -> L.LookupTable:
    """Rows ``(i, T[clamp(i)] − shift_out)`` for ``i`` in the power-of-two window ending at ``ts.hi``.

    ``shift_out`` moves the outputs so that a chosen row becomes ``(0, 0)`` (the softmax uses
    ``T[0]``). Raises ValueError unless ``(0, 0)`` is a row (the padding of committed tensors)."""
    key = (ts.name, ts.digest, int(shift_out))
    hit = _TABLES.get(key)
    if hit is not None:
        return hit
    vals = table_values(ts)
    n = ts.hi - ts.lo + 1
    size = 1 << LAY.dim_vars(n)
    inputs = np.arange(ts.hi + 1 - size, ts.hi + 1, dtype=np.int64)
    outputs = vals[np.clip(inputs, ts.lo, ts.hi) - ts.lo] - int(shift_out)
    zero = np.nonzero(inputs == 0)[0]
    if zero.size != 1 or outputs[zero[0]] != 0:
        raise ValueError(f"table {ts.name!r}: (0, 0) must be a row (padding of committed tensors); "
                         f"shift the outputs so that f(0) = 0")
    table = L.LookupTable.function(f"fn:{ts.name}:{int(shift_out)}", F.from_signed(inputs),
                                   F.from_signed(outputs))
    _TABLES[key] = table
    return table


class _Plan:
    def __init__(self, op: Op, shape: tuple[int, ...], spec: QuantSpec) -> None:
        if op.kind != "lookup":
            raise ValueError(f"lookup_ops proves 'lookup' ops, got {op.kind!r}")
        self.ts = spec.tables[op.params["table"]]
        self.shape = shape
        self.x, self.y = op.inputs[0], op.output
        self.index = LAY.witness_name(op.output, "index")
        xs = spec.tensors[self.x]
        self.identity = self.ts.lo <= xs.lo and xs.hi <= self.ts.hi
        self.table = extended_table(self.ts)
        fl = B.FunctionLookup((self.index, self.y), shape, self.table)
        self.clamp = None
        ranges: list[B.RangeCheck] = []
        if not self.identity:
            self.clamp = B.Clamp(LAY.aux_name(op.output, "clamp"), self.x, self.index, shape, self.ts.lo,
                                 self.ts.hi, max(abs(xs.lo), abs(xs.hi)))
            ranges = self.clamp.ranges()
        self.checks = B.Checks(LAY.aux_name(op.output, "chk"), ranges=ranges, functions=[fl])

    def columns(self) -> dict[str, tuple[int, ...]]:
        out = dict(self.checks.columns())
        if self.clamp is not None:
            out.update(self.clamp.columns())
        return out

    def tie_point(self, ctx: B.VerifierContext) -> np.ndarray | None:
        """Identity path: the random point at which ``index = x`` is checked (None otherwise)."""
        if not self.identity:
            return None
        return ctx.transcript.challenge_exts("ops/lookup_tie", LAY.n_vars(self.shape))

    def tie_relation(self, point: np.ndarray) -> B.Relation:
        """``index − x = 0`` at the tie point."""
        return [(1, self.index, point, True), (-1, self.x, point, True)]

    def tie(self, point: np.ndarray, value: np.ndarray, delta: np.ndarray) -> list[CL.Claim]:
        """``index(τ) = v`` and ``x(τ) = v − δ`` (δ: the randomizers' difference)."""
        return [CL.Claim(self.index, point, value), CL.Claim(self.x, point, F.esub(value, delta))]


def shapes(op: Op, in_shapes: Sequence[tuple[int, ...]], spec: QuantSpec) -> dict[str, tuple[int, ...]]:
    """Output, the ``index`` witness and the aux columns (clamp excesses, limbs, multiplicities)."""
    (xs,) = in_shapes
    plan = _Plan(op, tuple(xs), spec)
    out = {op.output: tuple(xs), plan.index: tuple(xs)}
    out.update(plan.columns())
    return out


def aux(ctx: B.ProverContext, op: Op) -> dict[str, np.ndarray]:
    """Aux columns from the trace values."""
    plan = _Plan(op, ctx.shape(op.output), ctx.spec)
    vals: dict[str, np.ndarray] = {}
    if plan.clamp is not None:
        vals.update(plan.clamp.witness(ctx.value(plan.x), ctx.strict))
    vals.update(plan.checks.witness(lambda n: vals[n] if n in vals else ctx.value(n), ctx.strict))
    return vals


def prove(ctx: B.ProverContext, op: Op, out_claims: Sequence[CL.Claim]) -> tuple[B.OpProof, list[CL.Claim]]:
    """Clamp (if needed) and the table lookup; returns claims on x, index, y and aux columns."""
    plan = _Plan(op, ctx.shape(op.output), ctx.spec)
    proof = B.OpProof()
    claims: list[CL.Claim] = []
    if plan.clamp is not None:
        claims += plan.clamp.prove(ctx, proof)
    claims += plan.checks.prove(ctx, proof)
    tau = plan.tie_point(ctx)
    if tau is not None:
        v = ctx.hat(plan.index, tau)
        proof.put_ext(v[None])
        ctx.transcript.absorb_ext("ops/lookup_tie_value", v)
        claims += plan.tie(tau, v, B.prove_relation(ctx, proof, plan.tie_relation(tau), "lookup_tie"))
    return proof, claims + list(out_claims)


def verify(ctx: B.VerifierContext, op: Op, out_claims: Sequence[CL.Claim], proof: B.OpProof) -> list[CL.Claim]:
    """Mirror of :func:`prove`; raises Reject."""
    plan = _Plan(op, ctx.shape(op.output), ctx.spec)
    rd = B.ProofReader(proof)
    claims: list[CL.Claim] = []
    if plan.clamp is not None:
        claims += plan.clamp.verify(ctx, rd)
    claims += plan.checks.verify(ctx, rd)
    tau = plan.tie_point(ctx)
    if tau is not None:
        v = rd.take_ext(1)[0]
        ctx.transcript.absorb_ext("ops/lookup_tie_value", v)
        claims += plan.tie(tau, v, B.verify_relation(ctx, rd, plan.tie_relation(tau), "lookup_tie"))
    rd.done()
    return claims + list(out_claims)
