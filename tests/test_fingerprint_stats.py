"""Binomial tails, confidence bounds, test design and the sequential test."""

from fractions import Fraction
from math import comb

import pytest

from blindproof.fingerprint.stats import (SequentialTest, binom_cdf, binom_sf, design_test, lower_bound,
                                          upper_bound)


def _exact_sf(k, n, p):
    p = Fraction(p)
    return float(sum(comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(max(k, 0), n + 1)))


@pytest.mark.parametrize("n,p", [(10, 0.2), (40, 0.01), (200, 0.5), (64, 0.999)])
def test_tails_match_exact_rational_sums(n, p):
    for k in range(0, n + 2, max(1, n // 7)):
        assert binom_sf(k, n, p) == pytest.approx(_exact_sf(k, n, p), rel=1e-9, abs=1e-300)
        assert binom_cdf(k, n, p) == pytest.approx(1 - _exact_sf(k + 1, n, p), rel=1e-9, abs=1e-12)


def test_tiny_tails_stay_accurate():
    assert binom_sf(40, 40, 0.5) == pytest.approx(2.0**-40, rel=1e-9)


def test_clopper_pearson_bounds():
    assert upper_bound(0, 1000, 0.95) == pytest.approx(1 - 0.05 ** (1 / 1000), rel=1e-6)
    assert lower_bound(1000, 1000, 0.95) == pytest.approx(0.05 ** (1 / 1000), rel=1e-6)
    lo, hi = lower_bound(30, 100, 0.975), upper_bound(30, 100, 0.975)
    assert 0.2 < lo < 0.3 < hi < 0.4
    assert binom_sf(30, 100, lo) == pytest.approx(0.025, rel=1e-4)


def test_design_meets_targets_and_is_minimal():
    for p0, p1 in [(0.007, 1.0), (0.007, 0.3), (0.0, 0.05), (0.01, 0.6)]:
        d = design_test(p0, p1, 2.0**-40, 2.0**-40)
        assert d.false_positive <= 2.0**-40 and d.miss <= 2.0**-40
        assert binom_sf(d.k, d.n, p0) == pytest.approx(d.false_positive, rel=1e-6, abs=1e-300)
        assert not _feasible_below(d.n, p0, p1)


def _feasible_below(n: int, p0: float, p1: float, target: float = 2.0**-40) -> bool:
    """Brute force: does any m < n with any threshold meet both targets? (exact log-space tails)"""
    from blindproof.fingerprint.stats import _best_threshold
    return any(k is not None and miss <= target for k, _, miss in (_best_threshold(m, p0, p1, target)
                                                                   for m in range(1, n)))


def test_design_is_the_smallest_n_beyond_256():
    """Every n is tried: sizes above 256 are exact too (a 2 % stepping once gave 280 where 276 suffice)."""
    for p0, p1 in [(0.0069, 0.2), (0.0069, 0.228)]:
        d = design_test(p0, p1, 2.0**-40, 2.0**-40)
        assert d.n > 256 and not _feasible_below(d.n, p0, p1)
        assert binom_sf(d.k, d.n, p0) <= 2.0**-40 and binom_cdf(d.k - 1, d.n, p1) <= 2.0**-40


def test_design_rejects_inseparable_rates():
    with pytest.raises(ValueError, match="must exceed"):
        design_test(0.3, 0.2, 0.01, 0.01)
    with pytest.raises(ValueError, match="probability"):
        design_test(-0.1, 0.5, 0.01, 0.01)
    with pytest.raises(ValueError, match="fp_target"):
        design_test(0.01, 0.5, 0.0, 0.01)


def test_sequential_test_decides_both_ways():
    t = SequentialTest(0.01, 0.5, 1e-6, 1e-6)
    while t.state == "undecided":
        t.observe(True)
    assert t.state == "mismatch" and t.trials < 10
    t = SequentialTest(0.01, 0.5, 1e-6, 1e-6)
    while t.state == "undecided":
        t.observe(False)
    assert t.state == "match" and t.trials < 40
    fp, miss = t.bounds
    assert fp <= 1.1e-6 and miss <= 1.1e-6
    with pytest.raises(ValueError):
        SequentialTest(0.5, 0.5, 0.01, 0.01)
