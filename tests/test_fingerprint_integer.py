"""Integer probes on the project's integer model (quant): bit-exact harmlessness."""

import numpy as np
import pytest
import torch

from blindproof.fingerprint.integer import headroom, input_null_vectors, integer_probes
from blindproof.fingerprint.substitutes import magnitude_pruned
from blindproof.models.mlp import MLP

quant = pytest.importorskip("blindproof.quant")


@pytest.fixture(scope="module")
def programs():
    torch.manual_seed(0)
    model = MLP((64, 32, 32, 10)).eval()
    calib = torch.rand(64, 64)
    return quant.quantize(model, calib), quant.quantize(magnitude_pruned(model, 0.1), calib), calib


def test_integer_probes_leave_every_integer_unchanged(programs):
    qm, _, calib = programs
    vecs = input_null_vectors(qm.spec, qm.weights)
    w = qm.weights[qm.spec.ops[0].params["weight"]]
    assert vecs.shape == (32, 64) and not (w @ vecs.T).any()
    x = qm.encode(calib[:8])["x"]
    probes, idx = integer_probes(qm.spec, vecs, x, 16, np.random.default_rng(0))
    assert (np.abs(probes - x[idx]).max(axis=1) > 1000).all()  # far from the reference inputs
    base = quant.run_program(qm.spec, qm.weights, {"x": x[idx]})
    probed = quant.run_program(qm.spec, qm.weights, {"x": probes})
    for name in base.tensors:
        if name != "x":
            assert np.array_equal(base.tensors[name], probed.tensors[name]), name


def test_integer_probes_expose_another_integer_model(programs):
    qm, pruned, calib = programs
    vecs = input_null_vectors(qm.spec, qm.weights)
    x = qm.encode(calib[:8])["x"]
    probes, idx = integer_probes(qm.spec, vecs, x, 32, np.random.default_rng(1))
    ref_out = quant.run_program(qm.spec, qm.weights, {"x": x[idx]}).tensors["logits"]
    plain = quant.run_program(pruned.spec, pruned.weights, {"x": x[idx]}).tensors["logits"]
    probed = quant.run_program(pruned.spec, pruned.weights, {"x": probes}).tensors["logits"]
    # the int16 input range caps alpha (probes stay within about twice a natural input), so the
    # amplification is modest here: measured 1.8x
    assert np.abs(probed - ref_out).max() > 1.2 * np.abs(plain - ref_out).max()


def test_headroom_and_errors(programs):
    qm, _, _ = programs
    assert headroom(np.array([0, 10]), np.array([3, -2]), -100, 100) == 33
    assert headroom(np.array([5]), np.array([0]), -10, 10) == 2**31
    with pytest.raises(ValueError, match="shape"):
        integer_probes(qm.spec, input_null_vectors(qm.spec, qm.weights), np.zeros((2, 5)), 1,
                       np.random.default_rng(0))
