"""Every architecture from_hf maps, on small random-init configs: float64 equality with transformers,
exact blind inference in both EE tiers, the integer model, a proof that verifies, a fingerprint probe."""

import numpy as np
import pytest
import torch
from torch import nn

tf = pytest.importorskip("transformers")

from blindproof.ee import ClientCodec, EEKey, Split, encrypt_model, local_server_step  # noqa: E402
from blindproof.fingerprint.transformer import port_change  # noqa: E402
from blindproof.models import hf_examples as ex  # noqa: E402
from blindproof.models.loaders import UnsupportedModelError, from_hf  # noqa: E402
from blindproof.models.transformer import rope_inv_freq  # noqa: E402

KEY = EEKey(bytes(range(1, 33)))
NEW = [a for a in ex.ARCHITECTURES if a not in ("llama", "mistral", "gpt2", "bert")]  # the older four: test_loaders
# proofs that add little to another row's (deepseek-v3's; tests/test_moe.py for grouped routing; bert-cls
# for the encoder classification head's ops)
SLOW_PROOFS = ("deepseek-v3-dense-first", "deepseek-v3-yarn", "deepseek-v3-grouped", "roberta-cls", "distilbert-cls")
PROOF_CASES = [pytest.param(a, marks=pytest.mark.slow) if a in SLOW_PROOFS else a for a in NEW]


@pytest.fixture
def exact_hf(monkeypatch):
    for cls, name, fn in ex.float64_internals():
        monkeypatch.setattr(cls, name, fn)


@pytest.fixture(scope="module")
def loaded():
    cache = {}

    def get(name):
        if name not in cache:
            hf = ex.build(name)
            cache[name] = (hf, from_hf(hf))
        return cache[name]
    return get


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("name", ex.ARCHITECTURES)
def test_float64_equals_transformers(name, loaded, exact_hf):
    hf, ours = loaded(name)
    ids = ex.example_ids()
    ref = ex.hf_reference(hf, ids, pooled=ours.cfg.output == "mean_pool")
    assert next(ours.parameters()).dtype == torch.float64 and not ours.training
    with torch.no_grad():
        y = ours(ids)
    assert y.shape == ref.shape
    # Llama 3 RoPE: the patch computes plain RoPE, so this one is compared with stock HF below
    assert _rel(y, ref) <= (1e-9 if name != "llama3-rope" else 1.0)
    assert name == "llama3-rope" or _rel(y, ref) <= 1e-14


@pytest.mark.parametrize("name", ["llama3-rope", "qwen2", "phi3", "gemma", "gemma2", "gemma3", "mixtral",
                                  "deepseek-v3", "deepseek-v3-yarn"])
def test_stock_transformers_to_float32_precision(name, loaded):
    hf, ours = loaded(name)  # HF computes RMSNorm and the RoPE tables in float32 even in float64 models
    ids = ex.example_ids()
    with torch.no_grad():
        assert _rel(ours(ids), ex.hf_reference(hf, ids, False)) <= 1e-5


def test_llama3_rope_frequencies_equal_transformers(loaded):
    hf, ours = loaded("llama3-rope")
    assert ours.cfg.rope_llama3 == (8.0, 1.0, 4.0, 16)
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    inv, scaling = ROPE_INIT_FUNCTIONS["llama3"](hf.config, "cpu")
    ours_inv = rope_inv_freq(ours.cfg.head_dim, ours.cfg.rope_theta, ours.cfg.rope_llama3)
    assert scaling == 1.0 and torch.allclose(inv.double(), ours_inv, rtol=1e-6)
    plain = rope_inv_freq(ours.cfg.head_dim, ours.cfg.rope_theta)
    assert not torch.allclose(plain, ours_inv)  # the scaling is really applied


def test_structure_read_from_the_module(loaded):
    q = loaded("qwen2")[1].cfg  # q/k/v biases, none on o_proj or the MLP
    assert (q.has_bias("qkv"), q.has_bias("o"), q.has_bias("mlp")) == (True, False, False)
    assert loaded("qwen2-tied")[1].lm_head.weight is loaded("qwen2-tied")[1].embed.weight
    assert loaded("llama-head_dim")[1].cfg.head_dim == 16 and loaded("llama-head_dim")[1].cfg.d_model == 32
    g = loaded("gemma")
    assert g[1].cfg.glu_act == "gelu" and g[1].cfg.gelu_approx == "tanh" and not g[1].cfg.tie_embeddings
    emb = g[0].model.embed_tokens.weight
    assert torch.equal(g[1].lm_head.weight, emb)  # the head keeps the unscaled table
    assert torch.equal(g[1].embed.weight, emb * g[0].model.embed_tokens.embed_scale.double())
    assert torch.equal(g[1].blocks[0].attn_norm.weight, 1.0 + g[0].model.layers[0].input_layernorm.weight)
    p = loaded("phi3")
    w = p[0].model.layers[1].self_attn.qkv_proj.weight
    assert torch.equal(torch.cat([p[1].blocks[1].attn.wq.weight, p[1].blocks[1].attn.wk.weight,
                                  p[1].blocks[1].attn.wv.weight]), w)
    assert loaded("qwen2-cls")[1].cfg.output == "last" and loaded("qwen2-cls")[1].cfg.n_labels == 3
    assert loaded("llama-base")[1].cfg.output == "hidden" and loaded("gpt2-base")[1].cfg.output == "hidden"
    assert loaded("roberta")[1].cfg.max_seq == 64  # positions start at padding_idx + 1 = 2
    for name, act in (("bert-cls", "tanh"), ("roberta-cls", "tanh"), ("distilbert-cls", "relu")):
        c = loaded(name)[1].cfg
        assert (c.output, c.n_labels, c.pool_act) == ("first", 3, act)
    b = loaded("bert-cls")
    assert torch.equal(b[1].pooler.weight, b[0].bert.pooler.dense.weight)
    # options at their defaults stay out of the description (existing digests are unchanged)
    assert set(loaded("llama")[1].cfg.to_dict()) == set(loaded("gpt2")[1].cfg.to_dict())


@pytest.mark.parametrize("tier", ["permute", "rotate"])
@pytest.mark.parametrize("name", NEW)
def test_blind_equals_plaintext(name, tier, loaded):
    _, ours = loaded(name)
    ids = ex.example_ids()
    with torch.no_grad():
        ref = ours(ids)
    splits = [Split()]
    if ours.cfg.output not in ("last", "first"):
        splits.append(Split(False, False))
    for split in splits:
        if split == Split(False, False) and tier == "rotate" and ours.cfg.output in ("mean_pool", "hidden") \
                and ours.cfg.norm_position == "pre":
            continue  # a pooled/hidden pre-norm model's final norm cannot be folded (refused, tested in test_ee_*)
        enc = encrypt_model(ours, KEY, tier, split)
        codec = ClientCodec(ours, KEY, tier, split)
        y = codec.client_output(local_server_step(enc)(codec.client_input(ids), 0))
        assert _rel(y, ref) <= 1e-9, (split, _rel(y, ref))


def test_classification_head_is_decoded_by_the_client(loaded):
    with pytest.raises(ValueError, match="client_decodes"):
        encrypt_model(loaded("qwen2-cls")[1], KEY, "permute", Split(True, False))


def _quantized(ours):
    from blindproof.quant import quantize
    return quantize(ours, ex.example_ids(4, 16, seed=1))


@pytest.mark.parametrize("name", NEW)
def test_integer_model_agrees(name, loaded):
    _, ours = loaded(name)
    qm = _quantized(ours)
    ids = ex.example_ids(4, 12, seed=2)
    with torch.no_grad():
        ref = ours(ids).numpy()
    y = qm.forward(ids.numpy())
    assert y.shape == ref.shape
    if ours.cfg.output in ("logits", "last", "first"):
        assert (y.argmax(-1) == ref.argmax(-1)).mean() >= 0.9
    else:
        cos = (y * ref).sum(-1) / np.linalg.norm(y, axis=-1) / np.linalg.norm(ref, axis=-1)
        assert cos.min() >= 0.999


@pytest.mark.parametrize("name", PROOF_CASES)
def test_proof_verifies(name, loaded):
    from blindproof.zk.proof.keys import CommitmentKey
    from blindproof.zk.ops import kinds
    from blindproof.zk.proof.prover import ModelProver
    from blindproof.zk.proof.verifier import verify_model_proof

    _, ours = loaded(name)
    qm = _quantized(ours)
    assert {op.kind for op in qm.spec.ops} <= set(kinds())
    prover = ModelProver.create(qm, CommitmentKey(b"\x07" * 32))
    proof = prover.prove(prover.model.encode(ex.example_ids(1, 8, seed=3).numpy()), rng=np.random.default_rng(0))
    data = proof.to_bytes()
    res = verify_model_proof(prover.commitment, data)
    assert res.ok, res.reason
    y = {k: v.copy() for k, v in proof.outputs.items()}
    next(iter(y.values())).flat[0] += 1
    assert not verify_model_proof(prover.commitment, data, outputs=y).ok


@pytest.mark.parametrize("name", NEW)
def test_fingerprint_port_is_harmless(name, loaded):
    _, ours = loaded(name)
    with torch.no_grad():
        h = ours.embed_tokens(ex.example_ids())
    c = port_change(ours, h, 0, 100.0)
    assert c.harmless_change < 1e-9 * 100 and c.random_change > 1e6 * c.harmless_change


def test_gemma2_structure(loaded):
    hf, ours = loaded("gemma2")
    c = ours.cfg
    assert c.sandwich_norm and (c.attn_softcap, c.logit_softcap) == (0.05, 0.5)
    assert c.max_seq == 32  # the sliding window (every other layer) masks nothing up to 32 positions
    assert torch.equal(ours.blocks[1].attn_post_norm.weight, 1.0 + hf.model.layers[1].post_attention_layernorm.weight)
    assert torch.equal(ours.blocks[1].mlp_norm.weight, 1.0 + hf.model.layers[1].pre_feedforward_layernorm.weight)
    assert torch.equal(ours.blocks[1].mlp_post_norm.weight, 1.0 + hf.model.layers[1].post_feedforward_layernorm.weight)
    hf2 = ex.build("gemma2")
    del hf2.model.layers[1].post_feedforward_layernorm  # a lone sandwich norm has no place
    with pytest.raises(UnsupportedModelError, match=r"model.layers.1.pre_feedforward_layernorm: a sandwich norm"):
        from_hf(hf2)


def test_unmappable_parts_are_named():
    hf = ex.build("qwen2")
    hf.model.layers[0].mlp.experts = nn.ModuleList([nn.Linear(2, 2)])  # experts next to a dense MLP's parts
    with pytest.raises(UnsupportedModelError, match=r"model.layers.0.mlp.act_fn: .* mixture of experts"):
        from_hf(hf)
    hf = ex.build("qwen2")
    hf.model.layers[0].post_attention_layernorm.weight.data.fill_(0.5)
    hf.model.layers[0].post_attention_layernorm.variance_epsilon = "x"
    with pytest.raises(UnsupportedModelError, match="post_attention_layernorm: .*epsilon"):
        from_hf(hf)
    hf = ex.build("llama")
    hf.model.layers[1].mlp.act_fn = nn.ReLU()
    with pytest.raises(UnsupportedModelError, match=r"model.layers.1.mlp.act_fn: activation ReLU"):
        from_hf(hf)
    hf = tf.BertForMaskedLM(tf.BertConfig(vocab_size=97, hidden_size=32, num_hidden_layers=1,
                                          num_attention_heads=4, intermediate_size=64))
    with pytest.raises(UnsupportedModelError, match="cls: BertOnlyMLMHead: a head"):
        from_hf(hf)
    hf = ex.build("roberta-cls")
    hf.classifier.forward = lambda x: hf.classifier.out_proj(torch.relu(hf.classifier.dense(x[:, 0])))
    with pytest.raises(UnsupportedModelError, match=r"classifier: RobertaClassificationHead does not compute"):
        from_hf(hf)
    hf = ex.build("bert-cls")
    hf.bert.pooler.activation = nn.ReLU()
    with pytest.raises(UnsupportedModelError, match=r"bert.pooler.activation: the pooler's activation is not tanh"):
        from_hf(hf)


@pytest.mark.parametrize("name", ["llama", "llama-base"])
def test_persistent_rotary_buffers_are_not_weights(name):
    hf = ex.build(name)  # older checkpoints saved inv_freq in the state dict
    rot = hf.model.rotary_emb if name == "llama" else hf.rotary_emb
    rot._non_persistent_buffers_set.clear()
    assert any(k.endswith("inv_freq") for k in hf.state_dict())
    assert from_hf(hf).cfg.n_layers == 2


@pytest.mark.parametrize("name,match", [
    ("phi3-longrope", r"model.rotary_emb: RoPE scaling 'longrope' not implemented"),
])
def test_unsupported_architectures_are_refused_naming_the_part(name, match):
    with pytest.raises(UnsupportedModelError, match=match):
        from_hf(ex.build(name))


def test_dense_layers_first_then_experts(loaded):
    c = loaded("deepseek-v3-dense-first")[1].cfg
    assert (c.dense_layers, c.dense_d_ff, c.d_ff, c.n_experts) == (1, 48, 12, 4)
    hf = ex.build("deepseek-v3-dense-first")
    hf.model.layers = nn.ModuleList([hf.model.layers[1], hf.model.layers[0]])  # a dense layer after a MoE one
    with pytest.raises(UnsupportedModelError, match=r"model.layers.1.mlp: a dense MLP after a mixture-of-experts"):
        from_hf(hf)


def test_a_router_with_another_rule_is_refused():
    hf = ex.build("mixtral")
    r = hf.model.layers[1].mlp.gate

    def sharpened(h):  # softmax, top k, then squared weights renormalised: no rule implemented here
        logits = h.reshape(-1, r.hidden_dim) @ r.weight.T
        top, idx = torch.topk(torch.softmax(logits, -1), r.top_k, -1)
        return logits, top ** 2 / (top ** 2).sum(-1, keepdim=True), idx
    r.forward = sharpened
    with pytest.raises(UnsupportedModelError, match=r"model.layers.1.mlp.gate: .* routes by no rule"):
        from_hf(hf)


def test_deepseek_structure(loaded):
    hf, ours = loaded("deepseek-v3")
    c = ours.cfg
    assert (c.mla, c.router, c.n_experts, c.experts_top_k, c.shared_d_ff) == ((24, 16, 8, 8, 8), "sigmoid", 4, 2, 12)
    a, ha = ours.blocks[0].attn, hf.model.layers[0].self_attn
    assert torch.equal(a.kv_a.weight, ha.kv_a_proj_with_mqa.weight[:16])
    # the interleaved rotary rows (x0, x1), (x2, x3), ... become the half-split layout: evens, then odds
    assert torch.equal(a.k_rot.weight, ha.kv_a_proj_with_mqa.weight[16:][[0, 2, 4, 6, 1, 3, 5, 7]])
    mlp, hm = ours.blocks[1].mlp, hf.model.layers[1].mlp
    assert torch.equal(mlp.select_bias, hm.gate.e_score_correction_bias) and mlp.select_bias.abs().max() > 0
    assert torch.allclose(mlp.down.weight[:, :12], hm.experts.down_proj[0] * 2.5)  # routed scale folded in
    assert loaded("deepseek-v3-grouped")[1].cfg.expert_groups == (4, 2)


def test_gemma3_local_layers_have_their_own_rope(loaded):
    hf, ours = loaded("gemma3")
    c, rot = ours.cfg, hf.model.rotary_emb
    assert c.sliding_layers == (0,) and c.qk_norm and c.sandwich_norm and c.max_seq == 32
    assert torch.equal(torch.tensor(c.rope_freqs_sliding), rot.sliding_attention_inv_freq.double())
    assert torch.equal(torch.tensor(c.rope_freqs), rot.full_attention_inv_freq.double())
    qm = _quantized(ours)
    ropes = {op.output: op.params["cos"] for op in qm.spec.ops if op.kind == "rope"}
    assert ropes["b0.attn.q_rope.acc"] == "rope_sliding.cos" and ropes["b1.attn.q_rope.acc"] == "rope.cos"


def test_qwen2_moe_structure(loaded):
    hf, ours = loaded("qwen2-moe")
    c = ours.cfg
    assert (c.router, c.router_renorm, c.shared_d_ff, c.shared_gated) == ("softmax", False, 24, True)
    mlp = ours.blocks[0].mlp
    assert torch.equal(mlp.shared_scale.weight, hf.model.layers[0].mlp.shared_expert_gate.weight)
    qm = _quantized(ours)
    assert any(op.output == "b0.mlp.router.on" for op in qm.spec.ops)  # no renormalisation: softmax, then mask


def test_olmo2_norms_after_the_sublayers(loaded):
    hf, ours = loaded("olmo2")
    c = ours.cfg
    assert (c.pre_norms, c.sandwich_norm, c.qk_norm, c.qk_norm_proj) == (False, True, True, True)
    assert ours.blocks[0].attn.q_norm.weight.shape == (32,) and ours.blocks[0].attn.k_norm.weight.shape == (16,)
    hf = ex.build("olmo2")
    del hf.model.layers[1].post_feedforward_layernorm  # then the layer has no norm before or after its MLP
    with pytest.raises(UnsupportedModelError, match=r"model.layers.1.input_layernorm: missing from the decoder"):
        from_hf(hf)


def test_qk_norms(loaded):
    hf, ours = loaded("qwen3")
    assert ours.cfg.qk_norm
    assert torch.equal(ours.blocks[1].attn.k_norm.weight, hf.model.layers[1].self_attn.k_norm.weight)
    hf = ex.build("qwen3")
    del hf.model.layers[0].self_attn.k_norm
    with pytest.raises(UnsupportedModelError, match=r"model.layers.0.self_attn.q_norm: a q or k norm without"):
        from_hf(hf)


def test_yarn_frequencies_read_from_the_rotary_module(loaded):
    hf, ours = loaded("deepseek-v3-yarn")
    c = ours.cfg
    inv = hf.model.rotary_emb.inv_freq.double()
    assert torch.equal(torch.tensor(c.rope_freqs, dtype=torch.float64), inv)
    assert not torch.allclose(inv, rope_inv_freq(c.rope_dim, c.rope_theta), rtol=1e-3)  # really scaled
    assert c.attn_scale == hf.model.layers[0].self_attn.scaling  # YaRN's mscale² in the softmax scale
    hf = ex.build("llama")
    hf.config.rope_parameters = {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}
    with pytest.raises(UnsupportedModelError, match=r"model.rotary_emb: RoPE scaling 'dynamic' not implemented"):
        from_hf(hf)
