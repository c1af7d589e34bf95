"""Plain torch modules (``nn.Sequential``, ``torch.fx``-traceable graphs) into the integer model, proved
and verified; a clear error naming the first unsupported node."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import blindproof
from blindproof.quant import QuantizationError, quantize
from blindproof.zk.proof.proof_file import ModelProof

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # NotHiddenWarning on one-row norms


def _seeded(module: nn.Module, seed: int = 0) -> nn.Module:
    """``module`` with running statistics that are not the identity (an eval-mode batchnorm does something)."""
    torch.manual_seed(seed)
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            with torch.no_grad():
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    return module.eval()


class Residual(nn.Module):
    """A small residual block: flatten, Linear+BatchNorm (folded), GELU, Linear, residual add, LayerNorm,
    SiLU, a Sigmoid head scaled by a number."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.bn, self.fc2 = nn.Linear(12, 24), nn.BatchNorm1d(24), nn.Linear(24, 12)
        self.ln, self.head = nn.LayerNorm(12), nn.Linear(12, 3)

    def forward(self, x):
        x = torch.flatten(x, 1)
        h = self.fc2(F.gelu(self.bn(self.fc1(x))))
        h = self.ln(x + h)
        return torch.sigmoid(self.head(F.silu(h))) * 2.0


def _cos(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_quantize_a_sequential_mlp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    x = torch.randn(64, 8)
    qm = quantize(model, x)
    assert [op.kind for op in qm.spec.ops] == ["linear", "rescale", "linear", "rescale"]
    assert qm.spec.ops[1].params.get("shift") is not None and qm.spec.tensors[qm.spec.ops[1].output].lo == 0  # ReLU
    with torch.no_grad():
        ref = model(x).numpy()
    y = qm.forward(x.numpy())
    assert _cos(y, ref) > 0.999
    margin = np.sort(ref, 1)[:, -1] - np.sort(ref, 1)[:, -2]
    sure = margin > 2 * np.abs(y - ref).max()
    assert sure.sum() > 40 and (y.argmax(1) == ref.argmax(1))[sure].all()


def test_sequential_mlp_proves_and_verifies_and_a_tampered_output_is_rejected():
    model = _seeded(nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.1),
                                  nn.Linear(32, 10)))
    x = torch.rand(64, 1, 4, 4)
    c = blindproof.commit(model, x)
    assert c.commitment.spec.arch["flatten_input"] and c.commitment.spec.arch["graph"][1] == "_1:linear+bn"
    assert "mul_weight" not in {op.kind for op in c.commitment.spec.ops}  # the batchnorm is folded away
    p = blindproof.prove(c, x[:1])
    v = blindproof.verify(p, c.commitment, inputs=x[:1])
    assert v, v.reason
    with torch.no_grad():
        assert int(np.argmax(v.output)) == int(model(x[:1]).argmax())
    tampered = ModelProof.from_bytes(p.to_bytes())
    tampered.outputs = {k: a.copy() for k, a in tampered.outputs.items()}
    tampered.outputs["output"][0, 3] += 1
    assert not blindproof.verify(tampered, c.commitment)
    assert not blindproof.verify(p, c.commitment, inputs=x[1:2])  # another input pinned


def test_residual_module_proves_and_verifies():
    model = _seeded(Residual())
    x = torch.randn(64, 3, 4)
    c = blindproof.commit(model, x)
    kinds = [op.kind for op in c.commitment.spec.ops]
    assert {"norm", "lookup", "add", "add_weight", "mul_weight", "linear"} <= set(kinds)
    p = blindproof.prove(c, x[:2])
    v = blindproof.verify(p, c.commitment)
    assert v, v.reason
    with torch.no_grad():
        ref = model(x[:2]).numpy()
    assert np.abs(v.output - ref).max() < 0.02
    data = bytearray(p.to_bytes())
    data[len(data) // 2] ^= 4
    assert not blindproof.verify(bytes(data), c.commitment)


@pytest.mark.parametrize("act", [nn.GELU(), nn.GELU(approximate="tanh"), nn.SiLU(), nn.Tanh(), nn.Sigmoid(),
                                 nn.ReLU(), nn.Identity()])
def test_each_activation_tracks_the_float_model(act):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 16), act, nn.LayerNorm(16), nn.Linear(16, 5)).eval()
    x = torch.randn(64, 6)
    qm = quantize(model, x)
    with torch.no_grad():
        assert _cos(qm.forward(x.numpy()), model(x).numpy()) > 0.999


class _Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(10, 10), nn.Linear(10, 4)

    def forward(self, x):
        x = x.view(x.size(0), -1)
        h = torch.relu(self.a(x)) * torch.tanh(x) + 0.5
        return self.b(h.sigmoid())


def test_functional_forms_and_view():
    torch.manual_seed(2)
    model = _Functional().eval()
    x = torch.randn(64, 2, 5)
    qm = quantize(model, x)
    assert {"mul", "add_weight", "lookup"} <= {op.kind for op in qm.spec.ops}
    with torch.no_grad():
        assert _cos(qm.forward(x.numpy()), model(x).numpy()) > 0.999


class _Conv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.conv2 = nn.Conv2d(1, 1, 3)

    def forward(self, x):
        return self.conv2(self.fc(x))


class _Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: not a static graph
            return self.fc(x)
        return x


@pytest.mark.parametrize("model, x, message", [
    (_Conv(), torch.randn(8, 1, 4, 4), "unsupported node 'conv2' (Conv2d)"),
    (nn.Sequential(nn.Linear(4, 8), nn.MaxPool1d(2)), torch.randn(8, 4), "unsupported node '_1' (MaxPool1d)"),
    (nn.Sequential(nn.Linear(4, 8), nn.Softmax(-1)), torch.randn(8, 4), "unsupported node '_1' (Softmax)"),
    (_Branchy(), torch.randn(8, 4), "cannot trace _Branchy with torch.fx"),
])
def test_unsupported_graphs_name_the_node(model, x, message):
    with pytest.raises(QuantizationError) as info:
        quantize(model.eval(), x)
    text = str(info.value)
    assert message in text and "\n" not in text
    if "unsupported node" in text:
        assert "convolution" in text and "Linear" in text
    with pytest.raises(blindproof.ModelSourceError, match="unsupported node|cannot trace"):
        blindproof.commit(model, x)


def test_integer_calibration_needs_an_embedding():
    with pytest.raises(QuantizationError, match="token ids must be read by an Embedding only"):
        quantize(nn.Sequential(nn.Linear(4, 2)), torch.ones(8, 4, dtype=torch.int64))
    with pytest.raises(QuantizationError, match="float features .* or token ids"):
        quantize(nn.Sequential(nn.Linear(4, 2)), torch.ones(8, dtype=torch.float32))


class _TextClassifier(nn.Module):
    """Token ids -> embedding -> per-token MLP with a residual add -> mean over the sequence -> labels."""

    def __init__(self) -> None:
        super().__init__()
        self.emb, self.ff, self.ln, self.out = nn.Embedding(50, 16), nn.Linear(16, 16), nn.LayerNorm(16), nn.Linear(16, 4)

    def forward(self, ids):
        h = self.emb(ids)
        h = self.ln(h + F.gelu(self.ff(h)))
        return self.out(h.mean(1))


def test_a_token_classifier_with_an_embedding_and_a_mean_proves():
    torch.manual_seed(4)
    model = _TextClassifier().eval()
    ids = torch.randint(0, 50, (32, 8))
    c = blindproof.commit(model, ids)
    kinds = [op.kind for op in c.commitment.spec.ops]
    assert kinds[0] == "embed" and "mean_pool" in kinds and c.commitment.spec.tensors["tokens"].role == "index"
    p = blindproof.prove(c, ids[:1])
    v = blindproof.verify(p, c.commitment, inputs=ids[:1].numpy())
    assert v, v.reason
    with torch.no_grad():
        assert _cos(v.output, model(ids[:1]).numpy()) > 0.999
    assert not blindproof.verify(p, c.commitment, inputs=(ids[:1] + 1).numpy())
    with pytest.raises(ValueError, match="must lie in"):
        blindproof.prove(c, torch.tensor([[0, 50]]))


def test_mean_over_features_is_named():
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(x).mean(-1)
    with pytest.raises(QuantizationError, match="unsupported node 'mean' \\(mean\\)"):
        quantize(M(), torch.randn(8, 3, 4))


def test_the_users_module_is_left_as_it_was():
    model = nn.Sequential(nn.Linear(4, 2)).eval()
    quantize(model, torch.randn(8, 4))
    assert next(model.parameters()).dtype == torch.float32


def test_a_lone_layer_is_a_one_layer_graph():
    torch.manual_seed(3)
    layer = nn.Linear(5, 3).eval()
    x = torch.randn(32, 5)
    qm = quantize(layer, x)
    assert [op.kind for op in qm.spec.ops] == ["linear", "rescale"]
    with torch.no_grad():
        assert _cos(qm.forward(x.numpy()), layer(x).numpy()) > 0.999
