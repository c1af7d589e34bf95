"""The ONNX importer: each supported node maps onto the integer program and tracks the graph in float; the
float evaluator agrees with the ONNX reference implementation; files and graphs outside what is supported
get one-line errors naming the file or the first unsupported node."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import blindproof
from blindproof.quant import QuantizationError, quantize
from blindproof.quant.graph_ops import GraphOps
from blindproof.quant.onnx_eval import evaluate
from blindproof.quant.onnx_model import OnnxModelError, load_onnx

from onnx_graphs import mlp, model, residual, save, weight, with_conv

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
RNG = np.random.default_rng(7)


def _load(m: onnx.ModelProto, tmp_path, name: str = "g.onnx"):
    return load_onnx(save(m, tmp_path / name))


def _cos(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def _act_graph(act_nodes: list, opset: int = 20) -> onnx.ModelProto:
    """``Gemm → act(h) → LayerNormalization → Gemm``: ``act_nodes`` read ``h`` and write ``a``."""
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1), *act_nodes,
             helper.make_node("LayerNormalization", ["a", "g", "be"], ["n"], name="ln"),
             helper.make_node("Gemm", ["n", "w2", "b2"], ["y"], name="fc2", transB=1)]
    inits = [weight("w1", rng.standard_normal((16, 6)) / 2), weight("b1", 0.1 * rng.standard_normal(16)),
             weight("g", 1 + 0.1 * rng.standard_normal(16)), weight("be", 0.1 * rng.standard_normal(16)),
             weight("w2", rng.standard_normal((5, 16)) / 4), weight("b2", 0.1 * rng.standard_normal(5)),
             weight("half", 0.5), weight("sqrt2", np.sqrt(2.0)), weight("isqrt2", np.sqrt(0.5)), weight("one", 1.0)]
    return model(nodes, inits, ["N", 6], ["N", 5], opset)


def _erf_gelu(first: str) -> list:
    k = "sqrt2" if first == "Div" else "isqrt2"
    return [helper.make_node(first, ["h", k], ["e0"]), helper.make_node("Erf", ["e0"], ["e1"]),
            helper.make_node("Add", ["e1", "one"], ["e2"]), helper.make_node("Mul", ["h", "e2"], ["e3"]),
            helper.make_node("Mul", ["e3", "half"], ["a"])]


ACTIVATIONS = {
    "relu": ([helper.make_node("Relu", ["h"], ["a"])], "rescale"),
    "gelu": ([helper.make_node("Gelu", ["h"], ["a"])], "gelu"),
    "gelu_tanh": ([helper.make_node("Gelu", ["h"], ["a"], approximate="tanh")], "gelu_tanh"),
    "gelu_erf_div": (_erf_gelu("Div"), "gelu"),
    "gelu_erf_mul": (_erf_gelu("Mul"), "gelu"),
    "sigmoid": ([helper.make_node("Sigmoid", ["h"], ["a"])], "sigmoid_c"),
    "tanh": ([helper.make_node("Tanh", ["h"], ["a"])], "tanh"),
    "silu": ([helper.make_node("Sigmoid", ["h"], ["s"]), helper.make_node("Mul", ["h", "s"], ["a"])], "silu"),
    "silu_swapped": ([helper.make_node("Sigmoid", ["h"], ["s"]), helper.make_node("Mul", ["s", "h"], ["a"])], "silu"),
    "identity": ([helper.make_node("Identity", ["h"], ["a"])], None),
    "dropout": ([helper.make_node("Dropout", ["h"], ["a"])], None),
    "scaled": ([helper.make_node("Mul", ["h", "half"], ["m"]), helper.make_node("Sub", ["m", "one"], ["d"]),
                helper.make_node("Div", ["d", "sqrt2"], ["a"])], "mul_weight"),
}


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_each_node_tracks_the_graph(act, tmp_path):
    nodes, expect = ACTIVATIONS[act]
    om = _load(_act_graph(nodes), tmp_path)
    x = RNG.standard_normal((64, 6)).astype(np.float32)
    ref = evaluate(om, x)
    # the evaluator the mapping is checked against agrees with ONNX's own reference implementation
    want = ReferenceEvaluator(_act_graph(nodes)).run(None, {"x": x})[0]
    assert np.allclose(ref, want, rtol=1e-4, atol=1e-5)
    qm = quantize(om, x)
    assert _cos(qm.forward(x), ref) > 0.999
    tables = {t.split(".in")[0] for t in qm.spec.tables}
    kinds = [op.kind for op in qm.spec.ops]
    if expect in ("gelu", "gelu_tanh", "silu", "tanh", "sigmoid_c"):
        assert tables == {expect} and kinds.count("lookup") == 1  # the whole pattern is one table lookup
    elif expect:
        assert expect in kinds
    else:
        assert qm.spec.arch["graph"] == ["fc1:linear", "ln:layernorm", "fc2:linear"] and not tables


def test_batchnorm_folds_into_gemm_and_matmul_and_stands_alone_elsewhere(tmp_path):
    rng = np.random.default_rng(4)

    def bn(name: str, src: str, out: str) -> tuple:
        n = helper.make_node("BatchNormalization", [src, f"{name}.g", f"{name}.b", f"{name}.m", f"{name}.v"], [out],
                             name=name, epsilon=1e-3)
        return n, [weight(f"{name}.g", rng.uniform(0.5, 1.5, 8)), weight(f"{name}.b", 0.1 * rng.standard_normal(8)),
                   weight(f"{name}.m", 0.3 * rng.standard_normal(8)), weight(f"{name}.v", rng.uniform(0.5, 2, 8))]
    bn1, i1 = bn("bn1", "h", "hb")
    bn2, i2 = bn("bn2", "r", "rb")
    bn3, i3 = bn("bn3", "k", "y")
    nodes = [helper.make_node("Gemm", ["x", "w1", "c1"], ["h"], name="fc1", transB=1), bn1,
             helper.make_node("Relu", ["hb"], ["r"], name="relu"), bn2,
             helper.make_node("MatMul", ["rb", "w2"], ["m"], name="fc2"),
             helper.make_node("Add", ["m", "c2"], ["k"], name="fc2_bias"), bn3]
    inits = [weight("w1", rng.standard_normal((8, 4))), weight("c1", rng.standard_normal(8) * 0.1),
             weight("w2", rng.standard_normal((8, 8)) / 3), weight("c2", rng.standard_normal((1, 8)) * 0.1),
             *i1, *i2, *i3]
    om = _load(model(nodes, inits, ["N", 4], ["N", 8]), tmp_path)
    x = RNG.standard_normal((64, 4)).astype(np.float32)
    qm = quantize(om, x)
    assert qm.spec.arch["graph"] == ["fc1:linear+bn", "relu:relu", "bn2:batchnorm", "fc2:linear+bn"]
    assert [op.kind for op in qm.spec.ops].count("mul_weight") == 1  # only the batchnorm after the ReLU
    assert _cos(qm.forward(x), evaluate(om, x)) > 0.999


def test_residual_adds_multiplies_and_reshapes(tmp_path):
    rng = np.random.default_rng(5)
    nodes = [helper.make_node("Squeeze", ["x", "axes"], ["xs"], name="squeeze"),
             helper.make_node("Gemm", ["xs", "w1", "b1"], ["h"], name="fc1", transB=1),
             helper.make_node("Tanh", ["h"], ["t"], name="tanh"),
             helper.make_node("Mul", ["t", "h"], ["p"], name="gate"),
             helper.make_node("Add", ["p", "xs"], ["s"], name="residual"),
             helper.make_node("Add", ["s", "shift"], ["s2"], name="shift"),
             helper.make_node("Reshape", ["s2", "shape"], ["r"], name="same_shape"),
             helper.make_node("Gemm", ["r", "w2"], ["y"], name="fc2", transB=1)]
    inits = [weight("axes", [1], np.int64), weight("w1", rng.standard_normal((8, 8)) / 3),
             weight("b1", 0.1 * rng.standard_normal(8)), weight("shift", 0.1 * rng.standard_normal(8)),
             weight("shape", [-1, 8], np.int64), weight("w2", rng.standard_normal((3, 8)) / 3)]
    om = _load(model(nodes, inits, ["N", 1, 8], ["N", 3], opset=13), tmp_path)
    x = RNG.standard_normal((64, 1, 8)).astype(np.float32)
    qm = quantize(om, x)
    assert qm.spec.arch["flatten_input"] and {"mul", "add", "add_weight"} <= {op.kind for op in qm.spec.ops}
    assert _cos(qm.forward(x), evaluate(om, x)) > 0.999
    c = blindproof.commit(om, x)
    p = blindproof.prove(c, x[:1])
    v = blindproof.verify(p, c.commitment, inputs=x[:1])
    assert v, v.reason
    assert _cos(v.output, evaluate(om, x[:1])) > 0.99


def test_a_graph_exported_for_batch_one_takes_a_calibration_batch(tmp_path):
    rng = np.random.default_rng(6)
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "w", "b"], ["y"], name="fc", transB=1)]
    inits = [weight("shape", [1, 16], np.int64), weight("w", rng.standard_normal((4, 16)) / 4),
             weight("b", np.zeros(4))]
    om = _load(model(nodes, inits, [1, 4, 4], [1, 4]), tmp_path)
    x = RNG.standard_normal((32, 4, 4)).astype(np.float32)
    qm = quantize(om, x)
    assert qm.spec.arch["flatten_input"] and evaluate(om, x).shape == (32, 4)
    assert _cos(qm.forward(x), evaluate(om, x)) > 0.999


def test_a_torch_export_is_the_torch_modules_integer_program(tmp_path):
    torch = pytest.importorskip("torch")
    from torch import nn

    torch.manual_seed(0)
    m = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.GELU(), nn.LayerNorm(8), nn.SiLU(),
                      nn.Linear(8, 4), nn.Tanh(), nn.Linear(4, 3), nn.Sigmoid()).eval()
    with torch.no_grad():
        m[2].running_mean.normal_(0, 0.3)
        m[2].running_var.uniform_(0.5, 2.0)
    x = torch.randn(64, 1, 4, 4)
    qt = quantize(m, x)
    for opset in (17, 20):  # GELU in its Erf form, and as a Gelu node
        path = tmp_path / f"m{opset}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(m, (x[:2],), str(path), dynamo=False, opset_version=opset, input_names=["x"],
                                  dynamic_axes={"x": {0: "N"}})
            except Exception as exc:  # an exporter that needs packages this install lacks
                pytest.skip(f"torch.onnx.export unavailable: {exc}")
        qo = quantize(load_onnx(path), x.numpy())
        assert [op.kind for op in qo.spec.ops] == [op.kind for op in qt.spec.ops]
        assert [a.tolist() for a in qo.weights.values()] == [a.tolist() for a in qt.weights.values()]
        assert np.array_equal(qo.forward(x.numpy()), qt.forward(x.numpy()))

    class View(nn.Module):  # x.view(x.size(0), -1) with a dynamic batch: shape arithmetic in the graph
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(16, 3)

        def forward(self, x):
            return self.fc(torch.relu(x.view(x.size(0), -1)))
    v = View().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(v, (x[:2],), str(tmp_path / "v.onnx"), dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "N"}})
    om = load_onnx(tmp_path / "v.onnx")
    assert "Shape" in {n.op_type for n in om.graph.node}
    assert np.array_equal(quantize(om, x.numpy()).forward(x.numpy()), quantize(v, x).forward(x.numpy()))


def test_the_float_check_catches_a_node_read_wrongly(tmp_path, monkeypatch):
    om = _load(mlp(), tmp_path)
    x = RNG.standard_normal((64, 16)).astype(np.float32)
    quantize(om, x)
    monkeypatch.setattr(GraphOps, "relu", lambda self, n, name: self.b.requant(n, name))  # forgets the clamp
    with pytest.raises(QuantizationError, match="differ from the ONNX graph's output"):
        quantize(om, x)


def _one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("nodes, inits, message", [
    ([helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="fc", transB=1),
      helper.make_node("Softmax", ["h"], ["y"], name="probs")],
     [weight("w", np.ones((4, 4))), weight("b", np.zeros(4))], "unsupported ONNX node 'probs' (Softmax); supported:"),
    ([helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="fc", transB=1),
      helper.make_node("MatMul", ["h", "h2"], ["y"], name="mm")],
     [weight("w", np.ones((4, 4))), weight("b", np.zeros(4))], None),
    ([helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="fc", transA=1),
      helper.make_node("Relu", ["h"], ["y"], name="r")],
     [weight("w", np.ones((4, 4))), weight("b", np.zeros(4))], "unsupported ONNX node 'fc' (Gemm): transA = 1"),
    ([helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="fc", transB=1),
      helper.make_node("Reshape", ["h", "s"], ["y"], name="fold")],
     [weight("w", np.ones((4, 4))), weight("b", np.zeros(4)), weight("s", [0, 2, 2], np.int64)],
     "unsupported ONNX node 'fold' (Reshape): only flattening to (batch, features)"),
    ([helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="fc", transB=1),
      helper.make_node("Sub", ["b", "h"], ["y"], name="flip")],
     [weight("w", np.ones((4, 4))), weight("b", np.zeros(4))], "unsupported ONNX node 'flip' (Sub): a constant minus"),
    ([helper.make_node("Erf", ["x"], ["y"], name="erf")], [], "unsupported ONNX node 'erf' (Erf)"),
])
def test_unsupported_nodes_are_named(nodes, inits, message, tmp_path):
    if message is None:  # a MatMul of two computed tensors (attention-like)
        nodes = [nodes[0], helper.make_node("Relu", ["h"], ["h2"], name="r"), nodes[1]]
        message = "unsupported ONNX node 'mm' (MatMul): only a MatMul of a computed tensor by a weight"
    om = _load(model(nodes, inits, ["N", 4], ["N", 4]), tmp_path)
    with pytest.raises(QuantizationError) as info:
        quantize(om, RNG.standard_normal((8, 4)).astype(np.float32))
    assert message in _one_line(info)


def test_the_first_unsupported_node_is_named_through_the_api(tmp_path):
    path = save(with_conv(), tmp_path / "conv.onnx")
    with pytest.raises(blindproof.ModelSourceError) as info:
        blindproof.commit(str(path), RNG.standard_normal((8, 2, 4, 4)).astype(np.float32))
    assert _one_line(info).startswith("conv.onnx: unsupported ONNX node 'conv1' (Conv): group = 2: grouped and "
                                      "depthwise convolutions are not supported")


def _gemm(**kw) -> onnx.ModelProto:
    defaults = dict(nodes=[helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc", transB=1)],
                    inits=[weight("w", np.ones((3, 4))), weight("b", np.zeros(3))], in_shape=["N", 4],
                    out_shape=["N", 3])
    defaults.update(kw)
    return model(**defaults)


@pytest.mark.parametrize("make, message", [
    (lambda: _gemm(opset=9), "opset 9 of the default domain; opset 11 or later"),
    (lambda: _gemm(extra_inputs=[helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 4])]),
     "2 inputs and 1 outputs; one input and one output"),
    (lambda: _gemm(in_shape=["N", "D"]), "has shape ('?', '?'); only the first (batch) axis may be dynamic"),
    (lambda: _gemm(in_shape=["N"], nodes=[helper.make_node("Relu", ["x"], ["y"], name="r")], inits=[],
                   out_shape=["N"]), "needs a shape (batch, ...) of at least two axes"),
    (lambda: _gemm(inits=[weight("w", np.ones((3, 4)), np.float64), weight("b", np.zeros(3))]),
     "weight 'w' is float64; float32 weights are supported"),
    (lambda: _gemm(inits=[weight("w", np.ones((3, 4)), np.float16), weight("b", np.zeros(3))]),
     "weight 'w' is float16; float32 weights are supported"),
    (lambda: _gemm(elem=TensorProto.INT64), "input 'x' is INT64; a float32 input is supported"),
])
def test_unusable_models_are_one_line(make, message, tmp_path):
    with pytest.raises(OnnxModelError) as info:
        _load(make(), tmp_path)
    assert message in _one_line(info) and _one_line(info).startswith("g.onnx: ")


def test_unusable_files_and_data_are_one_line(tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x07\x12\xff\xff\xff\xff\x0f")
    with pytest.raises(OnnxModelError, match="bad.onnx: not a readable ONNX model") as info:
        load_onnx(tmp_path / "bad.onnx")
    _one_line(info)
    with pytest.raises(OnnxModelError, match="no ONNX file"):
        load_onnx(tmp_path / "missing.onnx")
    om = _load(residual(), tmp_path)
    with pytest.raises(QuantizationError, match="has shape \\('batch', 12\\), the data \\(8, 13\\)"):
        quantize(om, RNG.standard_normal((8, 13)).astype(np.float32))
    with pytest.raises(QuantizationError, match="must be float features"):
        quantize(om, np.ones((8, 12), dtype=np.int64))
    with pytest.raises(blindproof.ModelSourceError, match="pass calibration data"):
        blindproof.commit(str(tmp_path / "g.onnx"))


def test_constant_nodes_feed_the_graph_and_a_node_without_inputs_is_named(tmp_path):
    rng = np.random.default_rng(8)
    nodes = [helper.make_node("Constant", [], ["k"], name="k", value_float=0.25),
             helper.make_node("Constant", [], ["shape"], name="s", value_ints=[0, -1]),
             helper.make_node("Reshape", ["x", "shape"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "w", "b"], ["h"], name="fc", transB=1),
             helper.make_node("Mul", ["h", "k"], ["y"], name="quarter")]
    om = _load(model(nodes, [weight("w", rng.standard_normal((3, 8))), weight("b", np.zeros(3))], ["N", 2, 4],
                     ["N", 3]), tmp_path)
    x = RNG.standard_normal((16, 2, 4)).astype(np.float32)
    qm = quantize(om, x)
    assert qm.spec.arch["graph"] == ["flatten_input", "fc:linear", "quarter:mul_const"]
    assert _cos(qm.forward(x), evaluate(om, x)) > 0.999
    nodes = [helper.make_node("RandomNormal", [], ["n"], name="noise", shape=[1, 4]),
             helper.make_node("Add", ["x", "n"], ["y"], name="add")]
    om = _load(model(nodes, [], [1, 4], [1, 4]), tmp_path, "noise.onnx")
    with pytest.raises(QuantizationError, match="unsupported ONNX node 'noise' \\(RandomNormal\\); supported"):
        quantize(om, RNG.standard_normal((4, 4)).astype(np.float32))


def test_a_per_position_block_on_sequences_proves(tmp_path):
    rng = np.random.default_rng(9)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["m"], name="up"),
             helper.make_node("Add", ["b1", "m"], ["h"], name="up_bias"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("LayerNormalization", ["r", "g"], ["n"], name="ln", axis=-1),
             helper.make_node("MatMul", ["n", "w2"], ["y"], name="down")]
    inits = [weight("w1", rng.standard_normal((8, 16)) / 3), weight("b1", 0.1 * rng.standard_normal(16)),
             weight("g", np.ones(16)), weight("w2", rng.standard_normal((16, 5)) / 4)]
    om = _load(model(nodes, inits, ["N", 4, 8], ["N", 4, 5]), tmp_path)
    x = RNG.standard_normal((32, 4, 8)).astype(np.float32)
    c = blindproof.commit(om, x)
    assert c.commitment.spec.arch["graph"] == ["up:linear", "relu:relu", "ln:layernorm", "down:linear"]
    p = blindproof.prove(c, x[:1])
    v = blindproof.verify(p, c.commitment, inputs=x[:1])
    assert v, v.reason
    assert v.output.shape == (1, 4, 5) and _cos(v.output, evaluate(om, x[:1])) > 0.999


def test_shape_arithmetic_of_a_dynamic_batch_feeds_a_reshape(tmp_path):
    # x.view(x.size(0), -1) as exporters write it: Shape, Gather, Unsqueeze, Concat, then Reshape
    rng = np.random.default_rng(10)
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("Gather", ["s", "zero"], ["n"], name="batch", axis=0),
             helper.make_node("Unsqueeze", ["n", "axes"], ["n1"], name="n1"),
             helper.make_node("Concat", ["n1", "minus_one"], ["target"], name="target", axis=0),
             helper.make_node("Reshape", ["x", "target"], ["f"], name="view"),
             helper.make_node("Gemm", ["f", "w", "b"], ["y"], name="fc", transB=1)]
    inits = [weight("zero", 0, np.int64), weight("axes", [0], np.int64), weight("minus_one", [-1], np.int64),
             weight("w", rng.standard_normal((3, 8))), weight("b", np.zeros(3))]
    m = model(nodes, inits, ["N", 2, 4], ["N", 3], opset=13)
    om = _load(m, tmp_path)
    x = RNG.standard_normal((16, 2, 4)).astype(np.float32)
    assert np.allclose(evaluate(om, x), ReferenceEvaluator(m).run(None, {"x": x})[0], rtol=1e-4, atol=1e-5)
    for rows in (16, 5):  # the batch the shape arithmetic sees is the calibration batch, whatever it is
        qm = quantize(om, x[:rows])
        assert qm.spec.arch["graph"] == ["flatten_input", "fc:linear"]
        assert _cos(qm.forward(x), evaluate(om, x)) > 0.999
