import os

os.environ.setdefault("BLINDPROOF_THREADS", "1")

import blindproof  # noqa: E402,F401  (pins thread pools before numpy/torch start them)


import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# property tests draw the same examples on every run (a CI run must not fail on a lucky draw);
# HYPOTHESIS_PROFILE=explore draws fresh ones
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


@pytest.fixture(scope="session")
def mlp_honest():
    """An honest mlp-784-56-10 prover, its encoded example input and a proof the verifier accepts:
    the common starting point of the must-reject tests that tamper with one part of it."""
    import numpy as np

    from blindproof.zk.proof.keys import CommitmentKey
    from blindproof.zk.proof.prover import ModelProver, example_input, quantized_workload
    from blindproof.zk.proof.verifier import verify_model_proof

    prover = ModelProver.create(quantized_workload("mlp-784-56-10"), CommitmentKey(b"\x0b" * 32))
    inputs = prover.model.encode(example_input("mlp-784-56-10"))
    proof = prover.prove(inputs, rng=np.random.default_rng(0))
    assert verify_model_proof(prover.commitment, proof.to_bytes()).ok
    return prover, inputs, proof


@pytest.fixture(autouse=True, scope="session")
def _test_keys_count_no_openings():
    """The suite's fixed test keys prove far more often than an opening budget allows (a proof per
    tampering test): keys without a file get a ledger that records nothing and never refuses. Tests
    of the budget itself pass their own :class:`~blindproof.zk.proof.keys.OpeningLedger`, and keys
    loaded from or saved to files (the CLI's) keep their real ledger."""
    from blindproof.zk.proof.keys import CommitmentKey, OpeningLedger

    class Unmetered(OpeningLedger):
        def charge(self, com, positions) -> int:
            return com.layout.hiding_symbols

        def openings_left(self, com) -> int:
            return 1 << 30

    real = CommitmentKey.ledger
    mp = pytest.MonkeyPatch()
    mp.setattr(CommitmentKey, "ledger", lambda self: real(self) if self.path is not None else Unmetered())
    yield
    mp.undo()


@pytest.fixture
def run_cli(capsys):
    """``run_cli("commit", ...)``: ``blindproof.cli.main`` in this process, its returncode, stdout and stderr
    (:func:`cli_runs.cli_here`); ``cli_runs.cli`` runs the real command in a subprocess."""
    from functools import partial

    from cli_runs import cli_here

    return partial(cli_here, capsys)
