"""Sumchecks over randomized extensions ``T̂ = T̃ + x_s(1 − x_s)·c`` (blinding variable = the last one).

Completeness: the sum is unchanged, the final value is ``T̂(r)``, masks of degree 4 open. Soundness:
a blinder cannot absorb a wrong sum, and a final value inconsistent with the rounds is rejected.
"""

from __future__ import annotations

import numpy as np
import pytest

from blindproof.zk.field import babybear as F
from blindproof.zk.iop import mle
from blindproof.zk.iop import sumcheck as S
from blindproof.zk.iop.transcript import Transcript

N = 5


def _tables(rng):
    eq = mle.eq_table(F.random(rng, (N, 4)))
    x = F.random(rng, 1 << N)
    w = F.random(rng, (1 << N, 4))
    return eq, x, w


def _blinder(B: np.ndarray) -> S.Blinder:
    """c = B̃(r_{N-2}): the blinder's one extra variable is the round before the blinded one."""
    return S.Blinder(2, lambda pt: mle.evaluate(B, pt[N - 2:N - 1]))


def _hat(w: np.ndarray, B: np.ndarray, r: np.ndarray) -> np.ndarray:
    z = F.emul(r[-1], F.esub(F.eone(), r[-1]))
    return F.eadd(mle.evaluate(w, r), F.emul(z, mle.evaluate(B, r[N - 2:N - 1])))


@pytest.mark.parametrize("masked", [False, True])
def test_blinded_sum_completes_with_the_randomized_final_value(masked):
    rng = np.random.default_rng(1)
    eq, x, w = _tables(rng)
    B = F.random(rng, (2, 4))
    spec = S.SumcheckSpec.make(N, 3, [(1, (0, 1, 2))], blinded=[2])
    assert spec.degree == 4
    claim = S.hypercube_sum(spec, [eq, x, w])
    mask = S.MaskPolynomial.random(rng, N, spec.round_degrees) if masked else None
    out = S.prove(spec, [eq, x, w], claim, Transcript(b"t"), mask=mask, blinders=[_blinder(B)])
    res = S.verify(spec, claim, out.proof, Transcript(b"t"), masked=masked)
    assert res.ok, res.reason
    r = res.claims[0].point
    assert np.array_equal(res.claims[2].value, _hat(w, B, r))
    assert not np.array_equal(res.claims[2].value, mle.evaluate(w, r))
    assert np.array_equal(res.claims[1].value, mle.evaluate(x, r))
    if masked:
        assert np.array_equal(out.proof.mask_eval, mask.evaluate(r))
        table = mask.committed_table()
        opened = F.ezero()
        for _, pt, coef in S.mask_claim_terms("m", N, mask.degree, r):
            opened = F.eadd(opened, F.emul(coef, mle.evaluate(table, pt)))
        assert np.array_equal(opened, out.proof.mask_eval)


def test_a_blinder_cannot_absorb_a_wrong_sum():
    rng = np.random.default_rng(2)
    eq, x, w = _tables(rng)
    spec = S.SumcheckSpec.make(N, 3, [(1, (0, 1, 2))], blinded=[2])
    claim = F.eadd(S.hypercube_sum(spec, [eq, x, w]), F.eone())
    B = F.random(rng, (2, 4))
    out = S.prove(spec, [eq, x, w], claim, Transcript(b"t"), blinders=[_blinder(B)])
    assert not S.verify(spec, claim, out.proof, Transcript(b"t")).ok


def test_a_final_value_with_another_blinder_is_rejected():
    rng = np.random.default_rng(3)
    eq, x, w = _tables(rng)
    spec = S.SumcheckSpec.make(N, 3, [(1, (0, 1, 2))], blinded=[2])
    claim = S.hypercube_sum(spec, [eq, x, w])
    B = F.random(rng, (2, 4))
    out = S.prove(spec, [eq, x, w], claim, Transcript(b"t"), blinders=[_blinder(B)])
    r = out.point
    other = F.random(rng, (2, 4))
    out.proof.final_evals[2] = _hat(w, other, r)
    assert not S.verify(spec, claim, out.proof, Transcript(b"t")).ok


def test_an_unblinded_proof_does_not_verify_as_blinded_and_degrees_are_bounded():
    rng = np.random.default_rng(4)
    eq, x, w = _tables(rng)
    plain = S.SumcheckSpec.make(N, 3, [(1, (0, 1, 2))])
    blind = S.SumcheckSpec.make(N, 3, [(1, (0, 1, 2))], blinded=[2])
    claim = S.hypercube_sum(plain, [eq, x, w])
    out = S.prove(plain, [eq, x, w], claim, Transcript(b"t"))
    with pytest.raises(Exception):
        S.SumcheckProof.from_bytes(out.proof.to_bytes(plain), blind)
    with pytest.raises(ValueError, match="round degree"):  # 5 + 5 + 8 > 15
        S.SumcheckSpec.make(N, 3, [(1, (0, 1, 2))], blinded=[(0, N - 1, 3), (1, N - 1, 3), (2, N - 1, 6)])
    with pytest.raises(ValueError, match="blinders"):
        S.prove(blind, [eq, x, w], claim, Transcript(b"t"))


def test_a_blinder_in_a_middle_round():
    """x_s bound in round 2 of 5, its coefficient from round 1's challenge: the sum is unchanged and
    the final value is T̃(r) + r_2(1 − r_2)·B̃(r_1)."""
    rng = np.random.default_rng(5)
    eq, x, w = _tables(rng)
    B = F.random(rng, (2, 4))
    spec = S.SumcheckSpec.make(N, 3, [(1, (0, 1, 2))], blinded=[(2, 2)])
    claim = S.hypercube_sum(spec, [eq, x, w])
    bl = S.Blinder(2, lambda pt: mle.evaluate(B, pt[1:2]), 2)
    out = S.prove(spec, [eq, x, w], claim, Transcript(b"t"), blinders=[bl])
    res = S.verify(spec, claim, out.proof, Transcript(b"t"))
    assert res.ok, res.reason
    r = res.claims[0].point
    z = F.emul(r[2], F.esub(F.eone(), r[2]))
    assert np.array_equal(res.claims[2].value, F.eadd(mle.evaluate(w, r), F.emul(z, mle.evaluate(B, r[1:2]))))


def test_one_byte_form_even_degrees_are_not_listed():
    """A header that lists round degrees although they are all equal is a second byte form of the
    same proof: refused."""
    from blindproof.zk.field.encoding import ProofFormatError
    rng = np.random.default_rng(6)
    eq, x, w = _tables(rng)
    spec = S.SumcheckSpec.make(N, 3, [(1, (0, 1, 2))])
    out = S.prove(spec, [eq, x, w], S.hypercube_sum(spec, [eq, x, w]), Transcript(b"t"))
    data = bytearray(out.proof.to_bytes(spec))
    at = data.index(bytes([N, 3, 3, 0]))
    forged = bytes(data[:at + 3]) + bytes([1]) + bytes([3] * N) + bytes(data[at + 4:])
    with pytest.raises(ProofFormatError, match="all equal"):
        S.SumcheckProof.from_bytes(forged, spec)
    assert S.SumcheckProof.from_bytes(bytes(data), spec).final_evals.shape == (3, 4)


@pytest.mark.parametrize("masked", [False, True])
def test_a_blinder_of_degree_two_in_its_own_variable(masked):
    """c(x_s) = B̃(x_s, x_s) (a tensor with no variable above x_s): the round has degree 2 + 2 in that
    table, the sum is unchanged, the final value is T̃(r) + r_s(1 − r_s)·B̃(r_s, r_s); a final value
    with c at another point, or a spec without the self-degree, is rejected."""
    rng = np.random.default_rng(7)
    eq, x, w = _tables(rng)
    B = F.random(rng, (4, 4))
    spec = S.SumcheckSpec.make(N, 3, [(1, (0, 1, 2))], blinded=[(2, N - 1, 2)])
    assert spec.round_degrees == (3,) * (N - 1) + (6,)
    claim = S.hypercube_sum(spec, [eq, x, w])
    mask = S.MaskPolynomial.random(rng, N, spec.round_degrees) if masked else None
    bl = S.Blinder(2, lambda pt: mle.evaluate(B, np.stack([pt[N - 1], pt[N - 1]])), N - 1, self_degree=2)
    out = S.prove(spec, [eq, x, w], claim, Transcript(b"t"), mask=mask, blinders=[bl])
    res = S.verify(spec, claim, out.proof, Transcript(b"t"), masked=masked)
    assert res.ok, res.reason
    r = res.claims[0].point
    z = F.emul(r[-1], F.esub(F.eone(), r[-1]))
    want = F.eadd(mle.evaluate(w, r), F.emul(z, mle.evaluate(B, np.stack([r[-1], r[-1]]))))
    assert np.array_equal(res.claims[2].value, want)
    other = S.SumcheckSpec.make(N, 3, [(1, (0, 1, 2))], blinded=[(2, N - 1, 1)])
    assert not S.verify(other, claim, out.proof, Transcript(b"t"), masked=masked).ok
    forged = S.SumcheckProof.from_bytes(out.proof.to_bytes(spec), spec)
    if masked:
        forged.mask_sum, forged.mask_eval = out.proof.mask_sum, out.proof.mask_eval
    forged.final_evals[2] = F.eadd(mle.evaluate(w, r), F.emul(z, mle.evaluate(B, np.stack([r[-2], r[-1]]))))
    assert not S.verify(spec, claim, forged, Transcript(b"t"), masked=masked).ok
