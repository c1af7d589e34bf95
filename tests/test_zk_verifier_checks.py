"""One test per verifier check that no other test isolates (docs/spec/checks.md, the "test" column).

Each test builds the input the check exists to refuse — a cheating prover's proof, a hostile
commitment, a tampered sub-proof — and asserts that it is rejected WITH THAT CHECK'S REASON. Each was
confirmed to fail with the check alone deleted from the verifier. Where the deleted check leaves the
input still refused by a later check or by the verifier's exception guard, the test's docstring says
which (the check is then defence in depth: the mutation is caught by the reason, not by acceptance);
where deleting it lets the forgery through, the docstring says "accepted without the check".

Workloads: mlp-784-56-10 (module-scoped), hand-written one-op programs, and a small PCS commitment."""

from __future__ import annotations

import dataclasses

import blake3
import math

import numpy as np
import pytest

from blindproof.zk.field import babybear as F
from blindproof.zk.iop import lookup as L
from blindproof.zk.commit import pcs
from blindproof.zk.proof import program as P
from blindproof.zk.proof import proof_file
from blindproof.zk.proof.commitment import ModelCommitment
from blindproof.zk.proof.keys import CommitmentKey
from blindproof.zk.ops import base as B
from blindproof.zk.iop import claims as CL
from blindproof.zk.iop import layout as LAY
from blindproof.zk.ops import softmax
from blindproof.zk.proof.proof_file import ModelProof, ProofFileError, io_digest
from blindproof.zk.proof.prover import ModelProver, PcsProverSettler
from blindproof.quant import run_program
from blindproof.quant.spec import Op, TensorSpec
from blindproof.quant.tables import exp_table
from blindproof.zk.iop.transcript import Transcript
from blindproof.zk.proof.verifier import PcsVerifierSettler, verify_model_proof
from blindproof.zk.proof.statement import (DOMAIN, CountingTranscript, _bits, soundness_figures, split_claims,
                                           statement_bytes)

KEY = CommitmentKey(b"\x2c" * 32)


@pytest.fixture(scope="module")
def mlp(mlp_honest):
    return mlp_honest


def _reserialize(proof: ModelProof, **changes) -> bytes:
    """The proof with some fields changed, its public digest kept consistent with its tensors (as a
    forger would write it, so that the check under test is the one that must refuse it)."""
    new = dataclasses.replace(proof, **changes)
    if "public_digest" not in changes:
        new = dataclasses.replace(new, public_digest=io_digest(new.inputs, new.outputs))
    return new.to_bytes()


class _StatedSettler(PcsProverSettler):
    """Settles as the verifier of the stated statement would: a randomized claim on a tensor the
    statement makes public is a claim on that public value (its randomizer is the program's, which
    the verifier never sees; the proof is for the statement check to refuse)."""

    def settle(self, claims, transcript):
        keep = [c for c in claims if not (isinstance(c, CL.LinearClaim) and c.terms[0][0] in self.public)]
        super().settle(keep, transcript)


def _prove_statement(prover: ModelProver, inputs, *, outputs=None, spec_digest: bytes | None = None,
                     params: pcs.PcsParams | None = None, seed: int = 5) -> ModelProof:
    """A cheating prover that states its own statement and proves the honest trace under it.

    ``outputs``: the public outputs it states (default: the honest ones); the program is proved for
    the honest outputs' values, and every claim on a stated tensor is settled as public, exactly as
    the verifier settles it. ``spec_digest``: the spec digest it names; ``params``: the code parameters
    it states (its trace is still committed under the commitment's own). Everything else — transcript,
    trace commitment, op proofs, openings, soundness figures — is computed honestly for that
    statement, so only a check of the statement itself can refuse it."""
    spec = prover.model.spec
    trace = run_program(spec, prover.model.weights, inputs, validate_weights=False)
    honest = {k: np.asarray(trace.tensors[k], dtype=np.int64) for k in spec.outputs}
    stated = honest if outputs is None else outputs
    digest = prover.commitment.digest()
    sdig = prover.commitment.spec_digest if spec_digest is None else spec_digest
    rng = np.random.default_rng(seed)
    stated_params = prover.params if params is None else params
    io = io_digest(inputs, stated)
    tr = CountingTranscript(DOMAIN, statement_bytes(digest, sdig, stated_params, 0, io))
    settler = _StatedSettler(prover.state, inputs | stated, prover.params, rng)
    values = dict(trace.tensors) | {f"w:{k}": v for k, v in prover.model.weights.items()}
    prog_outputs = {k: stated.get(k, honest[k]) for k in spec.outputs}
    program_proof = P.prove_program(spec, values, inputs, prog_outputs, tr, settler, start=0, rng=rng)
    figs = soundness_figures(tr.counts, tr.lookups, settler.trace_com.layout, settler.trace_claims,
                             prover.commitment.weights.layout, settler.weight_claims, tr.lambda_degrees())
    return ModelProof(model_digest=digest, spec_digest=sdig, params=stated_params, start=0, inputs=inputs,
                      outputs=stated, trace_commitment=settler.trace_com.to_bytes(), program_proof=program_proof,
                      trace_opening=settler.trace_opening, weight_opening=settler.weight_opening, soundness=figs,
                      trace_claims=settler.trace_claims, weight_claims=settler.weight_claims,
                      companion_commitment=settler.companion_com.to_bytes(), public_digest=io)


def test_forging_helper_is_honest_for_the_honest_statement(mlp):
    prover, inputs, _ = mlp
    res = verify_model_proof(prover.commitment, _prove_statement(prover, inputs).to_bytes())
    assert res.ok, res.reason


# --- 1. commitment loading ----------------------------------------------------------------------------

def _commitment_message(mc: ModelCommitment):
    m = proof_file.proof_pb2.ModelCommitment()
    m.ParseFromString(mc.to_bytes())
    return m


def test_c2_commitment_naming_another_spec_digest_does_not_load(mlp):
    """C2. Defence in depth: without the check the file still fails the canonical-encoding check
    (the decoder re-encodes the digest it computes from the spec JSON, never the file's field), so
    the mutation is caught by the reason only."""
    prover, _, _ = mlp
    m = _commitment_message(prover.commitment)
    m.spec_digest = blake3.blake3(b"another spec").digest()
    with pytest.raises(ProofFileError, match="spec digest does not match the spec"):
        ModelCommitment.from_bytes(m.SerializeToString(deterministic=True))


def test_c5_weight_layout_other_than_the_specs_does_not_load(mlp):
    """C5. An extra weight (a third party's commitment holding a tensor the spec does not have), and
    a weight committed at another size. Defence in depth: without ``check_layout`` the well-formedness
    verifier's statement check (C7, ``_check_weight_commitment``) refuses the same files."""
    prover, _, _ = mlp
    qm = prover.model
    from blindproof.zk.proof.commitment import weight_tables
    tables = weight_tables(qm.spec, qm.weights)
    extra = tables | {"w:decoy": np.zeros(16, dtype=np.uint32)}
    resized = dict(tables)
    name = next(iter(resized))
    resized[name] = np.concatenate([resized[name], np.zeros_like(resized[name])])
    for forged_tables in (extra, resized):
        com, _ = pcs.commit(forged_tables, prover.params, rng=np.random.default_rng(0),
                               openings=prover.commitment.weights.layout.openings)
        m = _commitment_message(prover.commitment)
        m.weights = com.to_bytes()
        with pytest.raises(ProofFileError, match="weight commitment does not match the spec|committed with 2\\^"):
            ModelCommitment.from_bytes(m.SerializeToString(deterministic=True))


# --- 2. the statement ---------------------------------------------------------------------------------

def test_v4_proof_naming_another_spec_is_rejected(mlp):
    """V4. The cheating prover names another spec digest and proves honestly under it (the digest is
    absorbed, but the prover absorbs its own). Accepted without the check."""
    prover, inputs, _ = mlp
    forged = _prove_statement(prover, inputs, spec_digest=blake3.blake3(b"another spec").digest())
    res = verify_model_proof(prover.commitment, forged.to_bytes())
    assert not res.ok and "another quantization spec" in res.reason


def test_v5_proof_stating_other_parameters_is_rejected(mlp):
    """V5. The cheating prover states stronger parameters than the commitment's (256-bit target,
    blowup 16, four proximity tests) while its trace is committed under the commitment's own, so
    the trace layout passes V13 and everything else is honest for that statement: a reader of the
    proof's parameters is misled. Accepted without the check. (A trace committed under the stated
    weaker parameters is refused by V13 as well: test_zk_statement_pinning.py.)"""
    prover, inputs, _ = mlp
    stated = pcs.PcsParams(security_bits=256.0, blowup=16, proximity_tests=4)
    assert stated != prover.params
    forged = _prove_statement(prover, inputs, params=stated)
    res = verify_model_proof(prover.commitment, forged.to_bytes())
    assert not res.ok and "differ from the commitment's" in res.reason


def test_v8_extra_public_tensor_is_rejected(mlp):
    """V8. The statement adds an intermediate tensor (``l0.relu``, which has a spec range, so the
    range check V11 passes) as a public output, proved honestly: claims on it are then settled
    against the stated values instead of the trace commitment. Accepted without the check. (A
    missing public tensor is P1's case; an unknown name fails V11.)"""
    prover, inputs, proof = mlp
    trace = run_program(prover.model.spec, prover.model.weights, inputs, validate_weights=False)
    stated = dict(proof.outputs) | {"l0.relu": np.asarray(trace.tensors["l0.relu"], dtype=np.int64)}
    forged = _prove_statement(prover, inputs, outputs=stated)
    res = verify_model_proof(prover.commitment, forged.to_bytes())
    assert not res.ok and "do not match the program" in res.reason


# --- 3. the program -----------------------------------------------------------------------------------

def _small_program():
    """A one-layer linear + rescale program, its weights and a trace, for the program-level API."""
    from blindproof.quant.spec import QuantSpec, WeightSpec
    i16, acc = (1 << 15) - 1, (1 << 29) - 1
    spec = QuantSpec(arch={"family": "test"}, inputs=("x",), outputs=("y",),
                     ops=(Op("linear", ("x",), "acc", {"weight": "W"}), Op("rescale", ("acc",), "y", {"shift": 7})),
                     tensors={"x": TensorSpec("x", 0, -i16, i16, "activation"),
                              "acc": TensorSpec("acc", 0, -acc, acc, "accumulator"),
                              "y": TensorSpec("y", 0, -i16, i16, "activation")},
                     weights={"W": WeightSpec("W", (5, 8), "int8", 0)}, tables={})
    rng = np.random.default_rng(9)
    weights = {"W": rng.integers(-127, 128, size=(5, 8))}
    trace = run_program(spec, weights, {"x": rng.integers(-3000, 3000, size=(3, 8))})
    return spec, weights, trace


def test_p1_non_integer_public_value_is_rejected_by_the_program_verifier():
    """P1, through the program-level API (``verify_trace``), where nothing else types the public
    values: ``y ± 0.25`` would be truncated to ``y`` and verify (accepted without the check); a
    missing output (defence in depth: the guard rejects the KeyError). In
    ``verify_model_proof`` a missing tensor is refused first by V8 and a non-integer one cannot be
    decoded (int32/int64 tensors only) and fails V11's dtype test: there P1 is redundant."""
    spec, weights, trace = _small_program()
    settler = CL.OracleSettler()
    data = P.prove_trace(spec, weights, trace, settler)
    inputs = {"x": trace.tensors["x"]}
    outputs = {"y": trace.tensors["y"]}
    assert P.verify_trace(spec, inputs, outputs, data, settler).ok
    y = outputs["y"]
    fractional = np.where(y >= 0, y + 0.25, y - 0.25)  # truncates (towards zero) back to y
    res = P.verify_trace(spec, inputs, {"y": fractional}, data, settler)
    assert not res.ok and "must be integers" in res.reason
    # a missing output: without the check a KeyError, which the guard turns into a rejection
    res = P.verify_trace(spec, inputs, {}, data, settler)
    assert not res.ok and "public output 'y' missing" in res.reason


def test_p2_inputs_that_do_not_fit_the_program_are_rejected(mlp):
    """P2. An input of another width (783 features). Defence in depth: without the conversion the
    shape inference's ValueError still ends in a rejection through the verifier's exception guard."""
    prover, _, proof = mlp
    x = proof.inputs["x"][:, :-1].copy()
    res = verify_model_proof(prover.commitment, _reserialize(proof, inputs={"x": x}))
    assert not res.ok and "do not fit the program" in res.reason


def test_p3_output_of_another_shape_is_rejected(mlp):
    """P3. The cheating prover states the logits as (1, 16): the ten true logits and six zeros in the
    padding positions. The padded MLE is the same, so every claim on the output holds, and the
    client would read 16 logits (its argmax moves to a padding index whenever the real logits are
    all negative). Accepted without the check."""
    prover, inputs, proof = mlp
    y = proof.outputs["logits"]
    padded = np.zeros((1, 16), dtype=np.int64)
    padded[:, :y.shape[1]] = y
    forged = _prove_statement(prover, inputs, outputs={"logits": padded})
    res = verify_model_proof(prover.commitment, forged.to_bytes())
    assert not res.ok and "output 'logits' has shape (1, 16)" in res.reason


def test_p10_routing_refuses_a_claim_on_a_later_tensor():
    """P10. Redundant for any proof: the op verifiers make claims only on their op's inputs,
    witnesses and weights, and a spec whose op reads a tensor defined later does not even infer
    shapes (shown below), so no claim on a later tensor can arise. The check guards ``_Run.route``'s
    own contract (claims routed backwards would never be settled); it is tested on the router."""
    spec, _, trace = _small_program()
    with pytest.raises((ValueError, KeyError)):  # a program reading the later tensor "y" is refused
        backwards = dataclasses.replace(spec, ops=(Op("linear", ("y",), "acc", {"weight": "W"}), spec.ops[1]))
        P.infer_shapes(backwards, {"x": (3, 8)})
    run = P._Run(spec, {"x": trace.tensors["x"], "y": trace.tensors["y"]})  # noqa: SLF001
    later = CL.Claim("y", F.ext(1, 2, 3, 4)[None].repeat(3, 0), F.eone())
    with pytest.raises(CL.Reject, match="later tensor 'y'"):
        run.route(0, [later])


def test_p9_claims_left_after_every_op_are_refused():
    """P9's ``check_done``. Redundant for any proof: every op takes the claims on its output, a claim
    is queued only for an EARLIER op (P10), and every op is visited, so nothing can be left pending;
    the check guards the bookkeeping's contract and is tested on it."""
    spec, _, trace = _small_program()
    run = P._Run(spec, {"x": trace.tensors["x"], "y": trace.tensors["y"]})  # noqa: SLF001
    run.check_done()
    run.pending.add(CL.Claim("acc", F.ext(1, 2, 3, 4)[None].repeat(5, 0), F.eone()))
    with pytest.raises(CL.Reject, match="claims left on acc after every op"):
        run.check_done()


def test_deferred_lookup_on_an_earlier_ops_tensor_is_refused_by_the_verifier(monkeypatch):
    """The verifier's own call of ``check_deferred`` (the prover's is covered by
    test_zk_malicious_prover.py). Redundant for any proof: which tensors an op defers lookups on is
    fixed by the op verifier's code and the spec, never by the prover, and no op defers one on an
    earlier op's tensor since lookup ops tie ``index = x`` at op time. The call guards that rule
    against an op implementation that breaks it (as the SwiGLU gate's lookup once did), simulated
    here by a rescale verifier that defers a lookup on its input."""
    spec, weights, trace = _small_program()
    settler = CL.OracleSettler()
    data = P.prove_trace(spec, weights, trace, settler)
    rescale = P.protocol("rescale")
    real = rescale.verify

    def deferring_on_input(ctx, op, claims, proof):
        out = real(ctx, op, claims, proof)
        ctx.lookups.add(L.LookupTable.range(4), [((op.inputs[0],), ctx.shape(op.inputs[0]))], "m")
        return out

    monkeypatch.setattr(rescale, "verify", deferring_on_input)
    res = P.verify_trace(spec, {"x": trace.tensors["x"]}, {"y": trace.tensors["y"]}, data, settler)
    assert not res.ok and "defers a lookup on 'acc'" in res.reason, res.reason


def test_p13_a_program_verifier_that_returns_without_settling_is_rejected(mlp, monkeypatch):
    """P13. Redundant for any proof: ``verify_program`` always settles before it returns (or raises).
    The check guards the adapter against a program verifier that skips the settlement, simulated
    here: every op proof is checked but no opening is, and since the openings' error terms come from
    the file's claim counts the soundness figures still match. Accepted without the check, even for
    a proof computed with other weights."""
    prover, inputs, proof = mlp
    from blindproof.zk.proof import verifier as V

    class CommitOnly(CL.Settler):
        linear_claims = True  # as the settler it wraps: the program runs blinded

        def __init__(self, inner):
            self.inner = inner

        def commit(self, tables, transcript):
            self.inner.commit(tables, transcript)

        def settle(self, claims, transcript):
            pass

    real = V._program_verify  # noqa: SLF001
    monkeypatch.setattr(V, "_program_verify", lambda spec, pr, tr, settler: real(spec, pr, tr, CommitOnly(settler)))
    from blindproof.quant import QuantizedModel
    w = {k: v.copy() for k, v in prover.model.weights.items()}
    w["l0.acc.weight"][0, :] = -w["l0.acc.weight"][0, :]  # computed with other weights: only the
    other = QuantizedModel(prover.model.spec, w)          # weight opening would see it
    cheat = ModelProver(other, prover.commitment, prover.state, prover.params).prove(
        inputs, strict=False, rng=np.random.default_rng(6))
    for data in (proof.to_bytes(), cheat.to_bytes()):
        res = verify_model_proof(prover.commitment, data)
        assert not res.ok and "unsettled" in res.reason, res.reason


# --- 4. settlement --------------------------------------------------------------------------------------

def _stated_trace_claims(prover: ModelProver, proof: ModelProof, n: int) -> ModelProof:
    """``proof`` restating its trace claim count as ``n``, with the soundness figures recomputed for
    that count exactly as the verifier would (so F2 passes)."""
    lay = pcs.Commitment.from_bytes(proof.trace_commitment).layout
    terms = []
    for name, pb, cb in proof.soundness.terms:
        if name == "trace opening":
            if n == 0:
                continue
            rep = lay.soundness(n)
            pb, cb = rep.provable_bits, rep.conjectured_bits
        terms.append((name, pb, cb))
    figs = type(proof.soundness)(_bits(sum(2.0 ** -t[1] for t in terms)), _bits(sum(2.0 ** -t[2] for t in terms)),
                                 terms)
    return dataclasses.replace(proof, trace_claims=n, soundness=figs)


def test_s2_misstated_claim_counts_are_rejected(mlp):
    """S2. A proof that understates its trace claims (none at all: the trace opening's error term
    disappears) and restates its soundness for that count, so the stated figures match what the
    verifier recomputes from the file's counts. Accepted, with an overstated soundness, without the
    check."""
    prover, _, proof = mlp
    assert proof.trace_claims > 1
    for n in (0, proof.trace_claims - 1):
        forged = _stated_trace_claims(prover, proof, n)
        res = verify_model_proof(prover.commitment, forged.to_bytes())
        assert not res.ok and f"the proof opens {n} trace" in res.reason, res.reason


def _weight_randomizers(spec) -> dict[str, np.ndarray]:
    """The weights' randomizer tables a program proof would put in the companion (zeros will do)."""
    from blindproof.zk.proof import program
    return {n: np.zeros(1 << k, dtype=np.uint32) for n, k in program.companion_tensors(spec).items()}


def _settler_case(mlp):
    """A committed trace and weights with three claims (trace ``act``, public ``x``, a weight)."""
    from blindproof.zk.iop import mle
    from blindproof.zk.proof.commitment import weight_tables
    prover, _, _ = mlp
    qm, mc, state = prover.model, prover.commitment, prover.state
    rng = np.random.default_rng(1)
    x = rng.integers(-50, 50, size=(1, 5)).astype(np.int64)
    act = rng.integers(-1000, 1000, size=(3, 7)).astype(np.int64)
    tables = ({"act": LAY.canonical(act), "x": LAY.canonical(x)} | weight_tables(qm.spec, qm.weights)
              | _weight_randomizers(qm.spec))
    wname = mc.weights.layout.names[0]

    def claims(tr: Transcript) -> list[CL.Claim]:
        pts = tr.challenge_exts("test/points", 5 + 3 + mc.weights.layout.log_sizes[0])
        return [CL.Claim("act", pts[:5], mle.evaluate(tables["act"], pts[:5])),
                CL.Claim("x", pts[5:8], mle.evaluate(tables["x"], pts[5:8])),
                CL.Claim(wname, pts[8:], mle.evaluate(tables[wname], pts[8:]))]

    ps = PcsProverSettler(state, {"x": x}, prover.params, rng=np.random.default_rng(2))
    tp = Transcript(b"test")
    ps.commit(tables, tp)
    ps.settle(claims(tp), tp)
    return mc, ps, {"x": x}, claims


def _shell(mc, ps, public, *, trace_claims, weight_claims, trace_opening=None, weight_opening=None):
    return ModelProof(mc.digest(), mc.spec_digest, mc.params, 0, public, public, ps.trace_com.to_bytes(), b"",
                      ps.trace_opening if trace_opening is None else trace_opening,
                      ps.weight_opening if weight_opening is None else weight_opening,
                      proof_file.SoundnessFigures(0, 0), trace_claims, weight_claims, ps.companion_com.to_bytes())


def test_s3_stray_openings_and_claims_without_a_commitment_are_rejected(mlp):
    """S3. (a) A weight opening carried although no claim is on a weight, (b) a trace opening carried
    although no claim is on the trace: bytes the verifier would otherwise skip (a second encoding of
    one proof). Both accepted without the check. (c) Trace claims with no trace commitment: defence
    in depth, without the check ``pcs.verify`` on nothing raises and its guard rejects."""
    mc, ps, public, claims = _settler_case(mlp)
    # (a) the claims without the weight claim; the weight opening left in the file
    vs = PcsVerifierSettler(_shell(mc, ps, public, trace_claims=1, weight_claims=0), mc, ps.trace_com)
    tv = Transcript(b"test")
    vs.commit(None, tv)
    with pytest.raises(CL.Reject, match="a weight opening without weight claims"):
        vs.settle(claims(tv)[:2], tv)
    # (b) only the public claim; the trace opening left in the file (no weight opening)
    vs = PcsVerifierSettler(_shell(mc, ps, public, trace_claims=0, weight_claims=0, weight_opening=b""), mc,
                            ps.trace_com)
    tv = Transcript(b"test")
    vs.commit(None, tv)
    with pytest.raises(CL.Reject, match="a trace opening without trace claims"):
        vs.settle(claims(tv)[1:2], tv)
    # (c) trace claims but no trace commitment
    vs = PcsVerifierSettler(_shell(mc, ps, public, trace_claims=1, weight_claims=1), mc, None)
    tv = Transcript(b"test")
    vs.commit(None, tv)
    with pytest.raises(CL.Reject, match="no trace commitment"):
        vs.settle(claims(tv), tv)


def test_o4_opening_stating_other_soundness_tenths_is_rejected():
    """O4. An honest opening whose stated soundness figures are not the layout's (a foreign
    opening's, or inflated). The figures are not absorbed, so accepted without the check."""
    rng = np.random.default_rng(3)
    from blindproof.zk.iop import mle
    tensors = {"a": F.random(rng, 256), "b": F.random(rng, 64)}
    com, st = pcs.commit(tensors, rng=rng)
    claims = []
    for name, t in tensors.items():
        pt = F.erandom(rng, t.size.bit_length() - 1)
        claims.append(pcs.Claim(name, pt, mle.evaluate(t, pt)))
    op = pcs.open_claims(st, claims, Transcript(b"o4"))
    assert pcs.verify(com, claims, op, Transcript(b"o4")).ok
    for prov, conj in ((op.provable_tenths + 100, op.conjectured_tenths), (op.provable_tenths, 0)):
        forged = dataclasses.replace(op, provable_tenths=prov, conjectured_tenths=conj)
        res = pcs.verify(com, claims, forged.to_bytes(), Transcript(b"o4"))
        assert not res.ok and "stated soundness figures" in res.reason


def _pt(rng, n):
    return F.erandom(rng, n)


def test_s6_linear_claim_on_public_tensors_only_must_hold():
    """S6 (``ops.base.fold_public``, from ``split_claims``). A linear claim every term of which is on a
    public tensor is settled by the verifier alone: true, it is dropped; false, it is refused. Redundant
    for any proof: the verifier builds every linear claim's terms from the spec (a randomized claim has
    a committed randomizer term, a lookup leaf claim its committed mask terms), so no linear claim is
    public only; the check guards ``fold_public``'s contract (a false claim dropped would be accepted)."""
    rng = np.random.default_rng(8)
    x, y = np.arange(-3, 5, dtype=np.int64).reshape(2, 4), np.array([7, -1], dtype=np.int64)
    public = {"x": x, "y": y}
    px, py = _pt(rng, 3), _pt(rng, 1)
    c2 = F.ext(2, 0, 0, 0)
    value = F.eadd(LAY.public_eval(x, px), F.emul(c2, LAY.public_eval(y, py)))
    one = F.eone()
    true = CL.LinearClaim((("x", px, one), ("y", py, c2)), value)
    assert split_claims([true], public) == ([], [], [])
    false = CL.LinearClaim((("x", px, one), ("y", py, c2)), F.eadd(value, one))
    with pytest.raises(CL.Reject, match="a linear claim on public tensors is false"):
        split_claims([false], public)
    with pytest.raises(CL.Reject, match="a linear claim on public tensors is false"):
        CL.fold_public(false, lambda name, pt: LAY.public_eval(public[name], pt))
    # a committed term left: the public terms move to the value side, the claim is kept
    mixed = CL.LinearClaim((("x", px, one), ("h", py, one)), F.eadd(LAY.public_eval(x, px), F.ext(5, 0, 0, 0)))
    pub, trace, weight = split_claims([mixed], public)
    assert not pub and not weight and len(trace) == 1
    assert [t[0] for t in trace[0].terms] == ["h"] and np.array_equal(trace[0].value, F.ext(5, 0, 0, 0))


def test_s7_linear_claim_on_a_public_tensor_at_a_point_of_another_size_is_rejected():
    """S7 (``verifier._public_value``). A linear claim whose public term is read at a point with a
    coordinate too few or too many. Redundant for any proof (the verifier derives every point from
    the spec's shapes); it guards the public evaluation's contract."""
    rng = np.random.default_rng(9)
    public = {"x": np.arange(8, dtype=np.int64).reshape(2, 4)}
    one = F.eone()
    for n in (2, 4):
        c = CL.LinearClaim((("x", _pt(rng, n), one), ("h", _pt(rng, 3), one)), F.ezero())
        with pytest.raises(CL.Reject, match="claim on public 'x' has %d coordinates, the tensor 3" % n):
            split_claims([c], public)


def test_s8_linear_claim_mixing_trace_and_weight_tensors_is_rejected():
    """S8 (``split_claims``). A linear claim with a trace term and a weight term (or a term on the
    weight opening's companion): no one opening holds both. Redundant for any proof (the verifier
    builds each linear claim from one commitment's tensors: a tensor and its randomizer, or a
    lookup's columns and masks of one program); without the check the claim would go to the trace
    opening, which refuses a tensor it does not hold."""
    rng = np.random.default_rng(10)
    one = F.eone()
    pt = _pt(rng, 3)
    for other in ("w:W", "zk~blind:w:W"):
        c = CL.LinearClaim((("h", pt, one), (other, pt, one)), F.ezero())
        with pytest.raises(CL.Reject, match="a linear claim mixes public, trace and weight tensors"):
            split_claims([c], {}, companion=("zk~blind:w:W",))
    # one kind each: sorted to its opening
    tw = CL.LinearClaim((("w:W", pt, one), ("zk~blind:w:W", pt, one)), F.ezero())
    tt = CL.LinearClaim((("h", pt, one), ("zk~blind:h", pt, one)), F.ezero())
    pub, trace, weight = split_claims([tw, tt], {}, companion=("zk~blind:w:W",))
    assert not pub and [c.terms[0][0] for c in trace] == ["h"] and [c.terms[0][0] for c in weight] == ["w:W"]


# --- 5. soundness -----------------------------------------------------------------------------------------

def test_f1_soundness_figures_refuse_unaccounted_or_uneven_draws(mlp):
    """F1 (λ degrees, uneven repetitions). Redundant for any proof: ``CountingTranscript`` records a
    degree with every λ draw and the lookup verifier draws α and β once per repetition each, so the
    records are always consistent; a proof cannot change what the verifier draws. The checks guard
    ``soundness_figures``' contract (the prover and the well-formedness verifier call it too): an
    unrecorded draw would silently drop out of the error bound."""
    prover, _, _ = mlp
    w = prover.commitment.weights.layout
    with pytest.raises(CL.Reject, match="without a recorded degree"):
        soundness_figures({"lookup/lambda": 3}, [], None, 0, w, 1, lambda_degrees=[5, 5])
    with pytest.raises(CL.Reject, match="uneven number of challenges per repetition"):
        soundness_figures({"lookup/alpha": 2, "lookup/beta": 1}, [[64, 6, 3, 2]], None, 0, w, 1)
    # the consistent records are accepted
    soundness_figures({"lookup/lambda": 2, "lookup/alpha": 2, "lookup/beta": 2}, [[64, 6, 4, 2]], None, 0, w, 1,
                      lambda_degrees=[5, 5])


def test_f1_a_round_above_the_counted_degree_costs_its_excess(mlp):
    """F1. Every op challenge is counted at degree ROUND_DEGREE (5); a sumcheck round of higher degree
    (a two-entry tensor's randomizer of degree 3 in its own variable: up to 15) adds the rest, which
    the counting transcript reads off the round values it absorbs."""
    from blindproof.zk.proof.statement import ROUND_DEGREE, CountingTranscript

    prover, _, _ = mlp
    w = prover.commitment.weights.layout
    tr = CountingTranscript(b"t")
    for d in (3, 5, 11):
        tr.absorb_ext("sumcheck/round", np.zeros((d, 4), dtype=np.uint32))
        tr.challenge_ext("sumcheck/r")
    assert tr.extra_degree == 11 - ROUND_DEGREE
    base = soundness_figures(dict(tr.counts), [], None, 0, w, 1)
    more = soundness_figures(dict(tr.counts), [], None, 0, w, 1, extra_degree=tr.extra_degree)
    assert base.terms[0][1] - more.terms[0][1] == pytest.approx(math.log2((3 * ROUND_DEGREE + 6) / (3 * ROUND_DEGREE)))


# --- 6. gadgets -------------------------------------------------------------------------------------------

def test_g5_zero_check_with_a_false_eq_value_is_rejected():
    """G5. A cheating prover runs the zero-check's sumcheck with the eq factor replaced by zeros: the
    sum is then 0 whatever the product, and every round is consistent. Only the eq value check
    (``eq(τ, r)`` recomputed) sees it. Accepted without the check."""
    rng = np.random.default_rng(3)
    a, b = rng.integers(-50, 50, size=(2, 8, 4))
    c = a * b + 1  # a·b − c ≠ 0 everywhere
    vals = {"a": a, "b": b, "c": c}
    shapes = {k: v.shape for k, v in vals.items()}
    terms = [(1, (0, 1)), (F.P - 1, (2,))]
    pc = B.ProverContext(Transcript(b"g5"), None, shapes, values=vals, strict=False)
    proof = B.OpProof()
    pc.transcript.challenge_exts("ops/zero_check_tau", 5)  # τ drawn as the honest prover draws it
    zeros = np.zeros(32, dtype=np.uint32)
    B.prove_sum(pc, proof, 5, [zeros, *(pc.table(n) for n in "abc")], B._eq_terms(terms), F.ezero())  # noqa: SLF001
    vc = B.VerifierContext(Transcript(b"g5"), None, shapes)
    rd = B.ProofReader(B.OpProof.from_bytes(proof.to_bytes()))
    with pytest.raises(CL.Reject, match="zero-check: wrong eq value"):
        pt, v = B.verify_zero_check(vc, rd, 5, 3, terms)
        rd.done()
        CL.OracleSettler({k: LAY.canonical(x) for k, x in vals.items()}).check(
            [CL.Claim(n, pt, x) for n, x in zip("abc", v)])


def _lookup_case():
    table = L.LookupTable.range(4)
    rng = np.random.default_rng(6)
    w = rng.integers(0, 16, size=8)
    st = L.LookupStatement(table, ("g",), (3,))
    mult = table.multiplicities([[F.from_signed(w)]])
    proof = L.prove(st, [[F.from_signed(w)]], mult, Transcript(b"l3"))
    return st, proof


def test_l3_zero_root_denominator_is_rejected():
    """L3. A root (0, 0) makes "root numerator 0" say nothing about the fractional sum. Defence in
    depth: a zero root is a false claim about the fraction tree (w.h.p.), so without the check the
    first GKR layer rejects it; the check keeps the root test's precondition (q ≠ 0) explicit."""
    st, proof = _lookup_case()
    assert L.verify(st, proof, Transcript(b"l3")).ok
    root_q = proof.root_q.copy()
    root_q[0] = 0  # the tree's root: (p, q) = (0, 0)
    res = L.verify(st, dataclasses.replace(proof, root_q=root_q), Transcript(b"l3"))
    assert not res.ok and "root denominator is zero" in res.reason


def test_l7_multiplicity_columns_not_those_of_the_lookup_are_rejected(mlp, monkeypatch):
    """L7. The cheating prover commits one op's multiplicity column with junk but runs the logUp-GKR on
    the true multiplicities: the lookup's layers verify, and its leaf check — a linear claim whose
    multiplicity terms are the pack's committed columns, no value sent — is false on the committed
    junk, so the trace opening refutes it. (Before zero-knowledge lookups the per-op values were sent
    and a sum check tied them to the GKR's claim.)"""
    prover, inputs, _ = mlp
    real_with_aux, real_prove = P.with_aux, B.LookupBatch.prove
    honest: dict[str, np.ndarray] = {}

    def junk_with_aux(spec, values, public, start=0, strict=True):
        vals, shapes = real_with_aux(spec, values, public, start, strict)
        if not honest:
            name = next(n for n in sorted(vals) if ".mult." in n)
            honest[name] = vals[name]
            vals = dict(vals)
            junk = np.array(vals[name], copy=True)
            junk.flat[0] += 3
            vals[name] = junk
        return vals, shapes

    def gkr_on_honest(self, ctx):
        (name, value), = honest.items()
        committed = ctx.values[name]
        ctx.values[name] = value  # the GKR's numerators; ctx.table keeps the committed junk
        try:
            return real_prove(self, ctx)
        finally:
            ctx.values[name] = committed

    monkeypatch.setattr(P, "with_aux", junk_with_aux)
    monkeypatch.setattr(B.LookupBatch, "prove", gkr_on_honest)
    forged = prover.prove(inputs, strict=False, rng=np.random.default_rng(4))
    monkeypatch.undo()
    assert honest
    res = verify_model_proof(prover.commitment, forged.to_bytes())
    assert not res.ok and "trace opening" in res.reason, res.reason


# --- 7. op verifiers --------------------------------------------------------------------------------------

def test_k5_head_relabelling_with_a_non_empty_proof_is_rejected():
    """K5. A split_heads / merge_heads proof carrying a part: bytes the verifier would skip (a second
    encoding of the same proof). Accepted without ``ProofReader(proof).done()`` in ``heads.verify``."""
    from zk_ops_cases import run_op
    from test_zk_ops_misc import CASES

    def extra_part(data: bytes) -> bytes:
        p = B.OpProof.from_bytes(data)
        p.put_ext(F.ext(1, 2, 3, 4)[None])
        return p.to_bytes()

    for case in ("split_heads", "merge_heads"):
        spec, vals = CASES[case](np.random.default_rng(4))
        assert run_op(spec, vals)[0]
        ok, why, _ = run_op(spec, vals, tamper_bytes=extra_part)
        assert not ok and "unexpected extra proof parts" in why, (case, why)


def test_k8_rope_with_another_positions_tables_is_rejected():
    """K8. The prover rotates by the cos/sin rows of positions 7… (its trace, its proof, all honest
    for start 7) and the verifier is at start 0: the input claims it is left with are true, so only
    the verifier's own evaluation of the cos/sin tables sees the other position. Accepted without
    the check."""
    from zk_ops_cases import P as P_  # the same program module
    from test_zk_ops_misc import _rope

    spec, vals = _rope(np.random.default_rng(2), start=7)
    public = {n: vals[n] for n in spec.inputs}
    full, shapes = P_.with_aux(spec, vals, public, start=7)
    proof, _, out = P_.prove_op(spec, 0, full, shapes, public, start=7)
    assert P_.oracle_for(full).check(P_.verify_op(spec, 0, out.value, proof, shapes, public, start=7)) is None
    with pytest.raises(CL.Reject, match="wrong cos/sin table value"):
        P_.oracle_for(full).check(P_.verify_op(spec, 0, out.value, proof, shapes, public, start=0))


def test_k12_softmax_with_another_causal_mask_is_rejected():
    """K12 (rowwise public tables). The softmax is proved honestly at start 2 (queries see two more
    keys) and checked by a verifier at start 0: every committed tensor is consistent with the start-2
    mask, so only the verifier's own evaluation of the public mask table sees it. Accepted without
    the check."""
    from zk_nonlinear_harness import one_op_spec, settle, trace_values

    op = Op("softmax", ("s",), "p", {"causal": True, "frac": 14, "table": "softmax.exp"})
    big = (1 << 28) - 1
    spec = one_op_spec(op, {"s": TensorSpec("s", 12, -big, big, "accumulator"),
                            "p": TensorSpec("p", 14, 0, 1 << 14, "activation")},
                       {"softmax.exp": exp_table("softmax.exp", 12, 15)})
    s = np.random.default_rng(0).normal(0, 3000, size=(1, 3, 5, 7)).round().astype(np.int64)
    vals = trace_values(spec, {"s": s}, start=2)
    shapes = {"s": s.shape} | softmax.shapes(op, [s.shape], spec)
    vals = {n: np.asarray(vals[n], dtype=np.int64) for n in shapes if n in vals}
    pctx = B.ProverContext(Transcript(b"k12"), spec, shapes, start=2, values=vals)
    vals.update(softmax.aux(pctx, op))
    tables = {n: pctx.table(n) for n in shapes}
    pctx.transcript.absorb_digest("ops/commitment", CL.OracleSettler.digest(tables))
    point = pctx.transcript.challenge_exts("test/out_point", LAY.n_vars(shapes["p"]))
    claim = B.claim_of(pctx, "p", point)
    proof, _ = softmax.prove(pctx, op, [claim])

    def verify(start: int) -> None:
        vctx = B.VerifierContext(Transcript(b"k12"), spec, shapes, start=start)
        vctx.transcript.absorb_digest("ops/commitment", CL.OracleSettler.digest(tables))
        vp = vctx.transcript.challenge_exts("test/out_point", LAY.n_vars(shapes["p"]))
        settle(tables, softmax.verify(vctx, op, [CL.Claim("p", vp, claim.value)], B.OpProof.from_bytes(proof.to_bytes())))

    verify(2)
    with pytest.raises(CL.Reject, match="wrong value of the public table 'mask'"):
        verify(0)

