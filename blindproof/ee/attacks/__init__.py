"""Leakage evaluation of static EE: the attacks a wire observer or a server can run.

* :mod:`weights` — (a) key recovery by matching served weights against the public base weights;
* :mod:`hidden` — (b) prompt recovery from the hidden states the server sees;
* :mod:`cipher` — (c) frequency + known-plaintext decipherment of keyed token streams;
* :mod:`served_lm` — the vocabulary key from a served model's own predictions (no traffic needed);
* :mod:`evaluate` — runs all three against the real transforms and reports measured figures
  (``blindproof attack``; docs/threat-model.md).
"""

from blindproof.ee.attacks.cipher import (BigramModel, decipher, decipher_counts, known_from_template,
                                          symbols_from_states)
from blindproof.ee.attacks.hidden import invert_hidden_states, layer_states
from blindproof.ee.attacks.served_lm import served_bigrams
from blindproof.ee.attacks.weights import RecoveredKey, nearest_permutation, recover_key

__all__ = ["BigramModel", "RecoveredKey", "decipher", "decipher_counts", "invert_hidden_states",
           "known_from_template", "layer_states", "nearest_permutation", "recover_key", "served_bigrams",
           "symbols_from_states"]
