"""Multi-head latent attention (DeepSeek-V2/V3) with its decoupled RoPE.

Queries come from a low-rank latent (``q_a`` → RMSNorm → per-head projections) or directly from the
stream; keys and values from one shared latent (``kv_a`` → RMSNorm → per-head ``k_nope`` and ``v``).
Position enters only through a separate rotary part: ``q_rot`` per head and one ``k_rot`` shared by all
heads (computed from the stream), so a score is ``q_nope·k_nope + q_rot·k_rot``. Every projection is its
own linear here (the fused Hugging Face tensors are split at load), so no op ever slices a tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from blindproof.models.layers import RMSNorm, apply_rope, attend


@dataclass(frozen=True)
class MLAShape:
    """(q_lora_rank (0: queries straight from the stream), kv_lora_rank, nope dim, rope dim, value dim)."""

    q_rank: int
    kv_rank: int
    nope: int
    rope: int
    v: int

    @classmethod
    def of(cls, t: tuple[int, int, int, int, int]) -> "MLAShape":
        if len(t) != 5 or any(int(v) < 0 for v in t) or any(int(v) < 1 for v in t[1:]) or int(t[3]) % 2:
            raise ValueError(f"mla must be (q_lora_rank >= 0, kv_lora_rank, nope, rope (even), v_dim) > 0, got {t!r}")
        return cls(*(int(v) for v in t))


class MLAttention(nn.Module):
    """Latent attention; ``forward`` returns queries and keys with the rotary part applied and the values,
    per head, for the caller's causal softmax."""

    def __init__(self, d_model: int, n_heads: int, shape: MLAShape, eps: float) -> None:

        super().__init__()
        self.cfg = None  # set by the owning Transformer block (attention scale, soft-capping, causality)
        s, h = shape, n_heads
        self.shape, self.n_heads = s, h
        q_in = s.q_rank or d_model
        if s.q_rank:
            self.q_a = nn.Linear(d_model, s.q_rank, bias=False)
            self.q_norm = RMSNorm(s.q_rank, eps)
        self.q_nope = nn.Linear(q_in, h * s.nope, bias=False)
        self.q_rot = nn.Linear(q_in, h * s.rope, bias=False)
        self.kv_a = nn.Linear(d_model, s.kv_rank, bias=False)
        self.kv_norm = RMSNorm(s.kv_rank, eps)
        self.k_rot = nn.Linear(d_model, s.rope, bias=False)
        self.k_nope = nn.Linear(s.kv_rank, h * s.nope, bias=False)
        self.wv = nn.Linear(s.kv_rank, h * s.v, bias=False)
        self.wo = nn.Linear(h * s.v, d_model, bias=False)

    def qkv(self, x: torch.Tensor, rope) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(q, k, v) of shapes (b, H, t, nope + rope), (b, H, t, nope + rope), (b, H, t, v_dim)."""

        s, h = self.shape, self.n_heads
        b, t, _ = x.shape
        ql = self.q_norm(self.q_a(x)) if s.q_rank else x
        q_n = self.q_nope(ql).view(b, t, h, s.nope).transpose(1, 2)
        q_r = self.q_rot(ql).view(b, t, h, s.rope).transpose(1, 2)
        k_r = self.k_rot(x).view(b, t, 1, s.rope).transpose(1, 2)
        cos, sin = rope
        q_r, k_r = apply_rope(q_r, cos, sin), apply_rope(k_r, cos, sin)
        c = self.kv_norm(self.kv_a(x))
        k_n = self.k_nope(c).view(b, t, h, s.nope).transpose(1, 2)
        v = self.wv(c).view(b, t, h, s.v).transpose(1, 2)
        # q·k = q_nope·k_nope + q_rot·k_rot: the shared rotary key is repeated for every head
        return torch.cat([q_n, q_r], -1), torch.cat([k_n, k_r.expand(b, h, t, s.rope)], -1), v

    def forward(self, x: torch.Tensor, start: int, rope, cache, layer: int) -> torch.Tensor:

        t = x.shape[1]
        q, k, v = self.qkv(x, (rope[0][start:start + t].to(x.dtype), rope[1][start:start + t].to(x.dtype)))
        return self.wo(attend(self.cfg, q, k, v, start, cache, layer))
