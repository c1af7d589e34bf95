import os

os.environ.setdefault("BLINDPROOF_THREADS", "1")

import blindproof  # noqa: E402,F401  (pins thread pools before numpy/torch start them)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def mlp_honest():
    """An honest mlp-784-56-10 prover, its encoded example input and a proof the verifier accepts:
    the common starting point of the must-reject tests that tamper with one part of it."""
    import numpy as np

    from blindproof.zk.commitment import CommitmentKey
    from blindproof.zk.prover import ModelProver, example_input, quantized_workload
    from blindproof.zk.verifier import verify_model_proof

    prover = ModelProver.create(quantized_workload("mlp-784-56-10"), CommitmentKey(b"\x0b" * 32))
    inputs = prover.model.encode(example_input("mlp-784-56-10"))
    proof = prover.prove(inputs, rng=np.random.default_rng(0))
    assert verify_model_proof(prover.commitment, proof.to_bytes()).ok
    return prover, inputs, proof
