"""The embedded default model: committed weights, their training record, and readable greedy text."""

import hashlib
import re

import pytest
import torch

from blindproof.models import default, get_workload, tokenizer
from blindproof.models.workloads import TINY_LLAMA

# Sentence openings from the training corpus; greedy continuations should be mostly corpus words.
PROMPTS = [default.default_prompt(), "Bread is made of four things: ", "A hash function takes any amount ",
           "The first computer I ever took apart "]


@pytest.fixture(scope="module")
def model():
    return default.load_default_model()


@pytest.fixture(scope="module")
def meta():
    return default.default_metadata()


def corpus_words() -> set[str]:
    return set(re.findall(r"[a-z]+", default.corpus_text("train").lower()))


def word_hit_rate(text: str, vocab: set[str]) -> tuple[float, int]:
    """Share of complete words in ``text`` that are corpus words (the last word may be cut off)."""
    words = re.findall(r"[a-z]+", text.lower())[:-1]
    return (sum(w in vocab for w in words) / len(words) if words else 0.0), len(words)


def test_loads_with_the_tiny_llama_config(model, meta):
    assert model.cfg == TINY_LLAMA
    assert not model.training
    assert next(model.parameters()).dtype == torch.float32
    assert sum(p.numel() for p in model.parameters()) == meta["parameters"]
    assert default.WEIGHTS_PATH.stat().st_size < 1.5e6
    assert default.load_default_model() is not model  # callers get their own copy to transform


def test_weights_and_corpus_match_the_training_record(meta):
    assert hashlib.sha256(default.WEIGHTS_PATH.read_bytes()).hexdigest() == meta["weights_sha256"]
    for split in ("train", "heldout"):
        text = default.corpus_text(split).encode()
        assert hashlib.sha256(text).hexdigest() == meta[f"corpus_{split}_sha256"]
    # held-out text is never trained on: no held-out paragraph occurs in the training split
    train = default.corpus_text("train")
    assert not any(p.strip() in train for p in default.corpus_text("heldout").split("\n\n") if p.strip())


def test_greedy_generation_is_deterministic_and_printable(model, meta):
    prompt = default.default_prompt()
    a = default.generate_text(model, prompt, 48)
    assert a == default.generate_text(default.load_default_model(), prompt, 48)
    assert a == meta["greedy_sample_48"]  # the committed weights are the ones the record describes
    ids = tokenizer.encode(prompt)
    assert torch.equal(model.generate(ids, 48), model.generate(ids, 48, use_cache=False))
    assert len(a.encode("utf-8")) == 48
    assert all(c.isprintable() or c == "\n" for c in a), repr(a)


def test_greedy_generation_writes_english_words(model):
    vocab = corpus_words()
    hits, total = 0.0, 0
    for prompt in PROMPTS:
        rate, n = word_hit_rate(default.generate_text(model, prompt, 48), vocab)
        hits, total = hits + rate * n, total + n
    assert total >= 20 and hits / total >= 0.8, (hits, total)
    # control: the same check rejects the seeded-random tiny-llama
    random_model = get_workload("tiny-llama").build(0)
    rates = [word_hit_rate(default.generate_text(random_model, p, 48), vocab) for p in PROMPTS]
    assert sum(r * n for r, n in rates) < 0.5 * max(1, sum(n for _, n in rates))


def test_heldout_loss_is_below_unigram_entropy(model, meta):
    held = default.corpus_text("heldout")
    entropy = default.unigram_entropy(held)
    assert meta["heldout_loss"] < entropy
    assert abs(default.byte_loss(model, held) - meta["heldout_loss"]) < 1e-3
    assert default.byte_loss(model, default.corpus_text("train")) < meta["heldout_loss"] + 1.0
    # control: an untrained model of the same shape is worse than the unigram baseline
    assert default.byte_loss(get_workload("tiny-llama").build(0), held) > entropy


def test_unigram_entropy_and_loss_units():
    assert default.unigram_entropy("abab") == pytest.approx(0.693147, abs=1e-6)
    assert default.unigram_entropy("aaaa") == 0.0
    assert default.nats_to_bits(0.6931471805599453) == pytest.approx(1.0)


def test_bad_inputs_raise_clear_errors(model):
    with pytest.raises(ValueError, match="empty"):
        default.generate_text(model, "", 4)
    with pytest.raises(ValueError, match="max_seq"):
        default.generate_text(model, "x" * 250, 10)
    with pytest.raises(ValueError, match="n_new"):
        default.generate_text(model, "x", -1)
    with pytest.raises(ValueError, match="split"):
        default.corpus_text("test")
    with pytest.raises(ValueError, match="window"):
        default.byte_loss(model, "abc", window=1000)
    with pytest.raises(ValueError, match="fewer than one window"):
        default.byte_loss(model, "abc")
    with pytest.raises(ValueError, match="empty"):
        default.unigram_entropy("")
