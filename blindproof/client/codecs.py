"""What the client sends and how it reads replies, for blind and for plaintext deployments."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from blindproof.ee.plan import Split
from blindproof.models.transformer import Transformer


class SplitCodec(Protocol):
    """The part of ``blindproof.ee.ClientCodec`` the SDK relies on."""

    model: nn.Module
    split: Split

    def client_input(self, tokens: torch.Tensor, start: int = 0) -> torch.Tensor: ...

    def client_output(self, server_out: torch.Tensor) -> torch.Tensor: ...


def server_parts(model: nn.Module, split: Split) -> list[str] | None:
    """The parts of ``model`` the server runs under ``split`` (None: the whole model, e.g. an MLP)."""
    if not isinstance(model, Transformer):
        return None
    parts = [] if split.client_embeds else ["embed"]
    parts.append("blocks")
    if not split.client_decodes:
        parts.append("head")
    return parts


class PlainCodec:
    """The same split as a blind deployment, without encryption (a plaintext baseline)."""

    def __init__(self, model: nn.Module, split: Split = Split()) -> None:
        self.model = model
        self.split = split
        self.key_id = ""

    @torch.no_grad()
    def client_input(self, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Hidden states (client embeds), token ids, or MLP features, unencrypted."""
        if isinstance(self.model, Transformer) and self.split.client_embeds:
            return self.model.embed_tokens(tokens, start)
        return tokens

    @torch.no_grad()
    def client_output(self, server_out: torch.Tensor) -> torch.Tensor:
        """Logits / pooled output (the client applies the head when it decodes)."""
        if isinstance(self.model, Transformer) and self.split.client_decodes:
            return self.model.head(server_out)
        return server_out
