"""The verifier of whole-model proofs: a small pure function of (model commitment, proof bytes[, the
input and output the caller expects]) to a :class:`ModelVerifyResult`. It never raises and never
accepts on an error path (every exception becomes a rejection with its reason).

Statement and transcript. The Fiat–Shamir transcript starts from the statement: the model
commitment's digest, the spec digest, the commitment parameters, the position offset, the public
input ``X`` and output ``Y`` (:func:`statement_bytes`). Then, in order: the trace commitment (every
trace tensor, witness and aux column, one hiding PCS commitment), the companion commitment (fresh mask
rows, and any per-proof data tensors, in the weight commitment's code: the weight opening opens the
weights stacked with it, so nothing it reveals reuses a mask of an earlier proof), the op proofs from the output down
to the input (:mod:`blindproof.zk.proof.program`), and the settlement of the claims left over
(:class:`PcsVerifierSettler`): claims on public tensors are evaluated here, claims on committed
trace tensors are proved by one batched opening of the trace commitment, claims on weights
(``"w:<name>"``) and on companion tensors by one batched opening of the model commitment stacked with
the companion.

Soundness figures (:func:`soundness_figures`) are recomputed here from what the verifier saw, never
taken from the file: the two openings' own reports (:meth:`pcs.Layout.soundness`), plus one term per
challenge the op proofs drew (``≤ 4/|F_ext|`` for a sumcheck round or random-point coordinate, whose
polynomials have degree ≤ 4), and per logUp lookup with ``M`` queries, a GKR of depth ``d`` (its table
has at most ``2^d`` rows), ``c`` challenges per repetition and ``R`` repetitions
``(c · (M + 2^d)/|F_ext|)^R`` (:func:`soundness.logup_error_log2`), all added (union bound).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from blindproof.zk.commit import pcs
from blindproof.zk.proof.commitment import ModelCommitment
from blindproof.zk.field.encoding import ProofFormatError
from blindproof.zk.iop.claims import Claim, Reject, Settler
from blindproof.zk.iop.blind import lengths_from_layout
from blindproof.zk.proof.proof_file import ModelProof, ProofFileError, SoundnessFigures
from blindproof.zk.proof.soundness import PROOF_FLOOR_BITS
from blindproof.zk.iop.transcript import Transcript
from blindproof.zk.verdict import SoundnessResult, guarded
from blindproof.zk.proof.statement import (DOMAIN, statement_bytes, CountingTranscript, soundness_figures,
                                           split_claims, check_public_claims, TRACE_COMMITMENT_LABEL,
                                           COMPANION_COMMITMENT_LABEL, check_public_ranges)


@dataclass(frozen=True)
class ModelVerifyResult(SoundnessResult):
    """A verdict plus the soundness of the proof that was checked (0 when it could not be computed)."""

    proof: ModelProof | None = field(default=None, repr=False)  # megabytes: ``repr`` leaves it out
    terms: tuple = field(default=(), repr=False)  # (name, provable bits, conjectured bits) per error term


# --- statement and transcript ---------------------------------------------------------------------


def statement_transcript(proof: ModelProof) -> CountingTranscript:
    """The transcript of a proof, with its statement absorbed."""
    return CountingTranscript(DOMAIN, statement_bytes(proof.model_digest, proof.spec_digest, proof.params,
                                                      proof.start, proof.public_digest))


# --- settling claims ------------------------------------------------------------------------------


class PcsVerifierSettler(Settler):
    """Verifier half: absorbs the proof's trace and companion commitments, then checks the left-over
    claims against the public tensors and the two batched openings carried by the proof."""

    linear_claims = True  # settles the randomized claims of iop.blind (program proofs run blinded)

    def randomizer_lengths(self) -> dict[str, int]:
        """The trace tensors' randomizer sizes, as the trace commitment holds them (the prover's choice:
        they protect only the prover)."""
        if self.trace_com is None:
            return {}
        return lengths_from_layout(self.trace_com.layout.names, self.trace_com.layout.log_sizes)

    def __init__(self, proof: ModelProof, model: ModelCommitment, trace_com: pcs.Commitment | None,
                 companion: pcs.Commitment | None = None) -> None:
        self.proof, self.model, self.trace_com, self.companion = proof, model, trace_com, companion
        self.committed = False
        self.settled = False

    def commit(self, tables, transcript: Transcript) -> None:  # the verifier has no tables: ignores them
        if self.committed:
            raise Reject("the trace commitment was absorbed twice")
        if self.companion is None:  # not parsed by the caller: from the proof, under the same layout rule
            try:
                comp = pcs.Commitment.from_bytes(self.proof.companion_commitment)
                pcs.check_companion_layout(comp.layout, self.model.weights.layout, companion_tensors(self.model.spec))
            except (ProofFormatError, ValueError) as exc:
                raise Reject(f"the proof's companion commitment: {exc}") from None
            self.companion = comp
        transcript.absorb_digest(TRACE_COMMITMENT_LABEL, self.trace_com.digest() if self.trace_com else b"\x00" * 32)
        transcript.absorb_digest(COMPANION_COMMITMENT_LABEL, self.companion.digest())
        self.committed = True

    def settle(self, claims: Sequence[Claim], transcript: Transcript) -> None:
        if not self.committed:
            raise Reject("claims settled before the trace commitment was absorbed")
        if self.settled:
            raise Reject("claims settled twice")
        self.settled = True
        pub, tr, w = split_claims(claims, self.proof.inputs | self.proof.outputs, self.companion.layout.names)
        if len(tr) != self.proof.trace_claims or len(w) != self.proof.weight_claims:
            raise Reject(f"the proof opens {self.proof.trace_claims} trace and {self.proof.weight_claims} weight "
                         f"claims, the program left {len(tr)} and {len(w)}")
        check_public_claims(pub, self.proof.inputs | self.proof.outputs)
        if tr:
            if self.trace_com is None:
                raise Reject("claims on trace tensors but no trace commitment")
            res = pcs.verify(self.trace_com, tr, self.proof.trace_opening, transcript)
            if not res:
                raise Reject(f"trace opening: {res.reason}")
        elif self.proof.trace_opening:
            raise Reject("a trace opening without trace claims")
        if w:
            res = pcs.verify([self.model.weights, self.companion], w, self.proof.weight_opening, transcript)
            if not res:
                raise Reject(f"weight opening: {res.reason}")
        elif self.proof.weight_opening:
            raise Reject("a weight opening without weight claims")


# --- the op proofs (adapter to blindproof.zk.proof.program) -----------------------------------------------

def companion_tensors(spec) -> dict[str, int]:
    """The per-proof data tensors the weight opening's companion must hold (the weights' randomizer
    tables, name -> log size), from the spec alone."""
    from blindproof.zk.proof import program
    return program.companion_tensors(spec)


def _program_verify(spec, proof: ModelProof, transcript: Transcript, settler: PcsVerifierSettler) -> None:
    """Check the op proofs of ``proof.program_proof``; Reject on failure. Calls ``settler.commit``
    before anything else and ``settler.settle`` with the claims the program leaves."""
    try:
        from blindproof.zk.proof import program
    except ImportError:
        raise Reject("this installation has no program verifier (blindproof.zk.proof.program)") from None
    program.verify_program(spec, proof.inputs, proof.outputs, proof.program_proof, transcript, settler,
                           start=proof.start)


# --- the verifier ---------------------------------------------------------------------------------

def spec_scope(spec) -> str:
    """What a program covers: ``"model"`` (tokens or features in, logits out) or ``"blocks"``."""
    return str(spec.arch.get("scope", "model"))


def _int64(tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Integer tensors as int64, refusing anything a cast would change (floats, out-of-range uint64)."""
    out = {}
    for k, v in tensors.items():
        a = np.asarray(v)
        if a.dtype.kind not in "iu" or (a.dtype == np.uint64 and a.size and int(a.max()) >= 1 << 63):
            raise TypeError(f"{k!r} has dtype {a.dtype}")
        out[k] = a.astype(np.int64)
    return out


def _same_tensors(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> bool:
    return set(a) == set(b) and all(np.asarray(a[k]).shape == b[k].shape and np.array_equal(a[k], b[k]) for k in a)


def required_bits(min_provable_bits: float | None) -> float:
    """The soundness a proof must reach: the protocol's floor, raised (never lowered) by the caller."""
    if min_provable_bits is None:
        return PROOF_FLOOR_BITS
    if not isinstance(min_provable_bits, (int, float)) or math.isnan(min_provable_bits):
        raise ValueError(f"min_provable_bits must be a number, got {min_provable_bits!r}")
    return max(PROOF_FLOOR_BITS, float(min_provable_bits))


def verify_model_proof(model: ModelCommitment, proof: bytes, inputs: Mapping[str, np.ndarray] | None = None,
                       outputs: Mapping[str, np.ndarray] | None = None, *, start: int | None = None,
                       scope: str | None = None, min_provable_bits: float | None = None) -> ModelVerifyResult:
    """Accept iff ``proof`` shows ``outputs = F_W(inputs)`` at position ``start`` for the model committed
    in ``model``, with at least ``max(100, min_provable_bits)`` provable bits of soundness.

    ``inputs`` / ``outputs`` / ``start`` / ``scope``: what the caller expects the statement to be (None:
    take the proof's own, which the result then carries in ``.proof`` for the caller to read). The code
    parameters come from ``model`` alone. Never raises."""
    res = guarded(lambda: _verify(model, proof, inputs, outputs, start, scope, required_bits(min_provable_bits)),
                  "verify")
    if isinstance(res, ModelVerifyResult):
        return res
    return ModelVerifyResult(False, res.reason or "rejected")


def _reject(reason: str, proof: ModelProof | None = None, figs: SoundnessFigures | None = None) -> ModelVerifyResult:
    return ModelVerifyResult(False, reason, (), figs.provable_bits if figs else 0.0,
                             figs.conjectured_bits if figs else 0.0, proof, tuple(figs.terms) if figs else ())


def _verify(model, data, inputs, outputs, start, scope, min_bits) -> ModelVerifyResult:
    if not isinstance(model, ModelCommitment):
        return _reject(f"model must be a ModelCommitment, got {type(model).__name__}")
    try:
        proof = ModelProof.from_bytes(data)
    except ProofFileError as exc:
        return _reject(f"malformed proof: {exc}")
    if proof.model_digest != model.digest():
        return _reject("the proof is for another model commitment", proof)
    if proof.spec_digest != model.spec_digest:
        return _reject("the proof names another quantization spec", proof)
    if proof.params != model.params:
        return _reject(f"the proof's parameters {proof.params} differ from the commitment's {model.params}", proof)
    spec = model.spec
    if scope is not None and scope != spec_scope(spec):
        return _reject(f"the commitment's program covers {spec_scope(spec)!r}, the caller expects {scope!r}", proof)
    if start is not None and int(start) != proof.start:
        return _reject(f"the proof is for position {proof.start}, the caller asked for {int(start)}", proof)
    if proof.detached:  # the statement binds the public tensors by digest: the caller holds them
        if inputs is None or outputs is None:
            return _reject("the proof travels without its public input and output: pass the ones you hold", proof)
        try:
            proof = proof.with_public(_int64(inputs), _int64(outputs))
        except ProofFileError:
            return _reject("the proof is for another input or output", proof)
        except (TypeError, ValueError) as exc:
            return _reject(f"the public input or output is not an integer tensor: {exc}", proof)
    if set(proof.inputs) != set(spec.inputs) or set(proof.outputs) != set(spec.outputs):
        return _reject(f"public tensors {sorted(proof.inputs)} -> {sorted(proof.outputs)} do not match the "
                       f"program's {list(spec.inputs)} -> {list(spec.outputs)}", proof)
    if inputs is not None and not _same_tensors(inputs, proof.inputs):
        return _reject("the proof is for another input", proof)
    if outputs is not None and not _same_tensors(outputs, proof.outputs):
        return _reject("the proof is for another output", proof)
    try:
        check_public_ranges(spec, proof.inputs | proof.outputs)
    except Reject as exc:
        return _reject(f"rejected: {exc}", proof)
    trace_com = None
    if proof.trace_commitment:
        try:
            trace_com = pcs.Commitment.from_bytes(proof.trace_commitment)
        except ProofFormatError as exc:
            return _reject(f"malformed trace commitment: {exc}", proof)
        try:  # the parameter rule, not the prover, sets queries, columns, blowup and proximity tests
            pcs.check_layout_rule(trace_com.layout, model.params, "the trace commitment")
        except ValueError as exc:
            return _reject(str(exc), proof)
    try:  # the companion: the weight commitment's code, its mask rows and the weights' randomizer tables
        companion = pcs.Commitment.from_bytes(proof.companion_commitment)
        pcs.check_companion_layout(companion.layout, model.weights.layout, companion_tensors(spec))
    except ProofFormatError as exc:
        return _reject(f"malformed companion commitment: {exc}", proof)
    except ValueError as exc:
        return _reject(str(exc), proof)
    tr = statement_transcript(proof)
    settler = PcsVerifierSettler(proof, model, trace_com, companion)
    try:
        _program_verify(spec, proof, tr, settler)
    except Reject as exc:
        return _reject(f"rejected: {exc}", proof)
    if not settler.settled:
        return _reject("the program proof left its claims unsettled", proof)
    figs = soundness_figures(tr.counts, tr.lookups, trace_com.layout if trace_com else None, proof.trace_claims,
                             model.weights.layout, proof.weight_claims, tr.lambda_degrees(), tr.extra_degree)
    stated = proof.soundness  # doubles round-trip exactly: any difference is a tampered or foreign file
    if ((stated.provable_bits, stated.conjectured_bits, [tuple(t) for t in stated.terms])
            != (figs.provable_bits, figs.conjectured_bits, [tuple(t) for t in figs.terms])):
        return _reject(f"the proof states {proof.soundness.summary()}, the verifier computes {figs.summary()}",
                       proof, figs)
    if figs.provable_bits < min_bits:
        return _reject(f"soundness {figs.provable_bits:.1f} provable bits is below the required {min_bits}",
                       proof, figs)
    return ModelVerifyResult(True, "", (), figs.provable_bits, figs.conjectured_bits, proof, tuple(figs.terms))
