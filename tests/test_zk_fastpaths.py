"""The small-operand fast paths (single extension elements on Python ints, one-kernel eq evaluation,
the lookup's claim combinations, sumcheck composition) agree with the general array paths, and still
reject non-canonical input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blindproof.zk.field import babybear as F
from blindproof.zk.iop import lookup as L
from blindproof.zk.iop import mle
from blindproof.zk.iop import sumcheck as S
from blindproof.zk.iop.transcript import Transcript

P = F.P
ext_elems = st.lists(st.integers(min_value=0, max_value=P - 1), min_size=4, max_size=4)


def _general(op, a, b):
    """The same operation through the broadcasting (1, 4) path, which takes no fast path."""
    return op(a[None, :], b[None, :])[0]


@settings(max_examples=200, deadline=None)
@given(ext_elems, ext_elems)
def test_scalar_ops_match_the_array_path(a, b):
    a, b = np.array(a, dtype=np.uint32), np.array(b, dtype=np.uint32)
    for op in (F.emul, F.eadd, F.esub):
        fast = op(a, b)
        assert fast.dtype == np.uint32 and fast.shape == (4,)
        assert np.array_equal(fast, _general(op, a, b))
        assert fast is not a and fast is not b


@pytest.mark.parametrize("op", [F.emul, F.eadd, F.esub])
def test_scalar_ops_still_reject_non_canonical_input(op):
    good = np.array([1, 2, 3, 4], dtype=np.uint32)
    bad = np.array([1, P, 3, 4], dtype=np.uint32)
    with pytest.raises(F.FieldError):
        op(good, bad)
    with pytest.raises(F.FieldError):
        op(bad, good)
    with pytest.raises(F.FieldError):
        op(good, np.array([1, 2, 3], dtype=np.uint32))
    assert np.array_equal(op([1, 2, 3, 4], good), op(good, good))  # lists take the general path


def _eq_reference(a, b):
    out = F.eone()
    for x, y in zip(a, b):
        ab = _general(F.emul, x, y)
        out = _general(F.emul, out, F.eadd(F.esub(F.esub(F.eadd(ab, ab), x), y), F.eone()))
    return out


@pytest.mark.parametrize("n", [0, 1, 5, 20])
def test_eq_eval_matches_the_product_formula(n):
    rng = np.random.default_rng(n)
    a, b = F.erandom(rng, n), F.erandom(rng, n)
    assert np.array_equal(mle.eq_eval(a, b), _eq_reference(a, b))
    base = F.random(rng, n)
    assert np.array_equal(mle.eq_eval(base, b), _eq_reference(F.embed(base), b))
    if n:
        assert np.array_equal(mle.eq_eval(a, b), mle.evaluate(mle.eq_table(a), b))
        bad = a.copy()
        bad[0, 0] = P
        with pytest.raises(F.FieldError):
            mle.eq_eval(bad, b)


def test_lookup_claim_combinations_match_the_array_formulas():
    """The lookup's per-layer kernels (claim combination, composition, next claims) take canonical
    values (validated where they enter: roots, round and final values); they agree with the array
    formulas."""
    rng = np.random.default_rng(7)
    claims = [(F.erandom(rng), F.erandom(rng)) for _ in range(5)]
    active = [0, 2, 3]
    lam, mu = F.erandom(rng), F.erandom(rng)
    total, coeff = F.ezero(), F.eone()
    for i in active:
        for v in claims[i]:
            total = _general(F.eadd, total, _general(F.emul, coeff, v))
            coeff = _general(F.emul, coeff, lam)
    arr = np.stack([np.stack(c) for c in claims])  # (trees, 2, 4)
    assert L._combine(arr, np.array(active), lam) == tuple(total.tolist())
    finals = F.erandom(rng, 1 + 4 * len(active))
    nxt = L._next_claims_kernel(finals, mu)
    for t, i in enumerate(active):
        p0, p1, q0, q1 = finals[1 + 4 * t: 5 + 4 * t]
        assert np.array_equal(nxt[t, 0], F.eadd(p0[None], F.emul(mu[None], F.esub(p1[None], p0[None])))[0])
        assert np.array_equal(nxt[t, 1], F.eadd(q0[None], F.emul(mu[None], F.esub(q1[None], q0[None])))[0])
    # compose: eq · Σ_t λ^{2t} (p0 q1 + p1 q0 + λ q0 q1)
    want, c = F.ezero(), F.eone()
    for t in range(len(active)):
        p0, p1, q0, q1 = finals[1 + 4 * t: 5 + 4 * t]
        term = F.eadd(F.eadd(F.emul(p0, q1), F.emul(p1, q0)), F.emul(lam, F.emul(q0, q1)))
        want = F.eadd(want, F.emul(c, term))
        c = F.emul(c, F.emul(lam, lam))
    want = F.emul(finals[0], want)
    assert L._compose(finals, lam) == tuple(want.tolist())
    # a non-canonical value where the verifier reads it is a rejection, not a wrong answer
    st = L.LookupStatement(L.LookupTable.range(2), ("w",), (1,))
    depth = st.all_tree_logs()[0]
    layers = [L.S.SumcheckProof(np.zeros((k, 3, 4), np.uint32), np.zeros((5, 4), np.uint32)) for k in range(depth)]
    proof = L.LookupProof(np.zeros((1, 4), dtype=np.uint32), layers, [np.zeros((1, 4), np.uint32)],
                          np.zeros((1, 4), np.uint32))
    proof.root_q[0, 0] = P
    res = L.verify(st, proof, Transcript(b"t"))
    assert not res.ok and "below p" in res.reason


def test_compose_matches_the_general_path():
    rng = np.random.default_rng(3)
    spec = S.SumcheckSpec.make(2, 4, [(F.erandom(rng), (0, 1, 3)), (5, (2,)), (F.erandom(rng), (1, 1))])
    values = F.erandom(rng, 4)
    as_list = [v for v in values]  # a list takes the array path
    assert np.array_equal(spec.compose(values), spec.compose(as_list))
    bad = values.copy()
    bad[2, 1] = P
    with pytest.raises(F.FieldError):
        spec.compose(bad)
