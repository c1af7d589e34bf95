"""The statement binds the public input and output by their digest, so a proof can travel without
them (a client already holds both): a detached proof verifies against the tensors the verifier holds
and against no others; a file whose tensors and digest disagree is malformed; and the size a proof
reports excludes the public tensors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from blindproof.zk.proof.proof_file import ModelProof, ProofFileError, io_digest
from blindproof.zk.proof.verifier import verify_model_proof


@pytest.fixture(scope="module")
def mlp(mlp_honest):
    return mlp_honest


def test_detached_proof_verifies_against_the_tensors_the_verifier_holds(mlp):
    prover, inputs, proof = mlp
    detached = proof.without_public()
    assert detached.detached and not proof.detached
    data = detached.to_bytes()
    assert ModelProof.from_bytes(data).detached
    res = verify_model_proof(prover.commitment, data, inputs, proof.outputs)
    assert res.ok, res.reason
    assert res.proof is not None and np.array_equal(res.proof.outputs["logits"], proof.outputs["logits"])


def test_detached_proof_without_tensors_is_refused_with_a_reason(mlp):
    prover, inputs, proof = mlp
    data = proof.without_public().to_bytes()
    res = verify_model_proof(prover.commitment, data)
    assert not res.ok and "without its public input and output" in res.reason
    assert not verify_model_proof(prover.commitment, data, inputs, None).ok


def test_detached_proof_is_refused_for_another_output_or_input(mlp):
    prover, inputs, proof = mlp
    data = proof.without_public().to_bytes()
    other = {k: v.copy() for k, v in proof.outputs.items()}
    other["logits"].reshape(-1)[0] += 1
    res = verify_model_proof(prover.commitment, data, inputs, other)
    assert not res.ok and "another input or output" in res.reason
    x = {k: v.copy() for k, v in inputs.items()}
    next(iter(x.values())).reshape(-1)[0] += 1
    assert not verify_model_proof(prover.commitment, data, x, proof.outputs).ok


def test_detached_proof_with_float_tensors_is_refused_not_cast(mlp):
    prover, inputs, proof = mlp
    data = proof.without_public().to_bytes()
    floats = {k: v.astype(np.float64) + 0.25 for k, v in proof.outputs.items()}
    res = verify_model_proof(prover.commitment, data, inputs, floats)
    assert not res.ok and "not an integer tensor" in res.reason


def test_tensors_that_disagree_with_the_digest_make_a_malformed_file(mlp):
    _, _, proof = mlp
    other = {k: v.copy() for k, v in proof.outputs.items()}
    other["logits"].reshape(-1)[0] += 1
    with pytest.raises(ProofFileError, match="public digest"):
        ModelProof.from_bytes(dataclasses.replace(proof, outputs=other).to_bytes())
    with pytest.raises(ProofFileError, match="public digest"):
        ModelProof.from_bytes(dataclasses.replace(proof, public_digest=bytes(32)).to_bytes())
    with pytest.raises(ProofFileError, match="without its output"):
        ModelProof.from_bytes(dataclasses.replace(proof, outputs={}).to_bytes())


def test_a_consistent_file_for_another_output_is_rejected_by_the_proof(mlp):
    """Tensors and digest rewritten together: the file parses, and the transcript (which starts from
    the digest) no longer matches the proof."""
    prover, inputs, proof = mlp
    other = {k: v.copy() for k, v in proof.outputs.items()}
    other["logits"].reshape(-1)[0] += 1
    forged = dataclasses.replace(proof, outputs=other, public_digest=io_digest(inputs, other))
    res = verify_model_proof(prover.commitment, forged.to_bytes())
    assert not res.ok and "malformed" not in res.reason


def test_digest_is_unambiguous():
    a = {"x": np.arange(6, dtype=np.int64).reshape(2, 3)}
    assert io_digest(a, {"y": np.zeros(1, dtype=np.int64)}) != io_digest(
        {"x": np.arange(6, dtype=np.int64).reshape(3, 2)}, {"y": np.zeros(1, dtype=np.int64)})
    assert io_digest(a, {}) != io_digest({}, a)  # which side a tensor is on is bound
    assert len(io_digest(a, a)) == 32


def test_reported_size_excludes_the_public_tensors(mlp):
    _, _, proof = mlp
    total = len(proof.to_bytes())
    assert proof.public_bytes() == total - len(proof.without_public().to_bytes())
    assert proof.public_bytes() >= sum(v.size for v in (*proof.inputs.values(), *proof.outputs.values()))
