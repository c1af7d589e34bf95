#!/usr/bin/env python
"""Train the embedded default model: the tiny-llama config on the bundled byte-level corpus.

Deterministic (fixed seed, one thread, CPU). Writes ``blindproof/models/assets/tiny_llama.safetensors``
and ``tiny_llama.json`` (config, hyperparameters, train / held-out loss, unigram baselines, corpus and
weight digests, timing, a greedy sample).

    python scripts/train_default_model.py            # the committed model
    python scripts/train_default_model.py --steps 50 --out /tmp/x   # a quick smoke run
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import blindproof  # noqa: F401  (pins thread pools)
from blindproof._threads import configured_threads
from blindproof.models import default, tokenizer
from blindproof.models.transformer import Transformer
from blindproof.models.workloads import TINY_LLAMA


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@torch.no_grad()
def init_model(model: Transformer, seed: int) -> None:
    """GPT-style init: N(0, 0.02) matrices, output projections scaled down by depth, unit norm gains."""
    g = torch.Generator().manual_seed(seed)
    depth_scale = 1.0 / math.sqrt(2 * model.cfg.n_layers)
    for name, p in model.named_parameters():
        if p.dim() == 1:
            p.fill_(1.0 if name.endswith("weight") else 0.0)
            continue
        std = 0.02 * (depth_scale if name.endswith(("wo.weight", "down.weight")) else 1.0)
        p.copy_(torch.randn(p.shape, generator=g) * std)


def add_dropout(model: Transformer, p: float) -> list:
    """Dropout on the embedding and on every attention / MLP output, during training only.

    The Transformer itself has none (inference never needs it); forward hooks add it here without
    changing the architecture. Returns the hook handles.
    """
    if p == 0:
        return []
    hook = lambda mod, inp, out: F.dropout(out, p, mod.training)  # noqa: E731
    mods = [model.embed] + [m for blk in model.blocks for m in (blk.attn, blk.mlp)]
    return [m.register_forward_hook(hook) for m in mods]


def lr_at(step: int, steps: int, peak: float, warmup: int) -> float:
    """Linear warmup, then cosine decay to a tenth of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def train(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    train_text, heldout_text = default.corpus_text("train"), default.corpus_text("heldout")
    data = tokenizer.encode(train_text)[0]
    model = Transformer(TINY_LLAMA)
    init_model(model, args.seed)
    hooks = add_dropout(model, args.dropout)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(args.seed + 1)
    offsets = torch.arange(args.seq + 1)
    history = []
    t0 = time.perf_counter()
    model.train()
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        starts = torch.randint(0, len(data) - args.seq - 1, (args.batch, 1), generator=g)
        window = data[starts + offsets]
        logits = model(window[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), window[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % args.log_every == 0 or step == args.steps - 1:
            model.eval()
            held = default.byte_loss(model, heldout_text)
            model.train()
            history.append({"step": step, "batch_loss": round(loss.item(), 4), "heldout_loss": round(held, 4),
                            "seconds": round(time.perf_counter() - t0, 1)})
            print(json.dumps(history[-1]), flush=True)
    seconds = time.perf_counter() - t0
    for h in hooks:
        h.remove()
    model.eval()
    train_loss = default.byte_loss(model, train_text)
    heldout_loss = default.byte_loss(model, heldout_text)
    sample = default.generate_text(model, default.default_prompt(), 48)
    return {"model": model, "seconds": seconds, "train_loss": train_loss, "heldout_loss": heldout_loss,
            "history": history, "sample": sample}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--dropout", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=250)
    ap.add_argument("--out", type=Path, default=default.ASSETS, help="folder for the weights and metadata")
    args = ap.parse_args()
    if args.seq + 1 > TINY_LLAMA.max_seq:
        ap.error(f"--seq must be below max_seq {TINY_LLAMA.max_seq}")

    result = train(args)
    model = result.pop("model")
    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / default.WEIGHTS_PATH.name
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    train_text, heldout_text = default.corpus_text("train"), default.corpus_text("heldout")
    meta = {
        "config": TINY_LLAMA.to_dict(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "hyperparameters": {k: getattr(args, k) for k in ("steps", "batch", "seq", "lr", "warmup",
                                                          "weight_decay", "dropout", "seed")},
        "loss_unit": "nats per byte (next-byte cross-entropy, non-overlapping 128-byte windows)",
        "train_loss": round(result["train_loss"], 6),
        "heldout_loss": round(result["heldout_loss"], 6),
        "heldout_bits_per_byte": round(default.nats_to_bits(result["heldout_loss"]), 6),
        "heldout_unigram_entropy": round(default.unigram_entropy(heldout_text), 6),
        "train_seconds": round(result["seconds"], 1),
        "corpus_train_sha256": sha256(train_text.encode()),
        "corpus_heldout_sha256": sha256(heldout_text.encode()),
        "corpus_bytes": {"train": len(train_text.encode()), "heldout": len(heldout_text.encode())},
        "weights_sha256": sha256(weights.read_bytes()),
        "prompt": default.default_prompt(),
        "greedy_sample_48": result["sample"],
        "history": result["history"],
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "threads": configured_threads(), "torch": torch.__version__,
                    "python": platform.python_version()},
    }
    (args.out / default.METADATA_PATH.name).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    print(f"train loss {meta['train_loss']:.4f}  held-out {meta['heldout_loss']:.4f} nats/byte "
          f"(unigram {meta['heldout_unigram_entropy']:.4f})  {meta['train_seconds']} s")
    print(f"{default.default_prompt()!r} -> {result['sample']!r}")


if __name__ == "__main__":
    main()
