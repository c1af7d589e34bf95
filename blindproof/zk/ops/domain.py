"""The integer ranges the PROOF enforces on each tensor of a program, as opposed to the spec's declarations.

A declared range (``TensorSpec.lo/hi``) is the spec author's word: a hostile spec may declare an
accumulator within ±2^27 that a real input drives to ±2^28.9. Any op whose uniqueness argument needs
an input bounded must take the bound from here, or range-check the input itself.

:func:`proven_ranges` walks the ops in order and records, per tensor, the interval every value of it
lies in whenever the op proofs up to it verify (``None`` when nothing but the field bounds it):

- program inputs: their declared range (the verifier range-checks every public value against it);
- ``rescale``: ``[lo, hi]`` behind a clamp; otherwise the quotient ``q = y`` of ``x + H = q·2^s + r``
  (a proven ``x`` bounds ``q``; an unproven one leaves the proof's quotient window ``[-2^W, 2^W)``);
- ``add`` / ``add_weight`` behind a clamp: ``[lo, hi]``; without one: the sum of proven operands;
- ``norm``: ``[max(lo, −C), min(hi, C)]`` (the output range check with the excesses' bound);
- ``lookup``: the table's output values; ``softmax``: ``[0, 2^frac]``; ``mean_pool``: its checked range;
- ``split_heads`` / ``merge_heads``: the input's; ``embed``: the weight dtype's (weights are checked
  against their dtype when committed);
- accumulators (``linear``, ``qk``, ``pv``, ``rope``, ``mul``, ``mul_weight``): ``None``.

Every op derives its proof from the spec alone, so prover and verifier compute the same table.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from blindproof.quant.spec import ACC_BOUND, DTYPE_MAX, Op, QuantSpec, quotient_bits

Range = tuple[int, int] | None
DOMAIN: tuple[int, int] = (-(ACC_BOUND - 1), ACC_BOUND - 1)  # the reference's bound |v| < 2^29

_CACHE: "OrderedDict[int, tuple[QuantSpec, dict[str, Range]]]" = OrderedDict()
_CACHE_MAX = 8


def bound(r: Range) -> int:
    """``max(|lo|, |hi|)`` of a proven range, or the reference's ``2^29 − 1`` when there is none."""
    lo, hi = r if r is not None else DOMAIN
    return max(abs(lo), abs(hi))


def within(r: Range, lo: int, hi: int) -> bool:
    """True when a proven range lies inside ``[lo, hi]`` (False when there is none)."""
    return r is not None and lo <= r[0] and r[1] <= hi


def shifts(op: Op) -> np.ndarray:
    """A rescale's shifts as a vector (one entry, or one per channel)."""
    return np.asarray(op.params["shift"], dtype=np.int64).reshape(-1)


def quotient_range(shift: int, x_bound: int) -> tuple[int, int]:
    """Honest ``[q_lo, q_hi]`` of a rescale by ``shift`` of any ``|x| ≤ x_bound`` that the reference
    accepts (inside the window of :func:`~blindproof.quant.spec.quotient_bits`)."""
    lim = 1 << quotient_bits(shift)
    if shift > 0:
        half = 1 << (shift - 1)
        return max((half - x_bound) >> shift, -lim), min((x_bound + half) >> shift, lim - 1)
    hi = min(x_bound << -shift, lim - 1)
    return -hi, hi


def window_bits(lo: int, hi: int) -> int:
    """Smallest ``w`` with ``[lo, hi] ⊆ [-2^w, 2^w)`` (``lo ≤ 0 ≤ hi``)."""
    return max(1, hi.bit_length(), (-lo - 1).bit_length())


def rescale_layout(op: Op, spec: QuantSpec, x_range: Range) -> dict:
    """What a rescale proves, from the spec and its input's proven range: ``q_lo``, ``q_hi`` (the honest
    quotient range for ``|x| ≤ bound(x_range)``), the per-shift windows ``wins``, ``identity`` (no clamp
    needed) and ``out`` (the range its output is proven to lie in)."""
    s = shifts(op)
    ts = spec.tensors[op.output]
    xb = min(bound(x_range), ACC_BOUND - 1)
    ranges_of = {sj: quotient_range(sj, xb) for sj in set(s.tolist())}
    wins = {sj: window_bits(*rg) for sj, rg in ranges_of.items()}
    q_lo, q_hi = min(r[0] for r in ranges_of.values()), max(r[1] for r in ranges_of.values())
    identity = ts.lo <= q_lo and ts.hi >= q_hi
    positive = any(sj > 0 for sj in s.tolist())
    if not identity:
        out: Range = (ts.lo, ts.hi)
    elif x_range is not None:
        exact = [sj for sj in set(s.tolist()) if sj <= 0]  # q = x·2^-s: no window clips it
        lo_e = min([q_lo] + [-(xb << -sj) for sj in exact])
        hi_e = max([q_hi] + [xb << -sj for sj in exact])
        out = (lo_e, hi_e)
    elif positive:
        w = max(wins.values())
        out = (-(1 << w), (1 << w) - 1)
    else:
        out = None
    return {"q_lo": q_lo, "q_hi": q_hi, "wins": wins, "identity": identity, "out": out}


def add_bound(op: Op, spec: QuantSpec, proven: dict[str, Range]) -> tuple[int, Range]:
    """``(q_bound, sum range)`` of an add's ``raw = a + b`` from the operands' proven ranges (the
    reference's ``2^29`` where an operand has none); the range is ``None`` unless both are proven."""
    ra = proven.get(op.inputs[0])
    if op.kind == "add":
        rb = proven.get(op.inputs[1])
    else:
        m = DTYPE_MAX[spec.weights[op.params["weight"]].dtype]
        rb = (-m, m)
    q_bound = min(bound(ra) + bound(rb), ACC_BOUND - 1)
    total = None if ra is None or rb is None else (ra[0] + rb[0], ra[1] + rb[1])
    return q_bound, total


def _op_range(op: Op, spec: QuantSpec, proven: dict[str, Range]) -> Range:
    k, p = op.kind, op.params
    ts = spec.tensors[op.output]
    if k == "rescale":
        return rescale_layout(op, spec, proven.get(op.inputs[0]))["out"]
    if k in ("add", "add_weight"):
        q_bound, total = add_bound(op, spec, proven)
        if -ts.lo >= q_bound and ts.hi >= q_bound:
            return total  # no clamp
        return (ts.lo, ts.hi)
    if k == "norm":
        C = int(p["C"])
        return (max(ts.lo, -C), min(ts.hi, C))
    if k == "lookup":
        from blindproof.quant.functions import table_values
        vals = table_values(spec.tables[p["table"]])
        return (int(vals.min()), int(vals.max()))
    if k == "softmax":
        return (0, 1 << int(p["frac"]))
    if k == "mean_pool":
        return (ts.lo, ts.hi)
    if k in ("split_heads", "merge_heads", "max_pool"):  # max_pool: each output is one of its inputs
        return proven.get(op.inputs[0])
    if k == "embed":
        m = DTYPE_MAX[spec.weights[p["weight"]].dtype]
        return (-m, m)
    return None  # accumulators: linear, qk, pv, rope, mul, mul_weight


def proven_ranges(spec: QuantSpec) -> dict[str, Range]:
    """Every tensor of the program -> the range its values are proven to lie in, or ``None``."""
    hit = _CACHE.get(id(spec))
    if hit is not None and hit[0] is spec:
        return hit[1]
    out: dict[str, Range] = {}
    for name in spec.inputs:
        ts = spec.tensors[name]
        out[name] = (ts.lo, ts.hi)
    for op in spec.ops:
        out[op.output] = _op_range(op, spec, out)
    _CACHE[id(spec)] = (spec, out)
    if len(_CACHE) > _CACHE_MAX:
        _CACHE.popitem(last=False)
    return out


def proven_range(spec: QuantSpec, name: str) -> Range:
    """The proven range of one tensor (``None`` when nothing but the field bounds it)."""
    return proven_ranges(spec).get(name)
