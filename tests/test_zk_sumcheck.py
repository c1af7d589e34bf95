"""Sumcheck: completeness (degree 1–3, sums of terms, base/extension tables, masked) and soundness."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blindproof.zk.field import babybear as F
from blindproof.zk.iop import mle
from blindproof.zk.iop import sumcheck as S
from blindproof.zk.iop.transcript import Transcript


def tr() -> Transcript:
    return Transcript(b"test-sumcheck", b"statement")


def as_ext(v: np.ndarray) -> np.ndarray:
    return v if np.asarray(v).shape == (4,) else F.embed(v)


def instance(rng, n, kind):
    a, b, c = F.random(rng, 1 << n), F.random(rng, 1 << n), F.random(rng, 1 << n)
    if kind == "deg2":
        return [a, b], [(1, (0, 1))]
    if kind == "deg3":
        return [a, b, c], [(1, (0, 1, 2))]
    if kind == "mixed":  # extension tables, several terms of different degree, extension coefficients
        e = F.erandom(rng, 1 << n)
        return [a, b, e], [(3, (0, 1, 2)), (F.ext(1, 2, 3, 4), (1,)), (5, (2, 0)), (F.ext(0, 9), (1, 1))]
    raise ValueError(kind)


# --- multilinear toolkit -----------------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 4, 9])
def test_mle_evaluation_agrees_across_methods(n):
    rng = np.random.default_rng(n)
    t, te, pt = F.random(rng, 1 << n), F.erandom(rng, 1 << n), F.erandom(rng, n)
    np.testing.assert_array_equal(mle.evaluate(t, pt), mle.evaluate_by_eq(t, pt))
    np.testing.assert_array_equal(mle.evaluate(te, pt), mle.evaluate_by_eq(te, pt))
    # on hypercube points the MLE is the table (first coordinate = most significant bit)
    for idx in range(0, 1 << n, max(1, (1 << n) // 5)):
        bits = np.array([(idx >> (n - 1 - i)) & 1 for i in range(n)], dtype=np.uint32)
        assert int(mle.evaluate(t, bits)) == int(t[idx])
        np.testing.assert_array_equal(mle.eq_table(pt)[idx], mle.eq_eval(pt, F.embed(bits)))
    if n:
        np.testing.assert_array_equal(mle.evaluate(mle.fold(t, pt[0]), pt[1:]), mle.evaluate(t, pt))


def test_eq_table_sums_to_one_and_mle_rejects_bad_shapes():
    pt = F.erandom(np.random.default_rng(0), 6)
    total = np.sum(mle.eq_table(pt).astype(np.uint64), axis=0) % F.P
    np.testing.assert_array_equal(total, F.eone())
    with pytest.raises(ValueError, match="power of two"):
        mle.evaluate(np.zeros(6, dtype=np.uint32), F.ezero(3))
    with pytest.raises(ValueError, match="variables"):
        mle.evaluate(np.zeros(8, dtype=np.uint32), F.ezero(2))


def test_interpolation_matches_polynomial():
    rng = np.random.default_rng(3)
    coeffs = F.erandom(rng, 4)  # degree 3
    def poly(x):
        acc = F.ezero()
        for c in coeffs[::-1]:
            acc = F.eadd(F.emul(acc, x), c)
        return acc
    evals = np.stack([poly(F.ext(x)) for x in range(4)])
    r = F.erandom(rng)
    np.testing.assert_array_equal(S.interpolate(evals, r), poly(r))


# --- completeness ------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, kind, masked", list(itertools.product([0, 1, 5, 8], ["deg2", "deg3", "mixed"],
                                                                    [False, True])))
def test_completeness_and_claims(n, kind, masked):
    rng = np.random.default_rng(100 + n)
    tables, terms = instance(rng, n, kind)
    spec = S.SumcheckSpec.make(n, len(tables), terms)
    claim = S.hypercube_sum(spec, tables)
    mask = S.MaskPolynomial.random(rng, n, spec.degree) if masked else None
    out = S.prove(spec, tables, claim, tr(), mask)
    res = S.verify(spec, claim, out.proof, tr(), masked=masked)
    assert res.ok, res.reason
    for cl, t in zip(res.claims, tables):  # every claim is the true MLE value at the point
        np.testing.assert_array_equal(cl.value, as_ext(mle.evaluate(t, cl.point)))
    if masked:
        assert res.claims[-1].column == "mask"
        np.testing.assert_array_equal(res.claims[-1].value, mask.evaluate(res.claims[-1].point))
    # serialized round trip
    assert S.verify_bytes(spec, claim, out.proof.to_bytes(spec), tr(), masked=masked).ok
    assert not S.verify_bytes(spec, claim, out.proof.to_bytes(spec), tr(), masked=not masked).ok


def test_mask_polynomial_sum_weights_and_hiding():
    rng = np.random.default_rng(5)
    n, d = 4, 2
    mask = S.MaskPolynomial.random(rng, n, d)
    brute = F.ezero()
    for idx in range(1 << n):
        bits = F.embed(np.array([(idx >> (n - 1 - i)) & 1 for i in range(n)], dtype=np.uint32))
        brute = F.eadd(brute, mask.evaluate(bits))
    np.testing.assert_array_equal(mask.hypercube_sum(), brute)
    pt = F.erandom(rng, n)
    np.testing.assert_array_equal(_linear_value(mask, pt), mask.evaluate(pt))
    # the masked round messages differ from the unmasked ones for the same statement
    tables, terms = instance(rng, 6, "deg2")
    spec = S.SumcheckSpec.make(6, 2, terms)
    claim = S.hypercube_sum(spec, tables)
    plain = S.prove(spec, tables, claim, tr()).proof.round_evals
    masked = S.prove(spec, tables, claim, tr(), S.MaskPolynomial.random(rng, 6, 2)).proof.round_evals
    assert not np.any(np.all(plain == masked, axis=-1))


def test_mask_smuggled_into_an_unmasked_sumcheck_is_rejected():
    """A free mask value could fix any final check: an unmasked statement must refuse one."""
    rng = np.random.default_rng(13)
    tables, terms = instance(rng, 3, "deg2")
    spec = S.SumcheckSpec.make(3, 2, terms)
    claim = S.hypercube_sum(spec, tables)
    forged = S.prove(spec, tables, claim, tr(), S.MaskPolynomial.random(rng, 3, 2)).proof
    forged.final_evals[0, 0] = (int(forged.final_evals[0, 0]) + 1) % F.P
    assert not S.verify(spec, claim, forged, tr()).ok


def test_unmasked_proof_rejected_when_mask_required():
    rng = np.random.default_rng(6)
    tables, terms = instance(rng, 3, "deg2")
    spec = S.SumcheckSpec.make(3, 2, terms)
    claim = S.hypercube_sum(spec, tables)
    out = S.prove(spec, tables, claim, tr())
    assert not S.verify(spec, claim, out.proof, tr(), masked=True).ok


# --- soundness ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def honest():
    rng = np.random.default_rng(7)
    tables, terms = instance(rng, 6, "deg3")
    spec = S.SumcheckSpec.make(6, 3, terms)
    claim = S.hypercube_sum(spec, tables)
    return spec, tables, claim, S.prove(spec, tables, claim, tr()).proof


def copy_proof(p: S.SumcheckProof) -> S.SumcheckProof:
    return S.SumcheckProof(p.round_evals.copy(), p.final_evals.copy(),
                           None if p.mask_sum is None else p.mask_sum.copy(),
                           None if p.mask_eval is None else p.mask_eval.copy())


def test_rejects_wrong_claim(honest):
    spec, tables, claim, proof = honest
    assert S.verify(spec, claim, proof, tr()).ok
    res = S.verify(spec, F.eadd(claim, F.eone()), proof, tr())
    assert not res.ok and "final values" in res.reason
    # an honest proof of a wrong claim (the prover starts from the false sum) is rejected too
    bad = S.prove(spec, tables, F.eadd(claim, F.ext(0, 1)), tr()).proof
    assert not S.verify(spec, F.eadd(claim, F.ext(0, 1)), bad, tr()).ok


def test_rejects_every_tampered_round_value_and_final_value(honest):
    spec, _, claim, proof = honest
    for j, k, c in itertools.product(range(spec.n_vars), range(spec.degree), range(4)):
        p = copy_proof(proof)
        p.round_evals[j, k, c] = (int(p.round_evals[j, k, c]) + 1) % F.P
        assert not S.verify(spec, claim, p, tr()).ok
    for k in range(spec.n_tables):
        p = copy_proof(proof)
        p.final_evals[k, 0] = (int(p.final_evals[k, 0]) + 1) % F.P
        assert not S.verify(spec, claim, p, tr()).ok


def test_rejects_other_statement_and_transcript(honest):
    spec, _, claim, proof = honest
    assert not S.verify(spec, claim, proof, Transcript(b"test-sumcheck", b"other statement")).ok
    other = S.SumcheckSpec.make(spec.n_vars, spec.n_tables, [(2, (0, 1, 2))])
    assert not S.verify(other, claim, proof, tr()).ok


def test_byte_flips_never_accepted(honest):
    spec, _, claim, proof = honest
    data = proof.to_bytes(spec)
    rng = np.random.default_rng(8)
    positions = range(len(data)) if len(data) <= 600 else rng.choice(len(data), 600, replace=False)
    checked = 0
    for pos in positions:
        for bit in (0, 5):
            flipped = bytearray(data)
            flipped[pos] ^= 1 << bit
            res = S.verify_bytes(spec, claim, bytes(flipped), tr())  # must not raise
            assert not res.ok, f"flip at byte {pos} bit {bit} accepted"
            checked += 1
    assert checked >= 400
    assert not S.verify_bytes(spec, claim, data[:-1], tr()).ok
    assert not S.verify_bytes(spec, claim, data + b"\0", tr()).ok
    assert not S.verify_bytes(spec, claim, b"", tr()).ok


class SkippingTranscript(Transcript):
    """A deliberately broken transcript that forgets to absorb the claim and the round messages."""

    SKIP = {"sumcheck/claim", "sumcheck/round"}

    def absorb_ext(self, label, arr):
        if label not in self.SKIP:
            super().absorb_ext(label, arr)


def skipping() -> SkippingTranscript:
    return SkippingTranscript(b"test-sumcheck", b"statement")


def test_transcript_that_skips_messages_admits_a_forgery_the_real_one_rejects():
    rng = np.random.default_rng(9)
    tables, terms = instance(rng, 5, "deg2")
    spec = S.SumcheckSpec.make(5, 2, terms)
    true_claim = S.hypercube_sum(spec, tables)
    false_claim = F.eadd(true_claim, F.ext(12345))
    # With the broken transcript the challenges do not depend on what the prover sends, so the prover
    # learns r_0 first and bends round 0: g(X) = h(X) + c·(X - r_0) keeps g(r_0) = h(r_0) while
    # g(0) + g(1) = false_claim.
    honest = S.prove(spec, tables, true_claim, skipping())
    r0 = skipping_challenges(spec, true_claim)[0]
    delta = F.esub(false_claim, true_claim)
    c = F.emul(delta, F.einv(F.esub(F.eone(), F.eadd(r0, r0))))
    forged = copy_proof(honest.proof)
    h0 = honest.proof.round_evals[0]
    forged.round_evals[0, 0] = F.eadd(h0[0], F.emul(c, F.eneg(r0)))  # g(0)
    forged.round_evals[0, 1] = F.eadd(h0[1], F.emul(c, F.esub(F.ext(2), r0)))  # g(2)
    assert S.verify(spec, false_claim, forged, skipping()).ok  # the broken verifier is fooled
    res = S.verify(spec, false_claim, forged, tr())  # the real one is not
    assert not res.ok


def skipping_challenges(spec, claim):
    t = skipping()
    spec.absorb(t)
    return [t.challenge_ext("sumcheck/r") for _ in range(spec.n_vars)]


def test_prover_rejects_bad_inputs():
    rng = np.random.default_rng(10)
    spec = S.SumcheckSpec.make(3, 2, [(1, (0, 1))])
    with pytest.raises(ValueError, match="variables"):
        S.prove(spec, [F.random(rng, 8), F.random(rng, 16)], F.ezero(), tr())
    with pytest.raises(ValueError, match="tables"):
        S.prove(spec, [F.random(rng, 8)], F.ezero(), tr())
    with pytest.raises(ValueError, match="factors"):
        S.SumcheckSpec.make(3, 2, [(1, (0, 1, 1, 0))])
    with pytest.raises(ValueError, match="out of range"):
        S.SumcheckSpec.make(3, 2, [(1, (0, 2))])


@pytest.mark.parametrize("ext", [False, True])
def test_bind_prefix_and_suffix(ext):
    rng = np.random.default_rng(11)
    t = F.erandom(rng, 1 << 7) if ext else F.random(rng, 1 << 7)
    pt = F.erandom(rng, 7)
    pre = mle.bind_prefix(t, pt[:3])
    assert pre.shape == (16, 4)
    np.testing.assert_array_equal(mle.evaluate(pre, pt[3:]), as_ext(mle.evaluate(t, pt)))
    suf = mle.bind_suffix(t, pt[4:])
    assert suf.shape == (16, 4)
    np.testing.assert_array_equal(mle.evaluate(suf, pt[:4]), as_ext(mle.evaluate(t, pt)))
    with pytest.raises(ValueError, match="coordinates"):
        mle.bind_prefix(t, F.erandom(rng, 8))


def _linear_value(mask: S.MaskPolynomial, point: np.ndarray) -> np.ndarray:
    """What the PCS checks of the mask's linear claim: Σ coef · T̃(point) over its terms."""
    table = mask.committed_table()
    out = F.ezero()
    for name, pt, coef in S.mask_claim_terms("m", mask.n_vars, mask.degree, point):
        out = F.eadd(out, F.emul(coef, as_ext(mle.evaluate(table, pt))))
    return out


@pytest.mark.parametrize("n, d", [(1, 2), (5, 3), (8, 2), (3, 5)])
def test_mask_value_is_one_linear_claim_on_the_committed_table(n, d):
    rng = np.random.default_rng(12 + n)
    mask = S.MaskPolynomial.random(rng, n, d)
    point = F.erandom(rng, n)
    assert mask.coeffs.shape == (n, d + 1, 4) and mask.coeffs[..., 1:].any()  # extension coefficients
    np.testing.assert_array_equal(_linear_value(mask, point), mask.evaluate(point))
    assert len(S.mask_claim_terms("m", n, d, point)) == n  # one evaluation per variable
    other = S.MaskPolynomial(mask.coeffs.copy())
    other.coeffs[n - 1, 0, 2] ^= 1  # one coordinate of one coefficient: the claim no longer holds
    assert not np.array_equal(_linear_value(other, point), mask.evaluate(point))
    with pytest.raises(ValueError):
        S.mask_claim_terms("m", n + 1, d, point)


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_accepted_never_raise(data):
    spec = S.SumcheckSpec.make(4, 2, [(1, (0, 1))])
    res = S.verify_bytes(spec, F.ext(5), data, tr())
    assert not res.ok and res.reason


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 6), st.lists(st.tuples(st.integers(0, 2 ** 31), st.lists(st.integers(0, 3), min_size=1,
                                                                                max_size=3)),
                                   min_size=1, max_size=4), st.integers(0, 2 ** 32 - 1))
def test_completeness_for_random_specs(n, terms, seed):
    rng = np.random.default_rng(seed)
    tables = [F.random(rng, 1 << n) if k % 2 else F.erandom(rng, 1 << n) for k in range(4)]
    spec = S.SumcheckSpec.make(n, 4, [(c % F.P, tuple(f)) for c, f in terms])
    claim = S.hypercube_sum(spec, tables)
    out = S.prove(spec, tables, claim, tr())
    res = S.verify(spec, claim, out.proof, tr())
    assert res.ok, res.reason
    for cl, t in zip(res.claims, tables):
        np.testing.assert_array_equal(cl.value, as_ext(mle.evaluate(t, cl.point)))
