"""Offline weight transforms: the model the server runs under a key (docs/ee.md).

The server model is the same class as the input model with ordinary weights, so it runs the same
operations at the same cost. Linear weights are rewritten in math form (W of shape (in, out), y = x W + b):

    W' = A^-1 W B,  b' = b B          A: key on the input, B: key on the output

Norm gains are either permuted with the stream (permute tier, post-LN models) or folded into the linears
that read the norm (rotate tier on pre-norm models), leaving the server's gains at 1. Weights of parts
the client runs (by default the embedding, the final norm and the LM head) are zeroed in the server
copy: the server receives only the weights it runs.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from blindproof.ee import latent
from blindproof.ee.keys import EEKey
from blindproof.ee.linalg import F64, LinearKey, PermKey
from blindproof.ee.plan import KeyPlan, Split, Tier, check_tier
from blindproof.models.mlp import MLP
from blindproof.models.transformer import Transformer

__all__ = ["EncryptedModel", "Split", "Tier", "encrypt_model"]


@dataclass
class EncryptedModel:
    """What a deployment ships to the server: the transformed model and public metadata."""

    model: nn.Module
    tier: Tier
    split: Split
    key_id: str


def encrypt_model(model: nn.Module, key: EEKey, tier: Tier, split: Split = Split()) -> EncryptedModel:
    """Transform `model` under `key` for the server; the input model is left untouched."""
    check_tier(tier)
    plan = KeyPlan(model, key, tier, split)  # validates key, split and the model type
    if isinstance(model, Transformer):
        server = _encrypt_transformer(model, plan)
    else:
        server = _encrypt_mlp(model, plan)
    return EncryptedModel(model=server.eval(), tier=tier, split=split, key_id=key.key_id)


# --- shared rewriting helpers ------------------------------------------------------------------

def _w(lin: nn.Linear) -> torch.Tensor:
    """Weight in math form (in, out), float64."""
    return lin.weight.detach().to("cpu", F64).T


def _b(lin: nn.Linear) -> torch.Tensor | None:
    return None if lin.bias is None else lin.bias.detach().to("cpu", F64)


def _rewrite(w: torch.Tensor, b: torch.Tensor | None, a: LinearKey, k_out: LinearKey) -> tuple:
    """W' = A^-1 W B, b' = b B."""
    return k_out.apply(a.pull(w)), None if b is None else k_out.apply(b)


class _Writer:
    """Collects new parameter values (torch layout) and writes them into the server copy."""

    def __init__(self) -> None:
        self.values: dict[str, torch.Tensor] = {}

    def linear(self, name: str, w: torch.Tensor, b: torch.Tensor | None) -> None:
        self.values[f"{name}.weight"] = w.T
        if b is not None:
            self.values[f"{name}.bias"] = b

    def write(self, model: nn.Module) -> None:
        params = dict(model.named_parameters(remove_duplicate=False))
        with torch.no_grad():
            for name, value in self.values.items():
                p = params[name]
                if p.shape != value.shape:
                    raise RuntimeError(f"transform produced shape {tuple(value.shape)} for {name} {tuple(p.shape)}")
                p.copy_(value.to(p.dtype))


def _norm_params(norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    gamma = norm.weight.detach().to("cpu", F64)
    beta = getattr(norm, "bias", None)
    return gamma, None if beta is None else beta.detach().to("cpu", F64)


def _keyed_norm(out: _Writer, name: str, norm: nn.Module, stream: LinearKey) -> None:
    """Permute a norm's gain and bias with the stream (exact for permutations only)."""
    if not isinstance(stream, PermKey) or stream.scale is not None:
        raise ValueError(f"{name}: norm gains can only be permuted under a plain permutation key")
    gamma, beta = _norm_params(norm)
    out.values[f"{name}.weight"] = stream.apply(gamma)
    if beta is not None:
        out.values[f"{name}.bias"] = stream.apply(beta)


def _fold_norm(out: _Writer, name: str, norm: nn.Module, consumers: list[tuple[str, nn.Linear, LinearKey]],
               stream: LinearKey) -> None:
    """Fold a norm's gain (and bias) into the linears reading it; the server norm gets gain 1.

    The bias goes into the linears' biases when they all have one; otherwise it stays in the norm as
    (beta / gamma) Q, which the folded gains turn back into beta W.
    """
    gamma, beta = _norm_params(norm)
    has_beta = beta is not None and bool(beta.abs().max() > 0)
    into_bias = has_beta and all(lin.bias is not None for _, lin, _ in consumers)
    out.values[f"{name}.weight"] = torch.ones_like(gamma)
    if beta is not None:
        out.values[f"{name}.bias"] = torch.zeros_like(beta)
    if has_beta and not into_bias:
        if bool((gamma == 0).any()):
            raise ValueError(f"{name}: cannot fold a LayerNorm bias past a zero gain into bias-free linears")
        out.values[f"{name}.bias"] = stream.apply(beta / gamma)
    for lname, lin, k_out in consumers:
        w, b = _w(lin), _b(lin)
        if into_bias:
            b = b + beta @ w
        out.linear(lname, *_rewrite(gamma[:, None] * w, b, stream, k_out))


# --- transformers ------------------------------------------------------------------------------

def _encrypt_transformer(model: Transformer, plan: KeyPlan) -> Transformer:
    cfg, split, s = model.cfg, plan.split, plan.stream
    out = _Writer()
    for i, blk in enumerate(model.blocks):
        p = f"blocks.{i}"
        gate, up = plan.ffn(i)
        if cfg.mla:  # latent attention (ee/latent.py)
            lk = latent.latent_keys(plan.rng(f"block{i}/latent"), plan.tier, cfg.n_heads, cfg.mla)
            attn = latent.stream_readers(p, blk.attn, lk)
            for name, lin, k_in, k_out in latent.inner_rewrites(p, blk.attn, lk, s):
                out.linear(name, *_rewrite(_w(lin), _b(lin), k_in, k_out))
            for name, norm, key in latent.latent_norms(p, blk.attn, lk):
                _keyed_norm(out, name, norm, key)
        else:
            hk = plan.heads(i)
            attn = [(f"{p}.attn.wq", blk.attn.wq, hk.q), (f"{p}.attn.wk", blk.attn.wk, hk.k),
                    (f"{p}.attn.wv", blk.attn.wv, hk.v)]
            out.linear(f"{p}.attn.wo", *_rewrite(_w(blk.attn.wo), _b(blk.attn.wo), hk.o, s))
            if cfg.qk_norm_proj:  # OLMo-2: the gains span every head, so they follow the head order
                for name, norm, key in (("q_norm", blk.attn.q_norm, hk.q), ("k_norm", blk.attn.k_norm, hk.k)):
                    out.values[f"{p}.attn.{name}.weight"] = key.apply(norm.weight.detach().to("cpu", F64))
        mlp = [(f"{p}.mlp.up", blk.mlp.up, up)]
        if cfg.mlp == "swiglu":
            mlp.append((f"{p}.mlp.gate", blk.mlp.gate, gate))
        if cfg.layer_is_moe(i):  # the router reads the normed stream; its outputs follow the expert order
            experts = plan.experts(i)
            mlp.append((f"{p}.mlp.router", blk.mlp.router, experts))
            if cfg.router == "sigmoid":
                out.values[f"{p}.mlp.select_bias"] = experts.apply(blk.mlp.select_bias.detach().to("cpu", F64))
            if cfg.shared_d_ff:  # shared experts: a gated MLP of their own, with their own permutation
                sg, su = plan.ffn(i, shared=True)
                mlp += [(f"{p}.mlp.shared_gate", blk.mlp.shared_gate, sg),
                        (f"{p}.mlp.shared_up", blk.mlp.shared_up, su)]
                out.linear(f"{p}.mlp.shared_down", *_rewrite(_w(blk.mlp.shared_down), None, su, s))
                if cfg.shared_gated:  # its scalar gate reads the normed stream; one output, no key of its own
                    mlp.append((f"{p}.mlp.shared_scale", blk.mlp.shared_scale, PermKey(np.arange(1))))
        for norm_name, norm, consumers in ((f"{p}.attn_norm", blk.attn_norm, attn),
                                           (f"{p}.mlp_norm", blk.mlp_norm, mlp)):
            if not cfg.pre_norms:  # OLMo-2: the sublayers read the stream itself
                for lname, lin, k_out in consumers:
                    out.linear(lname, *_rewrite(_w(lin), _b(lin), s, k_out))
                continue
            if plan.folds_norms:
                _fold_norm(out, norm_name, norm, consumers, s)
            else:
                _keyed_norm(out, norm_name, norm, s)
                for lname, lin, k_out in consumers:
                    out.linear(lname, *_rewrite(_w(lin), _b(lin), s, k_out))
        if cfg.sandwich_norm:  # the output norms sit on the stream key (a permutation, see KeyPlan.stream)
            _keyed_norm(out, f"{p}.attn_post_norm", blk.attn_post_norm, s)
            _keyed_norm(out, f"{p}.mlp_post_norm", blk.mlp_post_norm, s)
        out.linear(f"{p}.mlp.down", *_rewrite(_w(blk.mlp.down), _b(blk.mlp.down), up, s))

    embed = None if split.client_embeds else _server_embedding(model, plan, out)
    head = None if split.client_decodes else _server_head(model, plan, out)
    tied = cfg.tie_embeddings and cfg.output == "logits"
    server_cfg = cfg
    if tied and embed is not None and head is not None and not torch.equal(embed, head):
        # folded norm gains make the head differ from the embedding: ship them untied (same class, same cost)
        server_cfg = dataclasses.replace(cfg, tie_embeddings=False)
    if tied and server_cfg.tie_embeddings:
        value = embed if embed is not None else head
        out.values["embed.weight"] = value if value is not None else torch.zeros(model.embed.weight.shape, dtype=F64)
    else:
        if embed is not None:
            out.values["embed.weight"] = embed
        if head is not None:
            out.values["lm_head.weight"] = head

    server = _same_class_copy(model, server_cfg)
    _zero_client_parts(server, split, tied and server_cfg.tie_embeddings, embed is not None, head is not None)
    out.write(server)
    return server


def _server_embedding(model: Transformer, plan: KeyPlan, out: _Writer) -> torch.Tensor:
    """Embedding tables for a server that embeds: rows permuted by the vocabulary key, columns keyed."""
    cfg, s = model.cfg, plan.stream
    if cfg.embed_norm:
        if not isinstance(s, PermKey):
            raise ValueError("a pre-norm model with an embedding norm can only be embedded by the server in the "
                             "permute tier; keep client_embeds=True")
        _keyed_norm(out, "embed_norm", model.embed_norm, s)
    if cfg.position == "learned":
        out.values["pos_embed.weight"] = s.apply(model.pos_embed.weight.detach().to("cpu", F64))
    if cfg.type_vocab_size:
        out.values["type_embed.weight"] = s.apply(model.type_embed.weight.detach().to("cpu", F64))
    return s.apply(plan.vocab.pull(model.embed.weight.detach().to("cpu", F64)))


def _server_head(model: Transformer, plan: KeyPlan, out: _Writer) -> torch.Tensor | None:
    """Final norm and LM head for a server that decodes; logits come out vocabulary-permuted."""
    cfg, s = model.cfg, plan.stream
    if cfg.output != "logits":
        # mean pooling commutes with any stream key; only a final norm needs care
        if cfg.norm_position == "pre":
            if plan.folds_norms:
                raise ValueError("rotate tier: a pooled pre-norm model's final norm cannot be folded; "
                                 "keep client_decodes=True")
            _keyed_norm(out, "final_norm", model.final_norm, s)
        return None
    w = _w(model.lm_head)
    if cfg.norm_position == "pre" and plan.folds_norms:
        tmp = _Writer()
        _fold_norm(tmp, "final_norm", model.final_norm, [("lm_head", model.lm_head, plan.vocab)], s)
        head = tmp.values.pop("lm_head.weight")
        out.values.update(tmp.values)
        return head
    if cfg.norm_position == "pre":
        _keyed_norm(out, "final_norm", model.final_norm, s)
    return plan.vocab.apply(s.pull(w)).T


def _same_class_copy(model: Transformer, cfg) -> Transformer:
    if cfg is model.cfg:
        return copy.deepcopy(model)
    first = next(model.parameters())
    server = type(model)(cfg).to(device=first.device, dtype=first.dtype)
    server.load_state_dict(model.state_dict())
    return server


def _zero_client_parts(server: Transformer, split: Split, tied: bool, server_embeds: bool,
                       server_decodes: bool) -> None:
    """Zero the weights of every part only the client runs."""
    cfg = server.cfg
    names = []
    if split.client_embeds:
        names += [n for n in ("pos_embed", "type_embed", "embed_norm") if hasattr(server, n)]
        if not (tied and server_decodes):
            names.append("embed")
    if split.client_decodes:
        if cfg.norm_position == "pre":
            names.append("final_norm")
        if cfg.output == "logits" and not (tied and server_embeds):
            names.append("lm_head")
        if cfg.output in ("last", "first"):  # classification heads: the client's alone
            names += [n for n in ("pooler", "lm_head") if hasattr(server, n)]
    with torch.no_grad():
        for n in names:
            for p in getattr(server, n).parameters():
                p.zero_()


# --- MLP ---------------------------------------------------------------------------------------

def _encrypt_mlp(model: MLP, plan: KeyPlan) -> MLP:
    keys = plan.mlp_keys
    out = _Writer()
    for i, layer in enumerate(model.layers):
        out.linear(f"layers.{i}", *_rewrite(_w(layer), _b(layer), keys[i], keys[i + 1]))
    server = copy.deepcopy(model)
    out.write(server)
    return server
