"""Attack (c): decipher a statically keyed token stream by frequency analysis and known plaintext.

A static vocabulary permutation is a substitution cipher on tokens, and so is any keyed state that
depends only on the token: with RoPE, the first block's input ``embed(t) · Q`` is the same row every
time token t appears. An observer (on the wire, or a server without the base weights) groups equal
symbols, fixes the ones it knows from the chat template, and hill-climbs the rest of the key to
maximise a byte-bigram language model fitted on public text of the same kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from numba import njit


@dataclass(frozen=True)
class BigramModel:
    """Smoothed token bigram model: ``logp[a, b] = log P(b | a)``, plus unigram counts."""

    logp: np.ndarray
    unigram: np.ndarray

    @classmethod
    def fit(cls, sequences: Iterable[Sequence[int]], vocab: int, alpha: float = 0.1) -> "BigramModel":
        """Fit on token sequences (no bigram crosses a sequence boundary)."""
        if vocab < 2:
            raise ValueError(f"vocab must be at least 2, got {vocab}")
        counts = np.zeros((vocab, vocab))
        uni = np.zeros(vocab)
        for seq in sequences:
            s = np.asarray(seq, dtype=np.int64)
            if s.size and (s.min() < 0 or s.max() >= vocab):
                raise ValueError(f"token ids must lie in [0, {vocab})")
            np.add.at(counts, (s[:-1], s[1:]), 1.0)
            np.add.at(uni, s, 1.0)
        if uni.sum() == 0:
            raise ValueError("cannot fit a language model on an empty corpus")
        logp = np.log((counts + alpha) / (counts.sum(1, keepdims=True) + alpha * vocab))
        return cls(logp=logp, unigram=uni)


def symbols_from_states(states: np.ndarray, rel_tol: float = 1e-5) -> np.ndarray:
    """Label rows of ``states`` (n, d) so that equal rows (up to ``rel_tol``) share a label.

    Exactly equal rows are grouped by their bytes; distinct rows closer than ``rel_tol`` times the
    median row norm are merged too (a different batch shape may change the last few bits).
    """
    states = np.ascontiguousarray(np.asarray(states, dtype=np.float64))
    if states.ndim != 2:
        raise ValueError(f"states must have shape (n, d), got {states.shape}")
    uniq, inverse = np.unique(states, axis=0, return_inverse=True)
    tol = rel_tol * float(np.median(np.linalg.norm(uniq, axis=1)) or 1.0)
    parent = np.arange(len(uniq))
    sq = (uniq ** 2).sum(1)
    for i in range(0, len(uniq), 1024):
        d2 = sq[i:i + 1024, None] + sq[None, :] - 2.0 * uniq[i:i + 1024] @ uniq.T
        for a, b in zip(*np.nonzero(d2 <= tol * tol)):
            ra, rb = _find(parent, i + a), _find(parent, b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([_find(parent, i) for i in range(len(uniq))])
    _, labels = np.unique(roots, return_inverse=True)
    return labels[inverse.ravel()].astype(np.int64)


def _find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return int(i)


def known_from_template(messages: Sequence[np.ndarray], prefix: Sequence[int], suffix: Sequence[int]) -> dict[int, int]:
    """Cipher→plain pairs read off every message's known template prefix and suffix.

    Raises ValueError if the pairs are not one-to-one (the stream is then not a substitution of the
    assumed template).
    """
    known: dict[int, int] = {}
    for msg in messages:
        msg = np.asarray(msg)
        if len(msg) < len(prefix) + len(suffix):
            raise ValueError("a message is shorter than its template")
        pairs = list(zip(msg[:len(prefix)], prefix)) + list(zip(msg[len(msg) - len(suffix):], suffix))
        for c, p in pairs:
            if known.setdefault(int(c), int(p)) != int(p):
                raise ValueError(f"cipher symbol {int(c)} maps to two plaintext symbols: not a substitution")
    if len(set(known.values())) != len(known):
        raise ValueError("two cipher symbols map to one plaintext symbol: not a substitution")
    return known


@njit(cache=True)
def _local(c, lp, key, a, b):
    s = 0.0
    ka, kb = key[a], key[b]
    for y in range(c.shape[0]):
        ky = key[y]
        s += c[a, y] * lp[ka, ky] + c[b, y] * lp[kb, ky] + c[y, a] * lp[ky, ka] + c[y, b] * lp[ky, kb]
    # entries in rows {a,b} and columns {a,b} were counted twice
    s -= c[a, a] * lp[ka, ka] + c[a, b] * lp[ka, kb] + c[b, a] * lp[kb, ka] + c[b, b] * lp[kb, kb]
    return s


@njit(cache=True)
def _score(c, lp, key):
    s = 0.0
    n = c.shape[0]
    for x in range(n):
        for y in range(n):
            if c[x, y] != 0.0:
                s += c[x, y] * lp[key[x], key[y]]
    return s


@njit(cache=True)
def _climb(c, lp, key, movable, active, max_sweeps):
    """Greedy pairwise swaps of the key until no swap improves the bigram score."""
    for _ in range(max_sweeps):
        improved = False
        for a in active:
            if not movable[a]:
                continue
            for b in range(c.shape[0]):
                if b == a or not movable[b]:
                    continue
                before = _local(c, lp, key, a, b)
                key[a], key[b] = key[b], key[a]
                if _local(c, lp, key, a, b) > before + 1e-9:
                    improved = True
                else:
                    key[a], key[b] = key[b], key[a]
        if not improved:
            break
    return key


@njit(cache=True)
def _search(c, lp, key, movable, active, restarts, kicks, seed):
    """Hill climbing with random restarts around the best key so far."""
    np.random.seed(seed)
    best = _climb(c, lp, key.copy(), movable, active, 50)
    best_score = _score(c, lp, best)
    mov = active[movable[active]]
    if mov.size < 2:
        return best
    for _ in range(restarts):
        trial = best.copy()
        for _ in range(kicks):
            a = mov[np.random.randint(mov.size)]
            b = np.random.randint(c.shape[0])
            if movable[b]:
                trial[a], trial[b] = trial[b], trial[a]
        trial = _climb(c, lp, trial, movable, active, 50)
        s = _score(c, lp, trial)
        if s > best_score + 1e-9:
            best, best_score = trial, s
    return best


def frequency_key(counts: np.ndarray, lm: BigramModel, known: dict[int, int]) -> np.ndarray:
    """Initial full key: known pairs, then cipher symbols by frequency onto plaintext by frequency."""
    vocab = len(lm.unigram)
    key = np.full(vocab, -1, dtype=np.int64)
    for c, p in known.items():
        key[c] = p
    free_plain = [p for p in np.argsort(-lm.unigram, kind="stable") if p not in set(known.values())]
    free_cipher = [c for c in np.argsort(-counts, kind="stable") if c not in known]
    for c, p in zip(free_cipher, free_plain):
        key[c] = p
    return key


def decipher(messages: Sequence[np.ndarray], lm: BigramModel, known: dict[int, int] | None = None,
             restarts: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Guess the substitution key of ``messages`` (cipher symbol ids in [0, vocab)).

    Returns (key, frequency_only_key): ``key[c]`` is the plaintext guess for cipher symbol c after
    hill climbing; the second is the frequency-rank guess it started from.
    """
    vocab = len(lm.unigram)
    counts = np.zeros(vocab)
    bigrams = np.zeros((vocab, vocab))
    for msg in messages:
        m = np.asarray(msg, dtype=np.int64)
        if m.size and (m.min() < 0 or m.max() >= vocab):
            raise ValueError(f"cipher symbols must lie in [0, {vocab})")
        np.add.at(counts, m, 1.0)
        np.add.at(bigrams, (m[:-1], m[1:]), 1.0)
    return decipher_counts(bigrams, counts, lm, known, restarts, seed)


def decipher_counts(bigrams: np.ndarray, counts: np.ndarray, lm: BigramModel, known: dict[int, int] | None = None,
                    restarts: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`decipher` from (possibly fractional) cipher bigram and unigram counts."""
    vocab = len(lm.unigram)
    if bigrams.shape != (vocab, vocab) or counts.shape != (vocab,):
        raise ValueError(f"counts must have shapes ({vocab}, {vocab}) and ({vocab},)")
    known = dict(known or {})
    if len(set(known.values())) != len(known):
        raise ValueError("known plaintext maps two cipher symbols to one plaintext symbol")
    init = frequency_key(counts, lm, known)
    movable = np.ones(vocab, dtype=np.bool_)
    for c in known:
        movable[c] = False
    active = np.nonzero(counts > 0)[0].astype(np.int64)
    key = _search(np.ascontiguousarray(bigrams, dtype=np.float64), lm.logp, init.copy(), movable, active,
                  restarts, 3, seed)
    return key, init
