"""add / add_weight / mul / mul_weight / split_heads / merge_heads / rope / embed / mean_pool proofs."""

import numpy as np
import pytest

from blindproof.quant.reference import BoundError, run_program
from blindproof.quant.spec import Op
from blindproof.quant.tables import rope_table
from zk_ops_cases import (ACC, I16, completeness_test, one_op, rejects_all_flips, run_op, tensor, trace_values,
                          wrong_output_test)


def _add(rng, clamp=True):
    lim = I16 if clamp else 1000
    spec = one_op(Op("add", ("a", "b"), "y"), [tensor("a", -lim, lim), tensor("b", -lim, lim), tensor("y")])
    return spec, trace_values(spec, {}, {"a": rng.integers(-lim, lim + 1, size=(2, 3, 5)),
                                         "b": rng.integers(-lim, lim + 1, size=(2, 3, 5))})


def _add_weight(rng, wide=False):
    dt, out = ("int32", tensor("y", -ACC, ACC, "accumulator")) if wide else ("int16", tensor("y"))
    spec = one_op(Op("add_weight", ("a",), "y", {"weight": "w"}), [tensor("a"), out], {"w": ((6,), dt)})
    wl = (1 << 28) if wide else I16
    return spec, trace_values(spec, {"w": rng.integers(-wl, wl, size=6)}, {"a": rng.integers(-I16, I16, size=(3, 6))})


def _mul(rng, weight=False):
    if weight:
        spec = one_op(Op("mul_weight", ("a",), "y", {"weight": "w"}),
                      [tensor("a"), tensor("y", -ACC, ACC, "accumulator")], {"w": ((5,), "int16")})
        return spec, trace_values(spec, {"w": rng.integers(-HALF, HALF, size=5)}, {"a": rng.integers(-I16, I16, size=(2, 3, 5))})
    spec = one_op(Op("mul", ("a", "b"), "y"), [tensor("a"), tensor("b"), tensor("y", -ACC, ACC, "accumulator")])
    return spec, trace_values(spec, {}, {"a": rng.integers(-I16, I16, size=(3, 7)), "b": rng.integers(-HALF, HALF, size=(3, 7))})


# products stay below 2^29 (the integer model's bound) when one factor is below 2^14
HALF = 1 << 14


def _heads(rng, kind):
    if kind == "split_heads":
        spec = one_op(Op("split_heads", ("x",), "y", {"heads": 3}), [tensor("x"), tensor("y")])
        return spec, trace_values(spec, {}, {"x": rng.integers(-I16, I16, size=(2, 5, 12))})
    spec = one_op(Op("merge_heads", ("x",), "y"), [tensor("x"), tensor("y")])
    return spec, trace_values(spec, {}, {"x": rng.integers(-I16, I16, size=(2, 3, 5, 8))})


def _rope(rng, start=0):
    cos = rope_table("rope.cos", "cos", 13, 8, 16, 10000.0)
    sin = rope_table("rope.sin", "sin", 13, 8, 16, 10000.0)
    spec = one_op(Op("rope", ("x",), "y", {"cos": "rope.cos", "sin": "rope.sin"}),
                  [tensor("x"), tensor("y", -ACC, ACC, "accumulator")], tables={"rope.cos": cos, "rope.sin": sin})
    return spec, trace_values(spec, {}, {"x": rng.integers(-I16, I16, size=(2, 3, 5, 8))}, start=start)


def _embed(rng, index="tokens", start=0):
    spec = one_op(Op("embed", ("tokens",), "y", {"index": index, "weight": "E"}),
                  [tensor("tokens", 0, 40, "index"), tensor("y")], {"E": ((41, 6), "int16")})
    return spec, trace_values(spec, {"E": rng.integers(-I16, I16, size=(41, 6))},
                              {"tokens": rng.integers(0, 41, size=(2, 5))}, start=start)


def _pool(rng, t=5, spatial=None):
    spec = one_op(Op("mean_pool", ("x",), "y"), [tensor("x"), tensor("y")])
    return spec, trace_values(spec, {}, {"x": rng.integers(-I16, I16, size=(3, *(spatial or (t,)), 6))})


CASES = {
    "add-clamp": lambda r: _add(r),
    "add-identity": lambda r: _add(r, clamp=False),
    "add_weight": lambda r: _add_weight(r),
    "add_weight-wide": lambda r: _add_weight(r, wide=True),
    "mul": lambda r: _mul(r),
    "mul_weight": lambda r: _mul(r, weight=True),
    "split_heads": lambda r: _heads(r, "split_heads"),
    "merge_heads": lambda r: _heads(r, "merge_heads"),
    "rope": lambda r: _rope(r),
    "embed-tokens": lambda r: _embed(r),
    "embed-positions": lambda r: _embed(r, "positions"),
    "mean_pool": lambda r: _pool(r),
    "mean_pool-t1": lambda r: _pool(r, t=1),
    "mean_pool-2d": lambda r: _pool(r, spatial=(3, 5)),
    "mean_pool-2d-pow2": lambda r: _pool(r, spatial=(4, 2)),
}


test_complete = completeness_test(CASES)


def test_complete_with_start_offset():
    for make in (lambda r: _rope(r, start=7), lambda r: _embed(r, "positions", start=9)):
        spec, vals = make(np.random.default_rng(2))
        start = 7 if "rope" in spec.ops[0].kind else 9
        ok, why, _ = run_op(spec, vals, start=start)
        assert ok, why
        assert not run_op(spec, vals, start=start - 1)[0]  # a proof for other positions


test_rejects_wrong_output_element = wrong_output_test(CASES, seed=3)


@pytest.mark.parametrize("case", ["add-clamp", "mul", "rope", "embed-tokens", "mean_pool", "split_heads"])
def test_rejects_claim_on_other_point(case):
    spec, vals = CASES[case](np.random.default_rng(4))
    assert not run_op(spec, vals, other_point=True)[0]


def test_add_rejects_cheated_clamp():
    spec, vals = CASES["add-clamp"](np.random.default_rng(5))
    raw = vals["y/raw"]
    i = tuple(np.argwhere(np.abs(raw) > I16)[0])

    def tamper(v):
        v["y"][i] = raw[i]  # unclamped

    assert not run_op(spec, vals, tamper=tamper)[0]

    def tamper_raw(v):  # raw no longer a + b
        v["y/raw"][0, 0, 0] += 3
        v["y"][0, 0, 0] = np.clip(v["y/raw"][0, 0, 0], -I16, I16)

    assert not run_op(spec, vals, tamper=tamper_raw)[0]


def test_mean_pool_rejects_remainder_out_of_range():
    spec, vals = CASES["mean_pool"](np.random.default_rng(6))

    def tamper(v):
        v["y"][0, 0] -= 1
        v["y/r"][0, 0] += 5

    assert not run_op(spec, vals, tamper=tamper)[0]


def test_embed_rejects_other_row():
    spec, vals = CASES["embed-tokens"](np.random.default_rng(7))

    def tamper(v):
        tok = v["tokens"][0, 0]
        v["y"][0, 0] = v["w:E"][(tok + 1) % 41]

    assert not run_op(spec, vals, tamper=tamper)[0]


def test_mean_pool_2d_rejects_a_mean_over_the_real_rows_only():
    """A (b, h, w, c) map: the mean over one row of positions only, or over all but one, is rejected."""
    spec, vals = CASES["mean_pool-2d"](np.random.default_rng(10))
    x = vals["x"]

    def one_row(v):
        v["y"][...] = np.floor(x[:, 0].sum(1) / x.shape[2] + 0.5).astype(np.int64)

    def drop_last(v):
        flat = x.reshape(x.shape[0], -1, x.shape[-1])[:, :-1]
        v["y"][...] = np.floor(flat.sum(1) / flat.shape[1] + 0.5).astype(np.int64)

    assert not run_op(spec, vals, tamper=one_row)[0]
    assert not run_op(spec, vals, tamper=drop_last)[0]


@pytest.mark.parametrize("case", ["add-clamp", "rope", "embed-tokens", "mean_pool", "mean_pool-2d"])
def test_rejects_tampered_bytes(case):
    spec, vals = CASES[case](np.random.default_rng(8))
    assert rejects_all_flips(spec, vals, np.random.default_rng(9), n=16)

def test_full_range_int16_product_is_a_bound_error():
    """32767 · 32767 ≥ 2^29: an int16 × int16 product is checked at run time, not assumed in range."""
    spec = one_op(Op("mul", ("a", "b"), "y"), [tensor("a"), tensor("b"), tensor("y", -ACC, ACC, "accumulator")])
    with pytest.raises(BoundError, match="2\\^29"):
        run_program(spec, {}, {"a": np.array([[I16, 1]]), "b": np.array([[I16, 1]])})


def test_mean_pool_rejects_wrapped_quotient():
    """T = 5: (y − 5⁻¹ mod p, r + 1) solves T·y + r = Σx + ⌊T/2⌋ modulo p; the pooled output would be a
    huge public value. The range check of y rejects it."""
    from blindproof.zk.field.babybear import P
    spec, vals = CASES["mean_pool"](np.random.default_rng(21))
    T = 5
    inv = pow(T, P - 2, P)
    r = vals["y/r"]
    i = np.unravel_index(int(np.argmin(r)), r.shape)
    assert r[i] + 1 < T

    def tamper(v):
        y2 = (int(v["y"][i]) - inv) % P
        v["y"][i] = y2 - P if y2 > P // 2 else y2
        v["y/r"][i] += 1

    assert not run_op(spec, vals, tamper=tamper)[0]
