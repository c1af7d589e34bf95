"""Must-reject and must-not-leak tests from an adversarial review of the conv and pooling proofs: a pool
output fed to its reader apart from the committed, range-checked one; bias shapes that broadcast
differently in the reference and the proof; a detached output beyond every value of the program; and
the rank of what conv / pool / max-pool proofs reveal."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _pytest.monkeypatch import MonkeyPatch

import test_zk_conv_program as CNN
import test_zk_leakage_rank as TLR
from blindproof.quant.conv import ConvGeometry
from blindproof.quant.quantizer import QuantizedModel
from blindproof.quant.reference import run_program
from blindproof.quant.spec import Op, QuantSpec, TensorSpec, WeightSpec
from blindproof.zk.field import babybear as F
from blindproof.zk.iop import layout as LAY
from blindproof.zk.ops import matmul
from blindproof.zk.proof.commitment import ModelCommitment
from blindproof.zk.proof.prover import ModelProver
from blindproof.zk.proof.verifier import verify_model_proof

I16, ACC, P = CNN.I16, CNN.ACC, F.P
t = lambda n, lo=-I16, hi=I16, role="activation": TensorSpec(n, 0, lo, hi, role)  # noqa: E731


def _sequence_pool(seed: int = 5):
    """linear → ReLU rescale → mean_pool over the sequence → linear (a pooled classifier head)."""
    rng = np.random.default_rng(seed)
    ops = (Op("linear", ("x",), "h", {"weight": "w1", "bias": None}), Op("rescale", ("h",), "a", {"shift": 7}),
           Op("mean_pool", ("a",), "p"), Op("linear", ("p",), "y", {"weight": "fc", "bias": "fcb"}))
    spec = QuantSpec(arch={"family": "test-seq"}, inputs=("x",), outputs=("y",), ops=ops,
                     tensors={x.name: x for x in (t("x", role="input"), t("h", -ACC, ACC, "accumulator"), t("a", 0, I16),
                                                  t("p", 0, I16), t("y", -ACC, ACC, "accumulator"))},
                     weights={"w1": WeightSpec("w1", (8, 5), "int8", 0), "fc": WeightSpec("fc", (2, 8), "int8", 0),
                              "fcb": WeightSpec("fcb", (2,), "int32", 0)}, tables={})
    w = {"w1": rng.integers(-127, 128, (8, 5)), "fc": rng.integers(-127, 128, (2, 8)),
         "fcb": rng.integers(-5000, 5000, 2)}
    return QuantizedModel(spec, w), {"x": rng.integers(-3000, 3000, (1, 7, 5))}


def _signed(v: int) -> int:
    v %= P
    return v - P if v > P // 2 else v


@pytest.mark.parametrize("make, pooled", [(CNN._cnn, "p"), (_sequence_pool, "p")], ids=["spatial", "sequence"])
def test_a_pool_output_read_apart_from_the_committed_one_is_rejected(make, pooled, monkeypatch):
    """The prover commits the honest, range-checked pool output and another remainder ``r'``, and lets the
    reader's sumcheck run on ``(Σx + T/2 − r')/T mod p``: a huge pooled value, whose image through the head
    lands inside the output's declared range. Accepted before every output claim went to the opening."""
    qm, inputs = make()
    spec, w = qm.spec, qm.weights
    trace = run_program(spec, w, inputs)
    y_true, r_true = trace.tensors["y"], trace.tensors[f"{pooled}/r"]
    T = int(np.prod(trace.tensors[spec.ops[[op.output for op in spec.ops].index(pooled)].inputs[0]].shape[1:-1]))
    fc = w["fc"].astype(np.int64)
    cheat = None
    for c0 in range(r_true.shape[1]):
        for rr in range(T):
            if rr == r_true[0, c0]:
                continue
            d = (-(rr - int(r_true[0, c0])) * pow(T, P - 2, P)) % P
            y = [_signed(int(y_true[0, o]) + int(fc[o, c0]) * d) for o in range(fc.shape[0])]
            if all(abs(v) <= ACC for v in y):
                cheat = (c0, rr, d, y)
                break
        if cheat:
            break
    assert cheat, "no in-range cheat for this seed"
    c0, rr, d, y_fake = cheat
    trace.tensors[f"{pooled}/r"] = r_true.copy()
    trace.tensors[f"{pooled}/r"][0, c0] = rr
    trace.tensors["y"] = np.array([y_fake], dtype=np.int64)
    implied = F.from_signed(trace.tensors[pooled].astype(np.int64)).copy()
    implied[0, c0] = (int(implied[0, c0]) + d) % P
    implied = LAY.canonical(implied.astype(np.uint32))
    honest = matmul.prove

    def reader_sees_the_implied_pool(ctx, op, claims):
        if op.kind == "linear" and op.inputs[0] == pooled:
            saved = ctx._tables.get(pooled)
            ctx._tables[pooled] = implied
            try:
                return honest(ctx, op, claims)
            finally:
                ctx._tables[pooled] = saved
        return honest(ctx, op, claims)

    monkeypatch.setattr(matmul, "prove", reader_sees_the_implied_pool)
    prover = ModelProver.create(qm, CNN.KEY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proof = prover.prove(inputs, trace=trace, strict=False)
    com = ModelCommitment.from_bytes(prover.commitment.to_bytes())
    assert not np.array_equal(proof.outputs["y"], y_true)
    assert not verify_model_proof(com, proof.to_bytes()).ok


@pytest.mark.parametrize("kind", ["conv", "linear"])
def test_a_bias_that_is_not_one_value_per_channel_is_refused(kind):
    """An ``(O, 1)`` bias has the variables of ``(O,)``: the proof added it per channel while the reference
    broadcast it per position, so the honest output did not verify and another one did."""
    if kind == "conv":
        op = Op("conv", ("x",), "y", {"weight": "k", "bias": "b", **ConvGeometry((1,), (0,), (1,)).to_params()})
        k = WeightSpec("k", (3, 3, 2), "int8", 0)
    else:
        op = Op("linear", ("x",), "y", {"weight": "k", "bias": "b"})
        k = WeightSpec("k", (3, 2), "int8", 0)
    for shape in [(3, 1), (1,), (1, 3)]:
        with pytest.raises(ValueError, match="bias of shape"):
            QuantSpec(arch={"family": "t"}, inputs=("x",), outputs=("y",), ops=(op,),
                      tensors={"x": t("x", role="input"), "y": t("y", -ACC, ACC, "accumulator")},
                      weights={"k": k, "b": WeightSpec("b", shape, "int32", 0)}, tables={})


def test_a_detached_output_beyond_every_program_value_is_rejected():
    """A hostile spec declares its output range wider than p/2; a detached proof binds the output by
    digest only, so ``Y + p`` verified beside ``Y``."""
    qm, inputs = CNN._cnn()
    spec = qm.spec
    tensors = dict(spec.tensors)
    tensors["y"] = TensorSpec("y", 0, -(1 << 40), 1 << 40, "accumulator")
    qm = QuantizedModel(QuantSpec(spec.arch, spec.inputs, spec.outputs, spec.ops, tensors, spec.weights, {}), qm.weights)
    prover = ModelProver.create(qm, CNN.KEY)
    trace = run_program(qm.spec, qm.weights, inputs)
    y = trace.tensors["y"].copy()
    trace.tensors["y"] = y + P
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proof = prover.prove(inputs, trace=trace, strict=False)
    com = ModelCommitment.from_bytes(prover.commitment.to_bytes())
    res = verify_model_proof(com, proof.without_public().to_bytes(), inputs, {"y": y + P})
    assert not res.ok and "2^29" in res.reason


def _pooled_two_channel_cnn(channels: int = 2, length: int = 5):
    """A 1-D CNN whose pooled map has ``channels`` channels: with two, the pool input's randomizer
    coordinates were all pooled positions, and a claim at ½ showed its per-channel sums."""
    rng = np.random.default_rng(9)
    g = ConvGeometry((1,), (0,), (1,))
    ops = (Op("conv", ("x",), "c1", {"weight": "k1", "bias": "b1", **g.to_params()}),
           Op("rescale", ("c1",), "a1", {"shift": 4}),
           Op("conv", ("a1",), "c2", {"weight": "k2", "bias": "b2", **g.to_params()}),
           Op("rescale", ("c2",), "a2", {"shift": 4}),
           Op("mean_pool", ("a2",), "p"),
           Op("linear", ("p",), "y", {"weight": "fc", "bias": None}))
    spec = QuantSpec(arch={"family": "t"}, inputs=("x",), outputs=("y",), ops=ops,
                     tensors={x.name: x for x in (t("x", role="input"), t("c1", -ACC, ACC, "accumulator"),
                                                  t("a1", 0, I16), t("c2", -ACC, ACC, "accumulator"), t("a2", 0, I16),
                                                  t("p", 0, I16), t("y", -ACC, ACC, "accumulator"))},
                     weights={"k1": WeightSpec("k1", (2, 1, 2), "int8", 0), "b1": WeightSpec("b1", (2,), "int32", 0),
                              "k2": WeightSpec("k2", (channels, 2, 2), "int8", 0),
                              "b2": WeightSpec("b2", (channels,), "int32", 0),
                              "fc": WeightSpec("fc", (2, channels), "int8", 0)}, tables={})
    w = {"k1": rng.integers(-127, 128, (2, 1, 2)), "b1": rng.integers(-500, 500, 2),
         "k2": rng.integers(-127, 128, (channels, 2, 2)), "b2": rng.integers(-500, 500, channels),
         "fc": rng.integers(-127, 128, (2, channels))}
    return QuantizedModel(spec, w), {"x": rng.integers(-300, 300, (1, length, 2))}


def _leaking(label: str, qm: QuantizedModel, inputs) -> dict:
    """The committed tensors some combination of revealed values shows (tests/test_zk_leakage_rank.py's
    count, run on a hand-built program)."""
    mp = MonkeyPatch()
    try:
        mp.setattr(TLR, "BINARY", label)
        mp.setattr(TLR, "_binary_classifier", lambda: (qm, inputs["x"].astype(np.float64)))
        revealed, payback, rules, spec, shapes = TLR._revealed(label, mp)
    finally:
        mp.undo()
    return {tensor: k for tensor, _, k in TLR.leaks(revealed, payback, rules, spec, shapes).values()}


@pytest.mark.parametrize("case", ["pool-2ch", "pool-4ch", "cnn", "lenet-maxpool"])
def test_conv_and_pool_proofs_reveal_nothing_by_rank(case):
    if case == "pool-2ch":
        qm, inputs = _pooled_two_channel_cnn(2, 9)
    elif case == "pool-4ch":
        qm, inputs = _pooled_two_channel_cnn(4, 5)
    elif case == "cnn":
        qm, inputs = CNN._cnn()
    else:
        qm, inputs = CNN.lenet()
    assert _leaking(case, qm, inputs) == {}


def _shared_point_program(case: str):
    """Programs in which two readers fix a width-2 tensor's coordinates above its blinding variable alike:
    two linears of one map (or one weight) whose outputs are added."""
    rng = np.random.default_rng(1)
    g = ConvGeometry((1, 1), (0, 0), (1, 1))
    if case in ("pool-b2", "max-b2"):
        ops = [Op("conv", ("x",), "c1", {"weight": "k1", "bias": None, **g.to_params()}),
               Op("rescale", ("c1",), "a", {"shift": 4}),
               Op("mean_pool", ("a",), "m") if case == "pool-b2" else
               Op("max_pool", ("a",), "m", {"kernel": [2, 1], "stride": [2, 1]}),
               Op("linear", ("m",), "u", {"weight": "f1", "bias": None}),
               Op("linear", ("m",), "v", {"weight": "f2", "bias": None}), Op("add", ("u", "v"), "y")]
        tens = [t("x", role="input"), t("c1", -ACC, ACC, "accumulator"), t("a", 0, I16), t("m", 0, I16),
                t("u", -ACC, ACC, "accumulator"), t("v", -ACC, ACC, "accumulator"), t("y", -ACC, ACC, "accumulator")]
        fw = (2, 2) if case == "pool-b2" else (2, 1, 1, 2)
        shapes = {"k1": (2, 1, 1, 2), "f1": fw, "f2": fw}
        x = rng.integers(-300, 300, (2, 2, 1, 2))
        leaked = "m"
    else:  # one weight f (2, 2) read by two linears whose outputs are added
        ops = [Op("linear", ("x",), "h", {"weight": "w1", "bias": None}), Op("rescale", ("h",), "a", {"shift": 7}),
               Op("linear", ("x",), "h2", {"weight": "w2", "bias": None}), Op("rescale", ("h2",), "a2", {"shift": 7}),
               Op("linear", ("a",), "u", {"weight": "f", "bias": None}),
               Op("linear", ("a2",), "v", {"weight": "f", "bias": None}), Op("add", ("u", "v"), "y")]
        tens = [t("x", role="input"), t("h", -ACC, ACC, "accumulator"), t("a", -I16, I16),
                t("h2", -ACC, ACC, "accumulator"), t("a2", -I16, I16), t("u", -ACC, ACC, "accumulator"),
                t("v", -ACC, ACC, "accumulator"), t("y", -ACC, ACC, "accumulator")]
        shapes = {"w1": (2, 4), "w2": (2, 4), "f": (2, 2)}
        x = rng.integers(-3000, 3000, (1, 3, 4))
        leaked = "w:f"
    spec = QuantSpec(arch={"family": "t"}, inputs=("x",), outputs=("y",), ops=tuple(ops),
                     tensors={z.name: z for z in tens},
                     weights={k: WeightSpec(k, s, "int8", 0) for k, s in shapes.items()}, tables={})
    return QuantizedModel(spec, {k: rng.integers(-127, 128, s) for k, s in shapes.items()}), {"x": x}, leaked


@pytest.mark.parametrize("case", ["pool-b2", "max-b2", "shared-weight"])
def test_two_reads_of_one_randomizer_point_are_named_as_not_hidden(case):
    """Two revealed values of a tensor whose randomizer is read at one point: a known combination of them
    cancels the randomizer, and one proof showed a pooled map (or a whole 2×2 weight). The protocol does
    not hide these yet; the prover must say so instead of claiming zero knowledge silently."""
    qm, inputs, leaked = _shared_point_program(case)
    assert _leaking(case, qm, inputs)  # the rank count confirms values are revealed
    prover = ModelProver.create(qm, CNN.KEY)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        proof = prover.prove(inputs)
    text = " ".join(str(w.message) for w in caught if issubclass(w.category, CNN.P.NotHiddenWarning))
    assert f"{leaked} (revealed" in text, text
    assert verify_model_proof(prover.commitment, proof.to_bytes()).ok
