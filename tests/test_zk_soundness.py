"""Soundness calculator: anchor numbers, monotonicity, profiles, bad input."""

from __future__ import annotations

import math

import pytest

from blindproof.zk.proof import soundness as S
from blindproof.zk.commit.pcs import PcsParams, make_layout


def test_reference_query_counts_without_hiding():
    # rate 1/4, unique decoding: 148 queries give 100 bits, 189 give 128 (REFERENCES.md)
    q = lambda t: S.analyze(n_cols=4096, blowup=4, n_queries=t, hiding=0).query_bits_provable
    assert q(148) >= 100 > q(147)
    assert q(189) >= 128 > q(188)
    assert S.queries_for(100, n_cols=4096, blowup=4, hiding=False) == 148


def test_conjectured_counts_two_bits_per_query_at_rate_quarter():
    rep = S.analyze(n_cols=4096, blowup=4, n_queries=50, hiding=0)
    assert rep.query_bits_conjectured == pytest.approx(100.0)
    assert rep.conjectured_bits >= rep.provable_bits


def test_hiding_symbols_cost_queries():
    t = S.queries_for(100, n_cols=4096, blowup=4)
    assert t > 148
    rep = S.analyze(n_cols=4096, blowup=4, n_queries=t)
    assert rep.rate > 0.25 and rep.query_bits_provable >= 100


def test_field_term_caps_provable_bits():
    ext_bits = 4 * math.log2(S.BABYBEAR_P)
    rep = S.analyze(n_cols=4096, blowup=4, n_queries=400)
    assert rep.proximity_bits == pytest.approx(ext_bits - 14)
    assert rep.provable_bits <= rep.proximity_bits
    two = S.analyze(n_cols=4096, blowup=4, n_queries=400, proximity_tests=2)
    assert two.provable_bits > rep.provable_bits
    assert two.provable_bits < ext_bits  # Schwartz–Zippel terms remain


@pytest.mark.parametrize("log_n", [10, 16, 20, 24])
def test_default_layouts_reach_100_provable_bits(log_n):
    lay = make_layout(["x"], [log_n], PcsParams())
    assert lay.soundness(8).provable_bits >= 100


def test_security_128_profile():
    params = PcsParams.for_security(128)
    lay = make_layout(["x"], [20], params)
    rep = lay.soundness()
    assert rep.query_bits_provable >= 128 and rep.proximity_bits >= 128
    # the degree-4 extension (~2^123.6) caps the algebraic terms below 128: reported, not hidden
    assert 115 < rep.provable_bits < 124
    assert lay.n_queries > make_layout(["x"], [20], PcsParams()).n_queries


def test_monotone_in_queries():
    bits = [S.analyze(n_cols=1024, blowup=4, n_queries=t).query_bits_provable for t in (50, 100, 150)]
    assert bits[0] < bits[1] < bits[2]


@pytest.mark.parametrize("kwargs", [
    dict(n_cols=0, blowup=4, n_queries=10),
    dict(n_cols=64, blowup=1, n_queries=10),
    dict(n_cols=64, blowup=4, n_queries=0),
    dict(n_cols=64, blowup=4, n_queries=200),  # hiding symbols exceed the codeword
])
def test_bad_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        S.analyze(**kwargs)


def test_unreachable_target_raises():
    with pytest.raises(ValueError):
        S.queries_for(100, n_cols=16, blowup=2)
    with pytest.raises(ValueError):
        PcsParams(blowup=3)
