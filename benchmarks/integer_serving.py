"""EE transforms composed with quantization: equivariance and fidelity on the integer serving path.

For each tier (none = plaintext integer deployment, permute, rotate) the float model is transformed
first, then quantized with the calibration data mapped through the same key (exactly what
``BlindClient.deploy(..., mode="integer")`` does), and answers are computed as an integer deployment
computes them: the client's IntegerCodec encodes, ``run_program`` (the server's integer_forward) runs
the program, the codec decodes. Measured against the float model and against the plaintext integer
model:

  1. default tiny-llama byte model: 50 held-out windows of 128 bytes (6400 positions);
  2. MLP 784-56-10 trained here on scikit-learn digits (as in benchmarks/fidelity.py), 500 held-out.

Writes docs/integer_serving.{json,md}. Run: python benchmarks/integer_serving.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import blindproof  # noqa: F401  (pins thread pools first)
import numpy as np
import torch

from blindproof.client.codecs import PlainCodec
from blindproof.client.integer import IntegerCodec, integer_split, quantize_for_server
from blindproof.ee import ClientCodec, encrypt_model, generate_key
from blindproof.server.integer_executor import integer_forward
from _digits import N_TRAIN, digits_mlp  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TIERS = ("none", "permute", "rotate")


def machine() -> dict:
    return {"machine": platform.machine(), "cpus": os.cpu_count(),
            "threads": int(os.environ.get("BLINDPROOF_THREADS", "1")), "python": platform.python_version(),
            "numpy": np.__version__, "torch": torch.__version__, "load_avg_start": os.getloadavg()[0]}


class _Loaded:  # what integer_forward reads from a deployment
    def __init__(self, qm) -> None:
        self.quantized = qm


def served(model, tier: str, calib: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Decoded output of an integer deployment of ``model`` under a fresh key of ``tier``."""
    split = integer_split(model)
    t0 = time.perf_counter()
    if tier == "none":
        codec, server_model = PlainCodec(model, split), model
    else:
        key = generate_key()
        server_model = encrypt_model(model, key, tier, split).model
        codec = ClientCodec(model, key, tier, split)
    qm = quantize_for_server(server_model, codec, calib)
    t_prep = time.perf_counter() - t0
    ic = IntegerCodec(codec, qm, bytes(32))
    outs = [ic.client_output(integer_forward(_Loaded(qm), ic.client_input(x[i:i + 8]))) for i in range(0, len(x), 8)]
    return torch.cat(outs), t_prep


def compare(f: torch.Tensor, outs: dict[str, torch.Tensor]) -> dict:
    base = outs["none"]
    res = {}
    for tier, o in outs.items():
        res[tier] = {"top1_vs_float": float((o.argmax(-1) == f.argmax(-1)).double().mean()),
                     "top1_vs_plain_integer": float((o.argmax(-1) == base.argmax(-1)).double().mean()),
                     "bit_exact_vs_plain_integer": bool(torch.equal(o, base)),
                     "max_abs_diff_vs_plain_integer": float((o - base).abs().max()),
                     "max_abs_diff_vs_float": float((o - f).abs().max())}
    return res


def llama(quick: bool, window: int = 128) -> dict:
    from blindproof.models import tokenizer
    from blindproof.models.default import corpus_text, load_default_model

    model = load_default_model()
    train = tokenizer.encode(corpus_text("train"))[0]
    held = tokenizer.encode(corpus_text("heldout"))[0]
    step = len(train) // 8
    calib = torch.stack([train[i * step:i * step + window] for i in range(8)])
    n_win = 8 if quick else 50
    batch = held[:n_win * window].reshape(n_win, window)
    with torch.no_grad():
        f = model(batch).double()
    outs, prep = {}, {}
    for tier in TIERS:
        outs[tier], prep[tier] = served(model, tier, calib, batch)
    tgt = batch[:, 1:]
    res = compare(f, outs)
    for tier, o in outs.items():
        res[tier]["next_byte_accuracy"] = float((o[:, :-1].argmax(-1) == tgt).double().mean())
        res[tier]["transform_and_quantize_s"] = prep[tier]
    return {"model": "default tiny-llama byte model", "positions": int(batch.numel()),
            "data": f"{n_win} held-out windows of {window} bytes",
            "calibration": f"8 windows of {window} bytes from the training corpus",
            "float_next_byte_accuracy": float((f[:, :-1].argmax(-1) == tgt).double().mean()), "tiers": res}


def mlp(quick: bool) -> dict:
    model, x, y = digits_mlp(quick)
    n_train = N_TRAIN
    xt, yt = x[n_train:], y[n_train:]
    with torch.no_grad():
        f = model(xt).double()
    outs = {tier: served(model, tier, x[:256].double(), xt.double())[0] for tier in TIERS}
    res = compare(f, outs)
    for tier, o in outs.items():
        res[tier]["accuracy"] = float((o.argmax(-1) == yt).double().mean())
    return {"model": "MLP 784-56-10 trained on scikit-learn digits (as in benchmarks/fidelity.py)",
            "samples": len(xt), "calibration": "256 training images",
            "float_accuracy": float((f.argmax(-1) == yt).double().mean()), "tiers": res}


def table(res: dict) -> str:
    lines = ["| model | tier | top-1 vs float | top-1 vs plaintext integer | bit-exact vs plaintext integer | "
             "accuracy (float / integer) |", "|---|---|---|---|---|---|"]
    for name, key, acc in (("default tiny-llama", "llama", "next_byte_accuracy"), ("MLP 784-56-10", "mlp", "accuracy")):
        r = res[key]
        fa = r["float_next_byte_accuracy"] if key == "llama" else r["float_accuracy"]
        for tier, t in r["tiers"].items():
            lines.append(f"| {name} | {tier} | {100 * t['top1_vs_float']:.2f}% | {100 * t['top1_vs_plain_integer']:.2f}% | "
                         f"{'yes' if t['bit_exact_vs_plain_integer'] else 'no'} (max diff "
                         f"{t['max_abs_diff_vs_plain_integer']:.3g}) | {100 * fa:.2f}% / {100 * t[acc]:.2f}% |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    res = {"machine": machine(), "llama": llama(args.quick), "mlp": mlp(args.quick)}
    md = table(res)
    m = res["machine"]
    md += (f"\n\nMeasured by `python benchmarks/integer_serving.py` on {m['cpus']} CPUs ({m['machine']}), "
           f"{m['threads']} thread(s), Python {m['python']}, numpy {m['numpy']}, torch {m['torch']}; "
           f"load average {m['load_avg_start']:.1f} at the start (shared machine).\n")
    print(md)
    if not args.quick:
        (DOCS / "integer_serving.json").write_text(json.dumps(res, indent=2) + "\n")
        (DOCS / "integer_serving.md").write_text("# Integer serving path: EE x quantization\n\n" + md)


if __name__ == "__main__":
    main()
