"""Commitment benchmark: commit / open / verify time and proof size from 2^16 to 2^24 elements.

One thread (BLINDPROOF_THREADS, default 1), medians over repeats, wall clock and process CPU time
side by side (CPU time is the steadier figure on a shared machine). One tensor and one evaluation
claim per size, plus a batched case (16 tensors, 16 claims at different points) and a trace-like
case (768 tensors of 2^6..2^13 entries, 1536 claims, like a small model's trace opening). Writes
docs/bench_pcs.json, docs/bench_pcs.md and docs/bench_pcs.png.

    python benchmarks/bench_pcs.py [--logs 16 18 20 22 24] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import blindproof  # noqa: F401  (pins thread pools first)
import numpy as np

from blindproof.zk.field import babybear as F
from blindproof.zk.commit import pcs
from blindproof.zk.iop import mle
from blindproof.zk.iop.transcript import Transcript
from _machine import machine_facts as machine, timed  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parents[1]
DOMAIN = b"bench-pcs"


def run_case(label: str, sizes: list[int], repeats: int, rng: np.random.Generator, extra_claims: int = 0) -> dict:
    """One claim per tensor, plus ``extra_claims`` more on random tensors at other points."""
    tensors = {f"t{i}": F.random(rng, s) for i, s in enumerate(sizes)}
    names = list(tensors) + [f"t{i}" for i in rng.integers(0, len(sizes), extra_claims)]
    claims = []
    for k in names:
        pt = F.erandom(rng, tensors[k].size.bit_length() - 1)
        claims.append(pcs.Claim(k, pt, mle.evaluate(tensors[k], pt)))
    rows = {"commit": ([], []), "open": ([], []), "verify": ([], [])}
    size = None
    for _ in range(repeats):
        (com, st), w, c = timed(lambda: pcs.commit(tensors))
        rows["commit"][0].append(w)
        rows["commit"][1].append(c)
        op, w, c = timed(lambda: pcs.open_claims(st, claims, Transcript(DOMAIN)))
        rows["open"][0].append(w)
        rows["open"][1].append(c)
        data = op.to_bytes()
        size = len(data)
        res, w, c = timed(lambda: pcs.verify(com, claims, data, Transcript(DOMAIN)))
        if not res.ok:
            raise RuntimeError(f"{label}: honest proof rejected: {res.reason}")
        rows["verify"][0].append(w)
        rows["verify"][1].append(c)
        del st
    lay = com.layout
    rep = lay.soundness(len(claims))
    out = {"case": label, "elements": int(sum(sizes)), "tensors": len(sizes), "claims": len(claims),
           "rows": lay.n_data_rows, "mask_rows": lay.n_rows - lay.n_data_rows, "cols": lay.n_cols,
           "codeword": lay.codeword_len, "queries": lay.n_queries, "proof_bytes": size,
           "provable_bits": round(rep.provable_bits, 1), "conjectured_bits": round(rep.conjectured_bits, 1),
           "repeats": repeats}
    for k, (wall, cpu) in rows.items():
        out[f"{k}_ms"] = round(1e3 * statistics.median(wall), 2)
        out[f"{k}_cpu_ms"] = round(1e3 * statistics.median(cpu), 2)
    print(json.dumps(out), flush=True)
    return out


def write_outputs(results: list[dict], info: dict) -> None:
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    (docs / "bench_pcs.json").write_text(json.dumps({"machine": info, "results": results}, indent=2) + "\n")
    lines = [
        "# Commitment benchmark (`benchmarks/bench_pcs.py`)",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['threads']} thread(s); Python {info['python']}, "
        f"numpy {info['numpy']}, numba {info['numba']}. The machine is shared with other work (1-minute load "
        f"average {info['loadavg_1m_start']:.1f} at start, {info['loadavg_1m_end']:.1f} at end), so wall times "
        "can be inflated; CPU time (process time, in parentheses) is the steadier figure. Medians over "
        "5 repeats (3 above 2^20).",
        "",
        "| case | elements | layout (rows × cols, +mask) | queries | commit ms (cpu) | open ms (cpu) "
        "| verify ms (cpu) | proof KB | provable / conjectured bits |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['case']} | 2^{np.log2(r['elements']):.3g} | {r['rows']} × {r['cols']} (+{r['mask_rows']}) "
            f"| {r['queries']} | {r['commit_ms']:.1f} ({r['commit_cpu_ms']:.1f}) | {r['open_ms']:.1f} "
            f"({r['open_cpu_ms']:.1f}) | {r['verify_ms']:.1f} ({r['verify_cpu_ms']:.1f}) "
            f"| {r['proof_bytes'] / 1000:.1f} | {r['provable_bits']} / {r['conjectured_bits']} |")
    lines += ["", "Command: `python benchmarks/bench_pcs.py` (KB = 1000 bytes).", ""]
    (docs / "bench_pcs.md").write_text("\n".join(lines))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    single = [r for r in results if r["tensors"] == 1]
    xs = [r["elements"] for r in single]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for key, mark in (("commit", "o-"), ("open", "s-"), ("verify", "^-")):
        ax[0].loglog(xs, [r[f"{key}_cpu_ms"] for r in single], mark, base=2, label=f"{key} (cpu)")
    ax[0].set_xlabel("committed elements")
    ax[0].set_ylabel("ms (median, one thread)")
    ax[0].legend()
    ax[0].grid(True, which="both", alpha=0.3)
    ax[1].loglog(xs, [r["proof_bytes"] / 1000 for r in single], "o-", base=2)
    ax[1].set_xlabel("committed elements")
    ax[1].set_ylabel("opening proof KB")
    ax[1].grid(True, which="both", alpha=0.3)
    fig.suptitle("Hiding Ligero-style commitment, BabyBear, rate ≈ 1/4, ≥ 100 provable bits")
    fig.tight_layout()
    fig.savefig(docs / "bench_pcs.png", dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--logs", type=int, nargs="+", default=[16, 18, 20, 22, 24])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    info = machine()
    rng = np.random.default_rng(0)
    run_case("warm-up", [1 << 12], 1, rng)  # compile / load numba caches outside the timings
    results = []
    for lg in args.logs:
        reps = args.repeats if lg <= 20 else max(3, args.repeats // 2)
        results.append(run_case("single", [1 << lg], reps, rng))
    results.append(run_case("batch 16 × 2^16", [1 << 16] * 16, args.repeats, rng))
    trace_sizes = [1 << int(k) for k in rng.integers(6, 14, 768)]
    results.append(run_case("trace-like: 768 tensors, 1536 claims", trace_sizes, args.repeats, rng, extra_claims=768))
    info["loadavg_1m_end"] = os.getloadavg()[0]
    write_outputs(results, info)


if __name__ == "__main__":
    main()
