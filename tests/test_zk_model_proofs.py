"""Whole-model proofs: completeness and the must-reject list (keep these tests forever).

Runs on every workload whose op kinds all have a proof protocol; the MLP is the fast one."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("blindproof.zk.proof.program")

from blindproof.zk.commit import pcs  # noqa: E402
from blindproof.zk.proof import proof_file
from blindproof.zk.proof.keys import CommitmentKey  # noqa: E402
from blindproof.zk.ops import kinds  # noqa: E402
from blindproof.zk.proof.proof_file import ModelProof  # noqa: E402
from blindproof.zk.proof.prover import ModelProver, PcsProverSettler, example_input, quantized_workload  # noqa: E402
from blindproof.quant import QuantizedModel, Trace  # noqa: E402
from blindproof.zk.proof.verifier import verify_model_proof  # noqa: E402

KEY = CommitmentKey(b"\x07" * 32)


def _supported(qm: QuantizedModel) -> bool:
    return {op.kind for op in qm.spec.ops} <= set(kinds())


def _prover(name: str) -> ModelProver:
    qm = quantized_workload(name)
    if not _supported(qm):
        pytest.skip(f"{name}: op kinds without a proof protocol yet: "
                    f"{sorted({op.kind for op in qm.spec.ops} - set(kinds()))}")
    return ModelProver.create(qm, KEY)


@pytest.fixture(scope="module")
def mlp():
    prover = _prover("mlp-784-56-10")
    inputs = prover.model.encode(example_input("mlp-784-56-10"))
    proof = prover.prove(inputs, rng=np.random.default_rng(0))
    return prover, inputs, proof, proof.to_bytes()


def _reserialize(proof: ModelProof, **changes) -> bytes:
    fields = dict(proof.__dict__)
    fields.update(changes)
    return ModelProof(**fields).to_bytes()


def test_mlp_proof_verifies_with_both_soundness_figures(mlp):
    prover, inputs, proof, data = mlp
    res = verify_model_proof(prover.commitment, data)
    assert res.ok, res.reason
    assert res.provable_bits >= 100 and res.conjectured_bits >= res.provable_bits
    assert abs(res.provable_bits - proof.soundness.provable_bits) < 1e-6
    expected = prover.model.run(example_input("mlp-784-56-10"), record=False).tensors["logits"]
    assert np.array_equal(proof.outputs["logits"], expected)
    # the caller's own statement: same input and output accepted
    assert verify_model_proof(prover.commitment, data, inputs, proof.outputs).ok


def test_rejects_tampered_output(mlp):
    prover, _, proof, _ = mlp
    y = {k: v.copy() for k, v in proof.outputs.items()}
    y["logits"][0, 3] += 1
    res = verify_model_proof(prover.commitment, _reserialize(proof, outputs=y))
    assert not res.ok
    # and a caller expecting another output rejects the honest proof
    assert not verify_model_proof(prover.commitment, mlp[3], outputs=y).ok


def test_rejects_replay_against_another_input(mlp):
    prover, inputs, proof, data = mlp
    other = {k: v.copy() for k, v in inputs.items()}
    other["x"][0, 0] = (other["x"][0, 0] + 7) % 100
    res = verify_model_proof(prover.commitment, data, inputs=other)
    assert not res.ok and "another input" in res.reason
    assert not verify_model_proof(prover.commitment, _reserialize(proof, inputs=other)).ok


def test_rejects_tampered_intermediate(mlp):
    prover, inputs, proof, _ = mlp
    trace = prover.model.run(example_input("mlp-784-56-10"))
    hidden = next(op.output for op in prover.model.spec.ops if op.output not in prover.model.spec.outputs)
    bad = Trace(outputs=trace.outputs, tensors=dict(trace.tensors))
    bad.tensors[hidden] = bad.tensors[hidden].copy()
    bad.tensors[hidden].flat[0] += 1  # committed wrong; the output stays the honest one
    cheat = prover.prove(inputs, trace=bad, strict=False, rng=np.random.default_rng(1))
    assert np.array_equal(cheat.outputs["logits"], proof.outputs["logits"])
    res = verify_model_proof(prover.commitment, cheat.to_bytes())
    assert not res.ok, "a wrong committed intermediate was accepted"


def test_rejects_proof_made_with_other_weights(mlp):
    prover, inputs, _, _ = mlp
    qm = prover.model
    w = {k: v.copy() for k, v in qm.weights.items()}
    name = next(n for n, ws in qm.spec.weights.items() if len(ws.shape) == 2)
    w[name][0, :] = -w[name][0, :]
    other = QuantizedModel(qm.spec, w)
    # an honest proof for the other weights, under their own commitment: wrong model digest
    honest_other = ModelProver.create(other, KEY).prove(inputs)
    res = verify_model_proof(prover.commitment, honest_other.to_bytes())
    assert not res.ok and "another model" in res.reason
    # relabelled as a proof for this commitment: the transcript and the openings no longer fit
    relabelled = _reserialize(honest_other, model_digest=prover.commitment.digest())
    assert not verify_model_proof(prover.commitment, relabelled).ok
    # computed with other weights but opened against this commitment's weights
    cheat = ModelProver(other, prover.commitment, prover.state, prover.params).prove(inputs, strict=False)
    assert not verify_model_proof(prover.commitment, cheat.to_bytes()).ok


def test_rejects_a_transcript_that_omits_the_trace_commitment(mlp, monkeypatch):
    prover, inputs, _, _ = mlp

    def commit_without_absorbing(self, tables, transcript):
        from blindproof.zk.iop.blind import in_companion
        self.trace_com, self.trace_state = pcs.commit(
            {k: v for k, v in tables.items()
             if k not in self.public and not k.startswith("w:") and not in_companion(k)}, self.params)
        self.companion_com, self.companion_state = pcs.commit_companion(
            self.weights.commitment.layout, dict(sorted((k, v) for k, v in tables.items() if in_companion(k))))

    monkeypatch.setattr(PcsProverSettler, "commit", commit_without_absorbing)
    cheat = prover.prove(inputs)
    monkeypatch.undo()
    assert not verify_model_proof(prover.commitment, cheat.to_bytes()).ok


def test_rejects_wrong_soundness_figures_and_low_bits(mlp):
    prover, _, proof, data = mlp
    figs = type(proof.soundness)(proof.soundness.provable_bits + 20, proof.soundness.conjectured_bits,
                                 proof.soundness.terms)
    res = verify_model_proof(prover.commitment, _reserialize(proof, soundness=figs))
    assert not res.ok and "computes" in res.reason
    # the stated figures must be exactly the recomputed ones: a flipped low bit or one changed term is a reject
    import math
    s = proof.soundness
    tiny = type(s)(math.nextafter(s.provable_bits, 0.0), s.conjectured_bits, s.terms)
    assert not verify_model_proof(prover.commitment, _reserialize(proof, soundness=tiny)).ok
    name, pb, cb = s.terms[0]
    term = type(s)(s.provable_bits, s.conjectured_bits, [(name, pb + 1e-9, cb), *s.terms[1:]])
    assert not verify_model_proof(prover.commitment, _reserialize(proof, soundness=term)).ok
    res = verify_model_proof(prover.commitment, data, min_provable_bits=200)
    assert not res.ok and "below" in res.reason


def test_rejects_malformed_truncated_oversized(mlp, monkeypatch):
    prover, _, _, data = mlp
    for bad in (b"", data[:10], data[: len(data) // 2], data[:-1], data + b"\x00", b"\x00" * 100):
        res = verify_model_proof(prover.commitment, bad)
        assert not res.ok and res.reason
    monkeypatch.setattr(proof_file, "MAX_PROOF_BYTES", len(data) - 1)
    res = verify_model_proof(prover.commitment, data)
    assert not res.ok and "too large" in res.reason
    assert not verify_model_proof("not a commitment", data).ok
    assert not verify_model_proof(prover.commitment, "not bytes").ok


def _flip_sweep(commitment, data: bytes, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    positions = rng.choice(len(data), n, replace=False)
    # the small parts of the proof (header, statement, commitments) get extra attention
    positions[: n // 4] = rng.choice(min(len(data), 4096), n // 4, replace=False)
    for pos in positions:
        bad = bytearray(data)
        bad[pos] ^= 1 << int(rng.integers(8))
        res = verify_model_proof(commitment, bytes(bad))
        assert not res.ok, f"flipped byte {pos} accepted"
        assert isinstance(res.reason, str) and res.reason


def test_byte_flip_sweep(mlp):
    prover, _, _, data = mlp
    _flip_sweep(prover.commitment, data, 240, seed=3)


@pytest.mark.slow
def test_byte_flip_sweep_long(mlp):
    prover, _, _, data = mlp
    _flip_sweep(prover.commitment, data, 1500, seed=4)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiny-llama"])  # larger models: benchmarks/bench_zk.py
def test_transformer_proof_end_to_end(name):
    prover = _prover(name)
    inputs = prover.model.encode(example_input(name))
    proof = prover.prove(inputs)
    data = proof.to_bytes()
    res = verify_model_proof(prover.commitment, data)
    assert res.ok, res.reason
    assert res.provable_bits >= 100
    y = {k: v.copy() for k, v in proof.outputs.items()}
    next(iter(y.values())).flat[0] += 1
    assert not verify_model_proof(prover.commitment, _reserialize(proof, outputs=y)).ok


@pytest.mark.slow
@pytest.mark.parametrize("name", ["minilm-l6", "gpt2-block"])
def test_seeded_random_weights_prove_end_to_end(name):
    """Seeded random weights (no trained checkpoint) quantize into the norm proof's domain and prove, in
    the workload's own scope (gpt2-block: its transformer blocks, as it is benchmarked; the whole-model
    program with GPT-2's 50,257-entry head peaks above this machine's 24 GB since lookups are proved
    as one tree each: docs/bench_zk.md)."""
    from blindproof.models.workloads import get_workload
    from blindproof.zk.proof.prover import program_input, quantized_workload
    from blindproof.quant.spec import norm_sq_bits

    model = get_workload(name).build(0).eval()
    qm = quantized_workload(name, model=model)
    assert all(norm_sq_bits(op.params["C"]) >= 29 for op in qm.spec.ops if op.kind == "norm")
    prover = ModelProver.create(qm, KEY)
    inputs = prover.model.encode(program_input(qm, model, example_input(name)[:, :16]))
    proof = prover.prove(inputs)
    res = verify_model_proof(prover.commitment, proof.to_bytes())
    assert res.ok, res.reason
    y = {k: v.copy() for k, v in proof.outputs.items()}
    next(iter(y.values())).flat[0] += 1
    assert not verify_model_proof(prover.commitment, _reserialize(proof, outputs=y)).ok


def test_reprs_stay_short(mlp_honest):
    """A proof's repr and a verdict's repr name sizes, never megabytes of bytes."""
    from blindproof.zk.proof.verifier import verify_model_proof
    prover, _, proof = mlp_honest
    res = verify_model_proof(prover.commitment, proof.to_bytes())
    assert res.ok and res.proof is not None
    assert len(repr(res)) < 500 and len(repr(proof)) < 1000 and "bytes>" in repr(proof)
