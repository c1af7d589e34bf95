"""The zk proof that the committed first layer maps the published directions to zero (fingerprint/binding.py):
completeness and must-reject tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from blindproof.fingerprint import binding as FB
from blindproof.models.mlp import MLP
from blindproof.zk import quant
from blindproof.zk.commitment import CommitmentKey, commit_model

pytestmark = pytest.mark.timeout(240)


def _quantized(seed: int):
    torch.manual_seed(seed)
    model = MLP((64, 32, 32, 10))
    return quant.quantize(model, torch.randn(64, 64))


@pytest.fixture(scope="module")
def setup():
    qm = _quantized(0)
    com, state = commit_model(qm.spec, qm.weights, CommitmentKey.generate())
    w = FB.first_linear_weight(com)
    dirs = FB.published_directions(qm.weights[w])
    proof = FB.prove_binding(com, state, w, dirs)
    return qm, com, state, w, dirs, proof


def test_completeness(setup):
    qm, com, state, w, dirs, proof = setup
    assert w == "l0.acc.weight" and dirs.shape == (32, 64)
    assert not np.any(qm.weights[w] @ dirs.T)  # exact integer null vectors
    res = FB.verify_binding(com, w, dirs, proof)
    assert res.ok, res.reason
    few = FB.prove_binding(com, state, w, dirs[:3])  # any subset, one sumcheck per batch
    assert FB.verify_binding(com, w, dirs[:3], few).ok
    one = FB.prove_binding(com, state, w, dirs[5])
    assert FB.verify_binding(com, w, dirs[5:6], one).ok


def test_prover_refuses_a_direction_that_is_not_annihilated(setup):
    _, com, state, w, dirs, _ = setup
    bad = dirs.copy()
    bad[2, 0] += 1
    with pytest.raises(ValueError, match="direction 2"):
        FB.prove_binding(com, state, w, bad)


def test_rejects_a_weight_that_does_not_annihilate(setup):
    """A cheating prover runs the protocol anyway: one entry of W changed, the original's directions."""
    qm, _, _, w, dirs, _ = setup
    weights = {k: v.copy() for k, v in qm.weights.items()}
    weights[w][3, 7] += 1
    com2, state2 = commit_model(qm.spec, weights, CommitmentKey.generate())
    forged = FB.prove_binding(com2, state2, w, dirs, _check=False)
    res = FB.verify_binding(com2, w, dirs, forged)
    assert not res.ok and "sumcheck" in res.reason


def test_rejects_a_direction_outside_the_null_space(setup):
    _, com, state, w, dirs, _ = setup
    other = np.random.default_rng(1).integers(-3, 4, size=(2, 64))
    forged = FB.prove_binding(com, state, w, np.concatenate([dirs[:4], other]), _check=False)
    assert not FB.verify_binding(com, w, np.concatenate([dirs[:4], other]), forged).ok


def test_rejects_a_proof_against_another_commitment_or_statement(setup):
    qm, com, state, w, dirs, proof = setup
    same_weights, _ = commit_model(qm.spec, qm.weights, CommitmentKey.generate())  # other hiding randomness
    res = FB.verify_binding(same_weights, w, dirs, proof)
    assert not res.ok  # the statement names the commitment, so every challenge differs
    other = _quantized(1)
    com_o, _ = commit_model(other.spec, other.weights, CommitmentKey.generate())
    assert not FB.verify_binding(com_o, w, dirs, proof).ok
    assert not FB.verify_binding(com, w, dirs[:31], proof).ok  # other directions
    assert not FB.verify_binding(com, w, dirs[::-1].copy(), proof).ok
    assert not FB.verify_binding(com, w, dirs, proof, bound=100).ok
    res = FB.verify_binding(com, "l1.acc.weight", dirs, proof)
    assert not res.ok and "bad statement" in res.reason


def test_byte_flips_truncation_and_trailing_bytes(setup):
    _, com, _, w, dirs, proof = setup
    rng = np.random.default_rng(7)
    positions = np.unique(np.concatenate([np.arange(12), rng.integers(0, len(proof), 60)]))
    for pos in positions:
        bad = bytearray(proof)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        res = FB.verify_binding(com, w, dirs, bytes(bad))  # never raises
        assert not res.ok, f"flip at byte {pos} accepted"
    for bad in (proof[:-1], proof + b"\0", b"", proof[: len(proof) // 2]):
        assert not FB.verify_binding(com, w, dirs, bad).ok


def test_statement_errors(setup):
    _, com, state, w, dirs, _ = setup
    with pytest.raises(TypeError, match="integer"):
        FB.prove_binding(com, state, w, dirs.astype(np.float64))
    with pytest.raises(ValueError, match="zero"):
        FB.prove_binding(com, state, w, np.zeros((1, 64), dtype=np.int64))
    with pytest.raises(ValueError, match="too large"):
        FB.prove_binding(com, state, w, np.full((1, 64), 1 << 20, dtype=np.int64))
    with pytest.raises(ValueError, match="shape"):
        FB.prove_binding(com, state, w, dirs[:, :10])
    with pytest.raises(ValueError, match="no weight"):
        FB.prove_binding(com, state, "nope", dirs)
    other = _quantized(2)
    _, state_o = commit_model(other.spec, other.weights, CommitmentKey.generate())
    with pytest.raises(ValueError, match="does not belong"):
        FB.prove_binding(com, state_o, w, dirs)
