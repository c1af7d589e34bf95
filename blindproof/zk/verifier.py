"""The verifier of whole-model proofs: a small pure function of (model commitment, proof bytes[, the
input and output the caller expects]) to a :class:`ModelVerifyResult`. It never raises and never
accepts on an error path (every exception becomes a rejection with its reason).

Statement and transcript. The Fiat–Shamir transcript starts from the statement: the model
commitment's digest, the spec digest, the commitment parameters, the position offset, the public
input ``X`` and output ``Y`` (:func:`statement_bytes`). Then, in order: the trace commitment (every
trace tensor, witness and aux column, one hiding PCS commitment), the companion commitment (fresh mask
rows, and any per-proof data tensors, in the weight commitment's code: the weight opening opens the
weights stacked with it, so nothing it reveals reuses a mask of an earlier proof), the op proofs from the output down
to the input (:mod:`blindproof.zk.program`), and the settlement of the claims left over
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
import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from blindproof.zk import pcs
from blindproof.zk.commitment import ModelCommitment
from blindproof.zk.encoding import ProofFormatError
from blindproof.zk.ops.base import Claim, LinearClaim, Reject, Settler, fold_public, n_vars, public_eval
from blindproof.zk.ops.blind import lengths_from_layout
from blindproof.zk.proof_file import ModelProof, ProofFileError, SoundnessFigures
from blindproof.zk.soundness import BABYBEAR_P, EXT_DEGREE, PROOF_FLOOR_BITS, logup_error_log2
from blindproof.zk.transcript import Transcript
from blindproof.zk.verdict import SoundnessResult, guarded

DOMAIN = b"blindproof/model-proof/v2"
LOG_EXT_FIELD = EXT_DEGREE * math.log2(BABYBEAR_P)
ROUND_DEGREE = 5  # the degree each op challenge is counted at; a sumcheck round above it adds the rest
_LOOKUP_LABELS = ("lookup/alpha", "lookup/beta")
_LAMBDA_LABEL = "lookup/lambda"  # counted by its degree (CountingTranscript.lambda_degrees)


@dataclass(frozen=True)
class ModelVerifyResult(SoundnessResult):
    """A verdict plus the soundness of the proof that was checked (0 when it could not be computed)."""

    proof: ModelProof | None = field(default=None, repr=False)  # megabytes: ``repr`` leaves it out
    terms: tuple = field(default=(), repr=False)  # (name, provable bits, conjectured bits) per error term


# --- statement and transcript ---------------------------------------------------------------------

def _tensor_bytes(name: str, a: np.ndarray) -> bytes:
    a = np.ascontiguousarray(a, dtype="<i8")
    nb = name.encode("utf-8")
    head = struct.pack("<I", len(nb)) + nb + struct.pack("<I", a.ndim) + b"".join(struct.pack("<Q", d) for d in a.shape)
    return head + a.tobytes()


def statement_bytes(model_digest: bytes, spec_digest: bytes, params: pcs.PcsParams, start: int,
                    inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> bytes:
    """The public statement, unambiguously encoded (absorbed before anything else)."""
    parts = [model_digest, spec_digest,
             struct.pack("<dII", float(params.security_bits), params.blowup, params.proximity_tests),
             struct.pack("<Q", int(start)), struct.pack("<I", len(inputs))]
    parts += [_tensor_bytes(k, inputs[k]) for k in sorted(inputs)]
    parts.append(struct.pack("<I", len(outputs)))
    parts += [_tensor_bytes(k, outputs[k]) for k in sorted(outputs)]
    return b"".join(parts)


class CountingTranscript(Transcript):
    """A transcript that also records what the soundness analysis needs: the extension challenges
    drawn under each label, and for each logUp lookup its query count (from the group sizes it
    absorbs), its depth (the deepest of its trees: the table's log size from the table description
    it absorbs, or a deeper group) and its α and β draws."""

    def __init__(self, domain: bytes, statement: bytes = b"", on_op: Callable[[str], None] | None = None) -> None:
        super().__init__(domain, statement)
        self.counts: Counter[str] = Counter()
        self.lookups: list[list[int]] = []  # [queries, depth, α and β draws, repetitions (α draws)]
        self.lambda_draws: list[int] = []  # per λ draw: how many lookups were recorded before it
        self.extra_degree = 0  # Σ over sumcheck round challenges of (round degree − ROUND_DEGREE)⁺
        self._round_degree = 0  # degree of the round whose values were absorbed last
        self._table_log = 0  # log size of the table the next lookup uses
        self.on_op = on_op  # told "kind -> output" as each op proof starts (progress display)

    def absorb_bytes(self, label: str, data: bytes) -> None:
        super().absorb_bytes(label, data)
        if label == "ops/op" and self.on_op is not None:
            self.on_op(data.decode("utf-8", "replace").replace("\0", " -> "))
        if label == "lookup/groups" and self.on_op is not None and not self.lookups:
            self.on_op("")  # the deferred lookups start
        if label == "lookup/table":  # u32 name length, name, u32 log size, u32 width, contents hash
            n = int.from_bytes(data[:4], "little")
            self._table_log = int.from_bytes(data[4 + n:8 + n], "little")
        if label == "lookup/groups":  # u32 log sizes, then the group names (text)
            logs = []
            for i in range(0, len(data) - 3, 4):
                v = int.from_bytes(data[i:i + 4], "little")
                if v >= 64:
                    break
                logs.append(v)
            # the bound on the table's rows in the logUp error: 2^max(table, groups) (the signed
            # tree's depth and padding add no poles; its GKR rounds are counted as challenges)
            self.lookups.append([sum(1 << g for g in logs), max([self._table_log, *logs]), 0, 0])

    def absorb_ext(self, label: str, arr: np.ndarray) -> None:
        super().absorb_ext(label, arr)
        if label == "sumcheck/round":  # a round of degree d sends its values at 0, 2, …, d: d of them
            self._round_degree = int(np.asarray(arr).size) // 4

    def challenge_exts(self, label: str, n: int) -> np.ndarray:
        out = super().challenge_exts(label, n)
        self.counts[label] += int(n)
        if label == "sumcheck/r":  # a round above ROUND_DEGREE (a two-entry tensor's randomizer)
            self.extra_degree += max(0, self._round_degree - ROUND_DEGREE) * int(n)
        if self.lookups and label == "lookup/alpha":  # one α per repetition
            self.lookups[-1][2] += int(n)
            self.lookups[-1][3] += int(n)
        elif self.lookups and label == "lookup/beta":
            self.lookups[-1][2] += int(n)
        elif label == "lookup/lambda":
            self.lambda_draws += [len(self.lookups)] * int(n)
        return out

    def lambda_degrees(self) -> list[int]:
        """Per λ draw, the degree in λ of the GKR layer it batches: ``Σ_t λ^(2t) (p_t + λ q_t)`` over
        at most every fraction tree recorded so far (one signed tree per lookup and repetition),
        so ``2·trees − 1``."""
        trees = [max(1, rec[3]) for rec in self.lookups]
        return [max(1, 2 * sum(trees[:k]) - 1) for k in self.lambda_draws]


def statement_transcript(proof: ModelProof) -> CountingTranscript:
    """The transcript of a proof, with its statement absorbed."""
    return CountingTranscript(DOMAIN, statement_bytes(proof.model_digest, proof.spec_digest, proof.params,
                                                      proof.start, proof.inputs, proof.outputs))


# --- soundness ------------------------------------------------------------------------------------

def _bits(err: float) -> float:
    return math.inf if err <= 0 else -math.log2(err)


def soundness_figures(counts: Mapping[str, int], lookups: Sequence[Sequence[int]], trace: pcs.Layout | None,
                      trace_claims: int, weights: pcs.Layout, weight_claims: int,
                      lambda_degrees: Sequence[int] = (), extra_degree: int = 0) -> SoundnessFigures:
    """Provable and conjectured bits of a whole proof (see the module docstring). ``lookups``: per
    logUp lookup (queries, GKR depth, challenges drawn, repetitions), as :class:`CountingTranscript`
    records them; ``lambda_degrees``: the degree of each GKR layer's batching challenge λ;
    ``extra_degree``: what sumcheck rounds of degree above :data:`ROUND_DEGREE` add
    (``CountingTranscript.extra_degree``)."""
    if counts.get(_LAMBDA_LABEL, 0) != len(lambda_degrees):
        raise Reject("GKR batching challenges without a recorded degree")
    other = sum(n for lab, n in counts.items()
                if not lab.startswith("pcs/") and lab not in _LOOKUP_LABELS and lab != _LAMBDA_LABEL)
    weighted = ROUND_DEGREE * other + sum(lambda_degrees) + extra_degree
    terms: list[tuple[str, float, float]] = []
    if weighted:
        b = LOG_EXT_FIELD - math.log2(weighted)
        terms.append((f"op challenges ({other + len(lambda_degrees)})", b, b))
    unaccounted = sum(n for lab, n in counts.items() if lab in _LOOKUP_LABELS) - sum(x[2] for x in lookups)
    if unaccounted:
        raise Reject("lookup challenges without a recorded lookup shape")
    lookup_err = 0.0
    for entry in lookups:
        queries, depth, draws = entry[:3]
        reps = entry[3] if len(entry) > 3 else 1  # (queries, depth, draws): one repetition
        if reps < 1 or draws % reps:
            raise Reject("a lookup drew an uneven number of challenges per repetition")
        lookup_err += 2.0 ** logup_error_log2(queries, depth, draws // reps, reps)
    if lookup_err:
        b = _bits(lookup_err)
        terms.append((f"lookup challenges ({len(lookups)} lookups)", b, b))
    if trace is not None and trace_claims:
        rep = trace.soundness(trace_claims)
        terms.append(("trace opening", rep.provable_bits, rep.conjectured_bits))
    if weight_claims:
        rep = weights.soundness(weight_claims)
        terms.append(("weight opening", rep.provable_bits, rep.conjectured_bits))
    prov = _bits(sum(2.0 ** -t[1] for t in terms))
    conj = _bits(sum(2.0 ** -t[2] for t in terms))
    return SoundnessFigures(prov, conj, terms)


# --- settling claims ------------------------------------------------------------------------------

def split_claims(claims: Sequence, public: Mapping[str, np.ndarray], companion: Sequence[str] = ()
                 ) -> tuple[list[Claim], list, list]:
    """(public, trace, weight) claims, each in order; claims on the companion's tensors (``companion``)
    go with the weights; a linear claim (the randomized claims of ``ops.blind``, as
    :class:`pcs.LinearClaim`) goes with the trace when every term is a trace tensor, else with the
    weights (a claim mixing both is refused: no opening holds both)."""
    pub, tr, w = [], [], []
    comp = set(companion)

    def weighty(name: str) -> bool:
        return name.startswith("w:") or name in comp

    for c in claims:
        if isinstance(c, (pcs.LinearClaim, LinearClaim)):
            c = c if isinstance(c, pcs.LinearClaim) else pcs.LinearClaim(c.terms, c.value)
            c = fold_public(c, lambda name, pt: _public_value(public, name, pt))
            if c is None:
                continue
            kinds = {weighty(t) for t, _, _ in c.terms}
            if any(t in public for t, _, _ in c.terms) or len(kinds) != 1:
                raise Reject("a linear claim mixes public, trace and weight tensors")
            (w if kinds == {True} else tr).append(c)
            continue
        (pub if c.tensor in public else w if weighty(c.tensor) else tr).append(c)
    return pub, tr, w


def _public_value(public: Mapping[str, np.ndarray], name: str, point: np.ndarray) -> "np.ndarray | None":
    """A public tensor's MLE at ``point`` (None for a committed tensor); Reject on a point of another size."""
    if name not in public:
        return None
    values = public[name]
    if point.shape[0] != n_vars(values.shape):
        raise Reject(f"claim on public {name!r} has {point.shape[0]} coordinates, the tensor {n_vars(values.shape)}")
    return public_eval(values, point)


def check_public_claims(claims: Sequence[Claim], public: Mapping[str, np.ndarray]) -> None:
    """Evaluate public tensors' MLEs; Reject on a false claim."""
    for c in claims:
        values = public[c.tensor]
        if c.point.shape[0] != n_vars(values.shape):
            raise Reject(f"claim on public {c.tensor!r} has {c.point.shape[0]} coordinates, "
                         f"the tensor {n_vars(values.shape)}")
        if not np.array_equal(public_eval(values, c.point), c.value):
            raise Reject(f"claim on public tensor {c.tensor!r} is false")


TRACE_COMMITMENT_LABEL = "model/trace-commitment"
COMPANION_COMMITMENT_LABEL = "model/companion-commitment"


class PcsVerifierSettler(Settler):
    """Verifier half: absorbs the proof's trace and companion commitments, then checks the left-over
    claims against the public tensors and the two batched openings carried by the proof."""

    linear_claims = True  # settles the randomized claims of ops.blind (program proofs run blinded)

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


# --- the op proofs (adapter to blindproof.zk.program) -----------------------------------------------

def companion_tensors(spec) -> dict[str, int]:
    """The per-proof data tensors the weight opening's companion must hold (the weights' randomizer
    tables, name -> log size), from the spec alone."""
    from blindproof.zk import program
    return program.companion_tensors(spec)


def _program_verify(spec, proof: ModelProof, transcript: Transcript, settler: PcsVerifierSettler) -> None:
    """Check the op proofs of ``proof.program_proof``; Reject on failure. Calls ``settler.commit``
    before anything else and ``settler.settle`` with the claims the program leaves."""
    try:
        from blindproof.zk import program
    except ImportError:
        raise Reject("this installation has no program verifier (blindproof.zk.program)") from None
    program.verify_program(spec, proof.inputs, proof.outputs, proof.program_proof, transcript, settler,
                           start=proof.start)


# --- the verifier ---------------------------------------------------------------------------------

def spec_scope(spec) -> str:
    """What a program covers: ``"model"`` (tokens or features in, logits out) or ``"blocks"``."""
    return str(spec.arch.get("scope", "model"))


def _same_tensors(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> bool:
    return set(a) == set(b) and all(np.asarray(a[k]).shape == b[k].shape and np.array_equal(a[k], b[k]) for k in a)


def check_public_ranges(spec, tensors: Mapping[str, np.ndarray]) -> None:
    """Reject unless every public tensor is an integer array inside its spec range ``[lo, hi]``: the
    field only sees values mod p, so an unchecked ``Y + p`` would prove as well as ``Y``."""
    for name, v in tensors.items():
        ts = spec.tensors.get(name)
        if ts is None:
            raise Reject(f"public tensor {name!r} has no range in the spec")
        a = np.asarray(v)
        if a.dtype.kind not in "iu":
            raise Reject(f"public tensor {name!r} must be integers, got {a.dtype}")
        if a.size and (int(a.min()) < ts.lo or int(a.max()) > ts.hi):
            raise Reject(f"public tensor {name!r} has values in [{int(a.min())}, {int(a.max())}], outside its "
                         f"declared range [{ts.lo}, {ts.hi}]")


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
