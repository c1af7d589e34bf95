"""A served model that embeds and decodes is a language model over permuted token ids.

When the server runs the whole model (split: server embeds and decodes), it can query it on its own:
the next-token distribution after each single cipher token is a bigram model in cipher space. Its
statistics match those of public text in plaintext space up to the vocabulary permutation, so the
same hill climbing as for observed traffic recovers the permutation — with no base weights and no
client traffic at all. It only works as well as the model has learned the language: on random
weights there is nothing to find.
"""

from __future__ import annotations

import numpy as np
import torch

from blindproof.models.transformer import Transformer


@torch.no_grad()
def served_bigrams(model: Transformer, mass: float = 1e5, iters: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Expected (bigram, unigram) counts of ``model``'s own one-token-context predictions.

    ``P[a, b]`` = p(b | a) from a forward pass on each single token a; unigram weights are the
    stationary distribution of that chain (power iteration); both scaled to ``mass`` pseudo-tokens.
    """
    if not isinstance(model, Transformer) or model.cfg.output != "logits":
        raise TypeError("served_bigrams needs a blindproof Transformer with a language-model head")
    vocab = model.cfg.vocab_size
    tokens = torch.arange(vocab).view(vocab, 1)
    p = torch.softmax(model(tokens)[:, 0].to(torch.float64), dim=-1).numpy()
    pi = np.full(vocab, 1.0 / vocab)
    for _ in range(iters):
        pi = pi @ p
    pi /= pi.sum()
    return mass * pi[:, None] * p, mass * pi
