"""The embedded default model: a tiny llama-style byte-level model trained on the bundled corpus.

Its weights (``assets/tiny_llama.safetensors``) and training record (``assets/tiny_llama.json``) are
made by ``scripts/train_default_model.py`` and committed, so the demo writes readable text with no
download. The held-out corpus is never trained on; later stages use it to measure how faithfully a
transformed or integer model tracks this one.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from blindproof.models import tokenizer
from blindproof.models.transformer import Transformer, TransformerConfig

ASSETS = Path(__file__).resolve().parent / "assets"
WEIGHTS_PATH = ASSETS / "tiny_llama.safetensors"
METADATA_PATH = ASSETS / "tiny_llama.json"
CORPUS_PATHS = {"train": ASSETS / "corpus_train.txt", "heldout": ASSETS / "corpus_heldout.txt"}

# The opening of a training-corpus sentence: greedy decoding continues it with corpus-like English.
DEFAULT_PROMPT = "The tide comes in twice a day, "

_REGENERATE = "regenerate it with `python scripts/train_default_model.py`"


def default_prompt() -> str:
    """The demo's prompt (text taken from the training corpus)."""
    return DEFAULT_PROMPT


def corpus_text(split: Literal["train", "heldout"] = "train") -> str:
    """The bundled English corpus: the training split or the held-out split."""
    if split not in CORPUS_PATHS:
        raise ValueError(f"split must be one of {sorted(CORPUS_PATHS)}, got {split!r}")
    return CORPUS_PATHS[split].read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _metadata_text() -> str:
    if not METADATA_PATH.exists():
        raise FileNotFoundError(f"default model metadata missing at {METADATA_PATH}; {_REGENERATE}")
    return METADATA_PATH.read_text(encoding="utf-8")


def default_metadata() -> dict:
    """The training record written beside the weights (config, losses, corpus digests, timing); a fresh dict."""
    return json.loads(_metadata_text())


def load_default_model() -> Transformer:
    """The trained tiny-llama byte model, float32, in eval mode (a fresh copy on every call)."""
    if not WEIGHTS_PATH.exists():
        raise FileNotFoundError(f"default model weights missing at {WEIGHTS_PATH}; {_REGENERATE}")
    cfg = TransformerConfig.from_dict(default_metadata()["config"])
    model = Transformer(cfg)
    model.load_state_dict(load_file(str(WEIGHTS_PATH)), strict=True)
    return model.eval()


@torch.no_grad()
def byte_loss(model: Transformer, text: str, window: int = 128) -> float:
    """Mean next-byte cross-entropy (nats per byte) over non-overlapping windows of ``text``.

    Each window restarts the context, so the figure does not depend on the model's max_seq; the
    first byte of a window is not scored (it has no context).
    """
    if window < 2:
        raise ValueError(f"window must be at least 2, got {window}")
    if window > model.cfg.max_seq:
        raise ValueError(f"window {window} exceeds the model's max_seq {model.cfg.max_seq}")
    ids = tokenizer.encode(text)[0]
    n_win = len(ids) // window
    if n_win == 0:
        raise ValueError(f"text has {len(ids)} bytes, fewer than one window of {window}")
    batch = ids[: n_win * window].reshape(n_win, window)
    total, count = 0.0, 0
    for chunk in batch.split(64):  # bounded memory for long texts
        logits = model(chunk)[:, :-1].double()
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), chunk[:, 1:].reshape(-1),
                                       reduction="sum"))
        count += chunk[:, 1:].numel()
    return total / count


def unigram_entropy(text: str) -> float:
    """Empirical entropy (nats per byte) of the byte frequencies of ``text``: the best any
    context-free model can do on that very text."""
    data = text.encode("utf-8")
    if not data:
        raise ValueError("text is empty")
    counts = torch.bincount(torch.tensor(list(data)), minlength=256).double()
    p = counts[counts > 0] / len(data)
    return float(-(p * p.log()).sum())


def generate_text(model: Transformer, prompt: str, n_new: int = 48) -> str:
    """Greedy continuation of ``prompt`` (n_new bytes, decoded with replacement of bad UTF-8)."""
    if n_new < 0:
        raise ValueError(f"n_new must be non-negative, got {n_new}")
    ids = tokenizer.encode(prompt)
    if ids.shape[1] == 0:
        raise ValueError("prompt is empty")
    if ids.shape[1] + n_new > model.cfg.max_seq:
        raise ValueError(f"prompt ({ids.shape[1]} bytes) + {n_new} new exceeds max_seq {model.cfg.max_seq}")
    if n_new == 0:
        return ""
    return tokenizer.decode(model.generate(ids, n_new))


def nats_to_bits(nats: float) -> float:
    """Convert a loss in nats to bits."""
    return nats / math.log(2)
