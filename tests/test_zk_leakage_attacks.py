"""The weight-recovery attacks of benchmarks/bench_zk_leakage.py run and recover a synthetic secret.

These check the attack code, not the protocol: they pass while the leak exists (the benchmark measures
it on real workloads). A commitment to one random table is opened several times, as the weight
commitment is by successive proofs; the three attacks must return exactly that table from what the
verifier sees, and must not claim success before they have enough equations.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from blindproof.zk.field import babybear as F
from blindproof.zk.commit import pcs
from blindproof.zk.iop import mle
from blindproof.zk.iop.transcript import Transcript

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_zk_leakage as L  # noqa: E402

LOG = 9  # one 512-entry secret table


def _openings(n: int, rng: np.random.Generator):
    """One commitment, ``n`` openings of one random claim each, seen as a verifier sees them."""
    secret = F.random(rng, 1 << LOG)
    com, state = pcs.commit({"w": secret}, pcs.PcsParams(security_bits=40.0), rng=rng)
    out = []
    for i in range(n):
        point = F.random(rng, 4 * LOG).reshape(LOG, 4)
        claim = pcs.Claim("w", point, mle.evaluate(secret, point))
        op = pcs.open_claims(state, [claim], Transcript(b"leak-test", bytes([i])))
        seen: dict = {}
        with L._capture_row_weights(seen):
            assert pcs.verify(com, [claim], op.to_bytes(), Transcript(b"leak-test", bytes([i])))
        out.append(L.Observation([pcs._claim_parts(claim)], op.positions, op.columns, seen["w"], seen["gamma"],
                                 op.u_eval, op.u_prox))
    return secret.astype(np.int64), com.layout, state.messages.astype(np.int64), out


@pytest.fixture(scope="module")
def case():
    return _openings(2 ** LOG // 4 + 2, np.random.default_rng(7))


def test_solver_recovers_and_rejects_inconsistency():
    rng = np.random.default_rng(1)
    x = rng.integers(0, L.P, (32, 2))
    s = L.ModpSolver(32, 2)
    a = rng.integers(0, L.P, (31, 32))
    s.add(a, L.matmul_mod(a, x))
    assert s.rank == 31
    with pytest.raises(ValueError, match="not determined"):
        s.solution()
    a = rng.integers(0, L.P, (3, 32))
    s.add(a, L.matmul_mod(a, x))
    assert np.array_equal(s.solution(), x)
    with pytest.raises(ValueError, match="inconsistent"):
        s.add(a[:1], (L.matmul_mod(a[:1], x) + 1) % L.P)


def test_interpolation_over_the_code_domain():
    rng = np.random.default_rng(2)
    from blindproof.zk.commit import reed_solomon as _rs
    coef = F.random(rng, 3 * 40).reshape(3, 40)
    code = _rs.encode_rows(coef, 128)
    pos = rng.choice(128, 40, replace=False)
    assert np.array_equal(L.interpolate_rows(L.code_points(128)[pos], code[:, pos]), coef)


def test_claimed_values_attack(case):
    secret, lay, _, obs = case
    res = L.attack_claims(obs, "w", LOG)
    assert res.progress[:3] == [4, 8, 12]  # four independent equations per claim
    assert res.proofs_needed == (1 << LOG) // 4
    assert np.array_equal(res.recovered, secret)
    short = L.attack_claims(obs[:res.proofs_needed - 1], "w", LOG)
    assert short.proofs_needed is None and short.recovered is None


def test_opened_columns_attack(case):
    secret, lay, messages, obs = case
    res = L.attack_columns(obs, lay)
    assert res.proofs_needed is not None and res.progress[-1] >= lay.n_cols + lay.n_queries
    assert np.array_equal(res.recovered, messages)  # every row: data and mask rows
    assert np.array_equal(L.unpack(lay, res.recovered[:lay.n_data_rows], "w"), secret)
    assert L.attack_columns(obs[:res.proofs_needed - 1], lay).recovered is None


def test_row_combination_attack(case):
    secret, lay, messages, obs = case
    res = L.attack_rows(obs, lay)
    per = 4 * (1 + lay.proximity_tests)
    assert res.proofs_needed == -(-lay.n_rows // per)
    assert np.array_equal(res.recovered, messages)
    assert np.array_equal(L.unpack(lay, res.recovered[:lay.n_data_rows], "w"), secret)


def test_fresh_commitments_defeat_the_column_attack():
    """The attack must fail where its premise fails: columns of different commitments (fresh hiding
    randomness each time) do not interpolate to one codeword."""
    rng = np.random.default_rng(3)
    pooled = []
    for _ in range(12):
        _, lay, _, obs = _openings(1, rng)
        pooled += obs
    with pytest.raises(ValueError):
        L.attack_columns(pooled, lay)
