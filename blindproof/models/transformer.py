"""One config-driven transformer covering llama-style, GPT-2-style and BERT-style models.

A single class keeps every later stage (EE transforms, integer model, proofs) on one code path.
The forward is split in three parts so the client/server split is explicit:

    embed(tokens) -> h          (client by default)
    run_blocks(h) -> h          (server)
    head(h)       -> logits / pooled embedding   (client by default)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from blindproof.models.layers import KVCache, RMSNorm, apply_rope, attend, softcap  # noqa: F401 - re-exported
from blindproof.models.mla import MLAShape, MLAttention
from blindproof.models.moe import MoE


@dataclass(frozen=True)
class TransformerConfig:
    """Architecture of a transformer; every field is part of the model's identity."""

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    n_kv_heads: int | None = None  # grouped-query attention; None means n_heads
    max_seq: int = 512
    norm: Literal["rms", "layer"] = "rms"
    norm_position: Literal["pre", "post"] = "pre"
    mlp: Literal["swiglu", "gelu"] = "swiglu"
    position: Literal["rope", "learned"] = "rope"
    bias: bool = False  # biases on attention and MLP linears
    causal: bool = True
    tie_embeddings: bool = False
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    embed_norm: bool = False  # BERT: LayerNorm right after the embedding sum
    type_vocab_size: int = 0  # BERT token-type embeddings (type 0 is always used)
    output: Literal["logits", "mean_pool", "hidden", "last", "first"] = "logits"
    gelu_approx: Literal["none", "tanh"] = "none"
    input_extra: int = 0  # width r of a harmless input expansion before the blocks (0: none; fingerprint/blind.py)
    # Options below are absent from to_dict() while at their defaults, so existing descriptions and
    # digests are unchanged (the same rule as input_extra).
    attn_head_dim: int | None = None  # explicit head width (None: d_model // n_heads)
    qkv_bias: bool | None = None  # biases on q/k/v (None: `bias`)
    o_bias: bool | None = None  # bias on the attention output projection (None: `bias`)
    mlp_bias: bool | None = None  # biases on the MLP linears (None: `bias`)
    glu_act: Literal["silu", "gelu"] = "silu"  # gate activation of the gated MLP (gelu: GeGLU, see gelu_approx)
    attn_scale: float | None = None  # softmax scale of q.k (None: 1/sqrt(head_dim))
    # Llama 3.x RoPE frequency scaling: (factor, low_freq_factor, high_freq_factor, original_max_positions)
    rope_llama3: tuple[float, float, float, int] | None = None
    # explicit RoPE inverse frequencies (rope_dim/2), read from a source model's rotary module for static
    # scalings with no formula here (YaRN, linear); they replace theta's
    rope_freqs: tuple[float, ...] | None = None
    # Gemma 3: the sliding-window layers (by index) use RoPE with their own inverse frequencies
    sliding_layers: tuple[int, ...] = ()
    rope_freqs_sliding: tuple[float, ...] | None = None
    n_labels: int = 0  # output "last"/"first": width of the classification head
    # output "first" (encoder sequence classification): label head on act(pooler(h[:, 0])), both with biases
    pool_act: Literal["tanh", "relu"] | None = None
    # mixture of experts (models/moe.py): every block's MLP is n_experts gated MLPs of width d_ff, top-k routed
    n_experts: int = 0
    experts_top_k: int = 0
    router: Literal["softmax", "sigmoid"] = "softmax"  # sigmoid: DeepSeek-V3 (selection bias, scores renormalised)
    shared_d_ff: int = 0  # width of an always-on shared gated MLP next to the routed experts (DeepSeek)
    expert_groups: tuple[int, int] = (1, 1)  # (n_group, topk_group): DeepSeek-V3's group-limited routing
    router_renorm: bool = True  # False: Qwen2-MoE's top-k softmax weights as they are (norm_topk_prob False)
    shared_gated: bool = False  # Qwen2-MoE: the shared MLP's output scaled by sigmoid(x·w)
    dense_layers: int = 0  # the first blocks keep a dense gated MLP of width dense_d_ff (DeepSeek-V3: 3)
    dense_d_ff: int = 0
    # multi-head latent attention (models/mla.py): (q_lora_rank or 0, kv_lora_rank, nope, rope, v_dim)
    mla: tuple[int, int, int, int, int] | None = None
    # Gemma 2: a second RMSNorm on each sublayer's output before the residual add ("sandwich" norms)
    sandwich_norm: bool = False
    qk_norm: bool = False  # Qwen3, Gemma 3: an RMSNorm over each head's q and k (gain over head_dim) before RoPE
    qk_norm_proj: bool = False  # OLMo-2: the q/k norms span the whole projection (all heads), not one head
    pre_norms: bool = True  # False (OLMo-2): no norm before the sublayers, only the sandwich's output norms
    attn_softcap: float | None = None  # attention scores become c·tanh(s/c) before the mask and softmax
    logit_softcap: float | None = None  # logits become c·tanh(z/c) (output "logits" only)
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        kv = self.n_kv_heads or self.n_heads
        if self.attn_head_dim is None and self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} not divisible by n_heads {self.n_heads}")
        if self.attn_head_dim is not None and (not isinstance(self.attn_head_dim, int) or self.attn_head_dim < 1):
            raise ValueError(f"attn_head_dim must be a positive int, got {self.attn_head_dim!r}")
        if self.n_heads % kv:
            raise ValueError(f"n_heads {self.n_heads} not divisible by n_kv_heads {kv}")
        if self.mla is not None:
            object.__setattr__(self, "mla", tuple(int(v) for v in self.mla))
            MLAShape.of(self.mla)
            if self.kv_heads != self.n_heads or self.position != "rope" or self.has_bias("qkv") or self.has_bias("o"):
                raise ValueError("latent attention has one key/value head per query head, RoPE and no attention biases")
        elif self.position == "rope" and self.head_dim % 2:
            raise ValueError("RoPE needs an even head dimension")
        if not isinstance(self.input_extra, int) or self.input_extra < 0:
            raise ValueError(f"input_extra must be a non-negative int, got {self.input_extra!r}")
        if self.rope_llama3 is not None:
            if len(self.rope_llama3) != 4:
                raise ValueError(f"rope_llama3 must be (factor, low_freq_factor, high_freq_factor, "
                                 f"original_max_positions), got {self.rope_llama3!r}")
            f, lo, hi, orig = self.rope_llama3
            object.__setattr__(self, "rope_llama3", (float(f), float(lo), float(hi), int(orig)))
            if not (float(hi) > float(lo) > 0 and float(f) > 0 and int(orig) > 0):
                raise ValueError(f"rope_llama3 needs factor > 0, high_freq_factor > low_freq_factor > 0, got "
                                 f"{self.rope_llama3!r}")
        if self.rope_freqs is not None:
            freqs = tuple(float(f) for f in self.rope_freqs)
            object.__setattr__(self, "rope_freqs", freqs)
            if self.rope_llama3 is not None or len(freqs) != self.rope_dim // 2 or not all(
                    math.isfinite(f) and f > 0 for f in freqs):
                raise ValueError(f"rope_freqs must be {self.rope_dim // 2} positive floats (and no rope_llama3)")
        object.__setattr__(self, "sliding_layers", tuple(int(i) for i in self.sliding_layers))
        if self.rope_freqs_sliding is not None:
            object.__setattr__(self, "rope_freqs_sliding", tuple(float(f) for f in self.rope_freqs_sliding))
        if bool(self.sliding_layers) != (self.rope_freqs_sliding is not None) or not all(
                0 <= i < self.n_layers for i in self.sliding_layers) or (
                self.rope_freqs_sliding is not None and len(self.rope_freqs_sliding) != self.rope_dim // 2):
            raise ValueError("sliding_layers (layer indices) and rope_freqs_sliding (rope_dim/2 floats) go together")
        if (self.output in ("last", "first")) != (self.n_labels > 0):
            raise ValueError("outputs 'last' and 'first' need n_labels > 0, and n_labels is only for them")
        if (self.output == "first") != (self.pool_act is not None) or self.pool_act not in (None, "tanh", "relu"):
            raise ValueError(f"output 'first' needs pool_act 'tanh' or 'relu' (and only it has one), got "
                             f"{self.pool_act!r}")
        if self.glu_act not in ("silu", "gelu"):
            raise ValueError(f"glu_act must be 'silu' or 'gelu', got {self.glu_act!r}")
        if (self.dense_layers or self.dense_d_ff) and not (
                self.n_experts and 0 < self.dense_layers < self.n_layers and self.dense_d_ff > 0):
            raise ValueError(f"dense_layers (got {self.dense_layers}) must lie in [1, n_layers) with dense_d_ff > 0, "
                             "in a mixture-of-experts model")
        object.__setattr__(self, "expert_groups", tuple(int(v) for v in self.expert_groups))
        n_group, topk_group = self.expert_groups
        if (n_group, topk_group) != (1, 1) and not (
                self.router == "sigmoid" and 1 <= topk_group < n_group and self.n_experts % n_group == 0
                and self.n_experts // n_group >= 2 and topk_group * (self.n_experts // n_group) >= self.experts_top_k):
            raise ValueError(f"expert_groups {self.expert_groups}: needs the sigmoid router, topk_group < n_group "
                             "dividing n_experts into groups of at least 2, and enough experts in the kept groups")
        if (not self.router_renorm and self.router != "softmax") or (self.shared_gated and not self.shared_d_ff):
            raise ValueError("router_renorm False is for the softmax router; shared_gated needs shared_d_ff")
        if (self.router != "softmax" or self.shared_d_ff) and not self.n_experts:
            raise ValueError("router and shared_d_ff are options of a mixture of experts (n_experts > 0)")
        if self.router not in ("softmax", "sigmoid") or self.shared_d_ff < 0:
            raise ValueError(f"router must be 'softmax' or 'sigmoid' and shared_d_ff >= 0, got {self.router!r}, "
                             f"{self.shared_d_ff}")
        if self.n_experts or self.experts_top_k:
            if not 1 <= self.experts_top_k <= self.n_experts or self.mlp != "swiglu" or self.has_bias("mlp"):
                raise ValueError(f"a mixture of experts needs 1 <= experts_top_k <= n_experts and a gated MLP, got "
                                 f"top-{self.experts_top_k} of {self.n_experts}, mlp {self.mlp!r} (no MLP biases)")
        if self.qk_norm and (self.norm != "rms" or self.position != "rope" or self.mla is not None):
            raise ValueError("qk_norm is for RMSNorm models with RoPE attention (not latent attention)")
        if (self.qk_norm_proj and not self.qk_norm) or (not self.pre_norms and not self.sandwich_norm):
            raise ValueError("qk_norm_proj needs qk_norm; pre_norms False needs sandwich_norm (the output norms)")
        if self.sandwich_norm and self.norm_position != "pre":
            raise ValueError("sandwich_norm needs norm_position 'pre'")
        for name in ("attn_softcap", "logit_softcap"):
            c = getattr(self, name)
            if c is not None:
                if not (isinstance(c, (int, float)) and math.isfinite(c) and c > 0):
                    raise ValueError(f"{name} must be a positive float or None, got {c!r}")
                object.__setattr__(self, name, float(c))
        if self.logit_softcap is not None and self.output != "logits":
            raise ValueError("logit_softcap is only for output 'logits'")

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def head_dim(self) -> int:
        return self.attn_head_dim if self.attn_head_dim is not None else self.d_model // self.n_heads

    def has_bias(self, part: str) -> bool:
        """Whether the linears of ``part`` ("qkv", "o" or "mlp") carry biases."""
        own = {"qkv": self.qkv_bias, "o": self.o_bias, "mlp": self.mlp_bias}[part]
        return self.bias if own is None else own

    def layer_is_moe(self, layer: int) -> bool:
        """Whether block ``layer`` has the mixture of experts (else a dense MLP)."""
        return bool(self.n_experts) and layer >= self.dense_layers

    def layer_d_ff(self, layer: int) -> int:
        """Width of block ``layer``'s MLP (per expert for a mixture of experts)."""
        return self.dense_d_ff if self.n_experts and layer < self.dense_layers else self.d_ff

    @property
    def rope_dim(self) -> int:
        """Width RoPE rotates: the head width, or latent attention's decoupled rotary part."""
        return self.mla[3] if self.mla is not None else self.head_dim

    @property
    def softmax_scale(self) -> float:
        if self.attn_scale is not None:
            return self.attn_scale
        return 1.0 / math.sqrt(self.mla[2] + self.mla[3] if self.mla is not None else self.head_dim)

    @property
    def input_width(self) -> int:
        """Width of the stream ``run_blocks`` takes: d_model, plus input_extra with an expansion."""
        return self.d_model + self.input_extra

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("extra")
        if not d["input_extra"]:
            d.pop("input_extra")  # absent when off, so existing descriptions and digests are unchanged
        for k, default in _OPTIONAL_DEFAULTS.items():
            if d[k] == default:
                d.pop(k)
        for k in ("rope_llama3", "mla", "expert_groups", "rope_freqs", "sliding_layers", "rope_freqs_sliding"):
            if d.get(k) is not None:
                d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TransformerConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


_OPTIONAL_DEFAULTS = {"attn_head_dim": None, "qkv_bias": None, "o_bias": None, "mlp_bias": None,
                      "glu_act": "silu", "attn_scale": None, "rope_llama3": None, "n_labels": 0,
                      "sandwich_norm": False, "attn_softcap": None, "logit_softcap": None, "pool_act": None,
                      "n_experts": 0, "experts_top_k": 0, "mla": None, "qk_norm": False,
                      "qk_norm_proj": False, "pre_norms": True,
                      "router": "softmax", "shared_d_ff": 0, "dense_layers": 0, "dense_d_ff": 0,
                      "expert_groups": (1, 1), "router_renorm": True, "shared_gated": False, "rope_freqs": None, "sliding_layers": (), "rope_freqs_sliding": None}


def make_norm(cfg: TransformerConfig) -> nn.Module:
    if cfg.norm == "rms":
        return RMSNorm(cfg.d_model, cfg.norm_eps)
    return nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)


def rope_inv_freq(head_dim: int, theta: float, llama3: tuple[float, float, float, int] | None = None,
                  freqs: tuple[float, ...] | None = None) -> torch.Tensor:
    """Inverse frequencies (head_dim/2,) in float64; ``llama3`` applies Llama 3.x's frequency scaling
    (factor, low_freq_factor, high_freq_factor, original_max_positions), as transformers'
    ``_compute_llama3_parameters`` does."""
    if freqs is not None:  # explicit (``rope_freqs``)
        return torch.tensor(freqs, dtype=torch.float64)
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    if llama3 is None:
        return inv
    factor, low, high, orig = llama3
    low_wavelen, high_wavelen = orig / low, orig / high
    wavelen = 2 * math.pi / inv
    scaled = torch.where(wavelen > low_wavelen, inv / factor, inv)
    smooth = (orig / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return torch.where(medium, smoothed, scaled)


def rope_tables(head_dim: int, max_seq: int, theta: float, dtype: torch.dtype,
                llama3: tuple[float, float, float, int] | None = None,
                freqs: tuple[float, ...] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables of shape (max_seq, head_dim/2), half-split (rotate_half) convention."""
    inv = rope_inv_freq(head_dim, theta, llama3, freqs)
    ang = torch.arange(max_seq, dtype=torch.float64)[:, None] * inv[None, :]
    return ang.cos().to(dtype), ang.sin().to(dtype)


class Attention(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        hd, qkv = cfg.head_dim, cfg.has_bias("qkv")
        self.wq = nn.Linear(cfg.d_model, cfg.n_heads * hd, bias=qkv)
        self.wk = nn.Linear(cfg.d_model, cfg.kv_heads * hd, bias=qkv)
        self.wv = nn.Linear(cfg.d_model, cfg.kv_heads * hd, bias=qkv)
        self.wo = nn.Linear(cfg.n_heads * hd, cfg.d_model, bias=cfg.has_bias("o"))
        if cfg.qk_norm:
            self.q_norm = RMSNorm(cfg.n_heads * hd if cfg.qk_norm_proj else hd, cfg.norm_eps)
            self.k_norm = RMSNorm(cfg.kv_heads * hd if cfg.qk_norm_proj else hd, cfg.norm_eps)

    def forward(self, x: torch.Tensor, start: int, rope: tuple[torch.Tensor, torch.Tensor] | None,
                cache: KVCache | None, layer: int) -> torch.Tensor:
        cfg = self.cfg
        b, t, _ = x.shape
        hd = cfg.head_dim
        q, k = self.wq(x), self.wk(x)
        if cfg.qk_norm_proj:  # OLMo-2: over the whole projection
            q, k = self.q_norm(q), self.k_norm(k)
        q = q.view(b, t, cfg.n_heads, hd).transpose(1, 2)
        k = k.view(b, t, cfg.kv_heads, hd).transpose(1, 2)
        v = self.wv(x).view(b, t, cfg.kv_heads, hd).transpose(1, 2)
        if cfg.qk_norm and not cfg.qk_norm_proj:  # per head
            q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            cos, sin = rope[0][start:start + t].to(x.dtype), rope[1][start:start + t].to(x.dtype)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        return self.wo(attend(cfg, q, k, v, start, cache, layer))


class MLP(nn.Module):
    def __init__(self, cfg: TransformerConfig, d_ff: int | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        bias, ff = cfg.has_bias("mlp"), d_ff or cfg.d_ff
        if cfg.mlp == "swiglu":  # the gated MLP: SwiGLU, or GeGLU with glu_act "gelu"
            self.gate = nn.Linear(cfg.d_model, ff, bias=bias)
        self.up = nn.Linear(cfg.d_model, ff, bias=bias)
        self.down = nn.Linear(ff, cfg.d_model, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.mlp == "swiglu":
            g = self.gate(x)
            act = F.silu(g) if self.cfg.glu_act == "silu" else F.gelu(g, approximate=self.cfg.gelu_approx)
            return self.down(act * self.up(x))
        return self.down(F.gelu(self.up(x), approximate=self.cfg.gelu_approx))


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig, layer: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.attn_norm = make_norm(cfg) if cfg.pre_norms else nn.Identity()
        self.attn = MLAttention(cfg.d_model, cfg.n_heads, MLAShape.of(cfg.mla), cfg.norm_eps) if cfg.mla \
            else Attention(cfg)
        if cfg.mla:
            self.attn.cfg = cfg
        self.mlp_norm = make_norm(cfg) if cfg.pre_norms else nn.Identity()
        self.mlp = MoE(cfg.d_model, cfg.d_ff, cfg.n_experts, cfg.experts_top_k, cfg.glu_act, cfg.gelu_approx,
                       cfg.router, cfg.shared_d_ff, cfg.expert_groups, cfg.router_renorm, cfg.shared_gated) \
            if cfg.layer_is_moe(layer) else MLP(cfg, cfg.layer_d_ff(layer))
        if cfg.sandwich_norm:  # norms on the sublayer outputs, before the residual adds
            self.attn_post_norm = make_norm(cfg)
            self.mlp_post_norm = make_norm(cfg)

    def forward(self, h: torch.Tensor, start: int, rope, cache: KVCache | None, layer: int) -> torch.Tensor:
        if self.cfg.sandwich_norm:
            h = h + self.attn_post_norm(self.attn(self.attn_norm(h), start, rope, cache, layer))
            return h + self.mlp_post_norm(self.mlp(self.mlp_norm(h)))
        if self.cfg.norm_position == "pre":
            h = h + self.attn(self.attn_norm(h), start, rope, cache, layer)
            return h + self.mlp(self.mlp_norm(h))
        h = self.attn_norm(h + self.attn(h, start, rope, cache, layer))
        return self.mlp_norm(h + self.mlp(h))


class Transformer(nn.Module):
    """Decoder (llama, GPT-2) or encoder (BERT) selected by its config."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        if cfg.position == "learned":
            self.pos_embed = nn.Embedding(cfg.max_seq, cfg.d_model)
        if cfg.type_vocab_size:
            self.type_embed = nn.Embedding(cfg.type_vocab_size, cfg.d_model)
        if cfg.embed_norm:
            self.embed_norm = make_norm(cfg)
        if cfg.input_extra:
            # u = (a, b) -> a + b M^T: identity on the first d_model inputs, so zero-padded inputs pass unchanged
            self.expand = nn.Linear(cfg.input_width, cfg.d_model, bias=False)
            with torch.no_grad():
                self.expand.weight.zero_()
                self.expand.weight[:, :cfg.d_model] += torch.eye(cfg.d_model)
                self.expand.weight[:, cfg.d_model:] = torch.randn(cfg.d_model, cfg.input_extra) / math.sqrt(cfg.input_extra)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layers))
        if cfg.norm_position == "pre":
            self.final_norm = make_norm(cfg)
        if cfg.output == "logits":
            self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
            if cfg.tie_embeddings:
                self.lm_head.weight = self.embed.weight
        elif cfg.output == "last":  # sequence classification: a label head read at the last position
            self.lm_head = nn.Linear(cfg.d_model, cfg.n_labels, bias=False)
        elif cfg.output == "first":  # encoder classification: pooler and label head on the first token
            self.pooler = nn.Linear(cfg.d_model, cfg.d_model)
            self.lm_head = nn.Linear(cfg.d_model, cfg.n_labels)
        if cfg.position == "rope":
            cos, sin = rope_tables(cfg.rope_dim, cfg.max_seq, cfg.rope_theta, torch.float64, cfg.rope_llama3,
                                   cfg.rope_freqs)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
            if cfg.sliding_layers:  # Gemma 3's local layers: their own frequencies
                cos, sin = rope_tables(cfg.rope_dim, cfg.max_seq, cfg.rope_theta, torch.float64, None,
                                       cfg.rope_freqs_sliding)
                self.register_buffer("rope_cos_sliding", cos, persistent=False)
                self.register_buffer("rope_sin_sliding", sin, persistent=False)

    # --- the three parts of the split -------------------------------------------------------
    def embed_tokens(self, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Token ids (batch, seq) -> residual stream (batch, seq, d_model)."""
        check_tokens(tokens, self.cfg)
        h = self.embed(tokens)
        t = tokens.shape[-1]
        if start + t > self.cfg.max_seq:
            raise ValueError(f"sequence end {start + t} exceeds max_seq {self.cfg.max_seq}")
        if self.cfg.position == "learned":
            h = h + self.pos_embed.weight[start:start + t]
        if self.cfg.type_vocab_size:
            h = h + self.type_embed.weight[0]
        if self.cfg.embed_norm:
            h = self.embed_norm(h)
        return h

    def run_blocks(self, h: torch.Tensor, start: int = 0, cache: KVCache | None = None) -> torch.Tensor:
        """The server's part: every block on the residual stream (after the input expansion, if any)."""
        width = self.cfg.input_width
        if h.dim() != 3 or h.shape[-1] != width:
            raise ValueError(f"hidden states must have shape (batch, seq, {width}), got {tuple(h.shape)}")
        if start + h.shape[1] > self.cfg.max_seq:
            raise ValueError(f"sequence end {start + h.shape[1]} exceeds max_seq {self.cfg.max_seq}")
        if self.cfg.input_extra:
            h = self.expand(h)
        rope = (self.rope_cos, self.rope_sin) if self.cfg.position == "rope" else None
        for i, blk in enumerate(self.blocks):
            r = (self.rope_cos_sliding, self.rope_sin_sliding) if i in self.cfg.sliding_layers else rope
            h = blk(h, start, r, cache, i)
        return h

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Residual stream -> logits (decoders), mean-pooled embedding (encoders), the final hidden states
        (bare base models) or label logits at the last position (decoder sequence classification, no
        padding) or from the first token through a pooler (encoder sequence classification)."""
        if self.cfg.norm_position == "pre":
            h = self.final_norm(h)
        if self.cfg.output == "logits":
            return softcap(self.lm_head(h), self.cfg.logit_softcap)
        if self.cfg.output == "last":
            return self.lm_head(h[:, -1])
        if self.cfg.output == "first":
            pooled = self.pooler(h[:, 0])
            return self.lm_head(torch.tanh(pooled) if self.cfg.pool_act == "tanh" else torch.relu(pooled))
        if self.cfg.output == "hidden":
            return h
        return h.mean(dim=1)

    def forward(self, tokens: torch.Tensor, start: int = 0, cache: KVCache | None = None) -> torch.Tensor:
        h = self.embed_tokens(tokens, start)
        if self.cfg.input_extra:  # zero on the extra inputs: the expansion then passes h through exactly
            h = torch.cat([h, h.new_zeros(*h.shape[:-1], self.cfg.input_extra)], dim=-1)
        return self.head(self.run_blocks(h, start, cache))

    @torch.no_grad()
    def generate(self, prompt: torch.Tensor, n_new: int, use_cache: bool = True) -> torch.Tensor:
        """Greedy decoding; returns the new tokens (batch, n_new)."""
        if self.cfg.output != "logits" or not self.cfg.causal:
            raise ValueError("generate needs a causal model with a language-model head")
        out = []
        if use_cache:
            cache = KVCache(self.cfg.n_layers)
            logits = self(prompt, 0, cache)
            for _ in range(n_new):
                nxt = logits[:, -1].argmax(-1, keepdim=True)
                out.append(nxt)
                logits = self(nxt, cache.length, cache)
        else:
            seq = prompt
            for _ in range(n_new):
                nxt = self(seq)[:, -1].argmax(-1, keepdim=True)
                out.append(nxt)
                seq = torch.cat([seq, nxt], dim=1)
        return torch.cat(out, dim=1)


def check_tokens(tokens: torch.Tensor, cfg: TransformerConfig) -> None:
    """Clear errors for token tensors of the wrong dtype, rank or range."""
    if not isinstance(tokens, torch.Tensor):
        raise TypeError(f"tokens must be a torch.Tensor, got {type(tokens).__name__}")
    if tokens.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"tokens must be int64 or int32, got {tokens.dtype}")
    if tokens.dim() != 2:
        raise ValueError(f"tokens must have shape (batch, seq), got {tuple(tokens.shape)}")
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= cfg.vocab_size):
        raise ValueError(f"token ids must lie in [0, {cfg.vocab_size}), got range "
                         f"[{int(tokens.min())}, {int(tokens.max())}]")
