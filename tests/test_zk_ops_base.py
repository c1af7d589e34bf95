"""Op framework gadgets: layout, claim reduction, zero-check, range checks, clamp, function lookups."""

import numpy as np
import pytest

from blindproof.zk.field import babybear as F
from blindproof.zk.iop import lookup as L
from blindproof.zk.iop import mle
from blindproof.zk.ops import base as B
from blindproof.zk.iop import claims as CL
from blindproof.zk.iop import layout as LAY
from blindproof.zk.iop.transcript import Transcript


def _contexts(values, strict=True):
    shapes = {k: tuple(np.shape(v)) for k, v in values.items()}
    pc = B.ProverContext(Transcript(b"test"), None, shapes, values=values, strict=strict)
    vc = B.VerifierContext(Transcript(b"test"), None, shapes)
    return pc, vc


def _roundtrip(values, prove, verify, strict=True):
    """Run prove/verify through bytes and settle with the oracle; returns (ok, reason)."""
    pc, vc = _contexts(values, strict)
    proof = B.OpProof()
    prove(pc, proof)
    try:
        rd = B.ProofReader(B.OpProof.from_bytes(proof.to_bytes()))
        claims = verify(vc, rd)
        rd.done()
        CL.OracleSettler({k: LAY.canonical(v) for k, v in values.items()}).check(claims)
    except CL.Reject as exc:
        return False, str(exc)
    return True, ""


def test_canonical_layout_and_indicator():
    x = np.arange(15).reshape(3, 5) - 7
    t = LAY.canonical(x)
    assert t.shape == (32,) and LAY.n_vars(x.shape) == 5
    assert F.to_signed(t.reshape(4, 8)[:3, :5]).tolist() == x.tolist()
    assert not t.reshape(4, 8)[3].any() and not t.reshape(4, 8)[:, 5:].any()
    rng = np.random.default_rng(1)
    pt = F.erandom(rng, 5)
    assert np.array_equal(LAY.indicator_eval((3, 5), pt), mle.evaluate(LAY.indicator_table((3, 5)), pt))
    for d in range(1, 9):
        p3 = F.erandom(rng, 3)
        want = mle.evaluate(np.array([1] * d + [0] * (8 - d), dtype=np.uint32), p3)
        assert np.array_equal(LAY.prefix_ones_eval(d, p3), want)


def test_claim_reduction_complete_and_sound():
    rng = np.random.default_rng(2)
    q = rng.integers(-100, 100, size=(4, 6))
    pc, vc = _contexts({"q": q})
    claims = [B.claim_of(pc, "q", F.erandom(rng, 5)) for _ in range(3)]
    proof = B.OpProof()
    c = B.prove_reduce(pc, proof, claims)
    d = B.verify_reduce(vc, B.ProofReader(proof), claims)
    assert c.same(d)
    CL.OracleSettler({"q": LAY.canonical(q)}).check([d])
    # one wrong input claim: the reduced claim no longer matches the tensor
    bad = claims[:2] + [CL.Claim("q", claims[2].point, F.eadd(claims[2].value, F.eone()))]
    pc, vc = _contexts({"q": q})
    proof = B.OpProof()
    B.prove_reduce(pc, proof, bad)
    with pytest.raises(CL.Reject):
        d = B.verify_reduce(vc, B.ProofReader(proof), bad)
        CL.OracleSettler({"q": LAY.canonical(q)}).check([d])


def test_zero_check_rejects_nonzero_product():
    rng = np.random.default_rng(3)
    a, b = rng.integers(-50, 50, size=(2, 8, 4))
    for c, ok in ((a * b, True), (a * b + (np.arange(32).reshape(8, 4) == 7), False)):
        vals = {"a": a, "b": b, "c": c}

        def prove(pc, proof):
            B.prove_zero_check(pc, proof, 5, [pc.table(n) for n in "abc"], [(1, (0, 1)), (F.P - 1, (2,))])

        def verify(vc, rd):
            pt, v = B.verify_zero_check(vc, rd, 5, 3, [(1, (0, 1)), (F.P - 1, (2,))])
            return [CL.Claim(n, pt, x) for n, x in zip("abc", v)]

        assert _roundtrip(vals, prove, verify)[0] is ok


@pytest.mark.parametrize("limb_bits", [16, 8, 5])
@pytest.mark.parametrize("lo,hi", [(0, 255), (-32767, 32767), (5, 70000), (0, (1 << 30) - 1), (-3, 3)])
def test_range_check_complete(lo, hi, limb_bits):
    rng = np.random.default_rng(4)
    v = rng.integers(lo, hi + 1, size=(3, 7))
    v[0, 0], v[0, 1] = lo, hi
    rc = B.RangeCheck("v~rc", "v", v.shape, lo, hi, limb_bits=limb_bits)
    chk = B.Checks("v~k", ranges=[rc])
    vals = {"v": v}
    vals.update(chk.witness(lambda n: vals[n]))
    ok, why = _roundtrip(vals, chk.prove, chk.verify)
    assert ok, why


@pytest.mark.parametrize("limb_bits", [16, 8])
@pytest.mark.parametrize("lo,hi,bad", [(0, 255, 256), (0, 255, -1), (-32767, 32767, 32768),
                                        (-32767, 32767, -32768), (5, 70000, 4), (5, 70000, 70001)])
def test_range_check_rejects_out_of_range(lo, hi, bad, limb_bits):
    v = np.full((2, 4), lo, dtype=np.int64)
    v[1, 2] = bad
    rc = B.RangeCheck("v~rc", "v", v.shape, lo, hi, limb_bits=limb_bits)
    chk = B.Checks("v~k", ranges=[rc])
    with pytest.raises(ValueError):
        chk.witness(lambda n: v)
    # a cheating prover: limbs recompose the value over the integers, the top limb takes the excess
    # (out of its table); multiplicities count only the rows that are in the table
    vals = {"v": v}
    vals.update(chk.witness(lambda n: vals[n], strict=False))
    ok, _ = _roundtrip(vals, chk.prove, chk.verify, strict=False)
    assert not ok


def _clamp_case(q, out, lo=-100, hi=100, limb_bits=16):
    cl = B.Clamp("o~c", "q", "o", q.shape, lo, hi, 1 << 12, limb_bits)
    chk = B.Checks("o~k", ranges=cl.ranges())
    vals = {"q": q, "o": out}
    vals.update(cl.witness(q))
    return cl, chk, vals


def _clamp_roundtrip(cl, chk, vals, strict=True):
    def prove(pc, proof):
        cl.prove(pc, proof)
        chk.prove(pc, proof)

    def verify(vc, rd):
        return cl.verify(vc, rd) + chk.verify(vc, rd)

    return _roundtrip(vals, prove, verify, strict)


def test_clamp_complete():
    q = np.random.default_rng(5).integers(-300, 300, size=(4, 5))
    cl, chk, vals = _clamp_case(q, np.clip(q, -100, 100))
    vals.update(chk.witness(lambda n: vals[n]))
    ok, why = _clamp_roundtrip(cl, chk, vals)
    assert ok, why


@pytest.mark.parametrize("limb_bits", [16, 8])
@pytest.mark.parametrize("cheat", ["below_hi", "unclamped_low", "both_sides"])
def test_clamp_rejects_cheats(cheat, limb_bits):
    q = np.array([[150, 20, -7, -250]])
    out = np.clip(q, -100, 100)
    cl, chk, vals = _clamp_case(q, out, limb_bits=limb_bits)
    if cheat == "below_hi":  # claim 90 for q = 150, with d+ = 60 so the linear relation holds
        vals["o"] = out.copy()
        vals["o"][0, 0] = 90
        vals[cl.dpos] = np.maximum(q - vals["o"], 0) * (q > 100)
    elif cheat == "unclamped_low":  # out = q below lo; d = 0
        vals["o"] = out.copy()
        vals["o"][0, 3] = -250
        vals[cl.dneg] = np.zeros_like(q)
    else:  # out in the middle, both excesses non-zero
        vals["o"] = out.copy()
        vals["o"][0, 1] = 0
        vals[cl.dpos] = vals[cl.dpos].copy()
        vals[cl.dneg] = vals[cl.dneg].copy()
        vals[cl.dpos][0, 1] = 30
        vals[cl.dneg][0, 1] = 10
    vals.update(chk.witness(lambda n: vals[n], strict=False))
    ok, _ = _clamp_roundtrip(cl, chk, vals, strict=False)
    assert not ok


def _silu_table():
    x = np.arange(-8, 8)
    y = np.round(x / (1 + np.exp(-x / 4.0))).astype(np.int64)
    return L.LookupTable.function("silu-test", F.from_signed(x), F.from_signed(y)), dict(zip(x, y))


def test_function_lookup_complete_and_rejects_wrong_output():
    table, f = _silu_table()
    rng = np.random.default_rng(6)
    x = rng.integers(-8, 8, size=(3, 6))
    y = np.vectorize(f.get)(x)
    for yy, ok in ((y, True), (np.where(np.arange(18).reshape(3, 6) == 4, y + 1, y), False)):
        fl = B.FunctionLookup(("x", "y"), x.shape, table)
        chk = B.Checks("y~k", functions=[fl])
        vals = {"x": x, "y": yy}
        if ok:
            vals.update(chk.witness(lambda n: vals[n]))
        else:
            good = {"x": x, "y": y}
            vals.update(chk.witness(lambda n: good[n]))
        assert _roundtrip(vals, chk.prove, chk.verify, strict=ok)[0] is ok


def test_proof_bytes_tampering_rejected():
    q = np.random.default_rng(7).integers(-300, 300, size=(2, 3))
    cl, chk, vals = _clamp_case(q, np.clip(q, -100, 100))
    vals.update(chk.witness(lambda n: vals[n]))
    pc, _ = _contexts(vals)
    proof = B.OpProof()
    cl.prove(pc, proof)
    chk.prove(pc, proof)
    data = proof.to_bytes()
    settler = CL.OracleSettler({k: LAY.canonical(v) for k, v in vals.items()})
    rng = np.random.default_rng(8)
    positions = rng.choice(len(data), size=40, replace=False)
    for pos in positions:
        bad = bytearray(data)
        bad[pos] ^= 1 << int(rng.integers(8))
        _, vc = _contexts(vals)
        try:
            rd = B.ProofReader(B.OpProof.from_bytes(bytes(bad)))
            claims = cl.verify(vc, rd) + chk.verify(vc, rd)
            rd.done()
            settler.check(claims)
        except (CL.Reject, ValueError):
            continue
        raise AssertionError(f"flipping a bit at byte {pos} was accepted")
