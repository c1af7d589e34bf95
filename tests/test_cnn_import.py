"""Convolution nets from torch modules and ONNX files: the integer program (channel-last ``conv``, pooling,
a Linear over a flattened map) tracks the float model, its relations hold, the input is taken in torch's
layout everywhere, and what the program cannot express is refused in one line naming the node."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from onnx import helper
from torch import nn

import blindproof
from blindproof.quant import QuantizationError, quantize
from blindproof.quant.check import check_trace
from blindproof.quant.onnx_model import load_onnx
from blindproof.quant.report import accuracy_report
from onnx_graphs import model as onnx_model, save, weight
from test_torch_graph import _seeded

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def cnn() -> nn.Module:
    torch.manual_seed(0)
    return _seeded(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 3, stride=2),
                                 nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(8, 3)))


def _data(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _agrees(qm, m: nn.Module, x: torch.Tensor, top1: float = 0.9, cos: float = 0.999) -> None:
    """The integer model's output tracks the float model's on ``x`` and every relation holds on its trace."""
    with torch.no_grad():
        ref = m(x).numpy()
    y = qm.forward(x.numpy())
    assert y.shape == ref.shape
    assert np.mean(y.argmax(1) == ref.argmax(1)) >= top1
    assert float((y * ref).sum() / np.linalg.norm(y) / np.linalg.norm(ref)) > cos
    check_trace(qm.spec, qm.weights, qm.run(x.numpy()))


def _export(m: nn.Module, x: torch.Tensor, path, **kw) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(m, (x[:2],), str(path), dynamo=False, input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, **kw)
        except Exception as exc:  # an exporter that needs packages this install lacks
            pytest.skip(f"torch.onnx.export unavailable: {exc}")
    return load_onnx(path)


def test_a_conv2d_net_tracks_the_float_model():
    m, x = cnn(), _data(16, 1, 8, 8)
    qm = quantize(m, x)
    assert [op.kind for op in qm.spec.ops] == ["conv", "rescale", "conv", "rescale", "mean_pool", "linear",
                                               "rescale"]
    conv1, conv2 = qm.spec.ops[0], qm.spec.ops[2]
    assert qm.spec.weights[conv1.params["weight"]].shape == (4, 3, 3, 1)  # channel-last (O, *kernel, C)
    assert qm.spec.weights[conv2.params["weight"]].shape == (8, 3, 3, 4)
    assert conv1.params["padding"] == [1, 1] and conv2.params["stride"] == [2, 2]
    assert conv2.params["bias"]  # the batchnorm folded into the second conv
    assert qm.spec.arch["channel_last_input"] and qm.spec.arch["input_shape"] == [1, 8, 8]
    assert "_2:conv2d+bn" in qm.spec.arch["graph"]
    assert qm.encode(x[:2])["x"].shape == (2, 8, 8, 1)  # torch's (B, C, H, W) in, channel-last program input
    _agrees(qm, m, x[:2])
    _agrees(qm, m, x)
    report = accuracy_report(m, qm, x)  # the float model on torch's layout, the program on its own
    assert report.top1 is not None and report.top1 >= 0.9 and report.warning is None


def test_a_conv1d_net_tracks_the_float_model():
    torch.manual_seed(0)
    m = _seeded(nn.Sequential(nn.Conv1d(3, 5, 3, padding=1), nn.BatchNorm1d(5), nn.GELU(),
                              nn.Conv1d(5, 8, 3, stride=2, dilation=2), nn.ReLU(), nn.AdaptiveAvgPool1d(1),
                              nn.Flatten(), nn.Linear(8, 3)))
    x = _data(16, 3, 12)
    qm = quantize(m, x)
    kinds = [op.kind for op in qm.spec.ops]
    assert kinds.count("conv") == 2 and "mean_pool" in kinds and "lookup" in kinds
    assert qm.spec.weights[qm.spec.ops[0].params["weight"]].shape == (5, 3, 3)
    assert qm.spec.ops[kinds.index("conv", 1)].params["dilation"] == [2]
    _agrees(qm, m, x)


def test_the_onnx_export_is_the_same_program(tmp_path):
    m, x = cnn(), _data(16, 1, 8, 8)
    qt = quantize(m, x)
    # the BatchNormalization kept as a node: folded here, in float64, as for the torch module
    om = _export(m, x, tmp_path / "bn.onnx", do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE)
    assert "BatchNormalization" in {n.op_type for n in om.graph.node}
    qo = quantize(om, x.numpy())
    assert [op.kind for op in qo.spec.ops] == [op.kind for op in qt.spec.ops]
    assert [a.tolist() for a in qo.weights.values()] == [a.tolist() for a in qt.weights.values()]
    assert np.array_equal(qo.forward(x.numpy()), qt.forward(x.numpy()))
    assert qo.spec.arch["channel_last_input"]
    # the exporter's own folding (in float32): the same program up to rounding of the folded weights
    qf = quantize(_export(m, x, tmp_path / "cnn.onnx"), x.numpy())
    assert [op.kind for op in qf.spec.ops] == [op.kind for op in qt.spec.ops]
    _agrees(qf, m, x)


class LeNet(nn.Module):
    """Flatten of a 2x2 feature map into a Linear (LeNet style), a BatchNorm1d folded into that Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 6, 3, stride=2)
        self.fc, self.bn, self.head = nn.Linear(6 * 2 * 2, 10), nn.BatchNorm1d(10), nn.Linear(10, 3)

    def forward(self, x):
        h = F.relu(self.c2(F.relu(self.c1(x))))
        return self.head(F.relu(self.bn(self.fc(h.view(h.size(0), -1)))))


def test_a_linear_reads_a_flattened_feature_map(tmp_path):
    m, x = _seeded(LeNet()), _data(16, 3, 8, 8)
    qm = quantize(m, x)
    lin = [op for op in qm.spec.ops if op.kind == "linear"]
    assert qm.spec.weights[lin[0].params["weight"]].shape == (10, 2, 2, 6)  # torch's (C, H, W) columns as (H, W, C)
    assert "fc:linear_map+bn" in qm.spec.arch["graph"]
    _agrees(qm, m, x)
    qo = quantize(_export(m, x, tmp_path / "lenet.onnx"), x.numpy())
    assert [a.tolist() for a in qo.weights.values()] == [a.tolist() for a in qm.weights.values()]


class Mixed(nn.Module):
    """F.conv2d by parameters, 'same' padding, a residual add, a batchnorm on a feature map (not after a conv),
    a number times a map, an average pooling of stride = kernel, x.mean((2, 3)) with keepdim and a view."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(6, 2, 3, 3) * 0.3)
        self.b = nn.Parameter(torch.randn(6) * 0.1)
        self.c2, self.bn, self.fc = nn.Conv2d(6, 6, 3, padding="same"), nn.BatchNorm2d(6), nn.Linear(6, 4)

    def forward(self, x):
        h = F.relu(F.conv2d(x, self.w, self.b, padding=1))
        h = h + self.bn(F.silu(self.c2(h))) * 0.5
        h = F.avg_pool2d(h, 2).mean((2, 3), keepdim=True)
        return self.fc(h.view(h.size(0), -1))


def test_pooling_forms_residuals_and_functional_convs(tmp_path):
    m, x = _seeded(Mixed()), _data(16, 2, 8, 8)
    qm = quantize(m, x)
    graph = qm.spec.arch["graph"]
    assert {"conv2d:conv2d", "bn:batchnorm", "add:add", "avg_pool2d:avg_pool", "mean:global_pool"} <= set(graph)
    assert qm.spec.ops[[op.output for op in qm.spec.ops].index("avg_pool2d")].kind == "conv"
    _agrees(qm, m, x)
    qo = quantize(_export(m, x, tmp_path / "mixed.onnx"), x.numpy())
    assert [op.kind for op in qo.spec.ops] == [op.kind for op in qm.spec.ops]
    _agrees(qo, m, x)


class Squeezed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.pool, self.fc = nn.Conv2d(2, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.pool(F.relu(self.conv(x))).squeeze(-1).squeeze(-1))


def test_a_pooled_map_squeezed_is_its_channels():
    m, x = Squeezed().eval(), _data(16, 2, 6, 6)
    qm = quantize(m, x)
    assert [op.kind for op in qm.spec.ops] == ["conv", "rescale", "mean_pool", "linear", "rescale"]
    _agrees(qm, m, x)


class ConvOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        return self.conv(x)


@pytest.mark.parametrize("module, shape, message", [
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.MaxPool2d(3, padding=1), nn.Flatten(), nn.Linear(16, 3)), (8, 1, 8, 8),
     "unsupported node '_1' (MaxPool2d): padding (1, 1): the integer program's max_pool has windows inside"),
    (nn.Sequential(nn.Conv2d(4, 4, 3, groups=4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)),
     (8, 4, 6, 6), "unsupported node '_0' (Conv2d): groups=4: grouped and depthwise convolutions"),
    (ConvOut(), (8, 1, 6, 6), "unsupported node 'conv' (Conv2d): the model's output is a feature map"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.LayerNorm(8), nn.Linear(8, 3)), (8, 1, 4, 4),
     "unsupported node '_2' (LayerNorm): a flattened feature map is read by a Linear only"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.AvgPool2d(3, stride=1), nn.Flatten(), nn.Linear(8, 3)), (8, 1, 6, 6),
     "unsupported node '_1' (AvgPool2d): an average pooling with kernel (3, 3), stride (1, 1)"),
])
def test_unsupported_layers_are_named_in_one_line(module, shape, message):
    x = _data(*shape)
    with pytest.raises(QuantizationError) as info:
        quantize(module.eval(), x)
    text = str(info.value)
    assert message in text and "\n" not in text


def _conv_graph(name: str, **attrs) -> object:
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "k"], ["c"], name=name, **attrs),
             helper.make_node("GlobalAveragePool", ["c"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["y"], name="flat")]
    k = rng.standard_normal((4, 1 if attrs.get("group") == 2 else 2, 3, 3))
    return onnx_model(nodes, [weight("k", k)], ["N", 2, 6, 6], ["N", 4])


@pytest.mark.parametrize("graph, message", [
    (_conv_graph("conv_a", kernel_shape=[3, 3], pads=[1, 1, 0, 0]),
     "unsupported ONNX node 'conv_a' (Conv): asymmetric padding [1, 1] before, [0, 0] after"),
    (_conv_graph("conv_g", kernel_shape=[3, 3], group=2),
     "unsupported ONNX node 'conv_g' (Conv): group = 2: grouped and depthwise convolutions"),
    (_conv_graph("conv_s", kernel_shape=[3, 3], auto_pad="SAME_UPPER", strides=[2, 2]),
     "unsupported ONNX node 'conv_s' (Conv): asymmetric padding"),
])
def test_unsupported_onnx_convolutions_are_named_in_one_line(tmp_path, graph, message):
    om = load_onnx(save(graph, tmp_path / "c.onnx"))
    with pytest.raises(QuantizationError) as info:
        quantize(om, _data(8, 2, 6, 6).numpy())
    assert message in str(info.value) and "\n" not in str(info.value)


class MaxForms(nn.Module):
    """F.max_pool2d, F.adaptive_max_pool2d to one position (a global max), then flatten(1)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(2, 6, 3, padding=1), nn.Linear(6, 3)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.conv(x)), 2)
        return self.fc(F.adaptive_max_pool2d(h, 1).flatten(1))


def test_max_pooling_maps_to_max_pool(tmp_path):
    m = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 5, 3), nn.ReLU(),
                      nn.MaxPool2d(2, stride=1), nn.Flatten(), nn.Linear(5, 3)).eval()
    x = _data(16, 3, 8, 8)
    qm = quantize(m, x)
    kinds = [op.kind for op in qm.spec.ops]
    assert kinds.count("max_pool") == 2
    pools = [op for op in qm.spec.ops if op.kind == "max_pool"]
    assert pools[0].params == {"kernel": [2, 2], "stride": [2, 2]} and pools[1].params["stride"] == [1, 1]
    # a map of one position flattened is a mean over it; 5 channels are not a power of two, so the Linear
    # reads it through a kept rescale by 0, which pins its padding for the proof
    assert kinds[-4:] == ["mean_pool", "rescale", "linear", "rescale"] and qm.spec.ops[-3].params["shift"] == 0
    _agrees(qm, m, x)
    qo = quantize(_export(m, x, tmp_path / "mp.onnx"), x.numpy())
    assert [a.tolist() for a in qo.weights.values()] == [a.tolist() for a in qm.weights.values()]
    blindproof.commit(m, x)  # the spec passes the proof's soundness checks (padding, max_pool input range)
    f, xf = MaxForms().eval(), _data(16, 2, 8, 8)
    qf = quantize(f, xf)
    assert [op.params for op in qf.spec.ops if op.kind == "max_pool"] == [{"kernel": [2, 2], "stride": [2, 2]},
                                                                          {"kernel": [4, 4], "stride": [4, 4]}]
    _agrees(qf, f, xf)


def test_a_cnn_proves_and_verifies_and_a_changed_output_is_rejected():
    from blindproof.zk.proof.proof_file import ModelProof

    m, calib = cnn(), _data(16, 1, 8, 8)
    x = calib[:1]  # torch's layout, as the float model takes it
    p = blindproof.prove(m, x, calibration=calib)
    assert blindproof.verify(p, p.commitment, inputs=x)
    assert not blindproof.verify(p, p.commitment, inputs=calib[1:2])
    with torch.no_grad():
        assert p.output.argmax() == m(x).numpy().argmax()
    bad = ModelProof.from_bytes(p.to_bytes())
    bad.outputs = {k: v.copy() for k, v in bad.outputs.items()}
    name = next(iter(bad.outputs))
    bad.outputs[name][0, 0] += 1
    assert not blindproof.verify(bad, p.commitment)


def test_elementwise_preprocessing_before_the_first_convolution(tmp_path):
    """The input is channel-last from the start when a convolution reads it through elementwise layers: a
    number times it (torch), a per-channel normalization ``(x − μ) / σ`` (ONNX constants of shape (1, C, 1, 1))."""
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.fc = nn.Conv2d(2, 4, 3, padding=1), nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(F.relu(self.conv(x * 2.0 + 1.0)).mean((2, 3)))
    torch.manual_seed(0)
    m, x = Scaled().eval(), _data(16, 2, 6, 6)
    qm = quantize(m, x)
    assert qm.spec.arch["graph"][:3] == ["channel_last_input", "mul:mul_const", "add:add_const"]
    _agrees(qm, m, x)

    rng = np.random.default_rng(0)
    mu, sd = np.array([0.5, -0.25]), np.array([2.0, 0.5])
    k, w = rng.standard_normal((4, 2, 3, 3)) / 3, rng.standard_normal((3, 4)) / 2
    nodes = [helper.make_node("Sub", ["x", "mu"], ["s"], name="sub"),
             helper.make_node("Div", ["s", "sd"], ["n"], name="div"),
             helper.make_node("Conv", ["n", "k"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "w"], ["y"], name="fc", transB=1)]
    inits = [weight("mu", mu.reshape(1, 2, 1, 1)), weight("sd", sd.reshape(1, 2, 1, 1)), weight("k", k), weight("w", w)]
    om = load_onnx(save(onnx_model(nodes, inits, ["N", 2, 6, 6], ["N", 3]), tmp_path / "norm.onnx"))
    xn = x.numpy().astype(np.float64)
    qo = quantize(om, xn)
    with torch.no_grad():
        h = F.relu(F.conv2d(torch.from_numpy((xn - mu.reshape(1, 2, 1, 1)) / sd.reshape(1, 2, 1, 1)),
                            torch.from_numpy(k.astype(np.float32).astype(np.float64)), padding=1))
        ref = (h.mean((2, 3)) @ torch.from_numpy(w.astype(np.float32).astype(np.float64)).T).numpy()
    y = qo.forward(xn)
    assert float((y * ref).sum() / np.linalg.norm(y) / np.linalg.norm(ref)) > 0.999
    check_trace(qo.spec, qo.weights, qo.run(xn))


def test_the_readme_lenet_proves_and_verifies():
    """README's LeNet (two 5×5 convolutions, 2×2 max pooling, a Flatten into a Linear), as written there."""
    import blindproof
    torch.manual_seed(0)
    lenet = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 10)).eval()
    c = blindproof.commit(lenet, torch.randn(64, 1, 28, 28))
    x = torch.randn(1, 1, 28, 28)
    p = blindproof.prove(c, x)
    assert blindproof.verify(p, c.commitment)
    assert not blindproof.verify(p, c.commitment, outputs=p.proof.outputs["output"] + 1)
    with torch.no_grad():
        assert int(np.argmax(p.output)) == int(lenet(x).argmax())


def test_an_onnx_cnn_through_the_command_line(tmp_path, run_cli):
    """quantize → commit → prove → verify of an exported CNN, the input a torch-layout (B, C, H, W) .npy
    everywhere; verifying against another input is refused."""
    m, x = cnn(), _data(16, 1, 8, 8)
    _export(m, x, tmp_path / "cnn.onnx")
    np.save(tmp_path / "calib.npy", x.numpy())
    np.save(tmp_path / "x1.npy", x[:1].numpy())
    np.save(tmp_path / "x2.npy", x[1:2].numpy())
    out = run_cli("quantize", str(tmp_path / "cnn.onnx"), "--calibration", str(tmp_path / "calib.npy"),
                  "-o", str(tmp_path / "cnn.qspec"))
    assert out.returncode == 0 and "top-1" in out.stdout + out.stderr
    q = str(tmp_path / "cnn.qspec")
    run_cli("commit", "--model", q, "-o", str(tmp_path / "m.commit"), check=True)
    run_cli("prove", "--model", q, "--commitment", str(tmp_path / "m.commit"), "--input", str(tmp_path / "x1.npy"),
            "-o", str(tmp_path / "p.bin"), check=True)
    ok = run_cli("verify", str(tmp_path / "p.bin"), "--commitment", str(tmp_path / "m.commit"),
                 "--input", str(tmp_path / "x1.npy"))
    assert ok.returncode == 0 and ok.stdout.startswith("VALID")
    bad = run_cli("verify", str(tmp_path / "p.bin"), "--commitment", str(tmp_path / "m.commit"),
                  "--input", str(tmp_path / "x2.npy"), check=False)
    assert bad.returncode == 1 and not bad.stdout.startswith("VALID")
