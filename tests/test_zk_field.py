"""BabyBear and its quartic extension against galois as an independent oracle."""

from __future__ import annotations

import galois
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blindproof.zk.field import babybear as F

P = F.P
elems = st.integers(min_value=0, max_value=P - 1)
nonzero = st.integers(min_value=1, max_value=P - 1)
ext_elems = st.lists(elems, min_size=4, max_size=4)


# Primitive elements are given (31 for F_p, x + 8 for F_p^4, as galois finds them) because searching
# for them costs galois tens of seconds; arithmetic does not depend on them.
@pytest.fixture(scope="module")
def gf():
    return galois.GF(P, primitive_element=F.GENERATOR, verify=False)


@pytest.fixture(scope="module")
def gf4(gf):
    poly = galois.Poly([1, 0, 0, 0, P - F.W], field=gf)
    return galois.GF(P ** 4, irreducible_poly=poly, primitive_element=8 + P, verify=False)


def to_int(e) -> int:
    """Our (c0, c1, c2, c3) as galois' integer c0 + c1 p + c2 p^2 + c3 p^3."""
    return sum(int(c) * P ** i for i, c in enumerate(e))


def from_int(v: int) -> np.ndarray:
    return np.array([(int(v) // P ** i) % P for i in range(4)], dtype=np.uint32)


def test_constants():
    assert P == 15 * 2 ** 27 + 1
    g = F.GENERATOR
    for q in (2, 3, 5):  # p - 1 = 2^27 · 3 · 5
        assert pow(g, (P - 1) // q, P) != 1
    w = F.two_adic_generator(27)
    assert pow(w, 1 << 26, P) == P - 1 and pow(w, 1 << 27, P) == 1
    assert F.two_adic_generator(3) == pow(w, 1 << 24, P)
    # x^4 - W is irreducible iff W is a non-square and p ≡ 1 mod 4 (Lidl–Niederreiter, Thm 3.75)
    assert pow(F.W, (P - 1) // 2, P) == P - 1 and P % 4 == 1


@pytest.mark.slow
def test_extension_polynomial_irreducible_per_galois(gf):
    assert galois.Poly([1, 0, 0, 0, P - F.W], field=gf).is_irreducible()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(elems, elems), min_size=1, max_size=40))
def test_base_ops_match_galois(gf, pairs):
    a = np.array([x for x, _ in pairs], dtype=np.uint32)
    b = np.array([y for _, y in pairs], dtype=np.uint32)
    ga, gb = gf(a), gf(b)
    np.testing.assert_array_equal(F.add(a, b), np.array(ga + gb))
    np.testing.assert_array_equal(F.sub(a, b), np.array(ga - gb))
    np.testing.assert_array_equal(F.mul(a, b), np.array(ga * gb))
    np.testing.assert_array_equal(F.neg(a), np.array(-ga))
    assert int(F.dot(a, b)) == int(np.sum(ga * gb))


@settings(max_examples=100, deadline=None)
@given(st.lists(nonzero, min_size=1, max_size=30), st.integers(min_value=-(2 ** 40), max_value=2 ** 40))
def test_inverse_and_power_match_galois(gf, xs, e):
    a = np.array(xs, dtype=np.uint32)
    np.testing.assert_array_equal(F.inv(a), np.array(gf(a) ** -1))
    np.testing.assert_array_equal(F.batch_inv(a), np.array(gf(a) ** -1))
    np.testing.assert_array_equal(F.pow_(a, e), np.array(gf(a) ** e))


def test_zero_power_and_zero_inverse():
    z = np.zeros(3, dtype=np.uint32)
    np.testing.assert_array_equal(F.pow_(z, 0), np.ones(3, dtype=np.uint32))
    np.testing.assert_array_equal(F.pow_(z, P - 1), z)
    with pytest.raises(F.FieldError, match="zero"):
        F.inv(np.array([3, 0], dtype=np.uint32))
    with pytest.raises(F.FieldError, match="index 1"):
        F.batch_inv(np.array([3, 0], dtype=np.uint32))
    with pytest.raises(F.FieldError, match="negative"):
        F.pow_(z, -1)


@settings(max_examples=200, deadline=None)
@given(ext_elems, ext_elems)
def test_extension_ops_match_galois(gf4, xa, xb):
    a, b = np.array(xa, dtype=np.uint32), np.array(xb, dtype=np.uint32)
    ga, gb = gf4(to_int(a)), gf4(to_int(b))
    np.testing.assert_array_equal(F.emul(a, b), from_int(ga * gb))
    np.testing.assert_array_equal(F.eadd(a, b), from_int(ga + gb))
    np.testing.assert_array_equal(F.esub(a, b), from_int(ga - gb))
    np.testing.assert_array_equal(F.eneg(a), from_int(-ga))
    if any(xa):
        np.testing.assert_array_equal(F.einv(a), from_int(ga ** -1))
    np.testing.assert_array_equal(F.epow(a, 5), from_int(ga ** 5))


@settings(max_examples=50, deadline=None)
@given(st.lists(ext_elems, min_size=1, max_size=8), st.lists(elems, min_size=8, max_size=8))
def test_extension_vector_ops_match_galois(gf4, xs, bs):
    e = np.array(xs, dtype=np.uint32)
    b = np.array(bs[: len(xs)], dtype=np.uint32)
    ge = [gf4(to_int(x)) for x in e]
    want_scale = np.stack([from_int(g * gf4(int(s))) for g, s in zip(ge, b)])
    np.testing.assert_array_equal(F.escale(e, b), want_scale)
    total = gf4(0)
    for g, s in zip(ge, b):
        total = total + g * gf4(int(s))
    np.testing.assert_array_equal(F.edot(e, b), from_int(total))
    sq = gf4(0)
    for g in ge:
        sq = sq + g * g
    np.testing.assert_array_equal(F.edot_ext(e, e), from_int(sq))
    if all(any(x) for x in xs):
        np.testing.assert_array_equal(F.ebatch_inv(e), F.einv(e))


def test_edot_matrix_and_broadcasting():
    rng = np.random.default_rng(1)
    e = F.erandom(rng, 5)
    m = F.random(rng, (5, 7))
    out = F.edot(e, m)
    assert out.shape == (7, 4)
    for c in range(7):
        np.testing.assert_array_equal(out[c], F.edot(e, m[:, c]))
    # broadcasting a single element against a vector
    one = F.erandom(rng)
    np.testing.assert_array_equal(F.emul(one, e), np.stack([F.emul(one, x) for x in e]))
    np.testing.assert_array_equal(F.mul(np.uint32(3), F.random(rng, 4)) .shape, (4,))


def test_signed_round_trip():
    x = np.array([-5, 0, 7, -(P // 2), P // 2], dtype=np.int64)
    np.testing.assert_array_equal(F.to_signed(F.from_signed(x)), x)
    assert F.from_signed(np.array([-1]))[0] == P - 1


def test_rejects_bad_inputs():
    with pytest.raises(F.FieldError, match="not below p"):
        F.add(np.array([P], dtype=np.uint32), np.array([1], dtype=np.uint32))
    with pytest.raises(F.FieldError, match="integer"):
        F.mul(np.array([1.5]), np.array([1]))
    with pytest.raises(F.FieldError, match="trailing axis"):
        F.emul(np.zeros(3, dtype=np.uint32), np.zeros(3, dtype=np.uint32))
    with pytest.raises(F.FieldError, match="zero"):
        F.einv(F.ezero(2))
    with pytest.raises(F.FieldError, match="from_signed"):
        F.add(np.array([-1]), np.array([1]))


def test_random_is_canonical_and_spread():
    rng = np.random.default_rng(0)
    r = F.random(rng, 10000)
    assert r.dtype == np.uint32 and int(r.max()) < P
    assert int(r.max()) > P * 0.99
