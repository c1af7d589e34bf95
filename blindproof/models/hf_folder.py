"""A local Hugging Face model folder onto the one :class:`Transformer`: what users have on disk.

A folder holds ``config.json`` and its weights as ``model.safetensors``, or sharded as
``model-0000i-of-0000n.safetensors`` named by ``model.safetensors.index.json``; ``tokenizer.json``
(optional) gives text in and out. The folder is checked first (config, weights, every shard the index
names), each failure a one-line :class:`HfFolderError`; then ``transformers`` builds the module from
the local files only (nothing is downloaded) and :func:`~blindproof.models.loaders.from_hf` maps it by
its structure, so every architecture ``from_hf`` maps loads from a folder too, and any other is refused
with its name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
TOKENIZER = "tokenizer.json"
DEFAULT_MAX_SEQ = 1024  # positions the integer model covers unless asked (RoPE tables grow with it)
HF_INSTALL_HINT = 'pip install "blindproof[hf]"'


class HfFolderError(ValueError):
    """The folder is not a usable Hugging Face model folder (the message says why, in one line)."""


def is_hf_folder(path: str | Path) -> bool:
    """Whether ``path`` is a directory (a model folder, usable or not: :func:`check_folder` says)."""
    return Path(path).is_dir()


def read_config(folder: Path) -> dict:
    """The folder's ``config.json`` as a dict."""
    cfg = folder / CONFIG
    if not cfg.is_file():
        raise HfFolderError(f"{folder}: no {CONFIG} (a Hugging Face model folder holds {CONFIG} and "
                            f"{WEIGHTS} or a sharded {INDEX})")
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HfFolderError(f"{cfg}: not readable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HfFolderError(f"{cfg}: not a JSON object")
    return data


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files holding the weights (one, or every shard the index names), all present."""
    single, index = folder / WEIGHTS, folder / INDEX
    if single.is_file():
        return [single]
    if index.is_file():
        try:
            wmap = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            shards = sorted(set(wmap.values()))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise HfFolderError(f"{index}: not a safetensors index (needs a 'weight_map'): {exc}") from None
        if not shards:
            raise HfFolderError(f"{index}: its weight_map names no shard")
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise HfFolderError(f"{index} names {len(missing)} missing shard file(s): {', '.join(missing[:3])}")
        return [folder / s for s in shards]
    other = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt", ".safetensors"))
    hint = f" (found {', '.join(other[:3])}: only {WEIGHTS} or a sharded {INDEX} is read)" if other else ""
    raise HfFolderError(f"{folder}: no weights: neither {WEIGHTS} nor {INDEX}{hint}")


def check_safetensors(files: list[Path]) -> None:
    """Each file opens as safetensors (its header parses); HfFolderError naming the first that does not."""
    from safetensors import safe_open

    for f in files:
        try:
            with safe_open(str(f), framework="numpy"):
                pass
        except Exception as exc:  # safetensors raises its own error type on a truncated or foreign file
            raise HfFolderError(f"{f}: not a readable safetensors file ({str(exc).splitlines()[0]})") from None


def architecture(config: dict) -> str:
    """The model class ``config.json`` names (``architectures[0]``)."""
    archs = config.get("architectures")
    if not archs or not isinstance(archs, list) or not isinstance(archs[0], str):
        raise HfFolderError(f"{CONFIG} names no architecture ('architectures' is missing; model_type "
                            f"{config.get('model_type')!r})")
    return archs[0]


def folder_positions(folder: str | Path) -> int | None:
    """The positions a folder's model covers by default (its config's limit, at most DEFAULT_MAX_SEQ)."""
    config = read_config(Path(folder))
    limit = config.get("max_position_embeddings") or config.get("n_positions")
    return min(int(limit), DEFAULT_MAX_SEQ) if isinstance(limit, int) and limit > 0 else None


def check_folder(folder: str | Path) -> tuple[dict, str, list[Path]]:
    """``(config, architecture, weight files)`` of a folder, or :class:`HfFolderError` saying what is wrong."""
    f = Path(folder)
    if not f.is_dir():
        raise HfFolderError(f"{f}: not a folder")
    config = read_config(f)
    arch = architecture(config)
    files = weight_files(f)
    check_safetensors(files)
    return config, arch, files


def _quiet(transformers) -> None:
    """No progress bars or advice on stderr: the command line prints one line per event."""
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def load_hf_module(folder: str | Path) -> Any:
    """The Hugging Face module of a folder (float32, eval), built by ``transformers`` from local files only."""
    f = Path(folder)
    config, arch, _ = check_folder(f)
    try:
        import transformers
    except ModuleNotFoundError:
        raise HfFolderError(f"reading a Hugging Face folder needs transformers: {HF_INSTALL_HINT}") from None
    _quiet(transformers)
    cls = getattr(transformers, arch, None)
    if cls is None or not hasattr(cls, "from_pretrained"):
        raise HfFolderError(f"unsupported architecture {arch!r} (model_type {config.get('model_type')!r}): "
                            f"transformers {transformers.__version__} has no such model class")
    import torch
    try:
        module, info = cls.from_pretrained(str(f), local_files_only=True, output_loading_info=True,
                                           dtype=torch.float32)
    except Exception as exc:  # transformers and safetensors raise many types; each becomes one line
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "ignore_mismatched_sizes" in text:
            text = f"weight shapes differ from those {CONFIG} gives"
        raise HfFolderError(f"{f}: transformers cannot load it as {arch}: {text}") from None
    missing = sorted(info.get("missing_keys") or ())
    if arch.endswith("Model"):  # a bare encoder's pooler is never read (sentence embeddings mean-pool)
        missing = [k for k in missing if not k.startswith("pooler.")]
    if missing:  # transformers would fill them with random values: refuse instead
        raise HfFolderError(f"{f}: the weights lack {len(missing)} tensor(s) {arch} needs, e.g. {missing[0]}")
    bad = sorted(info.get("mismatched_keys") or ())
    if bad:
        raise HfFolderError(f"{f}: weights whose shapes differ from {CONFIG}'s: {bad[0]}")
    return module.eval()


def load_hf_folder(folder: str | Path, max_seq: int | None = None):
    """The folder's model as a blindproof :class:`Transformer` (float32, eval).

    ``max_seq`` caps the positions the model (and its integer model) covers; default the model's own,
    at most :data:`DEFAULT_MAX_SEQ`. Raises :class:`HfFolderError` (a ``ValueError``) with one line
    naming what is wrong: a missing config or weight file, a shard the index names but the folder
    lacks, or an architecture that cannot be mapped (named)."""
    from blindproof.models.hf_map import UnsupportedModelError
    from blindproof.models.loaders import from_hf

    module = load_hf_module(folder)
    arch = type(module).__name__
    limit = getattr(module.config, "max_position_embeddings", None) or getattr(module.config, "n_positions", None)
    if max_seq is None and limit:
        max_seq = min(int(limit), DEFAULT_MAX_SEQ)
    try:
        return from_hf(module, max_seq=max_seq)
    except UnsupportedModelError as exc:
        raise HfFolderError(f"unsupported architecture {arch!r}: {str(exc).splitlines()[0]}") from None
    except ValueError as exc:
        raise HfFolderError(f"{folder}: {str(exc).splitlines()[0]}") from None


def load_tokenizer(path: str | Path):
    """A ``tokenizers.Tokenizer`` from ``tokenizer.json`` (or a folder holding one), padding off."""
    from tokenizers import Tokenizer

    p = Path(path)
    if p.is_dir():
        p = p / TOKENIZER
    if not p.is_file():
        raise HfFolderError(f"no tokenizer at {p}")
    try:
        tok = Tokenizer.from_file(str(p))
    except Exception as exc:  # the tokenizers library raises its own Exception subclass
        raise HfFolderError(f"{p}: not a tokenizer.json: {str(exc).splitlines()[0]}") from None
    tok.no_padding()
    return tok


def folder_tokenizer(folder: str | Path):
    """The folder's ``tokenizer.json`` tokenizer, or None when it has none."""
    p = Path(folder) / TOKENIZER
    return load_tokenizer(p) if p.is_file() else None
