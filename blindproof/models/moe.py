"""Mixture-of-experts MLP (Mixtral-style top-k routing), computed densely.

Every expert runs on every token and its output is weighted by its gate, which is zero for the experts
the router did not select. That is exactly the sparse computation (a zero gate adds nothing) and it
is the form the integer model proves: a data-dependent layout would reveal the routing and change the
proof's shape per input.

Layout: the experts' gated MLPs are concatenated along the hidden axis, expert by expert, so the
weights are three linears ``gate``, ``up`` (``d_model -> n_experts·d_ff``) and ``down``
(``n_experts·d_ff -> d_model``), and ``down(h ⊙ repeat(g, d_ff)) = Σ_e g_e·down_e(h_e)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def topk_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the ``k`` largest entries of each row; ties go to the lower index (as the integer
    model's comparison network breaks them)."""
    n = scores.shape[-1]
    a, b = scores.unsqueeze(-1), scores.unsqueeze(-2)  # a[..., i, 0] = s_i, b[..., 0, j] = s_j
    lower = torch.arange(n)[None, :] < torch.arange(n)[:, None]  # lower[i, j]: j < i
    beats = (b > a) | ((b == a) & lower)  # beats[..., i, j]: expert j ranks above expert i
    return beats.sum(-1) < k


def group_mask(choice: torch.Tensor, n_group: int, topk_group: int) -> torch.Tensor:
    """DeepSeek-V3's group limit: experts in ``n_group`` contiguous groups, a group scored by the sum of its
    two best choice scores; only experts of the ``topk_group`` best groups stay selectable (ties to the
    lower index, as everywhere here)."""
    per = choice.shape[-1] // n_group
    grouped = choice.unflatten(-1, (n_group, per))
    top2 = topk_mask(grouped, 2)
    scores = (grouped * top2).sum(-1)
    return topk_mask(scores, topk_group).repeat_interleave(per, dim=-1)


def routing_gates(logits: torch.Tensor, k: int, router: str = "softmax",
                  bias: torch.Tensor | None = None, groups: tuple[int, int] = (1, 1), renorm: bool = True
                  ) -> torch.Tensor:
    """Per-token expert weights, zero off the k selected experts.

    ``softmax`` (Mixtral): softmax over all experts, top k, renormalised, which equals a softmax over the
    selected logits alone. ``sigmoid`` (DeepSeek-V3): experts selected by ``sigmoid(r) + bias``, weights
    ``sigmoid(r_i) / Σ_selected sigmoid(r_j)``, which equals a softmax of ``log sigmoid(r)`` over the
    selected experts (the integer model computes it that way). ``groups = (n_group, topk_group)``: the
    sigmoid router's group limit (:func:`group_mask`). ``renorm=False`` (softmax only): no renormalisation."""
    if router == "softmax":
        sel = topk_mask(logits, k)
        if not renorm:  # Qwen2-MoE (norm_topk_prob False): the top k of a softmax over all experts, as they are
            return torch.softmax(logits, dim=-1) * sel
        return torch.softmax(logits.masked_fill(~sel, float("-inf")), dim=-1)
    scores = torch.sigmoid(logits)
    choice = scores if bias is None else scores + bias
    if groups[1] < groups[0]:  # experts outside the best groups rank below every other
        choice = choice.masked_fill(~group_mask(choice, *groups), float("-inf"))
    sel = topk_mask(choice, k)
    w = scores * sel
    return w / w.sum(-1, keepdim=True)


class MoE(nn.Module):
    """Top-k routed experts (SwiGLU or GeGLU each), computed densely."""

    def __init__(self, d_model: int, d_ff: int, n_experts: int, top_k: int, act: str, gelu_approx: str,
                 router: str = "softmax", shared_d_ff: int = 0, groups: tuple[int, int] = (1, 1),
                 renorm: bool = True, shared_gated: bool = False) -> None:
        super().__init__()
        if not 1 <= top_k <= n_experts:
            raise ValueError(f"top_k must lie in [1, n_experts = {n_experts}], got {top_k}")
        self.d_ff, self.n_experts, self.top_k = d_ff, n_experts, top_k
        self.act, self.gelu_approx, self.router_kind, self.groups = act, gelu_approx, router, tuple(groups)
        self.renorm = renorm
        self.router = nn.Linear(d_model, n_experts, bias=False)
        if router == "sigmoid":  # DeepSeek-V3's selection bias (it moves the choice, not the weights)
            self.select_bias = nn.Parameter(torch.zeros(n_experts))
        self.gate = nn.Linear(d_model, n_experts * d_ff, bias=False)
        self.up = nn.Linear(d_model, n_experts * d_ff, bias=False)
        self.down = nn.Linear(n_experts * d_ff, d_model, bias=False)
        if shared_d_ff:  # always-on shared experts (DeepSeek), one gated MLP
            self.shared_gate = nn.Linear(d_model, shared_d_ff, bias=False)
            self.shared_up = nn.Linear(d_model, shared_d_ff, bias=False)
            self.shared_down = nn.Linear(shared_d_ff, d_model, bias=False)
            if shared_gated:  # Qwen2-MoE: the shared output scaled by sigmoid(x·w) per token
                self.shared_scale = nn.Linear(d_model, 1, bias=False)

    def _act(self, g: torch.Tensor) -> torch.Tensor:
        return F.silu(g) if self.act == "silu" else F.gelu(g, approximate=self.gelu_approx)

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        """Per-token expert weights (zero off the selected experts)."""
        return routing_gates(self.router(x), self.top_k, self.router_kind, getattr(self, "select_bias", None),
                             self.groups, self.renorm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.gates(x).repeat_interleave(self.d_ff, dim=-1)
        y = self.down(self._act(self.gate(x)) * self.up(x) * weight)
        if hasattr(self, "shared_down"):
            shared = self.shared_down(self._act(self.shared_gate(x)) * self.shared_up(x))
            if hasattr(self, "shared_scale"):
                shared = torch.sigmoid(self.shared_scale(x)) * shared
            y = y + shared
        return y
