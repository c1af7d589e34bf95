"""The `lookup` op proof (SiLU/GELU tables): completeness and must-reject cases."""

from __future__ import annotations

import numpy as np
import pytest

from blindproof.zk.ops import base as B
from blindproof.zk.ops import lookup_ops
from blindproof.quant.spec import Op, TensorSpec
from blindproof.quant.tables import activation_table
from blindproof.quant.functions import table_values

from zk_nonlinear_harness import (REJECTIONS, flip_bytes, one_op_spec, op_values, run, same_claims,
                                  small_family_trace, tiny_llama_trace, trace_values)


def _spec(fn: str = "gelu", in_lo: int = -32767, in_hi: int = 32767):
    table = activation_table("t.table", fn, 12, 12)
    op = Op("lookup", ("x",), "y", {"table": "t.table"})
    tensors = {"x": TensorSpec("x", 12, in_lo, in_hi, "activation"),
               "y": TensorSpec("y", 12, -32767, 32767, "activation")}
    return one_op_spec(op, tensors, {"t.table": table}), op


def _values(shape=(3, 5, 40), seed=0, lo=-32767, hi=32767, fn="gelu"):
    spec, op = _spec(fn, lo, hi)
    x = np.random.default_rng(seed).integers(lo, hi + 1, size=shape)
    return spec, op, trace_values(spec, {"x": x})


@pytest.mark.parametrize("fn", ["gelu", "silu", "gelu_tanh"])
def test_random_tensors_prove_and_verify(fn):
    spec, op, vals = _values(fn=fn)
    out = run(lookup_ops, spec, op, vals)
    assert same_claims(out.prover_claims, out.verifier_claims)
    assert {c.tensor for c in out.verifier_claims} >= {"x", "y", "y/index"}


def test_extended_table_follows_the_clamp():
    spec, _ = _spec()
    ts = spec.tables["t.table"]
    t = lookup_ops.extended_table(ts)
    assert t.log_size == 16
    vals = table_values(ts)
    ins = np.asarray(B.F.to_signed(t.columns[0]))
    outs = np.asarray(B.F.to_signed(t.columns[1]))
    assert ins[0] == -32768 and outs[0] == vals[0]  # the row below lo repeats T[lo]
    assert np.array_equal(outs[1:], vals)


def test_wide_input_goes_through_the_clamp():
    spec, op, vals = _values(lo=-40000, hi=40000)
    assert not lookup_ops._Plan(op, vals["x"].shape, spec).identity
    assert np.abs(vals["x"]).max() > 32767  # some entries really are clamped
    out = run(lookup_ops, spec, op, vals)
    assert any(c.tensor.startswith("y~clamp") for c in out.verifier_claims)


def test_real_model_silu_and_gelu():
    for qm, trace in (tiny_llama_trace(), small_family_trace("gpt2"), small_family_trace("bert")):
        ops = [op for op in qm.spec.ops if op.kind == "lookup"]
        assert ops
        for op in ops[:1]:
            run(lookup_ops, qm.spec, op, op_values(qm, trace, op))


def test_wrong_table_output_is_rejected():
    spec, op, vals = _values(seed=1)
    vals["y"] = vals["y"].copy()
    vals["y"][1, 2, 3] += 1
    with pytest.raises(ValueError, match="not in table"):  # the honest prover refuses
        run(lookup_ops, spec, op, vals)
    # a prover that goes on anyway (multiplicities of the rows that are in the table) is caught
    with pytest.raises(REJECTIONS, match="lookup"):
        run(lookup_ops, spec, op, vals, strict=False)


def test_input_outside_the_table_is_rejected():
    spec, op, vals = _values(seed=2)
    # x = 40000 is outside the table; a prover that keeps index = x cannot find the pair
    vals["x"] = vals["x"].copy()
    vals["x"][0, 0, 0] = 40000
    vals["y/index"] = vals["x"].copy()
    with pytest.raises(REJECTIONS, match="lookup"):
        run(lookup_ops, spec, op, vals, strict=False)
    # a prover that clamps the index but leaves x alone breaks index = x
    vals["y/index"] = np.clip(vals["x"], -32767, 32767)
    vals["y"] = table_values(spec.tables["t.table"])[vals["y/index"] + 32767]
    with pytest.raises(REJECTIONS, match="does not match"):
        run(lookup_ops, spec, op, vals, strict=False)


def test_wrong_index_is_rejected():
    spec, op, vals = _values(seed=3)
    vals["y/index"] = vals["y/index"].copy()
    vals["y/index"][2, 4, 39] += 1  # a valid table pair, but not the input
    vals["y"] = table_values(spec.tables["t.table"])[np.clip(vals["y/index"], -32767, 32767) + 32767]
    with pytest.raises(REJECTIONS, match="does not match"):
        run(lookup_ops, spec, op, vals, strict=False)


def test_clamp_cheat_is_rejected():
    spec, op, vals = _values(lo=-40000, hi=40000, seed=4)
    i = np.unravel_index(np.argmax(vals["x"]), vals["x"].shape)
    assert vals["x"][i] > 32767
    vals["y/index"] = vals["y/index"].copy()
    vals["y/index"][i] = 32000  # claims the clamp landed lower
    vals["y"] = table_values(spec.tables["t.table"])[vals["y/index"] + 32767]

    def forge(aux):  # keep q − out = d⁺ − d⁻ true with d⁺ > 0 off the bound
        aux["y~clamp.dpos"] = np.maximum(vals["x"] - vals["y/index"], 0)
    with pytest.raises(REJECTIONS):
        run(lookup_ops, spec, op, vals, cheat_aux=forge, strict=False)


def test_claim_on_a_different_point_is_rejected():
    spec, op, vals = _values(seed=5)
    with pytest.raises(REJECTIONS):
        run(lookup_ops, spec, op, vals, cheat_claim_point=True)


def test_tampered_proof_bytes_are_rejected():
    spec, op, vals = _values(shape=(2, 8), seed=6)
    out = run(lookup_ops, spec, op, vals)
    for bad in flip_bytes(out.proof_bytes, np.random.default_rng(0), 16):
        with pytest.raises(REJECTIONS):
            out.verify(bad)


def test_table_without_a_zero_row_is_refused():
    from blindproof.quant.tables import exp_table
    with pytest.raises(ValueError, match=r"\(0, 0\)"):
        lookup_ops.extended_table(exp_table("e", 12, 15))
    assert lookup_ops.extended_table(exp_table("e", 12, 15), shift_out=32768).log_size == 16
