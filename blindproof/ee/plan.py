"""Which key protects which part of a model, derived deterministically from (key, tier, architecture).

The transform (weights) and the client codec (activations) both ask this module, so they agree by
construction. Each component has its own HKDF label, prefixed by the tier and a digest of the
architecture: the same key used for two tiers or two architectures yields independent components.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import torch
from torch import nn

from blindproof.ee.keys import EEKey
from blindproof.ee.linalg import (DenseKey, LinearKey, PermKey, block_key, haar_orthogonal, log_uniform,
                                  orthogonal_fixing_ones, random_invertible, rope_compatible)
from blindproof.models.mlp import MLP
from blindproof.models.transformer import Transformer, TransformerConfig

Tier = Literal["permute", "rotate"]
TIERS: tuple[str, ...] = ("permute", "rotate")


@dataclass(frozen=True)
class Split:
    """Who runs which part of a transformer; default: the client embeds and decodes."""

    client_embeds: bool = True
    client_decodes: bool = True


def check_tier(tier: object) -> str:
    """Return `tier` if it names a tier, else raise ValueError listing the tiers."""
    if tier not in TIERS:
        raise ValueError(f"unknown EE tier {tier!r}; choose one of {', '.join(TIERS)}")
    return tier  # type: ignore[return-value]


def architecture_tag(model: nn.Module) -> str:
    """A short digest of the architecture (not the weights) that keys are bound to."""
    if isinstance(model, Transformer):
        cfg = model.cfg.to_dict()
        cfg.pop("tie_embeddings")  # an untied server copy keeps the same keys
        desc = "transformer:" + json.dumps(cfg, sort_keys=True)
    elif isinstance(model, MLP):
        desc = "mlp:" + ",".join(map(str, model.dims))
    else:
        raise TypeError(f"EE supports blindproof Transformer and MLP models, got {type(model).__name__}")
    return hashlib.sha256(desc.encode()).hexdigest()[:16]


def _perm_matrix(perm: np.ndarray) -> np.ndarray:
    m = np.zeros((perm.size, perm.size))
    m[perm, np.arange(perm.size)] = 1.0
    return m


@dataclass(frozen=True)
class HeadKeys:
    """Per-layer attention keys: q/k outputs, v output (kv-head layout), o input (query-head layout)."""

    q: DenseKey
    k: DenseKey
    v: DenseKey
    o: DenseKey


class KeyPlan:
    """Every key component of one (model architecture, key, tier, split)."""

    def __init__(self, model: nn.Module, key: EEKey, tier: Tier, split: Split = Split()) -> None:
        if not isinstance(key, EEKey):
            raise TypeError(f"key must be an EEKey, got {type(key).__name__}")
        if not isinstance(split, Split):
            raise TypeError(f"split must be a Split, got {type(split).__name__}")
        self.tier = check_tier(tier)
        self.key = key
        self.split = split
        self.prefix = f"{tier}/{architecture_tag(model)}/"
        if isinstance(model, MLP):
            self.cfg: TransformerConfig | None = None
            self.dims = model.dims
            if not split.client_embeds:
                raise ValueError("an MLP has no embedding: the client always encodes its input features")
        else:
            if model.cfg.input_extra:  # its expansion weights would ship untransformed
                raise ValueError("encrypt the model without its input expansion: blindproof.fingerprint.blind "
                                 "adds a keyed expansion at deployment")
            self.cfg = model.cfg
            if model.cfg.output in ("last", "first") and not split.client_decodes:
                raise ValueError(f"a classification head (output {model.cfg.output!r}) is decoded by the client: its "
                                 "labels have no key of their own; keep client_decodes=True")

    def rng(self, label: str) -> np.random.Generator:
        return self.key.rng(self.prefix + label)

    # --- transformers ------------------------------------------------------------------------
    @property
    def folds_norms(self) -> bool:
        """rotate on a pre-norm model: norm gains move into the next linears (server gains become 1)."""
        return self.tier == "rotate" and self.cfg.norm_position == "pre" and not self.cfg.sandwich_norm

    @cached_property
    def stream(self) -> LinearKey:
        """The residual-stream key.

        permute: a permutation. rotate: a Haar orthogonal Q (RMSNorm) or one with Q 1 = 1 (pre-LN
        LayerNorm, so mean subtraction commutes). Post-LN models keep a permutation in both tiers: their
        stream is a LayerNorm output with per-coordinate gains inside it, which only a permutation
        preserves exactly (docs/ee.md). Sandwich-norm models (Gemma 2) likewise: each sublayer adds a
        norm output, gains included, to the stream.
        """
        cfg, rng = self.cfg, self.rng("stream")
        if self.tier == "permute" or cfg.norm_position == "post" or cfg.sandwich_norm:
            return PermKey(rng.permutation(cfg.d_model))
        q = orthogonal_fixing_ones(rng, cfg.d_model) if cfg.norm == "layer" else haar_orthogonal(rng, cfg.d_model)
        return _orthogonal_key(q)

    @cached_property
    def vocab(self) -> PermKey:
        """Vocabulary permutation (special tokens included): encoded id = vocab.inv[id]."""
        return PermKey(self.rng("vocab").permutation(self.cfg.vocab_size))

    def heads(self, layer: int) -> HeadKeys:
        """Head permutation (kv heads with their query groups) and per-kv-head keys for one layer.

        q/k: B and B^-T per kv head (shared by its query heads); with RoPE, B is a scaled rotation per
        frequency pair so it commutes with the position rotations. v/o: any invertible C per kv head.
        permute tier: B and C are permutations (B = I under RoPE, whose pairs fix the layout). With q/k norms
        (Qwen3) B = I in both tiers: the per-head RMSNorm's gain commutes with no other key.
        """
        cfg, rng = self.cfg, self.rng(f"block{layer}/heads")
        n_h, n_kv, hd = cfg.n_heads, cfg.kv_heads, cfg.head_dim
        rep = n_h // n_kv
        tau = rng.permutation(n_kv)  # new kv head i <- old kv head tau[i]
        sigma = np.concatenate([t * rep + rng.permutation(rep) for t in tau])  # query heads follow
        rope = cfg.position == "rope"
        b, c = [], []
        for _ in range(n_kv):
            if cfg.qk_norm:  # a per-head RMSNorm with its gain sits between the projection and the scores
                b.append(np.eye(hd))
                c.append(random_invertible(rng, hd) if self.tier == "rotate" else _perm_matrix(rng.permutation(hd)))
            elif self.tier == "rotate":
                b.append(rope_compatible(rng, hd) if rope else random_invertible(rng, hd))
                c.append(random_invertible(rng, hd))
            else:
                b.append(np.eye(hd) if rope else _perm_matrix(rng.permutation(hd)))
                c.append(_perm_matrix(rng.permutation(hd)))
        k = [np.linalg.inv(m).T for m in b]
        group = [tau[j // rep] for j in range(n_h)]
        return HeadKeys(q=block_key(list(sigma), [b[g] for g in group]),
                        k=block_key(list(tau), [k[g] for g in tau]),
                        v=block_key(list(tau), [c[g] for g in tau]),
                        o=block_key(list(sigma), [c[g] for g in group]))

    def ffn(self, layer: int, shared: bool = False) -> tuple[PermKey, PermKey]:
        """(gate key, up key) of one MLP: one shared permutation; rotate also scales SwiGLU's up branch.
        ``shared``: the keys of a MoE block's shared experts (one gated MLP of width shared_d_ff)."""
        cfg, rng = self.cfg, self.rng(f"block{layer}/ffn" + ("/shared" if shared else ""))
        if shared:
            perm = rng.permutation(cfg.shared_d_ff)
        elif cfg.layer_is_moe(layer):  # experts move as blocks (with the router's outputs), units within each block
            n_group = cfg.expert_groups[0]  # expert groups stay contiguous: permuted as blocks, experts within
            per = cfg.n_experts // n_group
            order = np.concatenate([g * per + rng.permutation(per) for g in rng.permutation(n_group)]) \
                if n_group > 1 else rng.permutation(cfg.n_experts)
            perm = np.concatenate([e * cfg.d_ff + rng.permutation(cfg.d_ff) for e in order])
        else:
            perm = rng.permutation(cfg.layer_d_ff(layer))
        gate = PermKey(perm)
        if self.tier == "rotate" and cfg.mlp == "swiglu":
            # silu(g) * u is linear in u (and so is the expert weighting), so any nonzero diagonal on u
            # passes through exactly
            return gate, PermKey(perm, log_uniform(rng, perm.size))
        return gate, gate

    def experts(self, layer: int) -> PermKey:
        """The expert order of a mixture-of-experts block (router outputs), the one :meth:`ffn` moves its
        blocks by."""
        gate, _ = self.ffn(layer)
        return PermKey(gate.perm.numpy()[::self.cfg.d_ff] // self.cfg.d_ff)

    # --- MLP -----------------------------------------------------------------------------------
    @cached_property
    def mlp_keys(self) -> list[LinearKey]:
        """Keys of every MLP width: input, each hidden ReLU layer, output.

        input: invertible (rotate) or permutation; hidden: permutation x positive diagonal (commutes with
        ReLU); output: invertible when the client decodes, else a class permutation.
        """
        keys: list[LinearKey] = []
        last = len(self.dims) - 1
        for i, n in enumerate(self.dims):
            rng = self.rng(f"mlp/{i}")
            if self.tier == "permute" or (i == last and not self.split.client_decodes):
                keys.append(PermKey(rng.permutation(n)))
            elif i in (0, last):
                keys.append(DenseKey(random_invertible(rng, n)))
            else:
                keys.append(PermKey(rng.permutation(n), log_uniform(rng, n)))
        return keys


def _orthogonal_key(q: np.ndarray) -> DenseKey:
    m = torch.from_numpy(q)
    return DenseKey(m, m.T.contiguous())
