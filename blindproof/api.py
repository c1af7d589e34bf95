"""The one-call API: ``blindproof.commit``, ``blindproof.prove``, ``blindproof.verify``.

    import blindproof
    c = blindproof.commit("mlp-784-56-10")            # or a torch module / "m.onnx" + calibration, a HF folder
    p = blindproof.prove(c, x)                        # Proof: prints as size and soundness
    assert blindproof.verify(p, c.commitment)         # Verification: true iff valid

Each call is a thin composition of the modules below it (model sources, the quantizer, the prover and
the verifier); the command line does the same with files.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from blindproof.results import Committed, Proof, Verification

if TYPE_CHECKING:
    from blindproof.zk.proof.commitment import ModelCommitment
    from blindproof.zk.proof.keys import CommitmentKey
    from blindproof.zk.proof.proof_file import ModelProof

DEFAULT_SECURITY = 104.0  # bits per opening, so that a whole proof reaches the 100-bit floor


def _key(key: "CommitmentKey | str | Path | None", out: Path | None) -> "CommitmentKey":
    """The commitment key: given, read from its file, or fresh (saved beside ``out`` when there is one)."""
    from blindproof.zk.proof.keys import CommitmentKey

    if isinstance(key, CommitmentKey):
        return key
    path = Path(key) if key is not None else (Path(str(out) + ".key") if out is not None else None)
    if path is not None and path.exists():
        return CommitmentKey.load(path)
    fresh = CommitmentKey.generate()
    if path is not None:
        fresh.save(path)
    return fresh


def commit(model: Any, calibration: Any = None, *, out: str | Path | None = None,
           key: "CommitmentKey | str | Path | None" = None, security: float = DEFAULT_SECURITY,
           budget: int | None = None, scope: str | None = None, seed: int = 0,
           weights: str | Path | None = None, overwrite: bool = False) -> Committed:
    """Quantize ``model`` deterministically and commit to its integer spec and weights.

    ``model``: a workload name (``"tiny-llama"``, ``"mlp-784-56-10"``, ...), a Hugging Face folder, an ONNX
    file (a path ending in ``.onnx``), a ``.qspec`` file, a blindproof ``Transformer`` or ``MLP``, a plain
    torch module, or a ``QuantizedModel``. ``calibration``: a batch of typical inputs, needed for a float
    module or an ONNX file (token ids ``(batch, seq)`` or features ``(batch, ...)``).
    ``out``: write the public commitment file there, and its secret key to ``<out>.key`` (mode 0600, with
    its opening ledger beside it) unless ``key`` names one; without ``out`` or ``key`` the key lives in
    memory (its opening budget is counted in this process only). ``security``: target provable bits per
    opening (≥ 100); ``budget``: openings per key (default 8). An existing ``out`` holding another
    commitment is refused (``FileExistsError``) unless ``overwrite``. Returns a :class:`Committed`, which
    ``prove`` takes directly."""
    from blindproof.sources import resolve
    from blindproof.zk.commit.pcs import PcsParams
    from blindproof.zk.proof.config import DEFAULT_BUDGET
    from blindproof.zk.proof.prover import ModelProver

    source = resolve(model, calibration, scope=scope, seed=seed, weights=weights)
    params = PcsParams.for_security(security)
    out_path = Path(out) if out is not None else None
    k = _key(key, out_path)
    prover = ModelProver.create(source.quantized, k, params, budget=DEFAULT_BUDGET if budget is None else budget)
    committed = Committed(prover.commitment, k, source, prover)
    if out_path is not None:
        if out_path.exists() and not overwrite:
            from blindproof.zk.proof.commitment import ModelCommitment
            try:
                same = ModelCommitment.load(out_path).digest() == committed.commitment.digest()
            except (ValueError, OSError):
                same = False
            if not same:
                raise FileExistsError(f"{out_path} exists and holds another commitment; pass overwrite=True")
        committed.save(out_path)
    return committed


def _prover_for(model_or_path: Any, commitment: "ModelCommitment | str | Path | None",
                key: "CommitmentKey | str | Path | None", **resolve_kw) -> Committed:
    """A :class:`Committed` able to prove: given, rebuilt against an existing commitment (and its key), or
    fresh (in-memory key)."""
    from blindproof.sources import resolve
    from blindproof.zk.proof.commitment import ModelCommitment
    from blindproof.zk.proof.keys import CommitmentKey
    from blindproof.zk.proof.prover import ModelProver

    if isinstance(model_or_path, Committed):
        return model_or_path
    source = resolve(model_or_path, resolve_kw.pop("calibration"), **resolve_kw)
    if commitment is None:
        if key is not None:
            raise ValueError("a key without its commitment: pass commitment= as well")
        k = CommitmentKey.generate()
        prover = ModelProver.create(source.quantized, k, None)
        return Committed(prover.commitment, k, source, prover)
    path = None
    if not isinstance(commitment, ModelCommitment):
        path = Path(commitment)
        commitment = ModelCommitment.load(path)
    if key is None:
        if path is None:
            raise ValueError("proving against a commitment needs its key: pass key= (the file `commit` wrote)")
        key = Path(str(path) + ".key")
    if not isinstance(key, CommitmentKey) and not Path(key).is_file():
        raise ValueError(f"no commitment key at {key}: prove with the key `commit` wrote beside the commitment")
    k = key if isinstance(key, CommitmentKey) else CommitmentKey.load(key)
    prover = ModelProver.create(source.quantized, k, commitment.params, budget=commitment.budget)
    if prover.commitment.digest() != commitment.digest():
        raise ValueError("the model, its weights or the key do not match the commitment")
    return Committed(commitment, k, source, prover, path)


def prove(model_or_path: Any, inputs: Any = None, *, commitment: "ModelCommitment | str | Path | None" = None,
          key: "CommitmentKey | str | Path | None" = None, start: int = 0, out: str | Path | None = None,
          calibration: Any = None, scope: str | None = None, seed: int = 0, weights: str | Path | None = None,
          progress: Callable[[str], None] | None = None) -> Proof:
    """Prove one inference: run the integer model on ``inputs`` and prove the output came from the
    committed model.

    ``model_or_path``: what ``commit`` returned, or anything ``commit`` accepts (then ``commitment``, a
    commitment file or object, with ``key`` or ``<commitment>.key``, says what to prove against; without
    it the model is committed here with a fresh in-memory key, kept in :attr:`Proof.commitment`).
    ``inputs``: token ids ``(1, seq)``, float features ``(1, dim)``, text (byte-vocabulary models or a
    model with a tokenizer), or the model's fixed example input when omitted (workloads).
    ``out``: also write the proof file. Raises ``ValueError`` on unusable input, and
    ``OpeningBudgetExceeded`` when the key's opening budget is spent."""
    c = _prover_for(model_or_path, commitment, key, calibration=calibration, scope=scope, seed=seed,
                    weights=weights)
    if inputs is None:
        if c.source.example is None:
            raise ValueError(f"{c.name}: no example input; pass inputs")
        inputs = c.source.example
    program_inputs = inputs if isinstance(inputs, Mapping) else c.source.program_input(inputs)
    t0 = time.perf_counter()
    proof = c.prover.prove(program_inputs, start=start, progress=progress)
    result = Proof(proof, c.commitment, c.name, time.perf_counter() - t0)
    if out is not None:
        result.save(out)
    return result


def _commitment_of(commitment: "Committed | ModelCommitment | str | Path") -> "ModelCommitment":
    from blindproof.zk.proof.commitment import ModelCommitment

    if isinstance(commitment, Committed):
        return commitment.commitment
    if isinstance(commitment, ModelCommitment):
        return commitment
    if isinstance(commitment, (str, Path)):
        return ModelCommitment.load(commitment)
    raise TypeError("commitment must be a Committed, a ModelCommitment or a file path, got "
                    f"{type(commitment).__name__}")


def _proof_bytes(proof: "Proof | ModelProof | bytes | str | Path") -> bytes:
    from blindproof.zk.proof.proof_file import ModelProof

    if isinstance(proof, Proof):
        return proof.to_bytes()
    if isinstance(proof, ModelProof):
        return proof.to_bytes()
    if isinstance(proof, (bytes, bytearray, memoryview)):
        return bytes(proof)
    if isinstance(proof, (str, Path)):
        return Path(proof).read_bytes()
    raise TypeError(f"proof must be a Proof, a ModelProof, bytes or a file path, got {type(proof).__name__}")


def _pin_inputs(spec, inputs) -> dict[str, np.ndarray] | None:
    from blindproof.quant.spec import encode_input

    if inputs is None or isinstance(inputs, Mapping):
        return None if inputs is None else {k: np.asarray(v, dtype=np.int64) for k, v in inputs.items()}
    if isinstance(inputs, str):
        inputs = np.frombuffer(inputs.encode("utf-8"), dtype=np.uint8).astype(np.int64)[None, :]
    if not isinstance(inputs, np.ndarray):
        import torch
        inputs = inputs.detach().cpu().numpy() if isinstance(inputs, torch.Tensor) else np.asarray(inputs)
    return encode_input(spec, inputs)


def verify(proof: "Proof | ModelProof | bytes | str | Path", commitment: "Committed | ModelCommitment | str | Path",
           *, inputs: Any = None, outputs: Mapping[str, np.ndarray] | np.ndarray | None = None,
           start: int | None = None, min_bits: float | None = None) -> Verification:
    """Check ``proof`` against the model ``commitment`` (offline, without the weights).

    ``proof``: a :class:`Proof`, its bytes or its file; ``commitment``: the commitment the verifier
    trusts (a :class:`Committed`, a ``ModelCommitment`` or its file) — never the one a proof brings.
    ``inputs`` / ``outputs`` / ``start`` pin the statement (a proof for another input, output or
    position is invalid); ``inputs`` take what ``prove`` took (token ids, features, UTF-8 text for
    byte-vocabulary models), ``outputs`` the integer output. ``min_bits`` raises (never lowers) the
    100-bit floor. Returns a :class:`Verification`, true iff valid; a bad proof never raises."""
    from blindproof.zk.proof.verifier import verify_model_proof

    com = _commitment_of(commitment)
    data = _proof_bytes(proof)
    pinned_in = _pin_inputs(com.spec, inputs)
    pinned_out = None
    if outputs is not None:
        pinned_out = ({k: np.asarray(v, dtype=np.int64) for k, v in outputs.items()} if isinstance(outputs, Mapping)
                      else {com.spec.outputs[0]: np.asarray(outputs, dtype=np.int64)})
    t0 = time.perf_counter()
    res = verify_model_proof(com, data, pinned_in, pinned_out, start=start, min_provable_bits=min_bits)
    return Verification(res, time.perf_counter() - t0, com)
