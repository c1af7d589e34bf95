"""Keys and weight rewrites for latent attention (DeepSeek MLA) and for a MoE's extra parts (router
selection bias, shared experts).

Latent attention, per layer (x a row vector, keys act on the right):

- the query and key/value latents get permutations (both tiers): each passes through an RMSNorm, whose
  gain a permutation carries exactly;
- heads are permuted together (q_nope, q_rot, k_nope, v and o follow one head order); the score's
  ``q_nope·k_nope`` part gets per-head ``B`` and ``B⁻ᵀ`` (rotate: any invertible; permute: a permutation);
  the rotary part ``q_rot·k_rot`` one RoPE-compatible ``R`` for every head with ``R⁻ᵀ`` on the shared
  rotary key (a scaled rotation per frequency pair commutes with the position rotations; permute: ``R = I``);
- values and the output projection get per-head ``C`` / ``C⁻¹`` (rotate: invertible; permute: a permutation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from blindproof.ee.linalg import DenseKey, LinearKey, PermKey, block_key, random_invertible, rope_compatible


@dataclass(frozen=True)
class LatentKeys:
    q_latent: PermKey | None  # None: queries straight from the stream
    kv_latent: PermKey
    q_nope: DenseKey
    q_rot: DenseKey
    k_nope: DenseKey
    k_rot: DenseKey
    v: DenseKey  # also the output projection's input key


def _perm_matrix(perm: np.ndarray) -> np.ndarray:
    return np.eye(perm.size)[:, perm]


def latent_keys(rng: np.random.Generator, tier: str, n_heads: int, mla: tuple[int, int, int, int, int]) -> LatentKeys:
    """The keys of one latent-attention layer (see the module docstring)."""
    q_rank, kv_rank, nope, rope, v = mla
    rotate = tier == "rotate"
    sigma = rng.permutation(n_heads)
    b = [random_invertible(rng, nope) if rotate else _perm_matrix(rng.permutation(nope)) for _ in range(n_heads)]
    c = [random_invertible(rng, v) if rotate else _perm_matrix(rng.permutation(v)) for _ in range(n_heads)]
    r = rope_compatible(rng, rope) if rotate else np.eye(rope)
    r_t = np.linalg.inv(r).T
    return LatentKeys(
        q_latent=PermKey(rng.permutation(q_rank)) if q_rank else None,
        kv_latent=PermKey(rng.permutation(kv_rank)),
        q_nope=block_key(list(sigma), [b[h] for h in sigma]),
        q_rot=block_key(list(sigma), [r] * n_heads),
        k_nope=block_key(list(sigma), [np.linalg.inv(b[h]).T for h in sigma]),
        k_rot=DenseKey(torch.from_numpy(r_t)),
        v=block_key(list(sigma), [c[h] for h in sigma]))


def stream_readers(p: str, attn, keys: LatentKeys) -> list[tuple[str, object, LinearKey]]:
    """(name, linear, output key) of the latent-attention linears that read the normed stream."""
    first = [(f"{p}.attn.q_a", attn.q_a, keys.q_latent)] if keys.q_latent is not None else [
        (f"{p}.attn.q_nope", attn.q_nope, keys.q_nope), (f"{p}.attn.q_rot", attn.q_rot, keys.q_rot)]
    return first + [(f"{p}.attn.kv_a", attn.kv_a, keys.kv_latent), (f"{p}.attn.k_rot", attn.k_rot, keys.k_rot)]


def inner_rewrites(p: str, attn, keys: LatentKeys, stream: LinearKey) -> list[tuple[str, object, LinearKey, LinearKey]]:
    """(name, linear, input key, output key) of every other latent-attention linear."""
    out = []
    if keys.q_latent is not None:
        out += [(f"{p}.attn.q_nope", attn.q_nope, keys.q_latent, keys.q_nope),
                (f"{p}.attn.q_rot", attn.q_rot, keys.q_latent, keys.q_rot)]
    return out + [(f"{p}.attn.k_nope", attn.k_nope, keys.kv_latent, keys.k_nope),
                  (f"{p}.attn.wv", attn.wv, keys.kv_latent, keys.v),
                  (f"{p}.attn.wo", attn.wo, keys.v, stream)]


def latent_norms(p: str, attn, keys: LatentKeys) -> list[tuple[str, object, PermKey]]:
    """(name, norm, key) of the latent RMSNorms (their gains are permuted with the latent)."""
    out = [(f"{p}.attn.kv_norm", attn.kv_norm, keys.kv_latent)]
    if keys.q_latent is not None:
        out.append((f"{p}.attn.q_norm", attn.q_norm, keys.q_latent))
    return out
