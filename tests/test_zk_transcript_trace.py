"""Transcript tracer: the prover and the verifier of a whole-model proof absorb the same labelled
messages and draw the same labelled challenges, in the order docs/spec/transcript.md writes down.

Every frame the Fiat–Shamir hash receives is recorded — the domain and statement the constructor
absorbs, then one ``(kind, label, bytes)`` per absorb and per challenge (a challenge is absorbed into
the state right after it is squeezed, so its byte length counts what was drawn) — for the prover and
for the verifier of the same proof, on mlp-784-56-10 and on tiny-llama (4 tokens). The tests assert:

* the two sequences are identical (kind, label, length) and the two transcripts end in the same state;
* the statement comes first and is encoded as the spec says (model digest, spec digest, parameters,
  start, X, Y — parsed here by an independent decoder);
* the trace commitment is absorbed before the first challenge;
* no challenge is drawn under a sub-protocol (a sumcheck, a lookup, a PCS opening, an op) before the
  message it depends on was absorbed: the whole sequence must match the grammar below, where every
  challenge sits after the prover message it answers;
* every op proof starts by absorbing its op label (kind and output, in program order from the last op)
  before its first challenge.

Mutations of the real code that make these tests fail (each tried once; applied to prover and
verifier alike, so the proof still verifies and only the ordering is wrong):

* ``PcsProverSettler.commit`` / ``PcsVerifierSettler.commit``: a ``program/output_point`` challenge
  drawn before the trace commitment is absorbed → ``test_trace_commitment_before_first_challenge``
  (and the grammar and op-label tests) fail;
* ``sumcheck.prove`` / ``sumcheck.verify_rounds``: ``sumcheck/r`` drawn before ``sumcheck/round`` is
  absorbed → ``test_every_challenge_after_the_message_it_answers`` fails;
* ``program._prove_ops`` / ``verify_program``: ``B.op_label`` after the op's ``prove`` / ``verify``
  → ``test_op_labels_precede_op_challenges`` fails;
* ``verifier.statement_bytes``: ``start`` packed after the outputs → ``test_statement_first_and_encoded``.

A change on one side only makes the proof fail to verify (the fixture asserts it verifies) or, where
the frames still agree in content, ``test_prover_and_verifier_trace_the_same``.

``test_checkers_reject_mutated_traces`` replays such mutations on a recorded trace (no re-proving),
so every checker is shown to fail on the code path it guards, on every run.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

import numpy as np
import pytest

pytest.importorskip("blindproof.zk.proof.program")

from blindproof.zk.iop import transcript as T  # noqa: E402
from blindproof.zk.proof import verifier as V  # noqa: E402
from blindproof.zk.proof import statement as STMT
from blindproof.zk.proof.keys import CommitmentKey  # noqa: E402
from blindproof.zk.proof.prover import ModelProver, example_input, quantized_workload  # noqa: E402

KEY = CommitmentKey(b"\x07" * 32)
# byte lengths of what a challenge absorbs back: an extension element is 4 little-endian u32 words,
# an index one little-endian i64
EXT_BYTES, INDEX_BYTES = 16, 8
KIND_NAMES = {T._KIND_BYTES: "bytes", T._KIND_FIELD: "field", T._KIND_EXT: "ext", T._KIND_DIGEST: "digest",
              T._KIND_CHALLENGE: "challenge"}


# --- the tracer -------------------------------------------------------------------------------------

@dataclass
class Event:
    """One frame of the hash: ``kind`` is "domain", "statement", an absorb kind or "challenge"."""

    kind: str
    label: str
    size: int  # bytes hashed (a challenge: the bytes drawn)
    data: bytes | None = None  # kept for the few labels the checks read

    @property
    def token(self) -> str:
        return f"{'C' if self.kind == 'challenge' else 'A'} {self.label}"


KEEP_DATA = {"ops/op", "model/trace-commitment", "statement", "domain"}


@dataclass
class Trace:
    """Everything one transcript hashed, in order, and the transcript itself (for its final state)."""

    events: list[Event] = field(default_factory=list)
    transcript: T.Transcript | None = None

    def tokens(self) -> list[str]:
        return [e.token for e in self.events if e.kind not in ("domain", "statement")]


class Tracer:
    """Wraps :class:`blindproof.zk.iop.transcript.Transcript` (class-wide, so subclasses such as the
    verifier's ``CountingTranscript`` and every helper transcript are seen) and records every frame
    of every transcript made under ``domain``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, domain: bytes) -> None:
        self.domain = domain
        self.traces: list[Trace] = []
        tracer = self
        orig_init, orig_update = T.Transcript.__init__, T.Transcript._update

        def init(self_, dom, statement=b""):
            orig_init(self_, dom, statement)
            if bytes(dom) == tracer.domain:
                tr = Trace(transcript=self_)
                tr.events += [Event("domain", "domain", len(dom), bytes(dom)),
                              Event("statement", "statement", len(statement), bytes(statement))]
                self_._trace_ = tr
                tracer.traces.append(tr)

        def update(self_, kind, label, data):
            orig_update(self_, kind, label, data)
            tr = getattr(self_, "_trace_", None)
            if tr is not None:
                tr.events.append(Event(KIND_NAMES[kind], label, len(data),
                                       bytes(data) if label in KEEP_DATA else None))

        monkeypatch.setattr(T.Transcript, "__init__", init)
        monkeypatch.setattr(T.Transcript, "_update", update)

    def take(self) -> Trace:
        """The one transcript recorded since the last call."""
        assert len(self.traces) == 1, f"expected one transcript under {self.domain!r}, got {len(self.traces)}"
        return self.traces.pop()


# --- the grammar of a whole-model transcript (docs/spec/transcript.md) ------------------------------

class Grammar:
    """A recursive-descent reader of a whole-model transcript's tokens (``"A label"`` for an absorb,
    ``"C label"`` for a challenge). Each rule reads one sub-protocol and puts every challenge after the
    prover message it answers; :meth:`model_proof` raises AssertionError at the first token that does
    not fit, naming it."""

    def __init__(self, tokens: list[str]) -> None:
        self.t, self.i = tokens, 0
        self.openings = 0
        self.op_labels = 0

    # primitives
    def peek(self, k: int = 0) -> str | None:
        return self.t[self.i + k] if self.i + k < len(self.t) else None

    def fail(self, want: str) -> None:
        window = self.t[max(0, self.i - 4):self.i + 3]
        raise AssertionError(f"token {self.i}: expected {want}, got {self.peek()!r}; around it: {window}")

    def take(self, *tokens: str) -> None:
        for tok in tokens:
            if self.peek() != tok:
                self.fail(repr(tok))
            self.i += 1

    def many(self, *tokens: str) -> int:
        n = 0
        while self.t[self.i:self.i + len(tokens)] == list(tokens):
            self.i += len(tokens)
            n += 1
        return n

    # rules
    def sumcheck(self) -> None:
        """shape, [blinded rounds], terms, factors, claim, [mask sum, ρ], (round, r)*, final values,
        [mask value]."""
        self.take("A sumcheck/shape")
        self.many("A sumcheck/blinded")
        self.take("A sumcheck/terms", "A sumcheck/factors", "A sumcheck/claim")
        masked = self.peek() == "A sumcheck/mask_sum"
        if masked:
            self.take("A sumcheck/mask_sum", "C sumcheck/rho")
        self.many("A sumcheck/round", "C sumcheck/r")
        self.take("A sumcheck/final")
        if masked:
            self.take("A sumcheck/mask_eval")

    def op(self) -> None:
        """The op label, then the op's own messages, challenges and sumchecks."""
        self.take("A ops/op")
        self.op_labels += 1
        while True:
            tok = self.peek()
            if tok == "A sumcheck/shape":
                self.sumcheck()
            elif tok is not None and tok[2:].startswith("ops/") and tok[2:] not in (
                    "ops/op", "ops/lookup_batch", "ops/lookup_batch_mult"):
                self.i += 1
            else:
                return

    def gkr(self) -> None:
        """One shared logUp-GKR: per lookup its shape then α (β), the root denominators, then per layer λ, the
        (masked) layer sumcheck and μ. With zero knowledge (every whole-model proof) nothing follows:
        the leaf checks are linear claims and no column or multiplicity value is sent; without it,
        the column values of trees that end at a layer, then the multiplicity values of every pack."""
        n = 0
        while self.peek() == "A lookup/table":
            self.take("A lookup/table", "A lookup/groups", "A lookup/reps", "C lookup/alpha")
            self.many("C lookup/beta")
            n += 1
        if not n:
            self.fail("a lookup statement")
        self.take("A lookup/root_q")
        layers = 0
        while self.peek() == "C lookup/lambda":
            self.take("C lookup/lambda")
            if self.peek() == "A lookup/mask_sum":
                self.take("A lookup/mask_sum", "C lookup/rho")
                if not self.many("A lookup/round", "C lookup/r"):
                    self.fail("a round of a masked layer")
                self.take("A lookup/final", "A lookup/mask_eval")  # g(r): a linear claim, settled later
            else:
                self.fail("a masked layer (whole-model lookups are zero-knowledge)")
            self.take("C lookup/mu")
            layers += 1
        if not layers:
            self.fail("a GKR layer")
        if self.peek() in ("A lookup/columns", "A ops/lookup_batch_mult"):
            self.fail("no leaf values (zero-knowledge lookups send none)")

    def opening(self) -> None:
        """Commitment(s: the weights and their companion are opened together), claims, γ, α, τ, μ, ρ,
        column sumcheck, mask values, κ, rows, query positions."""
        self.take("A pcs/commitment")
        while self.peek() == "A pcs/commitment":
            self.take("A pcs/commitment")
        self.take("A pcs/n_claims", "A pcs/claims")  # every claim in one message
        self.take("C pcs/gamma", "C pcs/gamma_mask", "C pcs/alpha", "C pcs/tau", "A pcs/mask_sum", "C pcs/rho")
        if not self.many("A pcs/round", "C pcs/r"):
            self.fail("a column-sumcheck round")
        self.take("A pcs/mask_value", "C pcs/kappa", "A pcs/u_eval", "A pcs/s_eval", "A pcs/u_prox",
                  "A pcs/s_prox", "C pcs/queries")
        self.openings += 1

    def model_proof(self) -> "Grammar":
        """trace and companion commitments, output points, ops (last first), batched lookups, openings
        (trace, weights with the companion)."""
        self.take("A model/trace-commitment", "A model/companion-commitment")
        if not self.many("C program/output_point"):
            self.fail("an output point")
        while self.peek() == "A ops/op":
            self.op()
        self.take("A ops/lookup_batch")
        while self.peek() == "A lookup/table":
            self.gkr()
        while self.peek() == "A pcs/commitment":
            self.opening()
        if self.peek() is not None:
            self.fail("the end of the transcript")
        return self


def check_grammar(tokens: list[str]) -> Grammar:
    """AssertionError at the first token of ``tokens`` that does not fit a whole-model transcript."""
    return Grammar(tokens).model_proof()


# --- the statement, decoded independently ------------------------------------------------------------

def decode_statement(data: bytes) -> dict:
    """Parse a model-proof statement: model digest (32), spec digest (32), ``<dII`` parameters (security
    bits, blowup, proximity tests), ``<Q`` start, then the 32-byte digest of the public input and output."""
    at = 0

    def take(n: int) -> bytes:
        nonlocal at
        assert at + n <= len(data), "statement ends early"
        at += n
        return data[at - n:at]

    out: dict = {"model_digest": take(32), "spec_digest": take(32)}
    out["security_bits"], out["blowup"], out["proximity_tests"] = struct.unpack("<dII", take(16))
    (out["start"],) = struct.unpack("<Q", take(8))
    out["public_digest"] = take(32)
    assert at == len(data), f"{len(data) - at} trailing statement bytes"
    return out


def public_digest(inputs: dict, outputs: dict) -> bytes:
    """The public tensors' digest, written from its specification (docs/proofs.md §2): BLAKE3 keyed by
    nothing, prefixed ``blindproof/public/v1``; per side a ``<I`` count, then per tensor sorted by name
    ``<I`` name length, name, ``<I`` ndim, ``<Q`` dims, int64 LE values."""
    import blake3

    h = blake3.blake3(b"blindproof/public/v1")
    for group in (inputs, outputs):
        h.update(struct.pack("<I", len(group)))
        for k in sorted(group):
            a = np.ascontiguousarray(group[k], dtype="<i8")
            h.update(struct.pack("<I", len(k.encode())) + k.encode() + struct.pack("<I", a.ndim)
                     + b"".join(struct.pack("<Q", d) for d in a.shape) + a.tobytes())
    return h.digest()


# --- recording one proof ------------------------------------------------------------------------------

@dataclass
class Recorded:
    name: str
    prover: ModelProver
    proof: object
    prover_trace: Trace
    verifier_trace: Trace
    result: object


def record(monkeypatch: pytest.MonkeyPatch, name: str, tokens: int | None = None) -> Recorded:
    """Prove and verify one example input of workload ``name`` with both transcripts traced."""
    prover = ModelProver.create(quantized_workload(name), KEY)
    x = example_input(name)
    if tokens is not None:
        x = x[:, :tokens]
    inputs = prover.model.encode(x)
    tracer = Tracer(monkeypatch, STMT.DOMAIN)
    proof = prover.prove(inputs, rng=np.random.default_rng(0))
    ptrace = tracer.take()
    res = V.verify_model_proof(prover.commitment, proof.to_bytes())
    vtrace = tracer.take()
    assert res.ok, res.reason
    return Recorded(name, prover, proof, ptrace, vtrace, res)


_CACHE: dict[str, Recorded] = {}


@pytest.fixture(scope="module", params=["mlp-784-56-10", "tiny-llama"])
def rec(request):
    name = request.param
    if name not in _CACHE:
        mp = pytest.MonkeyPatch()
        try:
            _CACHE[name] = record(mp, name, tokens=4 if name == "tiny-llama" else None)
        finally:
            mp.undo()
    return _CACHE[name]


# --- the checks ----------------------------------------------------------------------------------------

def sequence(tr: Trace) -> list[tuple[str, str, int]]:
    return [(e.kind, e.label, e.size) for e in tr.events]


def check_same(p: Trace, v: Trace) -> None:
    """The prover's and the verifier's frames are identical in kind, label and length."""
    ps, vs = sequence(p), sequence(v)
    for i, (a, b) in enumerate(zip(ps, vs)):
        assert a == b, f"frame {i}: prover {a}, verifier {b}"
    assert len(ps) == len(vs), f"prover hashed {len(ps)} frames, verifier {len(vs)}"


def check_statement_first(tr: Trace, rec_: Recorded) -> None:
    """Domain, then the statement, before anything else; the statement is exactly the proof's."""
    assert [e.kind for e in tr.events[:2]] == ["domain", "statement"]
    assert tr.events[0].data == STMT.DOMAIN
    st = decode_statement(tr.events[1].data)
    com, proof = rec_.prover.commitment, rec_.proof
    assert st["model_digest"] == com.digest()
    assert st["spec_digest"] == com.spec_digest
    assert (st["security_bits"], st["blowup"], st["proximity_tests"]) == (
        com.params.security_bits, com.params.blowup, com.params.proximity_tests)
    assert st["start"] == proof.start
    assert st["public_digest"] == proof.public_digest == public_digest(proof.inputs, proof.outputs)
    assert all(e.kind not in ("domain", "statement") for e in tr.events[2:])


def check_commitment_first(tr: Trace) -> None:
    """The trace commitment (a 32-byte digest) is the first frame after the statement, then the
    companion commitment, both before any challenge."""
    body = tr.events[2:]
    first_challenge = next(i for i, e in enumerate(body) if e.kind == "challenge")
    commits = [i for i, e in enumerate(body) if e.label == "model/trace-commitment"]
    assert commits == [0], f"trace commitment absorbed at {commits}, first challenge at {first_challenge}"
    assert body[0].kind == "digest" and body[0].size == 32
    companions = [i for i, e in enumerate(body) if e.label == "model/companion-commitment"]
    assert companions == [1] and body[1].kind == "digest" and body[1].size == 32
    assert first_challenge > 1


def check_op_labels(tr: Trace, rec_: Recorded) -> None:
    """Every op proof begins with its label ``kind\\0output``, absorbed before any challenge of the op:
    the labels follow the program from the last op, name exactly the ops the proof has a part for, and
    no challenge but the output points comes before the first label."""
    from blindproof.zk.proof.program import ProgramProof  # noqa: PLC0415

    spec = rec_.prover.model.spec
    labels = [e.data.decode("utf-8") for e in tr.events if e.label == "ops/op"]
    pp = ProgramProof.from_bytes(rec_.proof.program_proof, len(spec.ops))
    proved = [f"{op.kind}\0{op.output}" for op, p in zip(reversed(spec.ops), reversed(pp.op_proofs)) if p is not None]
    assert labels == proved, "the op labels are not the proved ops in program order from the last"
    tokens = tr.tokens()
    assert "A ops/op" in tokens, "no op label at all"
    first = tokens.index("A ops/op")
    stray = [t for t in tokens[:first] if t.startswith("C ") and t != "C program/output_point"]
    assert not stray, f"challenges before the first op label: {stray[:3]}"
    # the label is the op segment's first frame: everything from it to the lookups reads as op proofs
    assert check_grammar(tokens).op_labels == len(labels)


# --- tests -----------------------------------------------------------------------------------------------

def test_prover_and_verifier_trace_the_same(rec):
    check_same(rec.prover_trace, rec.verifier_trace)
    assert rec.prover_trace.transcript.state_digest() == rec.verifier_trace.transcript.state_digest()


def test_statement_first_and_encoded(rec):
    check_statement_first(rec.verifier_trace, rec)
    check_statement_first(rec.prover_trace, rec)


def test_trace_commitment_before_first_challenge(rec):
    check_commitment_first(rec.verifier_trace)


def test_every_challenge_after_the_message_it_answers(rec):
    g = check_grammar(rec.verifier_trace.tokens())
    assert g.openings == 2  # the trace commitment's opening, then the weight commitment's


def test_op_labels_precede_op_challenges(rec):
    check_op_labels(rec.verifier_trace, rec)


def test_soundness_count_covers_every_challenge(rec):
    """The "op challenges (N)" term of the verifier's soundness figure counts every extension challenge
    of the trace except the openings' (their own term) and logUp's α, β (the lookup term): nothing is
    drawn under a label the analysis does not know."""
    drawn: dict[str, int] = {}
    for e in rec.verifier_trace.events:
        if e.kind != "challenge":
            continue
        per = INDEX_BYTES if e.label == "pcs/queries" else EXT_BYTES
        assert e.size % per == 0, f"challenge {e.label!r} drew {e.size} bytes"
        drawn[e.label] = drawn.get(e.label, 0) + e.size // per
    op_side = sum(n for lab, n in drawn.items() if not lab.startswith("pcs/") and lab not in ("lookup/alpha", "lookup/beta"))
    term = next((t for t in rec.result.terms if t[0].startswith("op challenges")), None)
    assert term is not None, f"no op-challenge term in {rec.result.terms}"
    assert int(re.search(r"\((\d+)\)", term[0]).group(1)) == op_side


def _move(ev: list[Event], i: int, j: int) -> list[Event]:
    """The events with frame ``i`` moved to position ``j`` (of the list without it)."""
    m = list(ev)
    m.insert(j, m.pop(i))
    return m


def _first(ev: list[Event], pred, start: int = 0) -> int:
    return next(i for i in range(start, len(ev)) if pred(ev[i]))


def mutations(tr: Trace) -> dict[str, tuple[list[Event], object]]:
    """Recorded frames with one prover message moved behind a challenge that depends on it, each with
    the check ``check(trace, recorded)`` that must catch it."""
    ev = tr.events
    chal = lambda e: e.kind == "challenge"  # noqa: E731
    grammar = lambda t, _r: check_grammar(t.tokens())  # noqa: E731
    first_c = _first(ev, chal)
    rnd = _first(ev, lambda e: e.label == "sumcheck/round")
    op = _first(ev, lambda e: e.label == "ops/op")
    op_c = _first(ev, chal, op)
    claim = _first(ev, lambda e: e.label == "pcs/claims")
    gamma = _first(ev, lambda e: e.label == "pcs/gamma", claim)
    roots = _first(ev, lambda e: e.label == "lookup/root_q")
    return {
        "trace commitment after the output points": (_move(ev, 2, first_c), lambda t, _r: check_commitment_first(t)),
        "sumcheck round after its challenge": (_move(ev, rnd, rnd + 1), grammar),
        "op label after the op's first challenge": (_move(ev, op, op_c), check_op_labels),
        "opening claim after the proximity weights": (_move(ev, claim, gamma), grammar),
        "lookup root denominators after the first λ": (_move(ev, roots, roots + 1), grammar),
        "statement after the trace commitment": (_move(ev, 1, 2), check_statement_first),
    }


def test_checkers_reject_mutated_traces(rec):
    """Each ordering check fails on the recorded trace with one message moved behind the challenge that
    depends on it (what a prover or verifier with the absorb in the wrong place would hash); and the
    prover/verifier comparison fails on any of them."""
    for what, (events, check) in mutations(rec.verifier_trace).items():
        mutated = Trace(events=events)
        with pytest.raises(AssertionError):
            check_same(rec.prover_trace, mutated)
        with pytest.raises(AssertionError):
            check(mutated, rec)
