"""A generic malicious prover: perturb one committed tensor (or one claimed value an op hands on),
prove the rest honestly, and expect the real verifier to reject.

The trace sweep covers one tensor of every kind the tiny-llama program commits and opens (op outputs
and witnesses: quotients, remainders, norms' sums and roots), at a random entry; the
claim sweep perturbs the first claim each kind of op returns; the weight sweep changes one weight of
every kind. ``-m long`` runs every committed tensor, every op and every weight (tens of minutes)."""

from __future__ import annotations

import re
from typing import Callable

import numpy as np
import pytest

from blindproof.zk.field import babybear as F
from blindproof.zk import ops as zk_ops
from blindproof.zk.proof.keys import CommitmentKey
from blindproof.zk.ops import base as B
from blindproof.zk.iop import claims as CL
from blindproof.zk.proof.prover import ModelProver, PcsProverSettler, example_input, quantized_workload
from blindproof.quant import Trace
from blindproof.zk.proof.verifier import verify_model_proof

pytestmark = pytest.mark.timeout(900)
KEY = CommitmentKey(b"\x2a" * 32)
SEQ = 4


@pytest.fixture(scope="module")
def llama():
    qm = quantized_workload("tiny-llama")
    prover = ModelProver.create(qm, KEY)
    x = example_input("tiny-llama")[:, :SEQ]
    inputs = qm.encode(x)
    trace = qm.run(x)
    return prover, inputs, trace, _read_tensors(prover, inputs)


def _read_tensors(prover: ModelProver, inputs) -> set[str]:
    """The committed tensors an honest proof opens: only through these does a committed value reach
    the verifier. (A tensor whose every claim its producing op reduces is never read in its committed
    form, and a witness the protocol never reads, such as a rescale quotient where the output plays
    it, constrains nothing: changing either alone changes no checked value.)"""
    seen: set[str] = set()
    real = PcsProverSettler.settle

    def record(self, claims, transcript):  # a randomized claim names its tensor in its first term
        seen.update(c.terms[0][0] if hasattr(c, "terms") else c.tensor for c in claims)
        return real(self, claims, transcript)

    PcsProverSettler.settle = record
    try:
        prover.prove(inputs, rng=np.random.default_rng(0))
    finally:
        PcsProverSettler.settle = real
    return seen


def _committed(llama) -> list[str]:
    prover, _, trace, read = llama
    spec = prover.model.spec
    public = set(spec.inputs) | set(spec.outputs)
    return [n for n in trace.tensors if n not in public and n in read]


def _kinds(spec) -> Callable[[str], tuple[str, str]]:
    """A tensor's kind: the kind of the op that computes it and which of its tensors it is (output,
    or the witness suffix with digits dropped): ``b0.attn.q/r`` and ``b1.mlp.up/r`` are one kind."""
    producer = {op.output: op.kind for op in spec.ops}

    def kind(name: str) -> tuple[str, str]:
        base = re.split(r"[/~]", name, maxsplit=1)[0]
        return producer.get(base, "?"), re.sub(r"\d+", "", name[len(base):])

    return kind


def _one_per_kind(names: list[str], kind) -> list[str]:
    seen: dict = {}
    for n in names:
        seen.setdefault(kind(n), n)
    return list(seen.values())


def _one_per_weight_kind(names: list[str]) -> list[str]:
    """One weight per name with its block index dropped (b0.mlp.up and b1.mlp.up are one kind)."""
    seen: dict = {}
    for n in names:
        seen.setdefault(re.sub(r"\bb\d+\.", "b.", n), n)
    return list(seen.values())


def _perturbed(trace: Trace, name: str, seed: int) -> Trace:
    tensors = dict(trace.tensors)
    a = np.asarray(tensors[name], dtype=np.int64).copy()
    i = int(np.random.default_rng(seed).integers(a.size))
    a.reshape(-1)[i] += 1
    tensors[name] = a
    return Trace(tensors=tensors, outputs=trace.outputs)


def _assert_rejected(prover: ModelProver, inputs, build, what: str) -> None:
    try:
        proof = build()
    except (ValueError, CL.Reject, AssertionError):
        return  # the cheating prover could not even build a proof
    res = verify_model_proof(prover.commitment, proof.to_bytes())
    assert not res.ok, f"{what}: accepted"


def _trace_sweep(llama, names: list[str]) -> None:
    prover, inputs, trace, _ = llama
    for k, name in enumerate(names):
        bad = _perturbed(trace, name, seed=k)
        _assert_rejected(prover, inputs, lambda: prover.prove(inputs, trace=bad, strict=False,
                                                              rng=np.random.default_rng(k)),
                         f"tensor {name!r} perturbed")


def test_every_kind_of_committed_tensor_perturbed_is_rejected(llama):
    names = _one_per_kind(_committed(llama), _kinds(llama[0].model.spec))
    assert len(names) >= 15  # outputs and witnesses of every op kind whose tensors are opened
    _trace_sweep(llama, names)


@pytest.mark.long
def test_every_committed_tensor_perturbed_is_rejected(llama):
    _trace_sweep(llama, _committed(llama))


def _claim_sweep(llama, monkeypatch, op_indices: list[int]) -> None:
    prover, inputs, _, _ = llama
    spec = prover.model.spec
    for i in op_indices:
        op = spec.ops[i]
        proto = zk_ops.protocol(op.kind)
        real = proto.prove

        def lying(ctx, op_, out_claims, _real=real, _target=op.output):
            proof, claims = _real(ctx, op_, out_claims)
            if op_.output == _target and claims:
                c = claims[0]
                claims = [CL.Claim(c.tensor, c.point, F.eadd(c.value, F.eone())),
                          *claims[1:]]
            return proof, claims

        monkeypatch.setattr(proto, "prove", lying)
        try:
            _assert_rejected(prover, inputs, lambda: prover.prove(inputs, strict=False,
                                                                  rng=np.random.default_rng(i)),
                             f"first claim handed on by op {op.kind} -> {op.output} changed")
        finally:
            monkeypatch.setattr(proto, "prove", real)


def test_a_changed_claim_of_every_op_kind_is_rejected(llama, monkeypatch):
    spec = llama[0].model.spec
    first = {}
    for i, op in enumerate(spec.ops):
        first.setdefault(op.kind, i)
    _claim_sweep(llama, monkeypatch, sorted(first.values()))


@pytest.mark.long
def test_a_changed_claim_of_every_op_is_rejected(llama, monkeypatch):
    _claim_sweep(llama, monkeypatch, list(range(len(llama[0].model.spec.ops))))


def _weight_sweep(llama, names: list[str]) -> None:
    """A trace computed with one weight entry changed (every tensor after it recomputed, so the
    output changes), proved against the commitment to the real weights."""
    from blindproof.quant import run_program

    prover, inputs, trace, _ = llama
    qm = prover.model
    for k, name in enumerate(names):
        w = dict(qm.weights)
        a = np.asarray(w[name], dtype=np.int64).copy()
        flat = a.reshape(-1)
        i = int(np.random.default_rng(k).integers(flat.size))
        flat[i] = -flat[i] if flat[i] else 1
        w[name] = a
        other = run_program(qm.spec, w, inputs)
        if all(np.array_equal(other.tensors[o], trace.tensors[o]) for o in qm.spec.outputs):
            continue  # the change did not reach the output: the statement is still true
        _assert_rejected(prover, inputs, lambda: prover.prove(inputs, trace=other, strict=False,
                                                              rng=np.random.default_rng(k)),
                         f"weight {name!r} changed at entry {i}")


def test_a_changed_weight_of_every_kind_is_rejected(llama):
    _weight_sweep(llama, _one_per_weight_kind(list(llama[0].model.weights)))


@pytest.mark.long
def test_a_changed_entry_of_every_weight_is_rejected(llama):
    _weight_sweep(llama, list(llama[0].model.weights))


def test_swiglu_gate_read_only_by_its_lookup_is_proved(llama):
    """The gate branch of a SwiGLU block is read only by its SiLU table lookup, which is deferred to
    the end of the program; a proof made with other gate weights (every logit different) was
    accepted while that lookup tied its input too late for the gate's ops to be proved."""
    from blindproof.quant import run_program

    prover, inputs, trace, _ = llama
    qm = prover.model
    w = dict(qm.weights)
    w["b0.mlp.gate.acc.weight"] = -np.asarray(w["b0.mlp.gate.acc.weight"])
    forged = run_program(qm.spec, w, inputs)
    out = qm.spec.outputs[0]
    assert not np.array_equal(forged.tensors[out], trace.tensors[out])
    proof = prover.prove(inputs, trace=forged, strict=False, rng=np.random.default_rng(7))
    res = verify_model_proof(prover.commitment, proof.to_bytes(), inputs=inputs)
    assert not res.ok


def test_a_deferred_lookup_may_not_read_an_earlier_ops_tensor(llama):
    """The program rule that keeps every computed tensor's op proved: both sides refuse a deferred
    lookup on a tensor computed by an earlier op (it must be tied at op time)."""
    from blindproof.zk.proof import program
    from blindproof.zk.iop.transcript import Transcript

    prover, inputs, trace, _ = llama
    spec = prover.model.spec
    i = next(k for k, op in enumerate(spec.ops) if op.kind == "lookup")
    x = spec.ops[i].inputs[0]
    shapes = program.infer_shapes(spec, {n: np.shape(inputs[n]) for n in spec.inputs})
    ctx = B.VerifierContext(Transcript(b"t"), spec, shapes, public={}, lookups=B.LookupBatch())
    run = program._Run(spec, {})
    table = None  # the rule reads only the groups' column names
    ctx.lookups.add(table, [((spec.ops[i].output,), shapes[x])], "m")
    run.check_deferred(ctx, i, 0)  # its own output: fine
    ctx.lookups.add(table, [((x,), shapes[x])], "m")
    with pytest.raises(CL.Reject, match="earlier op"):
        run.check_deferred(ctx, i, 1)
