"""``max_pool``: ``y[b, p, c] = max_k x[b, s·p + k, c]`` over a window of ``K`` offsets (channel-last, one or
two spatial axes, no padding, every window inside the input).

Witness: one gap column per window offset, ``d_k = y − x_k`` with ``x_k[b, p, c] = x[b, s·p + k, c]``,
committed with the trace. The relation holds iff

1. every ``d_k ∈ [0, 2^16)`` (a range lookup): ``y`` is at least every value of its window;
2. ``Π_k d_k = 0`` entrywise: ``y`` is one of them. Proved by a chain ``e_1 = d_0·d_1``,
   ``e_i = e_{i−1}·d_i``, ``e_{K−2}·d_{K−1} = 0`` (committed ``e``; one zero-check batching every link by
   powers of a challenge, each term of degree 2). In the field a product is zero iff a factor is, and
   each ``d_k`` is a small integer, so one gap is the integer 0;
3. ``d_k = y − x_k`` as tensors: at the output claim's point ``r``, with a challenge ``γ``,
   ``Σ_k γ^k d_k(r) = (Σ_k γ^k)·y(r) − Σ_q x(r_b, q, r_c)·Σ_k γ^k S_k(r_p, q)``, a degree-2 sumcheck over
   the input positions against the public window selectors ``S_k(p, q) = [q = s·p + k]`` (real ``p``),
   which the verifier evaluates at the last point in ``O(P·K)`` per axis. The gaps are committed before
   any challenge, so a false column survives ``r`` and ``γ`` only with negligible probability.

Every output claim is also returned for the commitment to open, so a reader's ``y`` is the committed
one, whose padding one more zero-check term ``(1 − ind)·y`` pins to zero (a conv or linear may read it);
otherwise the gaps would tie the reader's ``y`` to ``d_0 + x_0`` only, whose padding is free. The link
sums ``x(r_b, q, c)·eq(r_c, c)`` over positions and channels, so ``x`` is read at a random point with
its default blinding variable. Gaps are at most ``2^16 − 1`` because the input's PROVEN range is at most that wide
(:func:`check_bounds`, refused at load otherwise).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from blindproof.quant.conv import window_reads
from blindproof.quant.spec import Op, QuantSpec
from blindproof.zk.field import babybear as F
from blindproof.zk.iop import blind as BL
from blindproof.zk.iop import claims as CL
from blindproof.zk.iop import layout as LAY
from blindproof.zk.iop import mle
from blindproof.zk.ops import base as B

GAP_BITS = 16


def window(op: Op, dims: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(kernel, stride) of a max_pool's params; ValueError unless each lists ``dims`` ints in range."""
    out = []
    for key in ("kernel", "stride"):
        v = op.params.get(key)
        if not isinstance(v, (list, tuple)) or len(v) != dims or not all(isinstance(e, int) and 1 <= e <= 64
                                                                        for e in v):
            raise ValueError(f"max_pool {op.output}: {key} must list {dims} integers in [1, 64], got {v!r}")
        out.append(tuple(int(e) for e in v))
    if int(np.prod(out[0])) < 2:
        raise ValueError(f"max_pool {op.output}: a window of one entry is no pooling")
    return out[0], out[1]


def out_shape(op: Op, xs: Sequence[int]) -> tuple[int, ...]:
    """``(b, *positions, c)`` of a max_pool of ``xs``; ValueError when the window does not fit."""
    if len(xs) not in (3, 4):
        raise ValueError(f"max_pool {op.output}: expected (b, *1 or 2 spatial, c), got {tuple(xs)}")
    kernel, stride = window(op, len(xs) - 2)
    outs = []
    for n, k, s in zip(xs[1:-1], kernel, stride):
        if n < k:
            raise ValueError(f"max_pool {op.output}: a window of {k} does not fit {n} positions")
        outs.append((n - k) // s + 1)
    return (xs[0], *outs, xs[-1])


def offsets(op: Op, dims: int) -> list[tuple[int, ...]]:
    """The window offsets in a fixed order (row-major)."""
    return list(np.ndindex(*window(op, dims)[0]))


def gap_name(op: Op, k: int) -> str:
    return LAY.aux_name(op.output, f"d{k}")


def link_name(op: Op, i: int) -> str:
    return LAY.aux_name(op.output, f"e{i}")


def _checks(op: Op, ys: tuple[int, ...], n_off: int) -> B.Checks:
    return B.Checks(LAY.aux_name(op.output, "chk"),
                    ranges=[B.RangeCheck(LAY.aux_name(op.output, f"g{k}"), gap_name(op, k), ys, 0, (1 << GAP_BITS) - 1)
                            for k in range(n_off)])


def shapes(op: Op, in_shapes: Sequence[tuple[int, ...]], spec: QuantSpec) -> dict[str, tuple[int, ...]]:
    """Output, gap columns, chain columns, range-check columns."""
    (xs,) = in_shapes
    ys = out_shape(op, xs)
    k = len(offsets(op, len(xs) - 2))
    out = {op.output: ys}
    out.update({gap_name(op, i): ys for i in range(k)})
    out.update({link_name(op, i): ys for i in range(1, k - 1)})
    out.update(_checks(op, ys, k).columns())
    return out


def check_bounds(op: Op, spec: QuantSpec) -> None:
    """ValueError unless the input's PROVEN range is at most ``2^16`` wide (so an honest gap passes the
    range check) and lies inside the output's declared range (the output is one of the inputs)."""
    from blindproof.zk.ops.domain import proven_ranges, within

    r = proven_ranges(spec).get(op.inputs[0])
    ts = spec.tensors[op.output]
    if r is None or r[1] - r[0] >= 1 << GAP_BITS or not within(r, ts.lo, ts.hi):
        raise ValueError(f"max_pool {op.output}: the input's proven range {r if r is not None else 'none (±2^29)'} "
                         f"must be at most 2^16 wide and inside the output's declared range [{ts.lo}, {ts.hi}]; "
                         "rescale the input first")


def aux(ctx: B.ProverContext, op: Op) -> dict[str, np.ndarray]:
    """Gaps (zero on padding), the product chain (mod p) and the range-check columns."""
    x, y = ctx.value(op.inputs[0]), ctx.value(op.output)
    ys = tuple(y.shape)
    offs = offsets(op, x.ndim - 2)
    _, stride = window(op, x.ndim - 2)
    out: dict[str, np.ndarray] = {}
    for i, k in enumerate(offs):
        out[gap_name(op, i)] = y - window_reads(x, k, stride, ys[1:-1])
    e = out[gap_name(op, 0)] % F.P
    for i in range(1, len(offs) - 1):
        e = e * (out[gap_name(op, i)] % F.P) % F.P
        out[link_name(op, i)] = e
    out.update(_checks(op, ys, len(offs)).witness(lambda n: out[n] if n in out else ctx.value(n), ctx.strict))
    return out


class _Dims:
    def __init__(self, ctx: B.VerifierContext, op: Op) -> None:
        xs, ys = ctx.shape(op.inputs[0]), ctx.shape(op.output)
        self.xs, self.ys = xs, ys
        self.kernel, self.stride = window(op, len(xs) - 2)
        self.offsets = offsets(op, len(xs) - 2)
        self.vc = LAY.dim_vars(xs[-1])
        self.vq = [LAY.dim_vars(n) for n in xs[1:-1]]

    def split(self, point: np.ndarray):
        """(r_b, [r_p per axis], r_c) of an output point."""
        r_b, *r_p, r_c = LAY.split_point(point, self.ys)
        return r_b, r_p, r_c

    def split_q(self, rho: np.ndarray) -> list[np.ndarray]:
        """[ρ_q per axis] of a point over the input positions."""
        return LAY.split_point(rho, self.xs[1:-1])

    def taps(self, axis: int, k: int) -> np.ndarray:
        """Input positions read by offset ``k`` on ``axis``, one per real output position."""
        return self.stride[axis] * np.arange(self.ys[1 + axis]) + k


def _selector_table(d: _Dims, r_p, gammas) -> np.ndarray:
    """``Σ_k γ^k S_k(r_p, q)`` over the input positions ``q`` (row-major over the spatial axes)."""
    total = F.ezero(tuple(1 << v for v in d.vq))
    for g, k in zip(gammas, d.offsets):
        t = None
        for a in range(len(d.vq)):
            s = F.ezero(1 << d.vq[a])
            s[d.taps(a, k[a])] = mle.eq_table(r_p[a])[:d.ys[1 + a]]
            shape = [1] * len(d.vq) + [4]
            shape[a] = s.shape[0]
            s = s.reshape(shape)
            t = s if t is None else F.emul(t, s)
        total = F.eadd(total, F.emul(t, g))
    return np.ascontiguousarray(total).reshape(-1, 4)


def _selector_eval(d: _Dims, r_p, r_q, gammas) -> np.ndarray:
    out = F.ezero()
    for g, k in zip(gammas, d.offsets):
        v = g
        for a in range(len(d.vq)):
            taps = d.taps(a, k[a])
            e = F.emul(mle.eq_table(r_p[a])[:taps.shape[0]], mle.eq_table(r_q[a])[taps])
            v = F.emul(v, F.esum(e))
        out = F.eadd(out, v)
    return out


def _pad_table(ys: tuple[int, ...]) -> np.ndarray:
    """1 on the output's padded entries, else 0."""
    return (1 - LAY.indicator_table(ys).astype(np.int64)).astype(np.uint32)


def _link_tables(ctx: B.ProverContext, op: Op, d: "_Dims", point: np.ndarray, gl) -> list[np.ndarray]:
    """[x(r_b, q, c), Σ_k γ^k S_k(r_p, q), eq(r_c, c)] over the sumcheck's (q, c)."""
    r_b, r_p, r_c = d.split(point)
    t = ctx.table(op.inputs[0])
    x = mle.bind_prefix(t, r_b) if r_b.shape[0] else F.embed(t)
    Q, C = 1 << sum(d.vq), 1 << d.vc
    sel = _selector_table(d, r_p, gl).reshape(Q, 1, 4)
    eq = mle.eq_table(r_c).reshape(1, C, 4)
    return [x] + [np.ascontiguousarray(np.broadcast_to(a, (Q, C, 4))).reshape(-1, 4) for a in (sel, eq)]


def _zero_check_terms(k: int, gammas) -> tuple[list, list[int]]:
    """Terms over tables [pad, y, d_0 … d_{K−1}, e_1 … e_{K−2}]: ``(1 − ind)·y``, each chain link
    ``e_i − e_{i−1}·d_i`` (``e_0 = d_0``), and ``e_{K−2}·d_{K−1}``, weighted by ``γ^0, γ^1, …``."""
    d = lambda i: 2 + i  # noqa: E731
    e = lambda i: d(0) if i == 0 else 2 + k + i - 1  # noqa: E731
    terms = [(gammas[0], (0, 1))]
    for i in range(1, k - 1):
        terms.append((gammas[i], (e(i),)))
        terms.append((F.eneg(gammas[i]), (e(i - 1), d(i))))
    terms.append((gammas[k - 1], (e(k - 2), d(k - 1))))
    return terms


def _names(op: Op, k: int) -> list[str | None]:
    return [None, op.output, *(gap_name(op, i) for i in range(k)), *(link_name(op, i) for i in range(1, k - 1))]


def _powers(g: np.ndarray, n: int) -> list[np.ndarray]:
    out = [F.eone()]
    for _ in range(n - 1):
        out.append(F.emul(out[-1], g))
    return out


def _link_reads(op: Op, d: _Dims, point: np.ndarray) -> list[B.Read]:
    r_b, _, _ = d.split(point)
    return [(0, op.inputs[0], BL.fixed(r_b) + BL.rounds(sum(d.vq) + d.vc))]


_LINK_TERMS = [(1, (0, 1, 2))]


def prove(ctx: B.ProverContext, op: Op, out_claims: Sequence[CL.Claim]) -> tuple[B.OpProof, list[CL.Claim]]:
    """The max relation's zero-check and range checks, then the output claim reduced to claims on the gaps
    and on ``x``; further output claims go to the commitment."""
    d = _Dims(ctx, op)
    k = len(d.offsets)
    proof = B.OpProof()
    claims: list[CL.Claim] = []
    gz = _powers(ctx.transcript.challenge_ext("ops/max_pool_gamma"), k)
    tables = [_pad_table(d.ys), ctx.table(op.output)] + [ctx.table(n) for n in _names(op, k)[2:]]
    point, vals = B.prove_zero_check(ctx, proof, LAY.n_vars(d.ys), tables, _zero_check_terms(k, gz), _names(op, k))
    claims += [CL.Claim(n, point, v) for n, v in zip(_names(op, k)[1:], vals[1:])]
    claims += _checks(op, d.ys, k).prove(ctx, proof)
    claim = out_claims[0]
    gaps = np.stack([ctx.hat(gap_name(op, i), claim.point) for i in range(k)])
    proof.put_ext(gaps)
    ctx.transcript.absorb_ext("ops/max_pool_gaps", gaps)
    gl = _powers(ctx.transcript.challenge_ext("ops/max_pool_link"), k)
    target, libra = _link_target(ctx, op, claim, gaps, gl)
    r_b, _, _ = d.split(claim.point)
    rho, finals = B.prove_sum(ctx, proof, sum(d.vq) + d.vc, _link_tables(ctx, op, d, claim.point, gl), _LINK_TERMS,
                              target, reads=_link_reads(op, d, claim.point), libra=libra)
    claims.append(CL.Claim(op.inputs[0], np.concatenate([r_b, rho]), finals[0]))
    claims += [CL.Claim(gap_name(op, i), claim.point, gaps[i]) for i in range(k)]
    return proof, claims + list(out_claims)


def _link_target(ctx: B.VerifierContext, op: Op, claim: CL.Claim, gaps: np.ndarray, gl) -> tuple[np.ndarray, list]:
    """``(Σγ^k)·y(r) − Σ γ^k d_k(r)`` and the randomizers inside it to pay back."""
    total = F.ezero()
    for g in gl:
        total = F.eadd(total, g)
    target = F.emul(total, claim.value)
    libra = B.libra_for(ctx, claim, total)
    for i, g in enumerate(gl):
        target = F.esub(target, F.emul(g, gaps[i]))
        libra += B.libra_for(ctx, CL.Claim(gap_name(op, i), claim.point, gaps[i]), F.eneg(g))
    return target, libra


def verify(ctx: B.VerifierContext, op: Op, out_claims: Sequence[CL.Claim], proof: B.OpProof) -> list[CL.Claim]:
    """Mirror of :func:`prove`; raises Reject."""
    n = ctx.vars(op.output)
    if not out_claims or any(c.tensor != op.output or c.point.shape[0] != n for c in out_claims):
        raise CL.Reject(f"max_pool {op.output}: needs claims on its output with {n} coordinates")
    d = _Dims(ctx, op)
    k = len(d.offsets)
    rd = B.ProofReader(proof)
    claims: list[CL.Claim] = []
    gz = _powers(ctx.transcript.challenge_ext("ops/max_pool_gamma"), k)
    names = _names(op, k)
    point, vals = B.verify_zero_check(ctx, rd, LAY.n_vars(d.ys), len(names), _zero_check_terms(k, gz), names)
    if not np.array_equal(vals[0], F.esub(F.eone(), LAY.indicator_eval(d.ys, point))):
        raise CL.Reject(f"max_pool {op.output}: wrong padding indicator value")
    claims += [CL.Claim(nm, point, v) for nm, v in zip(names[1:], vals[1:])]
    claims += _checks(op, d.ys, k).verify(ctx, rd)
    claim = out_claims[0]
    gaps = rd.take_ext(k)
    ctx.transcript.absorb_ext("ops/max_pool_gaps", gaps)
    gl = _powers(ctx.transcript.challenge_ext("ops/max_pool_link"), k)
    target, libra = _link_target(ctx, op, claim, gaps, gl)
    rho, finals = B.verify_sum(ctx, rd, sum(d.vq) + d.vc, 3, _LINK_TERMS, target,
                               reads=_link_reads(op, d, claim.point), libra=libra)
    rd.done()
    r_b, r_p, r_c = d.split(claim.point)
    rq, rc = rho[:sum(d.vq)], rho[sum(d.vq):]
    if not np.array_equal(finals[1], _selector_eval(d, r_p, d.split_q(rq), gl)):
        raise CL.Reject(f"max_pool {op.output}: wrong window selector value")
    if not np.array_equal(finals[2], mle.eq_eval(r_c, rc)):
        raise CL.Reject(f"max_pool {op.output}: wrong eq value")
    claims.append(CL.Claim(op.inputs[0], np.concatenate([r_b, rho]), finals[0]))
    claims += [CL.Claim(gap_name(op, i), claim.point, gaps[i]) for i in range(k)]
    return claims + list(out_claims)
