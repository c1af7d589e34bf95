"""EE cost: server forward of the transformed vs the plaintext model, client encode/decode, offline transform.

Plaintext and transformed server forwards (run_blocks) are timed in the same process, interleaved with
alternating order, and compared by their medians. A plaintext-vs-plaintext (A/A) ratio measured the same
way shows the noise floor of the machine. Writes docs/bench_ee.json and docs/bench_ee.md.

    python benchmarks/bench_ee.py [--workloads tiny-llama small-llama gpt2-block] [--seconds 20]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import blindproof  # noqa: F401  (pins thread pools first)
import numpy as np
import torch

from blindproof.ee import ClientCodec, EEKey, encrypt_model
from blindproof.models import get_workload
from _machine import cpu_name  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parents[1]


def machine() -> dict:
    cpu = cpu_name()
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "platform": platform.platform(), "loadavg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleaved(fa, fb, reps: int) -> tuple[list[float], list[float]]:
    """Alternate AB / BA so drift and cache effects fall on both sides equally."""
    a, b = [], []
    for i in range(reps):
        if i % 2:
            b.append(timed(fb))
            a.append(timed(fa))
        else:
            a.append(timed(fa))
            b.append(timed(fb))
    return a, b


def reps_for(fn, seconds: float, lo: int = 15, hi: int = 2000) -> int:
    for _ in range(3):
        fn()  # warm-up
    one = statistics.median(timed(fn) for _ in range(5))
    return int(min(hi, max(lo, seconds / (4 * one))))  # 4 = two models, A/B and A/A passes


@torch.no_grad()
def bench(name: str, tier: str, seconds: float, key: EEKey) -> dict:
    w = get_workload(name)
    model = w.build(0)
    tokens = w.example_input(0, 1)
    transform_s = [timed(lambda: encrypt_model(model, key, tier)) for _ in range(3)]
    enc = encrypt_model(model, key, tier)
    codec = ClientCodec(model, key, tier)
    h = model.embed_tokens(tokens)
    h_enc = codec.client_input(tokens)
    # baselines are fresh copies, allocated like the server copy: placement alone moves small models ~1%
    base, twin = copy.deepcopy(model), copy.deepcopy(model)
    plain = lambda: base.run_blocks(h)  # noqa: E731
    server = lambda: enc.model.run_blocks(h_enc)  # noqa: E731
    reps = reps_for(plain, seconds)
    a, b = interleaved(plain, server, reps)
    a2, b2 = interleaved(plain, lambda: twin.run_blocks(h), reps)
    out = model.run_blocks(h)
    out_enc = enc.model.run_blocks(h_enc)
    creps = max(50, reps)
    med = lambda xs: statistics.median(xs)  # noqa: E731
    return {
        "workload": name, "tier": tier, "seq": tokens.shape[1], "reps": reps,
        "plain_forward_ms": 1e3 * med(a), "server_forward_ms": 1e3 * med(b), "ratio": med(b) / med(a),
        "paired_ratio": med([y / x for x, y in zip(a, b)]), "min_ratio": min(b) / min(a),
        "aa_ratio": med(b2) / med(a2), "aa_paired_ratio": med([y / x for x, y in zip(a2, b2)]),
        "encode_hidden_ms": 1e3 * med([timed(lambda: codec.encode_hidden(h)) for _ in range(creps)]),
        "decode_hidden_ms": 1e3 * med([timed(lambda: codec.decode_hidden(out_enc)) for _ in range(creps)]),
        "client_input_ms": 1e3 * med([timed(lambda: codec.client_input(tokens)) for _ in range(creps)]),
        "client_output_ms": 1e3 * med([timed(lambda: codec.client_output(out_enc)) for _ in range(creps)]),
        "plain_head_ms": 1e3 * med([timed(lambda: model.head(out)) for _ in range(creps)]),
        "transform_s": med(transform_s),
        "rel_error_f32": rel_error(model.head(out), codec.client_output(out_enc)),
    }


def rel_error(ref: torch.Tensor, got: torch.Tensor) -> float:
    """max |got - ref| / max |ref|: the equivariance error of the blind path."""
    return float((got - ref).abs().max() / ref.abs().max())


def markdown(info: dict, rows: list[dict]) -> str:
    lines = [
        "# EE benchmark", "", "Plot: [bench_ee.png](bench_ee.png) (`--render docs/bench_ee.json` redraws it).", "",
        f"Machine: {info['cpu']} ({info['cores']} cores), torch threads {info['torch_threads']}, "
        f"Python {info['python']}, torch {info['torch']}, numpy {info['numpy']}; 1-minute load average at "
        f"start {info['loadavg_1m']}.", "",
        "Server forward = `run_blocks` at batch 1 (float32, CPU), plaintext and transformed interleaved in the "
        "same run, medians over `reps` each. A/A = plaintext against a second copy of itself, measured the "
        "same way (the noise floor). Both plaintext copies are fresh deep copies, allocated like the server copy. "
        "Figures were taken while other jobs loaded the machine (load average above), so read ratios against "
        "the A/A column. `paired` = median of the per-pair ratios of adjacent runs (robust to slow load drift); `min` = "
        "ratio of the fastest runs. Client columns: `encode`/`decode` = the residual-stream key alone; `client in` = embed + encode; "
        "`client out` = decode + final norm + LM head (`plain head` = final norm + LM head without EE). "
        "Transform = offline `encrypt_model` (median of 3). Error = max |blind - plain| / max |plain| of the logits "
        "(float32).", "",
        "| workload | tier | seq | reps | plain ms | server ms | ratio | paired | min | A/A | A/A paired | encode ms "
        "| decode ms | client in ms "
        "| client out ms | plain head ms | transform s | error |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['workload']} | {r['tier']} | {r['seq']} | {r['reps']} | {r['plain_forward_ms']:.3f} | "
                     f"{r['server_forward_ms']:.3f} | {r['ratio']:.3f} | {r['paired_ratio']:.3f} | {r['min_ratio']:.3f} | "
                     f"{r['aa_ratio']:.3f} | {r['aa_paired_ratio']:.3f} | "
                     f"{r['encode_hidden_ms']:.3f} | {r['decode_hidden_ms']:.3f} | {r['client_input_ms']:.3f} | "
                     f"{r['client_output_ms']:.3f} | {r['plain_head_ms']:.3f} | {r['transform_s']:.2f} | "
                     f"{r['rel_error_f32']:.1e} |")
    lines += ["", f"Command: `{info['command']}`", ""]
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    """Server forward time under EE relative to the plaintext model (paired ratio), per workload and
    tier, and the client's encode/decode cost beside the plaintext forward."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(dict.fromkeys(r["workload"] for r in rows))
    tiers = list(dict.fromkeys(r["tier"] for r in rows))
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.8))
    xs = np.arange(len(names))
    width = 0.8 / max(1, len(tiers))
    for k, tier in enumerate(tiers):
        vals = [next((r["paired_ratio"] for r in rows if r["workload"] == n and r["tier"] == tier), np.nan)
                for n in names]
        ax[0].bar(xs + (k - (len(tiers) - 1) / 2) * width, vals, width=width, label=tier)
    ax[0].axhline(1.0, color="k", lw=0.8)
    ax[0].set_xticks(xs, names)
    ax[0].set_ylim(0.9, 1.1)
    ax[0].set_ylabel("server forward: EE / plaintext (paired median)")
    ax[0].legend(title="tier")
    client = [next(r for r in rows if r["workload"] == n) for n in names]
    for k, (key, label) in enumerate((("plain_forward_ms", "plaintext forward"),
                                      ("client_input_ms", "client encode (input)"),
                                      ("client_output_ms", "client decode (output)"))):
        ax[1].bar(xs + (k - 1) * 0.27, [r[key] for r in client], width=0.27, label=label)
    ax[1].set_yscale("log")
    ax[1].set_xticks(xs, names)
    ax[1].set_ylabel("ms (median, first tier)")
    ax[1].legend(fontsize=8)
    fig.suptitle("Equivariant Encryption overhead (one thread)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", nargs="+", default=["tiny-llama", "small-llama", "gpt2-block"])
    ap.add_argument("--tiers", nargs="+", default=["permute", "rotate"])
    ap.add_argument("--seconds", type=float, default=20.0, help="target time per workload and tier")
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    ap.add_argument("--render", type=Path, default=None, help="only redraw the plot from a JSON result file")
    args = ap.parse_args(argv)
    if args.render:
        plot(json.loads(args.render.read_text())["results"], args.out / "bench_ee.png")
        return 0
    info = machine()
    info["command"] = "python benchmarks/bench_ee.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(json.dumps(info))
    key = EEKey(bytes(range(32)))
    rows = []
    for name in args.workloads:
        for tier in args.tiers:
            r = bench(name, tier, args.seconds, key)
            rows.append(r)
            print(f"threads={info['torch_threads']} {json.dumps(r)}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_ee.json").write_text(json.dumps({"machine": info, "results": rows}, indent=1) + "\n")
    (args.out / "bench_ee.md").write_text(markdown(info, rows))
    plot(rows, args.out / "bench_ee.png")
    print(markdown(info, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
