"""Attack (b): recover the prompt from the hidden states the server sees, by vocabulary matching.

The server of a statically keyed model sees ``h_l · Q`` at every block boundary l (one key for the
whole residual stream). Knowing the base model, it rebuilds the prompt token by token: for position
i it runs the base model on (recovered prefix + every vocabulary entry) and keeps the candidate
whose state at layer l matches what it observed ("Hidden No More", ICML 2025, for STIP). Two ways
to compare:

* with the key (from the weight-matching attack): undo Q and take the nearest candidate state;
* without the key: Q is orthogonal (a permutation is too), so inner products survive. The candidate's
  Gram row — its squared norm and its inner products with the prefix states — must equal the
  observed one. This needs nothing but the base weights.
"""

from __future__ import annotations

import numpy as np
import torch

from blindproof.models.transformer import KVCache, Transformer


def _rope(model: Transformer):
    return (model.rope_cos, model.rope_sin) if model.cfg.position == "rope" else None


@torch.no_grad()
def layer_states(model: Transformer, tokens: torch.Tensor, layer: int, start: int = 0,
                 cache: KVCache | None = None) -> torch.Tensor:
    """Residual stream at block boundary ``layer`` (0: the first block's input, n_layers: the output)."""
    if not 0 <= layer <= model.cfg.n_layers:
        raise ValueError(f"layer must lie in [0, {model.cfg.n_layers}], got {layer}")
    h = model.embed_tokens(tokens, start)
    rope = _rope(model)
    for i in range(layer):
        h = model.blocks[i](h, start, rope, cache, i)
    return h


def _expanded(cache: KVCache, layer: int, batch: int) -> KVCache:
    out = KVCache(len(cache.k))
    for i in range(layer):
        if cache.k[i] is not None:
            out.k[i] = cache.k[i].expand(batch, *cache.k[i].shape[1:])
            out.v[i] = cache.v[i].expand(batch, *cache.v[i].shape[1:])
    return out


@torch.no_grad()
def invert_hidden_states(base: Transformer, observed: torch.Tensor, layer: int,
                         key: np.ndarray | torch.Tensor | None = None, window: int = 32) -> torch.Tensor:
    """Rebuild the token ids behind ``observed`` (seq, d) = served states at block boundary ``layer``.

    ``key`` is the residual key Q (row convention, ``served = plain · Q``) if the attacker has it;
    without it the attack matches rotation-invariant Gram rows over the last ``window`` positions.
    Returns a (seq,) int64 tensor. Causal models only beyond layer 0 (a later token would change
    earlier states of a bidirectional encoder).
    """
    if not isinstance(base, Transformer):
        raise TypeError(f"base must be a blindproof Transformer, got {type(base).__name__}")
    if observed.dim() != 2 or observed.shape[1] != base.cfg.d_model:
        raise ValueError(f"observed states must have shape (seq, {base.cfg.d_model}), got {tuple(observed.shape)}")
    if layer > 0 and not base.cfg.causal:
        raise ValueError("prefix-wise inversion beyond layer 0 needs a causal model")
    dtype = next(base.parameters()).dtype
    obs = observed.to(dtype)
    if key is not None:
        q = torch.as_tensor(np.asarray(key), dtype=dtype)
        obs = obs @ q.T  # undo the residual key
    vocab = base.cfg.vocab_size
    cands = torch.arange(vocab).view(vocab, 1)
    cache = KVCache(base.cfg.n_layers)
    found: list[int] = []
    prefix_states: list[torch.Tensor] = []  # base states of the recovered prefix
    for i in range(obs.shape[0]):
        h = layer_states(base, cands, layer, start=i, cache=_expanded(cache, layer, vocab))[:, 0]
        if key is not None:
            dist = ((h - obs[i]) ** 2).sum(-1)
        else:
            past = prefix_states[-window:]
            past_obs = obs[max(0, i - len(past)):i]
            sig_obs = torch.cat([obs[i:i + 1] @ obs[i], past_obs @ obs[i]])
            basis = torch.stack(past) if past else h.new_zeros(0, h.shape[1])
            sig = torch.cat([(h * h).sum(-1, keepdim=True), h @ basis.T], dim=1)
            dist = ((sig - sig_obs) ** 2).sum(-1)
        tok = int(dist.argmin())
        found.append(tok)
        # extend the prefix cache and remember the chosen candidate's state
        prefix_states.append(layer_states(base, torch.tensor([[tok]]), layer, start=i, cache=cache)[0, 0])
    return torch.tensor(found, dtype=torch.int64)
