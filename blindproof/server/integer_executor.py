"""Integer deployments: the integer program that proofs speak about, served as it is proved.

An integer model file is a safetensors file with the program's weights in their declared integer
dtypes (``w/<name>``), the model owner's 32-byte commitment key (``commitment_key``; the hiding
randomness of the weight commitment, so the server can open the commitment the owner computed) and,
in its metadata, the canonical spec JSON, a short description and the content digest. The digest is
the one of :mod:`blindproof.models.serialize` (BLAKE3 over the description, which names the spec's
digest, and every tensor), so a deployment id names the integer model exactly.

The server answers an integer deployment with :func:`blindproof.quant.run_program` — the numpy
int64 reference forward, bit for bit the computation a proof attests.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

from blindproof.models.serialize import (DigestMismatchError, LoadedModel, ModelFormatError, canonical_json,
                                         content_digest, load_model)
from blindproof.quant import QuantizedModel, QuantSpec, run_program
from blindproof.quant.reference import check_weights

INTEGER_FORMAT = "blindproof-integer/1"
KEY_TENSOR = "commitment_key"
KEY_BYTES = 32
_META_MODEL = "blindproof.model"
_META_DIGEST = "blindproof.digest"
_META_SPEC = "blindproof.spec"
_TORCH_INT = {"int8": torch.int8, "int16": torch.int16, "int32": torch.int32}


class IntegerInputError(ValueError):
    """An input that does not fit the integer program (dtype, shape, range, position)."""


class _NoDevice:
    """Adapter so the model store can 'move' an integer model: numpy runs on the CPU."""

    def __init__(self, qm: QuantizedModel) -> None:
        self.quantized = qm

    def to(self, _device: object) -> "_NoDevice":
        return self


@dataclass(frozen=True)
class LoadedIntegerModel:
    """An integer deployment read back from its file (digest verified)."""

    quantized: QuantizedModel
    description: dict
    digest: str
    commitment_key: bytes

    @property
    def model(self) -> _NoDevice:  # what the model store touches (``model.to(device)``)
        return _NoDevice(self.quantized)


def describe_integer(qm: QuantizedModel) -> dict:
    """The public description of an integer model (listed by the server; no weights, no key)."""
    spec = qm.spec
    return {"format": INTEGER_FORMAT, "kind": "integer", "family": spec.arch["family"],
            "spec_digest": spec.digest(), "inputs": list(spec.inputs), "outputs": list(spec.outputs),
            "parts": ["all"]}


def _tensors(qm: QuantizedModel, commitment_key: bytes) -> dict[str, torch.Tensor]:
    if not isinstance(commitment_key, bytes) or len(commitment_key) != KEY_BYTES:
        raise ValueError(f"commitment_key must be {KEY_BYTES} bytes")
    out = {f"w/{name}": torch.from_numpy(np.ascontiguousarray(qm.weights[name])).to(_TORCH_INT[ws.dtype])
           for name, ws in qm.spec.weights.items()}
    out[KEY_TENSOR] = torch.frombuffer(bytearray(commitment_key), dtype=torch.uint8).clone()
    return out


def integer_to_bytes(qm: QuantizedModel, commitment_key: bytes) -> tuple[bytes, str]:
    """The integer model file's bytes and its content digest."""
    if not isinstance(qm, QuantizedModel):
        raise TypeError(f"expected a QuantizedModel, got {type(qm).__name__}")
    desc = describe_integer(qm)
    tensors = _tensors(qm, commitment_key)
    digest = content_digest(desc, tensors)
    meta = {_META_MODEL: canonical_json(desc), _META_DIGEST: digest, _META_SPEC: qm.spec.to_json()}
    return st_save(tensors, metadata=meta), digest


def _metadata(path: str | os.PathLike) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except Exception as exc:  # safetensors raises its own types for a bad header
        raise ModelFormatError(f"not a safetensors model file: {exc}") from exc


def is_integer_file(path: str | os.PathLike) -> bool:
    """Whether a model file holds an integer model (ModelFormatError if it is no model file)."""
    meta = _metadata(path)
    try:
        return json.loads(meta.get(_META_MODEL, "{}")).get("kind") == "integer"
    except (json.JSONDecodeError, AttributeError) as exc:
        raise ModelFormatError(f"model description is not valid JSON: {exc}") from exc


def load_integer(path: str | os.PathLike, expected_digest: str | None = None) -> LoadedIntegerModel:
    """Read an integer model file, check its digest, spec and weights; ModelFormatError if anything is off."""
    meta = _metadata(path)
    if _META_MODEL not in meta or _META_DIGEST not in meta or _META_SPEC not in meta:
        raise ModelFormatError("integer model file lacks its description, digest or spec")
    try:
        desc = json.loads(meta[_META_MODEL])
        spec = QuantSpec.from_json(meta[_META_SPEC])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFormatError(f"invalid integer model metadata: {exc}") from exc
    if not isinstance(desc, dict) or desc.get("format") != INTEGER_FORMAT or desc.get("kind") != "integer":
        raise ModelFormatError(f"integer model description must have format {INTEGER_FORMAT!r}")
    if desc.get("spec_digest") != spec.digest():
        raise DigestMismatchError("the spec in the file does not hash to the digest its description names")
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as exc:
        raise ModelFormatError(f"cannot read model tensors: {exc}") from exc
    digest = content_digest(desc, tensors)
    if digest != meta[_META_DIGEST]:
        raise DigestMismatchError(f"content digest mismatch: file records {meta[_META_DIGEST]}, content hashes to {digest}")
    if expected_digest is not None and digest != expected_digest:
        raise DigestMismatchError(f"content digest mismatch: expected {expected_digest}, content hashes to {digest}")
    key = tensors.pop(KEY_TENSOR, None)
    if key is None or key.dtype != torch.uint8 or tuple(key.shape) != (KEY_BYTES,):
        raise ModelFormatError(f"integer model file needs a {KEY_BYTES}-byte uint8 tensor {KEY_TENSOR!r}")
    names = {n.removeprefix("w/") for n in tensors if n.startswith("w/")}
    if len(names) != len(tensors) or names != set(spec.weights):
        raise ModelFormatError("tensors of the integer model file do not match the spec's weights")
    weights = {}
    for name, ws in spec.weights.items():
        t = tensors[f"w/{name}"]
        if t.dtype != _TORCH_INT[ws.dtype]:
            raise ModelFormatError(f"weight {name!r} stored as {t.dtype}, the spec says {ws.dtype}")
        weights[name] = t.numpy().astype(np.int64)
    try:
        check_weights(spec, weights)
        qm = QuantizedModel(spec, weights)
    except (ValueError, TypeError) as exc:
        raise ModelFormatError(f"invalid integer weights: {exc}") from exc
    return LoadedIntegerModel(qm, desc, digest, bytes(key.numpy().tobytes()))


def load_deployment(path: str | os.PathLike, expected_digest: str | None = None) -> LoadedModel | LoadedIntegerModel:
    """A float model (:func:`blindproof.models.serialize.load_model`) or an integer one, by what the file holds."""
    if is_integer_file(path):
        return load_integer(path, expected_digest)
    return load_model(path, expected_digest)


def is_integer(loaded: object) -> bool:
    """Whether a loaded deployment is an integer model."""
    return isinstance(loaded, LoadedIntegerModel)


# --- serving ---------------------------------------------------------------------------------------

def check_integer_input(loaded: LoadedIntegerModel, x: torch.Tensor, start: int) -> None:
    """Raise IntegerInputError unless ``x`` is an input of the integer program at position ``start``."""
    spec = loaded.quantized.spec
    ts = spec.tensors[spec.inputs[0]]
    if x.dtype not in (torch.int64, torch.int32):
        raise IntegerInputError(f"an integer deployment takes int64 or int32 inputs, got {x.dtype}")
    if x.dim() != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise IntegerInputError(f"input must have shape (batch, {'seq' if ts.role == 'index' else 'features'}), "
                                f"got {tuple(x.shape)}")
    if x.numel() and (int(x.min()) < ts.lo or int(x.max()) > ts.hi):
        what = "token ids" if ts.role == "index" else "encoded features"
        raise IntegerInputError(f"{what} must lie in [{ts.lo}, {ts.hi}]")
    if start < 0:
        raise IntegerInputError(f"start must be non-negative, got {start}")
    if spec.arch["family"] == "transformer":
        max_seq = spec.arch["config"]["max_seq"]
        if start + x.shape[1] > max_seq:
            raise IntegerInputError(f"positions up to {start + x.shape[1]} exceed the model's max_seq {max_seq}")
    else:
        if start:
            raise IntegerInputError("an MLP has no positions; start must be 0")
        if x.shape[1] != spec.arch["dims"][0]:
            raise IntegerInputError(f"input must have shape (batch, {spec.arch['dims'][0]}), got {tuple(x.shape)}")


def integer_inputs(loaded: LoadedIntegerModel, x: torch.Tensor) -> dict[str, np.ndarray]:
    """The program's named inputs for a wire tensor."""
    return {loaded.quantized.spec.inputs[0]: x.detach().cpu().numpy().astype(np.int64)}


def integer_forward(loaded: LoadedIntegerModel, x: torch.Tensor, start: int = 0) -> torch.Tensor:
    """Run the integer program on ``x``; returns its first output as an int64 tensor."""
    qm = loaded.quantized
    trace = run_program(qm.spec, qm.weights, integer_inputs(loaded, x), start=start, record=False,
                        validate_weights=False)
    return torch.from_numpy(np.ascontiguousarray(trace.output(0), dtype=np.int64))


def output_exponent(spec: QuantSpec) -> np.ndarray:
    """The fixed-point exponent(s) of the program's first output (scalar or one per last-axis entry)."""
    return np.asarray(spec.tensors[spec.outputs[0]].exp, dtype=np.float64)


def decode_output(spec: QuantSpec, y: torch.Tensor) -> torch.Tensor:
    """Integer output -> float64 (``y · 2^-exp``)."""
    return y.to(torch.float64) * torch.as_tensor(np.exp2(-output_exponent(spec)), dtype=torch.float64)


def model_path(store_root: str | os.PathLike, deployment_id: str) -> Path:
    """Where the model store keeps a deployment's file (see :mod:`blindproof.server.store`)."""
    return Path(store_root) / "models" / f"{deployment_id}.safetensors"
