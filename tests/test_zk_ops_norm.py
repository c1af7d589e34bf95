"""The `norm` op proof (RMSNorm, LayerNorm): completeness and must-reject cases."""

from __future__ import annotations

import numpy as np
import pytest

from blindproof.zk.ops import base as B
from blindproof.zk.ops import norm
from blindproof.quant.reference import div_round
from blindproof.quant.spec import Op, TensorSpec

from zk_nonlinear_harness import (REJECTIONS, flip_bytes, one_op_spec, op_values, run, same_claims,
                                  small_family_trace, tiny_llama_trace, trace_values)


def _case(kind="rms", shape=(2, 5, 48), C=32768, E=671, seed=0, amp=1500):
    d = shape[-1]
    op = Op("norm", ("x",), "y", {"kind": kind, "d": d, "E": E, "C": C})
    tensors = {"x": TensorSpec("x", 10, -32767, 32767, "activation"),
               "y": TensorSpec("y", 12, -32767, 32767, "activation")}
    spec = one_op_spec(op, tensors, {})
    rng = np.random.default_rng(seed)
    x = np.clip(rng.normal(0, amp, size=shape).round().astype(np.int64) + (400 if kind == "layer" else 0),
                -32767, 32767)
    return spec, op, trace_values(spec, {"x": x})


@pytest.mark.parametrize("kind", ["rms", "layer"])
def test_random_tensors_prove_and_verify(kind):
    spec, op, vals = _case(kind)
    out = run(norm, spec, op, vals)
    assert same_claims(out.prover_claims, out.verifier_claims)


def test_identity_clamp_and_odd_shapes():
    spec, op, vals = _case("layer", shape=(3, 7, 20), C=20000, E=5)
    assert norm._Plan(op, vals["x"].shape, spec).identity
    run(norm, spec, op, vals)
    spec, op, vals = _case("rms", shape=(1, 1, 33), C=32768, E=1)
    run(norm, spec, op, vals)


def test_real_model_norms():
    for qm, trace in (tiny_llama_trace(), small_family_trace("gpt2"), small_family_trace("bert")):
        ops = [op for op in qm.spec.ops if op.kind == "norm"]
        assert ops
        for op in ops[:2]:
            run(norm, qm.spec, op, op_values(qm, trace, op))


def _wrapping_limbs(monkeypatch):
    """A cheating prover: limbs of (v − lo) mod 2^bits, each in range, for any value."""
    def witness(self, v, strict=True):
        v = np.asarray(v, dtype=np.int64)
        if self.direct():
            return {}
        out = {}
        for side in self.sides():
            u = (v - self.lo) if side == 0 else (self.hi - v)
            u = np.mod(u, 1 << self.bits)
            off = 0
            for k, b in enumerate(B._limb_widths(self.bits)):
                out[f"{self.tag}.{side}{k}"] = (u >> off) & ((1 << b) - 1)
                off += b
        return out
    monkeypatch.setattr(B.RangeCheck, "witness", witness)



@pytest.mark.parametrize("delta", [1, -1])
def test_wrong_inverse_square_root_is_rejected(delta, monkeypatch):
    spec, op, vals = _case("rms", seed=1)
    C = op.params["C"]
    s = vals["y/s"] + delta
    n, r = div_round(vals["x"] * C, s)
    vals.update({"y/s": s, "y/n": n, "y/r": r, "y": np.clip(n, -32767, 32767)})
    with pytest.raises(ValueError):  # the honest prover cannot even build its range witnesses
        run(norm, spec, op, vals)
    _wrapping_limbs(monkeypatch)
    with pytest.raises(REJECTIONS):
        run(norm, spec, op, vals, strict=False)


def test_division_remainder_out_of_range_is_rejected(monkeypatch):
    spec, op, vals = _case("layer", seed=2)
    # n one lower, r one divisor higher: the equation still holds, r ≥ s
    vals["y/n"] = vals["y/n"].copy()
    vals["y/r"] = vals["y/r"].copy()
    s = np.broadcast_to(vals["y/s"], vals["y/n"].shape)
    vals["y/n"][0, 1, 2] -= 1
    vals["y/r"][0, 1, 2] += s[0, 1, 2]
    vals["y"] = np.clip(vals["y/n"], -32767, 32767)
    _wrapping_limbs(monkeypatch)
    with pytest.raises(REJECTIONS):
        run(norm, spec, op, vals, strict=False)


def test_mean_remainder_out_of_range_is_rejected(monkeypatch):
    spec, op, vals = _case("layer", seed=3)
    d = op.params["d"]
    vals["y/mean"] = vals["y/mean"] + 1
    vals["y/mean_r"] = vals["y/mean_r"] - d  # negative: Σx + d/2 = d·mean + mean_r still holds
    c = vals["x"] - vals["y/mean"]
    S = (c * c).sum(-1, keepdims=True) + op.params["E"]
    from blindproof.quant.reference import isqrt
    s = isqrt(S)
    n, r = div_round(c * op.params["C"], s)
    vals.update({"y/centred": c, "y/S": S, "y/s": s, "y/n": n, "y/r": r, "y": np.clip(n, -32767, 32767)})
    _wrapping_limbs(monkeypatch)
    with pytest.raises(REJECTIONS):
        run(norm, spec, op, vals, strict=False)


def test_wrong_output_element_is_rejected():
    spec, op, vals = _case("rms", seed=4)
    vals["y"] = vals["y"].copy()
    vals["y"][1, 3, 7] += 1
    with pytest.raises(REJECTIONS):
        run(norm, spec, op, vals, strict=False)


def test_wrong_sum_of_squares_is_rejected():
    spec, op, vals = _case("rms", seed=5)
    vals["y/S"] = vals["y/S"].copy()
    vals["y/S"][0, 0, 0] += 1  # s stays a valid root for a nearby S, but S no longer matches x
    with pytest.raises(REJECTIONS):
        run(norm, spec, op, vals, strict=False)


def test_clamp_cheated_is_rejected():
    spec, op, _ = _case("rms", shape=(2, 3, 4))
    x = np.zeros((2, 3, 4), dtype=np.int64)
    x[1, 2, 0] = 10000  # a row with one entry: n = C = 32768, clamped to 32767
    vals = trace_values(spec, {"x": x})
    assert vals["y/n"][1, 2, 0] == 32768 and vals["y"][1, 2, 0] == 32767
    run(norm, spec, op, vals)
    vals["y"] = vals["y"].copy()
    vals["y"][1, 2, 0] = 32000

    def forge(aux):  # q − out = d⁺ − d⁻ still holds, with d⁺ > 0 away from the bound
        aux["y~clamp.dpos"] = np.maximum(vals["y/n"] - vals["y"], 0)
    with pytest.raises(REJECTIONS):
        run(norm, spec, op, vals, cheat_aux=forge, strict=False)


def test_claim_on_a_different_point_is_rejected():
    spec, op, vals = _case("layer", seed=7)
    with pytest.raises(REJECTIONS):
        run(norm, spec, op, vals, cheat_claim_point=True)


def test_tampered_proof_bytes_are_rejected():
    spec, op, vals = _case("layer", shape=(1, 2, 8), seed=8)
    out = run(norm, spec, op, vals)
    data = out.proof_bytes
    for bad in flip_bytes(data, np.random.default_rng(1), 16):
        with pytest.raises(REJECTIONS):
            out.verify(bad)


def test_sum_of_squares_bound():
    assert norm.sum_sq_bits(32768) == 29
    assert norm.sum_sq_bits(1000) == 29  # capped at 29: S is a program value, below 2^29
    spec, op, vals = _case("rms", seed=9)
    vals["y/S"] = np.full_like(vals["y/S"], 1 << 29)
    with pytest.raises(ValueError, match="2\\^29"):
        run(norm, spec, op, vals)


def test_integer_spec_and_proof_share_the_domain():
    from blindproof.zk.field import babybear as F
    from blindproof.quant.spec import FIELD_P, norm_sq_bits
    assert FIELD_P == F.P
    for C in (1, 20066, 40132, 43444, 43445, 56756, 80265):
        a = norm_sq_bits(C)
        assert norm.sum_sq_bits(C) == a
        # the division relation of the largest S in the domain stays below p; one bit more would not
        s_max = int(np.sqrt((1 << a) - 1))
        assert 2 * (C + 1) * s_max + 2 < F.P
        if a < 29:
            assert 2 * (C + 1) * int(np.sqrt((1 << (a + 1)) - 1)) + 2 >= F.P
    assert [norm_sq_bits(C) for C in (43444, 43445, 80265)] == [29, 28, 27]


def test_reference_raises_bound_error_beyond_the_proof_domain():
    from blindproof.quant.check import RelationError, check_trace
    from blindproof.quant.reference import BoundError, Trace, run_program
    # C = 80265 (MiniLM's √384·2^12): the proof covers S < 2^27 only
    spec, op, vals = _case("rms", shape=(1, 2, 64), C=80265, E=1, amp=1000)
    assert int(vals["y/S"].max()) < 1 << 27
    run(norm, spec, op, vals)
    x = np.full((1, 2, 64), 1500, dtype=np.int64)  # S = 64·1500² + 1 ≈ 2^27.1
    with pytest.raises(BoundError, match="2\\^27"):
        run_program(spec, {}, {"x": x})
    # a recorded trace beyond the domain fails the relation check too (and the prover refuses it)
    spec2, op2, _ = _case("rms", shape=(1, 2, 64), C=20066, E=1)
    t = dict(run_program(spec2, {}, {"x": x}).tensors)
    with pytest.raises(RelationError, match="domain"):
        check_trace(spec, {}, Trace(t, spec.outputs))
    with pytest.raises(ValueError, match="2\\^27"):
        run(norm, spec, op, t)
