"""linear / qk / pv op proofs: completeness on random tensors, must-reject cheats."""

import numpy as np
import pytest

from blindproof.quant.spec import Op
from zk_ops_cases import (ACC, completeness_test, one_op, rejects_all_flips, run_op, tensor, trace_values,
                          wrong_output_test)


def _linear(rng, lead=(2, 3), k=5, n=7, bias=True):
    """``k`` an int, or a tuple of trailing axes the weight contracts (a flattened feature map)."""
    k = (k,) if isinstance(k, int) else tuple(k)
    params = {"weight": "W"}
    weights = {"W": ((n, *k), "int8")}
    if bias:
        params["bias"] = "b"
        weights["b"] = ((n,), "int32")
    spec = one_op(Op("linear", ("x",), "y", params), [tensor("x"), tensor("y", -ACC, ACC, "accumulator")], weights)
    w = {"W": rng.integers(-127, 128, size=(n, *k))}
    if bias:
        w["b"] = rng.integers(-(1 << 20), 1 << 20, size=n)
    return spec, trace_values(spec, w, {"x": rng.integers(-32767, 32768, size=(*lead, *k))})


def _attention(rng, kind, b=2, h=4, kv=2, t=3, T=5, hd=6):
    a_shape = (b, h, t, hd) if kind == "qk" else (b, h, t, T)
    b_shape = (b, kv, T, hd)
    spec = one_op(Op(kind, ("a", "c"), "y"), [tensor("a"), tensor("c"), tensor("y", -ACC, ACC, "accumulator")])
    lim = 2000
    return spec, trace_values(spec, {}, {"a": rng.integers(-lim, lim, size=a_shape),
                                         "c": rng.integers(-lim, lim, size=b_shape)})


CASES = {
    "linear": lambda rng: _linear(rng),
    "linear-nobias-1d-lead": lambda rng: _linear(rng, lead=(3,), k=8, n=4, bias=False),
    "linear-odd": lambda rng: _linear(rng, lead=(1, 5), k=13, n=3),
    "linear-feature-map": lambda rng: _linear(rng, lead=(2,), k=(3, 5, 6), n=4),
    "qk-gqa": lambda rng: _attention(rng, "qk"),
    "qk-mha-odd-heads": lambda rng: _attention(rng, "qk", h=3, kv=3, t=5, T=5, hd=8),
    "pv-gqa": lambda rng: _attention(rng, "pv"),
    "pv-mqa": lambda rng: _attention(rng, "pv", h=4, kv=1, t=2, T=7, hd=3),
}


test_complete = completeness_test(CASES)
test_rejects_wrong_output_element = wrong_output_test(CASES)


@pytest.mark.parametrize("case", ["linear", "qk-gqa", "pv-gqa"])
def test_rejects_claim_on_other_point(case):
    spec, vals = CASES[case](np.random.default_rng(3))
    assert not run_op(spec, vals, other_point=True)[0]


def test_a_feature_map_linear_is_the_flattened_matrix_product():
    spec, vals = CASES["linear-feature-map"](np.random.default_rng(11))
    x, w, b = vals["x"], vals["w:W"], vals["w:b"]
    assert np.array_equal(vals["y"], x.reshape(2, -1) @ w.reshape(4, -1).T + b)

    def transposed(v):  # the weight's columns read in torch's (c, h, w) order against the (h, w, c) map
        v["y"][...] = x.reshape(2, -1) @ np.transpose(w, (0, 3, 1, 2)).reshape(4, -1).T + b

    assert not run_op(spec, vals, tamper=transposed)[0]


def test_rejects_wrong_weight_and_bias():
    spec, vals = CASES["linear"](np.random.default_rng(4))

    def tamper_w(v):
        v["w:W"][0, 0] += 1

    def tamper_b(v):
        v["w:b"][1] -= 1

    assert not run_op(spec, vals, tamper=tamper_w)[0]
    assert not run_op(spec, vals, tamper=tamper_b)[0]


def test_rejects_wrong_kv_head():
    """Grouped-query: the output computed with the wrong kv head for one query head."""
    spec, vals = CASES["qk-gqa"](np.random.default_rng(5))

    def tamper(v):
        a, c = v["a"], v["c"]
        v["y"][:, 1] = a[:, 1] @ np.swapaxes(c[:, 1], -1, -2)  # head 1 belongs to kv head 0

    assert not run_op(spec, vals, tamper=tamper)[0]


@pytest.mark.parametrize("case", ["linear", "pv-gqa"])
def test_rejects_tampered_bytes(case):
    spec, vals = CASES[case](np.random.default_rng(6))
    assert rejects_all_flips(spec, vals, np.random.default_rng(7))