"""ONNX files into the integer program: each node of the graph read onto the shared op mapping
(:mod:`blindproof.quant.graph_ops`), the one torch modules use.

| ONNX | integer program |
|---|---|
| ``Gemm`` (``transA = 0``), ``MatMul`` by a weight, with a following ``Add`` of a bias vector | ``linear`` (int8 weights, int32 bias) |
| ``Conv`` (1 or 2 spatial axes, ``group = 1``, symmetric ``pads`` or ``auto_pad``) | ``conv`` (channel-last; int8 weights per output channel, int32 bias) |
| ``BatchNormalization`` right after one of those, on ``(batch, features)`` or a ``Conv``'s map | folded into its weights and bias |
| ``BatchNormalization`` elsewhere, on ``(batch, features)`` or a feature map | ``mul_weight`` + ``add_weight`` |
| ``GlobalAveragePool``; ``ReduceMean`` over every position of a feature map | ``mean_pool`` over the positions |
| ``AveragePool`` with ``strides = kernel_shape``, no padding | ``conv`` by a weight that averages each channel over its window |
| ``MaxPool`` without padding or dilation, ``GlobalMaxPool`` | ``max_pool`` |
| ``Relu`` | ``rescale`` clamped at 0 |
| ``Gelu`` (``approximate`` none or tanh), its ``Erf`` form (``Div(x, √2)``, ``Erf``, ``Add 1``, ``Mul x``, ``Mul 0.5``), ``Tanh``, ``Mul(x, Sigmoid(x))`` (SiLU) | table ``lookup`` |
| ``Sigmoid`` | ``lookup`` of ``σ(x) − 1/2``, ``add_weight`` of 1/2 |
| ``LayerNormalization`` (last axis) | ``norm`` (layer), gain and shift |
| ``Add``, ``Mul`` of two tensors; ``Add``, ``Sub``, ``Mul``, ``Div`` of a tensor and a number or per-feature vector | ``add``; ``mul``; ``add_weight``; ``mul_weight`` |
| ``Flatten`` (axis 1), ``Reshape`` / ``Squeeze`` to ``(batch, features)`` | the input flattened when encoded (first step); nothing on a 2-d tensor or a globally pooled map; ``mean_pool`` (exact) on a map of one position per channel |
| ``Gemm`` / ``MatMul`` after flattening a feature map of several positions | ``linear`` contracting the channel-last map's last axes, its weight columns permuted from ``(C, H, W)`` order to ``(H, W, C)`` |
| ``Identity``, ``Dropout`` (inference), ``Constant``; ``Shape`` and nodes of constants only (``Gather``, ``Unsqueeze``, ``Concat``, ``Cast``, ...) | nothing (constants of the batch, feeding reshapes) |

Feature maps are held channel-last (:mod:`blindproof.quant.graph_ops`); a graph whose ``Conv`` reads its
input ``(batch, C, *spatial)`` (directly, or through elementwise nodes such as a per-channel normalization)
gets that input permuted when it is encoded (``arch["channel_last_input"]``). A padded or dilated
``MaxPool``, a grouped ``Conv``, asymmetric padding, a flattened feature map read by anything but a ``Gemm``
/ ``MatMul`` (or an elementwise node before it) and a feature map as the graph's output are refused.

Anything else stops the walk with a one-line error naming the first unsupported node, e.g.
``unsupported ONNX node 'conv1' (Conv): group = 4: …; supported: …``. The walk computes every tensor's
float value on the calibration batch; at the end they must equal the graph's own output as
:mod:`blindproof.quant.onnx_eval` evaluates it, so a node read wrongly fails instead of proving another
function.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from blindproof.quant.builder import QuantizationError, _Builder, _Node
from blindproof.quant.conv import ConvGeometry
from blindproof.quant.graph_ops import MAX_POOL, GraphOps, Unsupported, fold_batchnorm
from blindproof.quant.onnx_eval import OPS, evaluate
from blindproof.quant.onnx_model import OnnxModel, OnnxModelError, attributes, node_label

SUPPORTED = ("Gemm, MatMul (+ Add bias), Conv (group 1), BatchNormalization (folded), Relu, Gelu (or its Erf form), "
             "Sigmoid, Tanh, Mul(x, Sigmoid(x)), LayerNormalization, Add, Mul, Sub/Div by a constant, "
             "GlobalAveragePool, ReduceMean over positions, AveragePool (strides = kernel), MaxPool (no padding), "
             "GlobalMaxPool, Flatten, Reshape/Squeeze "
             "to (batch, features), Identity, Dropout, Constant, shape arithmetic (Shape, Gather, Unsqueeze, Concat, "
             "Cast)")
_ELEMENTWISE = ("Relu", "Sigmoid", "Tanh", "Gelu", "Erf", "Add", "Sub", "Mul", "Div", "BatchNormalization", "Identity",
                "Dropout")
_PASS = ("Identity", "Dropout")


def unsupported(node: Any, why: str = "") -> OnnxModelError:
    """The one-line error naming ``node``, its op type and why (when there is more to say)."""
    extra = f": {why}" if why else ""
    return OnnxModelError(f"unsupported ONNX node {node_label(node)!r} ({node.op_type}){extra}; "
                          f"supported: {SUPPORTED}")


class _Walk:
    """One pass over the graph's nodes (topological order, as ONNX stores them)."""

    def __init__(self, b: _Builder, model: OnnxModel, x: np.ndarray) -> None:
        self.b, self.model, self.x = b, model, x
        self.ops = GraphOps(b)
        self.const = dict(model.constants)  # and the values of shape arithmetic on this batch
        self.shapes: dict[str, tuple[int, ...]] = {model.input_name: tuple(x.shape)}  # as the graph sees them
        self.env: dict[str, _Node] = {}
        self.readers: dict[str, list[Any]] = {}
        for node in model.graph.node:
            for name in node.input:
                self.readers.setdefault(name, []).append(node)
        self.readers.setdefault(model.output_name, []).append(None)  # the graph output is read too
        self.done: set[str] = set()  # first outputs of nodes an earlier one absorbed (bias adds, batchnorms, ...)
        self.names: set[str] = {"x", "output"}

    # --- helpers -----------------------------------------------------------------------------------
    def name(self, node: Any) -> str:
        """A tensor name for the program: the node's label in spec characters, unique."""
        base = re.sub(r"[^A-Za-z0-9_-]", "_", node_label(node)).strip("_") or node.op_type
        name, i = base, 1
        while name in self.names:
            i += 1
            name = f"{base}_{i}"
        self.names.add(name)
        return name

    def tensor(self, name: str) -> _Node:
        if name in self.env:
            return self.env[name]
        if name in self.const:
            raise Unsupported(f"the operand {name!r} is a constant where a computed tensor is needed")
        raise Unsupported(f"the operand {name!r} is not computed by a supported node")

    def sole_reader(self, tensor: str) -> Any | None:
        """The one node reading ``tensor`` (None when it is read by several, or is the graph's output)."""
        r = self.readers.get(tensor, [])
        return r[0] if len(r) == 1 else None

    def vector_operand(self, node: Any, out_width: int) -> np.ndarray | None:
        """For an ``Add`` of a computed tensor and a constant: the constant as a per-feature vector."""
        a, c = node.input[0], node.input[1]
        k = self.const.get(c) if a not in self.const else self.const.get(a)
        if k is None or k.dtype.kind != "f" or k.size not in (1, out_width):
            return None
        if k.size > 1 and k.shape[-1] != out_width:
            return None
        return np.broadcast_to(k.reshape(-1), (out_width,)).astype(np.float64)

    # --- linear layers -----------------------------------------------------------------------------
    def weights(self, node: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """``(W, b)`` of a Gemm or MatMul: ``y = x·Wᵀ + b``, ``W`` of shape ``(out, in)``."""
        if node.op_type == "MatMul":
            w = self.const.get(node.input[1])
            if w is None or node.input[0] in self.const:
                raise Unsupported("only a MatMul of a computed tensor by a weight (an initializer) is supported")
            if w.ndim != 2 or w.dtype.kind != "f":
                raise Unsupported(f"a weight of shape {w.shape}; a 2-d float32 weight is supported")
            return w.T, None
        a = attributes(node)
        if a.get("transA", 0):
            raise Unsupported("transA = 1 is not supported")
        w = self.const.get(node.input[1])
        if w is None or w.ndim != 2 or w.dtype.kind != "f":
            raise Unsupported("its B operand must be a 2-d float32 weight (an initializer)")
        w = (w if a.get("transB", 0) else w.T) * float(a.get("alpha", 1.0))
        bias = None
        if len(node.input) > 2 and node.input[2]:
            c = self.const.get(node.input[2])
            if c is None or c.dtype.kind != "f" or c.size not in (1, w.shape[0]):
                raise Unsupported("its C operand must be a float32 vector of one value per output")
            bias = np.broadcast_to(c.reshape(-1), (w.shape[0],)) * float(a.get("beta", 1.0))
        return w, bias

    def linear(self, node: Any) -> None:
        """A Gemm or MatMul, with the bias ``Add`` and the ``BatchNormalization`` that follow it folded in."""
        x = self.tensor(node.input[0])
        w, bias = self.weights(node)
        out, folded = node.output[0], False
        nxt = self.sole_reader(out)
        if bias is None and nxt is not None and nxt.op_type == "Add":
            vec = self.vector_operand(nxt, w.shape[0])
            if vec is not None:
                bias, out = vec, nxt.output[0]
                self.done.add(nxt.output[0])
                nxt = self.sole_reader(out)
        if nxt is not None and nxt.op_type == "BatchNormalization" and len(self.ops.shape(x)) == 2:
            stats = self.batchnorm_stats(nxt)
            if stats is not None:
                w, bias = fold_batchnorm(w, bias, *stats)
                out, folded = nxt.output[0], True
                self.done.add(nxt.output[0])
        self.env[out] = self.ops.linear(x, w, bias, self.name(node), folded=folded)

    # --- convolutions and pooling ------------------------------------------------------------------
    def geometry(self, node: Any, a: dict, sizes: tuple[int, ...], kernel: tuple[int, ...]) -> ConvGeometry:
        """Strides, symmetric padding and dilations of a Conv or AveragePool (``pads`` or ``auto_pad``)."""
        n = len(kernel)
        strides = tuple(int(v) for v in a.get("strides", [1] * n))
        dil = tuple(int(v) for v in a.get("dilations", [1] * n))
        auto = a.get("auto_pad", "NOTSET")
        if auto in ("NOTSET", ""):
            p = [int(v) for v in a.get("pads", [0] * 2 * n)]
            begin, end = p[:n], p[n:]
        elif auto == "VALID":
            begin = end = [0] * n
        elif auto in ("SAME_UPPER", "SAME_LOWER"):
            total = [max(0, (-(-size // s) - 1) * s + d * (k - 1) + 1 - size)
                     for size, k, s, d in zip(sizes, kernel, strides, dil)]
            begin, end = [t // 2 for t in total], [t - t // 2 for t in total]
        else:
            raise Unsupported(f"auto_pad = {auto!r}")
        if len(strides) != n or len(dil) != n or len(begin) != n or len(end) != n:
            raise Unsupported(f"strides {strides}, dilations {dil}, pads {begin + end} for {n} spatial axes")
        if list(begin) != list(end):
            raise Unsupported(f"asymmetric padding {list(begin)} before, {list(end)} after (only the same padding on "
                              "both sides of each axis is supported)")
        return ConvGeometry(strides, tuple(begin), dil)

    def conv(self, node: Any) -> None:
        """A Conv, with the BatchNormalization that follows it folded in."""
        x = self.tensor(node.input[0])
        a = attributes(node)
        w = self.const.get(node.input[1]) if len(node.input) > 1 else None
        if w is None or w.dtype.kind != "f" or node.input[0] in self.const:
            raise Unsupported("only a Conv of a computed tensor by a float32 weight (an initializer) is supported")
        if int(a.get("group", 1)) != 1:
            raise Unsupported(f"group = {a.get('group')}: grouped and depthwise convolutions are not supported "
                              "(group = 1 only)")
        bias = None
        if len(node.input) > 2 and node.input[2]:
            bias = self.const.get(node.input[2])
            if bias is None or bias.dtype.kind != "f":
                raise Unsupported("its bias must be a float32 vector (an initializer)")
        kernel = tuple(int(v) for v in a.get("kernel_shape", w.shape[2:]))
        if kernel != tuple(w.shape[2:]):
            raise Unsupported(f"kernel_shape {kernel} for a weight of shape {w.shape}")
        geom = self.geometry(node, a, self.ops.shape(x)[2:], kernel)
        out, folded = node.output[0], False
        nxt = self.sole_reader(out)
        if nxt is not None and nxt.op_type == "BatchNormalization":
            stats = self.batchnorm_stats(nxt)
            if stats is not None and stats[0].shape == (w.shape[0],):
                w, bias = fold_batchnorm(w, bias, *stats)
                out, folded = nxt.output[0], True
                self.done.add(nxt.output[0])
        self.env[out] = self.ops.conv(x, w, bias, self.name(node), geom, folded=folded)

    def average_pool(self, node: Any, x: _Node) -> _Node:
        """An AveragePool whose strides are its kernel, without padding."""
        a = attributes(node)
        kernel = tuple(int(v) for v in a["kernel_shape"])
        geom = self.geometry(node, a, self.ops.shape(x)[2:], kernel)
        if geom.stride != kernel or any(geom.padding) or any(d != 1 for d in geom.dilation):
            raise Unsupported(f"kernel {kernel}, strides {geom.stride}, pads {geom.padding}: only strides = "
                              "kernel_shape without padding (overlapping windows need a depthwise op; or use "
                              "GlobalAveragePool)")
        if a.get("ceil_mode", 0) and any(s % k for s, k in zip(self.ops.shape(x)[2:], kernel)):
            raise Unsupported("ceil_mode with partial windows")
        return self.ops.avg_pool(x, kernel, self.name(node))

    def max_pool(self, node: Any, x: _Node) -> _Node:
        """A MaxPool without padding or dilation (every window inside the input), its Indices output unread."""
        a = attributes(node)
        if len(node.output) > 1 and node.output[1]:
            raise Unsupported("its Indices output is read: the program computes values only")
        kernel = tuple(int(v) for v in a["kernel_shape"])
        geom = self.geometry(node, a, self.ops.shape(x)[2:], kernel)
        partial = a.get("ceil_mode", 0) and any((s - k) % st for s, k, st in
                                                zip(self.ops.shape(x)[2:], kernel, geom.stride))
        if any(geom.padding) or any(d != 1 for d in geom.dilation) or partial:
            raise Unsupported(f"pads {list(geom.padding)}, dilations {list(geom.dilation)}"
                              f"{', ceil_mode with partial windows' if partial else ''}: {MAX_POOL}")
        return self.ops.max_pool(x, kernel, geom.stride, self.name(node))

    def reduce_mean(self, node: Any, x: _Node) -> _Node:
        """A ReduceMean over every position of a feature map (global average pooling)."""
        a = attributes(node)
        axes = a.get("axes")
        if len(node.input) > 1 and node.input[1]:
            axes = self.const.get(node.input[1])
            if axes is None:
                raise Unsupported("its axes must be a constant")
        nd = len(self.ops.shape(x))
        got = {int(v) % nd for v in np.asarray(axes).reshape(-1)} if axes is not None else None
        if got != set(range(2, nd)) or nd not in (3, 4) or not (self.ops.is_map(x) or self.ops.is_input(x)):
            raise Unsupported("only a mean over every position of a feature map (axes 2, 3) is supported")
        return self.ops.global_pool(x, self.name(node), keep=bool(a.get("keepdims", 1)))

    def batchnorm_stats(self, node: Any) -> tuple | None:
        """``(mean, var, gamma, beta, eps)`` of an inference-mode BatchNormalization with constant operands."""
        a = attributes(node)
        vals = [self.const.get(n) for n in node.input[1:5]]
        if a.get("training_mode", 0) or len(vals) != 4 or any(v is None for v in vals) or len(node.output) > 1:
            return None
        gamma, beta, mean, var = vals
        return mean, var, gamma, beta, float(a.get("epsilon", 1e-5))

    # --- shapes ------------------------------------------------------------------------------------
    def reshape(self, node: Any, x: _Node) -> _Node:
        """A Reshape or Squeeze that keeps the batch axis and leaves ``(batch, features)`` or the same shape."""
        shape = self.ops.shape(x)
        if node.op_type == "Squeeze":
            axes = attributes(node).get("axes")
            if len(node.input) > 1 and node.input[1]:
                axes = self.const.get(node.input[1])
                if axes is None:
                    raise Unsupported("its axes must be a constant")
            axes = ([i for i, s in enumerate(shape) if s == 1 and i > 0] if axes is None
                    else sorted({int(v) % len(shape) for v in np.asarray(axes).reshape(-1)}))
            if 0 in axes or any(shape[i] != 1 for i in axes):
                raise Unsupported(f"squeezing axes {axes} of a {shape} tensor (only axes of size 1 after the "
                                  "batch axis)")
            target = tuple(s for i, s in enumerate(shape) if i not in axes)
        else:
            t = self.const.get(node.input[1]) if len(node.input) > 1 else None
            if t is None or t.dtype.kind not in "iu":
                raise Unsupported("its shape must be a constant")
            target = self.reshape_target(shape, [int(v) for v in t.reshape(-1)], attributes(node))
        if target == shape:
            return x
        return self.ops.reshape(x, target)

    def reshape_target(self, shape: tuple[int, ...], t: list[int], a: dict) -> tuple[int, ...]:
        """A Reshape's shape for ``shape``: its first entry is the batch axis (0, -1, or the graph's fixed
        batch size), the rest resolved as ONNX does (0 copies an axis, -1 takes what is left)."""
        declared = self.model.input_shape[0]
        if not t or not (t[0] in (0, -1) or (declared is not None and t[0] == declared)
                         or (t[0] == shape[0])):
            raise Unsupported(f"a reshape to {tuple(t)} does not keep the batch axis")
        rest = [shape[i] if v == 0 and not a.get("allowzero", 0) and i < len(shape) else v
                for i, v in enumerate(t) if i > 0]
        total = int(np.prod(shape[1:]))
        if rest.count(-1) == 1:
            known = int(np.prod([v for v in rest if v != -1]))
            if known <= 0 or total % known:
                raise Unsupported(f"a reshape of {shape} to {tuple(t)}")
            rest = [total // known if v == -1 else v for v in rest]
        if int(np.prod(rest)) != total or any(v <= 0 for v in rest):
            raise Unsupported(f"a reshape of {shape} to {tuple(t)}")
        return (shape[0], *rest)

    # --- nodes -------------------------------------------------------------------------------------
    def binary(self, node: Any) -> _Node:
        """Add or Mul of two computed tensors, or of one and a constant (a number or one value per feature);
        Sub or Div of a computed tensor by such a constant."""
        a, c = node.input[0], node.input[1]
        op = node.op_type
        if a not in self.const and c not in self.const:
            if op in ("Sub", "Div"):
                raise Unsupported(f"{op} of two computed tensors (only by a constant)")
            x, y = self.tensor(a), self.tensor(c)
            return self.ops.add(x, y, self.name(node)) if op == "Add" else self.ops.mul(x, y, self.name(node))
        if a in self.const and c in self.const:
            raise Unsupported("both operands are constants")
        if a in self.const and op in ("Sub", "Div"):
            raise Unsupported(f"a constant {'minus' if op == 'Sub' else 'divided by'} a computed tensor")
        t, k = (self.tensor(a), self.const[c]) if c in self.const else (self.tensor(c), self.const[a])
        if k.dtype.kind != "f":
            raise Unsupported(f"a constant operand of type {k.dtype}")
        if k.ndim > t.value.ndim:
            raise Unsupported(f"a constant of shape {k.shape} broadcasts the {t.value.shape} tensor")
        if op == "Div" and not np.all(k != 0):
            raise Unsupported("a division by zero")
        name = self.name(node)
        if op in ("Add", "Sub"):
            return self.ops.add_const(t, k if op == "Add" else -k, name)
        return self.ops.mul_const(t, k if op == "Mul" else 1.0 / k, name)

    def scalar(self, tensor: str) -> float | None:
        """The value of a one-element float constant (None for anything else)."""
        k = self.const.get(tensor)
        return float(k.reshape(-1)[0]) if k is not None and k.dtype.kind == "f" and k.size == 1 else None

    def gelu_erf(self, node: Any) -> bool:
        """GELU written out as exporters do at opsets before ``Gelu``: ``Div(x, √2)`` (or ``Mul(x, 1/√2)``),
        ``Erf``, ``Add(·, 1)``, ``Mul(x, ·)``, ``Mul(·, 0.5)``, each the only reader of the one before.
        When ``node`` starts that chain, emit one GELU lookup for all of it and return True."""
        if len(node.input) != 2 or node.input[0] in self.const:
            return False
        x, k = node.input[0], self.scalar(node.input[1])
        if k is None or not (abs(k - math.sqrt(2.0)) < 1e-5 if node.op_type == "Div" else
                             abs(k - math.sqrt(0.5)) < 1e-5):
            return False
        chain, cur = [], node
        for op, other_operand in (("Erf", None), ("Add", 1.0), ("Mul", x), ("Mul", 0.5)):
            nxt = self.sole_reader(cur.output[0])
            if nxt is None or nxt.op_type != op or nxt.domain not in ("", "ai.onnx"):
                return False
            other = [i for i in nxt.input if i != cur.output[0]]
            if isinstance(other_operand, str) and other != [other_operand]:
                return False
            if isinstance(other_operand, float) and (len(other) != 1 or self.scalar(other[0]) != other_operand):
                return False
            chain.append(nxt)
            cur = nxt
        for n in chain:
            self.done.add(n.output[0])
        self.env[chain[-1].output[0]] = self.ops.activation(self.tensor(x), "gelu", self.name(chain[0]))
        return True

    def sigmoid(self, node: Any, x: _Node) -> None:
        """Sigmoid, or SiLU when its only reader is ``Mul(x, Sigmoid(x))``."""
        src, out = node.input[0], node.output[0]
        mul = self.sole_reader(out)
        if mul is not None and mul.op_type == "Mul" and sorted(mul.input) == sorted([src, out]):
            self.done.add(mul.output[0])
            self.env[mul.output[0]] = self.ops.activation(x, "silu", self.name(mul))
            return
        self.env[out] = self.ops.sigmoid(x, self.name(node))

    def fold(self, node: Any) -> bool:
        """Shape arithmetic: a ``Shape`` of a computed tensor, or a node of constants only (``Gather``,
        ``Unsqueeze``, ``Concat``, ...), becomes a constant of this batch (none is proved: they only feed
        reshapes, whose targets must keep the batch axis)."""
        ins = [i for i in node.input if i]
        if node.op_type == "Shape" and ins and ins[0] in self.shapes:
            a = attributes(node)
            self.const[node.output[0]] = np.asarray(self.shapes[ins[0]][a.get("start", 0):a.get("end", None)],
                                                    dtype=np.int64)
            return True
        if not ins or node.op_type not in OPS or not all(i in self.const for i in ins) or len(node.output) != 1:
            return False
        self.const[node.output[0]] = np.asarray(OPS[node.op_type](attributes(node), *[self.const[i] for i in ins]))
        return True

    def node(self, node: Any) -> None:
        """Emit one node (its outputs go into ``env``)."""
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise Unsupported(f"operator domain {node.domain!r}")
        if op in ("Gemm", "MatMul"):
            return self.linear(node)
        if op == "Conv":
            return self.conv(node)
        if op in ("Div", "Mul") and self.gelu_erf(node):
            return None
        if op in ("Add", "Mul", "Sub", "Div"):
            self.env[node.output[0]] = self.binary(node)
            return None
        if op in _PASS:
            if op == "Dropout" and len(node.output) > 1 and node.output[1]:
                raise Unsupported("its mask output is read")
            if op == "Dropout" and len(node.input) > 2 and node.input[2]:
                mode = self.const.get(node.input[2])
                if mode is None or bool(np.asarray(mode).reshape(-1)[0]):
                    raise Unsupported("training mode")
            self.env[node.output[0]] = self.tensor(node.input[0])
            return None
        if not node.input or not node.input[0]:
            raise Unsupported("")
        x = self.tensor(node.input[0])
        a = attributes(node)
        ops, out = self.ops, node.output[0]
        if op == "Relu":
            self.env[out] = ops.relu(x, self.name(node))
        elif op == "Sigmoid":
            self.sigmoid(node, x)
        elif op == "Tanh":
            self.env[out] = ops.activation(x, "tanh", self.name(node))
        elif op == "Gelu":
            approx = a.get("approximate", "none")
            if approx not in ("none", "tanh"):
                raise Unsupported(f"approximate = {approx!r}")
            self.env[out] = ops.activation(x, "gelu_tanh" if approx == "tanh" else "gelu", self.name(node))
        elif op == "LayerNormalization":
            if a.get("axis", -1) % x.value.ndim != x.value.ndim - 1:
                raise Unsupported("only a normalization over the last axis is supported")
            if any(o for o in node.output[1:]):
                raise Unsupported("its mean and inverse deviation outputs are read")
            gamma = self.const.get(node.input[1]) if len(node.input) > 1 and node.input[1] else None
            beta = self.const.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            if (len(node.input) > 1 and node.input[1] and gamma is None) or \
                    (len(node.input) > 2 and node.input[2] and beta is None):
                raise Unsupported("its scale and bias must be constants")
            self.env[out] = ops.layernorm(x, gamma.reshape(-1) if gamma is not None else None,
                                          beta.reshape(-1) if beta is not None else None,
                                          float(a.get("epsilon", 1e-5)), self.name(node))
        elif op == "BatchNormalization":
            stats = self.batchnorm_stats(node)
            if stats is None:
                raise Unsupported("only inference mode with constant statistics is supported")
            self.env[out] = ops.batchnorm(x, *stats, self.name(node))
        elif op == "GlobalAveragePool":
            self.env[out] = ops.global_pool(x, self.name(node), keep=True)
        elif op == "AveragePool":
            self.env[out] = self.average_pool(node, x)
        elif op == "MaxPool":
            self.env[out] = self.max_pool(node, x)
        elif op == "GlobalMaxPool":
            k = tuple(self.ops.shape(x)[2:])
            self.env[out] = ops.max_pool(x, k, k, self.name(node))
        elif op == "ReduceMean":
            self.env[out] = self.reduce_mean(node, x)
        elif op == "Flatten":
            if a.get("axis", 1) % max(len(ops.shape(x)), 1) != 1:
                raise Unsupported("only Flatten(axis = 1) is supported")
            self.env[out] = ops.flatten(x)
        elif op in ("Reshape", "Squeeze"):
            self.env[out] = self.reshape(node, x)
        else:
            raise Unsupported("")
        return None

    def feeds_conv(self) -> bool:
        """Whether a Conv or an average pooling reads the graph's input directly or through elementwise nodes
        only (activations, Add/Sub/Mul/Div, BatchNormalization, Identity, Dropout): then the input is
        channel-last from the start (a normalization ``(x − μ) / σ`` before the first Conv)."""
        seen, todo = set(), [self.model.input_name]
        while todo:
            t = todo.pop()
            for n in self.readers.get(t, []):
                if n is None or id(n) in seen:
                    continue
                seen.add(id(n))
                if n.op_type in ("Conv", "AveragePool", "GlobalAveragePool", "MaxPool", "GlobalMaxPool") \
                        and n.input[0] == t:
                    return True
                if n.op_type in _ELEMENTWISE:
                    todo.extend(o for o in n.output[:1] if o)
        return False

    def run(self) -> _Node:
        x = self.x
        self.model.check_input(x)
        self.env[self.model.input_name] = self.b.input_features("x", x.astype(np.float64))
        if x.ndim in (3, 4) and self.feeds_conv():
            self.ops.channel_last(self.env[self.model.input_name], "a convolution")
        for node in self.model.graph.node:
            absorbed = not node.output or node.output[0] in self.done
            if absorbed or node.output[0] in self.const:  # Constant nodes and copies of weights are constants
                continue
            try:
                if node.domain in ("", "ai.onnx") and self.fold(node):
                    continue
                self.node(node)
            except Unsupported as exc:
                raise unsupported(node, exc.why) from None
            for o in node.output:
                if o in self.env and o not in self.shapes:
                    self.shapes[o] = self.ops.shape(self.env[o])
        out = self.env.get(self.model.output_name)
        if out is None or self.ops.is_input(out):
            raise OnnxModelError(f"{self.model.name}: the graph computes nothing from its input")
        try:
            self.ops.check_output(out)
        except Unsupported as exc:
            last = next((n for n in reversed(self.model.graph.node) if self.model.output_name in n.output), None)
            if last is None:
                raise OnnxModelError(f"{self.model.name}: {exc.why}") from None
            raise unsupported(last, exc.why) from None
        return self.b.requant(out, "output")


def walk_onnx(b: _Builder, model: OnnxModel, x: np.ndarray) -> tuple[list[_Node], dict]:
    """Emit ``model``'s graph onto ``b`` with calibration data ``x`` (float features ``(batch, ...)`` of the
    graph input's shape); returns the program's outputs and its architecture description. Checks the
    walk's float values against the graph's own output on ``x`` (:mod:`blindproof.quant.onnx_eval`)."""
    x = np.asarray(x)
    walk = _Walk(b, model, x)
    out = walk.run()
    ref = evaluate(model, x)
    got = out.value.reshape(ref.shape) if out.value.size == ref.size else out.value
    scale = max(1.0, float(np.abs(ref).max())) if ref.size else 1.0
    if got.shape != ref.shape or not np.allclose(got, ref, rtol=1e-6, atol=1e-6 * scale):
        raise QuantizationError(f"{model.name}: the mapped graph's float values differ from the ONNX graph's "
                                "output (a node was read differently from how ONNX defines it)")
    arch = {"family": "onnx", "opset": model.opset, "graph": walk.ops.desc,
            "input_shape": list(x.shape[1:]), "flatten_input": walk.ops.flatten_input}
    if walk.ops.channel_last_input:  # only then: other programs' descriptions (and digests) stay as they were
        arch["channel_last_input"] = True
    return [out], arch
