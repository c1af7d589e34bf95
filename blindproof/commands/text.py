"""Text in and out for the client commands (`generate`, `infer`): a tokenizer.json, or UTF-8 bytes."""

from __future__ import annotations

from pathlib import Path


class _Text:
    """Text in and out through a ``tokenizers.Tokenizer``, with the byte tokenizer's interface."""

    def __init__(self, tok) -> None:
        self.tok = tok

    def encode(self, text: str):
        import torch
        ids = self.tok.encode(text).ids
        if not ids:
            raise ValueError("the text encodes to no tokens")
        return torch.tensor([ids], dtype=torch.int64)

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids.reshape(-1).tolist()], skip_special_tokens=False)


def text_codec(tokenizer_path: Path | None, model_source: str):
    """How text becomes tokens: --tokenizer, else the deployed folder's tokenizer.json, else UTF-8 bytes."""
    from blindproof.models import tokenizer
    from blindproof.models.hf_folder import TOKENIZER, load_tokenizer

    if tokenizer_path is None and Path(model_source).is_dir() and (Path(model_source) / TOKENIZER).is_file():
        tokenizer_path = Path(model_source) / TOKENIZER
    return _Text(load_tokenizer(tokenizer_path)) if tokenizer_path is not None else tokenizer
