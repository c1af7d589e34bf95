"""The linear-algebra op proofs on real integer-model traces (quantized workloads), and whole-program
proofs where every op kind of the program has a protocol."""

import dataclasses
import time

import numpy as np
import pytest
import torch

from blindproof.models.transformer import Transformer
from blindproof.models.workloads import MINILM_L6, get_workload, init_weights
from blindproof.zk.proof import program as P
from blindproof.zk.ops import base as B
from blindproof.zk.iop import claims as CL
from blindproof.zk.iop import layout as LAY
from blindproof.zk.ops import kinds, protocol
from blindproof.quant import quantize
from blindproof.zk.iop.transcript import Transcript

MINE = {"linear", "qk", "pv", "rescale", "add", "add_weight", "mul", "mul_weight", "embed", "split_heads",
        "merge_heads", "rope", "mean_pool"}


def _model(name: str, seq: int):
    if name == "minilm-shape":  # MiniLM-L6's widths and heads, one layer, small vocabulary, random weights
        cfg = dataclasses.replace(MINILM_L6, n_layers=1, vocab_size=512)
        model = init_weights(Transformer(cfg), 0)
        x = torch.randint(0, 512, (1, seq), generator=torch.Generator().manual_seed(0))
    else:
        wl = get_workload(name)
        model = wl.build(0)
        x = wl.example_input(0, 1)
        if seq:
            x = x[:, :seq]
    qm = quantize(model, x)
    return qm, qm.run(x)


def _values(qm, trace):
    """Trace + weights, and aux columns + shapes for the ops with a protocol (others keep trace shapes)."""
    vals = {n: np.asarray(v, dtype=np.int64) for n, v in trace.tensors.items()}
    vals.update({LAY.weight_name(n): np.asarray(w, dtype=np.int64) for n, w in qm.weights.items()})
    shapes = {n: v.shape for n, v in vals.items()}
    public = {n: vals[n] for n in qm.spec.inputs}
    ctx = B.ProverContext(Transcript(b"aux"), qm.spec, shapes, public=public, values=vals)
    for op in qm.spec.ops:
        if op.kind not in MINE:
            continue
        declared = protocol(op.kind).shapes(op, [shapes[n] for n in op.inputs], qm.spec)
        aux = protocol(op.kind).aux(ctx, op)
        vals.update(aux)
        shapes.update({k: v.shape for k, v in aux.items()})
        for k, v in declared.items():
            assert shapes[k] == v, (op.output, k, shapes[k], v)
    return vals, shapes, public


def _check_ops(name, seq, every=True):
    qm, trace = _model(name, seq)
    vals, shapes, public = _values(qm, trace)
    oracle = P.oracle_for(vals)
    seen = set()
    for i, op in enumerate(qm.spec.ops):
        if op.kind not in MINE or (not every and op.kind in seen):
            continue
        seen.add(op.kind)
        proof, claims, out = P.prove_op(qm.spec, i, vals, shapes, public)
        got = P.verify_op(qm.spec, i, out.value, B.OpProof.from_bytes(proof.to_bytes()), shapes, public)
        assert len(got) == len(claims) and all(a.same(b) for a, b in zip(claims, got)), op
        oracle.check(got)
    return seen


def test_tiny_llama_ops():
    seen = _check_ops("tiny-llama", 0, every=False)
    assert {"embed", "linear", "qk", "pv", "rope", "rescale", "mul", "mul_weight", "add", "split_heads",
            "merge_heads"} <= seen


def test_mlp_ops():
    assert _check_ops("mlp-784-56-10", 0) == {"linear", "rescale"}


@pytest.mark.slow
def test_gpt2_block_ops_small_seq():
    seen = _check_ops("gpt2-block", 8, every=False)
    assert {"embed", "add", "add_weight", "linear", "qk", "pv", "rescale"} <= seen


def test_minilm_shape_ops():
    seen = _check_ops("minilm-shape", 8, every=False)
    assert {"mean_pool", "add_weight", "linear", "qk", "pv"} <= seen


def _full_program(name, seq):
    qm, trace = _model(name, seq)
    missing = {op.kind for op in qm.spec.ops} - set(kinds())
    if missing:
        pytest.skip(f"no protocol yet for {sorted(missing)}")
    settler = CL.OracleSettler()
    t0 = time.perf_counter()
    proof = P.prove_trace(qm.spec, qm.weights, trace, settler)
    inputs = {n: trace.tensors[n] for n in qm.spec.inputs}
    outputs = {n: trace.tensors[n] for n in qm.spec.outputs}
    res = P.verify_trace(qm.spec, inputs, outputs, proof, settler)
    assert res.ok, res.reason
    return qm, trace, settler, proof, inputs, outputs, time.perf_counter() - t0


def test_mlp_program_and_must_reject():
    qm, trace, settler, proof, inputs, outputs, _ = _full_program("mlp-784-56-10", 0)
    # tampered public output
    bad_out = {k: v.copy() for k, v in outputs.items()}
    bad_out["logits"][0, 3] += 1
    assert not P.verify_trace(qm.spec, inputs, bad_out, proof, settler).ok
    # other input
    bad_in = {k: v.copy() for k, v in inputs.items()}
    bad_in["x"][0, 100] += 1
    assert not P.verify_trace(qm.spec, bad_in, outputs, proof, settler).ok
    # tampered intermediate: the hidden activation changed (and everything after recomputed by a
    # cheating prover that keeps the claimed output): the relations no longer hold
    tr = dataclasses.replace(trace, tensors=dict(trace.tensors))
    relu = tr.tensors["l0.relu"].copy()
    relu[0, 0] += 1
    tr.tensors["l0.relu"] = relu
    cheat = CL.OracleSettler()
    cheat_proof = P.prove_trace(qm.spec, qm.weights, tr, cheat, strict=False)
    assert not P.verify_trace(qm.spec, inputs, outputs, cheat_proof, cheat).ok
    # a proof with a byte flipped (a sample)
    rng = np.random.default_rng(0)
    for pos in rng.choice(len(proof), size=12, replace=False):
        bad = bytearray(proof)
        bad[pos] ^= 0x10
        assert not P.verify_trace(qm.spec, inputs, outputs, bytes(bad), settler).ok
    # a commitment to other data (the transcript and the settled tables differ)
    other = CL.OracleSettler({k: v for k, v in settler.tables.items()})
    other.tables["w:l1.acc.weight"] = other.tables["w:l1.acc.weight"].copy()
    other.tables["w:l1.acc.weight"][0] = (other.tables["w:l1.acc.weight"][0] + 1) % 2013265921
    assert not P.verify_trace(qm.spec, inputs, outputs, proof, other).ok


@pytest.mark.slow
def test_tiny_llama_program():
    _full_program("tiny-llama", 0)


def test_mlp_program_rejects_remainder_out_of_range():
    """The rounding relation kept true with q one lower and r one step higher: only the (batched)
    range check of r can catch it."""
    qm, trace = _model("mlp-784-56-10", 0)
    op = next(o for o in qm.spec.ops if o.output == "logits")
    s = np.broadcast_to(np.asarray(op.params["shift"]), trace.tensors["logits"].shape[-1:])
    tensors = dict(trace.tensors)
    j = int(np.argmax(s))
    for name in ("logits/q", "logits/r", "logits"):
        tensors[name] = tensors[name].copy()
    tensors["logits/q"][0, j] -= 1
    tensors["logits/r"][0, j] += 1 << int(s[j])
    tensors["logits"][0, j] = tensors["logits/q"][0, j]
    cheat = dataclasses.replace(trace, tensors=tensors)
    settler = CL.OracleSettler()
    proof = P.prove_trace(qm.spec, qm.weights, cheat, settler, strict=False)
    inputs = {n: tensors[n] for n in qm.spec.inputs}
    outputs = {n: tensors[n] for n in qm.spec.outputs}
    res = P.verify_trace(qm.spec, inputs, outputs, proof, settler)
    assert not res.ok and "lookup" in res.reason, res.reason
