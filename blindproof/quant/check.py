"""The relations a proof of the integer model establishes, checked directly on a recorded trace.

`check_trace` recomputes nothing the prover would not prove: for each op it checks the integer
equations and range conditions between the op's inputs, its output and its witnesses (docs/quant.md,
"relations"). The honest reference forward always passes; a trace with any relation broken (a
remainder out of range, an inflated softmax shift, a wrong integer square root, a changed value)
fails with `RelationError` naming the op. It is the executable form of what zk/ops must constrain.
"""

from __future__ import annotations

import numpy as np

from blindproof.quant.conv import ConvGeometry, conv_exact, max_pool_exact
from blindproof.quant.reference import Trace, check_weights, flat_operands
from blindproof.quant.spec import (ACC_BOUND, EXP_DOMAIN_MAX, SCORE_HI, SCORE_LO, Op, QuantSpec, norm_sq_bits,
                                      quotient_bits)
from blindproof.quant.functions import table_values


class RelationError(ValueError):
    """A relation of the integer model does not hold on the trace."""


def _req(cond, op: Op, what: str) -> None:
    if not bool(np.all(cond)):
        raise RelationError(f"op {op.kind} -> {op.output}: {what} does not hold")


def _divides(op: Op, n: np.ndarray, d, q: np.ndarray, r: np.ndarray, what: str) -> None:
    """n + floor(d/2) = q d + r with 0 <= r < d (the rounded division of the model)."""
    d = np.asarray(d, dtype=np.int64)
    _req(n + d // 2 == q * d + r, op, f"{what}: n + d/2 = q d + r")
    _req((r >= 0) & (r < d), op, f"{what}: 0 <= r < d")


def check_trace(spec: QuantSpec, weights: dict[str, np.ndarray], trace: Trace, start: int = 0) -> None:
    """Raise RelationError unless every op's relation holds on `trace` (recorded with record=True)."""
    check_weights(spec, weights)
    t = trace.tensors
    w = {k: np.asarray(v, dtype=np.int64) for k, v in weights.items()}
    for name, v in t.items():
        if v.size and int(np.abs(v).max()) >= ACC_BOUND:
            raise RelationError(f"{name}: |value| >= 2^29")
    for op in spec.ops:
        missing = [n for n in (*op.inputs, op.output) if n not in t]
        if missing:
            raise RelationError(f"op {op.kind} -> {op.output}: trace lacks {missing}")
        ins = [t[n] for n in op.inputs]
        y = t[op.output]
        ts = spec.tensors[op.output]
        _req((y >= ts.lo) & (y <= ts.hi), op, f"output range [{ts.lo}, {ts.hi}]")
        wit = {k.split("/", 1)[1]: v for k, v in t.items() if k.startswith(op.output + "/")}
        _check_op(spec, w, op, ins, y, wit, start)


def _clip(spec: QuantSpec, op: Op, v: np.ndarray) -> np.ndarray:
    ts = spec.tensors[op.output]
    return np.clip(v, ts.lo, ts.hi)


def _check_op(spec: QuantSpec, w: dict, op: Op, ins: list, y: np.ndarray, wit: dict, start: int) -> None:
    p, k = op.params, op.kind
    if k == "embed":
        table = w[p["weight"]]
        if p["index"] == "tokens":
            _req(y == table[ins[0]], op, "y = W[token]")
        else:
            _req(y == table[start:start + ins[0].shape[-1]], op, "y = W[position]")
    elif k == "linear":
        xf, wt = flat_operands(ins[0], w[p["weight"]])
        ref = xf @ wt + (w[p["bias"]] if p.get("bias") else 0)
        _req(y == ref, op, "y = x W^T + b")
    elif k == "conv":
        wt = w[p["weight"]]
        ref = conv_exact(ins[0], wt, ConvGeometry.from_params(p, wt.ndim - 2)) + (w[p["bias"]] if p.get("bias") else 0)
        _req(y == ref, op, "y = conv(x, W) + b")
    elif k == "rescale":
        s = np.asarray(p["shift"], dtype=np.int64)
        x, q, r = ins[0], wit["q"], wit["r"]
        pos = np.maximum(s, 0)
        half = np.where(s > 0, np.left_shift(np.int64(1), np.maximum(s - 1, 0)), 0)
        _req(np.where(s > 0, x + half == (q << pos) + r, (q == x << np.maximum(-s, 0)) & (r == 0)), op,
             "x + 2^(s-1) = q 2^s + r (s > 0), q = x 2^-s (s <= 0)")
        _req((r >= 0) & (r < np.left_shift(np.int64(1), pos)), op, "0 <= r < 2^s")
        lim = np.left_shift(np.int64(1), np.vectorize(quotient_bits, otypes=[np.int64])(s))
        _req((q >= -lim) & (q < lim), op, "q in [-2^(29-s), 2^(29-s)) (the rounding relation is unique mod p)")
        _req(y == _clip(spec, op, q), op, "y = clamp(q)")
    elif k in ("add", "add_weight"):
        b = ins[1] if k == "add" else w[p["weight"]]
        _req(wit["raw"] == ins[0] + b, op, "raw = a + b")
        _req(y == _clip(spec, op, wit["raw"]), op, "y = clamp(raw)")
    elif k in ("mul", "mul_weight"):
        b = ins[1] if k == "mul" else w[p["weight"]]
        _req(y == ins[0] * b, op, "y = a * b")
    elif k == "lookup":
        tab = spec.tables[p["table"]]
        _req(wit["index"] == np.clip(ins[0], tab.lo, tab.hi), op, "index = clamp(x, lo, hi)")
        _req(y == table_values(tab)[wit["index"] - tab.lo], op, "y = T[index]")
    elif k == "norm":
        x = ins[0]
        d = int(p["d"])
        if p["kind"] == "layer":
            _divides(op, x.sum(-1, keepdims=True), d, wit["mean"], wit["mean_r"], "mean")
            _req(wit["centred"] == x - wit["mean"], op, "c = x - mean")
            c = wit["centred"]
        else:
            c = x
        big_s, s = wit["S"], wit["s"]
        _req(big_s == (c * c).sum(-1, keepdims=True) + int(p["E"]), op, "S = sum c^2 + E")
        _req((s >= 1) & (s * s <= big_s) & (big_s < (s + 1) * (s + 1)), op, "s^2 <= S < (s+1)^2")
        _req(big_s < 1 << norm_sq_bits(int(p["C"])), op, "S below the norm proof's domain 2^a")
        _divides(op, c * int(p["C"]), s, wit["n"], wit["r"], "n = c C / s")
        _req(y == _clip(spec, op, wit["n"]), op, "y = clamp(n)")
    elif k == "split_heads":
        b_, t_, d_ = ins[0].shape
        h = int(p["heads"])
        _req(y == ins[0].reshape(b_, t_, h, d_ // h).transpose(0, 2, 1, 3), op, "head split")
    elif k == "merge_heads":
        b_, h, t_, hd = ins[0].shape
        _req(y == ins[0].transpose(0, 2, 1, 3).reshape(b_, t_, h * hd), op, "head merge")
    elif k == "rope":
        tc, tsn = spec.tables[p["cos"]], spec.tables[p["sin"]]
        x = ins[0]
        half, n = x.shape[-1] // 2, x.shape[-2]
        rows = int(tc.params["max_seq"])
        cos = table_values(tc).reshape(rows, half)[start:start + n]
        sin = table_values(tsn).reshape(rows, half)[start:start + n]
        x1, x2 = x[..., :half], x[..., half:]
        _req(y == np.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1), op, "rotation by C, S")
    elif k == "qk":
        kk = np.repeat(ins[1], ins[0].shape[1] // ins[1].shape[1], axis=1)
        _req(y == ins[0] @ np.swapaxes(kk, -1, -2), op, "scores = q k^T")
    elif k == "pv":
        vv = np.repeat(ins[1], ins[0].shape[1] // ins[1].shape[1], axis=1)
        _req(y == ins[0] @ vv, op, "out = p v")
    elif k == "softmax":
        s = ins[0]
        n, total = s.shape[-2], s.shape[-1]
        allowed = (np.arange(total)[None, :] <= (start + np.arange(n))[:, None]) if p["causal"] \
            else np.ones((n, total), dtype=bool)
        table = table_values(spec.tables[p["table"]])
        m, diff, z, e, tot = wit["max"], wit["diff"], wit["z"], wit["e"], wit["sum"]
        _req((s >= SCORE_LO) & (s <= SCORE_HI), op, "scores in [-2^28, 2^28) (max - s cannot wrap mod p)")
        _req(np.where(allowed, diff == m - s, diff == 0), op, "diff = m - s on unmasked entries")
        _req(diff >= 0, op, "m >= every unmasked score")
        _req(z == np.minimum(diff, EXP_DOMAIN_MAX), op, "z = min(diff, 2^16 - 1)")
        _req(np.where(allowed, e == table[z], e == 0), op, "e = T[z] (0 where masked)")
        _req(tot == e.sum(-1, keepdims=True), op, "sum = sum of e")
        _req(tot >= table[0], op, "sum >= T[0] (the shift is not inflated)")
        arg = wit["argmax"]
        _req((arg >= 0) & (arg < total), op, "argmax is a key index")
        rows = np.broadcast_to((start + np.arange(n))[:, None], arg.shape)
        _req(~np.asarray(p["causal"]) | (arg <= rows), op, "argmax is an unmasked key")
        _req(np.take_along_axis(diff, np.clip(arg, 0, total - 1), -1) == 0, op,
             "diff[argmax] = 0 (the shift is a score: m is the row max)")
        _divides(op, e << int(p["frac"]), tot, y, wit["r"], "p = e 2^frac / sum")
    elif k == "max_pool":
        _req(y == max_pool_exact(ins[0], p["kernel"], p["stride"]), op, "y = max over each window")
    elif k == "mean_pool":
        x = ins[0]
        mid = tuple(range(1, x.ndim - 1))
        _divides(op, x.sum(axis=mid), int(np.prod(x.shape[1:-1])), y, wit["r"], "mean over the middle axes")
    else:
        raise RelationError(f"no relation for op kind {k!r}")
