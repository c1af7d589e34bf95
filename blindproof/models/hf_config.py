"""Transformer configurations read from Hugging Face configs (GPT-2, BERT), shared by the loaders and
the module mapping (``hf_map``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from blindproof.models.hf_common import UnsupportedModelError
from blindproof.models.transformer import TransformerConfig

def _get(d: Mapping[str, Any], key: str, default: Any = None) -> Any:
    v = d.get(key, default)
    return default if v is None else v


def _require(cond: bool, what: str) -> None:
    if not cond:
        raise UnsupportedModelError(what)


def _gelu_approx(act: str) -> str:
    table = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu_fast": "tanh"}
    _require(act in table, f"activation {act!r} not supported (GELU exact or tanh only)")
    return table[act]


def bert_config(c: Mapping[str, Any]) -> TransformerConfig:
    """TransformerConfig of a BERT encoder from its Hugging Face config dict (mean-pooled output)."""
    _require(_get(c, "position_embedding_type", "absolute") == "absolute",
             f"BERT position_embedding_type {c.get('position_embedding_type')!r} (only 'absolute')")
    _require(not c.get("is_decoder", False), "BERT as a decoder (is_decoder=True)")
    _require(not c.get("add_cross_attention", False), "BERT with cross-attention")
    return TransformerConfig(
        vocab_size=c["vocab_size"], d_model=c["hidden_size"], n_layers=c["num_hidden_layers"],
        n_heads=c["num_attention_heads"], d_ff=c["intermediate_size"], max_seq=c["max_position_embeddings"],
        norm="layer", norm_position="post", mlp="gelu", position="learned", bias=True, causal=False,
        norm_eps=c["layer_norm_eps"], embed_norm=True, type_vocab_size=c["type_vocab_size"],
        output="mean_pool", gelu_approx=_gelu_approx(c["hidden_act"]))


def gpt2_config(c: Mapping[str, Any]) -> TransformerConfig:
    """TransformerConfig of a GPT-2 LM from its Hugging Face config dict."""
    _require(c.get("scale_attn_weights", True), "GPT-2 without attention scaling (scale_attn_weights=False)")
    _require(not c.get("scale_attn_by_inverse_layer_idx", False), "GPT-2 scale_attn_by_inverse_layer_idx")
    _require(not c.get("add_cross_attention", False), "GPT-2 with cross-attention")
    d = c["n_embd"]
    return TransformerConfig(
        vocab_size=c["vocab_size"], d_model=d, n_layers=c["n_layer"], n_heads=c["n_head"],
        d_ff=_get(c, "n_inner", 4 * d), max_seq=c["n_positions"], norm="layer", norm_position="pre",
        mlp="gelu", position="learned", bias=True, causal=True,
        tie_embeddings=bool(c.get("tie_word_embeddings", True)), norm_eps=c["layer_norm_epsilon"],
        gelu_approx=_gelu_approx(c["activation_function"]))


# A name map gives, for each target parameter, a function of the source state dict.
Source = Callable[[Mapping[str, torch.Tensor]], torch.Tensor]
NameMap = dict[str, tuple[Source, tuple[str, ...]]]


def _take(key: str, transform: Callable[[torch.Tensor], torch.Tensor] = lambda t: t) -> tuple[Source, tuple[str, ...]]:
    return (lambda sd: transform(sd[key])), (key,)


def _norm(ours: str, theirs: str, bias: bool) -> NameMap:
    m = {f"{ours}.weight": _take(f"{theirs}.weight")}
    if bias:
        m[f"{ours}.bias"] = _take(f"{theirs}.bias")
    return m


def _linear(ours: str, theirs: str, bias: bool) -> NameMap:
    return _norm(ours, theirs, bias)  # same two names, same layouts


def _bert_names(cfg: TransformerConfig) -> NameMap:
    m: NameMap = {"embed.weight": _take("embeddings.word_embeddings.weight"),
                  "pos_embed.weight": _take("embeddings.position_embeddings.weight"),
                  "type_embed.weight": _take("embeddings.token_type_embeddings.weight"),
                  **_norm("embed_norm", "embeddings.LayerNorm", True)}
    for i in range(cfg.n_layers):
        o, t = f"blocks.{i}", f"encoder.layer.{i}"
        for ours, theirs in (("attn.wq", "attention.self.query"), ("attn.wk", "attention.self.key"),
                             ("attn.wv", "attention.self.value"), ("attn.wo", "attention.output.dense"),
                             ("mlp.up", "intermediate.dense"), ("mlp.down", "output.dense")):
            m.update(_linear(f"{o}.{ours}", f"{t}.{theirs}", True))
        m.update(_norm(f"{o}.attn_norm", f"{t}.attention.output.LayerNorm", True))
        m.update(_norm(f"{o}.mlp_norm", f"{t}.output.LayerNorm", True))
    return m


