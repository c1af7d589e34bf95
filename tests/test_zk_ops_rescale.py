"""rescale op proofs: rounding relation, remainder range, clamp; completeness and must-reject cheats."""

import numpy as np
import pytest

from blindproof.zk.field.babybear import P
from blindproof.quant.reference import BoundError, run_program
from blindproof.quant.spec import Op
from zk_ops_cases import (ACC, I16, completeness_test, one_op, rejects_all_flips, run_op, tensor, trace_values,
                          wrong_output_test)


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
    "shift-17": lambda rng: _case(rng, 17, scale=1 << 28),
    "shift-15-near-bound": lambda rng: _case(rng, 15, scale=(1 << 29) - (1 << 14)),
    "scores-identity": lambda rng: _case(rng, 13, lo=-(1 << 28), hi=(1 << 28) - 1, scale=1 << 28),
    "spread-per-channel": lambda rng: _case(rng, [3, 14, 9, 3, 12, 6]),
    "finer-exponent": lambda rng: _case(rng, [-2, -2, -2, 0, 0, 1], scale=1 << 14, x_range=I16),
}


test_complete = completeness_test(CASES)


def test_clamp_is_exercised():
    _, vals = CASES["uniform-clamped"](np.random.default_rng(1))
    assert (vals["y"] != vals["y/q"]).any()


test_rejects_wrong_output_element = wrong_output_test(CASES, ["uniform-clamped", "per-channel", "identity-clamp",
                                                               "relu"])


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


def test_left_shift_of_full_accumulator_proves():
    """With every accumulator below 2^29 the clamp of a left shift has a sound excess bound."""
    spec = one_op(Op("rescale", ("x",), "y", {"shift": -1}), [tensor("x", -ACC, ACC, "accumulator"), tensor("y")])
    x = np.random.default_rng(9).integers(-(1 << 27), 1 << 27, size=(2, 3))
    vals = trace_values(spec, {}, {"x": x})
    assert (np.abs(vals["y/q"]) > I16).any()
    ok, why, _ = run_op(spec, vals)
    assert ok, why


@pytest.mark.parametrize("shift,x", [(15, (1 << 29) - 1), (15, -(1 << 29) - (1 << 14) - 1), (-1, 1 << 28), (1, 1 << 29)])
def test_reference_refuses_quotient_outside_window(shift, x):
    """The integer program has the proof's domain: q·2^s + r must lie in [-2^29, 2^29)."""
    spec = one_op(Op("rescale", ("x",), "y", {"shift": shift}), [tensor("x", -(1 << 31), 1 << 31, "accumulator"),
                                                                   tensor("y")])
    with pytest.raises(BoundError, match="quotient|2\\^29"):
        run_program(spec, {}, {"x": np.array([[x, 0]])})


def _wrap(s: int) -> int:
    """c with c·2^s = p − 1: (q − c, r − 1) solves the rounding relation mod p whenever (q, r) does."""
    c = 15 << (27 - s)
    assert (c << s) == P - 1
    return c


def test_rejects_wrapped_quotient_shift_15():
    """shift 15 of an accumulator near 2^29, int16 output: the pair (q − 61440, r − 1) satisfies
    x + 2^14 = q·2^15 + r mod p (61440·2^15 = p − 1). With |x| < 2^29 the honest q fits int16, so y
    plays q and the cheat's y = q − 61440 would pass everything but the quotient window."""
    spec, vals = CASES["shift-15-near-bound"](np.random.default_rng(10))
    from blindproof.zk.ops import rescale
    plan = rescale._Plan(spec.ops[0], vals["y"].shape, spec)
    c = _wrap(15)
    assert c == 61440
    i = np.unravel_index(int(np.argmax(vals["y/q"] * (vals["y/r"] > 0))), vals["y"].shape)
    assert vals["y/q"][i] > 0 and vals["y/r"][i] >= 1

    def tamper(v):
        v["y/q"][i] -= c
        v["y/r"][i] -= 1
        v["y"][i] = v["y/q"][i] if plan.identity else max(v["y/q"][i], -I16)

    x, q, r = (int(vals[n][i]) for n in ("x", "y/q", "y/r"))
    assert (x + (1 << 14) - ((q - c) << 15) - (r - 1)) % P == 0  # the cheat solves the field relation
    assert not run_op(spec, vals, tamper=tamper)[0]


def test_rejects_wrapped_quotient_identity():
    """Scores-like rescale (shift 13, output range ±2^28, so y plays q): q + 245760 with r + 1 also
    solves the relation mod p and stays inside the declared output range; only the window rejects it."""
    spec, vals = CASES["scores-identity"](np.random.default_rng(11))
    from blindproof.zk.ops import rescale
    assert rescale._Plan(spec.ops[0], vals["y"].shape, spec).identity
    c = _wrap(13)
    r = vals["y/r"]
    i = np.unravel_index(int(np.argmin(np.where(r < (1 << 13) - 1, np.abs(vals["y"]), 1 << 40))), r.shape)

    def tamper(v):
        v["y/q"][i] += c
        v["y/r"][i] += 1
        v["y"][i] += c

    y2 = int(vals["y"][i]) + c
    assert spec.tensors["y"].lo <= y2 <= spec.tensors["y"].hi
    assert not run_op(spec, vals, tamper=tamper)[0]


@pytest.mark.parametrize("case", ["uniform-clamped", "per-channel", "scores-identity"])
def test_padding_of_the_output_is_zero(monkeypatch, case):
    """Junk on a padded column of the output (width 6 -> 8), committed and opened consistently, is
    rejected: on padding the relation reads q + r = 0 with both range-checked, so a later linear never
    multiplies junk activations into junk weight padding (docs/zk-ops.md §5a)."""
    from blindproof.zk.proof import program as PR
    from blindproof.zk.field.encoding import ProofFormatError
    from blindproof.zk.field.babybear import FieldError
    from blindproof.zk.ops import base as B
    from blindproof.zk.iop import claims as CL
    from blindproof.zk.iop import layout as LAY

    spec, vals = CASES[case](np.random.default_rng(12))
    junk = {}
    for name in ("y", "y/q"):
        t = np.zeros((4, 8), dtype=np.int64)
        t[:3, :6] = vals[name]
        t[:3, 6] = 5  # a padded column of real rows
        junk[name] = t
    orig = B.ProverContext.table
    monkeypatch.setattr(B.ProverContext, "table",
                        lambda self, n: LAY.canonical(junk[n]) if n in junk else orig(self, n))
    public = {"x": vals["x"]}
    full, shapes = PR.with_aux(spec, vals, public, strict=False)
    proof, _c, out = PR.prove_op(spec, 0, full, shapes, public, 0, strict=False)
    tables = {n: LAY.canonical(junk[n]) if n in junk else LAY.canonical(v) for n, v in full.items()}
    with pytest.raises((CL.Reject, ProofFormatError, FieldError)):
        claims = PR.verify_op(spec, 0, out.value, B.OpProof.from_bytes(proof.to_bytes()), shapes, public)
        CL.OracleSettler(tables).check(claims)
