"""Proofs are byte-identical to those the code made before a change that should not change them.

One proof of ``mlp-784-56-10`` with a fixed commitment key, a fixed mask generator and a fixed stand-in
for ``os.urandom`` (the OS randomness behind the hiding masks and the commitment's column seeds): its
SHA-256 was recorded before blindproof/zk was restructured. A change of protocol, encoding or
randomness order changes it; record the new value with the change that explains it.
"""

from __future__ import annotations

import hashlib

import numpy as np

from blindproof.zk.proof.keys import CommitmentKey, OpeningLedger
from blindproof.zk.proof.prover import ModelProver, example_input, quantized_workload
from blindproof.zk.proof.verifier import verify_model_proof

GOLDEN = "dff8d2d48a6ae6e82dcc3912f2992fd358747fd9e0f8cca33ef12986c4eac22b"  # proof format 5: public digest
WORKLOAD = "mlp-784-56-10"


class _Stream:
    """Deterministic stand-in for os.urandom: SHAKE-256 of a fixed label, read in order."""

    def __init__(self, label: bytes) -> None:
        self.label, self.pos = label, 0

    def __call__(self, n: int) -> bytes:
        out = hashlib.shake_256(self.label).digest(self.pos + n)[self.pos:]
        self.pos += n
        return out


def test_proof_bytes_unchanged(monkeypatch):
    monkeypatch.setattr("os.urandom", _Stream(b"blindproof/golden-proof"))
    qm = quantized_workload(WORKLOAD)
    prover = ModelProver.create(qm, CommitmentKey(b"\x5a" * 32), ledger=OpeningLedger(None))
    proof = prover.prove(prover.model.encode(example_input(WORKLOAD)), rng=np.random.default_rng(7))
    data = proof.to_bytes()
    monkeypatch.undo()
    assert verify_model_proof(prover.commitment, data).ok
    assert hashlib.sha256(data).hexdigest() == GOLDEN
