"""Torch model -> integer program (QuantSpec + integer weights), scales chosen from calibration data.

The model is walked once in float64 on calibration inputs. Each step records the float value of its
output, the integer op it becomes, and the bounds its integer form must respect. Then every free
activation exponent is set from its calibration maximum (int16 with `act_headroom` to spare), lowered
where a consumer's accumulator would pass 2^29 / `acc_headroom`, and every other exponent follows:
accumulators add their operands' exponents, views inherit. Finally the integer program runs on the
calibration data and any value beyond the integer model's bounds (|v| >= 2^29, a rescale quotient
outside its window, ...) fails loudly with `QuantizationError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from blindproof.models.mlp import MLP
from blindproof.models.transformer import Transformer
from blindproof.quant.moe import moe_mlp
from blindproof.quant.onnx_model import OnnxModel
from blindproof.quant.reference import BoundError, Trace, check_weights, run_program
from blindproof.quant.spec import INT16_MAX, SCORE_HI, SCORE_LO, QuantSpec, decode_output, encode_input
from blindproof.quant.builder import QuantizationError, QuantConfig, _Node, _floor_log2, _Builder


# --- architecture walks ------------------------------------------------------------------------------
def _state(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().to(torch.float64).cpu().numpy() for k, v in model.state_dict().items()}


def embed_float(model: Transformer, tokens: np.ndarray) -> np.ndarray:
    """The float64 hidden states the blocks receive for ``tokens`` (a ``blocks``-scope program's input)."""
    dtype = next(model.parameters()).dtype
    try:  # float64 like the rest of the walk; converting back to the model's dtype is exact
        with torch.no_grad():
            return model.double().embed_tokens(torch.as_tensor(np.asarray(tokens), dtype=torch.int64)).numpy()
    finally:
        model.to(dtype)


def _walk_transformer(b: _Builder, model: Transformer, tokens: np.ndarray, scope: str) -> list[_Node]:
    cfg = model.cfg
    sd = _state(model)
    hd = cfg.head_dim
    if scope == "blocks":  # the program starts at the hidden states the blocks receive
        h = b.input_features("h", embed_float(model, tokens))
    else:
        idx = b.input_index("tokens", tokens, cfg.vocab_size)
        tok_table = sd["embed.weight"]
        if cfg.type_vocab_size:  # every token has type 0: fold that row into the token table (exact in float)
            tok_table = tok_table + sd["type_embed.weight"][0]
        h = b.embed(idx, tok_table, "embed.tok", "tokens")
        if cfg.position == "learned":
            h = b.add(h, b.embed(idx, sd["pos_embed.weight"], "embed.pos", "positions"), "embed.sum")

    def norm(x: _Node, prefix: str, name: str) -> _Node:
        return b.norm(x, cfg.norm, cfg.norm_eps, sd[prefix + ".weight"], sd.get(prefix + ".bias"), name)

    def lin(x: _Node, prefix: str, name: str, scale: float = 1.0) -> _Node:
        bias = sd.get(prefix + ".bias")
        return b.linear(x, sd[prefix + ".weight"] * scale, None if bias is None else bias * scale, name)

    def latent_attention(x: _Node, i: int) -> _Node:
        """DeepSeek MLA: the score is q_nope·k_nope + q_rot·k_rot (two qk ops, the rotary key shared)."""
        p, n = f"blocks.{i}.attn.", f"b{i}.attn."
        q_rank, _, _, _, _ = cfg.mla
        se = b.cfg.score_exp

        def latent(src: _Node, a: str, nrm: str) -> _Node:
            return b.norm(b.requant(lin(src, p + a, n + a + ".acc"), n + a), "rms", cfg.norm_eps,
                          sd[p + nrm + ".weight"], None, n + nrm)
        ql = latent(x, "q_a", "q_norm") if q_rank else x
        q_n = b.requant(lin(ql, p + "q_nope", n + "q_nope.acc", cfg.softmax_scale), n + "q_nope")
        q_r = b.requant(lin(ql, p + "q_rot", n + "q_rot.acc", cfg.softmax_scale), n + "q_rot")
        k_r = b.requant(lin(x, p + "k_rot", n + "k_rot.acc"), n + "k_rot")
        c = latent(x, "kv_a", "kv_norm")
        k_n = b.requant(lin(c, p + "k_nope", n + "k_nope.acc"), n + "k_nope")
        v = b.requant(lin(c, p + "wv", n + "v.acc"), n + "v")
        h = cfg.n_heads
        q_nh, k_nh = b.split_heads(q_n, h, n + "q_nope.h"), b.split_heads(k_n, h, n + "k_nope.h")
        q_rh = b.requant(b.rope(b.split_heads(q_r, h, n + "q_rot.h"), n + "q_rope.acc", cfg.rope_theta, cfg.max_seq,
                                cfg.rope_llama3, cfg.rope_freqs), n + "q_rope")
        k_rh = b.requant(b.rope(b.split_heads(k_r, 1, n + "k_rot.h"), n + "k_rope.acc", cfg.rope_theta, cfg.max_seq,
                                cfg.rope_llama3, cfg.rope_freqs), n + "k_rope")
        s1 = b.requant(b.qk(q_nh, k_nh, n + "scores_nope.acc"), n + "scores_nope", SCORE_LO, SCORE_HI, fixed=se)
        s2 = b.requant(b.qk(q_rh, k_rh, n + "scores_rope.acc"), n + "scores_rope", SCORE_LO, SCORE_HI, fixed=se)
        s = b.add_fixed(s1, s2, n + "scores", SCORE_LO, SCORE_HI, se)
        pr = b.softmax(s, cfg.causal, n + "probs")
        o = b.merge_heads(b.pv(pr, b.split_heads(v, h, n + "vh"), n + "mix.acc"), n + "mix.merged")
        return lin(b.requant(o, n + "mix"), p + "wo", n + "out.acc")

    def attention(x: _Node, i: int) -> _Node:
        if cfg.mla:
            return latent_attention(x, i)
        p, n = f"blocks.{i}.attn.", f"b{i}.attn."
        # the softmax scale is folded into wq, or into the q norm's gain when there is one (a norm undoes it)
        q_scale = 1.0 if cfg.qk_norm else cfg.softmax_scale
        q = b.requant(lin(x, p + "wq", n + "q.acc", q_scale), n + "q")
        k = b.requant(lin(x, p + "wk", n + "k.acc"), n + "k")
        if cfg.qk_norm_proj:  # OLMo-2: q/k norms over the whole projection, before the heads split
            q = b.norm(q, "rms", cfg.norm_eps, sd[p + "q_norm.weight"] * cfg.softmax_scale, None, n + "q_norm")
            k = b.norm(k, "rms", cfg.norm_eps, sd[p + "k_norm.weight"], None, n + "k_norm")
        v = b.requant(lin(x, p + "wv", n + "v.acc"), n + "v")
        qh, kh = b.split_heads(q, cfg.n_heads, n + "qh"), b.split_heads(k, cfg.kv_heads, n + "kh")
        vh = b.split_heads(v, cfg.kv_heads, n + "vh")
        if cfg.qk_norm and not cfg.qk_norm_proj:  # Qwen3 / Gemma 3: an RMSNorm over each head's width
            qh = b.norm(qh, "rms", cfg.norm_eps, sd[p + "q_norm.weight"] * cfg.softmax_scale, None, n + "q_norm")
            kh = b.norm(kh, "rms", cfg.norm_eps, sd[p + "k_norm.weight"], None, n + "k_norm")
        if cfg.position == "rope":
            rp = (cfg.rope_theta, cfg.max_seq, cfg.rope_llama3, cfg.rope_freqs)
            if i in cfg.sliding_layers:  # Gemma 3's local layers: their own frequencies, their own tables
                rp = (cfg.rope_theta, cfg.max_seq, None, cfg.rope_freqs_sliding, "rope_sliding")
            qh = b.requant(b.rope(qh, n + "q_rope.acc", *rp), n + "q_rope")
            kh = b.requant(b.rope(kh, n + "k_rope.acc", *rp), n + "k_rope")
        if cfg.attn_softcap is None:
            s = b.requant(b.qk(qh, kh, n + "scores.acc"), n + "scores", SCORE_LO, SCORE_HI, fixed=b.cfg.score_exp)
        else:  # Gemma 2: c·tanh(s/c) by table, its output at the softmax's score exponent
            s = b.softcap(b.qk(qh, kh, n + "scores.acc"), cfg.attn_softcap, n + "scores", b.cfg.score_exp)
        pr = b.softmax(s, cfg.causal, n + "probs")
        o = b.merge_heads(b.pv(pr, vh, n + "mix.acc"), n + "mix.merged")
        return lin(b.requant(o, n + "mix"), p + "wo", n + "out.acc")

    def mlp(x: _Node, i: int) -> _Node:
        p, n = f"blocks.{i}.mlp.", f"b{i}.mlp."
        if cfg.layer_is_moe(i):  # top-k routing proved by the program's own ops, experts dense (quant/moe.py)
            fn = "silu" if cfg.glu_act == "silu" else ("gelu_tanh" if cfg.gelu_approx == "tanh" else "gelu")
            return moe_mlp(b, x, sd, p, n, cfg.d_ff, cfg.experts_top_k, fn, cfg.router, cfg.shared_d_ff,
                           cfg.expert_groups, cfg.router_renorm)
        up = b.requant(lin(x, p + "up", n + "up.acc"), n + "up")
        if cfg.mlp == "swiglu":
            gate = b.requant(lin(x, p + "gate", n + "gate.acc"), n + "gate")
            fn = "silu" if cfg.glu_act == "silu" else ("gelu_tanh" if cfg.gelu_approx == "tanh" else "gelu")
            act = b.requant(b.mul(b.lookup(gate, fn, n + fn), up, n + "prod.acc"), n + "prod")
        else:
            act = b.lookup(up, "gelu_tanh" if cfg.gelu_approx == "tanh" else "gelu", n + "gelu")
        return lin(act, p + "down", n + "down.acc")

    if cfg.embed_norm and scope != "blocks":
        h = norm(h, "embed_norm", "embed.norm")
    for i in range(cfg.n_layers):
        bp = f"blocks.{i}."
        if cfg.sandwich_norm:  # Gemma 2: each sublayer's output normed before the residual add
            pre = (lambda x, which: norm(x, bp + which, f"b{i}.{which}")) if cfg.pre_norms else (lambda x, _: x)
            a = norm(attention(pre(h, "attn_norm"), i), bp + "attn_post_norm", f"b{i}.attn_post_norm")
            h = b.add(h, a, f"b{i}.res1")
            m = norm(mlp(pre(h, "mlp_norm"), i), bp + "mlp_post_norm", f"b{i}.mlp_post_norm")
            h = b.add(h, m, f"b{i}.res2")
        elif cfg.norm_position == "pre":
            h = b.add(h, attention(norm(h, bp + "attn_norm", f"b{i}.attn_norm"), i), f"b{i}.res1")
            h = b.add(h, mlp(norm(h, bp + "mlp_norm", f"b{i}.mlp_norm"), i), f"b{i}.res2")
        else:
            h = norm(b.add(h, attention(h, i), f"b{i}.res1"), bp + "attn_norm", f"b{i}.attn_norm")
            h = norm(b.add(h, mlp(h, i), f"b{i}.res2"), bp + "mlp_norm", f"b{i}.mlp_norm")
    if scope == "blocks":
        return [h]
    if cfg.norm_position == "pre":
        h = norm(h, "final_norm", "final_norm")
    if cfg.output == "logits":
        if cfg.logit_softcap is not None:  # output exponent: the largest keeping c·2^e within int16
            e = _floor_log2(INT16_MAX / cfg.logit_softcap)
            return [b.softcap(b.linear(h, sd["lm_head.weight"], None, "head.acc"), cfg.logit_softcap, "logits", e)]
        return [b.requant(b.linear(h, sd["lm_head.weight"], None, "head.acc"), "logits")]
    if cfg.output == "last":
        # The program has no row-selection op: it computes (and a proof covers) the label logits at every
        # position; the classification is the last row (QuantizedModel.forward returns that row).
        return [b.requant(b.linear(h, sd["lm_head.weight"], None, "head.acc"), "label_logits")]
    if cfg.output == "first":
        # Encoder classification: pooler, tanh (table) or ReLU (a rescale clamped at 0), label head. As for
        # "last", no row selection: every position is computed and proved; the label logits are row 0.
        pooled = b.requant(lin(h, "pooler", "pooler.acc"), "pooler", lo=0 if cfg.pool_act == "relu" else -INT16_MAX)
        if cfg.pool_act == "tanh":
            pooled = b.lookup(pooled, "tanh", "pooler.tanh")
        return [b.requant(lin(pooled, "lm_head", "head.acc"), "cls_logits")]
    if cfg.output == "hidden":
        return [b.requant(h, "hidden")]
    return [b.mean_pool(h, "pooled")]


def _walk_mlp(b: _Builder, model: MLP, x: np.ndarray) -> list[_Node]:
    sd = _state(model)
    h = b.input_features("x", x)
    n = len(model.layers)
    for i in range(n):
        acc = b.linear(h, sd[f"layers.{i}.weight"], sd[f"layers.{i}.bias"], f"l{i}.acc")
        h = b.requant(acc, f"l{i}.relu", lo=0) if i < n - 1 else b.requant(acc, "logits")
    return [h]


# --- public API --------------------------------------------------------------------------------------
@dataclass
class QuantizedModel:
    """An integer program and its integer weights (validated once, at construction), with float
    encode/decode at the edges."""

    spec: QuantSpec
    weights: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        self.weights = {k: np.ascontiguousarray(v, dtype=np.int64) for k, v in self.weights.items()}
        check_weights(self.spec, self.weights)  # once, not on every run

    @property
    def family(self) -> str:
        return self.spec.arch["family"]

    def encode(self, x: torch.Tensor | np.ndarray) -> dict[str, np.ndarray]:
        """Float model input -> integer program input (token ids pass through; features are rounded)."""
        return encode_input(self.spec, x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x)

    def run(self, x: torch.Tensor | np.ndarray, start: int = 0, record: bool = True) -> Trace:
        """Integer forward on a float/token input; the trace holds every tensor and witness."""
        return run_program(self.spec, self.weights, self.encode(x), start=start, record=record,
                           validate_weights=False)

    def decode(self, trace: Trace) -> np.ndarray:
        """The program's first output as float64 (integer * 2^-exp)."""
        name = self.spec.outputs[0]
        return decode_output(self.spec, name, trace.tensors[name])

    def forward(self, x: torch.Tensor | np.ndarray, start: int = 0) -> np.ndarray:
        """Float view of the integer model's output (logits, pooled embedding, hidden states, or the label
        logits of the last (decoder) or first (encoder) position for a classification head, like the float
        model)."""
        y = self.decode(self.run(x, start=start, record=False))
        if self.spec.outputs[0] == "label_logits":
            return y[:, -1]
        if self.spec.outputs[0] == "cls_logits":
            return y[:, 0]
        return y


def _calibration_array(model: "torch.nn.Module | OnnxModel", calib: torch.Tensor | np.ndarray) -> np.ndarray:
    a = calib.detach().cpu().numpy() if isinstance(calib, torch.Tensor) else np.asarray(calib)
    if a.size == 0:
        raise QuantizationError("calibration data is empty")
    if isinstance(model, Transformer):
        if a.ndim != 2 or a.dtype.kind not in "iu":
            raise QuantizationError(f"calibration for a transformer must be token ids (batch, seq), got {a.dtype} {a.shape}")
    elif isinstance(model, MLP):
        if a.ndim != 2 or a.dtype.kind != "f":
            raise QuantizationError(f"calibration for an MLP must be float features (batch, dim), got {a.dtype} {a.shape}")
    elif isinstance(model, OnnxModel):
        if a.dtype.kind != "f":
            raise QuantizationError(f"calibration for an ONNX model must be float features (batch, ...), got {a.dtype}")
        model.check_input(a)
    elif a.ndim < 2 or a.dtype.kind not in "fiu":
        raise QuantizationError(f"calibration for a torch module must be float features (batch, ...) or token ids "
                                f"(batch, seq), got {a.dtype} {a.shape}")
    return a


SCOPES = ("model", "blocks")


def _check_scope(model: "torch.nn.Module | OnnxModel", scope: str) -> None:
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if scope == "blocks" and not isinstance(model, Transformer):
        raise QuantizationError("scope 'blocks' needs a Transformer")


def build_program(model: "torch.nn.Module | OnnxModel", calib: torch.Tensor | np.ndarray,
                  config: QuantConfig | None = None, scope: str = "model") -> tuple[QuantizedModel, dict[str, np.ndarray]]:
    """Quantize without the final bound check; also returns the float calibration value of every tensor.
    ``scope="blocks"`` covers only a transformer's blocks: hidden states in, hidden states out (what a
    server runs in a split deployment), no embedding, final norm or head."""
    cfg = config or QuantConfig()
    _check_scope(model, scope)
    a = _calibration_array(model, calib)
    b = _Builder(cfg)
    if isinstance(model, Transformer):
        outs = _walk_transformer(b, model, a.astype(np.int64), scope)
        arch = {"family": "transformer", "config": model.cfg.to_dict()}
        if scope == "blocks":  # absent for whole models, so their descriptions and digests are unchanged
            arch["scope"] = "blocks"
    elif isinstance(model, MLP):
        outs = _walk_mlp(b, model, a.astype(np.float64))
        arch = {"family": "mlp", "dims": list(model.dims)}
    elif isinstance(model, OnnxModel):
        from blindproof.quant.onnx_graph import walk_onnx
        outs, arch = walk_onnx(b, model, a)
    elif isinstance(model, torch.nn.Module):  # nn.Sequential and other torch.fx-traceable graphs
        from blindproof.quant.torch_graph import walk_torch_module
        outs, arch = walk_torch_module(b, model.eval(), a)
    else:
        raise TypeError(f"cannot quantize {type(model).__name__}: expected a torch module or an ONNX model")
    spec, weights = b.emit(arch, outs)
    return QuantizedModel(spec, weights), {n: node.value for n, node in b.nodes.items()}


def quantize(model: "torch.nn.Module | OnnxModel", calib: torch.Tensor | np.ndarray,
             config: QuantConfig | None = None, scope: str = "model") -> QuantizedModel:
    """Turn a torch model into an integer program, with scales from `calib`: a blindproof Transformer or
    MLP, any ``nn.Sequential`` / ``torch.fx``-traceable module of the layers
    :mod:`blindproof.quant.torch_graph` lists, or an ONNX graph (:func:`~blindproof.quant.onnx_model.load_onnx`)
    of the nodes :mod:`blindproof.quant.onnx_graph` lists (an unsupported layer or node is named in the error).

    `calib` is token ids (batch, seq) for transformers or float features (batch, ...) otherwise.
    ``scope="blocks"`` quantizes only a transformer's blocks (input: the float hidden states of
    :func:`embed_float`). Raises QuantizationError when any integer of the program leaves its bound on the
    calibration data.
    """
    qm, _ = build_program(model, calib, config, scope)
    a = _calibration_array(model, calib)
    try:
        qm.run(embed_float(model, a) if scope == "blocks" else a, record=False)
    except BoundError as e:
        raise QuantizationError(f"calibration run leaves the integer bounds: {e}") from e
    return qm
