"""Where a model comes from: one function turns what a user has into the integer model a proof attests.

Accepted (:func:`resolve`): a workload name (``tiny-llama``, ``mlp-784-56-10``, ...), a local Hugging
Face folder (config.json + safetensors, sharded too, + tokenizer.json), an integer model file written by
``blindproof quantize`` (``.qspec``), an ONNX file (``.onnx``, :mod:`blindproof.quant.onnx_graph`), a
``file.py:name`` / ``module:name`` reference to a torch module, a
:class:`~blindproof.quant.QuantizedModel`, a blindproof ``Transformer`` or ``MLP``, or a plain torch module
(``nn.Sequential``, ``torch.fx``-traceable graphs). Every path ends in
a :class:`ModelSource`: the float model (where there is one), its integer model, a tokenizer (where
there is one) and a fixed example input. Quantization is deterministic, so resolving the same source
twice gives the same integer model (commit and prove agree).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from blindproof.quant import QuantizedModel


class ModelSourceError(ValueError):
    """The model cannot be used: unknown name, unreadable folder, unsupported layer. One line, for people."""


def encode_text(text: str, tokenizer: Any, vocab_size: int | None, name: str = "model") -> np.ndarray:
    """Token ids ``(1, n)`` of ``text``: by ``tokenizer``, else UTF-8 bytes for a byte-vocabulary model."""
    if tokenizer is not None:
        ids = tokenizer.encode(text).ids
    elif vocab_size == 256:
        ids = list(text.encode("utf-8"))
    else:
        raise ModelSourceError(f"{name}: text input needs a tokenizer (--tokenizer tokenizer.json) "
                               "or a byte-vocabulary model")
    if not ids:
        raise ModelSourceError("the text encodes to no tokens")
    return np.asarray(ids, dtype=np.int64)[None, :]


def vocab_size(spec: Any) -> int | None:
    """The token vocabulary of a transformer program (None for feature inputs)."""
    cfg = spec.arch.get("config")
    return int(cfg["vocab_size"]) if isinstance(cfg, dict) and "vocab_size" in cfg else None


def decode_tokens(ids, tokenizer: Any, vocab_size: int | None) -> str:
    """Text of token ids: by ``tokenizer``, else UTF-8 bytes for a byte-vocabulary model, else the ids."""
    ids = [int(i) for i in np.asarray(ids).reshape(-1)]
    if tokenizer is not None:
        return tokenizer.decode(ids, skip_special_tokens=False)
    if vocab_size == 256:
        return bytes(ids).decode("utf-8", errors="replace")
    return " ".join(map(str, ids))


@dataclass
class ModelSource:
    """A model resolved for proving: its name, float model, integer model, tokenizer and example input."""

    name: str
    quantized: "QuantizedModel"
    float_model: "torch.nn.Module | None" = field(default=None, repr=False)
    tokenizer: Any = field(default=None, repr=False)  # a ``tokenizers.Tokenizer`` (text in and out)
    example: np.ndarray | None = field(default=None, repr=False)

    @property
    def vocab_size(self) -> int | None:
        """The token vocabulary of a transformer program (None for feature inputs)."""
        return vocab_size(self.quantized.spec)

    def encode_text(self, text: str) -> np.ndarray:
        """Token ids ``(1, n)`` of ``text``: by the tokenizer, else UTF-8 bytes for a byte-vocabulary model."""
        return encode_text(text, self.tokenizer, self.vocab_size, self.name)

    def decode_tokens(self, ids) -> str:
        """Text of token ids, by the tokenizer or as UTF-8 bytes (byte-vocabulary models)."""
        return decode_tokens(ids, self.tokenizer, self.vocab_size)

    def program_input(self, x) -> dict[str, np.ndarray]:
        """The program's integer input for a model input: text, token ids or float features."""
        from blindproof.zk.proof.prover import program_input

        if isinstance(x, str):
            x = self.encode_text(x)
        if not isinstance(x, np.ndarray):
            import torch
            x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        if self.float_model is not None:
            x = program_input(self.quantized, self.float_model, x)
        try:
            return self.quantized.encode(x)
        except (TypeError, ValueError) as exc:
            raise ModelSourceError(f"{self.name}: {exc}") from None


def _workload(name: str, *, weights: str | Path | None, seed: int, scope: str | None, calibration=None) -> ModelSource:
    from blindproof.quant import quantize
    from blindproof.zk.proof.prover import example_input, quantized_workload, workload_float_model, workload_scope

    if weights is not None and not Path(weights).is_file():
        raise ModelSourceError(f"weights file {weights} does not exist")
    try:
        model = workload_float_model(name, str(weights) if weights else None, seed)
        qm = (quantized_workload(name, scope=scope, model=model) if calibration is None
              else quantize(model, calibration, scope=workload_scope(name, scope)))
    except ValueError as exc:
        raise ModelSourceError(str(exc)) from None
    x = example_input(name)
    return ModelSource(name, qm, model, None, x.numpy() if hasattr(x, "numpy") else np.asarray(x))


def _calibration(calibration, what: str):
    if calibration is None:
        raise ModelSourceError(f"{what}: pass calibration data (a batch of typical inputs) to quantize it")
    return calibration


FOLDER_CALIBRATION = (4, 16)  # (batch, seq) of the fixed random token ids a folder is calibrated on by default


def _tokens(vocab: int, batch: int, seq: int, seed: int) -> np.ndarray:
    import torch
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (batch, seq), generator=g).numpy()


def folder_calibration(vocab: int, max_seq: int) -> np.ndarray:
    """The fixed token ids a folder is calibrated on when no data is given (the same on every run)."""
    return _tokens(vocab, FOLDER_CALIBRATION[0], min(FOLDER_CALIBRATION[1], max_seq), 10_001)


def text_calibration(texts: list[str], encode, seq: int) -> np.ndarray:
    """Token ids ``(rows, seq)`` of texts: every text's tokens in turn, cut into rows of ``seq``."""
    ids: list[int] = []
    for t in texts:
        ids.extend(int(i) for i in np.asarray(encode(t)).reshape(-1))
    rows = len(ids) // seq
    if rows < 1:
        raise ModelSourceError(f"the calibration text has {len(ids)} tokens, fewer than one row of {seq}")
    return np.asarray(ids[:rows * seq], dtype=np.int64).reshape(rows, seq)


def _hf_folder(path: str, *, calibration, scope: str | None, tokenizer: str | Path | None,
               max_seq: int | None) -> ModelSource:
    from blindproof.models.hf_folder import HfFolderError, folder_tokenizer, load_hf_folder, load_tokenizer
    from blindproof.quant import QuantizationError, quantize

    try:
        model = load_hf_folder(path, max_seq=max_seq)
        tok = load_tokenizer(tokenizer) if tokenizer is not None else folder_tokenizer(path)
    except HfFolderError as exc:
        raise ModelSourceError(str(exc)) from None
    cfg = model.cfg
    name = Path(path).resolve().name or str(path)
    seq = min(FOLDER_CALIBRATION[1], cfg.max_seq)
    if calibration is None:
        calib = folder_calibration(cfg.vocab_size, cfg.max_seq)
    elif isinstance(calibration, (list, tuple)) and calibration and all(isinstance(t, str) for t in calibration):
        calib = text_calibration(list(calibration), lambda t: encode_text(t, tok, cfg.vocab_size, name), seq)
    else:
        calib = calibration
    try:
        qm = quantize(model, calib, scope=scope or "model")
    except QuantizationError as exc:
        raise ModelSourceError(f"{path}: {exc}") from None
    return ModelSource(name, qm, model, tok, _tokens(cfg.vocab_size, 1, seq, 10_000))


def resolve(model: Any, calibration=None, *, scope: str | None = None, seed: int = 0,
            weights: str | Path | None = None, name: str | None = None, tokenizer: str | Path | None = None,
            max_seq: int | None = None) -> ModelSource:
    """The :class:`ModelSource` of ``model``.

    ``model``: a workload name, a Hugging Face folder, a ``QuantizedModel``, a blindproof
    ``Transformer``/``MLP``, a plain torch module (``nn.Sequential`` or a ``torch.fx``-traceable graph
    of the layers :mod:`blindproof.quant.torch_graph` lists), or an ONNX file (a path ending in ``.onnx``
    or a loaded :class:`~blindproof.quant.onnx_model.OnnxModel`) of the nodes
    :mod:`blindproof.quant.onnx_graph` lists.
    ``calibration``: a batch of typical inputs (token ids ``(batch, seq)`` or float features
    ``(batch, ...)``; for a folder also a list of texts), needed to quantize a float model (workloads
    bring their own; a folder without it is calibrated on fixed random token ids).
    ``tokenizer`` (a tokenizer.json; default the folder's) and ``max_seq`` (positions covered; default
    the model's, at most 1024) apply to folders.
    ``scope``: ``"model"`` or ``"blocks"`` (transformers only); ``weights`` and ``seed``: a workload's
    weights file, or the seed of its random weights. Raises :class:`ModelSourceError`."""
    from blindproof.quant import QuantizedModel

    if isinstance(model, QuantizedModel):
        return ModelSource(name or "quantized model", model)
    if weights is not None and not (isinstance(model, (str, Path)) and str(model) in _workload_names()):
        raise ModelSourceError("--weights applies to workloads only (a folder or a .qspec file holds its own)")
    if isinstance(model, (str, Path)):
        if Path(model).is_dir():
            return _hf_folder(str(model), calibration=calibration, scope=scope, tokenizer=tokenizer, max_seq=max_seq)
        return _resolve_path(str(model), calibration=calibration, scope=scope, seed=seed, weights=weights,
                             tokenizer=tokenizer)
    import torch

    from blindproof.quant.onnx_model import OnnxModel

    if isinstance(model, OnnxModel):
        return _onnx_model(model, calibration, name or model.name, scope)
    if isinstance(model, torch.nn.Module):
        from blindproof.quant import QuantizationError, quantize

        label = name or type(model).__name__
        try:
            qm = quantize(model.eval(), _calibration(calibration, label), scope=scope or "model")
        except QuantizationError as exc:
            raise ModelSourceError(f"{label}: {exc}") from None
        return ModelSource(label, qm, model)
    raise ModelSourceError(f"cannot use a {type(model).__name__} as a model (expected a workload name, a path, a "
                           "torch module, an OnnxModel or a QuantizedModel)")


def _workload_names() -> tuple[str, ...]:
    from blindproof.models.workloads import WORKLOADS
    return tuple(WORKLOADS)


def _qspec(path: Path, tokenizer: str | Path | None) -> ModelSource:
    """An integer model written by ``blindproof quantize`` (its tokenizer: given, else the one it recorded)."""
    from blindproof.models.hf_folder import HfFolderError, load_tokenizer
    from blindproof.quant.files import load_qspec

    try:
        qm, info = load_qspec(path)
        recorded = info.get("tokenizer")
        tok = (load_tokenizer(tokenizer) if tokenizer is not None else
               load_tokenizer(recorded) if recorded and Path(recorded).is_file() else None)
    except (HfFolderError, ValueError, OSError) as exc:
        raise ModelSourceError(str(exc)) from None
    return ModelSource(path.name, qm, None, tok, None)


def load_reference(ref: str) -> Any:
    """The object ``file.py:name`` or ``package.module:name`` names; a callable that is not a module is called
    (a factory returning the model)."""
    import importlib
    import importlib.util

    target, _, attr = ref.rpartition(":")
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise ModelSourceError(f"{ref}: no file {target}")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)  # type: ignore[union-attr]
        else:
            mod = importlib.import_module(target)
    except ModelSourceError:
        raise
    except Exception as exc:  # the user's module failed to import: say so in one line
        raise ModelSourceError(f"{ref}: cannot import {target}: {type(exc).__name__}: {exc}") from None
    if not hasattr(mod, attr):
        raise ModelSourceError(f"{ref}: {target} has no {attr!r}")
    obj = getattr(mod, attr)
    import torch
    if callable(obj) and not isinstance(obj, torch.nn.Module):
        obj = obj()
    if not isinstance(obj, torch.nn.Module):
        raise ModelSourceError(f"{ref}: {attr} is a {type(obj).__name__}, not a torch module")
    return obj


def _onnx_file(path: str, calibration, scope: str | None) -> ModelSource:
    """An ONNX file, quantized on ``calibration`` (float features shaped like the graph's input)."""
    from blindproof.quant import QuantizationError
    from blindproof.quant.onnx_model import load_onnx

    try:
        model = load_onnx(path)
    except QuantizationError as exc:  # its message names the file
        raise ModelSourceError(str(exc)) from None
    return _onnx_model(model, calibration, Path(path).name, scope)


def _onnx_model(model: Any, calibration, label: str, scope: str | None) -> ModelSource:
    """A loaded :class:`~blindproof.quant.onnx_model.OnnxModel` quantized on ``calibration``."""
    from blindproof.quant import QuantizationError, quantize

    try:
        qm = quantize(model, _calibration(calibration, label), scope=scope or "model")
    except QuantizationError as exc:
        raise ModelSourceError(str(exc) if str(exc).startswith(label) else f"{label}: {exc}") from None
    return ModelSource(label, qm, model)


def _resolve_path(source: str, *, calibration=None, scope: str | None, seed: int, weights: str | Path | None,
                  tokenizer: str | Path | None = None) -> ModelSource:
    from blindproof.models.workloads import WORKLOADS

    if source in WORKLOADS:
        return _workload(source, weights=weights, seed=seed, scope=scope, calibration=calibration)
    if source.endswith(".onnx"):
        return _onnx_file(source, calibration, scope)
    if source.endswith(".qspec"):
        if not Path(source).is_file():
            raise ModelSourceError(f"no integer model file {source} (write one with `blindproof quantize`)")
        if calibration is not None:
            raise ModelSourceError(f"{source} is quantized already: calibration data does not apply to it")
        return _qspec(Path(source), tokenizer)
    if ":" in source and not Path(source).exists():
        return resolve(load_reference(source), calibration, scope=scope, name=source)
    raise ModelSourceError(f"unknown model {source!r}: not a workload ({', '.join(WORKLOADS)}), a Hugging Face "
                           "folder, a .qspec or .onnx file or a file.py:name / module:name reference")
