"""Whole-model proofs: commitment time, prove time, verify time, proof size, peak memory and
multiply-adds proven per second, per workload (one thread, medians).

    python benchmarks/bench_zk.py [--workloads a,b,...] [--gpt2-small] [--repeats N] [--out docs/bench_zk]

Each workload runs in a fresh child process (so memory figures do not mix). In the child: quantize
(fixed calibration), commit to the weights (timed: "commit"), build the example input, then prove
``repeats`` times and verify ``repeats`` times (medians). Peak memory is the process's resident
high-water mark while proving (Linux ``VmHWM`` after resetting it), so it includes the interpreter,
the model and the weight commitment's opening state. Multiply-adds count the matrix products only
(``linear``, ``qk``, ``pv``), from the program's shapes. A workload whose ops lack a proof protocol is
reported as such (its commitment is still timed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from _machine import cpu_name  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ["mlp-784-56-10", "tiny-llama", "small-llama", "gpt2-block", "minilm-l6"]
REPEATS = {"mlp-784-56-10": 5, "tiny-llama": 3, "small-llama": 3, "gpt2-block": 3, "minilm-l6": 2, "gpt2-small": 1}
COLD = {"gpt2-small"}  # measured on its first proof (no warm-up run): it includes the one-off mask plan


def _machine() -> dict:
    import numba
    import numpy
    import torch

    cpu = cpu_name()
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": int(os.environ.get("BLINDPROOF_THREADS", "1")),
            "python": platform.python_version(), "numpy": numpy.__version__, "numba": numba.__version__,
            "torch": torch.__version__, "platform": platform.platform(), "load_1min": os.getloadavg()[0]}


def _vm_hwm_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _macs(spec, inputs) -> int:
    from blindproof.zk.proof.program import infer_shapes

    shapes = infer_shapes(spec, {k: v.shape for k, v in inputs.items()})
    total = 0
    for op in spec.ops:
        if op.kind == "linear":
            x = shapes[op.inputs[0]]
            n = 1
            for d in x:
                n *= d
            total += n * spec.weights[op.params["weight"]].shape[0]
        elif op.kind in ("qk", "pv"):
            a, b = shapes[op.inputs[0]], shapes[op.inputs[1]]
            total += a[0] * a[1] * a[2] * a[3] * (b[2] if op.kind == "qk" else b[3])
    return total


def timed_verify(commitment, data: bytes, runs: int = 3):
    """Verify ``data`` ``runs`` times; the last result and every run's seconds."""
    from blindproof.zk.proof.verifier import verify_model_proof

    times, res = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        res = verify_model_proof(commitment, data)
        times.append(time.perf_counter() - t0)
    return res, times


def run_one(name: str, repeats: int) -> dict:
    """Measure one workload in this process."""
    import numpy as np

    import blindproof  # noqa: F401  (pins threads)
    from blindproof.zk.proof.keys import CommitmentKey
    from blindproof.zk.ops import kinds
    from blindproof.zk.proof.prover import (ModelProver, example_input, program_input, quantized_workload,
                                      workload_float_model)

    out: dict = {"workload": name}
    t0 = time.perf_counter()
    model = workload_float_model(name)
    qm = quantized_workload(name, model=model)
    out["quantize_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    prover = ModelProver.create(qm, CommitmentKey(b"\x01" * 32))
    out["commit_s"] = time.perf_counter() - t0
    lay = prover.commitment.weights.layout
    out["committed_weight_elements"] = sum(1 << s for s in lay.log_sizes)
    out["commitment_file_bytes"] = len(prover.commitment.to_bytes())
    out["commit_peak_rss_bytes"] = _vm_hwm_bytes()
    missing = sorted({op.kind for op in qm.spec.ops} - set(kinds()))
    if missing:
        out["status"] = f"ops without a proof protocol: {', '.join(missing)}"
        return out
    inputs = qm.encode(program_input(qm, model, example_input(name)))
    out["seq"] = int(next(iter(inputs.values())).shape[1]) if qm.spec.arch["family"] == "transformer" else 0
    out["macs"] = _macs(qm.spec, inputs)
    out["ops"] = len(qm.spec.ops)
    out["warm"] = name not in COLD
    if out["warm"]:  # warm-up: compiled kernels loaded, the mask plan cached (as in a prover daemon)
        try:
            prover.prove(inputs)
        except Exception as exc:  # noqa: BLE001 - reported, not hidden
            out["status"] = f"prove failed: {type(exc).__name__}: {exc}"
            return out
    hwm_ok = _reset_hwm()
    times, proof = [], None
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            proof = prover.prove(inputs)
            times.append(time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - reported, not hidden
        out["status"] = f"prove failed: {type(exc).__name__}: {exc}"
        return out
    out["prove_peak_rss_bytes"] = _vm_hwm_bytes() if hwm_ok else None
    data = proof.to_bytes()
    res, vtimes = timed_verify(prover.commitment, data)
    out.update(status="ok" if res.ok else f"verify rejected: {res.reason}",
               prove_s=statistics.median(times), prove_runs=times, verify_s=statistics.median(vtimes),
               proof_bytes=len(data), statement_bytes=proof.public_bytes(),
               provable_bits=res.provable_bits, conjectured_bits=res.conjectured_bits,
               macs_per_s=out["macs"] / statistics.median(times),
               proof_parts={"op_proofs": len(proof.program_proof), "trace_opening": len(proof.trace_opening),
                            "weight_opening": len(proof.weight_opening),
                            "trace_commitment": len(proof.trace_commitment)},
               trace_claims=proof.trace_claims, weight_claims=proof.weight_claims)
    return out


def _fmt_bytes(n) -> str:
    if n is None:
        return "–"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def markdown(results: list[dict], machine: dict) -> str:
    lines = [f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['threads']} thread; "
             f"python {machine['python']}, numpy {machine['numpy']}, numba {machine['numba']}, torch {machine['torch']}. "
             + machine.get("conditions", f"1-minute load average at start: {machine.get('load_1min', '?')}."),
             "Prove runs per workload: " + ", ".join(f"{r['workload']} {len(r.get('prove_runs', []))}"
                                                     for r in results if r.get("status") == "ok")
             + " (median, after one warm-up proof, as a prover daemon runs; gpt2-small: its first proof, which "
             "includes the one-off mask plan, a dry run of the op proofs). Verify: median of 3. "
             "Proof size includes the public statement X, Y (in parentheses). gpt2-block and gpt2-small prove their "
             "transformer blocks (hidden states in and out, scope `blocks`); the other workloads the whole model. "
             "minilm-l6 uses the real all-MiniLM-L6-v2 weights (installed package); tiny-llama the trained default "
             "model.", "",
             "| workload | seq | prove (s, median) | verify (ms, median) | proof (of which X, Y) | peak RSS proving | "
             "multiply-adds | MAC/s proven | provable / conjectured bits | status |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        ok = r.get("status") == "ok"
        lines.append("| {w} | {seq} | {p} | {v} | {sz} | {mem} | {macs} | {mps} | {bits} | {st} |".format(
            w=r["workload"], seq=r.get("seq") or "–",
            p=f"{r['prove_s']:.2f}" if ok else "–", v=f"{r['verify_s'] * 1000:.0f}" if ok else "–",
            sz=f"{_fmt_bytes(r['proof_bytes'])} ({_fmt_bytes(r['statement_bytes'])})" if ok else "–",
            mem=_fmt_bytes(r.get("prove_peak_rss_bytes")) if ok else "–",
            macs=f"{r['macs']:.3g}" if "macs" in r else "–", mps=f"{r['macs_per_s']:.3g}" if ok else "–",
            bits=f"{r['provable_bits']:.1f} / {r['conjectured_bits']:.1f}" if ok else "–", st=r.get("status", "")))
    lines += ["", "Commitment (once per model, not part of proving):", "",
              "| workload | committed weight elements (padded) | commit (s) | peak RSS (commit) | commitment file |",
              "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['workload']} | {r['committed_weight_elements']:,} | {r['commit_s']:.2f} | "
                     f"{_fmt_bytes(r['commit_peak_rss_bytes'])} | {_fmt_bytes(r['commitment_file_bytes'])} |")
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    ok = [r for r in results if r.get("status") == "ok"]
    if not ok:
        return
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    names = [r["workload"] for r in ok]
    # prove time against model size (multiply-adds of the proved matmuls), log-log
    ax[2].loglog([r["macs"] for r in ok], [r["prove_s"] for r in ok], "o")
    for i, r in enumerate(sorted(ok, key=lambda r: r["macs"])):  # alternate sides: neighbours do not overlap
        ax[2].annotate(r["workload"], (r["macs"], r["prove_s"]), textcoords="offset points",
                       xytext=(6, -12 if i % 2 else 6), fontsize=8)
    ax[2].set_xlabel("model size: multiply-adds per inference")
    ax[2].set_ylabel("prove (s, median, one thread)")
    ax[2].grid(True, which="major", alpha=0.3)
    # prove and verify side by side (not stacked: on a log axis a stack hides the smaller bar), the axis
    # starting below the smallest value so that every bar shows
    xs = np.arange(len(ok))
    times = [(r["prove_s"], r["verify_s"]) for r in ok]
    for k, (label, off) in enumerate((("prove", -0.2), ("verify", 0.2))):
        vals = [t[k] for t in times]
        ax[0].bar(xs + off, vals, width=0.4, label=label)
        for x, v in zip(xs + off, vals):
            ax[0].annotate(f"{v:.3g}", (x, v), ha="center", va="bottom", fontsize=7)
    ax[0].set_xticks(xs, names, rotation=30, ha="right")
    ax[0].set_ylabel("seconds (median, one thread)")
    ax[0].set_yscale("log")
    ax[0].set_ylim(bottom=min(min(t) for t in times) / 3)
    ax[0].legend()
    ax[1].bar(names, [(r["proof_bytes"] - r.get("statement_bytes", 0)) / 1024 for r in ok], label="proof")
    ax[1].bar(names, [r.get("statement_bytes", 0) / 1024 for r in ok],
              bottom=[(r["proof_bytes"] - r.get("statement_bytes", 0)) / 1024 for r in ok], label="statement X, Y")
    ax[1].set_ylabel("proof file size (KB)")
    ax[1].set_yscale("log")
    ax[1].set_ylim(bottom=min(r["proof_bytes"] for r in ok) / 1024 / 3)
    ax[1].legend()
    ax[1].set_xticks(range(len(ok)), names, rotation=30, ha="right")
    fig.suptitle("blindproof whole-model proofs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_markdown(path: Path, generated: str) -> str:
    """Write the generated tables, keeping the file's hand-written sections (from its first ``## ``
    heading on: the before → after comparisons) after them; returns what was written."""
    kept = ""
    if path.exists():
        old = path.read_text()
        at = old.find("\n## ")
        kept = old[at:] if at >= 0 else ""
    text = generated.rstrip("\n") + "\n" + kept
    path.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default=",".join(DEFAULT))
    ap.add_argument("--gpt2-small", action="store_true", help="also the 12-block GPT-2 (slow, large memory)")
    ap.add_argument("--repeats", type=int, default=0, help="prove/verify runs per workload (default: per workload)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench_zk"), help="output prefix (.json, .md, .png)")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child mode
    ap.add_argument("--render", default=None, help="only re-render the markdown and plot from a JSON result file")
    args = ap.parse_args(argv)
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        out = Path(args.out)
        md = write_markdown(out.with_suffix(".md"), "# Whole-model proofs: benchmark\n\nCommand: `python "
                            "benchmarks/bench_zk.py` (gpt2-small: `--gpt2-small`)\n\n" +
                            markdown(saved["results"], saved["machine"]))
        plot(saved["results"], out.with_suffix(".png"))
        print(md)
        return 0
    if args.one:
        print(json.dumps(run_one(args.one, args.repeats or REPEATS.get(args.one, 3))))
        return 0
    names = [n for n in args.workloads.split(",") if n] + (["gpt2-small"] if args.gpt2_small else [])
    machine = _machine()
    print(json.dumps(machine))
    results = []
    for name in names:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--one", name, "--repeats", str(args.repeats)],
                              capture_output=True, text=True, env={**os.environ, "BLINDPROOF_THREADS": "1"})
        if proc.returncode != 0:
            r = {"workload": name, "status": f"child failed: {proc.stderr.strip().splitlines()[-1:]}",
                 "commit_s": float("nan"), "committed_weight_elements": 0, "commit_peak_rss_bytes": 0,
                 "commitment_file_bytes": 0}
        else:
            r = json.loads(proc.stdout.strip().splitlines()[-1])
        r["wall_s"] = time.perf_counter() - t0
        print(json.dumps({k: v for k, v in r.items() if k != "prove_runs"}), flush=True)
        results.append(r)
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps({"machine": machine, "results": results}, indent=1) + "\n")
    md = write_markdown(out.with_suffix(".md"), "# Whole-model proofs: benchmark\n\nCommand: `python "
                        "benchmarks/bench_zk.py" + (" --gpt2-small" if args.gpt2_small else "") + "`\n\n" +
                        markdown(results, machine))
    plot(results, out.with_suffix(".png"))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
