"""Calibration files for the commands that quantize (`quantize`, `deploy --integer`): a .npy batch, or a
.txt file tokenized and cut into rows."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

TEXT_ROW = 32  # tokens per calibration row cut from a text file


def read_calibration_file(path: Path) -> np.ndarray | str:
    """The batch a .npy file holds, or the text of a .txt file; SystemExit(2) when unusable."""
    if not path.is_file():
        raise SystemExit(f"error: calibration file {path} does not exist")
    if path.suffix == ".txt":
        return path.read_text(encoding="utf-8", errors="replace")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise SystemExit(f"error: {path}: not a .npy file: {exc}") from None
    if data.ndim < 2 or data.shape[0] < 1:
        raise SystemExit(f"error: {path}: calibration data must be a batch (n, ...), got shape {data.shape}")
    return data


def text_encoder(model_source: str, tokenizer: Path | None, vocab: int | None) -> Callable[[str], list[int]]:
    """How a calibration text becomes token ids: ``tokenizer``, else the folder's tokenizer.json, else UTF-8
    bytes for a byte-vocabulary model; SystemExit(2) for a model with none of these."""
    from blindproof.models.hf_folder import TOKENIZER, HfFolderError, load_tokenizer

    folder = Path(model_source)
    if tokenizer is None and folder.is_dir() and (folder / TOKENIZER).is_file():
        tokenizer = folder / TOKENIZER
    if tokenizer is not None:
        try:
            tok = load_tokenizer(tokenizer)
        except HfFolderError as exc:
            raise SystemExit(f"error: {exc}") from None
        return lambda t: tok.encode(t).ids
    if vocab == 256:
        return lambda t: list(t.encode("utf-8"))
    raise SystemExit(f"error: {model_source}: a text calibration file needs a tokenizer (--tokenizer tokenizer.json) "
                     "or a byte-vocabulary model")


def text_rows(text: str, encode: Callable[[str], list[int]], seq: int) -> np.ndarray:
    """Token ids ``(rows, seq)``: the non-empty lines' tokens in turn, cut into rows of ``seq``."""
    from blindproof.sources import ModelSourceError, text_calibration

    lines = [ln for ln in text.splitlines() if ln.strip()] or [text]
    try:
        return text_calibration(lines, encode, seq)
    except ModelSourceError as exc:
        raise SystemExit(f"error: {exc}") from None


def calibration_data(path: Path | None, model: str, tokenizer: Path | None, seq: int = TEXT_ROW,
                     max_seq: int | None = None) -> np.ndarray | None:
    """The calibration batch a --calibration file gives for the model ``model`` names (None without a file):
    a .npy as it is; a .txt tokenized (``tokenizer``, the folder's tokenizer.json, or UTF-8 bytes for a
    byte-vocabulary workload) into rows of ``seq`` tokens, no longer than the model's positions."""
    if path is None:
        return None
    data = read_calibration_file(path)
    if not isinstance(data, str):
        return data
    from blindproof.models.hf_folder import HfFolderError, folder_positions
    from blindproof.models.workloads import WORKLOADS

    folder = Path(model) if Path(model).is_dir() else None
    wl = WORKLOADS.get(model)
    cfg = wl.config if wl is not None else None
    encode = text_encoder(model, tokenizer, cfg.vocab_size if cfg is not None else None)
    try:
        limit = folder_positions(folder) if folder is not None else (cfg.max_seq if cfg is not None else None)
    except HfFolderError as exc:
        raise SystemExit(f"error: {exc}") from None
    return text_rows(data, encode, min(seq, *(v for v in (max_seq, limit) if v)))
