"""Layer primitives shared by the transformer and its latent attention: soft-capping, RMSNorm, rotary
embeddings, the key/value cache and scaled causal attention (below both, so neither imports the other)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def softcap(x: torch.Tensor, c: float | None) -> torch.Tensor:
    """Gemma 2's soft-capping ``c·tanh(x/c)`` (identity for ``c = None``)."""
    return x if c is None else torch.tanh(x / c) * c


class RMSNorm(nn.Module):
    """x / rms(x) * weight."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (i, i + hd/2) of x (..., seq, head_dim) by the angles of each position."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class KVCache:
    """Per-layer key/value cache for incremental decoding."""

    def __init__(self, n_layers: int) -> None:
        self.k: list[torch.Tensor | None] = [None] * n_layers
        self.v: list[torch.Tensor | None] = [None] * n_layers

    @property
    def length(self) -> int:
        return 0 if self.k[0] is None else int(self.k[0].shape[-2])

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.k[layer] is not None:
            k = torch.cat([self.k[layer], k], dim=-2)
            v = torch.cat([self.v[layer], v], dim=-2)
        self.k[layer], self.v[layer] = k, v
        return k, v


def attend(cfg: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: int,
           cache: KVCache | None, layer: int) -> torch.Tensor:
    """Scaled (soft-capped) causal attention of per-head q (b, H, t, ·), k and v (b, kv heads, ·, ·);
    returns the heads merged, (b, t, H·v_dim), before the output projection. ``cfg``: the model's
    ``TransformerConfig`` (heads, key/value heads, softmax scale, soft cap, causality)."""
    b, t = q.shape[0], q.shape[2]
    if cache is not None:
        k, v = cache.append(layer, k, v)
    rep = cfg.n_heads // cfg.kv_heads
    if rep > 1:
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
    scores = softcap((q @ k.transpose(-1, -2)) * cfg.softmax_scale, cfg.attn_softcap)
    if cfg.causal:
        total = k.shape[-2]
        qpos = torch.arange(start, start + t)[:, None]
        kpos = torch.arange(total)[None, :]
        scores = scores.masked_fill(kpos > qpos, float("-inf"))
    out = torch.softmax(scores, dim=-1) @ v
    return out.transpose(1, 2).reshape(b, t, cfg.n_heads * v.shape[-1])
