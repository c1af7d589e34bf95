"""Must-reject: a prover that picks its own security, a public value off by p or outside its range,
and a proof for another position. Each forgery is built as a cheating prover would build it and is
checked against every verifying entry point with its DEFAULT arguments: ``verify_model_proof``, the
SDK's ``verify_exchange`` and ``blindproof verify``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from blindproof.client.verify import ProofVerificationError, verify_exchange
from blindproof.zk.field import babybear as F
from blindproof.zk.commit import pcs
from blindproof.zk.proof import proof_file
from blindproof.zk.proof.commitment import ModelCommitment, commit_model
from blindproof.zk.proof.keys import CommitmentKey
from blindproof.zk.proof.proof_file import ModelProof, ProofFileError, io_digest
from blindproof.zk.proof.prover import ModelProver, example_input, quantized_workload
from blindproof.quant import Trace
from blindproof.zk.proof.soundness import PROOF_FLOOR_BITS
from blindproof.zk.proof.verifier import verify_model_proof

KEY = CommitmentKey(b"\x0b" * 32)


@pytest.fixture(scope="module")
def mlp(mlp_honest):
    return mlp_honest


def _cli_verify(tmp_path, commitment: ModelCommitment, data: bytes, *extra: str) -> tuple[int, str]:
    from blindproof.cli import main

    (tmp_path / "m.commit").write_bytes(commitment.to_bytes())
    (tmp_path / "p.bin").write_bytes(data)
    return main(["verify", str(tmp_path / "p.bin"), "--commitment", str(tmp_path / "m.commit"), *extra]), ""


def _rejected_everywhere(tmp_path, prover: ModelProver, data: bytes, inputs, outputs, capsys) -> None:
    assert not verify_model_proof(prover.commitment, data).ok
    assert not verify_model_proof(prover.commitment, data, inputs, outputs).ok
    with pytest.raises(ProofVerificationError):
        verify_exchange(prover.commitment, data, inputs, outputs)
    rc, _ = _cli_verify(tmp_path, prover.commitment, data)
    out = capsys.readouterr().out
    assert rc == 1 and "VALID proof" not in out.replace("INVALID proof", "")


# --- finding 1: the prover picks its own security level ------------------------------------------

def _weak_proof(prover: ModelProver, inputs, monkeypatch, weak: pcs.PcsParams, *, state_params: bool) -> bytes:
    """An honest trace committed under weaker code parameters than the commitment's (a single column
    query at blowup 2 with ``security_bits`` 1); ``state_params`` also states them in the proof."""
    real_make = pcs.make_layout

    def weak_layout(names, log_sizes, params, **kw):
        lay = real_make(names, log_sizes, pcs.PcsParams(100.0, weak.blowup, weak.proximity_tests), **kw)
        return dataclasses.replace(lay, n_queries=1, hiding_symbols=lay.openings)

    monkeypatch.setattr(pcs, "make_layout", weak_layout)
    try:
        p = ModelProver(prover.model, prover.commitment, prover.state, weak if state_params else prover.params)
        return p.prove(inputs, rng=np.random.default_rng(1)).to_bytes()
    finally:
        monkeypatch.setattr(pcs, "make_layout", real_make)


@pytest.mark.parametrize("state_params", [True, False])
def test_trace_committed_with_weaker_parameters_is_rejected(mlp, monkeypatch, tmp_path, capsys, state_params):
    prover, inputs, proof = mlp
    weak = pcs.PcsParams(security_bits=1.0, blowup=2, proximity_tests=1)
    data = _weak_proof(prover, inputs, monkeypatch, weak, state_params=state_params)
    res = verify_model_proof(prover.commitment, data)
    assert not res.ok
    assert "parameters" in res.reason or "layout" in res.reason
    _rejected_everywhere(tmp_path, prover, data, inputs, proof.outputs, capsys)


def test_no_caller_can_lower_the_floor(mlp):
    prover, inputs, proof = mlp
    data = proof.to_bytes()
    assert verify_model_proof(prover.commitment, data, min_provable_bits=0).ok  # the floor still applies...
    assert proof.soundness.provable_bits >= PROOF_FLOOR_BITS
    res = verify_model_proof(prover.commitment, data, min_provable_bits=proof.soundness.provable_bits + 1)
    assert not res.ok and "below the required" in res.reason  # ...and a caller may raise it


def test_commitment_below_the_floor_or_off_the_rule_does_not_load(mlp):
    prover, _, _ = mlp
    qm = prover.model
    with pytest.raises(ValueError, match="floor"):
        commit_model(qm.spec, qm.weights, KEY, pcs.PcsParams(security_bits=60.0))
    # a third party's file: weights committed with one query, stated parameters the default ones
    lay = prover.commitment.weights.layout
    weak = pcs.make_layout(lay.names, lay.log_sizes, prover.params, openings=lay.openings, masks=False)
    forged = pcs.Commitment(prover.commitment.weights.root,
                            dataclasses.replace(weak, n_queries=1, hiding_symbols=weak.openings))
    with pytest.raises(ValueError, match="not the one the parameters give"):
        ModelCommitment(prover.commitment.spec_json, forged, prover.params)
    # and as bytes: the decoder refuses both
    good = proof_file.proof_pb2.ModelCommitment()
    good.ParseFromString(prover.commitment.to_bytes())
    good.weights = forged.to_bytes()
    with pytest.raises(ProofFileError):
        ModelCommitment.from_bytes(good.SerializeToString(deterministic=True))
    good.ParseFromString(prover.commitment.to_bytes())
    good.params.security_bits = 50.0
    with pytest.raises(ProofFileError, match="floor"):
        ModelCommitment.from_bytes(good.SerializeToString(deterministic=True))
    good.ClearField("params")
    with pytest.raises(ProofFileError, match="parameters"):
        ModelCommitment.from_bytes(good.SerializeToString(deterministic=True))


# --- finding 2: public values checked only modulo p ------------------------------------------------

def _with_output(proof_trace: Trace, name: str, value: np.ndarray) -> Trace:
    tensors = dict(proof_trace.tensors)
    tensors[name] = value
    return dataclasses.replace(proof_trace, tensors=tensors)


def test_output_off_by_p_is_rejected(mlp, tmp_path, capsys):
    prover, inputs, proof = mlp
    trace = prover.model.run(example_input("mlp-784-56-10"))
    logits = np.asarray(trace.tensors["logits"], dtype=np.int64).copy()
    logits[0, 0] += F.P  # the same field element: the op proofs alone cannot tell
    forged = prover.prove(inputs, trace=_with_output(trace, "logits", logits), strict=False,
                          rng=np.random.default_rng(3))
    data = forged.to_bytes()
    assert not np.array_equal(forged.outputs["logits"], proof.outputs["logits"])
    res = verify_model_proof(prover.commitment, data)
    assert not res.ok and ("2^29" in res.reason or "range" in res.reason)
    _rejected_everywhere(tmp_path, prover, data, inputs, forged.outputs, capsys)


def test_public_value_outside_its_declared_range_is_rejected(mlp):
    prover, inputs, proof = mlp
    spec = prover.model.spec
    name = spec.inputs[0]
    hi = spec.tensors[name].hi
    bad = {name: np.asarray(inputs[name], dtype=np.int64).copy()}
    bad[name].reshape(-1)[0] = hi + 1
    fields = dict(proof.__dict__)
    fields["inputs"] = bad
    fields["public_digest"] = io_digest(bad, proof.outputs)  # a consistent file: only the range check is left
    data = ModelProof(**fields).to_bytes()
    res = verify_model_proof(prover.commitment, data)
    assert not res.ok and "outside its declared range" in res.reason
    with pytest.raises(ValueError, match="declared range|must lie in"):  # the prover refuses it
        prover.prove(bad)


# --- finding 5: start is pinned -------------------------------------------------------------------

@pytest.fixture(scope="module")
def llama():
    prover = ModelProver.create(quantized_workload("tiny-llama"), KEY)
    x = example_input("tiny-llama")[:, :8]
    inputs = prover.model.encode(x)
    return prover, inputs, prover.prove(inputs, start=7, rng=np.random.default_rng(5))


def test_proof_for_another_start_is_rejected(llama, tmp_path, capsys):
    prover, inputs, proof = llama
    data = proof.to_bytes()
    assert verify_model_proof(prover.commitment, data, start=7).ok
    res = verify_model_proof(prover.commitment, data, inputs, proof.outputs, start=0)
    assert not res.ok and "position 7" in res.reason
    with pytest.raises(ProofVerificationError, match="position"):
        verify_exchange(prover.commitment, data, inputs, proof.outputs)  # the SDK sent start=0
    rc, _ = _cli_verify(tmp_path, prover.commitment, data, "--start", "0")
    assert rc == 1
    capsys.readouterr()
    rc, _ = _cli_verify(tmp_path, prover.commitment, data)
    out = capsys.readouterr().out
    assert rc == 0 and "start 7" in out  # without --start, the CLI says which position was proved
    assert not verify_model_proof(prover.commitment, data, start=7, scope="blocks").ok
