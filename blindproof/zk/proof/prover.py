"""The prover of whole-model proofs (see :mod:`blindproof.zk.proof.verifier` for the protocol it follows).

1. ``run_program`` on the public input gives the trace: every tensor and witness, bit for bit the
   integer model's.
2. The statement (model digest, spec digest, parameters, start, ``X``, ``Y``) starts the transcript.
3. Every trace tensor, witness and aux column is committed in ONE hiding PCS commitment, then a fresh
   companion of the weight commitment (its mask rows, OS randomness) is committed (both before any
   challenge; :class:`PcsProverSettler.commit`), the op proofs run from the output down to the input
   (:mod:`blindproof.zk.proof.program`), and the claims they leave are settled: public tensors by the
   verifier itself, trace tensors by one batched opening of the trace commitment, weights by one
   batched opening of the model commitment stacked with the companion.

:class:`ModelProver` keeps a model, its commitment and the commitment's opening state, so one
commitment serves many proofs, as many as the commitment's opening budget: the weight openings are
charged to an :class:`~blindproof.zk.proof.keys.OpeningLedger` before a proof is returned.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from pathlib import Path

from blindproof.zk.field import babybear as F
from blindproof.zk.commit import pcs
from blindproof.zk.proof.commitment import ModelCommitment, commit_model
from blindproof.zk.proof.keys import CommitmentKey, OpeningBudgetExceeded, OpeningLedger
from blindproof.zk.proof.config import DEFAULT_BUDGET
from blindproof.zk.iop.claims import Claim, Reject, Settler
from blindproof.zk.iop.layout import public_eval
from blindproof.zk.iop.blind import in_companion
from blindproof.zk.proof.proof_file import ModelProof, io_digest
from blindproof.quant import QuantizedModel, Trace, run_program
from blindproof.zk.iop.transcript import Transcript
from blindproof.zk.proof.statement import (COMPANION_COMMITMENT_LABEL, DOMAIN, TRACE_COMMITMENT_LABEL,
                                           CountingTranscript, check_public_ranges, soundness_figures, split_claims,
                                           statement_bytes)

Progress = Callable[[str], None]
KEEP_CODEWORDS_UP_TO = 1 << 25  # larger traces free their codewords (16 B/entry) and re-encode to open


def committed_table(state: pcs.ProverState, name: str) -> np.ndarray:
    """The padded table of one committed tensor, read back from the commitment's message rows."""
    lay = state.commitment.layout
    i = lay.index(name)
    off = lay.offsets[i]
    return state.messages.reshape(-1)[off:off + (1 << lay.log_sizes[i])]


class PcsProverSettler(Settler):
    """Prover half: commits the trace tables in one PCS commitment and a fresh companion of the weight
    commitment (its mask rows and ``companion`` data tensors, name -> base-field table), and settles the
    left-over claims with one batched opening of the trace and one of the weights stacked with the
    companion (claims on companion tensors and :class:`pcs.LinearClaim` go to the latter)."""

    linear_claims = True  # settles the randomized claims of iop.blind (program proofs run blinded)

    def __init__(self, weights: pcs.ProverState, public: Mapping[str, np.ndarray], params: pcs.PcsParams,
                 rng: np.random.Generator | None = None, strict: bool = True, progress: Progress | None = None,
                 companion: Mapping[str, np.ndarray] | None = None) -> None:
        self.weights, self.public, self.params, self.rng = weights, dict(public), params, rng
        self.companion_tables = dict(companion or {})
        self.companion_com: pcs.Commitment | None = None
        self.companion_state: pcs.ProverState | None = None
        self.say = progress or (lambda _msg: None)
        self.strict = strict  # False only in tests of cheating provers
        self.trace_com: pcs.Commitment | None = None
        self.trace_state: pcs.ProverState | None = None
        self.trace_opening = b""
        self.weight_opening = b""
        self.trace_claims = 0
        self.weight_claims = 0

    def commit(self, tables: Mapping[str, np.ndarray], transcript: Transcript) -> None:
        """Commit every non-public, non-weight table; absorb the commitment's digest."""
        mine = {k: v for k, v in tables.items()
                if k not in self.public and not k.startswith("w:") and not in_companion(k)}
        self.companion_tables = dict(sorted((self.companion_tables | {k: v for k, v in tables.items()
                                                                      if in_companion(k)}).items()))
        for k, v in tables.items():  # weights come from the model commitment: they must be those
            if self.strict and k.startswith("w:") and not np.array_equal(np.asarray(v).reshape(-1), committed_table(self.weights, k)):
                raise ValueError(f"weight table {k!r} differs from the committed weights")
        if mine:
            t0 = time.perf_counter()
            entries = sum(int(np.asarray(v).size) for v in mine.values())
            self.trace_com, self.trace_state = pcs.commit(mine, self.params, rng=self.rng,
                                                          keep_codewords=entries <= KEEP_CODEWORDS_UP_TO)
            self.say(f"trace committed: {len(mine)} tensors, "
                     f"{sum(1 << s for s in self.trace_com.layout.log_sizes)} entries ({time.perf_counter() - t0:.2f} s)")
        transcript.absorb_digest(TRACE_COMMITMENT_LABEL,
                                 self.trace_com.digest() if self.trace_com else b"\x00" * 32)
        # fresh masks for the weight opening (OS CSPRNG unless a test fixes ``rng``), fixed before any challenge
        self.companion_com, self.companion_state = pcs.commit_companion(
            self.weights.commitment.layout, self.companion_tables, rng=self.rng if self.rng is not None else F.SecureRng())
        transcript.absorb_digest(COMPANION_COMMITMENT_LABEL, self.companion_com.digest())

    def settle(self, claims: Sequence[Claim], transcript: Transcript) -> None:
        """Open the trace claims, then the weight claims (public claims need nothing)."""
        if self.companion_state is None:
            raise ValueError("claims settled before the commitments were made")
        pub, tr, w = split_claims(claims, self.public, self.companion_com.layout.names)
        for c in pub:  # an honest prover's public claims hold; say so early if not
            if self.strict and not np.array_equal(public_eval(self.public[c.tensor], c.point), c.value):
                raise Reject(f"claim on public tensor {c.tensor!r} is false")
        self.trace_claims, self.weight_claims = len(tr), len(w)
        self.say(f"opening {len(tr)} trace claims and {len(w)} weight claims")
        if tr:
            if self.trace_state is None:
                raise ValueError("claims on trace tensors but nothing was committed")
            self.trace_opening = pcs.open_claims(self.trace_state, tr, transcript).to_bytes()
            self.trace_state = None  # dead from here: free its matrices before the weight opening
        if w:
            self.weight_opening = pcs.open_claims([self.weights, self.companion_state], w, transcript).to_bytes()


def _program_prove(spec, values: Mapping[str, np.ndarray], inputs, outputs, transcript: Transcript,
                   settler: PcsProverSettler, start: int, strict: bool) -> bytes:
    """Op proofs of a trace (adapter to ``blindproof.zk.proof.program``); calls ``settler.commit`` first and
    ``settler.settle`` last."""
    try:
        from blindproof.zk.proof import program
    except ImportError:
        raise RuntimeError("this installation has no program prover (blindproof.zk.proof.program)") from None
    return program.prove_program(spec, values, inputs, outputs, transcript, settler, start=start, strict=strict,
                                 rng=settler.rng)


def _op_progress(say: Progress, n_ops: int) -> Callable[[str], None]:
    """Progress for the op proofs (last op first): ``say.step(stage, done, total, detail)`` per op when
    the reporter has one (bars, ETA, JSON events), else a message at most about once a second."""
    state = {"done": 0, "last": time.perf_counter()}
    step = getattr(say, "step", None)

    def on_op(what: str) -> None:
        now = time.perf_counter()
        if step is not None:
            if what:
                state["done"] += 1
            step("op proofs", state["done"], n_ops, what or "the batched lookups next")
            return
        if not what:
            say(f"op proofs: {state['done']}/{n_ops} done; proving the batched lookups")
            state["last"] = now
            return
        state["done"] += 1
        if now - state["last"] >= 1.0:
            state["last"] = now
            say(f"op proofs: {state['done']}/{n_ops} ({what})")

    return on_op


@dataclass
class ModelProver:
    """A quantized model with its commitment and the state that opens it."""

    model: QuantizedModel
    commitment: ModelCommitment
    state: pcs.ProverState
    params: pcs.PcsParams

    @staticmethod
    def create(model: QuantizedModel, key: CommitmentKey, params: pcs.PcsParams | None = None, *,
               budget: int = DEFAULT_BUDGET, ledger: "OpeningLedger | str | Path | None" = None) -> "ModelProver":
        """Commit to ``model`` (deterministically from ``key``) with an opening budget of ``budget``
        proofs; every proof uses the commitment's parameters.

        ``ledger``: where the weight openings are counted: an :class:`OpeningLedger`, or a path for a
        file-backed one; by default ``key.ledger()``, i.e. ``<key file>.ledger`` for a key loaded from
        or saved to a file and an in-memory ledger for a key that never touched disk (its count is then
        lost with the process: do not reuse such a key after a restart). The commitment's own
        well-formedness opening is charged first. Raises :class:`LedgerError` on a corrupt ledger."""
        com, state = commit_model(model.spec, model.weights, key, params, budget)
        if ledger is None:
            ledger = key.ledger()
        elif not isinstance(ledger, OpeningLedger):
            ledger = OpeningLedger(ledger)
        from blindproof.zk.proof.wellformed import WellformedProof

        wf = WellformedProof.from_bytes(com.wellformed)
        ledger.charge(com.weights, wf.opened_positions(com.weights))
        state.ledger = ledger
        return ModelProver(model, com, state, com.params)

    @property
    def ledger(self) -> OpeningLedger:
        """The ledger this prover's weight openings are charged to."""
        return self.state.ledger

    def openings_left(self) -> int:
        """Proofs this key can still make within its budget (each may open ``t`` new positions)."""
        return self.ledger.openings_left(self.commitment.weights)

    def prove(self, inputs: Mapping[str, np.ndarray], start: int = 0, *, trace: Trace | None = None,
              progress: Progress | None = None, rng: np.random.Generator | None = None,
              strict: bool = True) -> ModelProof:
        """Prove ``outputs = F_W(inputs)``. ``trace`` replaces the honest trace (tests of cheating
        provers, with ``strict=False``); ``rng`` makes the trace commitment reproducible (tests)."""
        say = progress or (lambda _msg: None)
        spec = self.model.spec
        if self.state.ledger is not None and self.openings_left() < 1:  # before the work, not at the opening
            lay = self.commitment.weights.layout
            raise OpeningBudgetExceeded(
                f"the opening budget of this commitment key is spent ({lay.hiding_symbols - self.ledger.remaining(self.commitment.weights)} "
                f"of {lay.hiding_symbols} positions opened, a proof opens up to {lay.n_queries}): rotate to a fresh key")
        if not isinstance(start, (int, np.integer)) or not 0 <= int(start) < 1 << 32:
            raise ValueError(f"start must be an integer in [0, 2^32), got {start!r}")
        start = int(start)
        inputs = {k: np.asarray(v, dtype=np.int64) for k, v in inputs.items()}
        t0 = time.perf_counter()
        if trace is None:
            trace = run_program(spec, self.model.weights, inputs, start=start, validate_weights=False)
        outputs = {k: np.asarray(trace.tensors[k], dtype=np.int64) for k in spec.outputs}
        if strict:  # a statement the verifier would refuse is an error here, not a wasted proof
            try:
                check_public_ranges(spec, inputs | outputs)
            except Reject as exc:
                raise ValueError(str(exc)) from None
        say(f"trace: {len(trace.tensors)} tensors ({time.perf_counter() - t0:.2f} s)")
        digest = self.commitment.digest()
        io = io_digest(inputs, outputs)
        tr = CountingTranscript(DOMAIN, statement_bytes(digest, self.commitment.spec_digest, self.params, start, io),
                                on_op=_op_progress(say, len(spec.ops)))
        settler = PcsProverSettler(self.state, inputs | outputs, self.params, rng, strict, say)
        values = dict(trace.tensors)
        values.update({f"w:{k}": v for k, v in self.model.weights.items()})
        t1 = time.perf_counter()
        program_proof = _program_prove(spec, values, inputs, outputs, tr, settler, start, strict)
        say(f"op proofs and openings: {len(program_proof)} bytes ({time.perf_counter() - t1:.2f} s)")
        figs = soundness_figures(tr.counts, tr.lookups, settler.trace_com.layout if settler.trace_com else None,
                                 settler.trace_claims, self.commitment.weights.layout, settler.weight_claims,
                                 tr.lambda_degrees(), tr.extra_degree)
        return ModelProof(
            model_digest=digest, spec_digest=self.commitment.spec_digest, params=self.params, start=start,
            inputs=inputs, outputs=outputs,
            trace_commitment=settler.trace_com.to_bytes() if settler.trace_com else b"",
            program_proof=program_proof, trace_opening=settler.trace_opening,
            weight_opening=settler.weight_opening, soundness=figs,
            trace_claims=settler.trace_claims, weight_claims=settler.weight_claims,
            companion_commitment=settler.companion_com.to_bytes(), public_digest=io)


# --- workloads: deterministic model, calibration and example input ----------------------------------

def workload_float_model(name: str, weights: str | None = None, seed: int = 0):
    """The float model of a named workload: ``weights`` (a safetensors file of the model's own
    state dict), else the trained default model for tiny-llama, the real all-MiniLM-L6-v2 weights for
    minilm-l6 where their package is installed, else seeded random weights."""
    from blindproof.models.workloads import get_workload

    wl = get_workload(name)
    if weights is not None:
        from safetensors.torch import load_file
        model = wl.build(seed)
        try:
            model.load_state_dict(load_file(str(weights)), strict=True)
        except (RuntimeError, KeyError) as exc:
            raise ValueError(f"{weights}: not a state dict of workload {name!r}: {exc}") from None
        return model.eval()
    if name == "tiny-llama":
        from blindproof.models.default import load_default_model
        return load_default_model()
    if name == "minilm-l6":
        from blindproof.models.loaders import load_minilm_model
        try:
            return load_minilm_model()
        except (ModuleNotFoundError, FileNotFoundError):
            pass  # not installed: seeded random weights of the same shape
    return wl.build(seed)


def calibration_input(name: str, batch: int = 4):
    """Fixed calibration data of a workload (the same on every run, so commit and prove agree)."""
    from blindproof.models.workloads import get_workload

    wl = get_workload(name)
    return wl.example_input(seed=1, batch=64 if wl.kind == "mlp" else batch)


def example_input(name: str):
    """The fixed example input of a workload (batch 1): token ids or features."""
    from blindproof.models.workloads import get_workload

    return get_workload(name).example_input(seed=0, batch=1)


def workload_scope(name: str, scope: str | None = None) -> str:
    """What a proof of the workload covers: ``scope`` if given, else the workload's default."""
    from blindproof.models.workloads import get_workload

    return scope or get_workload(name).zk_scope


def program_input(quantized: QuantizedModel, model, x):
    """The float/token input ``quantized``'s program takes for the model input ``x``: for a ``blocks``
    program, token ids become the float hidden states the blocks of ``model`` (the float model it was
    quantized from) receive; anything else passes through."""
    import torch

    from blindproof.quant import embed_float

    integer = x.dtype.kind in "iu" if isinstance(x, np.ndarray) else not torch.as_tensor(x).is_floating_point()
    if quantized.spec.arch.get("scope") == "blocks" and integer:
        return embed_float(model, x)
    return x


def quantized_workload(name: str, weights: str | None = None, seed: int = 0, scope: str | None = None,
                       model=None) -> QuantizedModel:
    """The integer model of a workload (its default scope unless ``scope`` is given), quantized with its
    fixed calibration data; ``model`` is its float model when the caller has built it already."""
    from blindproof.quant import quantize

    if model is None:
        model = workload_float_model(name, weights, seed)
    return quantize(model, calibration_input(name), scope=workload_scope(name, scope))
