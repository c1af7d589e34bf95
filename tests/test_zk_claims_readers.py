"""Every claim on a tensor is checked, whatever the number of readers.

A tensor read by several ops collects one or more claims from each reader. The program merges all
claims on an op's output into one (``base.prove_reduce``) before the op reduces it to claims on the
op's inputs, so no claim on a computed tensor reaches the commitment un-reduced: a prover cannot
commit an output that is right at one reader's point and wrong everywhere else.

The cheating provers here commit a tensor whose value one reader reads (the first claim on it) and
let another reader read the true value; before the merge both proofs verified."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
import torch

from blindproof.models.transformer import Transformer
from blindproof.models.workloads import WORKLOADS, get_workload, init_weights
from blindproof.zk.proof import program as P
from blindproof.zk.proof.keys import CommitmentKey
from blindproof.zk.field.encoding import Writer
from blindproof.zk.ops import base as B
from blindproof.zk.iop import claims as CL
from blindproof.zk.iop import layout as LAY
from blindproof.zk.ops import protocol
from blindproof.zk.proof.prover import ModelProver, example_input, program_input, quantized_workload
from blindproof.quant import quantize
from blindproof.quant import reference as R
from blindproof.quant.reference import Trace, run_program
from blindproof.quant.spec import Op, QuantSpec, TensorSpec, WeightSpec
from blindproof.zk.proof.verifier import verify_model_proof

KEY = CommitmentKey(b"\x0c" * 32)
I16 = (1 << 15) - 1
ACC = (1 << 29) - 1


# --- the cheating prover -----------------------------------------------------------------------------

def split_trace(spec: QuantSpec, weights, inputs, tensor: str, fake: np.ndarray, honest_reader: str,
                start: int = 0) -> tuple[Trace, np.ndarray]:
    """A reference run in which ``tensor`` holds ``fake`` for every reader except ``honest_reader``,
    which reads the true value. Returns the trace (``tensor`` = ``fake``: what gets committed) and the
    true value."""
    run = R._Run(spec, {k: np.asarray(v, dtype=np.int64) for k, v in weights.items()}, start)
    env = {n: np.asarray(inputs[n], dtype=np.int64) for n in spec.inputs}
    tensors = dict(env)
    true = None
    for op in spec.ops:
        args = [true if (op.output == honest_reader and n == tensor) else env[n] for n in op.inputs]
        out, wit = getattr(run, op.kind)(op, *args)
        if op.output == tensor:
            true, out = out, np.asarray(fake, dtype=np.int64)
        env[op.output] = tensors[op.output] = out
        tensors.update({LAY.witness_name(op.output, k): v for k, v in wit.items()})
    assert true is not None and not np.array_equal(true, fake)
    return Trace(tensors=tensors, outputs=spec.outputs), true


def reader_sees(monkeypatch, spec: QuantSpec, reader: str, tensor: str, value: np.ndarray) -> None:
    """Make the prover of op ``reader`` compute its messages from ``value`` for ``tensor`` (the true
    value) while the commitment holds something else: the claims that op leaves on ``tensor`` are
    then true for ``value``, not for the committed table."""
    op_kind = next(op.kind for op in spec.ops if op.output == reader)
    mod = protocol(op_kind)
    real = mod.prove

    def prove(ctx, op, out_claims):
        if op.output != reader:
            return real(ctx, op, out_claims)
        committed = ctx.values[tensor]
        ctx.values[tensor] = np.asarray(value, dtype=np.int64)
        ctx._tables.pop(tensor, None)  # noqa: SLF001 - the cached canonical table
        try:
            return real(ctx, op, out_claims)
        finally:
            ctx.values[tensor] = committed
            ctx._tables.pop(tensor, None)  # noqa: SLF001

    monkeypatch.setattr(mod, "prove", prove)


def _readers(spec: QuantSpec, tensor: str) -> list[str]:
    return [op.output for op in spec.ops if tensor in op.inputs]


# --- tiny-llama: the embedding read by the attention norm and by the residual --------------------------

@pytest.fixture(scope="module")
def tiny():
    qm = quantized_workload("tiny-llama")
    prover = ModelProver.create(qm, KEY)
    inputs = qm.encode(example_input("tiny-llama"))
    return prover, inputs


def test_tiny_llama_embedding_with_two_readers_is_checked_for_both(tiny, monkeypatch):
    prover, inputs = tiny
    spec, weights = prover.model.spec, prover.model.weights
    tensor = "embed.tok"
    readers = _readers(spec, tensor)
    assert readers == ["b0.attn_norm.in", "b0.res1.a"]
    # the last reader's claim comes first (ops are proved last to first): it sees the true embedding,
    # the attention sees the embedding of another prompt (the tokens reversed)
    other = {"tokens": inputs["tokens"][:, ::-1].copy()}
    fake = run_program(spec, weights, other).tensors[tensor]
    trace, true = split_trace(spec, weights, inputs, tensor, fake, honest_reader=readers[-1])
    honest = run_program(spec, weights, inputs).tensors["logits"]
    cheat_logits = trace.tensors["logits"]
    assert np.mean(cheat_logits != honest) > 0.9  # a different answer almost everywhere
    reader_sees(monkeypatch, spec, readers[-1], tensor, true)
    proof = prover.prove(inputs, trace=trace, strict=False, rng=np.random.default_rng(3))
    assert np.array_equal(proof.inputs["tokens"], inputs["tokens"])
    assert np.array_equal(proof.outputs["logits"], cheat_logits)
    res = verify_model_proof(prover.commitment, proof.to_bytes(), inputs=inputs)
    assert not res.ok, "a committed embedding that only one reader checks was accepted"
    assert tensor in res.reason


def test_tiny_llama_honest_proof_merges_the_multi_reader_claims(tiny):
    prover, inputs = tiny
    proof = prover.prove(inputs, rng=np.random.default_rng(4))
    assert verify_model_proof(prover.commitment, proof.to_bytes(), inputs=inputs).ok
    spec = prover.model.spec
    prog = P.ProgramProof.from_bytes(proof.program_proof, len(spec.ops))
    merged = {spec.ops[i].output for i, m in enumerate(prog.merges) if m is not None}
    assert "embed.tok" in merged and "b0.res1" in merged


# --- a hand-written program: one linear output, two readers ----------------------------------------

def _two_reader_program() -> QuantSpec:
    t = lambda n, lo=-I16, hi=I16, role="activation": TensorSpec(n, 0, lo, hi, role)  # noqa: E731
    ops = (Op("linear", ("x",), "acc", {"weight": "W", "bias": None}),
           Op("rescale", ("acc",), "y1", {"shift": 4}),
           Op("rescale", ("acc",), "y2", {"shift": 6}))
    tensors = {"x": t("x", role="input"), "acc": t("acc", -ACC, ACC, "accumulator"), "y1": t("y1"), "y2": t("y2")}
    return QuantSpec(arch={"family": "test"}, inputs=("x",), outputs=("y1", "y2"), ops=ops, tensors=tensors,
                     weights={"W": WeightSpec("W", (5, 6), "int8", 0)}, tables={})


def _two_reader_case(seed: int = 0):
    rng = np.random.default_rng(seed)
    spec = _two_reader_program()
    weights = {"W": rng.integers(-127, 128, size=(5, 6))}
    x = rng.integers(-3000, 3000, size=(3, 6))
    return spec, weights, {"x": x}


def _prove_and_verify(spec, weights, trace, strict=True, edit=None):
    settler = CL.OracleSettler()
    proof = P.prove_trace(spec, weights, trace, settler, strict=strict)
    if edit is not None:
        proof = edit(proof)
    inputs = {n: trace.tensors[n] for n in spec.inputs}
    outputs = {n: trace.tensors[n] for n in spec.outputs}
    return P.verify_trace(spec, inputs, outputs, proof, settler), proof


def test_linear_output_with_two_readers_is_checked_for_both(monkeypatch):
    spec, weights, inputs = _two_reader_case()
    fake_x = inputs["x"][::-1].copy()
    fake = run_program(spec, weights, {"x": fake_x}).tensors["acc"]
    trace, true = split_trace(spec, weights, inputs, "acc", fake, honest_reader="y2")
    honest = run_program(spec, weights, inputs).tensors
    assert not np.array_equal(trace.tensors["y1"], honest["y1"])
    assert np.array_equal(trace.tensors["y2"], honest["y2"])
    reader_sees(monkeypatch, spec, "y2", "acc", true)
    res, _ = _prove_and_verify(spec, weights, trace, strict=False)
    assert not res.ok, "a linear output that only its first reader checks was accepted"
    assert "acc" in res.reason


def test_linear_output_with_two_readers_honest():
    spec, weights, inputs = _two_reader_case(1)
    trace = run_program(spec, weights, inputs)
    res, data = _prove_and_verify(spec, weights, trace)
    assert res.ok, res.reason
    prog = P.ProgramProof.from_bytes(data, len(spec.ops))
    assert [m is not None for m in prog.merges] == [True, False, False]
    assert prog.op_proofs[0] is not None


def _edit_merges(n_ops: int, fn):
    def edit(data: bytes) -> bytes:
        prog = P.ProgramProof.from_bytes(data, n_ops)
        fn(prog)
        return prog.to_bytes()
    return edit


def test_rejects_a_missing_or_extra_or_tampered_merge():
    spec, weights, inputs = _two_reader_case(2)
    trace = run_program(spec, weights, inputs)
    n = len(spec.ops)

    def drop(prog):
        prog.merges[0] = None

    res, _ = _prove_and_verify(spec, weights, trace, edit=_edit_merges(n, drop))
    assert not res.ok and "merge" in res.reason

    def extra(prog):  # a one-claim op given a merge proof
        prog.merges[1] = B.OpProof(list(prog.merges[0].parts))

    res, _ = _prove_and_verify(spec, weights, trace, edit=_edit_merges(n, extra))
    assert not res.ok and "merge" in res.reason

    def tamper(prog):
        part = bytearray(prog.merges[0].parts[0])
        part[-5] ^= 1
        prog.merges[0].parts[0] = bytes(part)

    res, _ = _prove_and_verify(spec, weights, trace, edit=_edit_merges(n, tamper))
    assert not res.ok

    def swap(prog):  # the merge's parts handed to the op and the op's to the merge
        prog.merges[0], prog.op_proofs[0] = prog.op_proofs[0], prog.merges[0]

    res, _ = _prove_and_verify(spec, weights, trace, edit=_edit_merges(n, swap))
    assert not res.ok


def test_rejects_proof_slots_that_do_not_fit_the_claims():
    """An op whose output carries no claim has neither proof nor merge; an op with claims has a
    proof (its merge alone is not enough)."""
    spec, weights, inputs = _two_reader_case(6)
    unused = Op("rescale", ("acc",), "y3", {"shift": 2})  # read by nobody: no claim reaches it
    spec = dataclasses.replace(spec, ops=spec.ops + (unused,),
                               tensors=spec.tensors | {"y3": TensorSpec("y3", 0, -I16, I16, "activation")})
    trace = run_program(spec, weights, inputs)
    n = len(spec.ops)
    res, data = _prove_and_verify(spec, weights, trace)
    assert res.ok, res.reason
    prog = P.ProgramProof.from_bytes(data, n)
    assert prog.op_proofs[3] is None and prog.merges[3] is None

    def proof_for_unused(p):
        p.op_proofs[3] = B.OpProof(list(p.op_proofs[2].parts))

    def merge_for_unused(p):
        p.merges[3] = B.OpProof(list(p.merges[0].parts))

    def no_op_proof(p):
        p.op_proofs[0] = None

    for edit, why in ((proof_for_unused, "unexpected proof"), (merge_for_unused, "unexpected proof"),
                      (no_op_proof, "missing proof")):
        res, _ = _prove_and_verify(spec, weights, trace, edit=_edit_merges(n, edit))
        assert not res.ok and why in res.reason, (edit.__name__, res.reason)


def test_rejects_the_previous_format_version():
    spec, weights, inputs = _two_reader_case(3)
    trace = run_program(spec, weights, inputs)
    res, data = _prove_and_verify(spec, weights, trace)
    assert res.ok
    w = Writer()
    w.header(P._MAGIC, 1)  # noqa: SLF001
    old = w.getvalue() + data[len(w.getvalue()):]
    with pytest.raises(P.ProofFormatError, match="version"):
        P.ProgramProof.from_bytes(old, len(spec.ops))


def test_the_op_is_handed_one_claim_on_its_own_output(monkeypatch):
    """Whatever the merge returns, the verifier hands the op only one claim on the op's output."""
    spec, weights, inputs = _two_reader_case(4)
    trace = run_program(spec, weights, inputs)
    real = B.verify_reduce

    def elsewhere(ctx, rd, claims):  # a merge that lands on another tensor
        c = real(ctx, rd, claims)
        return CL.Claim("x", c.point[:LAY.n_vars((3, 6))], c.value)

    monkeypatch.setattr(B, "verify_reduce", elsewhere)
    res, _ = _prove_and_verify(spec, weights, trace)
    assert not res.ok and "one claim on its output" in res.reason


# --- the invariant, over every workload ------------------------------------------------------------

def _small(name: str):
    """Every workload in a small shape that keeps its architecture (norm, MLP, positions, biases,
    grouped-query heads, tied head, pooling): at most two layers, width 64, 8 tokens. The MLP and
    tiny-llama as they are. Returns (quantized model, program input)."""
    wl = get_workload(name)
    if wl.kind == "mlp" or name == "tiny-llama":
        qm = quantized_workload(name)
        return qm, qm.encode(example_input(name))
    cfg = wl.config
    heads = 4
    kv = heads * cfg.kv_heads // cfg.n_heads
    small = dataclasses.replace(cfg, vocab_size=min(cfg.vocab_size, 256), d_model=64, n_heads=heads,
                                n_kv_heads=kv if cfg.n_kv_heads else None, d_ff=128,
                                n_layers=min(cfg.n_layers, 2), max_seq=32)
    model = init_weights(Transformer(small), 0).eval()
    g = torch.Generator().manual_seed(5)
    calib = torch.randint(0, small.vocab_size, (4, 8), generator=g)
    qm = quantize(model, calib, scope=wl.zk_scope)
    x = calib[:1]
    return qm, qm.encode(program_input(qm, model, x))


# op kinds that reduce the claim they are handed to claims on their inputs (the others prove their
# relation on the committed output and open the claim they are handed: mean_pool and max_pool check
# theirs at that claim's point, against their range-checked committed output)
REDUCING = {"embed", "linear", "conv", "qk", "pv", "rope", "mul", "mul_weight", "split_heads", "merge_heads"}


class _Recorder:
    """What each op is handed and returns (prover and verifier), every set of claims taken off a
    tensor, and what reaches the settler."""

    def __init__(self, spec: QuantSpec) -> None:
        self.spec = spec
        self.popped: dict[str, list[list[CL.Claim]]] = {}
        self.handed: dict[str, dict[str, list[list[CL.Claim]]]] = {"prove": {}, "verify": {}}
        self.returned: dict[str, list[CL.Claim]] = {}
        self.lookups: list[CL.Claim] = []  # the deferred lookups' claims (the ops' own relations)
        self.deferred: dict[str, set[str]] = {}  # op output -> the columns its deferred lookups read
        self.settled: list[list[CL.Claim]] = []
        self.shapes: dict[str, tuple[int, ...]] = {}  # op output -> shape (as the verifier derived it)

    def install(self, monkeypatch) -> None:
        real_pop = CL.ClaimSet.pop
        real_protocol = P.protocol
        real_settle = CL.OracleSettler.settle
        real_settle_form = P.settle_form
        real_lookups = B.LookupBatch.verify
        rec = self

        def pop(claimset, tensor):
            got = real_pop(claimset, tensor)
            rec.popped.setdefault(tensor, []).append(list(got))
            return got

        class Wrapped:
            def __init__(self, mod):
                self._mod = mod

            def __getattr__(self, attr):
                return getattr(self._mod, attr)

            def prove(self, ctx, op, out_claims):
                if type(ctx.masks).__name__ == "MaskRecorder":
                    return self._mod.prove(ctx, op, out_claims)  # the mask plan's dry run
                rec.handed["prove"].setdefault(op.output, []).append(list(out_claims))
                return self._mod.prove(ctx, op, out_claims)

            def verify(self, ctx, op, out_claims, proof):
                rec.handed["verify"].setdefault(op.output, []).append(list(out_claims))
                rec.shapes[op.output] = ctx.shape(op.output)
                first = len(ctx.lookups.entries)
                got = self._mod.verify(ctx, op, out_claims, proof)
                rec.returned[op.output] = list(got)
                rec.deferred[op.output] = {n for _, groups, _ in ctx.lookups.entries[first:]
                                           for names, _ in groups for n in names}
                return got

        def settle(settler, claims, transcript):
            return real_settle(settler, claims, transcript)

        def settle_form(rules, claims):  # the claims as the program leaves them, before the settler's form
            rec.settled.append([c for c in claims if isinstance(c, CL.Claim)])
            return real_settle_form(rules, claims)

        def lookups(batch, ctx, proof):
            got = real_lookups(batch, ctx, proof)
            rec.lookups += got
            return got

        monkeypatch.setattr(CL.ClaimSet, "pop", pop)
        monkeypatch.setattr(B.LookupBatch, "verify", lookups)
        monkeypatch.setattr(P, "protocol", lambda kind: Wrapped(real_protocol(kind)))
        monkeypatch.setattr(CL.OracleSettler, "settle", settle)
        monkeypatch.setattr(P, "settle_form", settle_form)


def _reduces_unclamped(spec: QuantSpec, op, shapes) -> bool:
    """An add whose clamp is the identity reduces its claim (nothing checks its committed output)."""
    from blindproof.zk.ops import elementwise
    return op.kind in ("add", "add_weight") and elementwise._clamp_plan(op, shapes[op.output], spec)[0] is None


def _check_invariant(rec: _Recorder) -> Counter:
    """(1) Every op output with k ≥ 1 claims is handed to its op exactly once, as ONE claim (the
    merge when k > 1), the same on both sides. (2) An op that reduces (``REDUCING``) does not hand
    that claim on. (3) An op's deferred lookups read only its own tensors (output, witnesses, aux
    columns), weights and public tensors, never a tensor an earlier op computed. (4) A claim on an op
    output reaches the settler only as a claim that op itself returned (its own relation's claims, or
    the one claim it was handed and opens) or from a lookup that op deferred: no claim from a reader
    skips the op. (5) Every computed tensor that a proved op reads is proved by its own op. Returns
    how many outputs had k claims, per k."""
    by_output = {op.output: op for op in rec.spec.ops}
    producer = {op.output: i for i, op in enumerate(rec.spec.ops)}
    ks: Counter = Counter()
    for side in ("prove", "verify"):
        assert set(rec.handed[side]) <= set(by_output)
    for op in rec.spec.ops:
        # popped holds the mask plan's, the prover's and the verifier's takes: one per op and run
        pops = [p for p in rec.popped.get(op.output, []) if p]
        for side in ("prove", "verify"):
            handed = rec.handed[side].get(op.output, [])
            if not pops:
                assert not handed, f"{op.output}: handed claims it never had"
                continue
            assert len(handed) == 1, f"{op.output}: handed to its op {len(handed)} times ({side})"
            assert len(handed[0]) == 1 and handed[0][0].tensor == op.output, \
                f"{op.output}: its op was handed {len(handed[0])} claims ({side})"
        if not pops:
            continue
        ks[len(pops[-1])] += 1
        a, b = rec.handed["prove"][op.output][0][0], rec.handed["verify"][op.output][0][0]
        assert a.same(b), f"{op.output}: prover and verifier merged to different claims"
        if op.kind in REDUCING:
            assert not any(b.same(c) for c in rec.returned[op.output]), \
                f"{op.kind} -> {op.output} handed its claim on instead of reducing it"
        elif not _reduces_unclamped(rec.spec, op, rec.shapes):
            # its relation holds on the committed output: the reader's claim must be opened there too
            assert any(b.same(c) for c in rec.returned[op.output]), \
                f"{op.kind} -> {op.output} neither reduced nor opened the claim it was handed"
    for i, op in enumerate(rec.spec.ops):
        if op.output in rec.handed["verify"]:  # a proved op ties each computed input to its producer
            for name in op.inputs:
                assert name not in producer or name in rec.handed["verify"], \
                    f"{op.kind} -> {op.output} reads {name!r}, whose op is never proved"
        for name in rec.deferred.get(op.output, ()):
            assert producer.get(name, i) == i, \
                f"{op.kind} -> {op.output} defers a lookup on {name!r}, which an earlier op computed"
    assert len(rec.settled) == 2  # the prover's settlement and the verifier's
    for settled in rec.settled:
        for c in settled:
            if c.tensor not in by_output or any(c.same(d) for d in rec.returned.get(c.tensor, [])):
                continue
            assert any(isinstance(d, CL.Claim) and c.same(d) for d in rec.lookups) \
                and c.tensor in rec.deferred.get(c.tensor, ()), \
                f"a claim on {c.tensor!r} reached the settler without passing its op"
    for c in rec.lookups:  # a zero-knowledge lookup's leaf claims: linear, on what the ops deferred
        for name, _, _ in getattr(c, "terms", ()):
            assert name not in by_output or name in rec.deferred.get(name, ()), \
                f"a lookup's claim on {name!r} reached the settler without passing its op"
    return ks


def _invariant_run(name: str, monkeypatch) -> Counter:
    qm, x = _small(name)
    trace = run_program(qm.spec, qm.weights, x)
    rec = _Recorder(qm.spec)
    rec.install(monkeypatch)
    P._MASK_PLANS.clear()  # noqa: SLF001 - so the dry run happens under the recorder too
    settler = CL.OracleSettler()
    data = P.prove_trace(qm.spec, qm.weights, trace, settler)
    inputs = {n: trace.tensors[n] for n in qm.spec.inputs}
    outputs = {n: trace.tensors[n] for n in qm.spec.outputs}
    res = P.verify_trace(qm.spec, inputs, outputs, data, settler)
    assert res.ok, res.reason
    return _check_invariant(rec)


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_every_claim_on_every_tensor_is_reduced_or_opened(name, monkeypatch):
    ks = _invariant_run(name, monkeypatch)
    assert ks[1] > 0
    if get_workload(name).kind == "transformer":
        assert sum(v for k, v in ks.items() if k > 1) > 0  # the residual stream has two readers


def test_the_invariant_check_catches_an_un_merged_program(monkeypatch):
    """The checker is not vacuous: the bookkeeping before the merge (every claim handed to the op,
    the op handing all but the first on to the settler) fails it."""
    spec, weights, inputs = _two_reader_case(5)
    trace = run_program(spec, weights, inputs)
    rec = _Recorder(spec)
    rec.install(monkeypatch)
    settler = CL.OracleSettler()
    data = P.prove_trace(spec, weights, trace, settler)
    outputs = {n: trace.tensors[n] for n in spec.outputs}
    assert P.verify_trace(spec, inputs, outputs, data, settler).ok
    ks = _check_invariant(rec)
    assert ks[2] == 1  # acc: one claim from each reader, merged
    two = rec.popped["acc"][-1]
    assert len(two) == 2
    unmerged = _Recorder(spec)
    unmerged.popped, unmerged.returned = rec.popped, dict(rec.returned)
    unmerged.lookups, unmerged.deferred, unmerged.shapes = rec.lookups, rec.deferred, rec.shapes
    unmerged.handed = {side: dict(rec.handed[side]) for side in rec.handed}
    unmerged.handed["verify"]["acc"] = unmerged.handed["prove"]["acc"] = [two]
    with pytest.raises(AssertionError, match="handed 2 claims"):
        _check_invariant(unmerged)
    # and the second claim settled as it came, past the op
    unmerged.handed = rec.handed
    unmerged.settled = [rec.settled[0] + [two[1]], rec.settled[1]]
    with pytest.raises(AssertionError, match="without passing its op"):
        _check_invariant(unmerged)
