"""Convolutional networks from ``nn.Sequential`` through the one-call API: commit, prove, verify.

    python benchmarks/bench_cnn.py [--repeats 3] [--out docs/bench_cnn]

Two seeded float models, quantized from 64 random calibration inputs: LeNet-5 on a 1×28×28 input (two
5×5 convolutions, 2×2 max pooling, a classifier over the flattened map) and a small all-convolution
net on 3×32×32 (four 3×3 convolutions, two of stride 2, global average pooling). Per model: the
integer model's top-1 agreement with the float one on 64 fresh inputs, commit time, prove time and
verify time (medians of ``--repeats`` runs, one thread), proof size without the public input and
output, and the committed weight count. Machine, thread count and versions are printed beside them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from _machine import machine_facts  # noqa: E402  (benchmarks/ is on sys.path when run as a script)


def lenet5():
    import torch.nn as nn
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def allconv():
    import torch.nn as nn
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


MODELS = {"lenet5-28x28": (lenet5, (1, 28, 28)), "allconv-32x32": (allconv, (3, 32, 32))}


def run_one(name: str, repeats: int) -> dict:
    import numpy as np
    import torch

    import blindproof

    build, shape = MODELS[name]
    torch.manual_seed(0)
    model = build().eval()
    for m in model.modules():  # non-trivial batchnorm statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    calib = torch.randn(64, *shape)
    t0 = time.perf_counter()
    committed = blindproof.commit(model, calib)
    commit_s = time.perf_counter() - t0
    qm = committed.source.quantized
    test = torch.randn(64, *shape)
    with torch.no_grad():
        ref = model(test).argmax(-1).numpy()
    got = np.array([int(np.argmax(qm.forward(test[i:i + 1]))) for i in range(test.shape[0])])
    x = test[:1]
    prove_s, verify_s, sizes = [], [], []
    for _ in range(repeats):
        proof = blindproof.prove(committed, x)
        prove_s.append(proof.prove_s)
        t0 = time.perf_counter()
        ok = blindproof.verify(proof, committed)
        verify_s.append(time.perf_counter() - t0)
        if not ok:
            raise SystemExit(f"{name}: an honest proof did not verify: {ok}")
        sizes.append(len(proof.proof.without_public().to_bytes()))
    return {"model": name, "input": list(shape), "weights": int(sum(int(np.prod(w.shape)) for w in qm.weights.values())),
            "ops": len(qm.spec.ops), "top1_agreement": float((ref == got).mean()), "commit_s": commit_s,
            "prove_s_median": statistics.median(prove_s), "verify_s_median": statistics.median(verify_s),
            "proof_bytes": sizes[0], "repeats": repeats}


def markdown(results: list[dict], machine: dict) -> str:
    lines = ["| model | input | weights | ops | top-1 agreement (64 inputs) | commit | prove (median) | "
             "verify (median) | proof |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['model']} | {'×'.join(map(str, r['input']))} | {r['weights']:,} | {r['ops']} | "
                     f"{r['top1_agreement']:.2f} | {r['commit_s']:.2f} s | {r['prove_s_median']:.2f} s | "
                     f"{r['verify_s_median'] * 1e3:.0f} ms | {r['proof_bytes'] / 1e3:.0f} KB |")
    lines.append("")
    lines.append(f"Machine: {machine['cpu']}, {machine['cores']} cores, threads {machine['threads']}, "
                 f"Python {machine['python']}, numpy {machine['numpy']}, numba {machine['numba']}; "
                 f"load at start {machine['loadavg_1m_start']:.2f}. Seeded random weights; the proof size "
                 f"excludes the public input and output (bound by their digest).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None, help="write <out>.md and <out>.json")
    args = ap.parse_args(argv)
    machine = machine_facts()
    results = [run_one(n, args.repeats) for n in args.models.split(",") if n]
    text = markdown(results, machine)
    print(text)
    if args.out:
        Path(args.out + ".md").write_text("# Convolutional networks: commit, prove, verify\n\n"
                                          "`python benchmarks/bench_cnn.py --out docs/bench_cnn`\n\n" + text + "\n")
        Path(args.out + ".json").write_text(json.dumps({"machine": machine, "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
