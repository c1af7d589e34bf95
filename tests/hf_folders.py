"""Small Hugging Face model folders built on the spot (config.json + safetensors, sharded on request, +
tokenizer.json), the way ``save_pretrained`` writes them; nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import torch

VOCAB = 300  # a byte-level BPE: 256 bytes + 44 merges
CORPUS = ["the tide comes in twice a day and the sea is calm", "bread is made of flour water and salt",
          "a proof shows that the output came from the committed model", "the garden grows in the rain"] * 8


def tokenizer_json(path: Path, vocab: int = VOCAB) -> Path:
    """A byte-level BPE tokenizer.json of ``vocab`` tokens, trained on a fixed corpus (deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    assert tok.get_vocab_size() == vocab, tok.get_vocab_size()
    tok.save(str(path))
    return path


def _module(kind: str, seed: int):
    import transformers as T

    torch.manual_seed(seed)
    if kind == "gpt2":
        cfg = T.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64, bos_token_id=1,
                           eos_token_id=2)
        return T.GPT2LMHeadModel(cfg)
    if kind == "llama":
        cfg = T.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                            bos_token_id=1, eos_token_id=2, pad_token_id=0)
        return T.LlamaForCausalLM(cfg)
    if kind == "bert":  # MiniLM-shaped: a BERT encoder, mean-pooled sentence embedding
        cfg = T.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=64, pad_token_id=0)
        return T.BertModel(cfg, add_pooling_layer=False)
    raise ValueError(kind)


def hf_folder(path: Path, kind: str, *, shards: bool = False, tokenizer: bool = True, seed: int = 0):
    """Write a tiny ``kind`` model (gpt2, llama, bert) to ``path``; returns the HF module (float32, eval)."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    m = _module(kind, seed).eval()
    with torch.no_grad():  # visible norm gains and biases, as trained models have
        for name, p in m.named_parameters():
            if p.dim() == 1:
                p.add_(0.05 * torch.randn(p.shape))
    m.save_pretrained(str(path), max_shard_size="40KB" if shards else "5GB")
    if tokenizer:
        tokenizer_json(path / "tokenizer.json")
    return m
