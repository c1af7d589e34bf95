"""End-to-end cost of a verified blind inference: deploy, serve, prove, transfer, verify.

For each workload the client deploys the EE-transformed (rotate tier) integer model through a real
`blindproof serve` process on localhost (the client quantizes and commits locally, the server commits
too and the two are compared), then runs verified blind inferences (`BlindClient.infer(...,
prove=True)`): the encrypted request and response, the proof job in the server's prover worker
(queueing and proving), the chunked proof download and the client's verification against its own
commitment with the statement pinned to the wire exchange. The first inference of a deployment also
pays the worker's model commitment; it is reported apart ("first") from the following ones.

    python benchmarks/bench_verified.py [--workloads tiny-llama small-llama] [--runs 3] [--seq 16]

Writes docs/bench_verified.{json,md}. Every figure is printed with the machine, thread count and
versions it was measured on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import grpc
import torch

import blindproof
from blindproof._threads import configured_threads
from blindproof.client import BlindClient
from blindproof.ee import generate_key
from blindproof.server.process import ServerProcess
from _machine import cpu_name  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

DOCS = Path(__file__).resolve().parent.parent / "docs"
STEPS = ("infer", "prove", "download", "verify")


def machine() -> dict:
    """Where the figures were taken."""
    cpu = cpu_name()
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=Path(blindproof.__file__).parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": configured_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "grpcio": grpc.__version__, "blindproof": blindproof.__version__,
            "commit": commit,
            "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            "load_average_1min": round(os.getloadavg()[0], 2)}


def bench_workload(client: BlindClient, name: str, seq: int, runs: int) -> dict:
    """Deploy one workload in integer mode and time ``runs + 1`` verified blind inferences."""
    from blindproof.zk.proof.prover import workload_float_model

    model = workload_float_model(name)
    t0 = time.perf_counter()
    dep = client.deploy(model, generate_key(), "rotate", label=f"bench-{name}", mode="integer")
    deploy_s = time.perf_counter() - t0
    g = torch.Generator().manual_seed(7)
    results = []
    for i in range(runs + 1):
        x = torch.randint(0, model.cfg.vocab_size, (1, seq), generator=g)
        t = time.perf_counter()
        res = client.infer(dep, x, prove=True, proof_timeout=3600)
        total = time.perf_counter() - t
        results.append({"total": total, **res.seconds, "proof_bytes": len(res.proof.proof),
                        "provable_bits": res.proof.provable_bits, "conjectured_bits": res.proof.conjectured_bits})
        print(f"  {name} seq {seq} run {i} ({'first' if i == 0 else 'steady'}): total {total:.2f} s = "
              + ", ".join(f"{k} {res.seconds[k]:.3f} s" for k in STEPS) + f"; proof {len(res.proof.proof)} bytes",
              flush=True)
    client.delete(dep)
    steady = results[1:] or results
    med = {k: statistics.median(r[k] for r in steady) for k in ("total", *STEPS)}
    return {"workload": name, "seq": seq, "runs": len(steady), "deploy_s": round(deploy_s, 3),
            "first": {k: round(v, 4) if isinstance(v, float) else v for k, v in results[0].items()},
            "median_s": {k: round(v, 4) for k, v in med.items()},
            "share": {k: round(med[k] / med["total"], 4) for k in STEPS},
            "proof_bytes": steady[0]["proof_bytes"], "provable_bits": round(steady[0]["provable_bits"], 1),
            "conjectured_bits": round(steady[0]["conjectured_bits"], 1)}


def markdown(out: dict) -> str:
    m = out["machine"]
    lines = ["# Verified blind inference, end to end", "",
             f"Measured {m['date_utc']} UTC on {m['cpu']} ({m['cores']} cores, {m['threads']} numeric thread(s) per "
             f"process, load average {m['load_average_1min']} at the start), "
             f"torch {m['torch']}, grpcio {m['grpcio']}, blindproof {m['blindproof']} (commit {m.get('commit') or '?'}). One server process with one "
             "prover worker on localhost; rotate-tier EE integer deployments. `python benchmarks/bench_verified.py`.", "",
             "Steady state: median over the runs after the first inference of a deployment. The first inference also "
             "includes the worker loading the model and committing to it (column *first total*).", "",
             "| workload | seq | deploy s | first total s | total s | infer | prove (queue + proving) | download "
             "| verify | proof MB | provable bits |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in out["results"]:
        med, sh = r["median_s"], r["share"]
        cells = [f"{med[k]:.3f} s ({100 * sh[k]:.1f}%)" for k in STEPS]
        lines.append(f"| {r['workload']} | {r['seq']} | {r['deploy_s']:.2f} | {r['first']['total']:.2f} | "
                     f"{med['total']:.2f} | " + " | ".join(cells) +
                     f" | {r['proof_bytes'] / 1e6:.2f} | {r['provable_bits']:.1f} |")
    lines += ["", "Shares are of the median total; *infer* is the blind round trip (encode, serve the integer "
              "program, decode), *prove* the time from the inference reply until the job is done (queueing, the "
              "worker's proof and its progress reports), *download* the chunked transfer of the proof, *verify* "
              "the client's check against its own commitment. *deploy* covers the EE transform, quantization and "
              "model commitment on the client, the upload, and the server's own commitment (compared with the "
              "client's)."]
    return "\n".join(lines) + "\n"


def rewrite_markdown(out_base: Path) -> None:
    """Regenerate the markdown table from an existing JSON result."""
    out_base.with_suffix(".md").write_text(markdown(json.loads(out_base.with_suffix(".json").read_text())))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", nargs="+", default=["tiny-llama", "small-llama"])
    ap.add_argument("--seq", type=int, default=16, help="tokens per request (default 16)")
    ap.add_argument("--runs", type=int, default=3, help="steady-state runs per workload after the first")
    ap.add_argument("--out", type=Path, default=DOCS / "bench_verified")
    args = ap.parse_args()
    out = {"machine": machine(), "results": []}
    print(json.dumps(out["machine"]), flush=True)
    with ServerProcess() as srv, BlindClient(srv.target, timeout=600) as client:
        client.wait_ready(60)
        for name in args.workloads:
            print(f"{name}: deploying and proving ({args.runs} steady runs) ...", flush=True)
            out["results"].append(bench_workload(client, name, args.seq, args.runs))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(out, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(out))
    print(markdown(out))


if __name__ == "__main__":
    main()
