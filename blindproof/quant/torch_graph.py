"""Plain torch modules into the integer program: ``nn.Sequential`` and ``torch.fx``-traceable graphs.

The module is traced with ``torch.fx`` and its nodes walked in order onto the program builder, each
becoming ops that already have proofs:

| torch | integer program |
|---|---|
| ``Linear`` | ``linear`` (int8 weights, int32 bias) |
| ``Conv1d``, ``Conv2d``, ``F.conv1d``, ``F.conv2d`` (groups 1, zero padding, ``"same"`` when symmetric) | ``conv`` (channel-last; int8 weights per output channel, int32 bias) |
| ``BatchNorm1d`` / ``BatchNorm2d`` right after a ``Linear`` or a convolution | folded into its weights and bias (exact in float) |
| ``BatchNorm1d`` elsewhere, ``BatchNorm1d`` / ``BatchNorm2d`` on a feature map | ``mul_weight`` + ``add_weight`` (per-feature scale and shift) |
| ``AdaptiveAvgPool1d/2d(1)``, ``x.mean((2, 3))`` / ``x.mean(-1)`` of a feature map (global average pooling) | ``mean_pool`` over the positions |
| ``AvgPool1d/2d`` with stride = kernel, no padding; ``AdaptiveAvgPool`` to a size dividing the input's | ``conv`` by a weight that averages each channel over its window |
| ``MaxPool1d/2d`` without padding or dilation, ``F.max_pool1d/2d``; ``AdaptiveMaxPool`` to 1 or to a size dividing the input's | ``max_pool`` |
| ``ReLU`` | ``rescale`` clamped at 0 |
| ``GELU`` (exact or tanh), ``SiLU``, ``Tanh`` | table ``lookup`` |
| ``Sigmoid`` | ``lookup`` of ``σ(x) − 1/2``, ``add_weight`` of 1/2 |
| ``LayerNorm`` (last axis) | ``norm`` (layer), gain and shift |
| ``a + b``, ``a * b`` (tensors); ``a + c``, ``a * c`` (a number) | ``add``; ``mul``; ``add_weight``; ``mul_weight`` |
| ``Flatten`` / ``flatten`` / ``view`` / ``reshape`` | as the first step: the input is flattened when encoded (no arithmetic); on a 2-d tensor or a globally pooled map: nothing; on a map of one position per channel: ``mean_pool`` (exact) |
| ``Linear`` after flattening a feature map of several positions (LeNet) | ``linear`` contracting the channel-last map's last axes, its weight columns permuted from torch's ``(C, H, W)`` order to ``(H, W, C)`` |
| ``x.mean(1)`` of a ``(batch, seq, features)`` tensor | ``mean_pool`` |
| ``Embedding`` reading the input (token ids) | ``embed`` (int16 table) |
| ``Dropout``, ``Identity`` | nothing (eval mode) |

A convolution net's input is ``(batch, C, *spatial)`` as torch takes it; the integer program holds feature
maps channel-last (:mod:`blindproof.quant.graph_ops`), so the input a convolution reads (directly, or
through elementwise layers) is permuted when it is encoded (``arch["channel_last_input"]``). Padded or
dilated max pooling, grouped or depthwise convolutions, a flattened feature map read by anything but a
``Linear`` (or an elementwise layer before it), and a feature map as the model's output are refused. A
``Linear`` or convolution summing over an axis whose size is not a power of two reads its input through a
rescale by 0 where nothing before pins the input's padding to zero (after a ``mean_pool``, an add, a
batchnorm), as the proof requires.

Anything else stops the walk with :class:`~blindproof.quant.builder.QuantizationError` naming the first
unsupported node, e.g. ``unsupported node 'conv' (Conv2d): groups=4: …``. The builder computes every tensor's
float calibration value itself; at the end they must equal the module's own output on the calibration
batch, so a node read wrongly fails loudly instead of proving another function.
"""

from __future__ import annotations

import copy
import operator
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from blindproof.quant.builder import QuantizationError, _Builder, _Node
from blindproof.quant.conv import ConvGeometry
from blindproof.quant.graph_ops import MAX_POOL, GraphOps, Unsupported, fold_batchnorm

SUPPORTED = ("Linear, Conv1d, Conv2d, Embedding (of the input), BatchNorm1d/2d (folded), ReLU, GELU, SiLU, Sigmoid, "
             "Tanh, LayerNorm, residual add, multiply, mean over the sequence, global average pooling, AvgPool "
             "(stride = kernel), MaxPool (no padding), Flatten, Dropout, Identity")
NOT_YET = "grouped or depthwise convolution and padded max pooling are not supported"
_ACT_MODULES: dict[type, str] = {nn.SiLU: "silu", nn.Tanh: "tanh"}
_ACT_FUNCTIONS: dict[Any, str] = {torch.nn.functional.silu: "silu", torch.tanh: "tanh",
                                  torch.nn.functional.tanh: "tanh"}
_RELU = (torch.relu, torch.nn.functional.relu)
_SIGMOID = (torch.sigmoid, torch.nn.functional.sigmoid)
_FLATTEN = (torch.flatten,)
_ADD = (operator.add, operator.iadd, torch.add)
_MUL = (operator.mul, operator.imul, torch.mul)
_IDENTITY_MODULES = (nn.Dropout, nn.Identity)
_CONV_MODULES = (nn.Conv1d, nn.Conv2d)
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
_MAX_POOLS = (nn.MaxPool1d, nn.MaxPool2d)
_ADAPTIVE_MAX = (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)
_F = torch.nn.functional
_CONV_FUNCTIONS = {_F.conv1d: 1, _F.conv2d: 2}
_MAX_POOL_FUNCTIONS = {_F.max_pool1d: 1, _F.max_pool2d: 2, torch.max_pool1d: 1, torch.max_pool2d: 2}
_ADAPTIVE_MAX_FUNCTIONS = {_F.adaptive_max_pool1d: 1, _F.adaptive_max_pool2d: 2}
_ADAPTIVE_AVG_FUNCTIONS = {_F.adaptive_avg_pool1d: 1, _F.adaptive_avg_pool2d: 2}
_AVG_POOL_FUNCTIONS = {_F.avg_pool1d: 1, _F.avg_pool2d: 2}


class _Param:
    """A module parameter read by a node (``F.conv2d(x, self.weight)``): usable as a weight only."""

    def __init__(self, value: np.ndarray) -> None:
        self.value = value


def _unsupported(node: fx.Node, what: str, why: str = "") -> QuantizationError:
    extra = f": {why}" if why else ""
    return QuantizationError(f"unsupported node {node.name!r} ({what}){extra}; supported: {SUPPORTED}; {NOT_YET}")


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy()


def trace(module: nn.Module) -> fx.GraphModule:
    """``torch.fx.symbolic_trace`` of ``module``, or a QuantizationError saying why it cannot be traced."""
    try:
        return fx.symbolic_trace(module)
    except Exception as exc:  # fx raises TraceError, TypeError, NotImplementedError, ... on dynamic control flow
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise QuantizationError(f"cannot trace {type(module).__name__} with torch.fx ({first}): the module must "
                                "be a static graph (no data-dependent control flow)") from None


def _fold_batchnorm(gm: fx.GraphModule) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, str]]:
    """``(folded weights by layer node, batchnorm node -> layer node)`` for each BatchNorm1d whose input is a
    Linear or a Conv1d, and each BatchNorm2d whose input is a Conv2d, read by nothing else
    (:func:`~blindproof.quant.graph_ops.fold_batchnorm`)."""
    folded: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    alias: dict[str, str] = {}
    layers = {nn.BatchNorm1d: (nn.Linear, nn.Conv1d), nn.BatchNorm2d: (nn.Conv2d,)}
    for node in gm.graph.nodes:
        if node.op != "call_module" or type(gm.get_submodule(node.target)) not in layers:
            continue
        src = node.args[0]
        if not (isinstance(src, fx.Node) and src.op == "call_module" and len(src.users) == 1
                and isinstance(gm.get_submodule(src.target), layers[type(gm.get_submodule(node.target))])):
            continue
        bn, lin = gm.get_submodule(node.target), gm.get_submodule(src.target)
        if bn.running_mean is None or bn.running_var is None:
            continue  # no running statistics: handled (and refused) as a standalone batchnorm
        folded[src.name] = fold_batchnorm(_np(lin.weight), _np(lin.bias) if lin.bias is not None else None,
                                          _np(bn.running_mean), _np(bn.running_var), *_bn_affine(bn), bn.eps)
        alias[node.name] = src.name
    return folded, alias


def _bn_affine(bn: nn.BatchNorm1d) -> tuple[np.ndarray | None, np.ndarray | None]:
    return (_np(bn.weight), _np(bn.bias)) if bn.affine else (None, None)


def _ints(v: Any, dims: int, what: str) -> tuple[int, ...]:
    t = tuple(int(e) for e in v) if isinstance(v, (tuple, list)) else (int(v),) * dims
    if len(t) == 1 and dims > 1:
        t = t * dims
    if len(t) != dims:
        raise Unsupported(f"{what} {v!r} for {dims} spatial axes")
    return t


def conv_geometry(dims: int, kernel: tuple[int, ...], stride: Any, padding: Any, dilation: Any) -> ConvGeometry:
    """The geometry of a torch convolution: ``padding`` a number, one per axis, ``"valid"`` or ``"same"``
    (symmetric only: an odd total padding would pad one side more)."""
    st, dil = _ints(stride, dims, "stride"), _ints(dilation, dims, "dilation")
    if padding == "valid":
        pad = (0,) * dims
    elif padding == "same":
        total = [d * (k - 1) for d, k in zip(dil, kernel)]
        if any(t % 2 for t in total):
            raise Unsupported("padding='same' with an even kernel pads one side more than the other (only "
                              "symmetric padding is supported)")
        pad = tuple(t // 2 for t in total)
    else:
        pad = _ints(padding, dims, "padding")
    return ConvGeometry(st, pad, dil)


class _Walk:
    """One pass over the traced graph, each node read and handed to the shared op mapping."""

    def __init__(self, b: _Builder, gm: fx.GraphModule, x: np.ndarray) -> None:
        self.b, self.gm, self.x = b, gm, x
        self.ops = GraphOps(b)
        self.env: dict[str, Any] = {}
        self.folded, self.alias = _fold_batchnorm(gm)

    # --- helpers -----------------------------------------------------------------------------------
    def arg(self, a: Any) -> Any:
        if isinstance(a, fx.Node):
            return self.env[self.alias.get(a.name, a.name)]
        if isinstance(a, (list, tuple)):
            return type(a)(self.arg(v) for v in a)
        return a

    def tensor(self, node: fx.Node, a: Any) -> _Node:
        v = self.arg(a)
        if isinstance(v, _Param):
            raise _unsupported(node, "parameter read", "a parameter used outside its module")
        if not isinstance(v, _Node):
            raise _unsupported(node, "non-tensor operand", f"expected a tensor, got {type(v).__name__}")
        return v

    # --- node kinds --------------------------------------------------------------------------------
    def module(self, node: fx.Node) -> Any:
        mod = self.gm.get_submodule(node.target)
        kind = type(mod).__name__
        ops, name = self.ops, node.name
        if isinstance(mod, _IDENTITY_MODULES):
            return self.tensor(node, node.args[0])
        x = self.tensor(node, node.args[0])
        if isinstance(mod, nn.Embedding):
            if x.role != "index" or mod.max_norm is not None:
                raise _unsupported(node, kind, "only an Embedding of the input token ids (without max_norm)")
            ops.desc.append(f"{name}:embedding")
            return self.b.embed(x, _np(mod.weight), name, "tokens")
        if x.role == "index":
            raise _unsupported(node, kind, "token ids are read by an Embedding only")
        if isinstance(mod, nn.Linear):
            w, bias = self.folded.get(name, (_np(mod.weight), _np(mod.bias) if mod.bias is not None else None))
            return ops.linear(x, w, bias, name, folded=name in self.folded)
        if isinstance(mod, _CONV_MODULES):
            if mod.groups != 1:
                raise _unsupported(node, kind, f"groups={mod.groups}: grouped and depthwise convolutions are not "
                                              "supported (groups=1 only)")
            if mod.padding_mode != "zeros":
                raise _unsupported(node, kind, f"padding_mode={mod.padding_mode!r} (only zero padding)")
            dims = 1 if isinstance(mod, nn.Conv1d) else 2
            geom = conv_geometry(dims, tuple(mod.kernel_size), mod.stride, mod.padding, mod.dilation)
            w, bias = self.folded.get(name, (_np(mod.weight), _np(mod.bias) if mod.bias is not None else None))
            return ops.conv(x, w, bias, name, geom, folded=name in self.folded)
        if isinstance(mod, _MAX_POOLS):
            dims = 1 if isinstance(mod, nn.MaxPool1d) else 2
            return self.max_pool(x, dims, mod.kernel_size, mod.stride, mod.padding, mod.dilation, mod.ceil_mode,
                                 mod.return_indices, name)
        if isinstance(mod, _ADAPTIVE_MAX):
            if mod.return_indices:
                raise Unsupported("return_indices: the program computes values only")
            dims = 1 if isinstance(mod, nn.AdaptiveMaxPool1d) else 2
            return self.adaptive_pool(x, dims, mod.output_size, name, kind="max")
        if isinstance(mod, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
            return self.adaptive_pool(x, 1 if isinstance(mod, nn.AdaptiveAvgPool1d) else 2, mod.output_size, name)
        if isinstance(mod, (nn.AvgPool1d, nn.AvgPool2d)):
            dims = 1 if isinstance(mod, nn.AvgPool1d) else 2
            return self.avg_pool(x, dims, mod.kernel_size, mod.stride, mod.padding, mod.ceil_mode,
                                 getattr(mod, "divisor_override", None), name)
        if isinstance(mod, nn.ReLU):
            return ops.relu(x, name)
        if isinstance(mod, nn.GELU):
            return ops.activation(x, "gelu_tanh" if mod.approximate == "tanh" else "gelu", name)
        if type(mod) in _ACT_MODULES:
            return ops.activation(x, _ACT_MODULES[type(mod)], name)
        if isinstance(mod, nn.Sigmoid):
            return ops.sigmoid(x, name)
        if isinstance(mod, nn.Flatten):
            nd = len(ops.shape(x))
            if mod.end_dim not in (-1, nd - 1) or mod.start_dim not in (1, 1 - nd):
                raise _unsupported(node, kind, "only Flatten(start_dim=1) is supported")
            return ops.flatten(x)
        if isinstance(mod, nn.LayerNorm):
            if tuple(mod.normalized_shape) != (ops.shape(x)[-1],):
                raise _unsupported(node, kind, "only a LayerNorm over the last axis is supported")
            gamma = _np(mod.weight) if mod.weight is not None else None
            beta = _np(mod.bias) if getattr(mod, "bias", None) is not None else None
            return ops.layernorm(x, gamma, beta, float(mod.eps), name)
        if isinstance(mod, _BATCHNORMS):
            if mod.running_mean is None or mod.running_var is None:
                raise _unsupported(node, kind, "no running statistics (track_running_stats=False)")
            return ops.batchnorm(x, _np(mod.running_mean), _np(mod.running_var), *_bn_affine(mod), mod.eps, name)
        raise _unsupported(node, kind)

    def binary(self, node: fx.Node, fn: str) -> _Node:
        a, c = (self.arg(v) for v in node.args[:2])
        name = node.name
        if isinstance(a, _Node) and isinstance(c, _Node):
            return self.ops.add(a, c, name) if fn == "add" else self.ops.mul(a, c, name)
        t, k = (a, c) if isinstance(a, _Node) else (c, a)
        if not isinstance(t, _Node) or not isinstance(k, (int, float)) or isinstance(k, bool):
            raise _unsupported(node, fn, "operands must be tensors or a tensor and a number")
        return self.ops.add_const(t, float(k), name) if fn == "add" else self.ops.mul_const(t, float(k), name)

    def mean(self, node: fx.Node, x: _Node, args: tuple, kwargs: dict) -> _Node:
        """The mean over the sequence axis of a ``(batch, seq, features)`` tensor, or over every position of a
        feature map ``(batch, C, *positions)`` (global average pooling): ``mean_pool``."""
        dim = args[0] if args else kwargs.get("dim")
        keep = bool(args[1] if len(args) > 1 else kwargs.get("keepdim", False))
        nd = len(self.ops.shape(x))
        dims = {int(d) % nd for d in (dim if isinstance(dim, (tuple, list)) else (dim,))} if dim is not None else None
        spatial = set(range(2, nd))
        if dims == spatial and nd in (3, 4) and (self.ops.is_map(x) or self.ops.is_input(x)):
            return self.ops.global_pool(x, node.name, keep)
        if nd != 3 or dims != {1} or keep or self.ops.is_map(x):
            raise _unsupported(node, "mean", "only x.mean(1) of a (batch, seq, features) tensor, or the mean over "
                                             "every position of a feature map (x.mean((2, 3))), is supported")
        return self.ops.mean_seq(x, node.name)

    def adaptive_pool(self, x: _Node, dims: int, size: Any, name: str, kind: str = "avg") -> _Node:
        """AdaptiveAvgPool (or AdaptiveMaxPool) to 1 position per axis (global pooling), or to sizes dividing the
        input's (a pooling whose stride is its kernel)."""
        want = _ints(size, dims, "output_size") if size is not None and None not in (
            size if isinstance(size, (tuple, list)) else (size,)) else None
        if want is None:
            raise Unsupported(f"output_size {size!r} (sizes of None keep an axis: not supported)")
        if all(s == 1 for s in want) and kind == "avg":
            return self.ops.global_pool(x, name, keep=True)
        have = self.ops.shape(x)[2:]
        if len(have) != dims or any(h % s for h, s in zip(have, want)):
            raise Unsupported(f"an adaptive pooling of positions {tuple(have)} to {want} (only to 1, or to sizes "
                              "dividing the input's)")
        k = tuple(h // s for h, s in zip(have, want))
        return self.ops.avg_pool(x, k, name) if kind == "avg" else self.ops.max_pool(x, k, k, name)

    def max_pool(self, x: _Node, dims: int, kernel: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: bool,
                 indices: bool, name: str) -> _Node:
        """MaxPool without padding or dilation (windows inside the input)."""
        k = _ints(kernel, dims, "kernel_size")
        st = k if stride is None or (isinstance(stride, (tuple, list)) and not stride) else _ints(stride, dims,
                                                                                                  "stride")
        pad, dil = _ints(padding, dims, "padding"), _ints(dilation, dims, "dilation")
        have = self.ops.shape(x)[2:]
        partial = ceil_mode and any((h - kk) % s for h, kk, s in zip(have, k, st))
        if any(pad) or any(d != 1 for d in dil) or partial or indices:
            what = ("return_indices" if indices else f"padding {pad}" if any(pad) else
                    f"dilation {dil}" if any(d != 1 for d in dil) else "ceil_mode with partial windows")
            raise Unsupported(f"{what}: {MAX_POOL}")
        return self.ops.max_pool(x, k, st, name)

    def avg_pool(self, x: _Node, dims: int, kernel: Any, stride: Any, padding: Any, ceil_mode: bool,
                 divisor: Any, name: str) -> _Node:
        """AvgPool whose stride is its kernel, without padding."""
        k = _ints(kernel, dims, "kernel_size")
        st = k if stride is None or (isinstance(stride, (tuple, list)) and not stride) else _ints(stride, dims,
                                                                                                  "stride")
        pad = _ints(padding, dims, "padding")
        if st != k or any(pad) or divisor is not None:
            raise Unsupported(f"an average pooling with kernel {k}, stride {st}, padding {pad}"
                              f"{', divisor_override' if divisor is not None else ''} (only stride = kernel, no "
                              "padding: overlapping windows need a depthwise op; or use nn.AdaptiveAvgPool2d(1))")
        have = self.ops.shape(x)[2:]
        if ceil_mode and any(h % s for h, s in zip(have, k)):
            raise Unsupported("ceil_mode with partial windows")
        return self.ops.avg_pool(x, k, name)

    def fconv(self, node: fx.Node, dims: int) -> _Node:
        """``F.conv1d`` / ``F.conv2d`` of a tensor by module parameters."""
        names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
        defaults = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}
        a = {**defaults, **dict(zip(names, node.args)), **node.kwargs}
        x = self.tensor(node, a["input"])
        w, bias = self.arg(a["weight"]), self.arg(a["bias"])
        if not isinstance(w, _Param) or not (bias is None or isinstance(bias, _Param)):
            raise Unsupported("the weight and bias must be parameters of the module")
        if a["groups"] != 1:
            raise Unsupported(f"groups={a['groups']}: grouped and depthwise convolutions are not supported "
                              "(groups=1 only)")
        if w.value.ndim != dims + 2:
            raise Unsupported(f"a weight of shape {w.value.shape}")
        geom = conv_geometry(dims, tuple(w.value.shape[2:]), a["stride"], a["padding"], a["dilation"])
        return self.ops.conv(x, w.value, None if bias is None else bias.value, node.name, geom)

    def function(self, node: fx.Node) -> Any:
        t = node.target
        if t in _RELU:
            return self.ops.relu(self.tensor(node, node.args[0]), node.name)
        if t in _SIGMOID:
            return self.ops.sigmoid(self.tensor(node, node.args[0]), node.name)
        if t in _ACT_FUNCTIONS:
            return self.ops.activation(self.tensor(node, node.args[0]), _ACT_FUNCTIONS[t], node.name)
        if t is torch.nn.functional.gelu:
            fn = "gelu_tanh" if node.kwargs.get("approximate", "none") == "tanh" else "gelu"
            return self.ops.activation(self.tensor(node, node.args[0]), fn, node.name)
        if t in _ADD:
            return self.binary(node, "add")
        if t in _MUL:
            return self.binary(node, "mul")
        if t is torch.mean:
            return self.mean(node, self.tensor(node, node.args[0]), node.args[1:], node.kwargs)
        if t in _CONV_FUNCTIONS:
            return self.fconv(node, _CONV_FUNCTIONS[t])
        if t in _MAX_POOL_FUNCTIONS:
            names = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
            a = {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False, "return_indices": False,
                 **dict(zip(names, node.args)), **node.kwargs}
            return self.max_pool(self.tensor(node, a["input"]), _MAX_POOL_FUNCTIONS[t], a["kernel_size"],
                                 a["stride"], a["padding"], a["dilation"], a["ceil_mode"], a["return_indices"],
                                 node.name)
        if t in _ADAPTIVE_MAX_FUNCTIONS:
            size = node.args[1] if len(node.args) > 1 else node.kwargs.get("output_size")
            if (node.args[2] if len(node.args) > 2 else node.kwargs.get("return_indices", False)):
                raise Unsupported("return_indices: the program computes values only")
            return self.adaptive_pool(self.tensor(node, node.args[0]), _ADAPTIVE_MAX_FUNCTIONS[t], size, node.name,
                                      kind="max")
        if t in _ADAPTIVE_AVG_FUNCTIONS:
            size = node.args[1] if len(node.args) > 1 else node.kwargs.get("output_size")
            return self.adaptive_pool(self.tensor(node, node.args[0]), _ADAPTIVE_AVG_FUNCTIONS[t], size, node.name)
        if t in _AVG_POOL_FUNCTIONS:
            names = ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
            a = {"stride": None, "padding": 0, "ceil_mode": False, "divisor_override": None,
                 **dict(zip(names, node.args)), **node.kwargs}
            return self.avg_pool(self.tensor(node, a["input"]), _AVG_POOL_FUNCTIONS[t], a["kernel_size"], a["stride"],
                                 a["padding"], a["ceil_mode"], a["divisor_override"], node.name)
        if t in _FLATTEN:
            x = self.tensor(node, node.args[0])
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            if start not in (1,) or (len(node.args) > 2 and node.args[2] not in (-1, len(self.ops.shape(x)) - 1)):
                raise _unsupported(node, "flatten", "only flatten(x, 1) is supported")
            return self.ops.flatten(x)
        if t is operator.getitem:
            base = self.arg(node.args[0])
            if isinstance(base, _Node):
                raise _unsupported(node, "indexing", "slicing a tensor is not supported")
            return base[node.args[1]]
        name = getattr(t, "__name__", str(t))
        raise _unsupported(node, name)

    def method(self, node: fx.Node) -> Any:
        m = node.target
        x = self.arg(node.args[0])
        if m == "size":
            shape = self.ops.shape(x)
            return tuple(shape) if len(node.args) < 2 else shape[node.args[1]]
        if m == "dim":
            return len(self.ops.shape(x))
        if m in ("view", "reshape", "flatten"):
            if m == "flatten":
                start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
                if start != 1:
                    raise _unsupported(node, "flatten", "only x.flatten(1) is supported")
                return self.ops.flatten(x)
            dims = self.arg(node.args[1:])
            dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else tuple(dims)
            shape = np.empty(self.ops.shape(x), dtype=np.int8).reshape(dims).shape  # resolves -1
            return self.ops.reshape(x, shape)
        if m in ("relu",):
            return self.ops.relu(self.tensor(node, node.args[0]), node.name)
        if m == "sigmoid":
            return self.ops.sigmoid(self.tensor(node, node.args[0]), node.name)
        if m == "tanh":
            return self.ops.activation(self.tensor(node, node.args[0]), "tanh", node.name)
        if m in ("add", "add_"):
            return self.binary(node, "add")
        if m in ("mul", "mul_"):
            return self.binary(node, "mul")
        if m == "mean":
            return self.mean(node, x, node.args[1:], node.kwargs)
        if m == "squeeze":  # a pooled map (batch, C, 1, 1) to (batch, C)
            src = self.ops.shape(self.tensor(node, node.args[0]))
            dims = self.arg(node.args[1:]) or (node.kwargs.get("dim"),)
            dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else tuple(dims)
            drop = ({i for i, n in enumerate(src) if n == 1} if dims == (None,)
                    else {int(d) % len(src) for d in dims if src[int(d) % len(src)] == 1})
            if 0 in drop:
                raise _unsupported(node, ".squeeze()", "squeezing the batch axis")
            return self.ops.reshape(x, tuple(n for i, n in enumerate(src) if i not in drop))
        if m in ("contiguous",):
            return x
        raise _unsupported(node, f".{m}()")

    def feeds_conv(self, node: fx.Node) -> bool:
        """Whether a convolution or an average pooling reads ``node`` directly or through elementwise layers
        only (activations, adds and products, batchnorms, dropout): then the input is channel-last from the
        start (``x * 2 + 1`` before the first convolution)."""
        seen, todo = set(), list(node.users)
        while todo:
            u = todo.pop()
            if u.name in seen:
                continue
            seen.add(u.name)
            if u.op == "call_module":
                mod = self.gm.get_submodule(u.target)
                if isinstance(mod, (*_CONV_MODULES, *_MAX_POOLS, *_ADAPTIVE_MAX, nn.AvgPool1d, nn.AvgPool2d,
                                    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
                    return True
                elementwise = isinstance(mod, (nn.ReLU, nn.GELU, nn.Sigmoid, *_ACT_MODULES, *_IDENTITY_MODULES,
                                               *_BATCHNORMS))
            elif u.op == "call_function":
                if u.target in {**_CONV_FUNCTIONS, **_AVG_POOL_FUNCTIONS, **_ADAPTIVE_AVG_FUNCTIONS,
                                **_MAX_POOL_FUNCTIONS, **_ADAPTIVE_MAX_FUNCTIONS}:
                    return True
                elementwise = (u.target in _RELU or u.target in _SIGMOID or u.target in _ACT_FUNCTIONS
                               or u.target is _F.gelu or u.target in _ADD or u.target in _MUL)
            else:
                elementwise = u.op == "call_method" and u.target in ("relu", "sigmoid", "tanh", "add", "add_", "mul",
                                                                     "mul_", "contiguous")
            if elementwise:
                todo.extend(u.users)
        return False

    def placeholder(self, node: fx.Node) -> _Node:
        """The program's input: float features, or token ids when the module starts with an Embedding. Features
        that a convolution reads (:meth:`feeds_conv`) are channel-last from the start."""
        if self.x.dtype.kind not in "iu":
            n = self.b.input_features("x", self.x.astype(np.float64))
            if self.x.ndim in (3, 4) and self.feeds_conv(node):
                self.ops.channel_last(n, "a convolution")
            return n
        users = [u for u in node.users if u.op == "call_module"
                 and isinstance(self.gm.get_submodule(u.target), nn.Embedding)]
        if not users or len(users) != len(node.users):
            raise _unsupported(node, "integer input", "token ids must be read by an Embedding only")
        vocab = {self.gm.get_submodule(u.target).num_embeddings for u in users}
        if len(vocab) != 1:
            raise _unsupported(node, "integer input", "the embeddings reading it differ in size")
        if self.x.ndim != 2:
            raise _unsupported(node, "integer input", f"token ids must be (batch, seq), got {self.x.shape}")
        return self.b.input_index("tokens", self.x.astype(np.int64), vocab.pop())

    def kind(self, node: fx.Node) -> str:
        """How an error names what ``node`` does: its module's class, function or method."""
        if node.op == "call_module":
            return type(self.gm.get_submodule(node.target)).__name__
        if node.op == "call_method":
            return f".{node.target}()"
        return getattr(node.target, "__name__", str(node.target))

    def call(self, node: fx.Node) -> Any:
        """The value of a module, function or method node; the shared mapping's refusals name the node."""
        handler = {"call_module": self.module, "call_function": self.function, "call_method": self.method}[node.op]
        try:
            return handler(node)
        except Unsupported as exc:
            raise _unsupported(node, exc.what or self.kind(node), exc.why) from None

    def run(self) -> _Node:
        out: _Node | None = None
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                if self.b.inputs:
                    raise _unsupported(node, "a second input", "the program takes one input tensor")
                self.env[node.name] = self.placeholder(node)
            elif node.op == "get_attr":  # a parameter: read as a weight (F.conv2d), refused as a tensor
                value = self.gm
                for part in str(node.target).split("."):
                    value = getattr(value, part)
                if not isinstance(value, torch.Tensor):
                    raise _unsupported(node, "parameter read", "an attribute that is not a tensor")
                self.env[node.name] = _Param(_np(value))
            elif node.name in self.alias:  # a batchnorm folded into its linear: readers read the linear
                continue
            elif node.op in ("call_module", "call_function", "call_method"):
                self.env[node.name] = self.call(node)
            elif node.op == "output":
                res = self.arg(node.args[0])
                if not isinstance(res, _Node):
                    raise _unsupported(node, "output", "the module must return one tensor")
                src = node.args[0]
                try:
                    self.ops.check_output(res)
                except Unsupported as exc:
                    raise (_unsupported(src, self.kind(src), exc.why) if isinstance(src, fx.Node)
                           else _unsupported(node, "output", exc.why)) from None
                out = res
        if out is None or self.ops.is_input(out):
            raise QuantizationError(f"{type(self.gm).__name__}: the module computes nothing from its input")
        return self.b.requant(out, "output")


def walk_torch_module(b: _Builder, module: nn.Module, x: np.ndarray) -> tuple[list[_Node], dict]:
    """Emit ``module``'s traced graph onto ``b`` with calibration data ``x`` (float features ``(batch, ...)``,
    or token ids ``(batch, seq)`` for a module that starts with an Embedding); returns the
    program's outputs and its architecture description. Checks the walk's float values against the
    module's own output on ``x`` (the walk must compute the module's function)."""
    if not list(module.children()):  # a lone layer (nn.Linear, ...): trace it as a one-layer graph
        module = nn.Sequential(module)
    gm = trace(module)
    x = np.asarray(x)
    walk = _Walk(b, gm, x)
    out = walk.run()
    with torch.no_grad():
        t = torch.from_numpy(x.astype(np.int64) if x.dtype.kind in "iu" else x.astype(np.float64))
        ref = copy.deepcopy(module).double().eval()(t).numpy()
    got = out.value.reshape(ref.shape) if out.value.size == ref.size else out.value
    if got.shape != ref.shape or not np.allclose(got, ref, rtol=1e-6, atol=1e-6 * max(1.0, float(np.abs(ref).max()))):
        raise QuantizationError(f"{type(module).__name__}: the traced graph's float values differ from the module's "
                                "output (an op was read differently from how torch runs it)")
    arch = {"family": "torch", "module": type(module).__name__, "graph": walk.ops.desc,
            "input_shape": list(np.asarray(x).shape[1:]), "flatten_input": walk.ops.flatten_input}
    if walk.ops.channel_last_input:  # only then: other programs' descriptions (and digests) stay as they were
        arch["channel_last_input"] = True
    return [out], arch
