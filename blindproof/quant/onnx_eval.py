"""A float64 numpy evaluator of ONNX graphs over the operators the importer supports.

It follows the ONNX operator definitions directly (not the importer's mapping), so the importer can check
that the integer program's float side computes the graph's function: :func:`evaluate`. An operator
outside :data:`OPS` raises :class:`~blindproof.quant.onnx_model.OnnxModelError`.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from scipy.special import erf

from blindproof.quant.onnx_model import OnnxModel, OnnxModelError, attributes, node_label


def _gemm(a: dict, x, b, c=None):
    x = x.T if a.get("transA", 0) else x
    b = b.T if a.get("transB", 0) else b
    y = a.get("alpha", 1.0) * (x @ b)
    return y if c is None else y + a.get("beta", 1.0) * c


def _gelu(a: dict, x):
    if a.get("approximate", "none") == "tanh":
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def _layernorm(a: dict, x, scale, bias=None):
    axis = a.get("axis", -1) % x.ndim
    axes = tuple(range(axis, x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mu) / np.sqrt(var + a.get("epsilon", 1e-5)) * scale
    return y if bias is None else y + bias


def _batchnorm(a: dict, x, scale, bias, mean, var):
    if a.get("training_mode", 0):
        raise OnnxModelError("BatchNormalization in training mode")
    shape = (1, -1) + (1,) * (x.ndim - 2)  # statistics over the channel axis 1
    s = scale.reshape(shape) / np.sqrt(var.reshape(shape) + a.get("epsilon", 1e-5))
    return (x - mean.reshape(shape)) * s + bias.reshape(shape)


def _flatten(a: dict, x):
    axis = a.get("axis", 1) % (x.ndim + 1) if x.ndim else 0
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


def _reshape(a: dict, x, shape):
    target = [int(v) for v in shape]
    if not a.get("allowzero", 0):
        target = [x.shape[i] if v == 0 else v for i, v in enumerate(target)]
    return x.reshape(target)


def _squeeze(a: dict, x, axes=None):
    axes = a.get("axes") if axes is None else axes
    if axes is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=tuple(int(v) % x.ndim for v in np.asarray(axes).reshape(-1)))


def _unsqueeze(a: dict, x, axes=None):
    axes = a.get("axes") if axes is None else axes
    rank = x.ndim + len(np.asarray(axes).reshape(-1))
    for ax in sorted(int(v) % rank for v in np.asarray(axes).reshape(-1)):
        x = np.expand_dims(x, ax)
    return x


def _cast(a: dict, x):
    from onnx.helper import tensor_dtype_to_np_dtype

    to = np.dtype(tensor_dtype_to_np_dtype(a["to"]))
    return x.astype(np.float64) if to.kind == "f" else x.astype(to)  # floats stay float64 here


def _sigmoid(a: dict, x):
    return 1.0 / (1.0 + np.exp(-x))


def _pads(a: dict, sizes, kernel, strides, dilations) -> list[tuple[int, int]]:
    """``(begin, end)`` padding per spatial axis from ``pads`` or ``auto_pad``."""
    auto = a.get("auto_pad", "NOTSET")
    n = len(sizes)
    if auto in ("NOTSET", ""):
        p = [int(v) for v in a.get("pads", [0] * 2 * n)]
        return list(zip(p[:n], p[n:]))
    if auto == "VALID":
        return [(0, 0)] * n
    out = []
    for size, k, s, d in zip(sizes, kernel, strides, dilations):
        total = max(0, (-(-size // s) - 1) * s + d * (k - 1) + 1 - size)
        small, big = total // 2, total - total // 2
        out.append((small, big) if auto == "SAME_UPPER" else (big, small))
    return out


def _windows(x, kernel, strides, dilations, pads):
    """``(out sizes, per kernel offset a function of the padded input giving (B, C, *out))``."""
    xp = np.pad(x, [(0, 0), (0, 0), *pads])
    outs = [(xp.shape[2 + i] - d * (k - 1) - 1) // s + 1 for i, (k, s, d) in enumerate(zip(kernel, strides, dilations))]
    for off in np.ndindex(*kernel):
        idx = tuple(slice(o * d, o * d + s * (n - 1) + 1, s) for o, d, s, n in zip(off, dilations, strides, outs))
        yield off, xp[(slice(None), slice(None), *idx)]


def _window_attrs(a: dict, x, kernel=None) -> tuple[list[int], list[int], list[int], list]:
    """(kernel, strides, dilations, pads) of a Conv or pooling node on ``x``; ``kernel`` when the node
    may leave ``kernel_shape`` out (a Conv: its weight's)."""
    n = x.ndim - 2
    kernel = [int(v) for v in (a["kernel_shape"] if kernel is None else a.get("kernel_shape", kernel))]
    strides = [int(v) for v in a.get("strides", [1] * n)]
    dil = [int(v) for v in a.get("dilations", [1] * n)]
    return kernel, strides, dil, _pads(a, x.shape[2:], kernel, strides, dil)


def _conv(a: dict, x, w, b=None):
    n = x.ndim - 2
    kernel, strides, dil, pads = _window_attrs(a, x, w.shape[2:])
    g = int(a.get("group", 1))
    cg, og = x.shape[1] // g, w.shape[0] // g
    y = None
    for off, win in _windows(x, kernel, strides, dil, pads):  # win: (B, C, *out)
        parts = [np.einsum("bc...,oc->bo...", win[:, i * cg:(i + 1) * cg], w[i * og:(i + 1) * og, :, *off])
                 for i in range(g)]
        t = np.concatenate(parts, axis=1)
        y = t if y is None else y + t
    return y if b is None else y + b.reshape(1, -1, *[1] * n)


def _average_pool(a: dict, x):
    if a.get("ceil_mode", 0):
        raise OnnxModelError("AveragePool with ceil_mode is not evaluated")
    kernel, strides, dil, pads = _window_attrs(a, x)
    total = sum(win for _, win in _windows(x, kernel, strides, dil, pads))
    if a.get("count_include_pad", 0) or not any(p for pp in pads for p in pp):
        return total / float(np.prod(kernel))
    count = sum(win for _, win in _windows(np.ones((1, 1, *x.shape[2:])), kernel, strides, dil, pads))
    return total / count


def _max_pool(a: dict, x):
    if a.get("ceil_mode", 0):
        raise OnnxModelError("MaxPool with ceil_mode is not evaluated")
    kernel, strides, dil, pads = _window_attrs(a, x)
    n = x.ndim - 2
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), *pads], constant_values=-np.inf)
    wins = [win for _, win in _windows(xp, kernel, strides, dil, [(0, 0)] * n)]
    return np.maximum.reduce(wins)


def _reduce_mean(a: dict, x, axes=None):
    axes = a.get("axes") if axes is None else axes
    keep = bool(a.get("keepdims", 1))
    if axes is None or np.asarray(axes).size == 0:
        if a.get("noop_with_empty_axes", 0):
            return x
        return x.mean(keepdims=keep)
    return x.mean(axis=tuple(int(v) % x.ndim for v in np.asarray(axes).reshape(-1)), keepdims=keep)


OPS: dict[str, Callable[..., np.ndarray]] = {
    "Gemm": _gemm,
    "MatMul": lambda a, x, w: x @ w,
    "Add": lambda a, x, y: x + y,
    "Mul": lambda a, x, y: x * y,
    "Sub": lambda a, x, y: x - y,
    "Div": lambda a, x, y: x / y,
    "Erf": lambda a, x: erf(x),
    "Relu": lambda a, x: np.maximum(x, 0.0),
    "Sigmoid": _sigmoid,
    "Tanh": lambda a, x: np.tanh(x),
    "Gelu": _gelu,
    "LayerNormalization": _layernorm,
    "BatchNormalization": _batchnorm,
    "Flatten": _flatten,
    "Conv": _conv,
    "GlobalAveragePool": lambda a, x: x.mean(axis=tuple(range(2, x.ndim)), keepdims=True),
    "AveragePool": _average_pool,
    "MaxPool": _max_pool,
    "GlobalMaxPool": lambda a, x: x.max(axis=tuple(range(2, x.ndim)), keepdims=True),
    "ReduceMean": _reduce_mean,
    "Identity": lambda a, x: x,
    "Dropout": lambda a, x, *rest: x,
    "Reshape": _reshape,
    "Squeeze": _squeeze,
    # shape arithmetic (x.view(x.size(0), -1) as exporters write it)
    "Shape": lambda a, x: np.asarray(x.shape[a.get("start", 0):a.get("end", None)], dtype=np.int64),
    "Gather": lambda a, x, i: np.take(x, np.asarray(i, dtype=np.int64), axis=a.get("axis", 0)),
    "Unsqueeze": _unsqueeze,
    "Concat": lambda a, *xs: np.concatenate([np.atleast_1d(v) for v in xs], axis=a.get("axis", 0)),
    "Cast": _cast,
}


def _run(model: OnnxModel, x: np.ndarray) -> np.ndarray:
    env: dict[str, Any] = {**model.constants, model.input_name: x.astype(np.float64)}
    for node in model.graph.node:
        if node.op_type == "Constant":
            continue  # its value is among the constants
        fn = OPS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if fn is None:
            raise OnnxModelError(f"{model.name}: cannot evaluate node {node_label(node)!r} ({node.op_type})")
        args = [env[n] if n else None for n in node.input]
        while args and args[-1] is None:  # trailing optional inputs left out
            args.pop()
        y = np.asarray(fn(attributes(node), *args))
        env[node.output[0]] = y.astype(np.float64) if y.dtype.kind == "f" else y
    return env[model.output_name]


def evaluate(model: OnnxModel, x: np.ndarray) -> np.ndarray:
    """The float64 output of ``model`` on ``x``. A graph declared for a fixed batch ``n`` runs on ``x`` in
    slices of ``n`` rows (as a runtime would be called), so a graph exported with batch 1 takes any batch."""
    x = np.asarray(x)
    n = model.input_shape[0]
    if n is None or x.shape[0] == n:
        return _run(model, x)
    if x.shape[0] % n:
        raise OnnxModelError(f"{model.name}: the graph takes batches of {n} rows, the data has {x.shape[0]}")
    return np.concatenate([_run(model, x[i:i + n]) for i in range(0, x.shape[0], n)])
