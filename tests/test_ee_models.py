"""Whole-model equivariance of both EE tiers: decrypt(F'(encrypt(x))) = F(x)."""

import copy
import functools

import pytest
import torch

from blindproof.ee import (ClientCodec, EEKey, Split, blind_generate, encrypt_model, local_server_step)
from blindproof.models import get_workload
from blindproof.models.transformer import Transformer, TransformerConfig
from blindproof.models.workloads import init_weights

KEY = EEKey(bytes(range(32)))
TIERS = ["permute", "rotate"]
SPLITS = [Split(), Split(False, False), Split(True, False), Split(False, True)]
TOL = {torch.float64: 1e-9, torch.float32: 1e-4}

# Small stand-ins with the structure of each family, for the split x tier grid.
MINI = {
    "llama-gqa": TransformerConfig(vocab_size=300, d_model=64, n_layers=2, n_heads=8, n_kv_heads=2, d_ff=96,
                                   max_seq=64),
    "llama-tied-bias": TransformerConfig(vocab_size=300, d_model=48, n_layers=2, n_heads=3, d_ff=80, max_seq=64,
                                         bias=True, tie_embeddings=True),
    "gpt2": TransformerConfig(vocab_size=300, d_model=64, n_layers=2, n_heads=4, d_ff=128, max_seq=64,
                              norm="layer", mlp="gelu", position="learned", bias=True, tie_embeddings=True,
                              gelu_approx="tanh"),
    "bert": TransformerConfig(vocab_size=300, d_model=48, n_layers=2, n_heads=4, d_ff=96, max_seq=64,
                              norm="layer", norm_position="post", mlp="gelu", position="learned", bias=True,
                              causal=False, embed_norm=True, type_vocab_size=2, output="mean_pool"),
}


def rel_err(y: torch.Tensor, ref: torch.Tensor) -> float:
    return float((y - ref).abs().max() / ref.abs().max())


@functools.lru_cache(maxsize=None)
def _float32(name: str) -> torch.nn.Module:
    if name in MINI:
        return init_weights(Transformer(MINI[name]), 0).eval()
    return get_workload(name).build(0)


@functools.lru_cache(maxsize=None)
def built(name: str, dtype: torch.dtype) -> torch.nn.Module:
    return _float32(name) if dtype == torch.float32 else copy.deepcopy(_float32(name)).to(dtype)


def example(name: str, batch: int = 2) -> torch.Tensor:
    if name in MINI:
        g = torch.Generator().manual_seed(1)
        return torch.randint(0, MINI[name].vocab_size, (batch, 12), generator=g)
    return get_workload(name).example_input(0, batch)


def blind_forward(model, tier, split, x):
    enc = encrypt_model(model, KEY, tier, split)
    codec = ClientCodec(model, KEY, tier, split)
    codec.check_deployment(enc)
    if isinstance(model, Transformer):
        y = codec.client_output(local_server_step(enc)(codec.client_input(x), 0))
    else:
        with torch.no_grad():
            y = codec.client_output(enc.model(codec.client_input(x)))
    return enc, y


WORKLOADS = ["tiny-llama", "small-llama", "gpt2-block", "minilm-l6", "mlp-784-56-10"]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("name", WORKLOADS)
def test_workload_equivariance(name, tier, dtype):
    model = built(name, dtype)
    x = example(name, batch=1 if name in ("gpt2-block", "minilm-l6") else 2)
    if x.is_floating_point():
        x = x.to(dtype)
    with torch.no_grad():
        ref = model(x)
    enc, y = blind_forward(model, tier, Split(), x)
    assert y.dtype == dtype and y.shape == ref.shape
    assert rel_err(y, ref) <= TOL[dtype]
    # the server's weights really are transformed
    enc_params = dict(enc.model.named_parameters())
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, enc_params[n])]
    assert len(changed) >= len(enc_params) // 2


@pytest.mark.slow
@pytest.mark.parametrize("tier", TIERS)
def test_gpt2_small_equivariance(tier):
    model = get_workload("gpt2-small").build(0)
    x = get_workload("gpt2-small").example_input(0, 1)
    with torch.no_grad():
        ref = model(x)
    _, y = blind_forward(model, tier, Split(), x)
    assert rel_err(y, ref) <= TOL[torch.float32]


@pytest.mark.parametrize("split", SPLITS, ids=lambda s: f"ce{int(s.client_embeds)}cd{int(s.client_decodes)}")
@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("name", list(MINI))
def test_every_split_is_exact(name, tier, split):
    model = built(name, torch.float64)
    x = example(name)
    with torch.no_grad():
        ref = model(x)
    enc, y = blind_forward(model, tier, split, x)
    assert rel_err(y, ref) <= 1e-9
    # what crosses the wire is not the plaintext
    codec = ClientCodec(model, KEY, tier, split)
    sent = codec.client_input(x)
    if split.client_embeds:
        assert not torch.allclose(sent, model.embed_tokens(x))
    else:
        assert not torch.equal(sent, x)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("name", ["tiny-llama", "small-llama", "llama-tied-bias"])
def test_greedy_generation_with_kv_cache_matches_plaintext(name, tier, dtype):
    model = built(name, dtype)
    prompt = example(name)[:, :8]
    plain = model.generate(prompt, 32)
    assert torch.equal(plain, model.generate(prompt, 32, use_cache=False))
    for split in (Split(), Split(False, False)) if name != "small-llama" else (Split(),):
        enc = encrypt_model(model, KEY, tier, split)
        codec = ClientCodec(model, KEY, tier, split)
        assert torch.equal(blind_generate(codec, local_server_step(enc), prompt, 32), plain)


def test_decoding_with_another_key_gives_garbage():
    model = built("tiny-llama", torch.float64)
    x = example("tiny-llama")
    enc = encrypt_model(model, KEY, "rotate")
    other = ClientCodec(model, EEKey(bytes(32)), "rotate")
    with torch.no_grad():
        y = other.client_output(enc.model.run_blocks(other.client_input(x)))
        assert rel_err(y, model(x)) > 0.1


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("name", list(MINI) + ["mlp-784-56-10"])
def test_server_model_has_the_same_class_shapes_and_cost(name, tier):
    model = built(name, torch.float32)
    before = copy.deepcopy(model.state_dict())
    enc = encrypt_model(model, KEY, tier)
    assert type(enc.model) is type(model)
    shapes = {n: (p.shape, p.dtype) for n, p in model.state_dict().items()}
    assert {n: (p.shape, p.dtype) for n, p in enc.model.state_dict().items()} == shapes
    assert all(torch.equal(before[n], p) for n, p in model.state_dict().items())  # input untouched
    assert enc.key_id == KEY.key_id and enc.tier == tier


def test_server_receives_no_client_side_weights():
    model = built("gpt2", torch.float32)
    enc = encrypt_model(model, KEY, "rotate")
    for name in ("embed", "pos_embed", "final_norm", "lm_head"):
        assert all(bool((p == 0).all()) for p in getattr(enc.model, name).parameters()), name


def test_rotate_folds_norm_gains_and_unties_only_when_needed():
    model = built("llama-tied-bias", torch.float64)
    both = Split(False, False)
    rot = encrypt_model(model, KEY, "rotate", both).model
    assert all(torch.equal(b.attn_norm.weight, torch.ones_like(b.attn_norm.weight)) for b in rot.blocks)
    assert not rot.cfg.tie_embeddings and rot.lm_head.weight is not rot.embed.weight
    perm = encrypt_model(model, KEY, "permute", both).model
    assert perm.cfg.tie_embeddings and perm.lm_head.weight is perm.embed.weight
    # one side on the server: the tie is kept and holds the side the server runs
    half = encrypt_model(model, KEY, "rotate", Split(True, False)).model
    assert half.cfg.tie_embeddings and half.lm_head.weight is half.embed.weight


def test_post_ln_stream_key_is_a_permutation_and_inner_keys_are_dense():
    model = built("bert", torch.float64)
    codec = ClientCodec(model, KEY, "rotate")
    h = torch.randn(1, 3, model.cfg.d_model, dtype=torch.float64)
    enc_h = codec.encode_hidden(h)
    assert torch.equal(enc_h.sort(-1).values, h.sort(-1).values)  # same values, moved
    rot = encrypt_model(model, KEY, "rotate").model
    perm = encrypt_model(model, KEY, "permute").model
    # rotate gives the heads dense invertible keys: W_v is no longer a permutation of the original
    w, wr, wp = (m.blocks[0].attn.wv.weight.flatten().sort().values for m in (model, rot, perm))
    assert torch.equal(w, wp) and not torch.allclose(w, wr)
