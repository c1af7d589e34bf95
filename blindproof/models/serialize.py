"""Save and load models as safetensors with their architecture, bound by a content digest.

A model file holds the tensors of the parts a party runs (for a transformer: any of ``embed``,
``blocks``, ``head``) and, in the safetensors metadata, a canonical JSON description (kind, config,
parts) plus the content digest. The digest is BLAKE3 over the description and every tensor's name,
dtype, shape and bytes, so two parties agree on it without trusting each other's file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import blake3
import torch
from safetensors import safe_open
from safetensors.torch import save as st_save
from safetensors.torch import save_file as st_save_file
from torch import nn

from blindproof.models.mlp import MLP
from blindproof.models.transformer import Transformer, TransformerConfig, rope_tables

FORMAT = "blindproof-model/1"
DIGEST_PREFIX = "blake3:"
_META_MODEL = "blindproof.model"
_META_DIGEST = "blindproof.digest"

# Which state-dict entries belong to which part of a transformer's forward split.
TRANSFORMER_PARTS: dict[str, tuple[str, ...]] = {
    "embed": ("embed.", "pos_embed.", "type_embed.", "embed_norm."),
    "blocks": ("blocks.", "expand."),  # expand: the optional harmless input expansion the server runs first
    "head": ("final_norm.", "lm_head."),
}
_PART_MODULES = {"embed": ("embed", "pos_embed", "type_embed", "embed_norm"), "blocks": ("blocks", "expand"),
                 "head": ("final_norm", "lm_head")}


class ModelFormatError(ValueError):
    """A model file or description is malformed or inconsistent."""


class DigestMismatchError(ModelFormatError):
    """A model's content does not hash to the digest recorded or expected for it."""


@dataclass(frozen=True)
class LoadedModel:
    """A model rebuilt from a file: the module (holding only its parts), description and digest."""

    model: nn.Module
    description: dict
    digest: str


def canonical_json(obj: dict) -> str:
    """Deterministic JSON (sorted keys, no whitespace) so both ends hash the same bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def describe(model: nn.Module, parts: Iterable[str] | None = None) -> dict:
    """The architecture of ``model`` and the parts to keep (all parts when ``parts`` is None)."""
    if isinstance(model, Transformer):
        chosen = list(TRANSFORMER_PARTS) if parts is None else list(parts)
        unknown = set(chosen) - set(TRANSFORMER_PARTS)
        if unknown or not chosen:
            raise ValueError(f"transformer parts must be a non-empty subset of {list(TRANSFORMER_PARTS)}, "
                             f"got {chosen}")
        ordered = [p for p in TRANSFORMER_PARTS if p in chosen]
        return {"format": FORMAT, "kind": "transformer", "config": model.cfg.to_dict(), "parts": ordered}
    if isinstance(model, MLP):
        if parts is not None and list(parts) != ["all"]:
            raise ValueError(f"an MLP has a single part 'all', got {list(parts)}")
        return {"format": FORMAT, "kind": "mlp", "dims": list(model.dims), "parts": ["all"]}
    raise TypeError(f"cannot serialize a {type(model).__name__}; expected Transformer or MLP")


def _in_parts(name: str, description: dict) -> bool:
    if description["kind"] != "transformer":
        return True
    return any(name.startswith(pre) for p in description["parts"] for pre in TRANSFORMER_PARTS[p])


def model_tensors(model: nn.Module, description: dict) -> dict[str, torch.Tensor]:
    """The state-dict tensors of the described parts: detached, on CPU, contiguous, unshared."""
    out = {}
    for name, t in model.state_dict().items():
        if _in_parts(name, description):
            out[name] = t.detach().to("cpu").contiguous().clone()
    return out


def content_digest(description: dict, tensors: dict[str, torch.Tensor]) -> str:
    """BLAKE3 over the canonical description and each tensor's name, dtype, shape and bytes."""
    h = blake3.blake3()

    def put(b: bytes) -> None:  # length-prefixed, so no two inputs share an encoding
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)

    put(FORMAT.encode())
    put(canonical_json(description).encode())
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        put(name.encode())
        put(str(t.dtype).removeprefix("torch.").encode())
        put(canonical_json({"shape": list(t.shape)}).encode())
        put(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return DIGEST_PREFIX + h.hexdigest()


def _metadata(description: dict, digest: str) -> dict[str, str]:
    return {_META_MODEL: canonical_json(description), _META_DIGEST: digest}


def to_bytes(model: nn.Module, parts: Iterable[str] | None = None) -> tuple[bytes, str]:
    """The safetensors bytes of the chosen parts and their content digest."""
    desc = describe(model, parts)
    tensors = model_tensors(model, desc)
    digest = content_digest(desc, tensors)
    return st_save(tensors, metadata=_metadata(desc, digest)), digest


def save_model(model: nn.Module, path: str | os.PathLike, parts: Iterable[str] | None = None) -> str:
    """Write the chosen parts to ``path`` atomically; returns the content digest."""
    desc = describe(model, parts)
    tensors = model_tensors(model, desc)
    digest = content_digest(desc, tensors)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        st_save_file(tensors, tmp, metadata=_metadata(desc, digest))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return digest


def read_description(path: str | os.PathLike) -> tuple[dict, str]:
    """The description and recorded digest of a model file, without loading its tensors."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for a bad header
        raise ModelFormatError(f"not a safetensors model file: {exc}") from exc
    if _META_MODEL not in meta or _META_DIGEST not in meta:
        raise ModelFormatError("model file lacks blindproof metadata (model description and digest)")
    try:
        desc = json.loads(meta[_META_MODEL])
    except json.JSONDecodeError as exc:
        raise ModelFormatError(f"model description is not valid JSON: {exc}") from exc
    validate_description(desc)
    return desc, meta[_META_DIGEST]


def validate_description(desc: dict) -> None:
    """Raise ModelFormatError unless ``desc`` is a well-formed model description."""
    if not isinstance(desc, dict) or desc.get("format") != FORMAT:
        raise ModelFormatError(f"model description must be a dict with format {FORMAT!r}")
    kind = desc.get("kind")
    parts = desc.get("parts")
    if kind == "transformer":
        if not isinstance(desc.get("config"), dict):
            raise ModelFormatError("transformer description lacks its config")
        if not isinstance(parts, list) or not parts or set(parts) - set(TRANSFORMER_PARTS) \
                or len(set(parts)) != len(parts):
            raise ModelFormatError(f"transformer parts must be a non-empty subset of "
                                   f"{list(TRANSFORMER_PARTS)}, got {parts!r}")
    elif kind == "mlp":
        dims = desc.get("dims")
        if not isinstance(dims, list) or len(dims) < 2 or not all(isinstance(d, int) and d > 0 for d in dims):
            raise ModelFormatError(f"MLP dims must be a list of positive ints, got {dims!r}")
        if parts != ["all"]:
            raise ModelFormatError(f"MLP parts must be ['all'], got {parts!r}")
    else:
        raise ModelFormatError(f"unknown model kind {kind!r}")


def build_model(desc: dict, tensors: dict[str, torch.Tensor]) -> nn.Module:
    """Rebuild the module from its description and exactly the tensors of its parts.

    The architecture is first built on the ``meta`` device, so a description cannot make the reader
    allocate more than the tensors it ships (plus RoPE tables, bounded below). Modules of parts that
    were not shipped are removed, so running them fails loudly.
    """
    validate_description(desc)
    try:
        with torch.device("meta"):
            if desc["kind"] == "transformer":
                model: nn.Module = Transformer(TransformerConfig.from_dict(desc["config"]))
            else:
                model = MLP(tuple(desc["dims"]))
    except (TypeError, ValueError) as exc:
        raise ModelFormatError(f"invalid model config: {exc}") from exc
    expected = {n: t for n, t in model.state_dict().items() if _in_parts(n, desc)}
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ModelFormatError(f"tensors do not match the description: missing {missing[:5]}, "
                               f"unexpected {unexpected[:5]}")
    for name, t in tensors.items():
        ref = expected[name]
        if tuple(t.shape) != tuple(ref.shape) or t.dtype != ref.dtype:
            raise ModelFormatError(f"tensor {name}: expected {ref.dtype} {tuple(ref.shape)}, "
                                   f"got {t.dtype} {tuple(t.shape)}")
    if desc["kind"] == "transformer":
        for part, modules in _PART_MODULES.items():
            if part not in desc["parts"]:
                for m in modules:
                    if hasattr(model, m):
                        delattr(model, m)
    model.load_state_dict(tensors, strict=False, assign=True)  # assign: tied weights become separate
    shipped = sum(t.numel() * t.element_size() for t in tensors.values())
    _materialize_buffers(model, budget=shipped + _BUFFER_SLACK)
    leftover = [n for n, p in model.named_parameters() if p.is_meta]
    if leftover:
        raise ModelFormatError(f"parameters without values: {leftover[:5]}")
    return model.eval()


_BUFFER_SLACK = 64 << 20  # bytes of derived buffers allowed beyond the shipped tensors


def _materialize_buffers(model: nn.Module, budget: int) -> None:
    """Compute the derived (non-persistent) buffers the meta build left empty: the RoPE tables."""
    meta = [n for n, b in model.named_buffers() if b.is_meta]
    if not meta:
        return
    if set(meta) != {"rope_cos", "rope_sin"} or not isinstance(model, Transformer):
        raise ModelFormatError(f"cannot compute buffers {meta}")
    cfg = model.cfg
    need = 2 * cfg.max_seq * (cfg.head_dim // 2) * 8
    if need > budget:
        raise ModelFormatError(f"max_seq {cfg.max_seq} implies {need} bytes of RoPE tables, more than the "
                               f"{budget} bytes allowed for this model")
    model.rope_cos, model.rope_sin = rope_tables(cfg.head_dim, cfg.max_seq, cfg.rope_theta, torch.float64)


def load_model(path: str | os.PathLike, expected_digest: str | None = None) -> LoadedModel:
    """Load a model file, recompute its digest and check it against the recorded (and expected) one."""
    desc, recorded = read_description(path)
    tensors: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(path), framework="pt") as f:
            for name in f.keys():
                tensors[name] = f.get_tensor(name)
    except Exception as exc:
        raise ModelFormatError(f"cannot read model tensors: {exc}") from exc
    digest = content_digest(desc, tensors)
    if digest != recorded:
        raise DigestMismatchError(f"content digest mismatch: file records {recorded}, content hashes to {digest}")
    if expected_digest is not None and digest != expected_digest:
        raise DigestMismatchError(f"content digest mismatch: expected {expected_digest}, content hashes to {digest}")
    return LoadedModel(build_model(desc, tensors), desc, digest)
