"""Proof scope "blocks": a transformer's blocks alone (hidden states in, hidden states out), as the
GPT-2 workloads use it — quantizer, proofs and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from blindproof.models.workloads import get_workload
from blindproof.zk.proof.keys import CommitmentKey
from blindproof.zk.proof.prover import ModelProver, calibration_input, program_input, workload_scope
from blindproof.quant import QuantizationError, embed_float, quantize
from blindproof.zk.proof.verifier import verify_model_proof

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def tiny_blocks():
    model = get_workload("tiny-llama").build(0)
    return model, quantize(model, calibration_input("tiny-llama"), scope="blocks")


def test_blocks_program_is_the_blocks(tiny_blocks):
    model, qm = tiny_blocks
    assert qm.spec.inputs == ("h",) and qm.spec.arch["scope"] == "blocks"
    assert not any(op.kind in ("embed", "mean_pool") for op in qm.spec.ops)
    assert not any(w.startswith(("embed.", "head.", "final_norm")) for w in qm.weights)
    tokens = get_workload("tiny-llama").example_input(0, 1)
    h = embed_float(model, tokens)
    assert next(model.parameters()).dtype == torch.float32  # embedding in float64 leaves the model as it was
    out = qm.forward(h)
    with torch.no_grad():
        ref = model.double().run_blocks(torch.from_numpy(h)).numpy()
    model.float()
    cos = (out * ref).sum(-1) / np.linalg.norm(out, axis=-1) / np.linalg.norm(ref, axis=-1)
    assert out.shape == ref.shape and cos.min() > 0.99


def test_whole_model_specs_do_not_change():
    """Scope is recorded only for blocks programs, so whole-model commitments keep their digests."""
    model = get_workload("tiny-llama").build(0)
    qm = quantize(model, calibration_input("tiny-llama"))
    assert "scope" not in qm.spec.arch and qm.spec.inputs == ("tokens",)


def test_scope_errors():
    with pytest.raises(ValueError, match="scope"):
        quantize(get_workload("tiny-llama").build(0), calibration_input("tiny-llama"), scope="head")
    with pytest.raises(QuantizationError, match="Transformer"):
        quantize(get_workload("mlp-784-56-10").build(0), calibration_input("mlp-784-56-10"), scope="blocks")


def test_workload_defaults():
    assert workload_scope("gpt2-block") == workload_scope("gpt2-small") == "blocks"
    assert workload_scope("tiny-llama") == "model" and workload_scope("gpt2-block", "model") == "model"
    model = get_workload("tiny-llama").build(0)
    qm = quantize(model, calibration_input("tiny-llama"))
    x = np.ones((1, 4), dtype=np.int64)
    assert program_input(qm, model, x) is x  # whole-model programs take token ids as they are


def test_blocks_proof_verifies_and_binds_both_ends(tiny_blocks):
    model, qm = tiny_blocks
    prover = ModelProver.create(qm, CommitmentKey(b"\x05" * 32))
    inputs = qm.encode(embed_float(model, get_workload("tiny-llama").example_input(0, 1)[:, :8]))
    proof = prover.prove(inputs)
    data = proof.to_bytes()
    res = verify_model_proof(prover.commitment, data, inputs, proof.outputs)
    assert res.ok, res.reason
    other_x = {k: v.copy() for k, v in inputs.items()}
    other_x["h"].flat[5] += 1
    assert not verify_model_proof(prover.commitment, data, other_x, proof.outputs).ok
    other_y = {k: v.copy() for k, v in proof.outputs.items()}
    next(iter(other_y.values())).flat[0] += 1
    assert not verify_model_proof(prover.commitment, data, inputs, other_y).ok


def test_cli_blocks_scope(tmp_path, monkeypatch, capsys):
    from blindproof.cli import main

    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> int:
        try:
            return main(list(args))
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else 2

    assert run("commit", "--model", "tiny-llama", "--scope", "blocks", "-o", "b.commit") == 0
    np.save(tmp_path / "tokens.npy", get_workload("tiny-llama").example_input(0, 1)[:, :6].numpy())
    assert run("prove", "--model", "tiny-llama", "--scope", "blocks", "--commitment", "b.commit",
               "--input", "tokens.npy", "-o", "p.bin", "--json") == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["provable_bits"] >= 100
    assert run("verify", "p.bin", "--commitment", "b.commit") == 0
    # the whole-model program is another model: proving it against the blocks commitment is refused
    assert run("prove", "--model", "tiny-llama", "--commitment", "b.commit", "--key", "b.commit.key",
               "-o", "q.bin") == 2
    assert "do not match" in capsys.readouterr().err
