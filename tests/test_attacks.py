"""Pinned leakage attacks on static EE (blindproof.ee.attacks) against the real transforms.

Each attack must succeed where the threat model says it does (so a regression that silently weakens
an attack is caught) and must fail where its precondition is missing (wrong base weights, wrong
template), so the success figures are not artefacts.
"""

import json

import numpy as np
import pytest
import torch

from blindproof.cli import main
from blindproof.ee import ClientCodec, Split, encrypt_model
from blindproof.ee.attacks import (BigramModel, decipher, invert_hidden_states, known_from_template, layer_states,
                                   nearest_permutation, recover_key, symbols_from_states)
from blindproof.ee.attacks.corpus import CHAT_PREFIX, CHAT_SUFFIX, chat_messages, load_corpus_text, split_corpus
from blindproof.ee.attacks.evaluate import AttackConfig, attack_key, run_attacks
from blindproof.models import get_workload

TIERS = ["permute", "rotate"]


@pytest.fixture(scope="module")
def base():
    return get_workload("tiny-llama").build(0)


@pytest.fixture(scope="module")
def other_base():
    return get_workload("tiny-llama").build(1)


def true_stream_key(codec, d):
    return codec.encode_hidden(torch.eye(d, dtype=torch.float64)[None])[0].numpy()


def served_states(enc, h, layer):
    rope = (enc.model.rope_cos, enc.model.rope_sin)
    for i in range(layer):
        h = enc.model.blocks[i](h, 0, rope, None, i)
    return h[0]


# --- (a) key recovery by weight matching -----------------------------------------------------------

@pytest.mark.parametrize("tier", TIERS)
def test_key_recovery_from_served_weights(base, tier):
    key = attack_key(3)
    split = Split(client_embeds=False, client_decodes=False)
    enc = encrypt_model(base, key, tier, split)
    codec = ClientCodec(base, key, tier, split)
    rec = recover_key(enc.model, base, ("embed",))
    q = true_stream_key(codec, base.cfg.d_model)
    assert np.linalg.norm(rec.residual - q) / np.linalg.norm(q) < 1e-6
    assert max(rec.ffn_residuals) < 1e-6
    assert max(rec.head_residuals) < 1e-6  # every head block fits its base head exactly
    assert all(sorted(p) == list(range(len(p))) for layer in rec.head_perms for p in layer.values())
    if tier == "permute":
        assert (rec.residual_permutation() == q.argmax(0)).all()
    true_vocab = codec.decode_tokens(torch.arange(base.cfg.vocab_size)[None])[0].numpy()
    assert (rec.vocab_perm == true_vocab).all()
    assert rec.seconds < 5


@pytest.mark.parametrize("tier", TIERS)
def test_key_recovery_decrypts_server_output(base, tier):
    key = attack_key(4)
    enc, codec = encrypt_model(base, key, tier), ClientCodec(base, key, tier)
    rec = recover_key(enc.model, base)
    tokens = get_workload("tiny-llama").example_input(batch=1)
    with torch.no_grad():
        h_out = enc.model.run_blocks(codec.client_input(tokens))
        stolen = base.head(h_out @ torch.as_tensor(rec.residual, dtype=h_out.dtype).T)
        assert torch.allclose(stolen, base(tokens), atol=1e-4)


@pytest.mark.parametrize("tier", TIERS)
def test_key_recovery_fails_without_the_base_weights(base, other_base, tier):
    key = attack_key(5)
    enc, codec = encrypt_model(base, key, tier), ClientCodec(base, key, tier)
    rec = recover_key(enc.model, other_base)
    q = true_stream_key(codec, base.cfg.d_model)
    assert min(rec.ffn_residuals) > 0.5  # the attack sees that its reconstruction does not fit
    assert min(rec.head_residuals) > 0.5
    assert np.linalg.norm(rec.residual - q) / np.linalg.norm(q) > 0.5
    if tier == "permute":
        assert (rec.residual_permutation() == q.argmax(0)).mean() < 0.2


def test_key_recovery_bad_inputs(base):
    with pytest.raises(TypeError, match="Transformer"):
        recover_key(torch.nn.Linear(2, 2), base)
    with pytest.raises(ValueError, match="architectures"):
        recover_key(get_workload("small-llama").build(0), base)
    with pytest.raises(ValueError, match="vocab_from"):
        recover_key(base, base, ("nope",))


def test_nearest_permutation_inverts_a_noisy_permutation_matrix():
    rng = np.random.default_rng(0)
    perm = rng.permutation(32)
    m = np.zeros((32, 32))
    m[perm, np.arange(32)] = 1.0
    assert (nearest_permutation(m + 0.1 * rng.standard_normal((32, 32))) == perm).all()


# --- (b) prompt recovery from hidden states ------------------------------------------------------

@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("layer", [0, 2])
def test_prompt_recovered_from_server_states(base, tier, layer):
    key = attack_key(6)
    enc, codec = encrypt_model(base, key, tier), ClientCodec(base, key, tier)
    prompt = torch.tensor([list(b"Meet me at the north gate at nine.")])
    with torch.no_grad():
        obs = served_states(enc, codec.client_input(prompt), layer)
    q = recover_key(enc.model, base).residual
    assert (invert_hidden_states(base, obs, layer, q) == prompt[0]).all()
    assert (invert_hidden_states(base, obs, layer, None) == prompt[0]).all()  # no key: Gram invariants


def test_prompt_inversion_fails_with_wrong_base(base, other_base):
    key = attack_key(7)
    enc, codec = encrypt_model(base, key, "rotate"), ClientCodec(base, key, "rotate")
    prompt = torch.tensor([list(b"Meet me at the north gate at nine.")])
    with torch.no_grad():
        obs = served_states(enc, codec.client_input(prompt), 1)
    assert (invert_hidden_states(other_base, obs, 1, None) == prompt[0]).float().mean() < 0.2


def test_layer_states_match_the_forward(base):
    tokens = get_workload("tiny-llama").example_input()
    with torch.no_grad():
        assert torch.allclose(layer_states(base, tokens, 2), base.run_blocks(base.embed_tokens(tokens)))
    with pytest.raises(ValueError, match="layer"):
        layer_states(base, tokens, 3)
    with pytest.raises(ValueError, match="shape"):
        invert_hidden_states(base, torch.zeros(4, 5), 0)


# --- (c) decipherment of keyed token streams --------------------------------------------------------

@pytest.fixture(scope="module")
def texts():
    return split_corpus(load_corpus_text(), 8192)


@pytest.fixture(scope="module")
def lm(texts):
    return BigramModel.fit([np.frombuffer(texts[0], dtype=np.uint8)], 256)


def body_accuracy(key, cipher, plain):
    hits = total = 0
    for c, p in zip(cipher, plain):
        body = slice(len(CHAT_PREFIX), len(p) - len(CHAT_SUFFIX))
        hits += int((key[c[body]] == p[body]).sum())
        total += len(p[body])
    return hits / total


def traffic(texts, n, codec, states: bool):
    msgs = chat_messages(texts[1], n, max_message=200)
    plain = [np.frombuffer(m, dtype=np.uint8).astype(np.int64) for m in msgs]
    out = [codec.client_input(torch.from_numpy(p)[None])[0].numpy() for p in plain]
    if states:
        labels = symbols_from_states(np.concatenate(out))
        out = np.split(labels, np.cumsum([len(p) for p in plain])[:-1])
    return out, plain


@pytest.mark.parametrize("tier", TIERS)
def test_wire_observer_deciphers_first_block_states(base, texts, lm, tier):
    codec = ClientCodec(base, attack_key(8), tier)  # default split: keyed states on the wire
    cipher, plain = traffic(texts, 4096, codec, states=True)
    known = known_from_template(cipher, CHAT_PREFIX, CHAT_SUFFIX)
    key, init = decipher(cipher, lm, known, restarts=4)
    assert body_accuracy(key, cipher, plain) > 0.9
    assert body_accuracy(key, cipher, plain) > body_accuracy(init, cipher, plain)


def test_permuted_token_ids_deciphered_from_1kb(base, texts, lm):
    codec = ClientCodec(base, attack_key(9), "permute", Split(client_embeds=False))
    cipher, plain = traffic(texts, 1024, codec, states=False)
    key, _ = decipher(cipher, lm, known_from_template(cipher, CHAT_PREFIX, CHAT_SUFFIX), restarts=4)
    assert body_accuracy(key, cipher, plain) > 0.8


def test_decipherment_fails_on_text_that_is_not_language(base, lm):
    rng = np.random.default_rng(0)
    plain = [rng.integers(0, 256, size=200) for _ in range(10)]
    perm = rng.permutation(256)
    cipher = [perm[p] for p in plain]
    key, _ = decipher(cipher, lm, restarts=2)
    assert np.mean(np.concatenate([key[c] == p for c, p in zip(cipher, plain)])) < 0.2


def test_known_plaintext_rejects_a_non_substitution():
    msgs = [np.array([1, 2, 3, 9, 4]), np.array([2, 2, 3, 8, 4])]
    with pytest.raises(ValueError, match="two plaintext symbols"):
        known_from_template(msgs, [10, 11, 12], [13])
    msgs = [np.array([1, 2, 3, 9, 4]), np.array([1, 5, 3, 8, 4])]
    with pytest.raises(ValueError, match="two cipher symbols"):
        known_from_template(msgs, [10, 11, 12], [13])
    assert known_from_template(msgs[:1], [10, 11, 12], [13]) == {1: 10, 2: 11, 3: 12, 4: 13}


def test_symbols_from_states_groups_equal_rows():
    rng = np.random.default_rng(1)
    table = rng.standard_normal((5, 8))
    ids = rng.integers(0, 5, size=50)
    rows = table[ids] + 1e-9 * rng.standard_normal((50, 8))  # rounding-level noise
    labels = symbols_from_states(rows)
    assert len(np.unique(labels)) == len(np.unique(ids))
    assert all(len(np.unique(ids[labels == lab])) == 1 for lab in np.unique(labels))
    with pytest.raises(ValueError, match="shape"):
        symbols_from_states(np.zeros(4))


def test_bigram_model_and_decipher_errors():
    with pytest.raises(ValueError, match="empty"):
        BigramModel.fit([], 4)
    with pytest.raises(ValueError, match="token ids"):
        BigramModel.fit([[0, 9]], 4)
    lm = BigramModel.fit([[0, 1, 2, 3, 0, 1]], 4)
    assert np.allclose(np.exp(lm.logp).sum(1), 1.0)
    with pytest.raises(ValueError, match="cipher symbols"):
        decipher([np.array([7])], lm)
    with pytest.raises(ValueError, match="two cipher symbols"):
        decipher([np.array([0, 1])], lm, {0: 1, 1: 1})


def test_chat_messages_exact_length_and_intact_templates(texts):
    for n in (60, 256, 1000, 4096):
        msgs = chat_messages(texts[1], n, max_message=200)
        assert sum(map(len, msgs)) == n
        assert all(m.startswith(CHAT_PREFIX) and m.endswith(CHAT_SUFFIX) for m in msgs)
    with pytest.raises(ValueError, match="template"):
        chat_messages(texts[1], 10)
    with pytest.raises(ValueError, match="too short"):
        chat_messages(b"One sentence.", 4096)
    with pytest.raises(ValueError, match="victim_bytes"):
        split_corpus("tiny", 100)


# --- the report and the command ----------------------------------------------------------------------

def test_run_attacks_report_and_errors():
    with pytest.raises(ValueError, match="tier"):
        run_attacks(AttackConfig(tier="xor"))
    with pytest.raises(ValueError, match="transformers"):
        run_attacks(AttackConfig(workload="mlp-784-56-10"))


def test_attack_command_json(tmp_path, capsys):
    out, md = tmp_path / "a.json", tmp_path / "a.md"
    assert main(["attack", "--tier", "rotate", "--json", "--lengths", "256", "--restarts", "1",
                 "--prompt-bytes", "16", "--out", str(out), "--markdown", str(md)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "| tiny-llama | rotate | first block states |" in md.read_text()
    assert json.loads(out.read_text()) == report
    (run,) = report["runs"]
    assert run["tier"] == "rotate" and run["workload"] == "tiny-llama"
    assert run["key_recovery"]["default"]["residual_rel_error"] < 1e-6
    assert run["key_recovery"]["default"]["wrong_base"]["residual_rel_error"] > 0.5
    assert all(row["without_key"] == 1.0 for row in run["hidden_inversion"]["layers"])
    assert run["decipherment"]["curves"]["first_block_states"][0]["bytes"] == 256


def test_attack_command_summary_and_bad_workload(capsys):
    assert main(["attack", "--tier", "permute", "--lengths", "256", "--restarts", "0", "--prompt-bytes", "8"]) == 0
    assert "residual key recovered" in capsys.readouterr().out
    assert main(["attack", "--workload", "nope", "--lengths", "256"]) == 2  # a usage error (docs/cli.md)
    assert "unknown workload" in capsys.readouterr().err


def test_learned_positions_break_the_state_substitution():
    from blindproof.models.transformer import Transformer, TransformerConfig
    from blindproof.models.workloads import init_weights

    cfg = TransformerConfig(vocab_size=256, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_seq=64, norm="layer",
                            mlp="gelu", position="learned", bias=True)
    model = init_weights(Transformer(cfg), 0).eval()
    tokens = torch.tensor([list(b"aaaa aaaa")])
    for pos_cfg, expect in ((cfg, 9), (get_workload("tiny-llama").config, 2)):
        m = model if pos_cfg is cfg else get_workload("tiny-llama").build(0)
        states = ClientCodec(m, attack_key(1), "rotate").client_input(tokens)[0].numpy()
        assert len(np.unique(symbols_from_states(states))) == expect  # RoPE: one symbol per distinct byte


def bigram_transformer(lm):
    """A zero-block model whose logits after token a are exactly log p(b | a) of ``lm``."""
    from blindproof.models.transformer import Transformer, TransformerConfig

    cfg = TransformerConfig(vocab_size=256, d_model=256, n_layers=0, n_heads=4, d_ff=16, max_seq=8)
    model = Transformer(cfg).eval()
    with torch.no_grad():
        model.embed.weight.copy_(torch.eye(256))
        model.final_norm.weight.fill_(1.0)
        model.lm_head.weight.copy_(torch.from_numpy(lm.logp.T / 16.0))  # rmsnorm(e_a) = 16 e_a
    return model


def test_served_language_model_leaks_the_vocabulary_key(texts, lm):
    from blindproof.ee.attacks import decipher_counts
    from blindproof.ee.attacks.served_lm import served_bigrams

    model = bigram_transformer(BigramModel.fit([np.frombuffer(texts[0], dtype=np.uint8)], 256, alpha=0.01))
    split = Split(client_embeds=False, client_decodes=False)
    key = attack_key(11)
    enc, codec = encrypt_model(model, key, "permute", split), ClientCodec(model, key, "permute", split)
    bigrams, unigram = served_bigrams(enc.model)
    k, _ = decipher_counts(bigrams, unigram, lm, restarts=4)
    plain = np.frombuffer(texts[1][:2048], dtype=np.uint8).astype(np.int64)
    sent = codec.encode_tokens(torch.from_numpy(plain)[None])[0].numpy()
    assert (k[sent] == plain).mean() > 0.9  # no traffic seen: the served weights alone gave the key
    with pytest.raises(TypeError, match="language-model head"):
        served_bigrams(get_workload("minilm-l6").build(0))


def test_key_recovery_against_a_related_model(base):
    from blindproof.ee.attacks.evaluate import perturbed

    key = attack_key(12)
    private = perturbed(base, 0.1, seed=0)  # deployed weights close to, not equal to, the public base
    enc, codec = encrypt_model(private, key, "permute"), ClientCodec(private, key, "permute")
    rec = recover_key(enc.model, base)
    assert (rec.residual_permutation() == true_stream_key(codec, base.cfg.d_model).argmax(0)).all()
    assert 0.01 < max(rec.ffn_residuals) < 0.5  # the fit is approximate, as it should be
