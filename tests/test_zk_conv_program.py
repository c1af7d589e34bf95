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


def test_a_classifier_reading_a_whole_feature_map_proves():
    """Conv → ReLU → a linear over the whole (h, w, c) map (torch's Flatten then Linear), channels not a
    power of two: the rescale pins the map's padding, so the padding rule accepts it."""
    rng = np.random.default_rng(3)
    t = lambda n, lo=-I16, hi=I16, role="activation": TensorSpec(n, 0, lo, hi, role)  # noqa: E731
    g = ConvGeometry((1, 1), (0, 0), (1, 1))
    ops = (Op("conv", ("x",), "c", {"weight": "k", "bias": None, **g.to_params()}),
           Op("rescale", ("c",), "a", {"shift": 6}),
           Op("linear", ("a",), "y", {"weight": "fc", "bias": "fcb"}))
    spec = QuantSpec(arch={"family": "test-cnn"}, inputs=("x",), outputs=("y",), ops=ops,
                     tensors={x.name: x for x in (t("x", role="input"), t("c", -ACC, ACC, "accumulator"),
                                                  t("a", 0, I16), t("y", -ACC, ACC, "accumulator"))},
                     weights={"k": WeightSpec("k", (3, 2, 2, 1), "int8", 0),
                              "fc": WeightSpec("fc", (2, 4, 3, 3), "int8", 0),
                              "fcb": WeightSpec("fcb", (2,), "int32", 0)}, tables={})
    qm = QuantizedModel(spec, {"k": rng.integers(-127, 128, (3, 2, 2, 1)), "fc": rng.integers(-127, 128, (2, 4, 3, 3)),
                               "fcb": rng.integers(-99, 99, 2)})
    inputs = {"x": rng.integers(-300, 300, (1, 5, 4, 1))}
    prover = ModelProver.create(qm, KEY)
    proof = prover.prove(inputs)
    assert verify_model_proof(prover.commitment, proof.to_bytes()).ok
    other = {"y": proof.outputs["y"] + np.array([[0, 1]])}
    assert not verify_model_proof(prover.commitment, proof.without_public().to_bytes(), proof.inputs, other).ok


def test_the_padding_rule_covers_conv_and_feature_map_linears():
    """Junk in a hostile committer's weight padding reaches a real output through a sum over a padded axis
    of a tensor whose padding nothing pins: refused at load for a conv's channels and for any axis a
    feature-map linear contracts."""
    from blindproof.zk.proof.config import check_padding_sound
    qm, _ = _cnn()
    spec = qm.spec
    check_padding_sound(spec)
    # the second conv reading the first's accumulator (3 channels of padding 1, nothing pins them)
    k2 = dict(spec.weights)
    k2["k2"] = WeightSpec("k2", (8, 3, 3, 3), "int8", 0)
    k2["k1"] = WeightSpec("k1", (3, 3, 3, 3), "int8", 0)
    k2["b1"] = WeightSpec("b1", (3,), "int32", 0)
    bad = QuantSpec(spec.arch, spec.inputs, spec.outputs,
                    tuple(Op("conv", ("c1",), "c2", op.params) if op.output == "c2" else op for op in spec.ops),
                    spec.tensors, k2, {})
    with pytest.raises(ValueError, match="conv c2: input 'c1' .*not pinned"):
        check_padding_sound(bad)
    # a feature-map linear over (3, 3, 8) reading an accumulator: the 3s are padded
    t = dict(spec.tensors)
    ops = tuple(op for op in spec.ops if op.kind != "mean_pool" and op.kind != "linear") + (
        Op("linear", ("c2",), "y", {"weight": "fc", "bias": None}),)
    w = dict(spec.weights)
    w["fc"] = WeightSpec("fc", (3, 3, 2, 8), "int8", 0)
    bad = QuantSpec(spec.arch, spec.inputs, spec.outputs, ops, t, w, {})
    with pytest.raises(ValueError, match="linear y: input 'c2' \\(width 3"):
        check_padding_sound(bad)


def lenet(seed: int = 5) -> tuple[QuantizedModel, dict[str, np.ndarray]]:
    """Conv → ReLU → 2×2 max pool → conv (reading the pool's pinned padding, 3 channels) → ReLU → a linear
    over the whole map."""
    rng = np.random.default_rng(seed)
    t = lambda n, lo=-I16, hi=I16, role="activation": TensorSpec(n, 0, lo, hi, role)  # noqa: E731
    g = ConvGeometry((1, 1), (1, 1), (1, 1))
    ops = (Op("conv", ("x",), "c1", {"weight": "k1", "bias": "b1", **g.to_params()}),
           Op("rescale", ("c1",), "a1", {"shift": 6}),
           Op("max_pool", ("a1",), "m1", {"kernel": [2, 2], "stride": [2, 2]}),
           Op("conv", ("m1",), "c2", {"weight": "k2", "bias": None, **g.to_params()}),
           Op("rescale", ("c2",), "a2", {"shift": 8}),
           Op("linear", ("a2",), "y", {"weight": "fc", "bias": None}))
    spec = QuantSpec(arch={"family": "test-cnn"}, inputs=("x",), outputs=("y",), ops=ops,
                     tensors={x.name: x for x in (t("x", role="input"), t("c1", -ACC, ACC, "accumulator"),
                                                  t("a1", 0, I16), t("m1", 0, I16), t("c2", -ACC, ACC, "accumulator"),
                                                  t("a2", 0, I16), t("y", -ACC, ACC, "accumulator"))},
                     weights={"k1": WeightSpec("k1", (3, 3, 3, 1), "int8", 0), "b1": WeightSpec("b1", (3,), "int32", 0),
                              "k2": WeightSpec("k2", (5, 3, 3, 3), "int8", 0),
                              "fc": WeightSpec("fc", (2, 3, 2, 5), "int8", 0)}, tables={})
    qm = QuantizedModel(spec, {"k1": rng.integers(-127, 128, (3, 3, 3, 1)), "b1": rng.integers(-999, 999, 3),
                               "k2": rng.integers(-127, 128, (5, 3, 3, 3)), "fc": rng.integers(-127, 128, (2, 3, 2, 5))})
    return qm, {"x": rng.integers(-300, 300, (1, 7, 5, 1))}


def test_a_lenet_shaped_program_with_max_pooling_proves_and_hides():
    """The LeNet-shaped program: proved with zero knowledge, nothing left unhidden; a wrong output is
    rejected."""
    qm, inputs = lenet()
    spec = qm.spec
    prover = ModelProver.create(qm, KEY)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        proof = prover.prove(inputs)
    assert [str(w.message) for w in caught if issubclass(w.category, P.NotHiddenWarning)] == []
    assert np.array_equal(proof.outputs["y"], run_program(spec, qm.weights, inputs).output())
    assert verify_model_proof(prover.commitment, proof.to_bytes()).ok
    other = {"y": proof.outputs["y"] + np.array([[1, 0]])}
    assert not verify_model_proof(prover.commitment, proof.without_public().to_bytes(), proof.inputs, other).ok
