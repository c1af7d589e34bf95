"""Benchmark the ZK core: field arithmetic, NTT, sumcheck (degree 2 and 3), logUp-GKR lookups.

One thread (BLINDPROOF_THREADS, default 1). Every figure is a median over repetitions, reported both
as wall-clock time and as process CPU time (on a shared, loaded machine the CPU time is the closer
estimate of what an idle machine would show). Writes docs/bench_zk_core.{json,md,png}.

    python benchmarks/bench_zk_core.py            # full run
    python benchmarks/bench_zk_core.py --quick    # small sizes only (smoke test)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

import blindproof  # noqa: F401  (pins threads)
from blindproof.zk.field import babybear as F
from blindproof.zk.iop import lookup as L
from blindproof.zk.iop import sumcheck as S
from blindproof.zk.field.ntt import ntt
from blindproof.zk.iop.transcript import Transcript
from _machine import cpu_name  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

DOCS = Path(__file__).resolve().parent.parent / "docs"


def machine() -> dict:
    """Machine, thread count and versions printed beside every figure."""
    import blake3
    import numba
    cpu = cpu_name()
    return {
        "cpu": cpu, "cores": os.cpu_count(), "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "threads": int(os.environ.get("BLINDPROOF_THREADS", "1")), "numba_threads": numba.get_num_threads(),
        "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
        "blake3": getattr(blake3, "__version__", "?"), "platform": platform.platform(),
    }


def timed(fn: Callable[[], object], reps: int) -> tuple[float, float, object]:
    """Median wall and CPU seconds over ``reps`` runs after one warm-up; returns the last result."""
    out = fn()
    walls, cpus = [], []
    for _ in range(reps):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), out


def bench_field(rng, reps) -> list[dict]:
    n = 1 << 20
    a, b = F.random(rng, n), F.random(rng, n)
    ea, eb = F.erandom(rng, n), F.erandom(rng, n)
    rows = []
    for name, fn in [("field mul", lambda: F.mul(a, b)), ("field add", lambda: F.add(a, b)),
                     ("field inner product", lambda: F.dot(a, b)), ("ext mul", lambda: F.emul(ea, eb)),
                     ("batch inverse", lambda: F.batch_inv(a)), ("NTT", lambda: ntt(a))]:
        wall, cpu, _ = timed(fn, reps)
        rows.append({"op": name, "log_n": 20, "wall_s": wall, "cpu_s": cpu})
    return rows


def bench_sumcheck(rng, logs, reps) -> list[dict]:
    rows = []
    for degree in (2, 3):
        for n in logs:
            tables = [F.random(rng, 1 << n) for _ in range(degree)]
            spec = S.SumcheckSpec.make(n, degree, [(1, tuple(range(degree)))])
            claim = S.hypercube_sum(spec, tables)
            tr = lambda: Transcript(b"bench-sumcheck", b"statement")  # noqa: E731
            pw, pc, out = timed(lambda: S.prove(spec, tables, claim, tr()), reps)
            vw, vc, res = timed(lambda: S.verify(spec, claim, out.proof, tr()), reps)
            assert res.ok, res.reason
            rows.append({"op": f"sumcheck degree {degree}", "log_n": n, "prove_wall_s": pw, "prove_cpu_s": pc,
                         "verify_wall_s": vw, "verify_cpu_s": vc,
                         "proof_bytes": len(out.proof.to_bytes(spec))})
    return rows


def bench_lookup(rng, logs, reps, table_bits=16, repetitions=1) -> list[dict]:
    """One range lookup per size; ``repetitions`` independent logUp challenge sets (2 for ≥ 100 bits
    on the largest lookups, see soundness.logup_error_log2)."""
    rows = []
    table = L.LookupTable.range(table_bits)
    for n in logs:
        groups = [[rng.integers(0, 1 << table_bits, 1 << n).astype(np.uint32)]]
        st = L.LookupStatement(table, ("w",), (n,), repetitions)
        mult = table.multiplicities(groups)
        tr = lambda: Transcript(b"bench-lookup", b"statement")  # noqa: E731
        pw, pc, proof = timed(lambda: L.prove(st, groups, mult, tr()), reps)
        vw, vc, res = timed(lambda: L.verify(st, proof, tr()), reps)
        assert res.ok, res.reason
        op = f"lookup into 2^{table_bits}" + (f", {repetitions} repetitions" if repetitions > 1 else "")
        rows.append({"op": op, "log_n": n, "prove_wall_s": pw, "prove_cpu_s": pc, "bits": -st.error_log2(),
                     "verify_wall_s": vw, "verify_cpu_s": vc, "proof_bytes": len(proof.to_bytes(st))})
    return rows


def write_markdown(result: dict, path: Path) -> None:
    m = result["machine"]
    lines = ["# ZK core benchmark", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, 1-minute load average {m['load_avg_1m']:.1f} at start; "
             f"threads {m['threads']} (numba {m['numba_threads']}); Python {m['python']}, numpy {m['numpy']}, "
             f"numba {m['numba']}.", "",
             "Medians. *wall* is elapsed time, *cpu* is this process's CPU time: the machine was shared "
             "with other work, so wall times are inflated by waiting for a core.", "",
             "## Field and NTT (2^20 elements)", "", "| op | wall ms | cpu ms |", "|---|---:|---:|"]
    for r in result["field"]:
        lines.append(f"| {r['op']} | {r['wall_s'] * 1e3:.2f} | {r['cpu_s'] * 1e3:.2f} |")
    for title, key in [("Sumcheck (product of 2 or 3 base multilinears)", "sumcheck"),
                       ("logUp-GKR lookup (range table 2^16)", "lookup")]:
        bits = key == "lookup"
        lines += ["", f"## {title}", "",
                  "| op | size | prove wall ms | prove cpu ms | verify wall ms | verify cpu ms | proof KB |"
                  + (" logUp bits |" if bits else ""),
                  "|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if bits else "")]
        for r in result[key]:
            lines.append(f"| {r['op']} | 2^{r['log_n']} | {r['prove_wall_s'] * 1e3:.1f} | "
                         f"{r['prove_cpu_s'] * 1e3:.1f} | {r['verify_wall_s'] * 1e3:.2f} | "
                         f"{r['verify_cpu_s'] * 1e3:.2f} | {r['proof_bytes'] / 1024:.1f} |"
                         + (f" {r['bits']:.1f} |" if "bits" in r else ""))
    lines += ["", "Lookup rows end with the provable bits of their logUp challenges "
              "(`LookupStatement.error_log2`).", "", f"Command: `{result['command']}`", ""]
    path.write_text("\n".join(lines))


def write_plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key in ("sumcheck", "lookup"):
        ops = sorted({r["op"] for r in result[key]})
        for op in ops:
            rs = [r for r in result[key] if r["op"] == op]
            xs = [1 << r["log_n"] for r in rs]
            ax.loglog(xs, [r["prove_cpu_s"] for r in rs], "o-", label=f"{op}: prove")
            ax.loglog(xs, [r["verify_cpu_s"] for r in rs], "x--", label=f"{op}: verify")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("entries / queries")
    ax.set_ylabel("CPU seconds (median, 1 thread)")
    ax.set_title("blindproof ZK core")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes only")
    ap.add_argument("--out", type=Path, default=DOCS, help="output folder (default docs/)")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    logs = [10, 12] if args.quick else [16, 18, 20, 22]
    reps = 2 if args.quick else 3
    result = {"machine": machine(), "command": " ".join(["python"] + sys.argv)}
    print(json.dumps(result["machine"]))
    result["field"] = bench_field(rng, 3 if args.quick else 7)
    for r in result["field"]:
        print(f"{r['op']:>20} 2^20: wall {r['wall_s'] * 1e3:8.2f} ms  cpu {r['cpu_s'] * 1e3:8.2f} ms")
    result["sumcheck"] = bench_sumcheck(rng, logs, reps)
    result["lookup"] = bench_lookup(rng, logs, reps) + bench_lookup(rng, logs, reps, repetitions=2)
    for r in result["sumcheck"] + result["lookup"]:
        print(f"{r['op']:>20} 2^{r['log_n']}: prove wall {r['prove_wall_s'] * 1e3:8.1f} cpu "
              f"{r['prove_cpu_s'] * 1e3:8.1f} ms | verify wall {r['verify_wall_s'] * 1e3:6.2f} cpu "
              f"{r['verify_cpu_s'] * 1e3:6.2f} ms | {r['proof_bytes']} B")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_zk_core.json").write_text(json.dumps(result, indent=2))
    write_markdown(result, args.out / "bench_zk_core.md")
    write_plot(result, args.out / "bench_zk_core.png")
    print(f"wrote {args.out}/bench_zk_core.{{json,md,png}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
