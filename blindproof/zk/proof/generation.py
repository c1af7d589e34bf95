"""Verified generation: one proof that ``n`` tokens are the greedy continuation of a prompt under the
committed model.

A causal language model's logits at position ``t`` depend on tokens ``0..t`` only (the integer program
quantizes statically, masks attention causally and mixes positions nowhere else), so the whole
greedy generation is ONE forward over ``prompt + tokens[:-1]``: its logits row ``p − 1 + i`` must have
``tokens[i]`` as its argmax (``p`` the prompt length, first index on ties, as ``numpy.argmax``). The
proof is an ordinary model proof of that forward (``start`` 0); the logits are its public output, so
the verifier computes every argmax itself and needs no argmax protocol. No KV cache is involved: the
statement is about the committed program, not about how a server ran it.

What the proof does not say: that the prompt is the one a user typed (the verifier reads it from the
statement and prints it, or pins it), and anything about sampling other than greedy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from blindproof.quant.spec import QuantSpec
from blindproof.quant.quantizer import QuantizedModel
from blindproof.zk.proof.commitment import ModelCommitment
from blindproof.zk.proof.proof_file import ModelProof
from blindproof.zk.proof.prover import ModelProver
from blindproof.zk.proof.verifier import ModelVerifyResult, verify_model_proof

MAX_NEW_TOKENS = 4096


class GenerationError(ValueError):
    """A model, prompt or token count that verified generation cannot take."""


@dataclass(frozen=True)
class Generation:
    """A prompt and the tokens generated after it (token ids, 1-D int64)."""

    prompt: np.ndarray
    tokens: np.ndarray

    def text(self, decode: Callable[[list[int]], str] | None = None) -> tuple[str, str]:
        """(prompt, continuation) as text: ``decode`` for a tokenizer, else bytes for a byte vocabulary."""
        dec = decode or (lambda ids: bytes(int(i) for i in ids).decode("utf-8", "replace"))
        return dec(self.prompt.tolist()), dec(self.tokens.tolist())


@dataclass(frozen=True)
class GenerationResult:
    """The verdict on a generation proof: ``ok`` only if the model proof verifies AND every generated
    token is the argmax of the proved logits before it."""

    ok: bool
    reason: str
    generation: Generation | None = None
    verification: ModelVerifyResult | None = field(default=None, repr=False)

    def __bool__(self) -> bool:
        return self.ok


_SCORE_PATH = ("rescale", "lookup")  # single-input elementwise ops allowed between qk and its causal softmax


def check_causal_lm(spec: QuantSpec) -> None:
    """GenerationError unless ``spec`` is a causal language model's whole program: token ids in (read by
    ``embed`` only), logits out, and positions mixed nowhere but in causal attention. The op graph is
    checked against an allow-list, not the config's word: every ``qk`` output reaches ``softmax``
    (``causal``) through ``rescale``/``lookup`` ops only and is read by nothing else; every ``softmax``
    reads such scores; its output is read only as ``pv``'s probabilities; every ``pv`` reads a causal
    softmax; no ``mean_pool``. Every other op acts on one position at a time (the last axis, or
    elementwise), so the logits at a position depend on the tokens up to it only."""
    arch = spec.arch or {}
    cfg = arch.get("config", {}) if isinstance(arch.get("config", {}), dict) else {}
    if arch.get("family") != "transformer" or arch.get("scope", "model") != "model":
        raise GenerationError("verified generation needs a whole transformer program (not a blocks scope)")
    if not cfg.get("causal") or cfg.get("output", "logits") != "logits":
        raise GenerationError("verified generation needs a causal language model with a logits output")
    if len(spec.inputs) != 1 or spec.tensors[spec.inputs[0]].role != "index" or tuple(spec.outputs) != ("logits",):
        raise GenerationError("verified generation needs token ids in and logits out")
    check_causal_program(spec)


# ops that combine positions by construction; every other known kind acts on one position at a time, or
# is attention, which the checks below follow
_MIXING = {"mean_pool": "pools over positions", "max_pool": "pools over positions",
           "conv": "convolves over positions"}
_CHECKED_KINDS = frozenset({"embed", "linear", "rescale", "add", "add_weight", "mul", "mul_weight", "lookup", "norm",
                            "split_heads", "merge_heads", "rope", "qk", "softmax", "pv"})


def check_causal_program(spec: QuantSpec) -> None:
    """The op-graph half of :func:`check_causal_lm`, for any scope (a blocks program reads hidden
    states, one row per position): token-id inputs read by ``embed`` only, attention as the allow-list
    there says, no ``mean_pool`` or ``conv``, no op kind it does not know. GenerationError names the first op that could mix positions."""
    def refuse(op, why: str) -> GenerationError:
        return GenerationError(f"op {op.kind} -> {op.output} {why}: the program may mix positions non-causally")

    token_ids = {n for n in spec.inputs if spec.tensors[n].role == "index"}
    scores: set[str] = set()  # qk outputs and their elementwise images before the softmax
    probs: set[str] = set()   # causal softmax outputs
    for op in spec.ops:  # ops are in execution order, so inputs are classified before their readers
        if op.kind in _MIXING:
            raise refuse(op, _MIXING[op.kind])
        if op.kind not in _CHECKED_KINDS:  # a kind added later is refused until this check knows it
            raise refuse(op, "is of a kind this check does not know")
        if op.kind == "linear" and len(spec.weights[op.params["weight"]].shape) != 2:
            raise refuse(op, "contracts more than the last axis (a feature-map weight)")
        if op.kind == "qk":
            scores.add(op.output)
        elif op.kind in _SCORE_PATH and op.inputs[0] in scores:
            scores.add(op.output)
        elif op.kind == "softmax":
            if not op.params.get("causal"):
                raise refuse(op, "is not causal")
            if op.inputs[0] not in scores:
                raise refuse(op, "does not read attention scores")
            probs.add(op.output)
        elif op.kind == "pv" and op.inputs[0] not in probs:
            raise refuse(op, "reads probabilities that are not a causal softmax's")
        for i, name in enumerate(op.inputs):
            if name in token_ids and op.kind != "embed":
                raise refuse(op, "reads the token ids other than as embedding indices")
            if op.kind not in ("softmax", *_SCORE_PATH) and name in scores:
                raise refuse(op, f"reads attention scores {name!r} before the causal softmax")
            if name in probs and not (op.kind == "pv" and i == 0):
                raise refuse(op, f"reads attention probabilities {name!r} other than as pv's weights")
    leaked = (scores | probs) & set(spec.outputs)
    if leaked:
        raise GenerationError(f"attention scores or probabilities {sorted(leaked)} are a program output")


def _max_seq(spec: QuantSpec) -> int:
    return int((spec.arch or {}).get("config", {}).get("max_seq", 0)) or 1 << 30


def prompt_ids(prompt: np.ndarray, spec: QuantSpec) -> np.ndarray:
    """A prompt as 1-D int64 token ids in the input's range; GenerationError for a batch or anything else."""
    a = np.asarray(prompt)
    if a.dtype.kind not in "iu":
        raise GenerationError(f"the prompt must be token ids, got dtype {a.dtype}")
    if not (a.ndim == 1 or (a.ndim == 2 and a.shape[0] == 1)):
        raise GenerationError("the prompt must be one sequence of token ids (shape (seq,) or (1, seq))")
    a = a.reshape(-1).astype(np.int64)
    ts = spec.tensors[spec.inputs[0]]
    if a.size < 1 or a.min() < ts.lo or a.max() > ts.hi:
        raise GenerationError(f"the prompt must be 1 or more token ids in [{ts.lo}, {ts.hi}]")
    return a


def _check_count(n: int, prompt_len: int, spec: QuantSpec) -> None:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 1 <= n <= MAX_NEW_TOKENS:
        raise GenerationError(f"the number of new tokens must be an integer in [1, {MAX_NEW_TOKENS}], got {n!r}")
    if prompt_len + n - 1 > _max_seq(spec):
        raise GenerationError(f"prompt ({prompt_len}) + {n} new tokens − 1 exceeds the model's "
                              f"{_max_seq(spec)} positions")


def _last_argmax(logits: np.ndarray) -> int:
    return int(np.argmax(np.asarray(logits).reshape(-1, logits.shape[-1])[-1]))


def greedy_generate(model: QuantizedModel, prompt: np.ndarray, n: int) -> Generation:
    """The ``n`` greedy tokens of the integer model after ``prompt``, one forward per token (the
    reference the proof is checked against; a server may compute them any way it likes)."""
    check_causal_lm(model.spec)
    ids = prompt_ids(prompt, model.spec)
    _check_count(n, ids.size, model.spec)
    seq = ids.tolist()
    out = []
    for _ in range(int(n)):
        trace = model.run(np.array([seq], dtype=np.int64), record=False)
        out.append(_last_argmax(np.asarray(trace.tensors["logits"])))
        seq.append(out[-1])
    return Generation(ids, np.array(out, dtype=np.int64))


def forward_tokens(generation: Generation) -> np.ndarray:
    """The one sequence the proof runs the model on: the prompt and every generated token but the last,
    shape ``(1, p + n − 1)``."""
    return np.concatenate([generation.prompt, generation.tokens[:-1]]).astype(np.int64)[None, :]


def prove_generation(prover: ModelProver, prompt: np.ndarray, n: int, *, progress=None) -> tuple[ModelProof, Generation]:
    """Generate ``n`` greedy tokens after ``prompt`` and prove them with one model proof."""
    gen = greedy_generate(prover.model, prompt, n)
    proof = prover.prove({prover.model.spec.inputs[0]: forward_tokens(gen)}, 0, progress=progress)
    read_generation(prover.model.spec, proof, n)  # the proved logits give back the same tokens
    return proof, gen


def read_generation(spec: QuantSpec, proof: ModelProof, n: int) -> Generation:
    """The prompt and the ``n`` tokens a (verified) proof's public input and logits show; GenerationError
    unless every generated token is the argmax of the logits row before it."""
    check_causal_lm(spec)
    if proof.start != 0:
        raise GenerationError(f"a generation proof starts at position 0, this one at {proof.start}")
    if proof.detached:
        raise GenerationError("the proof carries no public input and output to read the generation from")
    seq = np.asarray(proof.inputs[spec.inputs[0]])
    logits = np.asarray(proof.outputs["logits"])
    if seq.ndim != 2 or seq.shape[0] != 1 or logits.shape[:2] != seq.shape:
        raise GenerationError(f"a generation proof covers one sequence, this one input {seq.shape}, logits {logits.shape}")
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 1 <= n <= seq.shape[1]:
        raise GenerationError(f"{n!r} new tokens cannot come from a forward over {seq.shape[1]} tokens")
    p = seq.shape[1] - (n - 1)
    best = np.argmax(logits[0], axis=-1)  # numpy's rule: the first index on ties, as greedy_generate
    fed = seq[0, p:]  # generated tokens 0 .. n − 2, fed back
    if not np.array_equal(best[p - 1:p - 1 + fed.size], fed):
        i = int(np.nonzero(best[p - 1:p - 1 + fed.size] != fed)[0][0])
        raise GenerationError(f"token {i} of the generation ({int(fed[i])}) is not the argmax ({int(best[p - 1 + i])}) "
                              "of the logits before it")
    return Generation(seq[0, :p].astype(np.int64), np.append(fed, best[-1]).astype(np.int64))


def verify_generation(model: ModelCommitment, proof: bytes, n: int, *, prompt: np.ndarray | None = None,
                      tokens: np.ndarray | None = None, min_provable_bits: float | None = None) -> GenerationResult:
    """Accept iff ``proof`` shows ``n`` tokens that are the greedy continuation of its prompt under the
    model committed in ``model``; ``prompt`` / ``tokens`` pin what the caller expects. Never raises."""
    try:
        check_causal_lm(model.spec)
    except GenerationError as exc:
        return GenerationResult(False, str(exc))
    except Exception as exc:  # noqa: BLE001  (a non-commitment argument: a verdict, not a crash)
        return GenerationResult(False, f"not a model commitment: {type(exc).__name__}")
    res = verify_model_proof(model, proof, start=0, scope="model", min_provable_bits=min_provable_bits)
    if not res.ok:
        return GenerationResult(False, res.reason, None, res)
    try:
        gen = read_generation(model.spec, res.proof, n)
        if prompt is not None and not np.array_equal(gen.prompt, prompt_ids(prompt, model.spec)):
            return GenerationResult(False, "the proof is for another prompt", gen, res)
        if tokens is not None and not np.array_equal(gen.tokens, np.asarray(tokens).reshape(-1)):
            return GenerationResult(False, "the proof shows other tokens than the ones given", gen, res)
    except GenerationError as exc:
        return GenerationResult(False, str(exc), None, res)
    except Exception as exc:  # noqa: BLE001  (malformed pins: a verdict, never a crash)
        return GenerationResult(False, f"cannot read the pinned prompt or tokens: {type(exc).__name__}: {exc}", None, res)
    return GenerationResult(True, "", gen, res)
