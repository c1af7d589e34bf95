"""The op mapping shared by the graph importers (``torch.fx`` modules and ONNX files).

Each method of :class:`GraphOps` turns one float operation of a source graph into ops of the integer
program (on the :class:`~blindproof.quant.builder._Builder`), so a torch ``nn.Linear`` and an ONNX
``Gemm`` become the same ``linear``, a ``LayerNorm`` and a ``LayerNormalization`` the same ``norm``. The
importers only read their graph format (operands, attributes, weights) and call these methods; a method
that cannot express its operation raises :class:`Unsupported` with the reason, which the importer turns
into a one-line error naming the node.

Layout. Source graphs are channel-first (torch, ONNX: ``(batch, C, *spatial)``); the integer program is
channel-last (``(batch, *spatial, C)``, :mod:`blindproof.quant.conv`), so per-channel data (a bias, an
exponent, a batchnorm) lies on the last axis as after a ``linear``. A convolution of the model's input
(directly or through elementwise layers) reads it channel-last (``channel_last_input``: the input is permuted
when it is encoded, like ``flatten_input``); a convolution's output is a channel-last feature map, and
elementwise operations (activations, adds, products, batchnorms) keep it so. :meth:`GraphOps.shape` gives a
tensor's shape as the source graph sees it (for ``x.size()`` and ONNX ``Shape``). Global average pooling turns
a map into ``(batch, C)``; max pooling is a ``max_pool`` of the map. A flattened map (``Flatten`` before a
``Linear``, LeNet style) stays the map in the program, under another name; the ``Linear`` reading it gets its
weight columns permuted from the source's ``(C, *S)`` order to the map's ``(*S, C)`` and contracts the map's
last axes (a ``linear`` weight ``(O, *S, C)``).

Padding. The proof pads every axis to a power of two; a ``linear`` or ``conv`` summing over an axis that is
not one must read a tensor whose padding every proof pins to zero (``zk.proof.config.check_padding_sound``).
:meth:`GraphOps.operand` inserts a kept rescale by 0 (:meth:`_Builder.pin`) where nothing before does.
"""

from __future__ import annotations

import math

import numpy as np

from blindproof.quant.builder import _Builder, _Node
from blindproof.quant.conv import ConvGeometry

# lookups by table function: the float function of each is builder._FLOAT_ACT
TABLE_ACTIVATIONS = ("gelu", "gelu_tanh", "silu", "tanh")


class Unsupported(Exception):
    """An operation the integer program cannot express: ``why`` (and optionally ``what``, the name of the
    operation to report instead of the node's own kind)."""

    def __init__(self, why: str, what: str | None = None) -> None:
        super().__init__(why)
        self.why, self.what = why, what


def batchnorm_affine(mean: np.ndarray, var: np.ndarray, gamma: np.ndarray | None, beta: np.ndarray | None,
                     eps: float) -> tuple[np.ndarray, np.ndarray]:
    """``(s, shift)`` with ``batchnorm(x) = x·s + shift``: ``s = γ / √(σ² + ε)``, ``shift = β − μ·s``."""
    s = (1.0 if gamma is None else gamma) / np.sqrt(var + eps)
    return np.asarray(s, dtype=np.float64), (0.0 if beta is None else beta) - mean * s


def fold_batchnorm(w: np.ndarray, b: np.ndarray | None, mean: np.ndarray, var: np.ndarray,
                   gamma: np.ndarray | None, beta: np.ndarray | None, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """A batchnorm after a linear ``x·Wᵀ + b`` (``W``: ``(out, in)``) or a convolution (``W``: ``(out, in,
    *kernel)``) folded into it, exactly in float: ``W' = W·s`` (per output), ``b' = (b − μ)·s + β``."""
    s, shift = batchnorm_affine(mean, var, gamma, beta, eps)
    bias = np.zeros(w.shape[0]) if b is None else b
    return w * s.reshape(-1, *[1] * (w.ndim - 1)), bias * s + shift


MAX_POOL = ("the integer program's max_pool has windows inside the input only (no padding, no dilation, no "
            "partial windows) of at most 64 positions per axis")
FLAT_MAP = ("a flattened feature map is read by a Linear only (the integer program keeps it as the channel-last "
            "map; a Linear's weight is permuted to read it)")


class GraphOps:
    """Emits the integer program of a float graph, one source operation per call; records a short
    description of each (``desc``, the architecture's ``graph``), whether the input is flattened when
    encoded (``flatten_input``) and whether it is permuted channel-last (``channel_last_input``)."""

    def __init__(self, b: _Builder) -> None:
        self.b = b
        self.desc: list[str] = []
        self.flatten_input = False
        self.channel_last_input = False
        self.maps: set[str] = set()  # channel-last feature maps (batch, *spatial, C): channel-first in the source
        self.source: dict[str, tuple[int, ...]] = {}  # shapes the source graph sees differently from the value
        self.flat: set[str] = set()  # flattened feature maps: (batch, C·Π S) in the source, the map in the program

    # --- helpers -----------------------------------------------------------------------------------
    def act(self, n: _Node, name: str) -> _Node:
        """``n`` as an int16 activation (a rescale of an accumulator)."""
        return self._like(self.b.requant(n, name), n) if n.role == "accumulator" else n

    def is_input(self, n: _Node) -> bool:
        """Whether ``n`` is the program's input tensor."""
        return bool(self.b.inputs) and n is self.b.inputs[0]

    def shape(self, n: _Node) -> tuple[int, ...]:
        """``n``'s shape as the source graph sees it (channel-first for a feature map)."""
        return self.source.get(n.name, tuple(n.value.shape))

    def is_map(self, n: _Node) -> bool:
        """Whether ``n`` is a channel-last feature map (a convolution's output, or the permuted input)."""
        return n.name in self.maps

    def _like(self, out: _Node, *ins: _Node) -> _Node:
        """``out`` of an elementwise operation keeps its operands' layout."""
        for n in ins:
            if n.name in self.source:
                self.source[out.name] = self.source[n.name]
                if n.name in self.maps:
                    self.maps.add(out.name)
                if n.name in self.flat:
                    self.flat.add(out.name)
                break
        return out

    def _plain(self, x: _Node, what: str) -> None:
        """Refuse an operation on the last axis (``what``) of a tensor whose layout differs from the source's."""
        if x.name in self.flat:
            raise Unsupported(FLAT_MAP)
        if x.name in self.source:
            raise Unsupported(f"{what} of a {self.shape(x)} tensor acts on its last axis, which the integer program "
                              f"holds channel-last (only elementwise operations and pooling read feature maps)")

    def _fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self.b.nodes:
            i += 1
            name = f"{base}_{i}"
        return name

    def _pinned(self, n: _Node) -> bool:
        """Whether every proof pins ``n``'s padding to zero (``zk.proof.config.zero_padded_tensors``): the
        input; a rescale's output unless emit() may drop that rescale as the identity (then its source's);
        a max_pool's; a lookup's of a pinned tensor (the tables used here are 0 at 0)."""
        if self.is_input(n):
            return True
        for kind, ins, out, _ in reversed(self.b.ops):
            if out is n:
                if kind == "max_pool":
                    return True
                if kind == "rescale":
                    src = ins[0]
                    droppable = n.name not in self.b.keep and src.lo >= n.lo and src.hi <= n.hi
                    return not droppable or self._pinned(src)
                return kind == "lookup" and self._pinned(ins[0])
        return False

    def operand(self, x: _Node, name: str, widths: tuple[int, ...]) -> _Node:
        """``x`` as the int16 input of a ``linear`` or ``conv`` that sums over axes of ``widths``: rescaled from
        an accumulator, and pinned to zero on its padding (:meth:`_Builder.pin`) where a width is not a power
        of two and nothing before pins it."""
        x = self.act(x, name + ".in")
        if any(w & (w - 1) for w in widths) and not self._pinned(x):
            x = self._like(self.b.pin(x, self._fresh(name + ".pin")), x)
        return x

    def _read(self, n: _Node) -> bool:
        """Whether an op already reads ``n``."""
        return any(any(i is n for i in ins) for _, ins, _, _ in self.b.ops)

    def channel_last(self, x: _Node, what: str) -> _Node:
        """``x`` as a channel-last map for ``what`` (a convolution, a pooling): a map already, or the model's
        input ``(batch, C, *spatial)`` with one or two spatial axes, permuted when it is encoded."""
        if x.name in self.maps:
            return x
        v = x.value
        if (self.is_input(x) and v.ndim in (3, 4) and x.role != "index" and not self.flatten_input
                and not self._read(x)):
            self.channel_last_input = True
            self.source[x.name] = tuple(v.shape)
            self.maps.add(x.name)
            x.value = np.ascontiguousarray(np.moveaxis(v, 1, -1))
            self.desc.append("channel_last_input")
            return x
        if x.role == "index":
            raise Unsupported(f"token ids are read by an embedding only, not by {what}")
        raise Unsupported(f"{what} reads (batch, channels, *positions) feature maps: the model's input (read by "
                          f"nothing else first) or a convolution's output, not a {v.ndim}-d tensor of another layer")

    def check_output(self, out: _Node) -> None:
        """Refuse a program output the source graph sees in another shape (a feature map, a kept pooled axis)."""
        if out.name in self.maps or out.name in self.flat:
            raise Unsupported(f"the model's output is a{' flattened' if out.name in self.flat else ''} feature map "
                              f"{self.shape(out)} of a convolution; the integer program holds it channel-last: end "
                              "the model with a Linear (after Flatten or global average pooling)")
        if out.name in self.source:
            raise Unsupported(f"the model's output has shape {self.shape(out)} in the model, "
                              f"{tuple(out.value.shape)} in the integer program: flatten it")

    # --- shapes ------------------------------------------------------------------------------------
    def flatten(self, src: _Node) -> _Node:
        """``src`` as ``(batch, features)``: a 2-d tensor as it is; the input (first step) flattened when it is
        encoded, with no arithmetic. A 3-d or larger intermediate tensor cannot be flattened. A feature map
        of one position per channel (after global pooling) is its channels; one of several positions stays the
        map, for a Linear to read (:data:`FLAT_MAP`)."""
        v = src.value
        if src.name in self.maps:
            positions = int(np.prod(v.shape[1:-1]))
            if positions != 1:
                out = self.b.view(src, self._fresh(src.name + ".flat"))
                self.flat.add(out.name)
                self.source[out.name] = (v.shape[0], v.shape[-1] * positions)
                self.desc.append(f"{out.name}:flatten_map")
                return out
            name = self._fresh(src.name + ".flat")
            self.desc.append(f"{name}:flatten")  # a mean over one position: exact, the values as they are
            return self.b.mean_pool(self.act(src, name + ".in"), name)
        if src.name in self.flat:
            return src
        if src.name in self.source:  # (batch, C) seen as (batch, C, 1, ...) by the source: the same values
            return self.b.view(src, self._fresh(src.name + ".flat"))
        if v.ndim == 2:
            return src
        flat = (v.shape[0], int(np.prod(v.shape[1:])) if v.ndim > 1 else 1)
        if self.is_input(src) and not self.flatten_input:
            self.flatten_input = True
            src.value = v.reshape(flat)
            self.desc.append("flatten_input")
            return src
        raise Unsupported(f"flattening a {v.ndim}-d intermediate tensor needs a reshape op", "reshape")

    def reshape(self, src: _Node, shape: tuple[int, ...]) -> _Node:
        """A reshape to ``shape``, which must flatten ``src`` to ``(batch, features)``."""
        v = src.value
        flat = (v.shape[0], int(np.prod(v.shape[1:])) if v.ndim > 1 else 1)
        t = tuple(int(s) for s in shape)
        if t == self.shape(src):
            return src
        if (v.ndim == 2 and src.name not in self.flat and len(t) > 2 and t[:2] == v.shape
                and all(n == 1 for n in t[2:])):  # (batch, C) seen as (batch, C, 1, ...): the same values
            out = self.b.view(src, self._fresh(src.name + ".view"))
            self.source[out.name] = t
            return out
        if t != flat:
            raise Unsupported(f"only flattening to (batch, features) is supported, {tuple(v.shape)} -> "
                              f"{tuple(shape)}", "reshape")
        return self.flatten(src)

    # --- layers ------------------------------------------------------------------------------------
    def linear(self, x: _Node, w: np.ndarray, bias: np.ndarray | None, name: str, folded: bool = False) -> _Node:
        """``x·Wᵀ + b`` with ``W`` of shape ``(out, in)``: int8 weights, an int32 bias."""
        if x.role == "index":
            raise Unsupported("token ids are read by an embedding only")
        if x.name in self.flat:  # a flattened map: columns from the source's (C, *S) order to the map's (*S, C)
            v = x.value
            if w.ndim != 2 or w.shape[1] != int(np.prod(v.shape[1:])):
                raise Unsupported(f"a weight of shape {w.shape} does not multiply {self.shape(x)[1]} features")
            if bias is not None and bias.shape != (w.shape[0],):
                raise Unsupported(f"a bias of shape {bias.shape} for {w.shape[0]} outputs")
            wm = np.moveaxis(w.reshape(w.shape[0], v.shape[-1], *v.shape[1:-1]), 1, -1)
            self.desc.append(f"{name}:linear_map{'+bn' if folded else ''}")
            return self.b.linear(self.operand(x, name, tuple(v.shape[1:])), np.ascontiguousarray(wm), bias, name)
        self._plain(x, "a linear layer")
        if w.ndim != 2 or w.shape[1] != x.value.shape[-1]:
            raise Unsupported(f"a weight of shape {w.shape} does not multiply features of width {x.value.shape[-1]}")
        if bias is not None and bias.shape != (w.shape[0],):
            raise Unsupported(f"a bias of shape {bias.shape} for {w.shape[0]} outputs (one value per output needed)")
        self.desc.append(f"{name}:linear{'+bn' if folded else ''}")
        return self.b.linear(self.operand(x, name, (w.shape[1],)), w, bias, name)

    def conv(self, x: _Node, w: np.ndarray, bias: np.ndarray | None, name: str, geom: ConvGeometry,
             folded: bool = False) -> _Node:
        """A convolution with one or two spatial axes, groups 1: ``w`` in the source layout ``(out, in,
        *kernel)``; int8 weights (per output channel exponent), an int32 bias; channel-last in and out."""
        dims = w.ndim - 2
        if dims not in (1, 2):
            raise Unsupported(f"a convolution with {dims} spatial axes (1 or 2 are supported)")
        x = self.channel_last(x, "a convolution")
        v = x.value
        if v.ndim != dims + 2:
            raise Unsupported(f"a {dims}-d convolution of a feature map {self.shape(x)}")
        if w.shape[1] != v.shape[-1]:
            raise Unsupported(f"a weight of shape {w.shape} reads {w.shape[1]} channels, the input has {v.shape[-1]} "
                              "(grouped and depthwise convolutions are not supported)")
        if bias is not None and bias.shape != (w.shape[0],):
            raise Unsupported(f"a bias of shape {bias.shape} for {w.shape[0]} output channels")
        self.desc.append(f"{name}:conv{dims}d{'+bn' if folded else ''}")
        try:
            out = self.b.conv(self.operand(x, name, (v.shape[-1],)), w, bias, name, geom)
        except ValueError as exc:  # the kernel does not fit the positions
            raise Unsupported(str(exc).removeprefix("conv: ")) from None
        self.maps.add(out.name)
        self.source[out.name] = (v.shape[0], w.shape[0], *out.value.shape[1:-1])
        return out

    def global_pool(self, x: _Node, name: str, keep: bool = False) -> _Node:
        """The mean over every position of a feature map: ``(batch, C)`` (``keep``: the source sees
        ``(batch, C, 1, ...)``)."""
        x = self.channel_last(x, "a global pooling")
        self.desc.append(f"{name}:global_pool")
        out = self.b.mean_pool(self.act(x, name + ".in"), name)
        if keep:
            self.source[out.name] = (x.value.shape[0], x.value.shape[-1], *[1] * (x.value.ndim - 2))
        return out

    def avg_pool(self, x: _Node, kernel: tuple[int, ...], name: str) -> _Node:
        """An average pooling whose stride is its kernel (no padding): a convolution by the weight that
        averages each channel over a window (``1/Π kernel`` on the channel's own input; exact for windows of
        2^k positions, rounded to int8 precision otherwise)."""
        x = self.channel_last(x, "an average pooling")
        c = x.value.shape[-1]
        if len(kernel) != x.value.ndim - 2:
            raise Unsupported(f"a {len(kernel)}-d pooling of a feature map {self.shape(x)}")
        w = np.zeros((c, c, *kernel))
        w[np.arange(c), np.arange(c)] = 1.0 / float(np.prod(kernel))
        geom = ConvGeometry(tuple(kernel), (0,) * len(kernel), (1,) * len(kernel))
        out = self.conv(x, w, None, name, geom)
        self.desc[-1] = f"{name}:avg_pool"
        return out

    def max_pool(self, x: _Node, kernel: tuple[int, ...], stride: tuple[int, ...], name: str) -> _Node:
        """A max pooling without padding (every window inside the input): ``max_pool`` of the int16 map."""
        x = self.channel_last(x, "a max pooling")
        v = x.value
        if len(kernel) != v.ndim - 2 or len(stride) != v.ndim - 2:
            raise Unsupported(f"a {len(kernel)}-d pooling of a feature map {self.shape(x)}")
        if any(not 1 <= e <= 64 for e in (*kernel, *stride)) or int(np.prod(kernel)) < 2:
            raise Unsupported(f"kernel {kernel}, stride {stride}: {MAX_POOL}")
        if any(n < k for n, k in zip(v.shape[1:-1], kernel)):
            raise Unsupported(f"a window {kernel} larger than the positions {tuple(v.shape[1:-1])}")
        self.desc.append(f"{name}:max_pool")
        out = self.b.max_pool(self.act(x, name + ".in"), tuple(kernel), tuple(stride), name)
        self.maps.add(out.name)
        self.source[out.name] = (v.shape[0], v.shape[-1], *out.value.shape[1:-1])
        return out

    def relu(self, x: _Node, name: str) -> _Node:
        """``max(x, 0)``: a rescale clamped at 0."""
        self.desc.append(f"{name}:relu")
        return self._like(self.b.requant(x, name, lo=0), x)

    def activation(self, x: _Node, fn: str, name: str) -> _Node:
        """A table lookup of ``fn`` (one of :data:`TABLE_ACTIVATIONS`)."""
        if fn not in TABLE_ACTIVATIONS:
            raise ValueError(f"no table activation {fn!r}")
        self.desc.append(f"{name}:{fn}")
        return self._like(self.b.lookup(self.act(x, name + ".in"), fn, name), x)

    def sigmoid(self, x: _Node, name: str) -> _Node:
        """σ(x) = (σ(x) − 1/2) + 1/2: the centred table (0 at 0, the lookup's padding row) and a shift."""
        self.desc.append(f"{name}:sigmoid")
        c = self._like(self.b.lookup(self.act(x, name + ".in"), "sigmoid_c", name + ".c"), x)
        return self._like(self.b.add_weight(c, np.full(x.value.shape[-1], 0.5), name), x)

    def layernorm(self, x: _Node, gamma: np.ndarray | None, beta: np.ndarray | None, eps: float, name: str) -> _Node:
        """A layer norm over the last axis with gain ``gamma`` (default 1) and shift ``beta``."""
        self._plain(x, "a layer norm")
        d = x.value.shape[-1]
        for what, v in (("scale", gamma), ("bias", beta)):
            if v is not None and v.shape != (d,):
                raise Unsupported(f"a {what} of shape {v.shape} for {d} features")
        self.desc.append(f"{name}:layernorm")
        g = np.ones(d) if gamma is None else gamma
        return self.b.norm(self.act(x, name + ".x"), "layer", float(eps), g, beta, name)

    def batchnorm(self, x: _Node, mean: np.ndarray, var: np.ndarray, gamma: np.ndarray | None,
                  beta: np.ndarray | None, eps: float, name: str) -> _Node:
        """A batchnorm (inference statistics) of ``(batch, features)``, or of a feature map (per channel, the
        last axis channel-last): per-feature scale and shift."""
        if x.name in self.flat:
            raise Unsupported(FLAT_MAP)
        if x.value.ndim != 2 and x.name not in self.maps:
            raise Unsupported(f"a batchnorm over axis 1 of a {x.value.ndim}-d tensor that is not a convolution's "
                              "feature map")
        if mean.shape != (x.value.shape[-1],):
            raise Unsupported(f"statistics of shape {mean.shape} for {x.value.shape[-1]} features")
        s, shift = batchnorm_affine(mean, var, gamma, beta, eps)
        self.desc.append(f"{name}:batchnorm")
        scaled = self._like(self.b.mul_weight(self.act(x, name + ".x"), s.copy(), name + ".scale"), x)
        return self._like(self.b.add_weight(scaled, np.asarray(shift, dtype=np.float64).copy(), name), x)

    def mean_seq(self, x: _Node, name: str) -> _Node:
        """The mean over the sequence axis of a ``(batch, seq, features)`` tensor."""
        self._plain(x, "a mean over axis 1")
        self.desc.append(f"{name}:mean_pool")
        return self.b.mean_pool(self.act(x, name + ".in"), name)

    # --- arithmetic --------------------------------------------------------------------------------
    def add(self, a: _Node, c: _Node, name: str) -> _Node:
        """The sum of two tensors of one shape (a residual add)."""
        self._same_shape(a, c, "add")
        self.desc.append(f"{name}:add")
        return self._like(self.b.add(a, c, name), a)

    def mul(self, a: _Node, c: _Node, name: str) -> _Node:
        """The elementwise product of two tensors of one shape."""
        self._same_shape(a, c, "mul")
        self.desc.append(f"{name}:mul")
        return self._like(self.b.mul(self.act(a, name + ".a"), self.act(c, name + ".b"), name), a)

    def add_const(self, t: _Node, k: float | np.ndarray, name: str) -> _Node:
        """``t + k``, ``k`` a number or a vector over the last axis (over the channels of a feature map)."""
        self.desc.append(f"{name}:add_const")
        return self._like(self.b.add_weight(t, self._vector(t, k), name), t)

    def mul_const(self, t: _Node, k: float | np.ndarray, name: str) -> _Node:
        """``t · k``, ``k`` a number or a vector over the last axis (over the channels of a feature map)."""
        self.desc.append(f"{name}:mul_const")
        return self._like(self.b.mul_weight(self.act(t, name + ".a"), self._vector(t, k), name), t)

    def _same_shape(self, a: _Node, c: _Node, fn: str) -> None:
        if a.value.shape != c.value.shape or self.shape(a) != self.shape(c):
            raise Unsupported(f"operands of shapes {self.shape(a)} and {self.shape(c)} (broadcasting is not "
                              "supported)", fn)
        if self.is_map(a) != self.is_map(c):
            raise Unsupported("a feature map (held channel-last) and a tensor of another layout", fn)

    def _vector(self, t: _Node, k: float | np.ndarray) -> np.ndarray:
        d = t.value.shape[-1]
        a = np.asarray(k, dtype=np.float64)
        if t.name in self.flat and a.size > 1:
            raise Unsupported(FLAT_MAP)
        if t.name in self.source and a.size > 1:  # channel-first in the source: one value per channel (axis 1)
            src = self.shape(t)
            a = a.reshape((1,) * max(0, len(src) - a.ndim) + a.shape)
            if a.ndim != len(src) or a.shape[0] != 1 or a.shape[1] != d or any(s != 1 for s in a.shape[2:]):
                raise Unsupported(f"a constant of shape {np.shape(k)} for a {src} tensor (a number or one value per "
                                  "channel is supported)")
            a = a.reshape(d)
        if a.size == 1:
            v = float(a.reshape(()))
            if not math.isfinite(v):
                raise Unsupported(f"a constant {v} (not finite)")
            return np.full(d, v)
        if a.reshape(-1).shape != (d,) or a.shape[-1] != d or any(s != 1 for s in a.shape[:-1]):
            raise Unsupported(f"a constant of shape {a.shape} for {d} features (a number or one value per feature "
                              "is supported)")
        if not np.isfinite(a).all():
            raise Unsupported("a constant with values that are not finite")
        return a.reshape(d).copy()
