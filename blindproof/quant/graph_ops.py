"""The op mapping shared by the graph importers (``torch.fx`` modules and ONNX files).

Each method of :class:`GraphOps` turns one float operation of a source graph into ops of the integer
program (on the :class:`~blindproof.quant.builder._Builder`), so a torch ``nn.Linear`` and an ONNX
``Gemm`` become the same ``linear``, a ``LayerNorm`` and a ``LayerNormalization`` the same ``norm``. The
importers only read their graph format (operands, attributes, weights) and call these methods; a method
that cannot express its operation raises :class:`Unsupported` with the reason, which the importer turns
into a one-line error naming the node.
"""

from __future__ import annotations

import math

import numpy as np

from blindproof.quant.builder import _Builder, _Node

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
    """A batchnorm after a linear ``x·Wᵀ + b`` (``W``: ``(out, in)``) folded into it, exactly in float:
    ``W' = W·s``, ``b' = (b − μ)·s + β``."""
    s, shift = batchnorm_affine(mean, var, gamma, beta, eps)
    bias = np.zeros(w.shape[0]) if b is None else b
    return w * s[:, None], bias * s + shift


class GraphOps:
    """Emits the integer program of a float graph, one source operation per call; records a short
    description of each (``desc``, the architecture's ``graph``) and whether the input is flattened when
    encoded (``flatten_input``)."""

    def __init__(self, b: _Builder) -> None:
        self.b = b
        self.desc: list[str] = []
        self.flatten_input = False

    # --- helpers -----------------------------------------------------------------------------------
    def act(self, n: _Node, name: str) -> _Node:
        """``n`` as an int16 activation (a rescale of an accumulator)."""
        return self.b.requant(n, name) if n.role == "accumulator" else n

    def is_input(self, n: _Node) -> bool:
        """Whether ``n`` is the program's input tensor."""
        return bool(self.b.inputs) and n is self.b.inputs[0]

    # --- shapes ------------------------------------------------------------------------------------
    def flatten(self, src: _Node) -> _Node:
        """``src`` as ``(batch, features)``: a 2-d tensor as it is; the input (first step) flattened when it is
        encoded, with no arithmetic. A 3-d or larger intermediate tensor cannot be flattened."""
        v = src.value
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
        if tuple(int(s) for s in shape) != flat:
            raise Unsupported(f"only flattening to (batch, features) is supported, {tuple(v.shape)} -> "
                              f"{tuple(shape)}", "reshape")
        return self.flatten(src)

    # --- layers ------------------------------------------------------------------------------------
    def linear(self, x: _Node, w: np.ndarray, bias: np.ndarray | None, name: str, folded: bool = False) -> _Node:
        """``x·Wᵀ + b`` with ``W`` of shape ``(out, in)``: int8 weights, an int32 bias."""
        if x.role == "index":
            raise Unsupported("token ids are read by an embedding only")
        if w.ndim != 2 or w.shape[1] != x.value.shape[-1]:
            raise Unsupported(f"a weight of shape {w.shape} does not multiply features of width {x.value.shape[-1]}")
        if bias is not None and bias.shape != (w.shape[0],):
            raise Unsupported(f"a bias of shape {bias.shape} for {w.shape[0]} outputs (one value per output needed)")
        self.desc.append(f"{name}:linear{'+bn' if folded else ''}")
        return self.b.linear(self.act(x, name + ".in"), w, bias, name)

    def relu(self, x: _Node, name: str) -> _Node:
        """``max(x, 0)``: a rescale clamped at 0."""
        self.desc.append(f"{name}:relu")
        return self.b.requant(x, name, lo=0)

    def activation(self, x: _Node, fn: str, name: str) -> _Node:
        """A table lookup of ``fn`` (one of :data:`TABLE_ACTIVATIONS`)."""
        if fn not in TABLE_ACTIVATIONS:
            raise ValueError(f"no table activation {fn!r}")
        self.desc.append(f"{name}:{fn}")
        return self.b.lookup(self.act(x, name + ".in"), fn, name)

    def sigmoid(self, x: _Node, name: str) -> _Node:
        """σ(x) = (σ(x) − 1/2) + 1/2: the centred table (0 at 0, the lookup's padding row) and a shift."""
        self.desc.append(f"{name}:sigmoid")
        c = self.b.lookup(self.act(x, name + ".in"), "sigmoid_c", name + ".c")
        return self.b.add_weight(c, np.full(x.value.shape[-1], 0.5), name)

    def layernorm(self, x: _Node, gamma: np.ndarray | None, beta: np.ndarray | None, eps: float, name: str) -> _Node:
        """A layer norm over the last axis with gain ``gamma`` (default 1) and shift ``beta``."""
        d = x.value.shape[-1]
        for what, v in (("scale", gamma), ("bias", beta)):
            if v is not None and v.shape != (d,):
                raise Unsupported(f"a {what} of shape {v.shape} for {d} features")
        self.desc.append(f"{name}:layernorm")
        g = np.ones(d) if gamma is None else gamma
        return self.b.norm(self.act(x, name + ".x"), "layer", float(eps), g, beta, name)

    def batchnorm(self, x: _Node, mean: np.ndarray, var: np.ndarray, gamma: np.ndarray | None,
                  beta: np.ndarray | None, eps: float, name: str) -> _Node:
        """A batchnorm (inference statistics) of ``(batch, features)``: per-feature scale and shift."""
        if x.value.ndim != 2:
            raise Unsupported("a batchnorm over channels of a 3-d tensor (a convolution's) is not supported")
        if mean.shape != (x.value.shape[-1],):
            raise Unsupported(f"statistics of shape {mean.shape} for {x.value.shape[-1]} features")
        s, shift = batchnorm_affine(mean, var, gamma, beta, eps)
        self.desc.append(f"{name}:batchnorm")
        scaled = self.b.mul_weight(self.act(x, name + ".x"), s.copy(), name + ".scale")
        return self.b.add_weight(scaled, np.asarray(shift, dtype=np.float64).copy(), name)

    def mean_seq(self, x: _Node, name: str) -> _Node:
        """The mean over the sequence axis of a ``(batch, seq, features)`` tensor."""
        self.desc.append(f"{name}:mean_pool")
        return self.b.mean_pool(self.act(x, name + ".in"), name)

    # --- arithmetic --------------------------------------------------------------------------------
    def add(self, a: _Node, c: _Node, name: str) -> _Node:
        """The sum of two tensors of one shape (a residual add)."""
        self._same_shape(a, c, "add")
        self.desc.append(f"{name}:add")
        return self.b.add(a, c, name)

    def mul(self, a: _Node, c: _Node, name: str) -> _Node:
        """The elementwise product of two tensors of one shape."""
        self._same_shape(a, c, "mul")
        self.desc.append(f"{name}:mul")
        return self.b.mul(self.act(a, name + ".a"), self.act(c, name + ".b"), name)

    def add_const(self, t: _Node, k: float | np.ndarray, name: str) -> _Node:
        """``t + k``, ``k`` a number or a vector over the last axis."""
        self.desc.append(f"{name}:add_const")
        return self.b.add_weight(t, self._vector(t, k), name)

    def mul_const(self, t: _Node, k: float | np.ndarray, name: str) -> _Node:
        """``t · k``, ``k`` a number or a vector over the last axis."""
        self.desc.append(f"{name}:mul_const")
        return self.b.mul_weight(self.act(t, name + ".a"), self._vector(t, k), name)

    @staticmethod
    def _same_shape(a: _Node, c: _Node, fn: str) -> None:
        if a.value.shape != c.value.shape:
            raise Unsupported(f"operands of shapes {a.value.shape} and {c.value.shape} (broadcasting is not "
                              "supported)", fn)

    @staticmethod
    def _vector(t: _Node, k: float | np.ndarray) -> np.ndarray:
        d = t.value.shape[-1]
        a = np.asarray(k, dtype=np.float64)
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
