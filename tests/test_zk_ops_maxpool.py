"""max_pool op proofs: completeness over windows, must-reject cheats (a value below the window max, above
it, the max of another window, junk gaps), the padding it pins, and the bounds refused at load."""

import numpy as np
import pytest
import torch

from blindproof.quant.conv import max_pool_exact
from blindproof.quant.spec import Op
from zk_ops_cases import I16, completeness_test, one_op, rejects_all_flips, run_op, tensor, trace_values


def _pool(rng, spatial=(6, 5), kernel=(2, 2), stride=(2, 2), c=3, batch=2, lo=-I16, hi=I16):
    spec = one_op(Op("max_pool", ("x",), "y", {"kernel": list(kernel), "stride": list(stride)}),
                  [tensor("x", lo, hi), tensor("y", lo, hi)])
    return spec, trace_values(spec, {}, {"x": rng.integers(lo, hi + 1, size=(batch, *spatial, c))})


CASES = {
    "2x2": lambda rng: _pool(rng),
    "3x3-stride1": lambda rng: _pool(rng, spatial=(5, 7), kernel=(3, 3), stride=(1, 1), c=2),
    "2x3-overlap": lambda rng: _pool(rng, spatial=(6, 8), kernel=(2, 3), stride=(1, 2), c=4, batch=1),
    "1d": lambda rng: _pool(rng, spatial=(9,), kernel=(3,), stride=(2,), c=5),
    "1d-pair": lambda rng: _pool(rng, spatial=(4,), kernel=(2,), stride=(2,), c=1, batch=1),
    "relu-range": lambda rng: _pool(rng, lo=0, hi=I16),
}


def test_reference_is_torch_max_pool():
    rng = np.random.default_rng(0)
    x = rng.integers(-99, 99, (2, 7, 6, 3))
    for k, s in [((2, 2), (2, 2)), ((3, 2), (1, 2)), ((3, 3), (2, 1))]:
        ref = torch.nn.functional.max_pool2d(torch.tensor(np.moveaxis(x, -1, 1), dtype=torch.float64), k, s)
        assert np.array_equal(max_pool_exact(x, k, s), np.moveaxis(ref.numpy(), 1, -1).astype(np.int64))


test_complete = completeness_test(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("delta", [-1, 1])
def test_rejects_an_output_off_the_window_max(case, delta):
    """One below the max (some gap negative) or one above (no gap zero)."""
    spec, vals = CASES[case](np.random.default_rng(2))

    def tamper(v):
        v["y"].reshape(-1)[len(v["y"].reshape(-1)) // 2] += delta

    assert not run_op(spec, vals, tamper=tamper)[0]


def test_rejects_the_max_of_a_shifted_window():
    spec, vals = CASES["2x2"](np.random.default_rng(3))
    x = vals["x"]

    def tamper(v):
        v["y"][...] = max_pool_exact(np.roll(x, 1, axis=1), (2, 2), (2, 2))

    assert not np.array_equal(max_pool_exact(np.roll(x, 1, axis=1), (2, 2), (2, 2)), vals["y"])
    assert not run_op(spec, vals, tamper=tamper)[0]


def test_rejects_the_second_largest_value():
    """Every gap non-negative except the real max's: a value inside the window, but not its max."""
    spec, vals = CASES["3x3-stride1"](np.random.default_rng(4))
    x = vals["x"]
    windows = np.stack([x[:, i:i + 3, j:j + 3] for i in range(3) for j in range(5)], 1)  # (b, 15, 3, 3, c)
    second = np.sort(windows.reshape(*windows.shape[:2], 9, -1), axis=2)[:, :, -2]

    def tamper(v):
        v["y"][...] = second.reshape(v["y"].shape)

    assert not run_op(spec, vals, tamper=tamper)[0]


@pytest.mark.parametrize("case", ["2x2", "1d"])
def test_rejects_tampered_bytes(case):
    spec, vals = CASES[case](np.random.default_rng(6))
    assert rejects_all_flips(spec, vals, np.random.default_rng(7))


def test_bounds_and_windows_are_checked_at_load():
    from blindproof.zk.proof.config import check_spec_sound
    spec, _ = _pool(np.random.default_rng(8))
    check_spec_sound(spec)
    wide = one_op(Op("max_pool", ("x",), "y", {"kernel": [2, 2], "stride": [2, 2]}),
                  [tensor("x", -(1 << 20), 1 << 20), tensor("y", -(1 << 20), 1 << 20)])
    with pytest.raises(ValueError, match="at most 2\\^16 wide"):
        check_spec_sound(wide)
    narrow_out = one_op(Op("max_pool", ("x",), "y", {"kernel": [2, 2], "stride": [2, 2]}),
                        [tensor("x"), tensor("y", 0, I16)])
    with pytest.raises(ValueError, match="inside the output's declared range"):
        check_spec_sound(narrow_out)
    with pytest.raises(ValueError, match="kernel must list 2"):
        from blindproof.zk.ops.maxpool import out_shape
        out_shape(Op("max_pool", ("x",), "y", {"kernel": [2], "stride": [2, 2]}), (1, 4, 4, 2))
