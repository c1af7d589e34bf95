"""Harmless subspaces: global null spaces, LayerNorm mean, local ReLU/max-pool expansions, certificates."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
import torch
from torch import nn

from blindproof.fingerprint.linalg import integer_null_space
from blindproof.fingerprint.nets import patch_embed_net, small_cnn
from blindproof.fingerprint.subspace import DenseSpace, certify, harmless_space
from blindproof.models.mlp import MLP


def _mlp(seed=0, dims=(64, 32, 32, 10)):
    torch.manual_seed(seed)
    return MLP(dims).eval()


def test_mlp_global_space_is_first_layer_null_space():
    m = _mlp()
    s = harmless_space(m, (64,))
    assert s.kind == "global" and s.dim == 32
    w = m.layers[0].weight.detach().double()
    assert (w @ s.basis.T).abs().max() < 1e-12
    cert = certify(m, s, torch.rand(4, 64))
    assert cert.passed
    assert cert.harmless_change[-1] < 1e-4 < cert.random_change[-1]  # alpha = 1000


def test_certificate_rejects_a_space_that_is_not_harmless():
    m = _mlp()
    q, _ = torch.linalg.qr(torch.randn(64, 8, dtype=torch.float64))
    fake = DenseSpace(q.T.contiguous(), (64,))
    assert not certify(m, fake, torch.rand(2, 64)).passed


def test_float64_certificate_is_tighter():
    m = _mlp()
    s = harmless_space(m, (64,))
    cert = certify(m, s, torch.rand(2, 64), dtype=torch.float64)
    assert cert.passed and max(cert.ratio) < 1e-12


def test_patch_embedding_null_space_plus_layernorm_mean():
    torch.manual_seed(0)
    net = patch_embed_net().eval()  # 4 patches of 16 pixels -> 12 channels, then LayerNorm(12)
    s = harmless_space(net, (1, 8, 8))
    assert s.dim == 4 * (16 - 12) + 4
    assert "LayerNorm(mean)" in s.description
    assert certify(net, s, torch.rand(3, 1, 8, 8)).passed
    no_ln = nn.Sequential(*list(net)[:3], nn.ReLU(), nn.Flatten(1), nn.Linear(48, 10)).eval()
    assert harmless_space(no_ln, (1, 8, 8)).dim == 16


def test_patch_structure_matches_dense_matrix_and_handles_remainder():
    torch.manual_seed(0)
    net = patch_embed_net().eval()
    dense = harmless_space(net, (1, 8, 8))
    patch = harmless_space(net, (1, 8, 8), max_dense=10)
    assert type(patch).__name__ == "PatchSpace" and patch.dim == dense.dim
    # the two spaces coincide: each one's samples lie in the other
    assert patch.project_out(dense.sample(5)).abs().max() < 1e-10
    assert dense.project_out(patch.sample(5)).abs().max() < 1e-10
    conv = nn.Sequential(nn.Conv2d(3, 40, 4, stride=4), nn.Flatten(1)).eval()  # 48 inputs per patch -> 40
    s = harmless_space(conv, (3, 10, 9), max_dense=100)  # 2x2 patches, 2 rows + 1 column left over
    assert s.dim == 4 * 8 + 3 * (10 * 9 - 8 * 8)
    assert certify(conv, s, torch.rand(2, 3, 10, 9)).passed


def test_large_overlapping_conv_is_refused_clearly():
    net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1)).eval()
    with pytest.raises(ValueError, match="non-overlapping"):
        harmless_space(net, (3, 64, 64))


def test_conv_as_matrix_null_space():
    torch.manual_seed(0)
    cnn = small_cnn().eval()  # stem conv 1->3, k4 s2 p1 on 8x8: 48 outputs from 64 inputs
    s = harmless_space(cnn, (1, 8, 8))
    assert s.dim == 16
    assert certify(cnn, s, torch.rand(2, 1, 8, 8)).passed


def test_local_relu_and_maxpool_expansions_grow_and_certify():
    torch.manual_seed(0)
    cnn = small_cnn().eval()
    x = torch.rand(1, 1, 8, 8)
    dims = [harmless_space(cnn, (1, 8, 8), at=x[0], depth=d).dim for d in (0, 1, 3)]
    assert dims[0] < dims[1] < dims[2]
    for d in (1, 3):
        s = harmless_space(cnn, (1, 8, 8), at=x[0], depth=d)
        assert s.kind == "local"
        assert certify(cnn, s, x).passed


def test_local_radius_is_exact():
    m = _mlp()
    x = torch.rand(64)
    s = harmless_space(m, (64,), at=x, depth=1)
    assert s.dim > 32  # dead units widen the first layer's null space
    gen = torch.Generator().manual_seed(1)
    m64 = m.double()
    base = m64(x.double()[None])
    crossed = 0
    for d in s.sample(10, gen):
        r = s.max_magnitude(d)
        assert 0 < r < math.inf
        inside = m64((x.double() + 0.999 * r * d)[None])
        assert (inside - base).abs().max() < 1e-10
        outside = m64((x.double() + 3 * r * d)[None])
        crossed += int((outside - base).abs().max() > 1e-8)
    assert crossed >= 8  # past the radius a unit wakes up and the output moves


def test_local_space_needs_its_input_and_depth():
    m = _mlp()
    with pytest.raises(ValueError, match="needs the input"):
        harmless_space(m, (64,), depth=1)
    with pytest.raises(ValueError, match="depth"):
        harmless_space(m, (64,), at=torch.rand(64), depth=5)
    s = harmless_space(m, (64,), at=torch.rand(64), depth=1)
    with pytest.raises(ValueError, match="input it was computed for"):
        certify(m, s, torch.rand(1, 64))


def test_unsupported_models_and_shapes():
    class Custom(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match="cannot walk"):
        harmless_space(Custom(), (4,))
    with pytest.raises(ValueError, match="input_shape"):
        harmless_space(_mlp(), (0,))
    with pytest.raises(ValueError, match="shape"):
        certify(_mlp(), harmless_space(_mlp(), (64,)), torch.rand(2, 63))


def test_injective_first_layer_has_no_global_space():
    m = _mlp(dims=(16, 32, 10))
    s = harmless_space(m, (16,))
    assert s.dim == 0
    with pytest.raises(ValueError, match="empty"):
        s.sample(1)


def test_integer_model_null_vectors_are_exactly_harmless():
    """An int8 first layer with int64 arithmetic: integer null vectors change nothing, bit for bit."""
    rng = np.random.default_rng(0)
    w1 = rng.integers(-127, 128, (24, 40))
    w2 = rng.integers(-127, 128, (10, 24))
    b1 = rng.integers(-1000, 1000, 24)

    def forward(x):  # int64 integer model: requantize by a shift, ReLU, second layer
        h = np.maximum((x @ w1.T + b1) >> 7, 0)
        return h @ w2.T

    x = rng.integers(-128, 128, (5, 40))
    vecs = np.array(integer_null_space(w1), dtype=np.int64)
    assert vecs.shape == (16, 40) and np.abs(vecs).max() < 2**15
    for alpha in (1, 100, 10_000):
        for v in vecs:
            assert np.array_equal(forward(x + alpha * v), forward(x))
    other = rng.integers(-3, 4, 40)
    assert not np.array_equal(forward(x + 100 * other), forward(x))


def test_average_pooling_and_batchnorm_are_part_of_the_affine_prefix():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.AvgPool2d(2), nn.ReLU(),
                        nn.Flatten(1), nn.Linear(64, 10))
    net[1].running_mean.uniform_(-1, 1)
    net[1].running_var.uniform_(0.5, 2)
    net.eval()
    s = harmless_space(net, (1, 8, 8))
    # conv (injective, 256 outputs) -> average pooling to 4x4x4 = 64 outputs from 64 inputs: the 2x2
    # averaging leaves room only where the composed map is singular, so compare with the matrix rank
    a = torch.stack([net[:3](e.reshape(1, 1, 8, 8)).flatten() - net[:3](torch.zeros(1, 1, 8, 8)).flatten()
                     for e in torch.eye(64)], dim=1).double()
    assert s.dim == 64 - torch.linalg.matrix_rank(a).item()
    assert "AvgPool2d" in s.description and "BatchNorm2d" in s.description
    wide = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.AvgPool2d(2), nn.ReLU()).eval()
    s2 = harmless_space(wide, (1, 8, 8))
    assert s2.dim == 64 - 32  # 2 channels x 4 x 4 outputs
    assert certify(wide, s2, torch.rand(2, 1, 8, 8)).passed


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 5), st.integers(1, 3), st.sampled_from([0, 1, 2]))
def test_random_conv_nets_spaces_are_harmless(seed, width, stride, depth):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(2, width, 3, stride=stride, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(1), nn.LazyLinear(6)).eval()
    x = torch.rand(1, 2, 8, 8, dtype=torch.float64)
    net(x.float())  # materialise the lazy layer
    net = net.double()
    s = harmless_space(net, (2, 8, 8), at=x[0], depth=depth)
    if s.dim == 0:
        return
    base = net(x)
    for d in s.sample(4, torch.Generator().manual_seed(seed % 1000)):
        a = min(100.0, 0.999 * s.max_magnitude(d))
        assert (net(x + a * d[None]) - base).abs().max() < 1e-9 * (1 + a)
