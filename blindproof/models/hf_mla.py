"""Map a Hugging Face multi-head latent attention module (DeepSeek-V2/V3) onto
:class:`blindproof.models.mla.MLAttention`, by structure.

Recognised by ``kv_a_proj_with_mqa``. The fused tensors are split into the separate projections
MLAttention keeps: ``q_b_proj`` (or ``q_proj``) per head into ``q_nope`` and ``q_rot`` rows,
``kv_a_proj_with_mqa`` into the latent ``kv_a`` and the shared rotary key ``k_rot``, ``kv_b_proj`` per head
into ``k_nope`` and ``wv``. DeepSeek's interleaved rotary layout (pairs ``(x0, x1), (x2, x3), ...``) is the
half-split layout after a fixed permutation of the rotary rows (evens, then odds), applied here to the
``q_rot`` and ``k_rot`` rows, so the Transformer's one RoPE convention computes the same scores.
"""

from __future__ import annotations

import torch
from torch import nn

from blindproof.models.hf_common import NameMap, _expect_children, _fail, _linear, _path, _take, rms_norm_gain

_PARTS = {"q_proj", "q_a_proj", "q_a_layernorm", "q_b_proj", "kv_a_proj_with_mqa", "kv_a_layernorm", "kv_b_proj",
          "o_proj", "rotary_emb"}


def _dim(attn: nn.Module, ap: str, name: str, allow_none: bool = False) -> int:
    v = getattr(attn, name, None)
    if v is None and allow_none:
        return 0
    if not isinstance(v, int) or v < 1:
        _fail(ap, f"latent attention without a positive integer {name} attribute (got {v!r})")
    return v


def _rows(ours: str, m: NameMap, key: str, idx: torch.Tensor) -> None:
    m[f"{ours}.weight"] = _take(key, lambda w, i=idx: w[i])


def map_mla(attn: nn.Module, ap: str, ours: str, m: NameMap, n_heads: int
            ) -> tuple[tuple[int, int, int, int, int], float]:
    """Fill ``m`` for ``ours`` (an MLAttention); returns its shape (q_rank, kv_rank, nope, rope, v) and the
    epsilon of its latent norms."""
    k = _expect_children(attn, ap, _PARTS, "latent attention")
    q_rank = _dim(attn, ap, "q_lora_rank", allow_none=True)
    kv_rank, nope = _dim(attn, ap, "kv_lora_rank"), _dim(attn, ap, "qk_nope_head_dim")
    rope, v = _dim(attn, ap, "qk_rope_head_dim"), _dim(attn, ap, "v_head_dim")
    if rope % 2:
        _fail(ap, f"odd rotary width {rope}")
    config = getattr(attn, "config", None)
    interleaved = bool(getattr(config, "rope_interleave", False))
    rot = torch.cat([torch.arange(0, rope, 2), torch.arange(1, rope, 2)]) if interleaved else torch.arange(rope)
    for name in ("q_proj", "q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"):
        if name in k and _linear(k[name], _path(ap, name)).bias is not None:
            _fail(_path(ap, name), "a bias in latent attention is not implemented")
    eps_all = []
    if q_rank:
        for need in ("q_a_proj", "q_a_layernorm", "q_b_proj"):
            if need not in k:
                _fail(_path(ap, need), "missing (a query latent needs q_a_proj, q_a_layernorm, q_b_proj)")
        gain, eps = rms_norm_gain(k["q_a_layernorm"], _path(ap, "q_a_layernorm"))
        if not torch.equal(gain, k["q_a_layernorm"].weight.detach()):
            _fail(_path(ap, "q_a_layernorm"), "a (1 + w) latent norm is not implemented")
        eps_all.append(eps)
        m[f"{ours}.q_a.weight"] = _take(_path(ap, "q_a_proj.weight"))
        m[f"{ours}.q_norm.weight"] = _take(_path(ap, "q_a_layernorm.weight"))
        q_src = "q_b_proj"
    else:
        q_src = "q_proj"
    q_lin = _linear(k.get(q_src), _path(ap, q_src))
    if q_lin.out_features != n_heads * (nope + rope):
        _fail(_path(ap, q_src), f"output width {q_lin.out_features} != {n_heads} heads x (nope {nope} + rope {rope})")
    per = torch.arange(n_heads)[:, None] * (nope + rope)
    _rows(f"{ours}.q_nope", m, _path(ap, f"{q_src}.weight"), (per + torch.arange(nope)).reshape(-1))
    _rows(f"{ours}.q_rot", m, _path(ap, f"{q_src}.weight"), (per + nope + rot).reshape(-1))
    kv_a = _linear(k.get("kv_a_proj_with_mqa"), _path(ap, "kv_a_proj_with_mqa"))
    if kv_a.out_features != kv_rank + rope:
        _fail(_path(ap, "kv_a_proj_with_mqa"), f"output width {kv_a.out_features} != kv_lora_rank + rope")
    _rows(f"{ours}.kv_a", m, _path(ap, "kv_a_proj_with_mqa.weight"), torch.arange(kv_rank))
    _rows(f"{ours}.k_rot", m, _path(ap, "kv_a_proj_with_mqa.weight"), kv_rank + rot)
    gain, eps = rms_norm_gain(k["kv_a_layernorm"], _path(ap, "kv_a_layernorm"))
    if not torch.equal(gain, k["kv_a_layernorm"].weight.detach()):
        _fail(_path(ap, "kv_a_layernorm"), "a (1 + w) latent norm is not implemented")
    eps_all.append(eps)
    m[f"{ours}.kv_norm.weight"] = _take(_path(ap, "kv_a_layernorm.weight"))
    kv_b = _linear(k.get("kv_b_proj"), _path(ap, "kv_b_proj"))
    if kv_b.out_features != n_heads * (nope + v):
        _fail(_path(ap, "kv_b_proj"), f"output width {kv_b.out_features} != {n_heads} heads x (nope + v_head_dim)")
    per = torch.arange(n_heads)[:, None] * (nope + v)
    _rows(f"{ours}.k_nope", m, _path(ap, "kv_b_proj.weight"), (per + torch.arange(nope)).reshape(-1))
    _rows(f"{ours}.wv", m, _path(ap, "kv_b_proj.weight"), (per + nope + torch.arange(v)).reshape(-1))
    m[f"{ours}.wo.weight"] = _take(_path(ap, "o_proj.weight"))
    if len(set(eps_all)) > 1:
        _fail(ap, "the query and key/value latent norms differ in epsilon")
    return (q_rank, kv_rank, nope, rope, v), eps_all[0]
