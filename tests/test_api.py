"""The one-call API: ``blindproof.commit`` / ``prove`` / ``verify`` end to end, and what results print."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import blindproof
from blindproof.zk.proof.prover import example_input

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def committed():
    return blindproof.commit("mlp-784-56-10")


@pytest.fixture(scope="module")
def proof(committed):
    return blindproof.prove(committed, example_input("mlp-784-56-10"))


def test_import_stays_light_and_exports_the_api():
    code = ("import sys, blindproof; assert 'torch' not in sys.modules and 'numpy' not in sys.modules, 'heavy'; "
            "print(sorted(n for n in dir(blindproof) if not n.startswith('_')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert out.returncode == 0, out.stderr
    for name in ("commit", "prove", "verify", "Proof", "Committed", "Verification"):
        assert name in out.stdout
    assert blindproof.commit.__doc__ and blindproof.prove.__doc__ and blindproof.verify.__doc__


def test_prove_and_verify_through_the_api(committed, proof):
    v = blindproof.verify(proof, committed.commitment)
    assert v and v.ok and v.reason == ""
    assert v.provable_bits >= 100
    np.testing.assert_array_equal(v.outputs["logits"], proof.outputs["logits"])
    # the float output is the integer model's, and agrees with the float model's label
    float_logits = committed.source.float_model(example_input("mlp-784-56-10")).detach().numpy()
    assert v.output.argmax() == proof.output.argmax() == float_logits.argmax()
    assert blindproof.verify(proof, committed)  # a Committed is accepted as the commitment too


def test_tampered_proof_is_rejected(committed, proof):
    data = bytearray(proof.to_bytes())
    for pos in (len(data) // 3, len(data) // 2, len(data) - 5):
        bad = bytearray(data)
        bad[pos] ^= 0x10
        v = blindproof.verify(bytes(bad), committed.commitment)
        assert not v and v.reason
        assert repr(v).startswith("Verification(INVALID")


def test_tampered_output_is_rejected(committed, proof):
    from blindproof.zk.proof.proof_file import ModelProof

    p = ModelProof.from_bytes(proof.to_bytes())
    p.outputs = {k: v.copy() for k, v in p.outputs.items()}
    p.outputs["logits"][0, 0] += 1
    assert not blindproof.verify(p, committed.commitment)
    # pinning an output other than the proved one rejects the honest proof
    other = proof.outputs["logits"].copy()
    other[0, 1] -= 1
    assert not blindproof.verify(proof, committed.commitment, outputs=other)
    assert blindproof.verify(proof, committed.commitment, outputs=proof.outputs["logits"])


def test_pinned_input(committed, proof):
    x = example_input("mlp-784-56-10")
    assert blindproof.verify(proof, committed.commitment, inputs=x)
    assert not blindproof.verify(proof, committed.commitment, inputs=x + 0.25)


def test_another_models_commitment_rejects(proof):
    other = blindproof.commit("mlp-784-56-10", seed=1)
    v = blindproof.verify(proof, other.commitment)
    assert not v
    assert "model" in v.reason.lower(), v.reason


def test_results_print_a_summary_never_bytes(committed, proof):
    for obj in (committed, proof, blindproof.verify(proof, committed.commitment)):
        text = repr(obj)
        assert len(text) < 300 and "\\x" not in text and "b'" not in text
        assert str(obj) == text
        page = obj._repr_html_()
        assert page.startswith("<table>") and len(page) < 3000
    assert "KB" in repr(proof) and "provable" in repr(proof)
    assert "7 proofs left" in repr(committed) or "proofs left" in repr(committed)


def test_files_round_trip(tmp_path):
    com_file = tmp_path / "m.commit"
    c = blindproof.commit("mlp-784-56-10", out=com_file)
    assert com_file.is_file() and (tmp_path / "m.commit.key").is_file() and (tmp_path / "m.commit.key.ledger").is_file()
    assert oct((tmp_path / "m.commit.key").stat().st_mode & 0o777) == "0o600"
    # prove again from the name and the files alone, as a later process would
    blindproof.prove("mlp-784-56-10", commitment=com_file, out=tmp_path / "proof.bin")
    assert (tmp_path / "proof.bin").is_file()
    v = blindproof.verify(tmp_path / "proof.bin", com_file)
    assert v, v.reason
    loaded = blindproof.Proof.load(tmp_path / "proof.bin")
    assert blindproof.verify(loaded, c.commitment)
    assert c.proofs_left() < c.commitment.budget  # the ledger on disk counted the proof
    with pytest.raises(ValueError, match="do not match"):
        blindproof.prove("mlp-784-56-10", seed=3, commitment=com_file)
    # committing the same model again to the same file is harmless; another model is refused, the file kept
    assert blindproof.commit("mlp-784-56-10", out=com_file).digest == c.digest
    before = com_file.read_bytes()
    with pytest.raises(FileExistsError, match="another commitment"):
        blindproof.commit("mlp-784-56-10", seed=5, out=com_file)
    assert com_file.read_bytes() == before
    with pytest.raises(ValueError, match="no commitment key"):
        blindproof.prove("mlp-784-56-10", commitment=com_file, key=tmp_path / "absent.key")


def test_a_module_with_calibration():
    from blindproof.models import MLP
    from blindproof.models.workloads import init_weights

    torch.manual_seed(0)
    model = init_weights(MLP((12, 16, 3)), 0)
    calib = torch.randn(32, 12)
    p = blindproof.prove(model, calib[:1], calibration=calib)
    assert p.commitment is not None
    assert blindproof.verify(p, p.commitment, inputs=calib[:1])
    with pytest.raises(blindproof.ModelSourceError, match="calibration"):
        blindproof.commit(model)
    with pytest.raises(blindproof.ModelSourceError, match="unknown model 'no-such-model'"):
        blindproof.commit("no-such-model")
