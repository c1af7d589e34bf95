"""Map a Hugging Face module onto a :class:`Transformer` by what it is, not by its class name.

The mapper walks the module tree and reads the config only for what the tree cannot say (head counts,
the maximum length, the sliding window). Parts are recognised by their structure:

* a decoder base (``embed_tokens``, ``layers``, ``norm``, ``rotary_emb``): Llama, Mistral, Qwen2/2.5,
  Phi-3 (fused ``qkv_proj`` / ``gate_up_proj``, split here), Gemma (GeGLU, scaled embeddings,
  ``(1 + w)`` RMSNorm), Gemma 2 (sandwich norms, attention soft-capping), mixtures of experts (Mixtral,
  DeepSeek-V3: :mod:`blindproof.models.hf_moe`), latent attention (DeepSeek: :mod:`blindproof.models.hf_mla`)
  and any other model built the same way;
* a GPT-2 base (``wte``, ``wpe``, ``h``, ``ln_f``);
* an encoder base (``embeddings`` and ``encoder.layer``: BERT, RoBERTa with its position offset) or
  ``embeddings`` and ``transformer.layer`` (DistilBERT);

and a head: ``lm_head`` (logits), ``score`` (sequence classification read at the last position, the
``*ForSequenceClassification`` decoders), an encoder's pooler and classifier (:func:`map_encoder_head`),
or none (a bare base model: final hidden states for decoders,
the mean over the sequence for encoders, as for ``BertModel``).

Behaviour the tree hides is probed on the module itself: each norm is run on a random input and must
equal ``x/rms(x)·w`` or ``x/rms(x)·(1 + w)``, each activation must equal SiLU, GELU or tanh-GELU on a
grid, the embedding's output must be its table times one constant, and the rotary module's inverse
frequencies must equal plain or Llama-3-scaled RoPE. Whatever does not fit raises
:class:`UnsupportedModelError` naming the module path and what was unexpected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from blindproof.models.hf_common import (NameMap, UnsupportedModelError, _children, _close, _expect_children,
                                         _fail, _lin_map, _linear, _map_gated_mlp, _path, _probe_input,
                                         _significant, _take, _tol, rms_norm_gain)
from blindproof.models.hf_config import _bert_names, _gelu_approx, bert_config, gpt2_config
from blindproof.models.transformer import rope_inv_freq


# --- probes ------------------------------------------------------------------------------------------

@torch.no_grad()
def embedding_scale(emb: nn.Module, path: str) -> float:
    """The constant the embedding multiplies its table rows by (1.0 for a plain nn.Embedding)."""
    w = getattr(emb, "weight", None)
    if not isinstance(emb, nn.Embedding) or not isinstance(w, torch.Tensor):
        _fail(path, f"expected a token embedding, got {type(emb).__name__}")
    ids = torch.arange(min(w.shape[0], 16))
    out, rows = emb(ids).double(), w[ids].double()
    scale = float(out.flatten() @ rows.flatten() / max(float(rows.flatten() @ rows.flatten()), 1e-300))
    if not _close(out, rows * scale, _tol(w.dtype)):
        _fail(path, f"{type(emb).__name__} output is not its table times one constant")
    buf = getattr(emb, "embed_scale", None)  # Gemma keeps the exact constant as a buffer
    if isinstance(buf, torch.Tensor) and buf.numel() == 1:
        return float(buf.to(w.dtype))
    return 1.0 if abs(scale - 1.0) <= _tol(w.dtype) else scale


# RoPE scalings whose frequencies are fixed at construction (no dependence on the sequence length): their
# inverse frequencies are read from the rotary module itself
_STATIC_SCALINGS = ("linear", "yarn")


_LAYER_TYPES = ("full_attention", "sliding_attention")


def _rope_per_layer_type(rot: nn.Module | None, c: Mapping[str, Any], head_dim: int, path: str
                         ) -> tuple[float, tuple[float, ...], tuple[int, ...], tuple[float, ...] | None]:
    """Gemma 3: RoPE parameters per layer type. (theta, full-attention frequencies, sliding layer indices,
    sliding frequencies), the frequencies read from the rotary module's per-type buffers."""
    params = c["rope_parameters"]
    types = list(c.get("layer_types") or [])
    out = {}
    for lt in params:
        rtype = (params[lt] or {}).get("rope_type", "default")
        if rtype not in ("default", *_STATIC_SCALINGS):
            _fail(path, f"{lt}: RoPE scaling {rtype!r} not implemented")
        inv = getattr(rot, f"{lt}_inv_freq", None)
        if not isinstance(inv, torch.Tensor) or inv.dim() != 1 or inv.numel() != head_dim // 2:
            _fail(path, f"{lt}: no inverse frequencies of length {head_dim // 2} on the rotary module")
        if float(getattr(rot, f"{lt}_attention_scaling", 1.0)) != 1.0:
            _fail(path, f"{lt}: attention_scaling != 1 (scaled cos/sin) not implemented")
        out[lt] = tuple(float(f) for f in inv.double())
    if "full_attention" not in out or any(t not in out for t in types):
        _fail(path, f"layer types {sorted(set(types))} without RoPE parameters {sorted(out)}")
    sliding = tuple(i for i, t in enumerate(types) if t == "sliding_attention")
    theta = float(params["full_attention"].get("rope_theta", 10000.0))
    return theta, out["full_attention"], sliding, out.get("sliding_attention") if sliding else None


def _rope_from_module(rot: nn.Module | None, c: Mapping[str, Any], head_dim: int, path: str
                      ) -> tuple[float, tuple[float, float, float, int] | None, tuple[float, ...] | None]:
    """(theta, llama3 scaling, explicit inverse frequencies) whose frequencies equal the rotary module's."""
    params = c.get("rope_parameters") or c.get("rope_scaling") or {}
    if params and not any(k in params for k in ("rope_theta", "rope_type", "type")):
        _fail(path, f"per-layer RoPE parameters {sorted(params)} not implemented")
    rtype = params.get("rope_type", params.get("type", "default")) or "default"
    theta = float(params.get("rope_theta", c.get("rope_theta", 10000.0)) or 10000.0)
    llama3 = freqs = None
    if rtype == "llama3":
        llama3 = (float(params["factor"]), float(params["low_freq_factor"]), float(params["high_freq_factor"]),
                  int(params["original_max_position_embeddings"]))
    elif rtype in _STATIC_SCALINGS:
        inv = getattr(rot, "inv_freq", None)
        if not isinstance(inv, torch.Tensor) or inv.dim() != 1 or inv.numel() != head_dim // 2:
            _fail(path, f"RoPE scaling {rtype!r}: no inverse frequencies of length {head_dim // 2} on the rotary module")
        freqs = tuple(float(f) for f in inv.double())
    elif rtype != "default":
        _fail(path, f"RoPE scaling {rtype!r} not implemented (plain RoPE, Llama 3 'llama3' scaling and the static "
                    f"scalings {list(_STATIC_SCALINGS)} read from the rotary module; not dynamic or longrope, "
                    "whose frequencies depend on the sequence length)")
    if float(params.get("partial_rotary_factor", c.get("partial_rotary_factor", 1.0)) or 1.0) != 1.0:
        _fail(path, "partial rotary embeddings (partial_rotary_factor != 1)")
    if rot is not None:
        inv = getattr(rot, "inv_freq", None)
        if isinstance(inv, torch.Tensor):
            ours = rope_inv_freq(head_dim, theta, llama3, freqs)
            if inv.shape != ours.shape or not _close(inv.double(), ours, 1e-5):
                _fail(path, f"{type(rot).__name__}: inverse frequencies (length {inv.numel()}) match no supported "
                            f"RoPE for head_dim {head_dim}, theta {theta}, scaling {rtype!r}")
        scaling = getattr(rot, "attention_scaling", 1.0)
        if float(scaling) != 1.0:
            _fail(path, f"{type(rot).__name__}: attention_scaling {scaling} (scaled cos/sin) not implemented")
    return theta, llama3, freqs


# --- bases ------------------------------------------------------------------------------------------

def _gain_map(m: dict, ours: str, theirs: str, gain: torch.Tensor, is_plus_one: bool) -> None:
    if is_plus_one:
        m[f"{ours}.weight"] = _take(f"{theirs}.weight", lambda w: 1.0 + w)
    else:
        m[f"{ours}.weight"] = _take(f"{theirs}.weight")


def _one_flag(values: list[bool], path: str, what: str) -> bool:
    if len(set(values)) > 1:
        _fail(path, f"{what} differ between layers")
    return values[0]


def _map_qk_norms(ak: dict, ap: str, ours_prefix: str, m: NameMap, hd: int, widths: tuple[int, int]
                  ) -> list[tuple[bool, float, str]]:
    """q and k RMSNorms over each head (Qwen3, Gemma 3) or over the whole projection (OLMo-2; ``widths`` are
    the q and k projection widths): [(is 1 + w, eps, "head" or "proj")] of each (empty without them)."""
    has = [n in ak for n in ("q_norm", "k_norm")]
    if not any(has):
        return []
    if not all(has):
        _fail(_path(ap, "q_norm" if has[0] else "k_norm"), "a q or k norm without its partner")
    out = []
    for name, width in zip(("q_norm", "k_norm"), widths):
        gain, eps = rms_norm_gain(ak[name], _path(ap, name))
        if gain.numel() not in (hd, width):
            _fail(_path(ap, name), f"width {gain.numel()} is neither the head width {hd} nor the projection's {width}")
        po = not torch.equal(gain, ak[name].weight.detach())
        _gain_map(m, f"{ours_prefix}.{name}", _path(ap, name), gain, po)
        out.append((po, eps, "head" if gain.numel() == hd else "proj"))
    if len({o[2] for o in out}) > 1:
        _fail(_path(ap, "k_norm"), "the q and k norms span different parts (one head vs the projection)")
    return out


def _map_qkv_attention(attn: nn.Module, ap: str, ours_prefix: str, m: NameMap, n_heads: int, d: int,
                       c: Mapping[str, Any]) -> tuple[int, int, bool, bool, list[tuple[bool, float, str]]]:
    """Attention with q/k/v projections (or Phi-3's fused qkv_proj) and o_proj: (head_dim, kv heads,
    q/k/v biases, o bias, the q/k norms' conventions)."""
    ak = _expect_children(attn, ap, {"q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj", "rotary_emb", "q_norm",
                                     "k_norm"}, "attention")
    hd = int(getattr(attn, "head_dim", None) or c.get("head_dim") or d // n_heads)
    o = _linear(ak.get("o_proj"), _path(ap, "o_proj"))
    if o.in_features != n_heads * hd:
        _fail(_path(ap, "o_proj"), f"input width {o.in_features} != {n_heads} heads x head_dim {hd}")
    if "qkv_proj" in ak:  # Phi-3: rows [q | k | v]
        fused = _linear(ak["qkv_proj"], _path(ap, "qkv_proj"))
        kvh = (fused.out_features - n_heads * hd) // (2 * hd)
        if fused.out_features != (n_heads + 2 * kvh) * hd:
            _fail(_path(ap, "qkv_proj"), f"output width {fused.out_features} is not (heads + 2 kv heads) x {hd}")
        q_end, k_end = n_heads * hd, (n_heads + kvh) * hd
        for ours, rows in (("wq", slice(0, q_end)), ("wk", slice(q_end, k_end)),
                           ("wv", slice(k_end, fused.out_features))):
            _lin_map(m, f"{ours_prefix}.{ours}", _path(ap, "qkv_proj"), fused, rows)
        qb = fused.bias is not None
    else:
        for need in ("q_proj", "k_proj", "v_proj"):
            if need not in ak:
                _fail(_path(ap, need), "missing (attention needs q/k/v projections or a fused qkv_proj)")
        q, k, v = (_linear(ak[n], _path(ap, n)) for n in ("q_proj", "k_proj", "v_proj"))
        if q.out_features != n_heads * hd:
            _fail(_path(ap, "q_proj"), f"output width {q.out_features} != {n_heads} heads x head_dim {hd}")
        kvh = k.out_features // hd
        flags = {q.bias is not None, k.bias is not None, v.bias is not None}
        if len(flags) > 1:
            _fail(ap, "q/k/v projections differ in having a bias")
        for ours, theirs, lin in (("wq", "q_proj", q), ("wk", "k_proj", k), ("wv", "v_proj", v)):
            _lin_map(m, f"{ours_prefix}.{ours}", _path(ap, theirs), lin)
        qb = q.bias is not None
    _lin_map(m, f"{ours_prefix}.wo", _path(ap, "o_proj"), o)
    return hd, kvh, qb, o.bias is not None, _map_qk_norms(ak, ap, ours_prefix, m, hd, (n_heads * hd, kvh * hd))


# Gemma 2's extra norms: with them, post_attention_layernorm normalises the attention output
_SANDWICH = ("pre_feedforward_layernorm", "post_feedforward_layernorm")


def map_decoder(base: nn.Module, prefix: str, c: Mapping[str, Any]) -> tuple[dict, NameMap, str]:
    """A llama-family decoder base: config fields, name map and the embedding key."""
    kids = _expect_children(base, prefix, {"embed_tokens", "layers", "norm", "rotary_emb"}, "decoder base")
    for need in ("embed_tokens", "layers", "norm"):
        if need not in kids:
            _fail(_path(prefix, need), "missing (a decoder base needs embed_tokens, layers and norm)")
    emb_path = _path(prefix, "embed_tokens")
    scale = embedding_scale(kids["embed_tokens"], emb_path)
    vocab, d = kids["embed_tokens"].weight.shape
    layers = kids["layers"]
    n_heads = int(c["num_attention_heads"])
    m: NameMap = {}
    qkv_bias, o_bias, mlp_bias, acts, plus_one, eps_all, sandwich, moe, ffs, qk_norm, pre_norm = (
        [] for _ in range(11))
    head_dim = kv_heads = None
    scale_attn = softcaps = None
    for i, layer in enumerate(layers):
        lp = _path(prefix, f"layers.{i}")
        lk = _expect_children(layer, lp, {"self_attn", "mlp", "input_layernorm", "post_attention_layernorm",
                                          *_SANDWICH}, "decoder layer")
        # OLMo-2: no pre-sublayer norms, only norms on the sublayers' outputs
        post_only = "input_layernorm" not in lk and set(lk) == {"self_attn", "mlp", "post_attention_layernorm",
                                                                "post_feedforward_layernorm"}
        for need in ("self_attn", "mlp", "post_attention_layernorm") + (() if post_only else ("input_layernorm",)):
            if need not in lk:
                _fail(_path(lp, need), "missing from the decoder layer")
        has = [n in lk for n in _SANDWICH]
        if any(has) and not all(has) and not post_only:  # a lone pre- or post-feedforward norm has no place
            _fail(_path(lp, _SANDWICH[has.index(True)]), "a sandwich norm without its partner "
                  f"(expected both of {list(_SANDWICH)})")
        sandwich.append(all(has) or post_only)
        pre_norm.append(not post_only)
        attn, ap = lk["self_attn"], _path(lp, "self_attn")
        t = f"blocks.{i}"
        if "kv_a_proj_with_mqa" in _significant(attn):  # multi-head latent attention (DeepSeek-V2/V3)
            from blindproof.models.hf_mla import map_mla  # noqa: PLC0415 - its own module, needs these helpers

            hd, mla_eps = map_mla(attn, ap, f"{t}.attn", m, n_heads)
            kvh, qb, ob = n_heads, False, False
            eps_all.append(mla_eps)
            qk_norm.append(False)
        else:
            hd, kvh, qb, ob, qkn = _map_qkv_attention(attn, ap, f"{t}.attn", m, n_heads, d, c)
            qk_norm.append(qkn[0][2] if qkn else False)  # False, "head" or "proj"
            for po, e, _ in qkn:  # the same conventions as the stream's norms
                plus_one.append(po)
                eps_all.append(e)
        qkv_bias.append(qb)
        o_bias.append(ob)
        s = getattr(attn, "scaling", None)
        if getattr(attn, "is_causal", True) is False:
            _fail(ap, "bidirectional attention in a decoder (is_causal False) not implemented")
        cap = getattr(attn, "attn_logit_softcapping", c.get("attn_logit_softcapping"))
        if head_dim is None:
            head_dim, kv_heads, scale_attn, softcaps = hd, kvh, s, cap
        elif (hd, kvh, s, cap) != (head_dim, kv_heads, scale_attn, softcaps):
            _fail(ap, "head_dim, kv heads, attention scaling or soft-capping differ between layers")

        mlp, mp = lk["mlp"], _path(lp, "mlp")
        if "experts" in _significant(mlp):  # a mixture of experts (Mixtral-style)
            from blindproof.models.hf_moe import map_moe  # noqa: PLC0415 - its own module, needs these helpers

            ff, act_name, experts = map_moe(mlp, mp, f"{t}.mlp", m)
            bias = False
        else:
            ff, act_name, bias = _map_gated_mlp(mlp, mp, f"{t}.mlp", m)
            experts = (0, 0, "softmax", 0, (1, 1), True, False)
        acts.append(act_name)
        mlp_bias.append(bias)
        moe.append(experts)
        ffs.append(ff)
        norms = ((("attn_norm", "input_layernorm"), ("attn_post_norm", "post_attention_layernorm"),
                  ("mlp_norm", "pre_feedforward_layernorm"), ("mlp_post_norm", "post_feedforward_layernorm"))
                 if sandwich[-1] else (("attn_norm", "input_layernorm"), ("mlp_norm", "post_attention_layernorm")))
        if post_only:
            norms = (("attn_post_norm", "post_attention_layernorm"), ("mlp_post_norm", "post_feedforward_layernorm"))
        for ours, theirs in norms:
            gain, eps = rms_norm_gain(lk[theirs], _path(lp, theirs))
            po = not torch.equal(gain, lk[theirs].weight.detach())
            plus_one.append(po)
            eps_all.append(eps)
            _gain_map(m, f"{t}.{ours}", _path(lp, theirs), gain, po)
    gain, eps = rms_norm_gain(kids["norm"], _path(prefix, "norm"))
    po = not torch.equal(gain, kids["norm"].weight.detach())
    plus_one.append(po)
    eps_all.append(eps)
    _gain_map(m, "final_norm", _path(prefix, "norm"), gain, po)
    if len(layers) == 0:
        _fail(_path(prefix, "layers"), "no layers")
    _one_flag(plus_one, prefix, "norm conventions (w or 1 + w)")
    sandwiched = _one_flag(sandwich, prefix, "sandwich norms (pre/post_feedforward_layernorm)")
    qk_normed = _one_flag(qk_norm, prefix, "q/k norms")
    pre_normed = _one_flag(pre_norm, prefix, "pre-sublayer norms")
    # dense MLPs first, then one mixture-of-experts layout (DeepSeek-V3's first_k_dense_replace), each of one width
    dense = [j for j, e in enumerate(moe) if e[0] == 0]
    if dense and dense[-1] != len(dense) - 1:
        _fail(_path(prefix, f"layers.{dense[-1]}.mlp"), "a dense MLP after a mixture-of-experts layer (only the first "
                                                       "layers may be dense)")
    n_dense = len(dense) if len(dense) < len(moe) else 0
    n_experts, top_k, router, shared_ff, groups, renorm, shared_gated = _one_flag(
        moe[n_dense:], prefix, "mixture-of-experts layouts (experts, top-k, router, shared experts, groups)")
    d_ff = _one_flag(ffs[n_dense:], _path(prefix, "layers"), "MLP widths")
    dense_ff = _one_flag(ffs[:n_dense], _path(prefix, "layers"), "dense MLP widths") if n_dense else 0
    eps = _one_flag(eps_all, prefix, "norm epsilons")
    act = _one_flag(acts, prefix, "MLP activations")
    mla = head_dim if isinstance(head_dim, tuple) else None  # latent attention: its shape, not a head width
    rope_width = mla[3] if mla else head_dim
    params = c.get("rope_parameters") or {}
    sliding, freqs_sliding = (), None
    if params and set(params) <= set(_LAYER_TYPES) and all(isinstance(v, Mapping) for v in params.values()):
        theta, freqs, sliding, freqs_sliding = _rope_per_layer_type(kids.get("rotary_emb"), c, rope_width,
                                                                    _path(prefix, "rotary_emb"))
        llama3 = None
    else:
        theta, llama3, freqs = _rope_from_module(kids.get("rotary_emb"), c, rope_width, _path(prefix, "rotary_emb"))
    max_seq = int(c["max_position_embeddings"])
    types = c.get("layer_types")
    window = c.get("sliding_window")
    windowed = any(t == "sliding_attention" for t in types) if types else (
        window is not None and c.get("use_sliding_window", True))
    if windowed and window is not None:
        # A query sees keys less than `window` positions back; up to `window` positions that is all
        # of them, so capping max_seq there makes plain causal attention exact.
        max_seq = min(max_seq, int(window))
    if int(c.get("pretraining_tp", 1) or 1) != 1:
        _fail(prefix, "pretraining_tp > 1")
    emb_key = f"{emb_path}.weight"
    m["embed.weight"] = _take(emb_key, (lambda w: w * scale) if scale != 1.0 else (lambda w: w))
    qb, ob, mb = (_one_flag(x, prefix, f"{n} biases") for x, n in ((qkv_bias, "q/k/v"), (o_bias, "o_proj"),
                                                                      (mlp_bias, "MLP")))
    default_scale = 1.0 / math.sqrt(mla[2] + mla[3] if mla else head_dim)
    fields = dict(
        vocab_size=int(vocab), d_model=int(d), n_layers=len(layers), n_heads=n_heads, d_ff=int(d_ff),
        n_kv_heads=int(kv_heads), max_seq=max_seq, norm="rms", norm_position="pre", mlp="swiglu",
        position="rope", bias=qb and ob and mb, causal=True, rope_theta=theta, norm_eps=eps,
        attn_head_dim=None if mla or head_dim * n_heads == d else head_dim,
        # one flag when all agree (the description Llama/Mistral always had), else per part (Qwen2: q/k/v only)
        qkv_bias=None if qb == ob == mb else qb, o_bias=None if qb == ob == mb else ob,
        mlp_bias=None if qb == ob == mb else mb,
        glu_act="silu" if act == "silu" else "gelu", gelu_approx="tanh" if act == "gelu_tanh" else "none",
        attn_scale=None if scale_attn is None or abs(scale_attn - default_scale) <= 1e-12 * default_scale
        else float(scale_attn),
        rope_llama3=llama3, rope_freqs=freqs, embed_scale=scale, sandwich_norm=sandwiched,
        attn_softcap=float(softcaps) if softcaps else None, n_experts=n_experts, experts_top_k=top_k,
        router=router, shared_d_ff=shared_ff, mla=mla, dense_layers=n_dense, dense_d_ff=dense_ff,
        expert_groups=groups, router_renorm=renorm, shared_gated=shared_gated, qk_norm=bool(qk_normed),
        qk_norm_proj=qk_normed == "proj", pre_norms=pre_normed, sliding_layers=sliding, rope_freqs_sliding=freqs_sliding)
    return fields, m, emb_key


def map_gpt2(base: nn.Module, prefix: str, c: Mapping[str, Any]) -> tuple[dict, NameMap, str]:

    _expect_children(base, prefix, {"wte", "wpe", "h", "ln_f"}, "GPT-2 base")
    d = base.wte.weight.shape[1]
    p = (lambda s: _path(prefix, s))
    m: NameMap = {"embed.weight": _take(p("wte.weight")), "pos_embed.weight": _take(p("wpe.weight")),
                  "final_norm.weight": _take(p("ln_f.weight")), "final_norm.bias": _take(p("ln_f.bias"))}
    for i, blk in enumerate(base.h):
        o, t = f"blocks.{i}", p(f"h.{i}")
        _expect_children(blk, t, {"ln_1", "attn", "ln_2", "mlp"}, "GPT-2 block")
        for j, name in enumerate(("wq", "wk", "wv")):
            m[f"{o}.attn.{name}.weight"] = _take(f"{t}.attn.c_attn.weight", lambda w, j=j: w[:, j * d:(j + 1) * d].T)
            m[f"{o}.attn.{name}.bias"] = _take(f"{t}.attn.c_attn.bias", lambda b, j=j: b[j * d:(j + 1) * d])
        for ours, theirs in (("attn.wo", "attn.c_proj"), ("mlp.up", "mlp.c_fc"), ("mlp.down", "mlp.c_proj")):
            m[f"{o}.{ours}.weight"] = _take(f"{t}.{theirs}.weight", lambda w: w.T)
            m[f"{o}.{ours}.bias"] = _take(f"{t}.{theirs}.bias")
        for ours, theirs in (("attn_norm", "ln_1"), ("mlp_norm", "ln_2")):
            m[f"{o}.{ours}.weight"] = _take(f"{t}.{theirs}.weight")
            m[f"{o}.{ours}.bias"] = _take(f"{t}.{theirs}.bias")
    fields = gpt2_config(c).to_dict()
    fields.pop("tie_embeddings")  # decided by the head
    return fields, m, p("wte.weight")


def map_bert_like(base: nn.Module, prefix: str, c: Mapping[str, Any]) -> tuple[dict, NameMap, str]:
    """BERT or RoBERTa (``embeddings`` + ``encoder.layer``). RoBERTa's positions start at padding_idx + 1."""

    _expect_children(base, prefix, {"embeddings", "encoder", "pooler"}, "encoder base")
    emb = base.embeddings
    offset = 0
    pad = getattr(emb, "padding_idx", None)
    if pad is not None:  # RoBERTa: position ids padding_idx + 1, padding_idx + 2, ... (inputs without padding)
        offset = int(pad) + 1
    cfg = bert_config(c)
    fields = cfg.to_dict()
    fields["max_seq"] = cfg.max_seq - offset
    names = _bert_names(cfg)
    p = (lambda s: _path(prefix, s))
    m: NameMap = {}
    for ours, (fn, keys) in names.items():
        key = p(keys[0])
        if ours == "pos_embed.weight":
            m[ours] = _take(key, lambda w, o=offset: w[o:])
        else:
            m[ours] = _take(key)
    fields["pad_token"] = pad
    return fields, m, p("embeddings.word_embeddings.weight")


def map_distilbert(base: nn.Module, prefix: str, c: Mapping[str, Any]) -> tuple[dict, NameMap, str]:

    _expect_children(base, prefix, {"embeddings", "transformer"}, "DistilBERT base")
    p = (lambda s: _path(prefix, s))
    ln_eps = float(base.embeddings.LayerNorm.eps)
    m: NameMap = {"embed.weight": _take(p("embeddings.word_embeddings.weight")),
                  "pos_embed.weight": _take(p("embeddings.position_embeddings.weight")),
                  "embed_norm.weight": _take(p("embeddings.LayerNorm.weight")),
                  "embed_norm.bias": _take(p("embeddings.LayerNorm.bias"))}
    for i, blk in enumerate(base.transformer.layer):
        o, t = f"blocks.{i}", p(f"transformer.layer.{i}")
        _expect_children(blk, t, {"attention", "sa_layer_norm", "ffn", "output_layer_norm"}, "DistilBERT block")
        for ours, theirs in (("attn.wq", "attention.q_lin"), ("attn.wk", "attention.k_lin"),
                             ("attn.wv", "attention.v_lin"), ("attn.wo", "attention.out_lin"),
                             ("mlp.up", "ffn.lin1"), ("mlp.down", "ffn.lin2"),
                             ("attn_norm", "sa_layer_norm"), ("mlp_norm", "output_layer_norm")):
            m[f"{o}.{ours}.weight"] = _take(f"{t}.{theirs}.weight")
            m[f"{o}.{ours}.bias"] = _take(f"{t}.{theirs}.bias")
        for norm_name in ("sa_layer_norm", "output_layer_norm"):
            if float(getattr(blk, norm_name).eps) != ln_eps:
                _fail(f"{t}.{norm_name}", "LayerNorm epsilon differs from the embedding norm's")
    fields = dict(vocab_size=c["vocab_size"], d_model=c["dim"], n_layers=c["n_layers"], n_heads=c["n_heads"],
                  d_ff=c["hidden_dim"], max_seq=c["max_position_embeddings"], norm="layer", norm_position="post",
                  mlp="gelu", position="learned", bias=True, causal=False, norm_eps=ln_eps, embed_norm=True,
                  output="mean_pool", gelu_approx=_gelu_approx(c["activation"]))
    return fields, m, p("embeddings.word_embeddings.weight")


# --- encoder classification heads ----------------------------------------------------------------

def _is_tanh(act: Any) -> bool:
    x = torch.linspace(-4.0, 4.0, 81, dtype=torch.float64)
    try:
        return callable(act) and _close(act(x), torch.tanh(x), 1e-9)
    except Exception:  # noqa: BLE001 - anything that fails on a probe is not tanh
        return False


@torch.no_grad()
def _runs_as(head: nn.Module, path: str, pool: nn.Linear, out: nn.Linear) -> None:
    """Check that ``head(features)`` equals ``out(tanh(pool(features[:, 0])))`` on a probe."""
    w = pool.weight
    f = _probe_input((2, 3, pool.in_features), w.dtype, 2)
    try:
        y = head(f)
    except Exception as exc:  # noqa: BLE001 - a head we cannot run is a head we cannot map
        _fail(path, f"{type(head).__name__} failed on a probe: {exc}")
    if not _close(y, out(torch.tanh(pool(f[:, 0]))), _tol(w.dtype)):
        _fail(path, f"{type(head).__name__} does not compute out_proj(tanh(dense(x[:, 0])))")


def map_encoder_head(base: nn.Module, prefix: str, heads: dict[str, nn.Module]) -> tuple[dict, NameMap]:
    """An encoder's sequence-classification head: a pooler on the first token, an activation, a label
    linear (config fields and name map). Recognised shapes: BERT (``pooler.dense`` + tanh inside the base,
    then ``classifier``), RoBERTa (``classifier`` holding ``dense`` and ``out_proj``, run on a probe) and
    DistilBERT (``pre_classifier``, ReLU, ``classifier``; the ReLU is in its forward, not its tree)."""
    m: NameMap = {}

    def pair(pool_path: str, pool: Any, out_path: str, out: Any) -> int:
        pool, out = _linear(pool, pool_path), _linear(out, out_path)
        for lin, pth in ((pool, pool_path), (out, out_path)):
            if lin.bias is None:
                _fail(pth, "a classification linear without a bias")
        if pool.in_features != pool.out_features or out.in_features != pool.out_features:
            _fail(pool_path, f"pooler {pool.in_features}->{pool.out_features} does not feed the label head")
        _lin_map(m, "pooler", pool_path, pool)
        _lin_map(m, "lm_head", out_path, out)
        return int(out.out_features)

    if set(heads) == {"pre_classifier", "classifier"}:
        n = pair("pre_classifier", heads["pre_classifier"], "classifier", heads["classifier"])
        return {"output": "first", "n_labels": n, "pool_act": "relu"}, m
    if set(heads) == {"classifier"}:
        cls = heads["classifier"]
        kids = _significant(cls)
        if set(kids) == {"dense", "out_proj"}:
            n = pair("classifier.dense", kids["dense"], "classifier.out_proj", kids["out_proj"])
            _runs_as(cls, "classifier", kids["dense"], kids["out_proj"])
            return {"output": "first", "n_labels": n, "pool_act": "tanh"}, m
        pooler = getattr(base, "pooler", None)
        if isinstance(cls, nn.Linear) and pooler is not None:
            pp = _path(prefix, "pooler")
            pk = _expect_children(pooler, pp, {"dense", "activation"}, "pooler")
            if not _is_tanh(pk.get("activation")):
                _fail(_path(pp, "activation"), "the pooler's activation is not tanh")
            n = pair(_path(pp, "dense"), pk.get("dense"), "classifier", cls)
            return {"output": "first", "n_labels": n, "pool_act": "tanh"}, m
        if isinstance(cls, nn.Linear):
            _fail("classifier", "a label linear with no pooler in front of it (the base has none)")
    name = sorted(heads)[0]
    _fail(name, f"{type(heads[name]).__name__}: a head the Transformer has no place for (encoders: none, or a "
                "pooler + classifier as in *ForSequenceClassification)")
    raise AssertionError


def _is_decoder_base(m: nn.Module) -> bool:
    k = _children(m)
    return "embed_tokens" in k and "layers" in k and "norm" in k


def _is_gpt2_base(m: nn.Module) -> bool:
    k = _children(m)
    return all(n in k for n in ("wte", "wpe", "h", "ln_f"))


def _is_bert_base(m: nn.Module) -> bool:
    k = _children(m)
    return "embeddings" in k and "encoder" in k and hasattr(k["encoder"], "layer")


def _is_distilbert_base(m: nn.Module) -> bool:
    k = _children(m)
    return "embeddings" in k and "transformer" in k and hasattr(k["transformer"], "layer")


BASES = (("decoder", _is_decoder_base, map_decoder), ("gpt2", _is_gpt2_base, map_gpt2),
         ("bert", _is_bert_base, map_bert_like), ("distilbert", _is_distilbert_base, map_distilbert))


def find_base(module: nn.Module) -> tuple[str, str, nn.Module, Any]:
    """(kind, prefix, base module, mapper) of the one recognised base inside ``module`` (itself or a child)."""
    for kind, test, mapper in BASES:
        if test(module):
            return kind, "", module, mapper
    for name, child in _children(module).items():
        for kind, test, mapper in BASES:
            if test(child):
                return kind, name, child, mapper
    raise UnsupportedModelError(
        f"{type(module).__name__}: no transformer base recognised (looked for embed_tokens/layers/norm, "
        f"wte/wpe/h/ln_f, embeddings/encoder.layer or embeddings/transformer.layer in the module and its "
        f"children {sorted(_children(module))})")
