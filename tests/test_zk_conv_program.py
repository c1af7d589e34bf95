"""A whole convolutional program (conv → ReLU rescale → conv → ReLU → global mean pool → linear) proved
with the real prover: committed weights, zero knowledge, verified from bytes; a cheating trace rejected;
nothing left unhidden."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from blindproof.quant.conv import ConvGeometry
from blindproof.quant.quantizer import QuantizedModel
from blindproof.quant.reference import run_program
from blindproof.quant.spec import Op, QuantSpec, TensorSpec, WeightSpec
from blindproof.zk.proof import program as P
from blindproof.zk.proof.keys import CommitmentKey
from blindproof.zk.proof.prover import ModelProver
from blindproof.zk.proof.verifier import verify_model_proof

KEY = CommitmentKey(b"\x0d" * 32)
I16 = (1 << 15) - 1
ACC = (1 << 29) - 1


def _cnn(seed: int = 0) -> tuple[QuantizedModel, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    g1, g2 = ConvGeometry((1, 1), (1, 1), (1, 1)), ConvGeometry((2, 2), (0, 0), (1, 1))
    t = lambda n, lo=-I16, hi=I16, role="activation": TensorSpec(n, 0, lo, hi, role)  # noqa: E731
    ops = (Op("conv", ("x",), "c1", {"weight": "k1", "bias": "b1", **g1.to_params()}),
           Op("rescale", ("c1",), "a1", {"shift": 6}),
           Op("conv", ("a1",), "c2", {"weight": "k2", "bias": None, **g2.to_params()}),
           Op("rescale", ("c2",), "a2", {"shift": 8}),
           Op("mean_pool", ("a2",), "p"),
           Op("linear", ("p",), "y", {"weight": "fc", "bias": "fcb"}))
    tensors = {x.name: x for x in (t("x", role="input"), t("c1", -ACC, ACC, "accumulator"), t("a1", 0, I16),
                                   t("c2", -ACC, ACC, "accumulator"), t("a2", 0, I16), t("p", 0, I16),
                                   t("y", -ACC, ACC, "accumulator"))}
    weights = {"k1": WeightSpec("k1", (4, 3, 3, 3), "int8", 0), "b1": WeightSpec("b1", (4,), "int32", 0),
               "k2": WeightSpec("k2", (8, 3, 3, 4), "int8", 0), "fc": WeightSpec("fc", (3, 8), "int8", 0),
               "fcb": WeightSpec("fcb", (3,), "int32", 0)}
    spec = QuantSpec(arch={"family": "test-cnn"}, inputs=("x",), outputs=("y",), ops=ops, tensors=tensors,
                     weights=weights, tables={})
    w = {"k1": rng.integers(-127, 128, (4, 3, 3, 3)), "b1": rng.integers(-5000, 5000, 4),
         "k2": rng.integers(-127, 128, (8, 3, 3, 4)), "fc": rng.integers(-127, 128, (3, 8)),
         "fcb": rng.integers(-5000, 5000, 3)}
    return QuantizedModel(spec, w), {"x": rng.integers(-300, 300, (1, 7, 6, 3))}


@pytest.fixture(scope="module")
def proved():
    qm, inputs = _cnn()
    prover = ModelProver.create(qm, KEY)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        proof = prover.prove(inputs)
    return prover, inputs, proof, [str(w.message) for w in caught if issubclass(w.category, P.NotHiddenWarning)]


def test_a_cnn_proof_verifies_and_hides_everything(proved):
    prover, inputs, proof, not_hidden = proved
    out = run_program(prover.model.spec, prover.model.weights, inputs).output()
    assert np.array_equal(proof.outputs["y"], out)
    assert verify_model_proof(prover.commitment, proof.to_bytes()).ok
    assert not_hidden == []


def test_a_cnn_proof_of_another_output_is_rejected(proved):
    prover, inputs, proof, _ = proved
    other = dict(proof.outputs)
    other["y"] = other["y"].copy()
    other["y"][0, 1] += 1
    assert not verify_model_proof(prover.commitment, proof.to_bytes(), outputs=other).ok
    assert not verify_model_proof(prover.commitment, proof.without_public().to_bytes(), proof.inputs, other).ok
    assert verify_model_proof(prover.commitment, proof.without_public().to_bytes(), proof.inputs, proof.outputs).ok


def test_a_cheating_trace_through_a_conv_is_rejected(proved):
    """The prover commits a first conv output with one entry changed and carries it honestly onward."""
    prover, inputs, _, _ = proved
    spec = prover.model.spec
    trace = run_program(spec, prover.model.weights, inputs)
    c1 = trace.tensors["c1"].copy()
    c1[0, 3, 2, 1] += 1 << 7
    bad = run_program(QuantSpec(spec.arch, ("c1",), spec.outputs, spec.ops[1:], spec.tensors, spec.weights, {}),
                      prover.model.weights, {"c1": c1})
    trace.tensors.update(bad.tensors)
    trace.tensors["c1"] = c1
    proof = prover.prove(inputs, trace=trace, strict=False)
    assert not verify_model_proof(prover.commitment, proof.to_bytes()).ok
