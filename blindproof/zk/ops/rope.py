"""``rope``: ``y = [x1·C − x2·S, x1·S + x2·C]`` with public fixed-point cos/sin tables (rows
``start … start + t − 1``); the rescale that follows is its own op.

With the head dim ``hd`` a power of two, the first coordinate of the last axis, ``r_top``, picks the
half. For a claim ``y(r) = v`` with ``r = (r_bht, r_top, r_j)`` and ``z = (b, h, t, j)``:

    v = Σ_z eq((r_bht, r_j), z) · [(1 − r_top)(x1 C − x2 S) + r_top (x1 S + x2 C)](z)

that is ``v = Σ_{z, top} eq((r_bht, r_j), (z_bht, z_j)) · x(z, top) · K(z, top)`` with the public
coefficients ``K(·, 0) = (1 − r_top) C + r_top S`` and ``K(·, 1) = r_top C − (1 − r_top) S`` broadcast
over ``(b, h)``: a degree-3 sumcheck over the input's own variables, ``x`` read whole, which ends with
one claim ``x(ρ)`` and ``K(ρ)``, computed by the verifier from ``C(ρ_t, ρ_j)`` and ``S(ρ_t, ρ_j)``.
(Reading the halves apart, with ``top`` fixed to 0 and 1, and merging them by a challenge ``μ`` was
exact only for a randomizer linear in ``top`` and could not blind a head dim of 2.)
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
from blindproof.quant.functions import table_values


def shapes(op: Op, in_shapes: Sequence[tuple[int, ...]], spec: QuantSpec) -> dict[str, tuple[int, ...]]:
    """Output shape (the input's)."""
    (xs,) = in_shapes
    hd = xs[-1]
    if len(xs) != 4 or hd < 2 or hd & (hd - 1):
        raise ValueError(f"rope {op.output}: expected (b, H, t, hd) with hd a power of two, got {xs}")
    return {op.output: tuple(xs)}


def aux(ctx: B.ProverContext, op: Op) -> dict[str, np.ndarray]:
    """No auxiliary columns."""
    return {}


def _cos_sin(ctx: B.VerifierContext, op: Op) -> tuple[np.ndarray, np.ndarray]:
    """The (t, hd/2) cos and sin rows at positions start … start + t − 1 (int64)."""
    b, h, t, hd = ctx.shape(op.output)
    out = []
    for key in ("cos", "sin"):
        ts = ctx.spec.tables[op.params[key]]
        rows = int(ts.params["max_seq"])
        if ctx.start + t > rows:
            raise ValueError(f"rope {op.output}: positions up to {ctx.start + t} exceed {rows} table rows")
        out.append(table_values(ts).reshape(rows, hd // 2)[ctx.start:ctx.start + t])
    return out[0], out[1]


def _half_shape(ctx: B.VerifierContext, op: Op) -> tuple[int, ...]:
    b, h, t, hd = ctx.shape(op.output)
    return (b, h, t, hd // 2)


def _split_point(ctx: B.VerifierContext, op: Op, point: np.ndarray):
    b, h, t, half = _half_shape(ctx, op)
    k = LAY.dim_vars(b) + LAY.dim_vars(h) + LAY.dim_vars(t)
    return point[:k], point[k], point[k + 1:]


def _coefficients(r_top: np.ndarray, c: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``K`` on the two halves: ``(1 − r_top)·C + r_top·S`` (x1's) and ``r_top·C − (1 − r_top)·S`` (x2's),
    from values (or tables) of ``C`` and ``S``."""
    c0 = F.esub(F.eone(), r_top)
    k1 = F.eadd(F.emul(c, c0), F.emul(s, r_top))
    k2 = F.esub(F.emul(c, r_top), F.emul(s, c0))
    return k1, k2


def _k_table(ctx: B.VerifierContext, op: Op, r_top: np.ndarray) -> np.ndarray:
    """``K`` over the input's variables (b, h, t, top, j): the half's coefficient, broadcast over b, h."""
    b, h, t, half = _half_shape(ctx, op)
    cos, sin = _cos_sin(ctx, op)
    c = F.embed(LAY.canonical(cos)).reshape(-1, 1 << LAY.dim_vars(half), 4)
    s = F.embed(LAY.canonical(sin)).reshape(-1, 1 << LAY.dim_vars(half), 4)
    k1, k2 = _coefficients(r_top, c.reshape(-1, 4), s.reshape(-1, 4))
    k = np.stack([k1.reshape(c.shape), k2.reshape(c.shape)], axis=1)  # (t, top, j, 4)
    reps = (1 << LAY.dim_vars(b)) * (1 << LAY.dim_vars(h))
    return np.ascontiguousarray(np.tile(k.reshape(-1, 4), (reps, 1)))


def _eq_table(ctx: B.VerifierContext, op: Op, r_bht: np.ndarray, r_j: np.ndarray) -> np.ndarray:
    """``eq((r_bht, r_j), (z_bht, z_j))`` over the input's variables, constant in ``top``."""
    nj = 1 << r_j.shape[0]
    e = mle.eq_table(np.concatenate([r_bht, r_j])).reshape(-1, 1, nj, 4)
    return np.ascontiguousarray(np.broadcast_to(e, (e.shape[0], 2, nj, 4)).reshape(-1, 4))


_TERMS = [(1, (0, 1, 2))]  # eq · x · K


def prove(ctx: B.ProverContext, op: Op, out_claims: Sequence[CL.Claim]) -> tuple[B.OpProof, list[CL.Claim]]:
    """Reduce the first output claim to one claim on the input (a degree-3 sumcheck over the input's
    variables, ``x`` read whole); further claims are returned as-is."""
    proof = B.OpProof()
    c = out_claims[0]
    r_bht, r_top, r_j = _split_point(ctx, op, c.point)
    n = c.point.shape[0]
    tables = [_eq_table(ctx, op, r_bht, r_j), ctx.table(op.inputs[0]), _k_table(ctx, op, r_top)]
    rho, finals = B.prove_sum(ctx, proof, n, tables, _TERMS, c.value, reads=B.identity_reads([op.inputs[0]], n, 1),
                              libra=B.libra_for(ctx, c))
    return proof, [CL.Claim(op.inputs[0], rho, finals[1])] + list(out_claims[1:])


def verify(ctx: B.VerifierContext, op: Op, out_claims: Sequence[CL.Claim], proof: B.OpProof) -> list[CL.Claim]:
    """Mirror of :func:`prove`; raises Reject."""
    n_out = ctx.vars(op.output)
    if not out_claims or any(c.tensor != op.output or c.point.shape[0] != n_out for c in out_claims):
        raise CL.Reject(f"rope {op.output}: needs claims on its output with {n_out} coordinates")
    rd = B.ProofReader(proof)
    c = out_claims[0]
    r_bht, r_top, r_j = _split_point(ctx, op, c.point)
    rho, finals = B.verify_sum(ctx, rd, n_out, 3, _TERMS, c.value, reads=B.identity_reads([op.inputs[0]], n_out, 1),
                               libra=B.libra_for(ctx, c))
    rd.done()
    p_bht, p_top, p_j = _split_point(ctx, op, rho)
    if not np.array_equal(finals[0], mle.eq_eval(np.concatenate([r_bht, r_j]), np.concatenate([p_bht, p_j]))):
        raise CL.Reject(f"rope {op.output}: wrong eq value")
    cos, sin = _cos_sin(ctx, op)
    b, h, t, half = _half_shape(ctx, op)
    k_bh = LAY.dim_vars(b) + LAY.dim_vars(h)
    p_t = np.concatenate([p_bht[k_bh:], p_j])  # (t, j) coordinates: the tables do not depend on b, h
    k1, k2 = _coefficients(r_top, LAY.public_eval(cos, p_t), LAY.public_eval(sin, p_t))
    if not np.array_equal(finals[2], F.eadd(k1, F.emul(p_top, F.esub(k2, k1)))):
        raise CL.Reject(f"rope {op.output}: wrong cos/sin table value")
    return [CL.Claim(op.inputs[0], rho, finals[1])] + list(out_claims[1:])
