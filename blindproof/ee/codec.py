"""Client side of EE: encode what goes to the server, decode what comes back.

The client keeps the plaintext model (it owns it) and the key. For a transformer with the default
split it embeds locally, sends the keyed residual stream, and runs the final norm and LM head on the
decoded stream the server returns:

    h_enc = codec.client_input(tokens, start)          # client
    h_out = enc.model.run_blocks(h_enc, start, cache)  # server
    logits = codec.client_output(h_out)                # client; equals model(tokens)
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from blindproof.ee.keys import EEKey
from blindproof.ee.linalg import F64, LinearKey
from blindproof.ee.plan import KeyPlan, Split, Tier, architecture_tag
from blindproof.ee.transform import EncryptedModel
from blindproof.models.mlp import MLP
from blindproof.models.transformer import Transformer, check_tokens


class DeploymentMismatchError(ValueError):
    """The deployment was made with another key, tier or split than this codec's."""


def _keyed(key: LinearKey, x: torch.Tensor, forward: bool) -> torch.Tensor:
    """Apply a key in float64 and return the input's dtype (float32 stays float32)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"expected a floating-point torch.Tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    y = x.detach().to(F64)
    y = key.apply(y) if forward else key.unapply(y)
    return y.to(device=x.device, dtype=x.dtype)


class ClientCodec:
    """Encode/decode for one deployment of `model` under `key`, `tier` and `split`."""

    def __init__(self, model: nn.Module, key: EEKey, tier: Tier, split: Split = Split()) -> None:
        if not isinstance(model, (Transformer, MLP)):
            raise TypeError(f"EE supports blindproof Transformer and MLP models, got {type(model).__name__}")
        self.model = model
        self.plan = KeyPlan(model, key, tier, split)
        self.tier = tier
        self.split = split
        self.key_id = key.key_id

    @property
    def is_transformer(self) -> bool:
        return isinstance(self.model, Transformer)

    def check_deployment(self, enc: EncryptedModel | str) -> None:
        """Raise DeploymentMismatchError unless `enc` (or a key id) was made with this codec's key.

        For an EncryptedModel the tier, split and architecture must match too.
        """
        if isinstance(enc, str):
            key_id, tier, split = enc, self.tier, self.split
        elif isinstance(enc, EncryptedModel):
            key_id, tier, split = enc.key_id, enc.tier, enc.split
        else:
            raise TypeError(f"check_deployment needs an EncryptedModel or a key id, got {type(enc).__name__}")
        if key_id != self.key_id:
            raise DeploymentMismatchError(f"deployment was encrypted with key {key_id}, this client holds key "
                                          f"{self.key_id}")
        if tier != self.tier:
            raise DeploymentMismatchError(f"deployment uses tier {tier!r}, this client {self.tier!r}")
        if split != self.split:
            raise DeploymentMismatchError(f"deployment uses split {split}, this client {self.split}")
        if isinstance(enc, EncryptedModel) and architecture_tag(enc.model) != architecture_tag(self.model):
            raise DeploymentMismatchError("deployment runs a different architecture from this client's model")

    # --- tokens (the server embeds / decodes) --------------------------------------------------
    def _need_transformer(self, what: str) -> None:
        if not self.is_transformer:
            raise TypeError(f"{what} needs a transformer; this codec is for an MLP")

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Vocabulary permutation of token ids (every id, special tokens included)."""
        self._need_transformer("encode_tokens")
        check_tokens(tokens, self.model.cfg)
        return self.plan.vocab.inv.to(tokens.device)[tokens.long()].to(tokens.dtype)

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Inverse of encode_tokens."""
        self._need_transformer("decode_tokens")
        check_tokens(tokens, self.model.cfg)
        return self.plan.vocab.perm.to(tokens.device)[tokens.long()].to(tokens.dtype)

    # --- activations ---------------------------------------------------------------------------
    def _hidden_key(self) -> LinearKey:
        return self.plan.stream if self.is_transformer else self.plan.mlp_keys[0]

    def encode_hidden(self, h: torch.Tensor) -> torch.Tensor:
        """Residual stream (transformer) or input features (MLP) -> keyed."""
        return _keyed(self._hidden_key(), h, True)

    def decode_hidden(self, h: torch.Tensor) -> torch.Tensor:
        """Inverse of encode_hidden."""
        return _keyed(self._hidden_key(), h, False)

    def decode_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Output of a server that decodes: vocabulary-permuted logits, a keyed pooled vector (encoders),
        or the keyed output of an MLP."""
        if not self.is_transformer:
            return _keyed(self.plan.mlp_keys[-1], logits, False)
        if self.model.cfg.output != "logits":
            return self.decode_hidden(logits)
        vocab = self.model.cfg.vocab_size
        if not isinstance(logits, torch.Tensor) or logits.shape[-1] != vocab:
            raise ValueError(f"logits must end in the vocabulary size {vocab}, got "
                             f"{tuple(getattr(logits, 'shape', ()))}")
        return self.plan.vocab.unapply(logits)

    # --- the split ---------------------------------------------------------------------------
    @torch.no_grad()
    def client_input(self, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        """What the client sends: keyed hidden states (client embeds) or permuted token ids.

        For an MLP, `tokens` are the input features.
        """
        if not self.is_transformer:
            return self.encode_hidden(tokens)
        if self.split.client_embeds:
            return self.encode_hidden(self.model.embed_tokens(tokens, start))
        if start + tokens.shape[-1] > self.model.cfg.max_seq:
            raise ValueError(f"sequence end {start + tokens.shape[-1]} exceeds max_seq {self.model.cfg.max_seq}")
        return self.encode_tokens(tokens)

    @torch.no_grad()
    def client_output(self, server_out: torch.Tensor) -> torch.Tensor:
        """Plaintext logits / pooled output from what the server returned."""
        if self.is_transformer and self.split.client_decodes:
            cfg = self.model.cfg
            if server_out.dim() != 3 or server_out.shape[-1] != cfg.d_model:
                raise ValueError(f"server output must have shape (batch, seq, {cfg.d_model}) when the client "
                                 f"decodes, got {tuple(server_out.shape)}")
            return self.model.head(self.decode_hidden(server_out))
        return self.decode_logits(server_out)


@torch.no_grad()
def blind_generate(codec: ClientCodec, server_step: Callable[[torch.Tensor, int], torch.Tensor],
                   prompt: torch.Tensor, n_new: int) -> torch.Tensor:
    """Greedy decoding where every forward runs on the server.

    `server_step(x, start)` runs the server's part on what `client_input` produced and keeps its own KV
    cache between calls. Returns the new plaintext tokens (batch, n_new).
    """
    if not codec.is_transformer or codec.model.cfg.output != "logits" or not codec.model.cfg.causal:
        raise ValueError("blind_generate needs a causal transformer with a language-model head")
    if n_new < 1:
        raise ValueError(f"n_new must be positive, got {n_new}")
    out = []
    start = prompt.shape[1]
    logits = codec.client_output(server_step(codec.client_input(prompt, 0), 0))
    for step in range(n_new):
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        out.append(nxt)
        if step + 1 < n_new:
            logits = codec.client_output(server_step(codec.client_input(nxt, start), start))
            start += 1
    return torch.cat(out, dim=1)


def local_server_step(enc: EncryptedModel) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """A server_step running `enc.model` in-process with a KV cache (tests, demos, benchmarks)."""
    from blindproof.models.transformer import KVCache

    model = enc.model
    if not isinstance(model, Transformer):
        raise TypeError("local_server_step needs an encrypted transformer")
    cache = KVCache(model.cfg.n_layers)

    @torch.no_grad()
    def step(x: torch.Tensor, start: int) -> torch.Tensor:
        h = x if enc.split.client_embeds else model.embed_tokens(x, start)
        h = model.run_blocks(h, start, cache)
        return h if enc.split.client_decodes else model.head(h)

    return step
