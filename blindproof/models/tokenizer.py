"""Byte-level tokenizer: a token is one byte of the UTF-8 encoding, so the vocabulary is 256 ids.

No vocabulary file, no unknown tokens: any text round-trips exactly, and any id sequence decodes
(invalid UTF-8 becomes U+FFFD) — which is what a client needs when a model emits partial characters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

VOCAB_SIZE = 256


def encode(text: str) -> torch.Tensor:
    """UTF-8 bytes of ``text`` as token ids, shape (1, n), dtype int64."""
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    data = text.encode("utf-8")
    return torch.tensor(list(data), dtype=torch.int64).reshape(1, len(data))


def decode(ids: torch.Tensor | Sequence[int]) -> str:
    """Token ids (shape (n,) or (1, n), or a list of ints) back to text; bad UTF-8 is replaced."""
    if isinstance(ids, torch.Tensor):
        if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
            raise TypeError(f"ids must be an integer tensor, got {ids.dtype}")
        if ids.dim() == 2:
            if ids.shape[0] != 1:
                raise ValueError(f"decode takes one sequence; got a batch of shape {tuple(ids.shape)}")
            ids = ids[0]
        elif ids.dim() != 1:
            raise ValueError(f"ids must have shape (n,) or (1, n), got {tuple(ids.shape)}")
        values = ids.tolist()
    else:
        values = list(ids)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise TypeError("ids must be a sequence of ints")
    bad = [v for v in values if not 0 <= v < VOCAB_SIZE]
    if bad:
        raise ValueError(f"byte token ids must lie in [0, {VOCAB_SIZE}), got {bad[:5]}")
    return bytes(values).decode("utf-8", errors="replace")
