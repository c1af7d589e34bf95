"""``rope``: ``y = [x1·C − x2·S, x1·S + x2·C]`` with public fixed-point cos/sin tables (rows
``start … start + t − 1``); the rescale that follows is its own op.

With the head dim ``hd`` a power of two, the first coordinate of the last axis, ``r_top``, picks the
half. For a claim ``y(r) = v`` with ``r = (r_bht, r_top, r_j)`` and ``z = (b, h, t, j)``:

    v = Σ_z eq((r_bht, r_j), z) · [(1 − r_top)(x1 C − x2 S) + r_top (x1 S + x2 C)](z)

a degree-3 sumcheck over the half-size tensor with the public tables ``C``, ``S`` broadcast over
``(b, h)`` (the verifier evaluates them itself). It ends with ``x1(ρ)`` and ``x2(ρ)``; a challenge ``μ``
merges them into one claim ``x(ρ_bht, μ, ρ_j) = (1 − μ) x1(ρ) + μ x2(ρ)``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from blindproof.zk import field as F
from blindproof.zk import mle
from blindproof.zk.ops import base as B
from blindproof.zk.ops import blind as BL
from blindproof.zk.quant.spec import Op, QuantSpec
from blindproof.zk.quant.tables import table_values


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


def _broadcast(ctx: B.VerifierContext, op: Op, rows: np.ndarray) -> np.ndarray:
    """Canonical table of (t, half) rows repeated over every (padded) b, h."""
    b, h, t, half = _half_shape(ctx, op)
    tab = B.canonical(rows)
    reps = (1 << B.dim_vars(b)) * (1 << B.dim_vars(h))
    return np.tile(tab, reps)


def _terms(r_top: np.ndarray) -> list:
    # tables: 0 eq, 1 x1, 2 x2, 3 C, 4 S
    c0, c1 = F.esub(F.eone(), r_top), r_top
    return [(c0, (0, 1, 3)), (c1, (0, 1, 4)), (F.eneg(c0), (0, 2, 4)), (c1, (0, 2, 3))]


def _split_point(ctx: B.VerifierContext, op: Op, point: np.ndarray):
    b, h, t, half = _half_shape(ctx, op)
    k = B.dim_vars(b) + B.dim_vars(h) + B.dim_vars(t)
    return point[:k], point[k], point[k + 1:]


def _reads(ctx: B.VerifierContext, op: Op, n: int) -> list[B.Read]:
    """x1 and x2 are the input with its top last-axis variable fixed to 0 and 1."""
    b, h, t, half = _half_shape(ctx, op)
    k = B.dim_vars(b) + B.dim_vars(h) + B.dim_vars(t)
    x = op.inputs[0]
    return [(1, x, BL.rounds(k) + [F.ezero()] + BL.rounds(n - k, k)),
            (2, x, BL.rounds(k) + [F.eone()] + BL.rounds(n - k, k))]


def _x_claim(op: Op, rho: np.ndarray, k: int, x1: np.ndarray, x2: np.ndarray, mu: np.ndarray) -> B.Claim:
    pt = np.concatenate([rho[:k], mu[None], rho[k:]])
    return B.Claim(op.inputs[0], pt, F.eadd(x1, F.emul(mu, F.esub(x2, x1))))


def prove(ctx: B.ProverContext, op: Op, out_claims: Sequence[B.Claim]) -> tuple[B.OpProof, list[B.Claim]]:
    """Reduce the first output claim to one claim on the input; further claims are returned as-is."""
    proof = B.OpProof()
    c = out_claims[0]
    r_bht, r_top, r_j = _split_point(ctx, op, c.point)
    x = ctx.table(op.inputs[0])
    halfp = 1 << B.dim_vars(_half_shape(ctx, op)[3])
    x2d = x.reshape(-1, 2, halfp)
    cos, sin = _cos_sin(ctx, op)
    tables = [mle.eq_table(np.concatenate([r_bht, r_j])), np.ascontiguousarray(x2d[:, 0]).reshape(-1),
              np.ascontiguousarray(x2d[:, 1]).reshape(-1), _broadcast(ctx, op, cos), _broadcast(ctx, op, sin)]
    n = c.point.shape[0] - 1
    rho, finals = B.prove_sum(ctx, proof, n, tables, _terms(r_top), c.value, reads=_reads(ctx, op, n),
                              libra=B.libra_for(ctx, c))
    mu = ctx.transcript.challenge_ext("ops/rope_mu")
    return proof, [_x_claim(op, rho, r_bht.shape[0], finals[1], finals[2], mu)] + list(out_claims[1:])


def verify(ctx: B.VerifierContext, op: Op, out_claims: Sequence[B.Claim], proof: B.OpProof) -> list[B.Claim]:
    """Mirror of :func:`prove`; raises Reject."""
    n_out = ctx.vars(op.output)
    if not out_claims or any(c.tensor != op.output or c.point.shape[0] != n_out for c in out_claims):
        raise B.Reject(f"rope {op.output}: needs claims on its output with {n_out} coordinates")
    rd = B.ProofReader(proof)
    c = out_claims[0]
    r_bht, r_top, r_j = _split_point(ctx, op, c.point)
    rho, finals = B.verify_sum(ctx, rd, n_out - 1, 5, _terms(r_top), c.value, reads=_reads(ctx, op, n_out - 1),
                               libra=B.libra_for(ctx, c))
    rd.done()
    if not np.array_equal(finals[0], mle.eq_eval(np.concatenate([r_bht, r_j]), rho)):
        raise B.Reject(f"rope {op.output}: wrong eq value")
    cos, sin = _cos_sin(ctx, op)
    b, h, t, half = _half_shape(ctx, op)
    k_bh = B.dim_vars(b) + B.dim_vars(h)
    rho_t = rho[k_bh:]  # (t, j) coordinates: the tables do not depend on b, h
    if not (np.array_equal(finals[3], B.public_eval(cos, rho_t)) and
            np.array_equal(finals[4], B.public_eval(sin, rho_t))):
        raise B.Reject(f"rope {op.output}: wrong cos/sin table value")
    mu = ctx.transcript.challenge_ext("ops/rope_mu")
    return [_x_claim(op, rho, r_bht.shape[0], finals[1], finals[2], mu)] + list(out_claims[1:])
