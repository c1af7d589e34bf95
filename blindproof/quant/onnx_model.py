"""ONNX files as models: reading and validating one (:func:`load_onnx`), with its weights as numpy arrays.

A usable file is a valid ONNX model of the default operator domain at opset :data:`MIN_OPSET` or later,
with one float32 input of static shape except (optionally) its first, batch, axis, one output, and
float32 weights (initializers; int64 ones give shapes and axes). Anything else raises
:class:`OnnxModelError` with one line saying why. The ``onnx`` package reads the file (the ``onnx``
extra: ``pip install blindproof[onnx]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from blindproof.quant.builder import QuantizationError

MIN_OPSET = 11  # Gemm, Flatten and BatchNormalization as they are read here


class OnnxModelError(QuantizationError):
    """The file is not a usable ONNX model (unreadable, invalid, or outside what is supported)."""


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise OnnxModelError("reading ONNX files needs the onnx package: pip install 'blindproof[onnx]'") from None
    return onnx


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def attributes(node: Any) -> dict[str, Any]:
    """A node's attributes as Python values (ints, floats, strings, lists, numpy arrays for tensors)."""
    onnx = _onnx()
    out: dict[str, Any] = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        if isinstance(v, onnx.TensorProto):
            v = onnx.numpy_helper.to_array(v)
        elif isinstance(v, bytes):
            v = v.decode("utf-8", errors="replace")
        out[a.name] = v
    return out


def node_label(node: Any) -> str:
    """How errors name a node: its name, else its first output."""
    return node.name or (node.output[0] if node.output else node.op_type)


@dataclass
class OnnxModel:
    """A validated ONNX model: the graph, its constant tensors (initializers and ``Constant`` nodes, float
    ones as float64), the input's name and shape (``None`` for a free batch axis), and the output's name.
    :func:`blindproof.quant.onnx_eval.evaluate` runs the graph in float."""

    name: str
    graph: Any = field(repr=False)
    opset: int
    constants: dict[str, np.ndarray] = field(repr=False)
    input_name: str
    input_shape: tuple[int | None, ...]
    output_name: str

    def check_input(self, x: np.ndarray) -> None:
        """Refuse data whose shape is not the input's (the batch axis aside) or that is not float."""
        if x.dtype.kind != "f":
            raise OnnxModelError(f"{self.name}: input {self.input_name!r} takes float features, got {x.dtype}")
        want = self.input_shape
        if x.ndim != len(want) or any(w is not None and w != s for w, s in zip(want[1:], x.shape[1:])):
            shown = tuple("batch" if w is None else w for w in want)
            raise OnnxModelError(f"{self.name}: input {self.input_name!r} has shape {shown}, the data {x.shape}")


def _tensor_shape(value_info: Any) -> tuple[int | None, ...] | None:
    t = value_info.type
    if not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in t.tensor_type.shape.dim)


def _constants(onnx: Any, graph: Any, label: str) -> dict[str, np.ndarray]:
    """Initializers, ``Constant`` outputs and ``Identity`` copies of them: float32 ones as float64, int64 ones as
    they are."""
    out: dict[str, np.ndarray] = {}
    protos = [(t.name, t) for t in graph.initializer]
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            a = attributes(node)
            kinds = {"value": None, "value_float": np.float32, "value_floats": np.float32, "value_int": np.int64,
                     "value_ints": np.int64}
            key = next((k for k in kinds if k in a), None)
            if key is None:
                raise OnnxModelError(f"{label}: constant node {node_label(node)!r} holds no numeric tensor value")
            out[node.output[0]] = np.asarray(a[key], dtype=kinds[key])
    for name, t in protos:
        try:
            out[name] = onnx.numpy_helper.to_array(t)
        except Exception as exc:  # external data missing, a malformed tensor
            raise OnnxModelError(f"{label}: cannot read weight {name!r}: {_first_line(exc)}") from None
    for node in graph.node:  # exporters copy weights through Identity nodes: those are weights too
        if node.op_type == "Identity" and node.domain in ("", "ai.onnx") and node.input[0] in out:
            out[node.output[0]] = out[node.input[0]]
    for name, a in out.items():
        if a.dtype.kind == "f":
            if a.dtype != np.float32:
                raise OnnxModelError(f"{label}: weight {name!r} is {a.dtype}; float32 weights are supported")
            if not np.isfinite(a).all():
                raise OnnxModelError(f"{label}: weight {name!r} has values that are not finite")
            out[name] = a.astype(np.float64)
        elif a.dtype not in (np.int64, np.int32):
            raise OnnxModelError(f"{label}: weight {name!r} is {a.dtype}; float32 weights (and int64 shapes) "
                                 "are supported")
    return out


def load_onnx(path: str | Path) -> OnnxModel:
    """Read and validate the ONNX file at ``path``; :class:`OnnxModelError` (one line) when unusable."""
    onnx = _onnx()
    p = Path(path)
    label = p.name
    if not p.is_file():
        raise OnnxModelError(f"no ONNX file {path}")
    try:
        model = onnx.load(str(p))
    except Exception as exc:  # DecodeError and friends: not a protobuf, truncated, external data missing
        raise OnnxModelError(f"{label}: not a readable ONNX model ({_first_line(exc)})") from None
    if not model.HasField("graph") or not model.graph.node:
        raise OnnxModelError(f"{label}: not an ONNX model (no graph)")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise OnnxModelError(f"{label}: invalid ONNX model: {_first_line(exc)}") from None
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    opset = opsets.get("ai.onnx")
    if opset is None or opset < MIN_OPSET:
        raise OnnxModelError(f"{label}: opset {opset} of the default domain; opset {MIN_OPSET} or later is supported")
    graph = model.graph
    constants = _constants(onnx, graph, label)
    inputs = [v for v in graph.input if v.name not in constants]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise OnnxModelError(f"{label}: the graph has {len(inputs)} inputs and {len(graph.output)} outputs; one "
                             "input and one output are supported")
    inp = inputs[0]
    elem = inp.type.tensor_type.elem_type if inp.type.HasField("tensor_type") else None
    if elem != onnx.TensorProto.FLOAT:
        kind = onnx.TensorProto.DataType.Name(elem) if elem is not None else "not a tensor"
        raise OnnxModelError(f"{label}: input {inp.name!r} is {kind}; a float32 input is supported")
    shape = _tensor_shape(inp)
    if shape is None or len(shape) < 2:
        raise OnnxModelError(f"{label}: input {inp.name!r} needs a shape (batch, ...) of at least two axes, got "
                             f"{shape}")
    if any(d is None or d <= 0 for d in shape[1:]):
        shown = tuple("?" if d is None else d for d in shape)
        raise OnnxModelError(f"{label}: input {inp.name!r} has shape {shown}; only the first (batch) axis may be "
                             "dynamic")
    batch = shape[0] if shape[0] else None
    return OnnxModel(label, graph, int(opset), constants, inp.name, (batch, *shape[1:]), graph.output[0].name)
