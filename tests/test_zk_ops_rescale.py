"""rescale op proofs: rounding relation, remainder range, clamp; completeness and must-reject cheats."""

import numpy as np
import pytest

from blindproof.zk.quant.spec import Op
from zk_ops_cases import ACC, I16, one_op, rejects_all_flips, run_op, tensor, trace_values


def _case(rng, shift, lo=-I16, hi=I16, shape=(3, 6), scale=1 << 24, x_range=ACC):
    spec = one_op(Op("rescale", ("x",), "y", {"shift": shift}),
                  [tensor("x", -x_range, x_range, "accumulator"), tensor("y", lo, hi)])
    x = rng.integers(-scale, scale, size=shape)
    x.reshape(-1)[:4] = [scale - 1, -scale, 0, -1]
    return spec, trace_values(spec, {}, {"x": x})


CASES = {
    "uniform-clamped": lambda rng: _case(rng, 7),
    "relu": lambda rng: _case(rng, 9, lo=0),
    "per-channel": lambda rng: _case(rng, [5, 9, 7, 12, 6, 8]),
    "identity-clamp": lambda rng: _case(rng, 14, lo=-ACC, hi=ACC),
    "shift-17": lambda rng: _case(rng, 17, scale=1 << 29),
    "finer-exponent": lambda rng: _case(rng, [-2, -2, -2, 0, 0, 1], scale=1 << 14, x_range=I16),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_complete(case):
    spec, vals = CASES[case](np.random.default_rng(1))
    ok, why, _ = run_op(spec, vals)
    assert ok, why


def test_clamp_is_exercised():
    _, vals = CASES["uniform-clamped"](np.random.default_rng(1))
    assert (vals["y"] != vals["y/q"]).any()


@pytest.mark.parametrize("case", ["uniform-clamped", "per-channel", "identity-clamp", "relu"])
def test_rejects_wrong_output_element(case):
    spec, vals = CASES[case](np.random.default_rng(2))

    def tamper(v):
        i = int(np.argmin(np.abs(v["y"]).reshape(-1)))
        v["y"].reshape(-1)[i] += 1

    assert not run_op(spec, vals, tamper=tamper)[0]


@pytest.mark.parametrize("case", ["uniform-clamped", "per-channel", "identity-clamp"])
def test_rejects_remainder_out_of_range(case):
    """q one lower and r one step of 2^s higher: the rounding relation still holds, the range does not."""
    spec, vals = CASES[case](np.random.default_rng(3))
    s = np.broadcast_to(np.asarray(spec.ops[0].params["shift"]), vals["y"].shape[-1:])

    def tamper(v):
        j = int(np.argmax(s))
        i = (0, j)
        v["y/q"][i] -= 1
        v["y/r"][i] += 1 << int(s[j])
        v["y"][i] = np.clip(v["y/q"][i], spec.tensors["y"].lo, spec.tensors["y"].hi)

    assert not run_op(spec, vals, tamper=tamper)[0]


def test_rejects_negative_remainder():
    spec, vals = CASES["uniform-clamped"](np.random.default_rng(4))

    def tamper(v):
        i = np.unravel_index(int(np.argmin(np.abs(v["y/q"]))), v["y"].shape)
        v["y/q"][i] += 1
        v["y/r"][i] -= 1 << 7
        v["y"][i] = v["y/q"][i]

    assert not run_op(spec, vals, tamper=tamper)[0]


@pytest.mark.parametrize("how", ["unclamped", "clamped_low", "clamped_inside"])
def test_rejects_cheated_clamp(how):
    spec, vals = CASES["uniform-clamped"](np.random.default_rng(5))
    q, y = vals["y/q"], vals["y"]
    big = np.argwhere(q > I16)[0]
    small = np.argwhere(np.abs(q) < 1000)[0]

    def tamper(v):
        if how == "unclamped":  # y = q above hi
            v["y"][tuple(big)] = q[tuple(big)]
        elif how == "clamped_low":  # y saturated at hi although q is small
            v["y"][tuple(small)] = I16
        else:  # y strictly inside the range but not equal to q (q above hi)
            v["y"][tuple(big)] = I16 - 5

    assert not run_op(spec, vals, tamper=tamper)[0]
    assert y[tuple(big)] == I16


def test_rejects_tampered_bytes():
    spec, vals = CASES["per-channel"](np.random.default_rng(6))
    assert rejects_all_flips(spec, vals, np.random.default_rng(7), n=32)


def test_claim_on_other_point_rejected():
    spec, vals = CASES["uniform-clamped"](np.random.default_rng(8))
    assert not run_op(spec, vals, other_point=True)[0]


def test_left_shift_of_full_accumulator_is_refused():
    spec, _ = _case(np.random.default_rng(9), 1)
    from blindproof.zk.ops import rescale
    bad = one_op(Op("rescale", ("x",), "y", {"shift": -1}), [tensor("x", -ACC, ACC, "accumulator"), tensor("y")])
    with pytest.raises(ValueError, match="clamp"):
        rescale.shapes(bad.ops[0], [(2, 3)], bad)
