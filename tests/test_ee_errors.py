"""Bad input to the EE API raises clear errors."""

import pytest
import torch

from blindproof.ee import (ClientCodec, DeploymentMismatchError, EEKey, Split, blind_generate, encrypt_model,
                           local_server_step)
from blindproof.models import get_workload
from blindproof.models.mlp import MLP
from blindproof.models.transformer import Transformer, TransformerConfig
from blindproof.models.workloads import init_weights

KEY, OTHER = EEKey(bytes(range(32))), EEKey(bytes(32))


@pytest.fixture(scope="module")
def llama():
    return get_workload("tiny-llama").build(0)


def test_unknown_tier(llama):
    with pytest.raises(ValueError, match="unknown EE tier 'shuffle'.*permute, rotate"):
        encrypt_model(llama, KEY, "shuffle")
    with pytest.raises(ValueError, match="unknown EE tier"):
        ClientCodec(llama, KEY, "ROTATE")


def test_wrong_argument_types(llama):
    with pytest.raises(TypeError, match="EEKey"):
        encrypt_model(llama, b"0" * 32, "rotate")
    with pytest.raises(TypeError, match="Split"):
        encrypt_model(llama, KEY, "rotate", (True, True))
    with pytest.raises(TypeError, match="Transformer and MLP"):
        encrypt_model(torch.nn.Linear(3, 3), KEY, "rotate")
    with pytest.raises(TypeError, match="EncryptedModel or a key id"):
        ClientCodec(llama, KEY, "rotate").check_deployment(42)


def test_wrong_key_tier_or_split_for_the_deployment(llama):
    enc = encrypt_model(llama, KEY, "rotate")
    with pytest.raises(DeploymentMismatchError, match="encrypted with key"):
        ClientCodec(llama, OTHER, "rotate").check_deployment(enc)
    with pytest.raises(DeploymentMismatchError, match="encrypted with key"):
        ClientCodec(llama, OTHER, "rotate").check_deployment(enc.key_id)
    with pytest.raises(DeploymentMismatchError, match="tier 'rotate'"):
        ClientCodec(llama, KEY, "permute").check_deployment(enc)
    with pytest.raises(DeploymentMismatchError, match="split"):
        ClientCodec(llama, KEY, "rotate", Split(False, True)).check_deployment(enc)
    small = get_workload("small-llama").build(0)
    with pytest.raises(DeploymentMismatchError, match="different architecture"):
        ClientCodec(small, KEY, "rotate").check_deployment(enc)
    ClientCodec(llama, KEY, "rotate").check_deployment(enc)  # the right one passes


def test_wrong_shapes_and_dtypes(llama):
    codec = ClientCodec(llama, KEY, "rotate")
    with pytest.raises(ValueError, match="width 64"):
        codec.encode_hidden(torch.zeros(1, 4, 63))
    with pytest.raises(TypeError, match="floating-point"):
        codec.encode_hidden(torch.zeros(1, 4, 64, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"\(batch, seq, 64\)"):
        codec.client_output(torch.zeros(1, 4, 65))
    with pytest.raises(ValueError, match="max_seq"):
        ClientCodec(llama, KEY, "rotate", Split(False, True)).client_input(torch.zeros(1, 300, dtype=torch.long))
    mlp_codec = ClientCodec(get_workload("mlp-784-56-10").build(0), KEY, "rotate")
    with pytest.raises(ValueError, match="width 784"):
        mlp_codec.client_input(torch.zeros(2, 783))
    with pytest.raises(TypeError, match="needs a transformer"):
        mlp_codec.encode_tokens(torch.zeros(1, 2, dtype=torch.long))


def test_vocabulary_mismatch(llama):
    codec = ClientCodec(llama, KEY, "permute", Split(False, False))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 256\)"):
        codec.encode_tokens(torch.tensor([[1, 256]]))
    with pytest.raises(TypeError, match="int64"):
        codec.encode_tokens(torch.tensor([[1.0]]))
    with pytest.raises(ValueError, match="vocabulary size 256"):
        codec.decode_logits(torch.zeros(1, 2, 255))
    tokens = torch.arange(256)[None]
    assert torch.equal(codec.decode_tokens(codec.encode_tokens(tokens)), tokens)
    assert not torch.equal(codec.encode_tokens(tokens), tokens)
    # no id is special-cased: the permutation moves almost every id, special tokens included
    assert float((codec.encode_tokens(tokens) != tokens).float().mean()) > 0.9


def test_splits_that_cannot_be_exact_are_refused():
    with pytest.raises(ValueError, match="MLP has no embedding"):
        encrypt_model(MLP((4, 3, 2)), KEY, "rotate", Split(False, True))
    pooled = init_weights(Transformer(TransformerConfig(vocab_size=20, d_model=16, n_layers=1, n_heads=2, d_ff=8,
                                                        max_seq=16, causal=False, output="mean_pool")), 0)
    with pytest.raises(ValueError, match="final norm cannot be folded"):
        encrypt_model(pooled, KEY, "rotate", Split(True, False))
    encrypt_model(pooled, KEY, "permute", Split(True, False))  # a permutation is fine
    embed_norm = init_weights(Transformer(TransformerConfig(vocab_size=20, d_model=16, n_layers=1, n_heads=2, d_ff=8,
                                                            max_seq=16, embed_norm=True)), 0)
    with pytest.raises(ValueError, match="embedding norm"):
        encrypt_model(embed_norm, KEY, "rotate", Split(False, True))


def test_generation_needs_a_causal_language_model():
    bert = get_workload("minilm-l6").build(0)
    enc = encrypt_model(bert, KEY, "permute")
    with pytest.raises(ValueError, match="causal transformer"):
        blind_generate(ClientCodec(bert, KEY, "permute"), local_server_step(enc), torch.zeros(1, 2, dtype=torch.long),
                       4)
