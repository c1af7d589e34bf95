"""Transformer probe points: harmless input expansion and MLP down-projection ports."""

import copy

import pytest
import torch

from blindproof.fingerprint.substitutes import int8_weights
from blindproof.fingerprint.transformer import HarmlessExpansion, mlp_port, mlp_port_space, port_change
from blindproof.models import get_workload


@pytest.fixture(scope="module")
def tiny():
    wl = get_workload("tiny-llama")
    model = wl.build(0)
    with torch.no_grad():
        h = model.embed_tokens(wl.example_input(0, batch=2))
    return model, h


def test_port_space_is_down_projection_null_space(tiny):
    model, _ = tiny
    s = mlp_port_space(model, 1)
    cfg = model.cfg
    assert s.dim == cfg.d_ff - cfg.d_model
    w = model.blocks[1].mlp.down.weight.detach().double()
    assert (w @ s.basis.T).abs().max() < 1e-12


@pytest.mark.parametrize("layer", [0, 1])
def test_port_probes_are_harmless_and_random_ones_are_not(tiny, layer):
    model, h = tiny
    for alpha in (1.0, 100.0, 10_000.0):
        c = port_change(model, h, layer, alpha)
        assert c.harmless_change < 1e-6 * alpha + 1e-5
        assert c.random_change > 1e3 * c.harmless_change


def test_port_probe_exposes_a_substitute(tiny):
    model, h = tiny
    sub = int8_weights(model)
    honest = port_change(model, h, 0, 1000.0)
    cheat = port_change(sub, h, 0, 1000.0, reference=model)
    with torch.no_grad():
        plain = float((sub.run_blocks(h) - model.run_blocks(h)).abs().max())
    assert cheat.harmless_change > 10 * plain  # amplified beyond the substitute's own error
    assert cheat.harmless_change > 1e4 * honest.harmless_change


def test_port_rejects_bad_arguments(tiny):
    model, _ = tiny
    with pytest.raises(ValueError, match="layer"):
        mlp_port_space(model, 7)
    with pytest.raises(ValueError, match="d_ff"):
        with mlp_port(model, 0, torch.zeros(3)):
            pass
    with pytest.raises(TypeError, match="Transformer"):
        mlp_port_space(torch.nn.Linear(2, 2), 0)


@torch.no_grad()
def test_port_hook_is_removed(tiny):
    model, h = tiny
    before = model.run_blocks(h)
    with pytest.raises(RuntimeError):
        with mlp_port(model, 0, torch.ones(model.cfg.d_ff)):
            raise RuntimeError("boom")
    assert torch.equal(model.run_blocks(h), before)


@torch.no_grad()
def test_harmless_expansion_round_trip_and_null_space(tiny):
    model, h = tiny
    exp = HarmlessExpansion(model.cfg.d_model, 32, seed=3)
    g = torch.Generator().manual_seed(0)
    u = exp.encode(h, noise=100.0 * torch.randn(*h.shape[:-1], 32, generator=g))
    assert torch.allclose(exp(u), h, atol=1e-3)
    s = exp.space()
    assert s.dim == 32
    d = s.sample(h.shape[0] * h.shape[1], g).reshape(*h.shape[:-1], -1).float()
    out = model.run_blocks(exp(exp.encode(h) + 1000.0 * d))
    assert (out - model.run_blocks(h)).abs().max() < 1e-2
    other = copy.deepcopy(exp)
    other.mix.data += 1e-3
    assert (model.run_blocks(other(exp.encode(h) + 1000.0 * d)) - model.run_blocks(h)).abs().max() > 0.1
    with pytest.raises(ValueError, match="last dimension"):
        exp(h)
