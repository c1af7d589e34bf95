"""The `softmax` op proof: completeness and must-reject cases (inflated shift kept forever)."""

from __future__ import annotations

import numpy as np
import pytest

from blindproof.zk.ops import softmax
from blindproof.quant.reference import div_round
from blindproof.quant.spec import Op, TensorSpec
from blindproof.quant.tables import EXP_DOMAIN_MAX, exp_table
from blindproof.quant.functions import table_values

from zk_nonlinear_harness import (REJECTIONS, flip_bytes, one_op_spec, op_values, run, same_claims,
                                  small_family_trace, tiny_llama_trace, trace_values)

BIG = (1 << 28) - 1  # scores: a spread below 0.87·2^30 (ops/softmax.py)


def _case(shape=(1, 3, 5, 7), causal=True, start=0, seed=0, scale=3000, flat=False):
    op = Op("softmax", ("s",), "p", {"causal": causal, "frac": 14, "table": "softmax.exp"})
    tensors = {"s": TensorSpec("s", 12, -BIG, BIG, "accumulator"),
               "p": TensorSpec("p", 14, 0, 1 << 14, "activation")}
    spec = one_op_spec(op, tensors, {"softmax.exp": exp_table("softmax.exp", 12, 15)})
    rng = np.random.default_rng(seed)
    s = np.zeros(shape, dtype=np.int64) if flat else rng.normal(0, scale, size=shape).round().astype(np.int64)
    return spec, op, trace_values(spec, {"s": s}, start=start), start


def _run(spec, op, vals, start, **kw):
    return run(softmax, spec, op, vals, start=start, **kw)


@pytest.mark.parametrize("causal,start", [(True, 0), (True, 3), (False, 0)])
def test_random_tensors_prove_and_verify(causal, start):
    spec, op, vals, start = _case(causal=causal, start=start)
    out = _run(spec, op, vals, start)
    assert same_claims(out.prover_claims, out.verifier_claims)


def test_flat_rows_and_far_apart_scores():
    spec, op, vals, start = _case(shape=(2, 2, 4, 128), flat=True, causal=False)
    assert int(vals["p/sum"].max()) == 128 * 32768  # sum ≥ 2^17: a plain p ≤ 2^14 check would wrap
    _run(spec, op, vals, start)
    spec, op, vals, start = _case(shape=(1, 1, 4, 6), scale=1 << 20, seed=3)
    assert int(vals["p/diff"].max()) > EXP_DOMAIN_MAX  # the z clamp is active
    _run(spec, op, vals, start)


def test_real_model_softmax():
    for qm, trace in (tiny_llama_trace(), small_family_trace("gpt2"), small_family_trace("bert")):
        ops = [op for op in qm.spec.ops if op.kind == "softmax"]
        assert ops
        run(softmax, qm.spec, ops[0], op_values(qm, trace, ops[0]))


def _recompute(vals, op, m, start=0):
    """Every witness of the softmax for a given (possibly inflated) row shift m."""
    s = vals["s"]
    t, k = s.shape[-2:]
    allowed = softmax.allowed(t, k, start, op.params["causal"]).astype(bool)
    diff = np.where(allowed, m - s, 0)
    z = np.minimum(diff, EXP_DOMAIN_MAX)
    e = np.where(allowed, table_values(exp_table("softmax.exp", 12, 15))[z], 0)
    total = e.sum(-1, keepdims=True)
    p, r = div_round(e << 14, np.maximum(total, 1))  # a sum of 0 cannot divide; the cheat fails anyway
    return {**vals, "p/max": m, "p/diff": diff, "p/z": z, "p/e": e, "p/sum": total, "p/r": r, "p": p}


@pytest.mark.parametrize("delta", [1, 4096, 50000])
def test_inflated_shift_is_rejected(delta):
    spec, op, vals, start = _case(seed=4)
    bad = _recompute(vals, op, vals["p/max"] + delta)
    if delta == 50000:  # everything underflows: the sum falls below one unit
        assert int(bad["p/sum"].min()) < 32768
    with pytest.raises(REJECTIONS):
        _run(spec, op, bad, start, strict=False)


def test_inflated_shift_with_a_large_sum_is_rejected():
    # rows of 128 close scores: an inflated shift of 4096 (e^-1) still sums far above one unit and
    # changes the rounded output; only the attained-maximum argument rejects it
    spec, op, vals, start = _case(shape=(1, 1, 2, 128), scale=500, causal=False)
    bad = _recompute(vals, op, vals["p/max"] + 4096)
    assert int(bad["p/sum"].min()) >= 32768 and not np.array_equal(bad["p"], vals["p"])
    with pytest.raises(REJECTIONS):
        _run(spec, op, bad, start, strict=False)


def test_remainder_out_of_range_is_rejected():
    spec, op, vals, start = _case(seed=5)
    vals = dict(vals)
    vals["p"], vals["p/r"] = vals["p"].copy(), vals["p/r"].copy()
    i = np.unravel_index(np.argmax(vals["p"]), vals["p"].shape)
    vals["p"][i] -= 1
    vals["p/r"][i] += vals["p/sum"][i[:-1] + (0,)]  # r = old r + sum ≥ sum
    with pytest.raises(REJECTIONS):
        _run(spec, op, vals, start, strict=False)


def test_wrapped_quotient_is_rejected():
    # the attack a bare p ∈ [0, 2^14] check misses: p·sum + r = N + P with a large sum
    spec, op, vals, start = _case(shape=(1, 1, 2, 128), flat=True, causal=False)
    P = 2013265921
    vals = dict(vals)
    vals["p"], vals["p/r"] = vals["p"].copy(), vals["p/r"].copy()
    total = int(vals["p/sum"][0, 0, 0, 0])
    n = int(vals["p/e"][0, 0, 0, 0]) * (1 << 14) + total // 2
    vals["p"][0, 0, 0, 0], vals["p/r"][0, 0, 0, 0] = divmod(n + P, total)
    assert 0 <= vals["p"][0, 0, 0, 0] <= 1 << 14
    with pytest.raises(REJECTIONS):
        _run(spec, op, vals, start, strict=False)


def test_lookup_cheats_are_rejected():
    spec, op, vals, start = _case(seed=6)
    bad = dict(vals)
    bad["p/e"] = vals["p/e"].copy()
    bad["p/e"][0, 1, 4, 2] += 5  # not T[z]
    total = bad["p/e"].sum(-1, keepdims=True)
    bad["p/sum"] = total
    bad["p"], bad["p/r"] = div_round(bad["p/e"] << 14, total)
    with pytest.raises(REJECTIONS):
        _run(spec, op, bad, start, strict=False)
    bad = dict(vals)
    bad["p/z"] = vals["p/z"].copy()
    bad["p/z"][0, 0, 0, 0] = EXP_DOMAIN_MAX + 1  # outside the table
    with pytest.raises(REJECTIONS):
        _run(spec, op, bad, start, strict=False)


def test_wrong_output_element_is_rejected():
    spec, op, vals, start = _case(seed=7)
    vals = dict(vals)
    vals["p"] = vals["p"].copy()
    vals["p"][0, 2, 3, 1] += 1
    with pytest.raises(REJECTIONS):
        _run(spec, op, vals, start, strict=False)


def test_masked_entry_cannot_carry_mass():
    spec, op, vals, start = _case(seed=8)
    vals = dict(vals)
    for k in ("p/e", "p/diff", "p/z"):
        vals[k] = vals[k].copy()
    vals["p/e"][0, 0, 0, 6] = 32768  # key 6 is masked for query 0
    with pytest.raises(REJECTIONS):
        _run(spec, op, vals, start, strict=False)


def test_claim_on_a_different_point_is_rejected():
    spec, op, vals, start = _case(seed=9)
    with pytest.raises(REJECTIONS):
        _run(spec, op, vals, start, cheat_claim_point=True)


def test_wrong_start_is_rejected():
    spec, op, vals, start = _case(seed=10, start=2)
    with pytest.raises(REJECTIONS):
        _run(spec, op, vals, 0, strict=False)


def test_tampered_proof_bytes_are_rejected():
    spec, op, vals, start = _case(shape=(1, 1, 2, 4), seed=11)
    out = _run(spec, op, vals, start)
    for bad in flip_bytes(out.proof_bytes, np.random.default_rng(2), 16):
        with pytest.raises(REJECTIONS):
            out.verify(bad)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gpt2-block", "minilm-l6"])
def test_named_workloads_nonlinear_ops(name):
    """Every softmax, norm and lookup op of a full-width workload (random weights, 16 tokens)."""
    from blindproof.models.workloads import get_workload
    from blindproof.zk.ops import lookup_ops, norm
    from blindproof.quant import quantize

    wl = get_workload(name)
    qm = quantize(wl.build(0), wl.example_input(0, 2)[:, :16])
    trace = qm.run(wl.example_input(1, 1)[:, :16])
    mods = {"softmax": softmax, "norm": norm, "lookup": lookup_ops}
    seen = set()
    for op in qm.spec.ops:
        if op.kind in mods and op.kind not in seen:
            seen.add(op.kind)
            run(mods[op.kind], qm.spec, op, op_values(qm, trace, op))
    assert seen == set(mods)


def test_division_bounds_hold_up_to_2_14_keys():
    spec, op, _, _ = _case()
    for k in (1, 128, 4096, 1 << 14):
        plan = softmax._Plan(op, (1, 1, 2, k), spec, 0)
        assert plan.bounds_ok() and k * 32768 <= 1 << plan.kS


def test_scores_declared_too_wide_are_checked():
    """A declared score range is never what bounds the scores: one the op that makes them does not
    prove (here ±(2^30 − 1), which could wrap max − s around p) is range-checked in [-2^28, 2^28) by
    the softmax proof itself; a proven one inside that domain needs no check."""
    op = Op("softmax", ("s",), "p", {"causal": True, "frac": 14, "table": "softmax.exp"})
    wide = (1 << 30) - 1
    tensors = {"s": TensorSpec("s", 12, -wide, wide, "accumulator"), "p": TensorSpec("p", 14, 0, 1 << 14, "activation")}
    spec = one_op_spec(op, tensors, {"softmax.exp": exp_table("softmax.exp", 12, 15)})
    assert softmax._Plan(op, (1, 2, 4, 4), spec, 0).s_check
    tensors["s"] = TensorSpec("s", 12, -BIG, BIG, "input")  # a public input: range-checked by the verifier
    spec = one_op_spec(op, tensors, {"softmax.exp": exp_table("softmax.exp", 12, 15)})
    assert not softmax._Plan(op, (1, 2, 4, 4), spec, 0).s_check
