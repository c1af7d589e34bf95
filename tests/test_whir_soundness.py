"""Soundness calculator of the WHIR-style commitment against the worked numbers of docs/whir.md."""

from __future__ import annotations

import math

import pytest

from blindproof.zk.commit.whir_soundness import (EXT_LOG2, PROFILES, WhirParams, analyze,
                                                 max_provable_log_size)
from blindproof.zk.proof.soundness import PROOF_FLOOR_BITS


def test_worked_example_2_16():
    """docs/whir.md, 'Worked example': m = 16, provable profile."""
    p = WhirParams.for_security(100, 16)
    assert p.queries == (245, 123, 107)
    assert (p.n_vars, p.folds, p.domain_logs, p.oracle_vars, p.final_vars) == (17, (4, 4, 4), (18, 16, 14),
                                                                                (17, 13, 9), 5)
    assert p.ood == 0 and p.hiding_symbols == 245 * 16  # unique decoding: no out-of-domain samples
    rep = p.soundness()
    t = rep.terms
    assert EXT_LOG2 == pytest.approx(123.63, abs=0.01)
    assert t["mask line (proximity gap)"] == pytest.approx(105.63, abs=0.01)  # N_0 = 2^18
    assert t["round 0 fold (proximity gap)"] == pytest.approx(105.72, abs=0.01)  # 2^18·15/16
    assert t["round 1 fold (proximity gap)"] == pytest.approx(107.72, abs=0.01)
    assert t["round 0 queries"] == pytest.approx(-245 * math.log2(0.75), abs=1e-9)  # 101.68
    assert t["round 1 queries"] == pytest.approx(-123 * math.log2(1 - (1 - 1 / 8) / 2), abs=1e-9)  # 102.10
    assert t["round 2 queries"] == pytest.approx(-107 * math.log2(1 - (1 - 1 / 32) / 2), abs=1e-9)  # 102.25
    assert t["round 0 sumcheck"] == pytest.approx(EXT_LOG2 - 3, abs=1e-9)  # 8 / |F|
    assert "initial ood" not in t
    with_ood = WhirParams.for_security(100, 16, ood=1).soundness()
    assert with_ood.terms["initial ood"] == math.inf  # unique decoding: nothing for a sample to separate
    assert rep.provable_bits == pytest.approx(100.32, abs=0.01)
    assert rep.conjectured_bits == pytest.approx(115.93, abs=0.01)
    total = sum(2.0 ** -v for v in t.values())
    assert rep.provable_bits == pytest.approx(-math.log2(total), abs=1e-9)


def test_conjectured_terms():
    p = WhirParams.for_security(100, 16, "conjectured")
    assert p.ood == 2 and p.queries == (102, 34, 21)
    rep = p.soundness()
    c = rep.conjectured_terms
    assert c["round 0 queries"] == pytest.approx(102.0)  # ρ = 1/2: one bit per query
    assert c["round 1 queries"] == pytest.approx(34 * 3)
    assert c["mask line (proximity gap)"] == pytest.approx(EXT_LOG2 - 1)  # ℓ/|F| with ℓ = 1/ρ = 2
    assert rep.conjectured_bits >= 100 > rep.provable_bits


@pytest.mark.parametrize("m", range(0, 21))
def test_default_reaches_100_provable_bits_up_to_2_20(m):
    p = WhirParams.for_security(100, m)
    rep = p.soundness()
    assert rep.provable_bits >= PROOF_FLOOR_BITS
    assert rep.conjectured_bits >= rep.provable_bits
    # every query term counts: one query fewer anywhere lowers the figure
    for i in range(len(p.queries)):
        q = list(p.queries)
        q[i] -= 1
        weaker = WhirParams(p.log_size, tuple(q), p.folding, p.blowup, p.shrink, p.final_log, p.ood,
                            p.profile, p.security_bits)
        assert weaker.soundness().provable_bits < rep.provable_bits


@pytest.mark.parametrize("m", range(21, 27))
def test_degree_4_challenges_refuse_past_the_field_cap(m):
    with pytest.raises(ValueError, match="larger extension field" if m < 26 else "two-adicity|2\\^27"):
        WhirParams.for_security(100, m, ext_degree=4)
    assert max_provable_log_size(ext_degree=4) == 20


@pytest.mark.parametrize("m", range(21, 26))
def test_degree_8_challenges_reach_100_provable_bits_up_to_2_25(m):
    p = WhirParams.for_security(100, m)  # falls back to the degree-8 extension
    assert p.ext_degree == 8
    rep = p.soundness()
    assert rep.provable_bits >= PROOF_FLOOR_BITS
    # the field terms no longer cap it: the largest left are the degree-4 combination challenges
    assert rep.terms["mask line (proximity gap)"] > 200
    assert min(v for k, v in rep.terms.items() if "queries" not in k) > 120
    assert max_provable_log_size() == 25  # N_0 = 2^27 at 2^25: BabyBear's two-adicity


def test_degree_8_worked_example_2_22():
    """docs/whir.md: 2^22 in the provable profile with degree-8 folding challenges."""
    p = WhirParams.for_security(100, 22)
    assert (p.ext_degree, p.n_vars, p.folds, p.domain_logs) == (8, 23, (4, 4, 4, 4), (24, 22, 20, 18))
    rep = p.soundness()
    assert p.masks == 8  # one mask with challenge-field values: 8 base rows
    assert rep.terms["mask line (proximity gap)"] == pytest.approx(2 * EXT_LOG2 - 24, abs=1e-9)  # one line: N_0
    assert rep.terms["round 0 queries"] == pytest.approx(-p.queries[0] * math.log2(0.75), abs=1e-9)
    assert 100 <= rep.provable_bits < 101
    assert rep.provable_bits == pytest.approx(100.29, abs=0.01)
    assert rep.conjectured_bits == pytest.approx(122.04, abs=0.01)


def test_conjectured_profile_reaches_2_25():
    for m in (21, 22, 24, 25):
        p = WhirParams.for_security(100, m, "conjectured")
        assert p.soundness().conjectured_bits >= 100
    with pytest.raises(ValueError):
        WhirParams.for_security(100, 26, "conjectured")  # N_0 = 2^28: past BabyBear's two-adicity


def test_field_cap_formula():
    """Field terms of the provable figure ≈ (N_0 [mask line] + Σ_i N_i·(1 − 2^-k) [folds]) / |F|."""
    p = WhirParams.for_security(100, 20)
    rep = analyze(p)
    n = [2.0 ** d for d in p.domain_logs]
    approx = (n[0] + sum(x * (1 - 2.0 ** -p.folding) for x in n)) * 2.0 ** -EXT_LOG2
    assert rep.provable_field_error == pytest.approx(approx, rel=1e-3)


def test_refusals_and_validation():
    with pytest.raises(ValueError, match="at least"):
        WhirParams.for_security(90, 10, "provable")
    with pytest.raises(ValueError):
        WhirParams.for_security(100, 10, "hopeful")
    with pytest.raises(ValueError):
        WhirParams(10, (5, 5, 5))  # one query count per oracle (this shape has one oracle)
    with pytest.raises(ValueError):
        WhirParams(10, (10, 10), folding=2)  # hiding needs k ≥ 3
    with pytest.raises(ValueError):
        WhirParams(10, (0, 10))
    assert set(PROFILES) == {"provable", "conjectured"}


def test_more_claims_do_not_change_the_figures():
    p = WhirParams.for_security(100, 12)
    assert analyze(p, 1).provable_bits == analyze(p, 4096).provable_bits  # independent α per claim
