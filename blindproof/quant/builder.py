"""The quantizer's program builder: nodes of the integer program and the builder that
emits ops, weights and tables (``blindproof.quant.quantizer`` walks models with it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from blindproof.quant.conv import ConvGeometry, conv_shapes, max_pool_exact
from blindproof.quant.functions import rope_angles, round_half_up
from blindproof.quant.spec import (ACC_BOUND, INT16_MAX, INT8_MAX, norm_sq_bits, Op, QuantSpec, TableSpec,
                                      TensorSpec, WeightSpec)
from blindproof.quant.tables import activation_table, exp_table, rope_table, softcap_table


WIDE = ACC_BOUND - 1

# Float activations for calibration (vectorized; the integer tables come from tables.py).
_FLOAT_ACT: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "silu": lambda x: torch.nn.functional.silu(torch.from_numpy(x)).numpy(),
    "gelu": lambda x: torch.nn.functional.gelu(torch.from_numpy(x)).numpy(),
    "gelu_tanh": lambda x: torch.nn.functional.gelu(torch.from_numpy(x), approximate="tanh").numpy(),
    "tanh": np.tanh,
    "sigmoid_c": lambda x: 1.0 / (1.0 + np.exp(-x)) - 0.5,
}


class QuantizationError(ValueError):
    """The model cannot be quantized within the integer model's bounds (or the input is unusable)."""


@dataclass(frozen=True)
class QuantConfig:
    """Knobs of the quantizer; everything they decide is written into the QuantSpec."""

    act_headroom: float = 2.0      # calibration max of an activation maps to <= 32767 / act_headroom
    acc_headroom: float = 2.0      # calibration max of an accumulator maps to <= 2^29 / acc_headroom
    norm_sq_limit: int = 1 << 28   # sum of squares inside a norm stays below this on calibration data
    per_channel: bool = True       # int8 weight exponent per output row (else one per matrix)
    shared_tables: bool = True     # one SiLU/GELU table per function: its layers share exponents
    score_exp: int = 12            # attention scores enter softmax at 2^-12 (exp table domain [0, 16))
    exp_out_exp: int = 15          # exp table entries: round(2^15 exp(-z)), so exp(0) = 2^15
    prob_exp: int = 14             # probabilities at 2^-14; e * 2^14 <= 2^29 (the softmax proof splits sum)
    rope_exp: int = 13             # cos/sin at 2^-13: x1*C - x2*S <= 2 * 2^15 * 2^13 = 2^29
    max_exp: int = 24              # cap for tensors whose calibration values are (near) zero

    def __post_init__(self) -> None:
        if self.act_headroom < 1 or self.acc_headroom < 1:
            raise ValueError("headrooms must be >= 1")
        if self.exp_out_exp + self.prob_exp > 29:
            raise ValueError("exp_out_exp + prob_exp must be <= 29 (softmax numerators e*2^prob_exp <= 2^29)")
        if self.prob_exp > 14:
            raise ValueError("prob_exp must be <= 14 (p @ v with int16 v stays near 2^29)")
        if self.rope_exp > 13:
            raise ValueError("rope_exp must be <= 13 (RoPE products of int16 stay below 2^29)")


class _Node:
    """A tensor of the program being built: float calibration value plus how its exponent is set."""

    def __init__(self, name: str, value: np.ndarray, role: str, lo: int, hi: int, *, tie: "_Node | None" = None,
                 fixed: int | None = None, derive: Callable[[], np.ndarray] | None = None,
                 stat: float | None = None) -> None:
        self.name, self.value, self.role, self.lo, self.hi = name, value, role, lo, hi
        self.tie, self.fixed, self.derive = tie, fixed, derive
        self.stat = float(np.abs(value).max()) if stat is None and value.size else (stat or 0.0)

    @property
    def free(self) -> bool:
        return self.tie is None and self.fixed is None and self.derive is None

    def root(self) -> "_Node":
        return self.tie.root() if self.tie is not None else self


def _floor_log2(x: float) -> int:
    return math.floor(math.log2(x))


class _Builder:
    def __init__(self, cfg: QuantConfig) -> None:
        self.cfg = cfg
        self.nodes: dict[str, _Node] = {}
        self.ops: list[tuple[str, list[_Node], _Node, Callable[[], dict]]] = []
        self.weights: dict[str, Callable[[], tuple[np.ndarray, str, np.ndarray | int]]] = {}
        self.tables: dict[str, Callable[[], TableSpec]] = {}
        self.lookups: list[tuple[str, _Node, _Node]] = []  # (fn, input, output) of activation lookups
        self.caps: dict[str, int] = {}
        self.pairs: list[tuple[_Node, _Node, int]] = []
        self.exps: dict[str, np.ndarray | int] = {}
        self.inputs: list[_Node] = []
        self.keep: set[str] = set()  # outputs of rescales by 0 that emit() keeps (see pin())

    # --- exponents ---------------------------------------------------------------------------------
    def node(self, name: str, value: np.ndarray, role: str = "activation", lo: int = -INT16_MAX,
             hi: int = INT16_MAX, **kw) -> _Node:
        if name in self.nodes:
            raise ValueError(f"duplicate tensor name {name!r}")
        n = _Node(name, np.asarray(value, dtype=np.float64), role, lo, hi, **kw)
        self.nodes[name] = n
        return n

    def cap(self, n: _Node, limit: int) -> None:
        r = n.root()
        self.caps[r.name] = min(self.caps.get(r.name, self.cfg.max_exp), limit)

    def acc_limit(self, peak: float) -> int:
        """Largest exponent sum keeping a real peak below 2^29 / acc_headroom."""
        return self.cfg.max_exp * 2 if peak <= 0 else _floor_log2(ACC_BOUND / (self.cfg.acc_headroom * peak))

    def solve(self) -> None:
        for n in self.nodes.values():
            if n.free:
                e = self.cfg.max_exp if n.stat <= 0 else _floor_log2(n.hi / (self.cfg.act_headroom * n.stat))
                self.exps[n.name] = min(e, self.cfg.max_exp, self.caps.get(n.name, self.cfg.max_exp))
        for a, b, limit in self.pairs:
            ra, rb = a.root(), b.root()
            while self.exps[ra.name] + self.exps[rb.name] > limit:
                big = ra if self.exps[ra.name] >= self.exps[rb.name] else rb
                self.exps[big.name] -= 1
        if self.cfg.shared_tables:  # lookups of one function share (in, out) exponents: one table each
            for fn in {f for f, _, _ in self.lookups}:
                for side in (1, 2):
                    roots = [item[side].root() for item in self.lookups if item[0] == fn]
                    e = min(self.exps[r.name] for r in roots)  # lowering only: every bound still holds
                    for r in roots:
                        self.exps[r.name] = e

    def exp(self, n: _Node):
        if n.name not in self.exps:
            if n.tie is not None:
                e = self.exp(n.tie)
            elif n.fixed is not None:
                e = n.fixed
            elif n.derive is not None:
                e = n.derive()
            else:
                raise RuntimeError(f"exponent of {n.name} requested before solve()")
            self.exps[n.name] = e
        return self.exps[n.name]

    def op(self, kind: str, inputs: list[_Node], out: _Node, params: Callable[[], dict] = dict) -> _Node:
        self.ops.append((kind, inputs, out, params))
        return out

    @staticmethod
    def weight_exp(w: np.ndarray, limit: int, per_row: bool) -> np.ndarray:
        """Power-of-two exponent(s) for |w| 2^e <= limit, per row or for the whole tensor.

        Each row also tries one step finer (clipping its largest entries) and keeps whichever
        exponent gives the smaller squared rounding error."""
        rows = w.reshape(w.shape[0], -1) if (per_row and w.ndim > 1) else w.reshape(1, -1)
        peak = np.abs(rows).max(axis=1)
        e0 = np.floor(np.log2(limit / np.where(peak > 0, peak, 1.0))).astype(np.int64)
        e0 = np.where(peak > 0, e0, 0)

        def err(e: np.ndarray) -> np.ndarray:
            scale = np.exp2(e.astype(np.float64))[:, None]
            return ((np.clip(round_half_up(rows * scale), -limit, limit) / scale - rows) ** 2).sum(axis=1)
        e = np.where(err(e0 + 1) < err(e0), e0 + 1, e0)
        return e if (per_row and w.ndim > 1) else np.full(w.shape[0] if w.ndim > 1 else 1, e[0])

    # --- program steps -----------------------------------------------------------------------------
    def input_index(self, name: str, tokens: np.ndarray, vocab: int) -> _Node:
        n = self.node(name, tokens.astype(np.float64), "index", 0, vocab - 1, fixed=0)
        self.inputs.append(n)
        return n

    def input_features(self, name: str, x: np.ndarray) -> _Node:
        n = self.node(name, x, "input")
        self.inputs.append(n)
        return n

    def embed(self, idx: _Node, table: np.ndarray, name: str, index: str) -> _Node:
        rows = table[idx.value.astype(np.int64)] if index == "tokens" else \
            np.broadcast_to(table[:idx.value.shape[-1]], (*idx.value.shape, table.shape[1]))
        out = self.node(name, rows, stat=float(np.abs(table).max()))  # every row must fit, not just seen ones
        wname = name + ".table"
        self.weights[wname] = lambda: (self._q(table, self.exp(out), INT16_MAX), "int16", self.exp(out))
        return self.op("embed", [idx], out, lambda: {"weight": wname, "index": index})

    def linear(self, x: _Node, w: np.ndarray, b: np.ndarray | None, name: str) -> _Node:
        """``x·Wᵀ + b``; a weight ``(O, *F)`` of more than two axes contracts ``x``'s last ``len(F)`` axes (a
        Linear reading a flattened channel-last feature map, its columns in the map's order)."""
        f = w.ndim - 1
        xf = x.value.reshape(*x.value.shape[:x.value.ndim - f], -1) if f > 1 else x.value
        acc = xf @ w.reshape(w.shape[0], -1).T + (0.0 if b is None else b)
        return self._weighted("linear", x, acc, w, b, name)

    def conv(self, x: _Node, w: np.ndarray, b: np.ndarray | None, name: str, geom: ConvGeometry) -> _Node:
        """A convolution of the channel-last ``x`` ``(batch, *spatial, C)`` by ``w`` given in torch's layout
        ``(O, C, *kernel)`` (stored channel-last, ``(O, *kernel, C)``), plus ``b``: an accumulator
        ``(batch, *out, O)`` whose exponent is ``exp(x)`` plus the weight's, per output channel, as for
        :meth:`linear`."""
        wc = np.ascontiguousarray(np.moveaxis(np.asarray(w, dtype=np.float64), 1, -1))
        conv_shapes(x.value.shape, wc.shape, geom)  # ValueError on a mismatch
        acc = _conv_float(x.value, wc, geom) + (0.0 if b is None else b)
        return self._weighted("conv", x, acc, wc, b, name, geom.to_params())

    def _weighted(self, kind: str, x: _Node, acc: np.ndarray, w: np.ndarray, b: np.ndarray | None, name: str,
                  params: dict | None = None) -> _Node:
        """The accumulator ``acc`` of ``x`` by the int8 weight ``w`` (one exponent per output row, its first
        axis) plus the int32 bias ``b`` at the accumulator's exponent: the op ``kind`` (linear or conv)."""
        ew = self.weight_exp(w, INT8_MAX, self.cfg.per_channel)
        peak = float((np.abs(acc).reshape(-1, w.shape[0]).max(0) * 2.0 ** ew).max()) if acc.size else 0.0
        self.cap(x, self.acc_limit(peak))
        out = self.node(name, acc, "accumulator", -WIDE, WIDE, derive=lambda: self.exp(x) + ew)
        per_row = ew.reshape(-1, *[1] * (w.ndim - 1))
        self.weights[name + ".weight"] = lambda: (self._q(w, per_row, INT8_MAX), "int8", ew)
        if b is not None:
            self.weights[name + ".bias"] = lambda: (self._q(b, self.exp(out), WIDE), "int32", self.exp(out))
        return self.op(kind, [x], out, lambda: {"weight": name + ".weight",
                                                "bias": name + ".bias" if b is not None else None, **(params or {})})

    def view(self, x: _Node, name: str) -> _Node:
        """``x`` under another name, for a source graph that sees it in another shape (a pooled ``(B, C, 1, 1)``
        flattened to ``(B, C)``): a rescale by 0 that :meth:`emit` drops, its readers reading ``x``."""
        out = self.node(name, x.value, x.role, x.lo, x.hi, tie=x)
        return self.op("rescale", [x], out, lambda: {"shift": 0})

    def pin(self, x: _Node, name: str) -> _Node:
        """``x`` through a rescale by 0 that :meth:`emit` keeps: a rescale's output is zero on the proof's
        padding, which a ``linear`` or ``conv`` summing over an axis that is not a power of two needs of its
        input (``zk.proof.config.check_padding_sound``), e.g. after a ``mean_pool`` or an ``add``."""
        out = self.node(name, x.value, "activation" if x.role == "input" else x.role, x.lo, x.hi, tie=x)
        self.keep.add(name)
        return self.op("rescale", [x], out, lambda: {"shift": 0})

    def requant(self, x: _Node, name: str, lo: int = -INT16_MAX, hi: int = INT16_MAX,
                fixed: int | None = None) -> _Node:
        value = np.maximum(x.value, 0.0) if lo == 0 else x.value
        out = self.node(name, value, "activation", lo, hi, fixed=fixed)
        return self.op("rescale", [x], out, lambda: {"shift": _compact(self.exp(x) - self.exp(out))})

    def align(self, x: _Node, target: _Node, name: str) -> _Node:
        out = self.node(name, x.value, "activation", target.lo, target.hi, tie=target)
        return self.op("rescale", [x], out, lambda: {"shift": _compact(self.exp(x) - self.exp(out))})

    def add(self, a: _Node, b: _Node, name: str) -> _Node:
        out = self.node(name, a.value + b.value)
        a2, b2 = self.align(a, out, name + ".a"), self.align(b, out, name + ".b")
        return self.op("add", [a2, b2], out)

    def add_weight(self, a: _Node, w: np.ndarray, name: str) -> _Node:
        out = self.node(name, a.value + w, a.role, a.lo, a.hi, tie=a)
        self.weights[name + ".weight"] = lambda: (self._q(w, self.exp(out), WIDE), "int32", _compact(self.exp(out)))
        return self.op("add_weight", [a], out, lambda: {"weight": name + ".weight"})

    def mul(self, a: _Node, b: _Node, name: str) -> _Node:
        prod = a.value * b.value
        self.pairs.append((a, b, self.acc_limit(float(np.abs(prod).max()) if prod.size else 0.0)))
        out = self.node(name, prod, "accumulator", -WIDE, WIDE, derive=lambda: self.exp(a) + self.exp(b))
        return self.op("mul", [a, b], out)

    def mul_weight(self, a: _Node, w: np.ndarray, name: str, peak: float | None = None) -> _Node:
        """a * w with w an int16 vector; `peak` is the largest real value the accumulator must hold
        (default max|a w|; a LayerNorm passes max|a w + beta| since beta is added at this exponent)."""
        prod = a.value * w
        wnode = self.node(name + ".w", w, "weight")  # w's exponent is solved like an activation's
        limit = float(np.abs(prod).max()) if peak is None else peak
        self.pairs.append((a, wnode, self.acc_limit(limit)))
        out = self.node(name, prod, "accumulator", -WIDE, WIDE, derive=lambda: self.exp(a) + self.exp(wnode))
        self.weights[name + ".weight"] = lambda: (self._q(w, self.exp(wnode), INT16_MAX), "int16", self.exp(wnode))
        return self.op("mul_weight", [a], out, lambda: {"weight": name + ".weight"})

    def lookup(self, x: _Node, fn: str, name: str) -> _Node:
        out = self.node(name, _FLOAT_ACT[fn](x.value))
        self.lookups.append((fn, x, out))

        def params() -> dict:  # tables are named by function and exponents, so equal ones are one table
            ein, eout = int(self.exp(x)), int(self.exp(out))
            tname = f"{fn}.in{ein}.out{eout}"
            self.tables.setdefault(tname, lambda: activation_table(tname, fn, ein, eout))
            return {"table": tname}
        return self.op("lookup", [x], out, params)

    def softcap(self, x: _Node, cap: float, name: str, out_exp: int) -> _Node:
        """``c·tanh(x/c)`` (Gemma 2): ``x`` rescaled to a clamped int16 activation, then a public table
        lookup whose output has the fixed exponent ``out_exp`` (the table's entries bound its range)."""
        xin = self.requant(x, name + ".in")
        bound = int(math.ceil(cap * 2.0 ** out_exp))
        out = self.node(name, cap * np.tanh(xin.value / cap), "activation", -bound, bound, fixed=out_exp)

        def params() -> dict:
            ein = int(self.exp(xin))
            tname = f"softcap{cap!r}.in{ein}.out{out_exp}"
            self.tables.setdefault(tname, lambda: softcap_table(tname, cap, ein, out_exp))
            return {"table": tname}
        return self.op("lookup", [xin], out, params)

    def lookup_fixed(self, x: _Node, fn: str, value: np.ndarray, name: str, out_exp: int, lo: int, hi: int) -> _Node:
        """A public table ``fn`` (tables.py) over the int16 domain, with its output at the fixed exponent
        ``out_exp`` and range ``[lo, hi]`` (not int16: e.g. scores for a softmax). ``x`` must be int16."""
        out = self.node(name, value, "activation", lo, hi, fixed=out_exp)

        def params() -> dict:
            ein = int(self.exp(x))
            tname = f"{fn}.in{ein}.out{out_exp}"
            self.tables.setdefault(tname, lambda: activation_table(tname, fn, ein, out_exp))
            return {"table": tname}
        return self.op("lookup", [x], out, params)

    def add_fixed(self, a: _Node, c: _Node, name: str, lo: int, hi: int, fixed: int) -> _Node:
        """``clamp(a + c, lo, hi)`` of two tensors already at the exponent ``fixed`` (no alignment)."""
        out = self.node(name, a.value + c.value, "activation", lo, hi, fixed=fixed)
        return self.op("add", [a, c], out)

    def norm(self, x: _Node, kind: str, eps: float, gamma: np.ndarray, beta: np.ndarray | None, name: str) -> _Node:
        d = x.value.shape[-1]
        c = x.value - x.value.mean(-1, keepdims=True) if kind == "layer" else x.value
        ssq = (c * c).sum(-1) + d * eps
        xin = self.node(name + ".in", x.value)
        s_peak = float(ssq.max()) if ssq.size else 0.0
        if s_peak > 0:
            self.cap(xin, _floor_log2(self.cfg.norm_sq_limit / s_peak) // 2)
        self.op("rescale", [x], xin, lambda: {"shift": _compact(self.exp(x) - self.exp(xin))})
        n = self.node(name + ".n", c / np.sqrt(ssq / d)[..., None])
        self.cap(n, self.norm_out_limit(d))

        def params() -> dict:
            ein, en = int(self.exp(xin)), int(self.exp(n))
            return {"kind": kind, "d": d, "E": max(1, math.floor(d * eps * 4.0 ** ein + 0.5)),
                    "C": math.floor(math.sqrt(d) * 2.0 ** en + 0.5)}
        self.op("norm", [xin], n, params)
        peak = float(np.abs(n.value * gamma + (0.0 if beta is None else beta)).max())
        g = self.mul_weight(n, gamma, name + ".gamma", peak)
        if beta is not None:
            g = self.add_weight(g, beta, name + ".beta")
        return self.requant(g, name + ".out")

    def norm_out_limit(self, d: int) -> int:
        """Finest exponent of a norm's output whose constant ``C = √d·2^e`` keeps the norm proof's domain
        (``S < 2^a``, :func:`norm_sq_bits`) at least twice ``norm_sq_limit``, the calibration cap of ``S``."""
        need = (self.cfg.norm_sq_limit - 1).bit_length() + 1
        for e in range(self.cfg.max_exp, -self.cfg.max_exp - 1, -1):
            if norm_sq_bits(math.floor(math.sqrt(d) * 2.0 ** e + 0.5)) >= need:
                return e
        raise QuantizationError(f"norm_sq_limit = {self.cfg.norm_sq_limit}: no norm output exponent keeps the "
                                f"proof's domain for the sum of squares above twice that")

    def split_heads(self, x: _Node, heads: int, name: str) -> _Node:
        b, t, dd = x.value.shape
        v = x.value.reshape(b, t, heads, dd // heads).transpose(0, 2, 1, 3)
        return self.op("split_heads", [x], self.node(name, v, x.role, x.lo, x.hi, tie=x), lambda: {"heads": heads})

    def merge_heads(self, x: _Node, name: str) -> _Node:
        b, h, t, hd = x.value.shape
        v = x.value.transpose(0, 2, 1, 3).reshape(b, t, h * hd)
        return self.op("merge_heads", [x], self.node(name, v, x.role, x.lo, x.hi, tie=x))

    def rope(self, x: _Node, name: str, theta: float, max_seq: int, llama3: tuple | None = None,
             freqs: tuple | None = None, table: str = "rope") -> _Node:
        hd = x.value.shape[-1]
        t = x.value.shape[-2]
        ang = rope_angles(hd, max_seq, theta, llama3, freqs)[:t]
        cos, sin = np.cos(ang), np.sin(ang)
        x1, x2 = x.value[..., :hd // 2], x.value[..., hd // 2:]
        v = np.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
        fc = self.cfg.rope_exp
        for fn in ("cos", "sin"):
            self.tables.setdefault(f"{table}.{fn}", lambda fn=fn: rope_table(f"{table}.{fn}", fn, fc, hd, max_seq,
                                                                             theta, llama3, freqs))
        out = self.node(name, v, "accumulator", -WIDE, WIDE, derive=lambda: self.exp(x) + fc)
        return self.op("rope", [x], out, lambda: {"cos": f"{table}.cos", "sin": f"{table}.sin"})

    def qk(self, q: _Node, k: _Node, name: str) -> _Node:
        kk = np.repeat(k.value, q.value.shape[1] // k.value.shape[1], axis=1)
        s = q.value @ np.swapaxes(kk, -1, -2)
        self.pairs.append((q, k, self.acc_limit(float(np.abs(s).max()))))
        out = self.node(name, s, "accumulator", -WIDE, WIDE, derive=lambda: self.exp(q) + self.exp(k))
        return self.op("qk", [q, k], out)

    def softmax(self, s: _Node, causal: bool, name: str) -> _Node:
        v = s.value.copy()
        if causal:
            t = v.shape[-1]
            v = np.where(np.tril(np.ones((t, t), dtype=bool)), v, -np.inf)
        v = np.exp(v - v.max(-1, keepdims=True))
        v /= v.sum(-1, keepdims=True)
        cfg = self.cfg
        self.tables.setdefault("softmax.exp", lambda: exp_table("softmax.exp", cfg.score_exp, cfg.exp_out_exp))
        out = self.node(name, v, "activation", 0, 1 << cfg.prob_exp, fixed=cfg.prob_exp)
        return self.op("softmax", [s], out, lambda: {"causal": causal, "table": "softmax.exp", "frac": cfg.prob_exp})

    def pv(self, p: _Node, v: _Node, name: str) -> _Node:
        vv = np.repeat(v.value, p.value.shape[1] // v.value.shape[1], axis=1)
        out = self.node(name, p.value @ vv, "accumulator", -WIDE, WIDE, derive=lambda: self.exp(p) + self.exp(v))
        return self.op("pv", [p, v], out)

    def max_pool(self, x: _Node, kernel: tuple[int, ...], stride: tuple[int, ...], name: str) -> _Node:
        """The max over each window of the channel-last ``x`` (no padding): one of its own values, so at its
        exponent and within its range."""
        v = max_pool_exact(x.value, kernel, stride)  # ValueError when the window does not fit
        out = self.node(name, v, "activation" if x.role == "input" else x.role, x.lo, x.hi, tie=x)
        return self.op("max_pool", [x], out, lambda: {"kernel": list(kernel), "stride": list(stride)})

    def mean_pool(self, x: _Node, name: str) -> _Node:
        """The mean over every middle axis: ``(batch, seq, C)`` or ``(batch, *spatial, C)`` to ``(batch, C)``."""
        mid = tuple(range(1, x.value.ndim - 1))
        return self.op("mean_pool", [x], self.node(name, x.value.mean(mid), x.role, x.lo, x.hi, tie=x))

    # --- emission ----------------------------------------------------------------------------------
    @staticmethod
    def _q(w: np.ndarray, e, limit: int) -> np.ndarray:
        """round(w 2^e), clipped to +-limit for int8/int16; a 2^29-wide value out of range is an error."""
        v = round_half_up(np.asarray(w) * np.exp2(np.asarray(e, dtype=np.float64)))
        if limit == WIDE and v.size and int(np.abs(v).max()) > WIDE:
            raise QuantizationError(f"a bias/shift vector needs {int(np.abs(v).max())} >= 2^29 at its exponent")
        return np.clip(v, -limit, limit)

    def emit(self, arch: dict, outputs: list[_Node]) -> tuple[QuantSpec, dict[str, np.ndarray]]:
        self.solve()
        alias: dict[str, str] = {}
        ops: list[Op] = []
        out_names = {o.name for o in outputs}
        used: list[_Node] = list(self.inputs)
        for kind, inputs, out, params in self.ops:
            names = tuple(alias.get(i.name, i.name) for i in inputs)
            p = params()
            src = self.nodes[names[0]] if kind == "rescale" else None
            if (kind == "rescale" and np.all(np.asarray(p["shift"]) == 0) and out.name not in out_names
                    and out.name not in self.keep and src.lo >= out.lo and src.hi <= out.hi):
                alias[out.name] = names[0]  # identity rescale: read the input directly
                continue
            ops.append(Op(kind, names, out.name, p))
            used.append(out)
        tensors = {n.name: TensorSpec(n.name, _compact(self.exp(n)), n.lo, n.hi, n.role) for n in used}
        weights: dict[str, np.ndarray] = {}
        wspecs: dict[str, WeightSpec] = {}
        for name, fn in self.weights.items():
            arr, dtype, e = fn()
            weights[name] = arr.astype(np.int64)
            wspecs[name] = WeightSpec(name, tuple(arr.shape), dtype, _compact(e))
        tables = {name: fn() for name, fn in self.tables.items()}
        try:  # the spec refuses parameters that would make a proof relation ambiguous (spec._check_domain)
            spec = QuantSpec(arch, tuple(n.name for n in self.inputs),
                             tuple(alias.get(o.name, o.name) for o in outputs), tuple(ops), tensors, wspecs, tables)
        except ValueError as exc:
            raise QuantizationError(f"the integer program leaves the proof's domain: {exc}") from exc
        return spec, weights


def _conv_float(x: np.ndarray, wc: np.ndarray, geom: ConvGeometry) -> np.ndarray:
    """The float64 convolution of channel-last ``x`` by the channel-last weight ``wc`` (torch's, on permuted
    views)."""
    f = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d}[wc.ndim - 2]
    xt = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1), dtype=np.float64))
    wt = torch.from_numpy(np.ascontiguousarray(np.moveaxis(wc, -1, 1), dtype=np.float64))
    y = f(xt, wt, stride=geom.stride, padding=geom.padding, dilation=geom.dilation)
    return np.moveaxis(y.numpy(), 1, -1)


def _compact(e) -> int | tuple[int, ...]:
    """An exponent or shift as an int when uniform, else a tuple over the last axis."""
    a = np.atleast_1d(np.asarray(e, dtype=np.int64))
    return int(a[0]) if np.all(a == a[0]) else tuple(int(x) for x in a)
