"""The proof enforces the integer domain it relies on, not the spec's declarations.

Each test is a cheating prover (or a hostile spec) that the op verifiers accepted while they trusted a
declared range: two outputs for one input, or an output the reference does not give. Every relation
holds modulo p; only a bound that a proof now enforces (or a spec now refused) stops it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from blindproof.zk.field import babybear as F
from blindproof.zk.proof import program as P
from blindproof.zk.ops import base as B
from blindproof.zk.iop import claims as CL
from blindproof.zk.iop import layout as LAY
from blindproof.zk.ops import domain, elementwise, norm, softmax
from blindproof.quant.reference import BoundError, Trace, div_round, isqrt, run_program
from blindproof.quant.spec import Op, QuantSpec, TensorSpec
from blindproof.quant.tables import EXP_DOMAIN_MAX, exp_table, make_table
from blindproof.quant.functions import table_values

from zk_nonlinear_harness import REJECTIONS, one_op_spec, run, trace_values

PR = F.P


def _spec(inputs, ops, tensors, tables=None) -> QuantSpec:
    return QuantSpec(arch={"family": "test"}, inputs=tuple(inputs), outputs=(ops[-1].output,), ops=tuple(ops),
                     tensors=tensors, weights={}, tables=dict(tables or {}))


# --- finding 6: softmax scores straight from qk --------------------------------------------------

A = 534_256_996  # each score below 2^29, the spread 2A above p − 2^30 − 2^16 (≈ 0.875·2^30)


def _qk_softmax_spec() -> QuantSpec:
    """q·k feeds softmax directly; the scores are DECLARED within ±2^28 (a hostile spec's choice)."""
    ops = [Op("qk", ("q", "k"), "s"), Op("softmax", ("s",), "p", {"causal": False, "frac": 14, "table": "sm.exp"})]
    tensors = {"q": TensorSpec("q", 6, -(1 << 29) + 1, (1 << 29) - 1, "input"),
               "k": TensorSpec("k", 6, -1, 1, "input"),
               "s": TensorSpec("s", 12, -(1 << 28) + 1, (1 << 28) - 1, "accumulator"),
               "p": TensorSpec("p", 14, 0, 1 << 14, "activation")}
    return _spec(("q", "k"), ops, tensors, {"sm.exp": exp_table("sm.exp", 12, 15)})


def _softmax_values(s: np.ndarray, top: int) -> dict[str, np.ndarray]:
    """Softmax witnesses (non-causal, one row) with the row 'maximum' at key ``top``: the true maximum
    for the honest prover, the smallest score for the cheat (max − s then wraps around p)."""
    T = table_values(exp_table("sm.exp", 12, 15))
    m = s[..., top:top + 1]
    diff = (m - s) % PR  # the field value, as a non-negative integer
    z = np.minimum(diff, EXP_DOMAIN_MAX)
    e = T[z]
    total = e.sum(-1, keepdims=True)
    p, r = div_round(e << 14, total)
    arg = np.full(m.shape, top, dtype=np.int64)
    return {"s": s, "p": p, "p/max": m, "p/argmax": arg, "p/diff": diff, "p/z": z, "p/e": e, "p/sum": total,
            "p/r": r}


def _prove_qk_softmax(top: int):
    spec = _qk_softmax_spec()
    q = np.array([[[[A]]]], dtype=np.int64)
    k = np.array([[[[1], [-1]]]], dtype=np.int64)
    vals = {"q": q, "k": k, **_softmax_values(q * k.reshape(1, 1, 1, 2), top)}
    trace = Trace(tensors=vals, outputs=("p",))
    settler = CL.OracleSettler()
    proof = P.prove_trace(spec, {}, trace, settler, strict=False)
    res = P.verify_trace(spec, {"q": q, "k": k}, {"p": vals["p"]}, proof, settler)
    return vals, res


def test_softmax_wrapped_spread_is_rejected():
    honest, res_h = _prove_qk_softmax(0)
    cheat, res_c = _prove_qk_softmax(1)  # the smallest score posing as the maximum
    assert not np.array_equal(honest["p"], cheat["p"])  # two different outputs for one input
    assert int(cheat["p/diff"][0, 0, 0, 0]) == PR - 2 * A  # max − s wrapped around p
    assert not res_c.ok, "a softmax whose shift is the smallest score verified"
    assert "range" in res_c.reason or "lookup" in res_c.reason
    # the scores leave the protocol's domain [-2^28, 2^28): the reference refuses them too,
    # so the honest prover has nothing to prove
    assert not res_h.ok
    with pytest.raises(BoundError, match="softmax"):
        run_program(_qk_softmax_spec(), {}, {"q": honest["q"], "k": honest["k"]})


def test_softmax_scores_in_domain_still_prove_through_qk():
    spec = _qk_softmax_spec()
    q = np.array([[[[3000]]]], dtype=np.int64)
    k = np.array([[[[1], [-1]]]], dtype=np.int64)
    trace = run_program(spec, {}, {"q": q, "k": k})
    settler = CL.OracleSettler()
    proof = P.prove_trace(spec, {}, trace, settler)
    assert P.verify_trace(spec, {"q": q, "k": k}, {"p": trace.tensors["p"]}, proof, settler).ok


def test_softmax_table_must_be_the_protocols():
    """The exp table's domain comes from the protocol (z ≤ 2^16 − 1, as the reference clamps), not
    from the spec: a table over [0, 2^17) proved z = min(diff, 2^17 − 1), another output."""
    op = Op("softmax", ("s",), "p", {"causal": False, "frac": 14, "table": "sm.exp"})
    tensors = {"s": TensorSpec("s", 16, -(1 << 20), 1 << 20, "input"),
               "p": TensorSpec("p", 14, 0, 1 << 14, "activation")}
    wide = make_table("sm.exp", "exp_neg", 16, 15, 0, (1 << 17) - 1)
    with pytest.raises(ValueError, match="exp table"):
        one_op_spec(op, tensors, {"sm.exp": wide})
    short = make_table("sm.exp", "exp_neg", 12, 15, 0, 1000)
    with pytest.raises(ValueError, match="exp table"):
        one_op_spec(op, tensors, {"sm.exp": short})
    other = make_table("sm.exp", "silu", 12, 15, 0, EXP_DOMAIN_MAX)
    with pytest.raises(ValueError, match="exp table"):
        one_op_spec(op, tensors, {"sm.exp": other})


# --- Clamp at b = 30 ------------------------------------------------------------------------------

LO, HI = -402_653_190, -402_653_190 + (1 << 29) - 1


def _wide_add_spec() -> QuantSpec:
    """raw = a + b clamped to [LO, HI] (29 bits wide), a and b products DECLARED within ±100M each:
    q_bound 200M and the old excess width b = 30."""
    Q = 100_000_000
    ops = [Op("mul", ("x", "w"), "a"), Op("mul", ("x", "w"), "b"), Op("add", ("a", "b"), "y")]
    tensors = {"x": TensorSpec("x", 0, -(1 << 15) + 1, (1 << 15) - 1, "input"),
               "w": TensorSpec("w", 0, -(1 << 15) + 1, (1 << 15) - 1, "input"),
               "a": TensorSpec("a", 0, -Q, Q, "accumulator"), "b": TensorSpec("b", 0, -Q, Q, "accumulator"),
               "y": TensorSpec("y", 0, LO, HI, "activation")}
    return _spec(("x", "w"), ops, tensors)


def test_clamp_excess_cannot_wrap():
    spec = _wide_add_spec()
    op = spec.ops[-1]
    a = np.full((1, 2), (1 << 28) - 1, dtype=np.int64)  # a reference-valid product above its declaration
    raw = a + a  # 2^29 − 2 < 2^29
    honest = {"a": a, "b": a, "y/raw": raw, "y": np.clip(raw, LO, HI)}
    run(elementwise, spec, op, honest)
    cheat = dict(honest, y=np.full((1, 2), LO, dtype=np.int64))  # clamped to lo instead of hi
    assert int((LO - raw[0, 0]) % PR) < 1 << 30  # the excess d⁻ fits 30 bits
    with pytest.raises(REJECTIONS):
        run(elementwise, spec, op, cheat, strict=False, cheat_aux=_clamp_to_lo(spec, op, cheat))


def _clamp_to_lo(spec, op, vals):
    """Aux columns of the cheat: d⁺ = 0, d⁻ = lo − raw (mod p), limbs recomputed."""
    def edit(extra):
        clamp, checks = elementwise._clamp_plan(op, vals["y"].shape, spec)
        extra[clamp.dpos] = np.zeros_like(vals["y"])
        extra[clamp.dneg] = (LO - vals["y/raw"]) % PR
        get = lambda n: extra[n] if n in extra else vals[n]  # noqa: E731
        extra.update(checks.witness(get, strict=False))
    return edit


def test_clamp_window_is_unique_for_every_q():
    """Every Clamp the ops build has (hi − lo) + 2·2^b ≤ p: one output per field value of q."""
    c = B.Clamp("t", "q", "y", (4,), LO, HI, 200_000_000)
    assert (c.hi - c.lo) + 2 * (1 << c.bits) <= PR
    with pytest.raises(ValueError, match="too wide"):
        B.Clamp("t", "q", "y", (4,), -500_000_000, 500_000_000, 1 << 28)


# --- finding 7: norm clamp with an asymmetric output range -----------------------------------------

def _asym_norm():
    C = 40000
    op = Op("norm", ("x",), "y", {"kind": "rms", "d": 4, "E": 1, "C": C})
    tensors = {"x": TensorSpec("x", 10, -32767, 32767, "input"),
               "y": TensorSpec("y", 12, -32767, 1 << 28, "activation")}
    return one_op_spec(op, tensors, {}), op


def test_norm_quotient_is_bounded_for_any_output_range():
    spec, op = _asym_norm()
    x = np.array([[[1887, 1887, 1888, 1886]]], dtype=np.int64)
    vals = trace_values(spec, {"x": x})
    run(norm, spec, op, vals)
    s = int(vals["y/s"][0, 0, 0])
    num = x * 40000 + s // 2
    n2 = (num + PR) // s  # n' = n + ⌊(num + p)/s⌋ also solves C·x + h = n·s + r mod p
    cheat = dict(vals, **{"y/n": n2, "y/r": num + PR - n2 * s, "y": n2})
    assert int(cheat["y"].max()) > 500_000 and int(vals["y"].max()) <= 40_000
    with pytest.raises(REJECTIONS):
        run(norm, spec, op, cheat, strict=False)


# --- finding 9: LayerNorm's mean for d ≥ 30,721 -------------------------------------------------

def _layer_spec(d: int):
    op = Op("norm", ("x",), "y", {"kind": "layer", "d": d, "E": 1, "C": d})
    tensors = {"x": TensorSpec("x", 10, -32767, 32767, "input"),
               "y": TensorSpec("y", 12, -32767, 32767, "activation")}
    return op, tensors


def test_layernorm_width_beyond_the_mean_window_is_refused():
    """d = 30,721: ``mean' = mean − 65534`` with ``mean_r' = mean_r + 4093`` also solves the row sum
    (65534·d = p + 4093) inside the mean's window, and shifts every output (±175 → ±2)."""
    d = 30721
    assert 65534 * d - PR == 4093
    assert (65534 * d) * 1 >= PR  # d·2^16 > p: the mean window no longer makes the mean unique
    op, tensors = _layer_spec(d)
    with pytest.raises(ValueError, match="30720"):
        one_op_spec(op, tensors, {})
    op, tensors = _layer_spec(30720)
    one_op_spec(op, tensors, {})  # the widest accepted width


# --- finding 9: a sum of squares that wraps around p -------------------------------------------------

def _rms_spec(d: int = 8, C: int = 40000):
    op = Op("norm", ("x",), "y", {"kind": "rms", "d": d, "E": 1, "C": C})
    tensors = {"x": TensorSpec("x", 10, -32767, 32767, "input"),
               "y": TensorSpec("y", 12, -32767, 32767, "activation")}
    return one_op_spec(op, tensors, {}), op


def _wrapped_squares_values():
    """x = 17000 everywhere (d = 8): Σx² + E = 2.31e9 ≥ p. The reference raises BoundError; the field
    sees S = Σx² + E − p = 2.99e8 < 2^29 and a division with |x| ≤ s that holds."""
    spec, op = _rms_spec()
    x = np.full((1, 1, 8), 17000, dtype=np.int64)
    S = (int((x * x).sum()) + 1) % PR
    s = int(isqrt(np.array([S]))[0])
    n, r = div_round(x * 40000, s)
    vals = {"x": x, "y": np.clip(n, -32767, 32767), "y/S": np.full((1, 1, 1), S), "y/s": np.full((1, 1, 1), s),
            "y/n": n, "y/r": r}
    return spec, op, vals


def test_wrapped_sum_of_squares_is_rejected():
    spec, op, vals = _wrapped_squares_values()
    with pytest.raises(BoundError):
        run_program(spec, {}, {"x": vals["x"]})
    assert int(vals["y"][0, 0, 0]) == 32767  # the true RMS norm is C/√8 ≈ 14142 … the reference refuses
    with pytest.raises(REJECTIONS):
        run(norm, spec, op, vals, strict=False)


# --- proven ranges --------------------------------------------------------------------------------

def test_proven_ranges_follow_the_proofs():
    spec = _qk_softmax_spec()
    pr = domain.proven_ranges(spec)
    assert pr["q"] == (-(1 << 29) + 1, (1 << 29) - 1)  # public inputs: checked by the verifier
    assert pr["s"] is None  # an accumulator: nothing but the field
    assert pr["p"] == (0, 1 << 14)
    assert math.isclose(0, 0)


def test_successor_mle_matches_its_table():
    from blindproof.zk.iop import mle
    from blindproof.zk.ops.rowwise import succ_eval
    rng = np.random.default_rng(0)
    for k in (1, 2, 4):
        a = rng.integers(0, PR, size=(k, 4)).astype(np.uint32)
        b = rng.integers(0, PR, size=(k, 4)).astype(np.uint32)
        # [x = y + 1] as a table over (x, y), MSB-first x then y
        t = np.zeros(1 << (2 * k), dtype=np.int64)
        for y in range((1 << k) - 1):
            t[((y + 1) << k) | y] = 1
        want = mle.evaluate(LAY.canonical(t), np.concatenate([a, b]))
        assert np.array_equal(succ_eval(a, b), want)
