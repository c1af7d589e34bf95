"""Honest proofs of transformers at the smallest shapes verify (completeness), and a changed output
does not: a head dim of 2 (rope's half-picking variable is the head axis's only one, the variable the
attention product must blind) and one token (randomizers that repeat their few coordinates, so rope
must not merge its two halves by a challenge)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from blindproof.models.transformer import Transformer, TransformerConfig
from blindproof.models.workloads import init_weights
from blindproof.zk.proof.keys import CommitmentKey
from blindproof.zk.proof.prover import ModelProver
from blindproof.quant import quantize
from blindproof.zk.proof.verifier import verify_model_proof

KEY = CommitmentKey(b"\x0d" * 32)

CASES = {
    "head dim 2": (TransformerConfig(vocab_size=32, d_model=4, n_layers=1, n_heads=2, d_ff=8), 4),
    "last token of one, 3 labels": (TransformerConfig(vocab_size=32, d_model=8, n_layers=1, n_heads=2, d_ff=16,
                                                      output="last", n_labels=3), 1),
    "one token": (TransformerConfig(vocab_size=32, d_model=8, n_layers=1, n_heads=2, d_ff=16), 1),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_honest_proof_verifies_and_a_changed_output_does_not(case):
    cfg, seq = CASES[case]
    torch.manual_seed(0)
    qm = quantize(init_weights(Transformer(cfg), 0), torch.randint(0, cfg.vocab_size, (4, seq)))
    prover = ModelProver.create(qm, KEY)
    proof = prover.prove(prover.model.encode(torch.randint(0, cfg.vocab_size, (1, seq))))
    res = verify_model_proof(prover.commitment, proof.to_bytes())
    assert res.ok, res.reason
    name, out = next(iter(proof.outputs.items()))
    changed = out.copy()
    changed.flat[0] += 1
    forged = dataclasses.replace(proof, outputs={**proof.outputs, name: changed})
    assert not verify_model_proof(prover.commitment, forged.to_bytes()).ok
