"""The small-operand fast paths (single extension elements on Python ints, one-kernel eq evaluation,
the lookup's claim combinations, sumcheck composition) agree with the general array paths, and still
reject non-canonical input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blindproof.zk import field as F
from blindproof.zk import lookup as L
from blindproof.zk import mle
from blindproof.zk import sumcheck as S

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
    rng = np.random.default_rng(7)
    claims = [(F.erandom(rng), F.erandom(rng)) for _ in range(5)]
    active = [0, 2, 3]
    lam, mu = F.erandom(rng), F.erandom(rng)
    total, coeff = F.ezero(), F.eone()
    for i in active:
        for v in claims[i]:
            total = _general(F.eadd, total, _general(F.emul, coeff, v))
            coeff = _general(F.emul, coeff, lam)
    assert np.array_equal(L._combine(claims, active, lam), total)
    finals = F.erandom(rng, 1 + 4 * len(active))
    nxt = L._next_claims(claims, active, finals, mu)
    for t, i in enumerate(active):
        p0, p1, q0, q1 = finals[1 + 4 * t: 5 + 4 * t]
        assert np.array_equal(nxt[i][0], F.eadd(p0[None], F.emul(mu[None], F.esub(p1[None], p0[None])))[0])
        assert np.array_equal(nxt[i][1], F.eadd(q0[None], F.emul(mu[None], F.esub(q1[None], q0[None])))[0])
    assert nxt[1] is claims[1] and nxt[4] is claims[4]
    with pytest.raises(F.FieldError):
        L._combine([(np.array([P, 0, 0, 0], dtype=np.uint32), F.eone())], [0], lam)


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
