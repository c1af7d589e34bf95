"""Prover device benchmark: Reed–Solomon row encoding and the trace's exact matmuls on each backend.

Shapes are those of a gpt2-block proof (128 tokens): the two encodes (model commitment: rows of
65,691 coefficients into 262,144-entry codewords; trace commitment: 32,923 into 131,072) and the
integer matmuls of the trace (linears, attention, the 50,257-wide head). Backends: ``cpu`` (the numba/
numpy path, the default without a GPU), ``torch-cpu`` (the torch kernels on the CPU) and ``cuda`` where
torch sees one. Every torch result is checked equal to the CPU path's before it is timed. An encode
times ``--rows`` rows (the full matrices have 2,267 and 2,998 rows; time is linear in the rows);
``--full`` times the full row counts. Medians of wall-clock and process CPU time over ``--repeats``
(cuda calls are synchronous: results are copied back to numpy inside the timed call).
Writes docs/bench_prover_device.json and docs/bench_prover_device.md.

    python benchmarks/bench_prover_device.py [--rows 128] [--repeats 3] [--full]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import blindproof  # noqa: F401  (pins thread pools first)
import numba
import numpy as np
import torch

from blindproof.zk import device
from blindproof.zk.commit import reed_solomon as _rs
from blindproof.zk.field import babybear as F
from blindproof.quant import reference
from _machine import cpu_name  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parents[1]

# (label, full row count, coefficients per row, codeword length)
ENCODES = [("model commitment", 2267, 65691, 262144), ("trace commitment", 2998, 32923, 131072)]
# (label, a shape, b shape, |a| bound, |b| bound): int8-range activations and weights for linears,
# int16-range for attention (the bounds keep every partial sum below 2^53, as in the real trace)
MATMULS = [("head 768x50257", (1, 128, 768), (768, 50257), 127, 127),
           ("mlp up 768x3072", (1, 128, 768), (768, 3072), 127, 127),
           ("mlp down 3072x768", (1, 128, 3072), (3072, 768), 127, 127),
           ("attn proj 768x768", (1, 128, 768), (768, 768), 127, 127),
           ("qk 12 heads", (1, 12, 128, 64), (1, 12, 64, 128), 2 ** 15, 2 ** 15),
           ("pv 12 heads", (1, 12, 128, 128), (1, 12, 128, 64), 2 ** 16, 2 ** 15)]


def machine() -> dict:
    info = {"cpu": cpu_name(), "cores": os.cpu_count(), "threads": int(os.environ.get("BLINDPROOF_THREADS", "1")),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "numpy": np.__version__, "numba": numba.__version__, "torch": torch.__version__,
            "platform": platform.platform(), "load_average": [round(x, 2) for x in os.getloadavg()],
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    return info


def backends() -> list[str]:
    return ["cpu", "torch-cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def timed(fn, repeats: int) -> dict:
    fn()  # warm-up: numba caches, torch kernels and twiddles, cuda context
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return {"wall_s": statistics.median(wall), "cpu_s": statistics.median(cpu), "repeats": repeats}


def bench_encode(label, full_rows, k, n, rows, repeats, rng) -> list[dict]:
    coeffs = rng.integers(0, F.P, (rows, k), dtype=np.uint32)
    want = _rs.encode_rows(coeffs, n)
    out = []
    for b in backends():
        with device.prover_device(b, min_rs_elements=0):
            if b != "cpu":
                assert np.array_equal(_rs.encode_rows(coeffs, n), want), f"{b}: encode differs from the CPU path"
            t = timed(lambda: _rs.encode_rows(coeffs, n), repeats)
        rec = {"kind": "encode", "label": label, "backend": b, "rows": rows, "full_rows": full_rows, "k": k, "n": n,
               **t, "full_estimate_s": t["wall_s"] * full_rows / rows}
        print(json.dumps(rec), flush=True)
        out.append(rec)
    return out


def bench_matmul(label, a_shape, b_shape, amax, bmax, repeats, rng) -> list[dict]:
    a = rng.integers(-amax, amax + 1, a_shape)
    b = rng.integers(-bmax, bmax + 1, b_shape)
    want = reference._exact_matmul(a, b)
    out = []
    for be in backends():
        with device.prover_device(be, min_matmul_macs=0):
            if be != "cpu":
                assert np.array_equal(reference._exact_matmul(a, b), want), f"{be}: matmul differs from the CPU path"
            t = timed(lambda: reference._exact_matmul(a, b), repeats)
        rec = {"kind": "matmul", "label": label, "backend": be, "a": list(a_shape), "b": list(b_shape),
               "macs": device.matmul_macs(a_shape, b_shape), **t}
        print(json.dumps(rec), flush=True)
        out.append(rec)
    return out


def write_outputs(results: list[dict], info: dict, args) -> None:
    docs = ROOT / "docs"
    (docs / "bench_prover_device.json").write_text(
        json.dumps({"machine": info, "args": vars(args), "results": results}, indent=2) + "\n")
    gpu = info["cuda"] or "none: torch sees no CUDA device here, so there are no cuda rows"
    lines = ["# Prover device benchmark (`python benchmarks/bench_prover_device.py`)", "",
             f"Machine: {info['cpu']}, {info['cores']} cores, BLINDPROOF_THREADS={info['threads']} (torch threads "
             f"{info['torch_threads']}), Python {info['python']}, numpy {info['numpy']}, numba {info['numba']}, "
             f"torch {info['torch']}; GPU: {gpu}. Load average at start {info['load_average']} (shared machine: "
             "other work ran at the same time). Medians of wall-clock and process CPU time; every torch result was "
             "checked equal to the CPU path's first.", "",
             "`cpu` is the numba/numpy path (the default without a GPU); `torch-cpu` runs the torch kernels on the "
             "CPU (a test mode, not a speed-up); `cuda` rows exist only where a GPU was present.", "",
             "## Reed–Solomon row encoding (`zk/_rs.encode_rows`), gpt2-block sizes", "",
             "| matrix | backend | rows timed | k → n | wall | CPU | full rows | full matrix (linear estimate) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r["kind"] == "encode":
            lines.append(f"| {r['label']} | {r['backend']} | {r['rows']} | {r['k']} → {r['n']} | {r['wall_s'] * 1e3:.0f} ms | "
                         f"{r['cpu_s'] * 1e3:.0f} ms | {r['full_rows']} | {r['full_estimate_s']:.1f} s |")
    lines += ["", "## Exact integer matmuls of the trace (`quant/reference._exact_matmul`), gpt2-block (128 tokens)", "",
              "| matmul | a @ b | backend | multiply-adds | wall | CPU |", "|---|---|---|---|---|---|"]
    for r in results:
        if r["kind"] == "matmul":
            lines.append(f"| {r['label']} | {tuple(r['a'])} @ {tuple(r['b'])} | {r['backend']} | {r['macs']:.2e} | "
                         f"{r['wall_s'] * 1e3:.1f} ms | {r['cpu_s'] * 1e3:.1f} ms |")
    lines.append("")
    (docs / "bench_prover_device.md").write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=128, help="encode rows timed (default 128)")
    ap.add_argument("--full", action="store_true", help="time the full row counts of gpt2-block")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="print only, leave docs/ alone")
    args = ap.parse_args()
    info = machine()
    print(json.dumps(info), flush=True)
    rng = np.random.default_rng(0)
    results = []
    for label, full_rows, k, n in ENCODES:
        results += bench_encode(label, full_rows, k, n, full_rows if args.full else min(args.rows, full_rows),
                                args.repeats, rng)
    for label, a_shape, b_shape, amax, bmax in MATMULS:
        results += bench_matmul(label, a_shape, b_shape, amax, bmax, args.repeats, rng)
    if not args.no_write:
        write_outputs(results, info, args)


if __name__ == "__main__":
    main()
