"""conv op proofs: completeness over geometries, must-reject cheats (wrong outputs, shifted or mirrored
reads, wrong weights and bias, tampered bytes), and the relation against torch's convolution."""

import numpy as np
import pytest
import torch

from blindproof.quant.conv import ConvGeometry, conv_exact
from blindproof.quant.spec import Op
from zk_ops_cases import (ACC, completeness_test, one_op, rejects_all_flips, run_op, tensor, trace_values,
                          wrong_output_test)


def _conv(rng, spatial=(6, 5), kernel=(3, 3), c=3, o=4, batch=2, stride=None, padding=None, dilation=None,
          bias=True):
    dims = len(spatial)
    geom = ConvGeometry(tuple(stride or (1,) * dims), tuple(padding or (0,) * dims), tuple(dilation or (1,) * dims))
    params = {"weight": "W", **geom.to_params()}
    weights = {"W": ((o, *kernel, c), "int8")}
    w = {"W": rng.integers(-127, 128, size=(o, *kernel, c))}
    if bias:
        params["bias"] = "b"
        weights["b"] = ((o,), "int32")
        w["b"] = rng.integers(-(1 << 20), 1 << 20, size=o)
    spec = one_op(Op("conv", ("x",), "y", params), [tensor("x"), tensor("y", -ACC, ACC, "accumulator")], weights)
    return spec, trace_values(spec, w, {"x": rng.integers(-2000, 2000, size=(batch, *spatial, c))})


CASES = {
    "2d": lambda rng: _conv(rng),
    "2d-stride-pad": lambda rng: _conv(rng, spatial=(7, 6), stride=(2, 2), padding=(1, 1)),
    "2d-dilated-nobias": lambda rng: _conv(rng, spatial=(8, 7), dilation=(2, 1), padding=(2, 0), bias=False),
    "2d-1x1-pow2": lambda rng: _conv(rng, spatial=(4, 4), kernel=(1, 1), c=4, o=2),
    "2d-wide-kernel": lambda rng: _conv(rng, spatial=(5, 9), kernel=(2, 5), stride=(1, 3), padding=(0, 2)),
    "1d": lambda rng: _conv(rng, spatial=(9,), kernel=(3,), c=5, o=3, padding=(1,)),
    "1d-one-channel-one-batch": lambda rng: _conv(rng, spatial=(10,), kernel=(4,), c=1, o=1, batch=1, stride=(3,)),
}


def test_reference_is_torch_convolution():
    rng = np.random.default_rng(0)
    for dims, f in ((1, torch.nn.functional.conv1d), (2, torch.nn.functional.conv2d)):
        for s, p, d in [(1, 0, 1), (2, 1, 1), (1, 2, 2), (3, 1, 1)]:
            g = ConvGeometry((s,) * dims, (p,) * dims, (d,) * dims)
            size = (11,) if dims == 1 else (7, 6)
            x = rng.integers(-50, 50, (2, *size, 3))
            w = rng.integers(-9, 9, (4, *(3,) * dims, 3))
            ref = f(torch.tensor(np.moveaxis(x, -1, 1), dtype=torch.float64),
                    torch.tensor(np.moveaxis(w, -1, 1), dtype=torch.float64), stride=s, padding=p, dilation=d)
            assert np.array_equal(conv_exact(x, w, g), np.moveaxis(ref.numpy(), 1, -1).astype(np.int64))


test_complete = completeness_test(CASES)
test_rejects_wrong_output_element = wrong_output_test(CASES)


@pytest.mark.parametrize("case", ["2d", "1d"])
def test_rejects_claim_on_other_point(case):
    spec, vals = CASES[case](np.random.default_rng(3))
    assert not run_op(spec, vals, other_point=True)[0]


@pytest.mark.parametrize("what", ["shifted by one position", "kernel mirrored", "without its padding",
                                  "dilated"])
def test_rejects_an_output_of_another_geometry(what):
    """The output of a convolution that reads other input positions (a consistent cheat, not a flip)."""
    spec, vals = CASES["2d-stride-pad"](np.random.default_rng(4))
    x, w, b = vals["x"], vals["w:W"], vals["w:b"]
    g = ConvGeometry((2, 2), (1, 1), (1, 1))
    if what == "shifted by one position":
        other = conv_exact(np.roll(x, 1, axis=2), w, g)
    elif what == "kernel mirrored":
        other = conv_exact(x, w[:, ::-1, ::-1], g)
    elif what == "without its padding":
        other = np.zeros_like(vals["y"]) - b
        core = conv_exact(x, w, ConvGeometry((2, 2), (0, 0), (1, 1)))
        other[:, :core.shape[1], :core.shape[2]] += core
    else:
        other = conv_exact(x, w, ConvGeometry((2, 2), (2, 2), (2, 2)))
    other = other + b
    assert other.shape == vals["y"].shape and not np.array_equal(other, vals["y"])

    def tamper(v):
        v["y"][...] = other

    assert not run_op(spec, vals, tamper=tamper)[0]


def test_rejects_wrong_weight_and_bias():
    spec, vals = CASES["2d"](np.random.default_rng(5))

    def tamper_w(v):
        v["w:W"][1, 2, 0, 1] += 1

    def tamper_b(v):
        v["w:b"][1] -= 1

    assert not run_op(spec, vals, tamper=tamper_w)[0]
    assert not run_op(spec, vals, tamper=tamper_b)[0]


@pytest.mark.parametrize("case", ["2d-stride-pad", "1d"])
def test_rejects_tampered_bytes(case):
    spec, vals = CASES[case](np.random.default_rng(6))
    assert rejects_all_flips(spec, vals, np.random.default_rng(7))


def test_bad_geometry_is_a_clear_error():
    rng = np.random.default_rng(8)
    with pytest.raises(ValueError, match="stride"):
        _conv(rng, stride=(0, 1))
    with pytest.raises(ValueError, match="does not fit"):
        _conv(rng, spatial=(2, 2), kernel=(3, 3))
    spec, _ = _conv(rng)
    bad = Op("conv", ("x",), "y", {**spec.ops[0].params, "padding": [1]})
    with pytest.raises(ValueError, match="padding must list 2"):
        ConvGeometry.from_params(bad.params, 2)
