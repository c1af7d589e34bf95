"""Small ONNX files for the tests, built with ``onnx.helper`` (seeded weights, so every process builds the
same file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def weight(name: str, a, dtype=np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(a, dtype=dtype), name)


def model(nodes: list, inits: list, in_shape: list, out_shape: list, opset: int = 17, *, in_name: str = "x",
          out_name: str = "y", elem: int = TensorProto.FLOAT, extra_inputs: list | None = None) -> onnx.ModelProto:
    """A one-input, one-output model of ``nodes`` (checked by ``onnx.checker``)."""
    inputs = [helper.make_tensor_value_info(in_name, elem, in_shape), *(extra_inputs or [])]
    g = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_shape)],
                          inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = min(m.ir_version, 9)
    onnx.checker.check_model(m)
    return m


def mlp(seed: int = 0, d_in: int = 16, hidden: int = 32, d_out: int = 10) -> onnx.ModelProto:
    """``Gemm + Relu + Gemm`` on ``(N, d_in)`` features (the first Gemm with ``transB = 1``, as exporters
    write it, the second without)."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h"], name="fc1", transB=1),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Gemm", ["r", "fc2.weight", "fc2.bias"], ["y"], name="fc2")]
    inits = [weight("fc1.weight", rng.standard_normal((hidden, d_in)) / np.sqrt(d_in)),
             weight("fc1.bias", 0.1 * rng.standard_normal(hidden)),
             weight("fc2.weight", rng.standard_normal((hidden, d_out)) / np.sqrt(hidden)),
             weight("fc2.bias", 0.1 * rng.standard_normal(d_out))]
    return model(nodes, inits, ["N", d_in], ["N", d_out])


def residual(seed: int = 1, d: int = 12, hidden: int = 24, labels: int = 4) -> onnx.ModelProto:
    """A residual block: ``MatMul + Add`` (bias), GELU in its Erf form, ``MatMul + Add``, the residual ``Add``,
    ``LayerNormalization``, then a ``Gemm`` head (opset 17)."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["m1"], name="up"),
             helper.make_node("Add", ["m1", "b1"], ["h1"], name="up_bias"),
             helper.make_node("Div", ["h1", "sqrt2"], ["g0"], name="gelu_div"),
             helper.make_node("Erf", ["g0"], ["g1"], name="gelu_erf"),
             helper.make_node("Add", ["g1", "one"], ["g2"], name="gelu_add"),
             helper.make_node("Mul", ["h1", "g2"], ["g3"], name="gelu_mul"),
             helper.make_node("Mul", ["g3", "half"], ["g"], name="gelu_half"),
             helper.make_node("MatMul", ["g", "w2"], ["m2"], name="down"),
             helper.make_node("Add", ["m2", "b2"], ["h2"], name="down_bias"),
             helper.make_node("Add", ["x", "h2"], ["s"], name="residual"),
             helper.make_node("LayerNormalization", ["s", "ln.scale", "ln.bias"], ["n"], name="ln", epsilon=1e-5),
             helper.make_node("Gemm", ["n", "head.weight", "head.bias"], ["y"], name="head", transB=1)]
    inits = [weight("w1", rng.standard_normal((d, hidden)) / np.sqrt(d)),
             weight("b1", 0.1 * rng.standard_normal(hidden)),
             weight("w2", rng.standard_normal((hidden, d)) / np.sqrt(hidden)),
             weight("b2", 0.1 * rng.standard_normal(d)),
             weight("sqrt2", np.sqrt(2.0)), weight("one", 1.0), weight("half", 0.5),
             weight("ln.scale", 1.0 + 0.1 * rng.standard_normal(d)), weight("ln.bias", 0.1 * rng.standard_normal(d)),
             weight("head.weight", rng.standard_normal((labels, d)) / np.sqrt(d)),
             weight("head.bias", 0.1 * rng.standard_normal(labels))]
    return model(nodes, inits, ["N", d], ["N", labels])


def with_conv(seed: int = 2) -> onnx.ModelProto:
    """A grouped ``Conv`` named ``conv1`` (groups are not supported), then ``Flatten`` and a ``Gemm``."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Conv", ["x", "k"], ["c"], name="conv1", kernel_shape=[3, 3], group=2),
             helper.make_node("Flatten", ["c"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "w", "b"], ["y"], name="fc", transB=1)]
    inits = [weight("k", rng.standard_normal((2, 1, 3, 3))), weight("w", rng.standard_normal((3, 8)) / 4),
             weight("b", np.zeros(3))]
    return model(nodes, inits, ["N", 2, 4, 4], ["N", 3])


def save(m: onnx.ModelProto, path: Path) -> Path:
    onnx.save(m, str(path))
    return path
