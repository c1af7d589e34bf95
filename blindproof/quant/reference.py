"""Plain numpy int64 reference forward of the integer program: the specification the prover matches.

`run_program` executes a QuantSpec's ops in order and records every tensor together with the witness
values each op's proof needs (remainders, unclamped values, row maxima, sums, integer square roots),
named `<output>/<witness>`. Every recorded integer must satisfy |v| < 2^29 (below p/2, so a proof's
field values are these integers); a violation raises `BoundError` naming the op and the tensor.
Ops with a tighter proof domain check it too (a rescale's quotient window, a norm's sum of squares,
softmax scores within [-2^28, 2^28)).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from blindproof.quant.spec import (ACC_BOUND, EXP_DOMAIN_MAX, SCORE_HI, SCORE_LO, Op, QuantSpec, norm_sq_bits,
                                      quotient_bits)
from blindproof.quant.spec import DTYPE_MAX as _DTYPE_MAX  # (the name the callers here use)
from blindproof.quant.conv import ConvGeometry, conv_exact, max_pool_exact
from blindproof.quant.functions import table_values

_F64_EXACT = 1 << 53


class BoundError(ValueError):
    """An integer of the program left its bound (|v| < 2^29, or an op's own proof domain)."""


@dataclass
class Trace:
    """Every tensor and witness of one run, by name (the prover's witness)."""

    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()

    def output(self, i: int = 0) -> np.ndarray:
        return self.tensors[self.outputs[i]]


def _check(op: Op, name: str, v: np.ndarray) -> None:
    if v.size and int(np.abs(v).max()) >= ACC_BOUND:
        raise BoundError(f"op {op.kind} -> {op.output}: {name} reaches |{int(np.abs(v).max())}| >= 2^29")


_INT64_SAFE = 1 << 62


def _exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer a @ b, through float64 BLAS when every partial sum is provably below 2^53.

    Large float64-exact products run on the prover device (:mod:`blindproof.zk.device`) when one is
    chosen; the result is the same int64 array either way."""
    k = a.shape[-1]
    amax = int(np.abs(a).max()) if a.size else 0
    bmax = int(np.abs(b).max()) if b.size else 0
    if amax * bmax * k >= _INT64_SAFE:  # int64 partial sums could wrap: the result would not be the integer one
        raise BoundError(f"matmul of width {k} with |a| <= {amax}, |b| <= {bmax} may overflow int64")
    if amax * bmax * k < _F64_EXACT:
        if a.ndim >= 2 and b.ndim >= 2:
            from blindproof.zk import device
            dev = device.device_for_matmul(device.matmul_macs(a.shape, b.shape))
            if dev is not None:
                done = device.attempt(device.matmul_f64, a, b, device=dev)
                if done is not None:
                    return done
        return np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.int64)
    return np.matmul(a, b)


def flat_operands(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(x', W'ᵀ)`` with ``linear(x, W) = x' @ W'ᵀ``: a weight ``(O, *F)`` contracts ``x``'s last
    ``len(F)`` axes (one for a matrix)."""
    f = w.ndim - 1
    if x.ndim <= f or x.shape[-f:] != w.shape[1:]:
        raise ValueError(f"linear: input of shape {x.shape} does not match a weight of shape {w.shape}")
    k = int(np.prod(w.shape[1:]))
    return x.reshape(*x.shape[:x.ndim - f], k), w.reshape(w.shape[0], k).T


def div_round(n: np.ndarray, d: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    """q = floor((n + floor(d/2)) / d) and r with n + floor(d/2) = q d + r, 0 <= r < d (d >= 1)."""
    d = np.asarray(d, dtype=np.int64)
    m = n + d // 2
    q = np.floor_divide(m, d)
    return q, m - q * d


def shift_round(x: np.ndarray, s: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    """For s > 0: q = floor((x + 2^(s-1)) / 2^s), r = x + 2^(s-1) - q 2^s; for s <= 0: q = x 2^-s, r = 0.

    `s` may be a vector over the last axis (per-channel shifts)."""
    s = np.asarray(s, dtype=np.int64)
    pos = np.maximum(s, 0)
    half = np.where(s > 0, np.left_shift(np.int64(1), np.maximum(s - 1, 0)), 0)
    q = np.where(s > 0, np.right_shift(x + half, pos), np.left_shift(x, np.maximum(-s, 0)))
    r = np.where(s > 0, x + half - np.left_shift(q, pos), 0)
    return q, r


def isqrt(v: np.ndarray) -> np.ndarray:
    """floor(sqrt(v)) exactly for 0 <= v < 2^52, elementwise."""
    s = np.floor(np.sqrt(v.astype(np.float64))).astype(np.int64)
    s = np.where(s * s > v, s - 1, s)
    return np.where((s + 1) * (s + 1) <= v, s + 1, s)


class _Run:
    def __init__(self, spec: QuantSpec, weights: dict[str, np.ndarray], start: int) -> None:
        self.spec, self.w, self.start = spec, weights, start
        self.t: dict[str, np.ndarray] = {}

    def clamp(self, op: Op, v: np.ndarray) -> np.ndarray:
        ts = self.spec.tensors[op.output]
        return np.clip(v, ts.lo, ts.hi)

    # --- ops: each returns (output, witnesses) ----------------------------------------------------
    def embed(self, op: Op, idx: np.ndarray):
        table = self.w[op.params["weight"]]
        if op.params["index"] == "tokens":
            if idx.size and (idx.min() < 0 or idx.max() >= table.shape[0]):
                raise ValueError(f"token ids must lie in [0, {table.shape[0]}), got [{idx.min()}, {idx.max()}]")
            return table[idx], {}
        t = idx.shape[-1]
        if self.start + t > table.shape[0]:
            raise ValueError(f"positions up to {self.start + t} exceed the table's {table.shape[0]} rows")
        return np.broadcast_to(table[self.start:self.start + t], (*idx.shape, table.shape[1])).copy(), {}

    def linear(self, op: Op, x: np.ndarray):
        w = self.w[op.params["weight"]]
        acc = _exact_matmul(*flat_operands(x, w))
        if op.params.get("bias"):
            acc = acc + self.w[op.params["bias"]]
        return acc, {}

    def conv(self, op: Op, x: np.ndarray):
        w = self.w[op.params["weight"]]
        acc = conv_exact(x, w, ConvGeometry.from_params(op.params, w.ndim - 2))
        if op.params.get("bias"):
            acc = acc + self.w[op.params["bias"]]
        return acc, {}

    def rescale(self, op: Op, x: np.ndarray):
        shift = op.params["shift"]
        q, r = shift_round(x, shift)
        # the proof's window for q (spec.quotient_bits): q·2^s + r within [-2^29, 2^29), unique mod p
        k = np.vectorize(quotient_bits, otypes=[np.int64])(np.asarray(shift, dtype=np.int64))
        lim = np.left_shift(np.int64(1), k)
        if q.size and bool(np.any((q < -lim) | (q >= lim))):
            raise BoundError(f"op rescale -> {op.output}: quotient outside [-2^(29-s), 2^(29-s)), the window "
                             f"in which the proof's rounding relation has one solution")
        return self.clamp(op, q), {"q": q, "r": r}

    def add(self, op: Op, a: np.ndarray, b: np.ndarray):
        raw = a + b
        return self.clamp(op, raw), {"raw": raw}

    def add_weight(self, op: Op, a: np.ndarray):
        raw = a + self.w[op.params["weight"]]
        return self.clamp(op, raw), {"raw": raw}

    def mul(self, op: Op, a: np.ndarray, b: np.ndarray):
        return a * b, {}

    def mul_weight(self, op: Op, a: np.ndarray):
        return a * self.w[op.params["weight"]], {}

    def lookup(self, op: Op, x: np.ndarray):
        ts = self.spec.tables[op.params["table"]]
        xc = np.clip(x, ts.lo, ts.hi)
        return table_values(ts)[xc - ts.lo], {"index": xc}

    def norm(self, op: Op, x: np.ndarray):
        p = op.params
        wit: dict[str, np.ndarray] = {}
        if p["kind"] == "layer":
            mu, rmu = div_round(x.sum(-1, keepdims=True), int(p["d"]))
            c = x - mu
            wit.update(mean=mu, mean_r=rmu, centred=c)
        else:
            c = x
        ssum = (c * c).sum(-1, keepdims=True) + int(p["E"])
        _check(op, "sum of squares", ssum)
        a = norm_sq_bits(int(p["C"]))  # the norm proof's domain: S < 2^a (docs/zk-ops-nonlinear.md)
        if ssum.size and int(ssum.max()) >= 1 << a:
            raise BoundError(f"op norm -> {op.output}: sum of squares {int(ssum.max())} >= 2^{a}, beyond the "
                             f"proof's domain for C = {int(p['C'])}")
        s = isqrt(ssum)
        num = c * int(p["C"])  # |c·C| ≤ s·C, below p/2 inside the domain S < 2^a (not a recorded value)
        n, r = div_round(num, s)
        wit.update(S=ssum, s=s, n=n, r=r)
        return self.clamp(op, n), wit

    def split_heads(self, op: Op, x: np.ndarray):
        b, t, d = x.shape
        h = int(op.params["heads"])
        return x.reshape(b, t, h, d // h).transpose(0, 2, 1, 3).copy(), {}

    def merge_heads(self, op: Op, x: np.ndarray):
        b, h, t, hd = x.shape
        return x.transpose(0, 2, 1, 3).reshape(b, t, h * hd).copy(), {}

    def rope(self, op: Op, x: np.ndarray):
        tc, ts = (self.spec.tables[op.params[k]] for k in ("cos", "sin"))
        half = x.shape[-1] // 2
        t = x.shape[-2]
        rows = int(tc.params["max_seq"])
        if self.start + t > rows:
            raise ValueError(f"RoPE positions up to {self.start + t} exceed the table's {rows} rows")
        cos = table_values(tc).reshape(rows, half)[self.start:self.start + t]
        sin = table_values(ts).reshape(rows, half)[self.start:self.start + t]
        x1, x2 = x[..., :half], x[..., half:]
        return np.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1), {}

    def qk(self, op: Op, q: np.ndarray, k: np.ndarray):
        k = np.repeat(k, q.shape[1] // k.shape[1], axis=1)
        return _exact_matmul(q, np.swapaxes(k, -1, -2)), {}

    def pv(self, op: Op, p: np.ndarray, v: np.ndarray):
        v = np.repeat(v, p.shape[1] // v.shape[1], axis=1)
        return _exact_matmul(p, v), {}

    def softmax(self, op: Op, s: np.ndarray):
        t, total = s.shape[-2], s.shape[-1]
        # the protocol's score domain (ops/softmax.py): a spread below 2^29 keeps max − s from wrapping
        if s.size and (int(s.min()) < SCORE_LO or int(s.max()) > SCORE_HI):
            raise BoundError(f"op softmax -> {op.output}: scores in [{int(s.min())}, {int(s.max())}] leave the "
                             f"softmax domain [-2^28, 2^28)")
        if op.params["causal"]:
            allowed = np.arange(total)[None, :] <= (self.start + np.arange(t))[:, None]
        else:
            allowed = np.ones((t, total), dtype=bool)
        masked = np.where(allowed, s, np.iinfo(np.int64).min)
        arg = masked.argmax(-1)[..., None]  # first key attaining the row max
        m = np.take_along_axis(masked, arg, -1)
        diff = np.where(allowed, m - s, 0)
        z = np.minimum(diff, EXP_DOMAIN_MAX)
        e = np.where(allowed, table_values(self.spec.tables[op.params["table"]])[z], 0)
        total_e = e.sum(-1, keepdims=True)
        num = e << int(op.params["frac"])
        # not a recorded value: its proof splits sum at 2^15 so nothing wraps (ops/softmax.py bounds_ok)
        if num.size and int((num + total_e // 2).max()) >= 1 << 30:
            raise BoundError(f"op softmax -> {op.output}: numerator e*2^frac + sum/2 reaches 2^30")
        p, r = div_round(num, total_e)
        return p, {"max": m, "argmax": arg, "diff": diff, "z": z, "e": e, "sum": total_e, "r": r}

    def max_pool(self, op: Op, x: np.ndarray):
        return max_pool_exact(x, op.params["kernel"], op.params["stride"]), {}

    def mean_pool(self, op: Op, x: np.ndarray):
        mid = tuple(range(1, x.ndim - 1))
        q, r = div_round(x.sum(axis=mid), int(np.prod(x.shape[1:-1])))
        return q, {"r": r}


def check_weights(spec: QuantSpec, weights: dict[str, np.ndarray]) -> None:
    """Every weight of the spec is present, integer, of its shape and within its dtype's range."""
    for name, ws in spec.weights.items():
        if name not in weights:
            raise ValueError(f"weight {name!r} missing")
        w = weights[name]
        if not isinstance(w, np.ndarray) or w.dtype.kind not in "iu":
            raise TypeError(f"weight {name!r} must be an integer numpy array")
        if tuple(w.shape) != ws.shape:
            raise ValueError(f"weight {name!r} has shape {tuple(w.shape)}, spec says {ws.shape}")
        lim = _DTYPE_MAX[ws.dtype]
        if w.size and int(np.abs(w.astype(np.int64)).max()) > lim:
            raise ValueError(f"weight {name!r} exceeds the {ws.dtype} range +-{lim}")


def run_program(spec: QuantSpec, weights: dict[str, np.ndarray], inputs: dict[str, np.ndarray],
                start: int = 0, record: bool = True, validate_weights: bool = True) -> Trace:
    """Execute the integer program; returns the trace (all tensors and witnesses if `record`).

    `validate_weights=False` skips the shape/range check of the weights (for callers that did it once)."""
    if validate_weights:
        check_weights(spec, weights)
    run = _Run(spec, {k: np.asarray(v, dtype=np.int64) for k, v in weights.items()}, start)
    trace = Trace(outputs=spec.outputs)
    env: dict[str, np.ndarray] = {}
    for name in spec.inputs:
        if name not in inputs:
            raise ValueError(f"input {name!r} missing")
        x = np.asarray(inputs[name])
        if x.dtype.kind not in "iu":
            raise TypeError(f"input {name!r} must be an integer array, got {x.dtype}")
        ts = spec.tensors[name]
        x = x.astype(np.int64)
        if x.size and (x.min() < ts.lo or x.max() > ts.hi):
            raise ValueError(f"input {name!r} must lie in [{ts.lo}, {ts.hi}], got [{x.min()}, {x.max()}]")
        env[name] = x
        if record:
            trace.tensors[name] = x
    consumers_left = _last_use(spec)
    for i, op in enumerate(spec.ops):
        fn: Callable = getattr(run, op.kind)
        out, wit = fn(op, *(env[n] for n in op.inputs))
        _check(op, op.output, out)
        for k, v in wit.items():
            _check(op, k, v)
        env[op.output] = out
        if record:
            trace.tensors[op.output] = out
            for k, v in wit.items():
                trace.tensors[f"{op.output}/{k}"] = v
        for n in consumers_left.get(i, ()):  # free what no later op reads (big models, record=False)
            if n not in spec.outputs:
                env.pop(n, None)
    if not record:
        trace.tensors = {n: env[n] for n in spec.outputs}
    return trace


def _last_use(spec: QuantSpec) -> dict[int, list[str]]:
    last: dict[str, int] = {}
    for i, op in enumerate(spec.ops):
        for n in op.inputs:
            last[n] = i
    out: dict[int, list[str]] = {}
    for n, i in last.items():
        out.setdefault(i, []).append(n)
    return out
