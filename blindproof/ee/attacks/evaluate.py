"""Run every attack on one workload and tier against the real EE transforms; report measured figures.

Three observers (docs/threat-model.md):

* wire observer — sees what the client sends (keyed first-block states, or permuted token ids when
  the server embeds) and what the server returns; no weights.
* server without the base weights — additionally holds the served (keyed) weights and every
  intermediate state of its own forward pass.
* server with the base weights — additionally knows the public model the deployment was made from.

Only the client's plaintext and the true key are used to *score* the attacks, never to run them.
"""

from __future__ import annotations

import copy
import hashlib
import os
import platform
import time
from dataclasses import dataclass

import numpy as np
import torch

from blindproof.ee import ClientCodec, EEKey, Split, encrypt_model
from blindproof.ee.attacks.cipher import (BigramModel, decipher, decipher_counts, known_from_template,
                                          symbols_from_states)
from blindproof.ee.attacks.corpus import CHAT_PREFIX, CHAT_SUFFIX, chat_messages, load_corpus_text, split_corpus
from blindproof.ee.attacks.hidden import invert_hidden_states
from blindproof.ee.attacks.served_lm import served_bigrams
from blindproof.ee.attacks.weights import recover_key
from blindproof.models.transformer import Transformer
from blindproof.models.workloads import get_workload

TIERS = ("permute", "rotate")
DEFAULT_LENGTHS = (256, 1024, 4096, 16384)
BYTE_ALPHABET = 256
MAX_SEARCH_VOCAB = 4096  # prefix-wise inversion beyond layer 0 runs one candidate per vocabulary entry


@dataclass(frozen=True)
class AttackConfig:
    """What to run: workload, tier, seeds and sizes."""

    workload: str = "tiny-llama"
    tier: str = "rotate"
    seed: int = 0
    prompt_bytes: int = 64
    lengths: tuple[int, ...] = DEFAULT_LENGTHS
    restarts: int = 20
    trials: int = 1  # disjoint stretches of victim text per ciphertext length
    related: tuple[float, ...] = (0.01, 0.1, 0.3, 1.0)  # relative weight changes of the deployed model
    use_default_model: bool = True  # tiny-llama: the trained default model when its weights exist


def attack_key(seed: int) -> EEKey:
    """A reproducible key for the experiment (a real deployment draws it from the OS CSPRNG)."""
    return EEKey(hashlib.sha256(f"blindproof/attack-eval/{seed}".encode()).digest())


def load_base(cfg: AttackConfig) -> tuple[Transformer, str]:
    """The public base model and a description of where its weights came from."""
    wl = get_workload(cfg.workload)
    if wl.kind != "transformer":
        raise ValueError(f"the attacks target transformers; workload {cfg.workload!r} is a {wl.kind}")
    if cfg.workload == "tiny-llama" and cfg.use_default_model:
        try:
            from blindproof.models.default import load_default_model
            return load_default_model(), "trained default model (blindproof.models.default)"
        except (ImportError, FileNotFoundError):
            pass
    return wl.build(cfg.seed), f"seeded random weights (seed {cfg.seed})"


def _true_stream_key(codec: ClientCodec, d: int) -> np.ndarray:
    return codec.encode_hidden(torch.eye(d, dtype=torch.float64)[None])[0].numpy()


def key_recovery(base: Transformer, tier: str, key: EEKey, prompt: torch.Tensor,
                 wrong_base: Transformer) -> tuple[dict, np.ndarray]:
    """Attack (a) on the default split and on a server-embeds/decodes split; returns (report, Q_rec).

    ``wrong_base`` (same shape, other weights) measures the attack without the true base weights.
    """
    out: dict = {"threat": "server with the base weights"}
    q_rec = None
    for split, name in ((Split(), "default"), (Split(client_embeds=False, client_decodes=False), "server_embeds")):
        enc = encrypt_model(base, key, tier, split)
        codec = ClientCodec(base, key, tier, split)
        vocab_from = () if name == "default" else (("embed", "lm_head") if base.cfg.output == "logits" else ("embed",))
        rec = recover_key(enc.model, base, vocab_from)
        q_true = _true_stream_key(codec, base.cfg.d_model)
        entry: dict = {"seconds": round(rec.seconds, 4),
                       "ffn_reconstruction_max_rel_residual": float(max(rec.ffn_residuals)),
                       "head_keys_max_rel_residual": float(max(rec.head_residuals))}
        is_perm = bool(np.all((q_true == 0) | (q_true == 1)))
        entry["residual_key"] = "permutation" if is_perm else "orthogonal"
        if is_perm:
            entry["residual_exact_fraction"] = float((rec.residual_permutation() == q_true.argmax(0)).mean())
        entry["residual_max_abs_error"] = float(np.abs(rec.residual - q_true).max())
        entry["residual_rel_error"] = float(np.linalg.norm(rec.residual - q_true) / np.linalg.norm(q_true))
        if rec.vocab_perm is not None:
            true_vocab = codec.decode_tokens(torch.arange(base.cfg.vocab_size)[None])[0].numpy()
            entry["vocab_source"] = rec.vocab_source
            entry["vocab_exact_fraction"] = float((rec.vocab_perm == true_vocab).mean())
        if name == "default":
            q_rec = rec.residual
            # the server decrypts its own output with the recovered key and decodes it with the base head
            with torch.no_grad():
                h_out = enc.model.run_blocks(codec.client_input(prompt))
                q = torch.as_tensor(rec.residual, dtype=h_out.dtype)
                stolen, truth = base.head(h_out @ q.T), base(prompt)
            if base.cfg.output == "logits":
                entry["output_top1_agreement"] = float((stolen.argmax(-1) == truth.argmax(-1)).float().mean())
            else:
                entry["output_rel_error"] = float((stolen - truth).norm() / truth.norm())
            # the same attack with the wrong base weights (a server that lacks them and guesses)
            wrong = recover_key(enc.model, wrong_base)
            entry["wrong_base"] = {"residual_rel_error": float(np.linalg.norm(wrong.residual - q_true)
                                                              / np.linalg.norm(q_true)),
                                   "ffn_reconstruction_max_rel_residual": float(max(wrong.ffn_residuals)),
                                   "head_keys_max_rel_residual": float(max(wrong.head_residuals))}
            if is_perm:
                entry["wrong_base"]["residual_exact_fraction"] = float(
                    (wrong.residual_permutation() == q_true.argmax(0)).mean())
        out[name] = entry
    return out, q_rec


def hidden_inversion(base: Transformer, tier: str, key: EEKey, prompt: torch.Tensor, q_rec: np.ndarray,
                     wrong_base: Transformer) -> dict:
    """Attack (b): the server rebuilds the prompt from the states it sees at every block boundary.

    Also run keyless with ``wrong_base`` (same shape, other weights): a server without the base weights.
    """
    enc = encrypt_model(base, key, tier)
    codec = ClientCodec(base, key, tier)
    deep = base.cfg.causal and base.cfg.vocab_size <= MAX_SEARCH_VOCAB
    layers = list(range(base.cfg.n_layers + 1)) if deep else [0]
    rows = []
    with torch.no_grad():
        h_in = codec.client_input(prompt)
        for layer in layers:
            served = layer_states_served(enc.model, h_in, layer)[0]
            row = {"layer": layer}
            for label, k, model in (("with_recovered_key", q_rec, base), ("without_key", None, base),
                                    ("wrong_base_without_key", None, wrong_base)):
                t0 = time.perf_counter()
                guess = invert_hidden_states(model, served, layer, k)
                row[label] = float((guess == prompt[0]).float().mean())
                row[label + "_seconds"] = round(time.perf_counter() - t0, 3)
            rows.append(row)
    note = "layer 0 is what the client sends (first block input); layer L is the server's output"
    if not deep:
        note += ("; deeper layers not measured (" + ("bidirectional model" if not base.cfg.causal else
                 f"vocabulary above {MAX_SEARCH_VOCAB}: one forward per candidate is too slow here") + ")")
    return {"threat": "server with the base weights", "prompt_tokens": int(prompt.shape[1]), "layers": rows,
            "note": note}


def layer_states_served(model: Transformer, h: torch.Tensor, layer: int) -> torch.Tensor:
    """What the server holds at block boundary ``layer`` when it runs its blocks on ``h``."""
    rope = (model.rope_cos, model.rope_sin) if model.cfg.position == "rope" else None
    for i in range(layer):
        h = model.blocks[i](h, 0, rope, None, i)
    return h


def decipherment(base: Transformer, tier: str, key: EEKey, attacker_text: bytes, victim_text: bytes,
                 lengths: tuple[int, ...], restarts: int, seed: int, trials: int = 1) -> dict:
    """Attack (c): substitution decipherment of the client's traffic vs how much of it was seen.

    Each length is measured on up to ``trials`` disjoint stretches of the victim text (fewer when the
    text does not hold that many); the report gives the mean and the worst trial.
    """
    # the traffic is byte-tokenized text, so the plaintext alphabet is the 256 byte tokens
    lm = BigramModel.fit([np.frombuffer(attacker_text, dtype=np.uint8)], BYTE_ALPHABET)
    streams = {"first_block_states": ClientCodec(base, key, tier, Split()),
               "token_ids": ClientCodec(base, key, tier, Split(client_embeds=False))}
    curves: dict[str, list] = {name: [] for name in streams}
    room = min(240, base.cfg.max_seq - len(CHAT_PREFIX) - len(CHAT_SUFFIX))  # a message fits one forward
    for n in lengths:
        traffic = []
        stride = len(victim_text) // max(trials, 1)
        for t in range(max(trials, 1)):
            try:
                msgs = chat_messages(victim_text[t * stride:], n, max_message=room)
            except ValueError:
                break  # this stretch is too short for n bytes
            traffic.append([np.frombuffer(m, dtype=np.uint8).astype(np.int64) for m in msgs])
        if not traffic:
            raise ValueError(f"victim text too short for {n} bytes of traffic")
        for name, codec in streams.items():
            t0 = time.perf_counter()
            runs = [_decipher_trial(codec, name, plain, lm, restarts, seed + i) for i, plain in enumerate(traffic)]
            entry: dict = {"bytes": n, "trials": len(runs), "messages": len(traffic[0]),
                           "distinct_symbols": runs[0]["distinct_symbols"],
                           "substitution": all(r["substitution"] for r in runs)}
            for metric in ("frequency_rank_only", "frequency_only", "known_plaintext"):
                vals = [r[metric] for r in runs if metric in r]
                if vals:
                    entry[metric] = round(float(np.mean(vals)), 4)
                    entry[metric + "_min"] = round(float(np.min(vals)), 4)
            entry["seconds_per_trial"] = round((time.perf_counter() - t0) / len(runs), 3)
            curves[name].append(entry)
    return {"threat": "wire observer; server without the base weights", "attacker_corpus_bytes": len(attacker_text),
            "victim_text_disjoint": True, "template": (CHAT_PREFIX + b"{text}" + CHAT_SUFFIX).decode(),
            "metric": "fraction of message-text bytes (template excluded) recovered; mean and worst over trials",
            "curves": curves}


@torch.no_grad()
def perturbed(model: Transformer, rel: float, seed: int) -> Transformer:
    """A copy of ``model`` with every weight moved by Gaussian noise of relative size ``rel``.

    A stand-in for a privately fine-tuned model whose public base the server knows (real fine-tuning
    is not simulated: its changes are low-rank and uneven, this noise is neither).
    """
    out = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    for p in out.parameters():
        p.add_(rel * p.std() * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return out


def related_base(base: Transformer, tier: str, key: EEKey, prompt: torch.Tensor, rels: tuple[float, ...],
                 seed: int) -> dict:
    """Attacks (a) and (b, layer 0) when the server knows only a model related to the deployed one."""
    rows = []
    for rel in rels:
        private = perturbed(base, rel, seed)
        enc, codec = encrypt_model(private, key, tier), ClientCodec(private, key, tier)
        rec = recover_key(enc.model, base)
        q_true = _true_stream_key(codec, base.cfg.d_model)
        row = {"relative_change": rel,
               "residual_rel_error": float(np.linalg.norm(rec.residual - q_true) / np.linalg.norm(q_true)),
               "ffn_reconstruction_max_rel_residual": float(max(rec.ffn_residuals))}
        if bool(np.all((q_true == 0) | (q_true == 1))):
            row["residual_exact_fraction"] = float((rec.residual_permutation() == q_true.argmax(0)).mean())
        h0 = codec.client_input(prompt)[0]
        for label, k in (("prompt_layer0_with_recovered_key", rec.residual), ("prompt_layer0_without_key", None)):
            row[label] = float((invert_hidden_states(base, h0, 0, k) == prompt[0]).float().mean())
        if base.cfg.output == "logits":
            with torch.no_grad():
                h_out = enc.model.run_blocks(codec.client_input(prompt))
                stolen = base.head(h_out @ torch.as_tensor(rec.residual, dtype=h_out.dtype).T).argmax(-1)
                row["output_top1_agreement"] = float((stolen == private(prompt).argmax(-1)).float().mean())
        rows.append(row)
    return {"threat": "server with a public model related to the deployed one (not its exact weights)",
            "model_change": "Gaussian noise of the given size relative to each tensor's spread (a proxy for "
                            "fine-tuning)", "rows": rows}


def served_model_language(base: Transformer, tier: str, key: EEKey, attacker_text: bytes, victim_text: bytes,
                          restarts: int, seed: int) -> dict:
    """Vocabulary key from the served model's own predictions (server embeds and decodes, no base weights)."""
    cfg = base.cfg
    out: dict = {"threat": "server without the base weights (split: server embeds and decodes)"}
    if cfg.output != "logits" or cfg.vocab_size > MAX_SEARCH_VOCAB:
        out["note"] = "not measured: needs a language-model head and a vocabulary of at most " + str(MAX_SEARCH_VOCAB)
        return out
    split = Split(client_embeds=False, client_decodes=False)
    enc, codec = encrypt_model(base, key, tier, split), ClientCodec(base, key, tier, split)
    t0 = time.perf_counter()
    bigrams, unigram = served_bigrams(enc.model)
    lm = BigramModel.fit([np.frombuffer(attacker_text, dtype=np.uint8)], cfg.vocab_size)
    k, init = decipher_counts(bigrams, unigram, lm, restarts=restarts, seed=seed)
    out["seconds"] = round(time.perf_counter() - t0, 3)
    plain = torch.from_numpy(np.frombuffer(victim_text, dtype=np.uint8).astype(np.int64))[None]
    sent = codec.encode_tokens(plain)[0].numpy()  # what the client would send, across many requests
    out["victim_text_accuracy"] = round(float((k[sent] == plain[0].numpy()).mean()), 4)
    out["victim_text_accuracy_frequency_rank_only"] = round(float((init[sent] == plain[0].numpy()).mean()), 4)
    out["victim_text_bytes"] = int(plain.shape[1])
    out["note"] = "no client traffic used to find the key; the victim text only scores it"
    return out


def _decipher_trial(codec: ClientCodec, stream: str, plain: list[np.ndarray], lm: BigramModel,
                    restarts: int, seed: int) -> dict:
    """Encrypt one stretch of traffic as the client would, decipher it, score it."""
    vocab = len(lm.unigram)
    sent = [codec.client_input(torch.from_numpy(p)[None])[0].numpy() for p in plain]
    if stream == "token_ids":  # relabel the observed ids densely (any labelling is as good)
        labels = np.unique(np.concatenate(sent), return_inverse=True)[1].ravel()
    else:  # group equal first-block states into symbols, as an observer can
        labels = symbols_from_states(np.concatenate(sent))
    cipher = np.split(labels, np.cumsum([len(p) for p in plain])[:-1])
    flat_c, flat_p = np.concatenate(cipher), np.concatenate(plain)
    pairs = set(zip(flat_c.tolist(), flat_p.tolist()))
    out: dict = {"distinct_symbols": int(len(np.unique(flat_c))),
                 # scoring only: is the observed stream a one-to-one relabelling of the plaintext?
                 "substitution": len(pairs) == len({c for c, _ in pairs}) == len({p for _, p in pairs})}
    if flat_c.max() >= vocab:
        return out  # more symbols than the alphabet: not a substitution the decipherment can model
    for label, use_known in (("frequency_only", False), ("known_plaintext", True)):
        try:
            known = known_from_template(cipher, CHAT_PREFIX, CHAT_SUFFIX) if use_known else {}
        except ValueError:
            continue  # the template does not line up with the stream
        k, init = decipher(cipher, lm, known, restarts=restarts, seed=seed)
        out[label] = _text_accuracy(k, cipher, plain)
        if not use_known:
            out["frequency_rank_only"] = _text_accuracy(init, cipher, plain)
    return out


def _text_accuracy(key: np.ndarray, cipher: list[np.ndarray], plain: list[np.ndarray]) -> float:
    hits = total = 0
    for c, p in zip(cipher, plain):
        body = slice(len(CHAT_PREFIX), len(p) - len(CHAT_SUFFIX))
        hits += int((key[c[body]] == p[body]).sum())
        total += len(p[body])
    return round(hits / max(total, 1), 4)


def environment() -> dict:
    """Machine, thread count and library versions printed beside every figure."""
    import numba
    import scipy
    return {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "scipy": scipy.__version__, "numba": numba.__version__,
            "threads": torch.get_num_threads(), "blindproof_threads": os.environ.get("BLINDPROOF_THREADS", "1")}


def run_attacks(cfg: AttackConfig) -> dict:
    """Every attack for one workload and tier; a JSON-ready report of measured figures."""
    if cfg.tier not in TIERS:
        raise ValueError(f"unknown EE tier {cfg.tier!r}; choose one of {', '.join(TIERS)}")
    if not cfg.lengths or min(cfg.lengths) <= len(CHAT_PREFIX) + len(CHAT_SUFFIX):
        raise ValueError(f"ciphertext lengths must each exceed one chat template, got {cfg.lengths}")
    base, source = load_base(cfg)
    base = base.eval()
    key = attack_key(cfg.seed)
    attacker_text, victim_text = split_corpus(load_corpus_text(), max(max(cfg.lengths) * 9 // 8, 4096))
    prompt_bytes = min(cfg.prompt_bytes, base.cfg.max_seq)
    prompt = torch.tensor([list(victim_text[:prompt_bytes])], dtype=torch.int64)
    t0 = time.perf_counter()
    report: dict = {"workload": cfg.workload, "model": source, "tier": cfg.tier, "seed": cfg.seed}
    wrong_base = get_workload(cfg.workload).build(cfg.seed + 1)
    report["key_recovery"], q_rec = key_recovery(base, cfg.tier, key, prompt, wrong_base)
    report["hidden_inversion"] = hidden_inversion(base, cfg.tier, key, prompt, q_rec, wrong_base)
    report["decipherment"] = decipherment(base, cfg.tier, key, attacker_text, victim_text, cfg.lengths,
                                          cfg.restarts, cfg.seed, cfg.trials)
    report["related_base"] = related_base(base, cfg.tier, key, prompt, cfg.related, cfg.seed)
    report["served_model_language"] = served_model_language(base, cfg.tier, key, attacker_text,
                                                            victim_text[:4096], cfg.restarts, cfg.seed)
    report["seconds_total"] = round(time.perf_counter() - t0, 2)
    report["environment"] = environment()
    return report
