"""The zk proof that the committed first layer maps the published directions to zero (fingerprint/binding.py):
completeness and must-reject tests."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from blindproof.fingerprint import binding as FB
from blindproof.models.mlp import MLP
from blindproof.zk import quant
from blindproof.zk.commitment import CommitmentKey, commit_model

pytestmark = pytest.mark.timeout(240)


def _commit(spec, weights):
    """A fresh commitment whose opening state is charged to its key's ledger (a binding proof refuses a
    state without one; the suite's keys without a file count nothing, see conftest)."""
    key = CommitmentKey.generate()
    com, state = commit_model(spec, weights, key)
    state.ledger = key.ledger()
    return com, state


def _quantized(seed: int):
    torch.manual_seed(seed)
    model = MLP((64, 32, 32, 10))
    return quant.quantize(model, torch.randn(64, 64))


@pytest.fixture(scope="module")
def setup():
    qm = _quantized(0)
    com, state = _commit(qm.spec, qm.weights)
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
    com2, state2 = _commit(qm.spec, weights)
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
    same_weights, _ = _commit(qm.spec, qm.weights)  # other hiding randomness
    res = FB.verify_binding(same_weights, w, dirs, proof)
    assert not res.ok  # the statement names the commitment, so every challenge differs
    other = _quantized(1)
    com_o, _ = _commit(other.spec, other.weights)
    assert not FB.verify_binding(com_o, w, dirs, proof).ok
    assert not FB.verify_binding(com, w, dirs[:31], proof).ok  # other directions
    assert not FB.verify_binding(com, w, dirs[::-1].copy(), proof).ok
    assert not FB.verify_binding(com, w, dirs, proof, bound=100).ok
    res = FB.verify_binding(com, "l1.acc.weight", dirs, proof)
    assert not res.ok and "bad statement" in res.reason and "only reader" in res.reason


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
    _, state_o = _commit(other.spec, other.weights)
    with pytest.raises(ValueError, match="does not belong"):
        FB.prove_binding(com, state_o, w, dirs)


# --- which weight: the input's only reader (a decoy first layer must not be bindable) ------------------

ACC = (1 << 29) - 1


def _with_decoy(qm, rng):
    """The MLP's spec with a decoy linear inserted as op 0: it reads the input too, its output is unused,
    and its weight has directions of its own that the real first layer does not annihilate."""
    from blindproof.zk.quant.spec import Op, TensorSpec, WeightSpec

    spec = qm.spec
    decoy = Op("linear", ("x",), "decoy.acc", {"weight": "decoy.weight", "bias": None})
    spec2 = dataclasses.replace(
        spec, ops=(decoy, *spec.ops),
        tensors=dict(spec.tensors) | {"decoy.acc": TensorSpec("decoy.acc", 0, -ACC, ACC, "accumulator")},
        weights=dict(spec.weights) | {"decoy.weight": WeightSpec("decoy.weight", (32, 64), "int8", 0)})
    return spec2, dict(qm.weights) | {"decoy.weight": rng.integers(-127, 128, size=(32, 64))}


def _old_first_linear_weight(commitment):
    """The former rule: the weight of op 0 whenever it is a linear op on the input."""
    op = commitment.spec.ops[0]
    if op.kind != "linear" or op.inputs[0] not in commitment.spec.inputs:
        raise ValueError("the committed program does not start with a linear op on its input")
    return op.params["weight"]


def test_decoy_first_layer_is_refused(monkeypatch):
    from blindproof.zk.quant.reference import run_program

    qm = _quantized(3)
    rng = np.random.default_rng(3)
    spec, weights = _with_decoy(qm, rng)
    com, state = _commit(spec, weights)
    dirs = FB.published_directions(weights["decoy.weight"], count=4)
    assert not np.any(weights["decoy.weight"] @ dirs.T)  # harmless for the decoy ...
    x = rng.integers(-2000, 2000, size=(1, 64))
    base = run_program(spec, weights, {"x": x}).tensors["logits"]
    moved = run_program(spec, weights, {"x": x + 40 * dirs[0]}).tensors["logits"]
    assert not np.array_equal(base, moved)  # ... but not for the model: the output changes

    # under the former rule the decoy's binding proof was made and accepted
    monkeypatch.setattr(FB, "first_linear_weight", _old_first_linear_weight)
    assert FB.first_linear_weight(com) == "decoy.weight"
    forged = FB.prove_binding(com, state, "decoy.weight", dirs)
    assert FB.verify_binding(com, "decoy.weight", dirs, forged).ok
    monkeypatch.undo()

    res = FB.verify_binding(com, "decoy.weight", dirs, forged)
    assert not res.ok and "exactly one linear op" in res.reason, res.reason
    with pytest.raises(ValueError, match="exactly one linear op"):
        FB.first_linear_weight(com)
    with pytest.raises(ValueError, match="exactly one linear op"):
        FB.prove_binding(com, state, "decoy.weight", dirs)
    res = FB.verify_binding(com, "l0.acc.weight", FB.published_directions(qm.weights["l0.acc.weight"], 2), forged)
    assert not res.ok and "exactly one linear op" in res.reason  # nor the real layer: the input has two readers


def _tiny(ops, outputs=("y",), extra_tensors=(), inputs=("x",)):
    from blindproof.zk.quant.spec import QuantSpec, TensorSpec, WeightSpec

    t = lambda n, lo=-32767, hi=32767, role="activation": TensorSpec(n, 0, lo, hi, role)  # noqa: E731
    names = {"x", "a", "y", *extra_tensors}
    tensors = {n: t(n, -ACC, ACC, "accumulator") if n == "a" else t(n) for n in names}
    return QuantSpec(arch={"family": "test"}, inputs=inputs, outputs=outputs, ops=tuple(ops), tensors=tensors,
                     weights={"W": WeightSpec("W", (4, 8), "int8", 0), "V": WeightSpec("V", (8,), "int16", 0)},
                     tables={})


def test_input_reader_refuses_every_other_program_shape():
    from blindproof.zk.quant.spec import Op

    lin = Op("linear", ("x",), "a", {"weight": "W", "bias": None})
    tail = Op("rescale", ("a",), "y", {"shift": 3})
    assert FB.input_reader(_tiny([lin, tail])) == lin
    # a second, non-linear reader of the input (its output added to the real path)
    side = [Op("rescale", ("x",), "s", {"shift": 0}), Op("linear", ("s",), "a", {"weight": "W", "bias": None}),
            Op("rescale", ("a",), "r", {"shift": 3}), Op("add", ("r", "s"), "y", {})]
    with pytest.raises(ValueError, match="exactly one linear op"):
        FB.input_reader(_tiny([Op("linear", ("x",), "d", {"weight": "W", "bias": None}), *side],
                              extra_tensors=("s", "r", "d")))
    with pytest.raises(ValueError, match="read by a rescale op"):  # the only reader is not a linear op
        FB.input_reader(_tiny(side, extra_tensors=("s", "r")))
    with pytest.raises(ValueError, match="read by a mul_weight op"):
        FB.input_reader(_tiny([Op("mul_weight", ("x",), "y", {"weight": "V"})]))
    # (specs whose input is also an output are refused when built, before the binding sees them)
    with pytest.raises(ValueError, match="reaches no program output|both inputs and outputs"):
        FB.input_reader(_tiny([lin], outputs=("x",)))  # the layer's output is unused
    with pytest.raises(ValueError, match="also one of its outputs|both inputs and outputs"):  # δ shows directly
        FB.input_reader(_tiny([lin, tail], outputs=("y", "x")))
    with pytest.raises(ValueError, match="one input"):
        FB.input_reader(_tiny([lin, Op("add", ("a", "z"), "y", {})], inputs=("x", "z"), extra_tensors=("z",)))


def test_weight_wider_than_the_bound_is_refused(setup):
    qm, com, state, w, dirs, proof = setup
    spec = dataclasses.replace(qm.spec, weights=dict(qm.spec.weights) | {
        w: dataclasses.replace(qm.spec.weights[w], dtype="int16")})
    com16, state16 = _commit(spec, qm.weights)
    with pytest.raises(ValueError, match="int16"):
        FB.prove_binding(com16, state16, w, dirs)
    res = FB.verify_binding(com16, w, dirs, proof)
    assert not res.ok and "above the bound" in res.reason
    # with the int16 bound the statement holds again (and the directions' size limit tightens)
    ok = FB.prove_binding(com16, state16, w, dirs, bound=(1 << 15) - 1)
    assert FB.verify_binding(com16, w, dirs, ok, bound=(1 << 15) - 1).ok


# --- the opening ledger -------------------------------------------------------------------------------

def test_binding_is_charged_to_the_ledger_and_refused_past_the_budget(setup):
    from blindproof.zk import pcs
    from blindproof.zk.commitment import OpeningBudgetExceeded, OpeningLedger

    qm, _, _, w, dirs, _ = setup
    com, state = commit_model(qm.spec, qm.weights, CommitmentKey.generate(), budget=2)
    state.ledger = None
    with pytest.raises(ValueError, match="ledger"):  # never an uncounted opening of the weights
        FB.prove_binding(com, state, w, dirs)
    ledger = OpeningLedger()
    proof = FB.prove_binding(com, state, w, dirs, ledger=ledger)
    assert FB.verify_binding(com, w, dirs, proof).ok
    opened = ledger.opened(com.weights)
    parts = FB.BindingProof.from_bytes(proof)
    companion = pcs.Commitment.from_bytes(parts.companion_commitment)
    w_open = pcs.Opening.from_bytes(parts.weight_opening, [com.weights, companion])  # stacked with the companion
    assert set(w_open.positions.tolist()) <= opened  # the binding's positions, after the well-formedness ones
    assert len(opened) > len(set(w_open.positions.tolist()))
    # budget 2: well-formedness, this proof, and the opening kept for a rotation
    with pytest.raises(OpeningBudgetExceeded, match="rotat"):
        FB.prove_binding(com, state, w, dirs, ledger=ledger)
    assert ledger.opened(com.weights) == opened
