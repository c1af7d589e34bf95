"""EE on Hugging Face modules (through blindproof.models.loaders.from_hf) and on real MiniLM weights."""

import pytest
import torch

from blindproof.ee import ClientCodec, EEKey, Split, blind_generate, encrypt_model, local_server_step

loaders = pytest.importorskip("blindproof.models.loaders")
transformers = pytest.importorskip("transformers")

KEY = EEKey(bytes(range(1, 33)))


def _hf_modules():
    torch.manual_seed(0)
    llama = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64))
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=128, n_embd=64, n_layer=2, n_head=4, n_positions=64))
    bert = transformers.BertModel(transformers.BertConfig(
        vocab_size=128, hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
        max_position_embeddings=64), add_pooling_layer=False)
    return {"llama": llama, "gpt2": gpt2, "bert": bert}


@pytest.fixture(scope="module")
def hf():
    mods = _hf_modules()
    with torch.no_grad():  # non-trivial norm gains and biases, so folding is exercised
        for m in mods.values():
            for name, p in m.named_parameters():
                if p.dim() == 1:
                    p.add_(0.1 * torch.randn_like(p))
    return {k: m.double().eval() for k, m in mods.items()}


def _hf_out(name, module, x):
    with torch.no_grad():
        if name == "bert":
            return module(input_ids=x).last_hidden_state.mean(dim=1)
        return module(input_ids=x).logits


@pytest.mark.parametrize("split", [Split(), Split(False, False)], ids=["default", "server-both"])
@pytest.mark.parametrize("tier", ["permute", "rotate"])
@pytest.mark.parametrize("name", ["llama", "gpt2", "bert"])
def test_hf_module_equivariance(hf, name, tier, split):
    module = hf[name]
    model = loaders.from_hf(module, max_seq=64)
    x = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ref = model(x)
    # the loader's own tolerance (HF computes RoPE tables in float32); equivariance is then exact
    assert float((ref - _hf_out(name, module, x)).abs().max() / ref.abs().max()) <= 1e-6
    enc = encrypt_model(model, KEY, tier, split)
    codec = ClientCodec(model, KEY, tier, split)
    y = codec.client_output(local_server_step(enc)(codec.client_input(x), 0))
    assert float((y - ref).abs().max() / ref.abs().max()) <= 1e-9


@pytest.mark.parametrize("tier", ["permute", "rotate"])
def test_hf_llama_greedy_generation(hf, tier):
    model = loaders.from_hf(hf["llama"], max_seq=64)
    prompt = torch.randint(0, 128, (1, 6), generator=torch.Generator().manual_seed(6))
    enc = encrypt_model(model, KEY, tier)
    got = blind_generate(ClientCodec(model, KEY, tier), local_server_step(enc), prompt, 32)
    with torch.no_grad():
        hf_tokens = hf["llama"].generate(prompt, max_new_tokens=32, do_sample=False, min_new_tokens=32)[:, 6:]
    assert torch.equal(got, hf_tokens)


@pytest.mark.parametrize("tier", ["permute", "rotate"])
def test_real_minilm_weights(tier):
    try:
        model, tok = loaders.load_minilm()
    except (ImportError, FileNotFoundError, loaders.UnsupportedModelError) as exc:
        pytest.skip(f"MiniLM weights not installed: {exc}")
    ids = torch.tensor([tok.encode("Equivariant encryption keeps the server blind.").ids])
    with torch.no_grad():
        ref = model(ids)
    enc = encrypt_model(model, KEY, tier)
    codec = ClientCodec(model, KEY, tier)
    y = codec.client_output(local_server_step(enc)(codec.client_input(ids), 0))
    assert float((y - ref).abs().max() / ref.abs().max()) <= 1e-4
