"""Property test: every architecture the Transformer config can express is exact under both tiers and
every split, or is refused for the documented reasons."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blindproof.ee import ClientCodec, EEKey, Split, encrypt_model, local_server_step
from blindproof.models.transformer import KVCache, Transformer, TransformerConfig
from blindproof.models.workloads import init_weights


@st.composite
def setups(draw):
    head_dim = draw(st.sampled_from([2, 4, 6]))
    n_kv = draw(st.integers(1, 3))
    n_heads = n_kv * draw(st.integers(1, 3))
    post = draw(st.booleans())
    output = draw(st.sampled_from(["logits", "mean_pool"]))
    cfg = TransformerConfig(
        vocab_size=draw(st.integers(5, 40)), d_model=n_heads * head_dim, n_layers=draw(st.integers(1, 2)),
        n_heads=n_heads, n_kv_heads=n_kv, d_ff=draw(st.integers(2, 24)), max_seq=16,
        norm=draw(st.sampled_from(["rms", "layer"])), norm_position="post" if post else "pre",
        mlp=draw(st.sampled_from(["swiglu", "gelu"])), position=draw(st.sampled_from(["rope", "learned"])),
        bias=draw(st.booleans()), causal=draw(st.booleans()), tie_embeddings=draw(st.booleans()),
        embed_norm=draw(st.booleans()), type_vocab_size=draw(st.sampled_from([0, 2])), output=output)
    tier = draw(st.sampled_from(["permute", "rotate"]))
    split = Split(draw(st.booleans()), draw(st.booleans()))
    return cfg, tier, split, draw(st.integers(0, 2**16)), draw(st.binary(min_size=32, max_size=32))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(setups())
def test_any_architecture_tier_and_split(setup):
    cfg, tier, split, seed, seed_bytes = setup
    key = EEKey(seed_bytes)
    model = init_weights(Transformer(cfg), seed).double().eval()
    x = torch.randint(0, cfg.vocab_size, (2, 7), generator=torch.Generator().manual_seed(seed))
    folds = tier == "rotate" and cfg.norm_position == "pre"
    pooled_head = folds and cfg.output == "mean_pool" and not split.client_decodes
    embed_norm = folds and cfg.embed_norm and not split.client_embeds
    if pooled_head or embed_norm:
        reasons = ["final norm cannot be folded"] * pooled_head + ["embedding norm"] * embed_norm
        with pytest.raises(ValueError, match="|".join(reasons)):
            encrypt_model(model, key, tier, split)
        return
    enc = encrypt_model(model, key, tier, split)
    codec = ClientCodec(model, key, tier, split)
    step, cache = local_server_step(enc), KVCache(cfg.n_layers)
    with torch.no_grad():
        for start, chunk in ((0, x[:, :4]), (4, x[:, 4:])):  # the second chunk runs on the KV cache
            ref = model(chunk, start, cache)
            y = codec.client_output(step(codec.client_input(chunk, start), start))
            assert y.shape == ref.shape
            assert float((y - ref).abs().max()) <= 1e-9 * float(ref.abs().max())
