"""Small random-init Hugging Face models of every architecture :func:`from_hf` maps, and of some it refuses
(``UNSUPPORTED``; needs ``transformers``).

Built locally from configs, never downloaded; float64, eval mode, with every 1-d parameter (norm gains,
biases) perturbed so that folding and the ``(1 + w)`` norms are exercised. Tests and
``benchmarks/bench_models.py`` share them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

VOCAB = 97
PAD = 0  # token id 0 is the pad token; example inputs draw ids from [3, VOCAB)

_DECODER = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=72, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=64, pad_token_id=PAD, bos_token_id=1, eos_token_id=2,
                rms_norm_eps=1e-6, attn_implementation="sdpa")
_GPT2 = dict(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64, pad_token_id=PAD, bos_token_id=1,
             eos_token_id=2)
_LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 16}


# DeepSeek-V3: MLA (q/kv LoRA ranks, decoupled RoPE), sigmoid routing with a selection bias, one shared
# expert; ungrouped routing (n_group 1); every layer MoE (the "-dense-first" variant: layer 0 dense)
_DEEPSEEK_V3 = {"intermediate_size": 48, "moe_intermediate_size": 12, "num_key_value_heads": 4, "n_routed_experts": 4,
                "num_experts_per_tok": 2, "n_shared_experts": 1, "n_group": 1, "topk_group": 1,
                "first_k_dense_replace": 0, "q_lora_rank": 24, "kv_lora_rank": 16, "qk_rope_head_dim": 8,
                "qk_nope_head_dim": 8, "v_head_dim": 8, "routed_scaling_factor": 2.5,
                "experts_implementation": "eager"}


def _spec() -> dict[str, tuple[str, str, dict]]:
    return {
        "llama": ("LlamaForCausalLM", "LlamaConfig", {}),
        "llama3-rope": ("LlamaForCausalLM", "LlamaConfig", {"rope_parameters": _LLAMA3_ROPE}),
        "llama-head_dim": ("LlamaForCausalLM", "LlamaConfig", {"head_dim": 16}),
        "mistral": ("MistralForCausalLM", "MistralConfig", {"sliding_window": 24}),
        "qwen2": ("Qwen2ForCausalLM", "Qwen2Config", {}),
        "qwen2-tied": ("Qwen2ForCausalLM", "Qwen2Config", {"tie_word_embeddings": True}),
        "phi3": ("Phi3ForCausalLM", "Phi3Config", {}),
        "qwen3": ("Qwen3ForCausalLM", "Qwen3Config", {"head_dim": 16}),
        "gemma": ("GemmaForCausalLM", "GemmaConfig", {"head_dim": 16}),
        # small caps, so the random-init scores and logits reach the curved part of c·tanh(x/c)
        "gemma2": ("Gemma2ForCausalLM", "Gemma2Config", {"head_dim": 16, "query_pre_attn_scalar": 8,
                                                          "sliding_window": 32, "attn_logit_softcapping": 0.05,
                                                          "final_logit_softcapping": 0.5,
                                                          "attn_implementation": "eager"}),
        # local layers (sliding window 32, every other layer here) with their own RoPE base, q/k norms
        "gemma3": ("Gemma3ForCausalLM", "Gemma3TextConfig", {"head_dim": 16, "sliding_window": 32,
                                                             "sliding_window_pattern": 2, "query_pre_attn_scalar": 8}),
        # norms after the sublayers only; q/k norms over the whole projection (not per head)
        "olmo2": ("Olmo2ForCausalLM", "Olmo2Config", {}),
        "mixtral": ("MixtralForCausalLM", "MixtralConfig", {"num_local_experts": 4, "num_experts_per_tok": 2,
                                                            "intermediate_size": 24,
                                                            "experts_implementation": "eager"}),
        "deepseek-v3": ("DeepseekV3ForCausalLM", "DeepseekV3Config", _DEEPSEEK_V3),
        "deepseek-v3-dense-first": ("DeepseekV3ForCausalLM", "DeepseekV3Config",
                                    {**_DEEPSEEK_V3, "first_k_dense_replace": 1}),
        # YaRN RoPE scaling as DeepSeek-V3 ships it (mscale = mscale_all_dim: cos/sin unscaled, the attention
        # scale gets mscale²), frequencies read from the rotary module
        "deepseek-v3-yarn": ("DeepseekV3ForCausalLM", "DeepseekV3Config",
                             {**_DEEPSEEK_V3, "rope_parameters": {
                                 "rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "mscale": 1.0,
                                 "mscale_all_dim": 1.0, "original_max_position_embeddings": 16, "beta_fast": 32,
                                 "beta_slow": 1}}),
        # group-limited routing: 8 experts in 4 groups, the best 2 groups kept, top 2 experts among them
        "deepseek-v3-grouped": ("DeepseekV3ForCausalLM", "DeepseekV3Config",
                                {**_DEEPSEEK_V3, "n_routed_experts": 8, "n_group": 4, "topk_group": 2}),
        # top-2 of a softmax over all experts, not renormalised; a sigmoid-gated shared expert
        "qwen2-moe": ("Qwen2MoeForCausalLM", "Qwen2MoeConfig", {"num_experts": 4, "num_experts_per_tok": 2,
                                                                "moe_intermediate_size": 16,
                                                                "shared_expert_intermediate_size": 24,
                                                                "experts_implementation": "eager"}),
        "gpt2": ("GPT2LMHeadModel", "GPT2Config", {}),
        "llama-base": ("LlamaModel", "LlamaConfig", {}),
        "gpt2-base": ("GPT2Model", "GPT2Config", {}),
        "qwen2-cls": ("Qwen2ForSequenceClassification", "Qwen2Config", {"num_labels": 3}),
        "llama-cls": ("LlamaForSequenceClassification", "LlamaConfig", {"num_labels": 3}),
        "gpt2-cls": ("GPT2ForSequenceClassification", "GPT2Config", {"num_labels": 3}),
        "bert": ("BertModel", "BertConfig", {}),
        "roberta": ("RobertaModel", "RobertaConfig", {}),
        "distilbert": ("DistilBertModel", "DistilBertConfig", {}),
        "bert-cls": ("BertForSequenceClassification", "BertConfig", {"num_labels": 3}),
        "roberta-cls": ("RobertaForSequenceClassification", "RobertaConfig", {"num_labels": 3}),
        "distilbert-cls": ("DistilBertForSequenceClassification", "DistilBertConfig", {"num_labels": 3}),
    }


ARCHITECTURES: tuple[str, ...] = tuple(_spec())

def _unsupported() -> dict[str, tuple[str, str, dict]]:
    """Architectures from_hf refuses (naming the part it cannot map): the support table lists them too."""
    return {
        # Phi-3 128k: LongRoPE, whose frequencies switch with the sequence length
        "phi3-longrope": ("Phi3ForCausalLM", "Phi3Config", {
            "max_position_embeddings": 64, "original_max_position_embeddings": 16,
            "rope_parameters": {"rope_type": "longrope", "rope_theta": 10000.0, "short_factor": [1.0] * 4,
                                "long_factor": [2.0] * 4}}),
    }


UNSUPPORTED: tuple[str, ...] = tuple(_unsupported())


def _config(tf, cfg_cls: str, extra: dict):
    if cfg_cls == "GPT2Config":
        kw = {**_GPT2, **extra}
    elif cfg_cls in ("BertConfig", "RobertaConfig"):
        kw = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                  max_position_embeddings=66 if cfg_cls == "RobertaConfig" else 64, pad_token_id=1 if
                  cfg_cls == "RobertaConfig" else PAD, **extra)
    elif cfg_cls == "DistilBertConfig":
        kw = dict(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=64,
                  pad_token_id=PAD, **extra)
    else:
        kw = {**_DECODER, **extra}
    return getattr(tf, cfg_cls)(**kw)


def build(name: str, seed: int = 0) -> nn.Module:
    """The random-init Hugging Face module of architecture ``name`` (float64, eval)."""
    import transformers as tf

    cls, cfg_cls, extra = {**_spec(), **_unsupported()}[name]
    torch.manual_seed(seed)
    module = getattr(tf, cls)(_config(tf, cfg_cls, extra))
    with torch.no_grad():
        for _, p in module.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
        for name, buf in module.named_buffers():
            if name.endswith("e_score_correction_bias"):  # DeepSeek's selection bias: make it move choices
                buf.add_(0.05 * torch.randn_like(buf))
    return module.double().eval()


def example_ids(batch: int = 2, seq: int = 12, seed: int = 0) -> torch.Tensor:
    """Token ids in [3, VOCAB): no pad (0, or RoBERTa's 1), so classification heads read the last position."""
    return torch.randint(3, VOCAB, (batch, seq), generator=torch.Generator().manual_seed(seed))


def hf_reference(module: nn.Module, ids: torch.Tensor, pooled: bool) -> torch.Tensor:
    """The module's output in the Transformer's convention (logits, label logits, hidden states or their mean)."""
    with torch.no_grad():
        out = module(input_ids=ids)
    if hasattr(out, "logits"):
        return out.logits
    return out.last_hidden_state.mean(dim=1) if pooled else out.last_hidden_state


def float64_internals() -> list[tuple[object, str, Callable]]:
    """(class or module, attribute, replacement) patches that make HF's float32 RMSNorm, RoPE and Gemma 2's
    eager softmax and the MoE routers compute at the input's precision, so a float64 comparison is exact to
    rounding. Default RoPE only (Llama 3 scaling is checked against stock HF at float32 precision)."""
    import importlib

    def rms(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))

    def rms_plus_one(self, x):
        return (1.0 + self.weight) * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

    def rope(self, x, position_ids):
        c = self.config
        dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        inv = 1.0 / (c.rope_parameters["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
        emb = torch.cat([position_ids[..., None].double() * inv] * 2, dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)

    gemma2 = importlib.import_module("transformers.models.gemma2.modeling_gemma2")

    def eager(module, query, key, value, attention_mask, dropout=0.0, scaling=None, softcap=None, **kwargs):
        # Gemma 2's eager attention with the softmax at the input's precision (HF upcasts to float32 only)
        k = gemma2.repeat_kv(key, module.num_key_value_groups)
        v = gemma2.repeat_kv(value, module.num_key_value_groups)
        w = torch.matmul(query, k.transpose(2, 3)) * scaling
        if softcap is not None:
            w = torch.tanh(w / softcap) * softcap
        if attention_mask is not None:
            w = w + attention_mask
        w = torch.softmax(w, dim=-1)
        return torch.matmul(w, v).transpose(1, 2).contiguous(), w

    mixtral = importlib.import_module("transformers.models.mixtral.modeling_mixtral")

    def router(self, hidden_states):  # Mixtral's router with its softmax at the input's precision
        x = hidden_states.reshape(-1, self.hidden_dim)
        logits = torch.nn.functional.linear(x, self.weight)
        top, index = torch.topk(torch.softmax(logits, dim=-1), self.top_k, dim=-1)
        return logits, top / top.sum(dim=-1, keepdim=True), index

    deepseek = importlib.import_module("transformers.models.deepseek_v3.modeling_deepseek_v3")

    def ds_router(self, hidden_states):  # DeepSeek-V3's router at the input's precision
        logits = torch.nn.functional.linear(hidden_states.view(-1, self.hidden_dim), self.weight)
        scores = logits.sigmoid()
        choice = scores + self.e_score_correction_bias.to(scores.dtype)
        g, per = self.num_group, self.num_experts // self.num_group
        group_scores = choice.view(-1, g, per).topk(2, dim=-1)[0].sum(dim=-1)
        keep = torch.zeros_like(group_scores).scatter_(1, torch.topk(group_scores, self.topk_group, dim=-1)[1], 1)
        choice = choice.masked_fill(~keep.bool().repeat_interleave(per, dim=-1), float("-inf"))
        index = torch.topk(choice, self.top_k, dim=-1)[1]
        w = scores.gather(1, index)
        return logits, w / w.sum(-1, keepdim=True) * self.routed_scaling_factor, index

    def ds_rope(self, x, position_ids):
        c = self.config
        dim = c.qk_rope_head_dim
        inv = 1.0 / (c.rope_parameters["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
        if c.rope_parameters.get("rope_type", "default") != "default":  # scaled: the module's own frequencies
            inv = self.inv_freq.double()
        emb = torch.cat([position_ids[..., None].double() * inv] * 2, dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)

    gemma3 = importlib.import_module("transformers.models.gemma3.modeling_gemma3")

    def g3_rope(self, x, position_ids, layer_type):  # per layer type, from the module's own frequencies
        inv = getattr(self, f"{layer_type}_inv_freq").double()
        emb = torch.cat([position_ids[..., None].double() * inv] * 2, dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)

    qmoe = importlib.import_module("transformers.models.qwen2_moe.modeling_qwen2_moe")

    def q_router(self, hidden_states):  # Qwen2-MoE's router with its softmax at the input's precision
        logits = torch.nn.functional.linear(hidden_states.reshape(-1, self.hidden_dim), self.weight)
        top, index = torch.topk(torch.softmax(logits, dim=-1), self.top_k, dim=-1)
        return logits, top / top.sum(dim=-1, keepdim=True) if self.norm_topk_prob else top, index

    patches = [(gemma2, "eager_attention_forward", eager), (mixtral.MixtralTopKRouter, "forward", router),
               (qmoe.Qwen2MoeTopKRouter, "forward", q_router), (qmoe.Qwen2MoeRMSNorm, "forward", rms),
               (qmoe.Qwen2MoeRotaryEmbedding, "forward", rope),
               (gemma3.Gemma3RMSNorm, "forward", rms_plus_one), (gemma3.Gemma3RotaryEmbedding, "forward", g3_rope),
               (deepseek.DeepseekV3TopkRouter, "forward", ds_router), (deepseek.DeepseekV3RMSNorm, "forward", rms),
               (deepseek.DeepseekV3RotaryEmbedding, "forward", ds_rope)]
    for mod, prefix in (("llama", "Llama"), ("mistral", "Mistral"), ("qwen2", "Qwen2"), ("phi3", "Phi3"),
                        ("gemma", "Gemma"), ("gemma2", "Gemma2"), ("mixtral", "Mixtral"), ("qwen3", "Qwen3"),
                        ("olmo2", "Olmo2")):
        m = importlib.import_module(f"transformers.models.{mod}.modeling_{mod}")
        patches.append((getattr(m, f"{prefix}RMSNorm"), "forward",
                        rms_plus_one if prefix.startswith("Gemma") else rms))
        patches.append((getattr(m, f"{prefix}RotaryEmbedding"), "forward", rope))
    return patches
