"""blindproof against EZKL on the same models, same machine, same run (one thread, medians).

    pip install -e ".[ezkl]"       # optional (ezkl, onnx); not a dependency of blindproof
    python benchmarks/bench_ezkl.py [--models mlp,tiny-block] [--repeats N] [--out docs/bench_ezkl]

Models: ``mlp`` is the mlp-784-56-10 workload (seed 0); ``tiny-block`` is ONE tiny-llama-shaped block
(d 64, 4 heads, 2 kv heads, SwiGLU, RoPE, byte vocabulary, embedding and LM head, seeded weights) at
seq 16. The same float model is proved by both systems:

- EZKL: ONNX export (a static-shape mirror of the transformer, checked equal to it in float), settings
  calibrated for ``resources`` with inputs private, parameters ``fixed`` (baked into EZKL's verifying
  key, i.e. the weights are PUBLIC — EZKL's fastest mode, weaker than blindproof's hidden committed
  weights) and outputs public, a locally generated KZG SRS (``ezkl.gen_srs``: fine for timing, not
  a trusted setup), then setup, witness, prove, verify.
- blindproof: quantize, commit (hidden weights), prove, verify.

Reported: each system's one-time costs (calibrate/compile/SRS/setup vs commit), prove and verify
medians, proof sizes, and the prove-time ratio EZKL / blindproof measured in this run. EZKL runs in
its own child process with ``RAYON_NUM_THREADS`` set to the thread count (its thread pool reads it at
start).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from _machine import cpu_name  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("mlp", "tiny-block")
TINY_SEQ = 16


def _threads() -> int:
    return int(os.environ.get("BLINDPROOF_THREADS", "1"))


def _machine() -> dict:
    import numpy
    import torch

    out = {"cpu": cpu_name(), "cores": os.cpu_count(), "threads": _threads(), "python": platform.python_version(),
           "numpy": numpy.__version__, "torch": torch.__version__, "platform": platform.platform()}
    try:
        import ezkl
        out["ezkl"] = getattr(ezkl, "__version__", "unknown")
    except ImportError:
        out["ezkl"] = None
    return out


def float_model(name: str):
    """The float model and its example input (batch 1) for a benchmark model name."""
    import dataclasses

    import torch

    from blindproof.models.transformer import Transformer
    from blindproof.models.workloads import TINY_LLAMA, get_workload, init_weights

    if name == "mlp":
        wl = get_workload("mlp-784-56-10")
        return wl.build(0).eval(), wl.example_input(seed=0, batch=1)
    if name == "tiny-block":
        model = init_weights(Transformer(dataclasses.replace(TINY_LLAMA, n_layers=1)), 0).eval()
        tokens = torch.randint(0, TINY_LLAMA.vocab_size, (1, TINY_SEQ), generator=torch.Generator().manual_seed(3))
        return model, tokens
    raise ValueError(f"unknown benchmark model {name!r}; choose from {MODELS}")


def _static_llama(model, seq: int):
    """The llama-style Transformer at one fixed sequence length, written with static shapes only
    (ONNX importers reject the dynamic reshapes of the KV-cache path)."""
    import torch
    from torch import nn

    class StaticLlama(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = model
            self.register_buffer("cos", model.rope_cos[:seq].float())
            self.register_buffer("sin", model.rope_sin[:seq].float())
            self.register_buffer("mask", torch.triu(torch.full((seq, seq), -1e4), diagonal=1))

        def rope(self, x):
            half = x.shape[-1] // 2
            x1, x2 = x[..., :half], x[..., half:]
            return torch.cat([x1 * self.cos - x2 * self.sin, x1 * self.sin + x2 * self.cos], dim=-1)

        def forward(self, tokens):
            cfg = self.m.cfg
            hd, nh, kv = cfg.head_dim, cfg.n_heads, cfg.kv_heads
            h = self.m.embed(tokens)
            for blk in self.m.blocks:
                x, a = blk.attn_norm(h), blk.attn
                q = self.rope(a.wq(x).reshape(1, seq, nh, hd).transpose(1, 2))
                k = self.rope(a.wk(x).reshape(1, seq, kv, hd).transpose(1, 2))
                v = a.wv(x).reshape(1, seq, kv, hd).transpose(1, 2)
                k = k.unsqueeze(2).expand(1, kv, nh // kv, seq, hd).reshape(1, nh, seq, hd)
                v = v.unsqueeze(2).expand(1, kv, nh // kv, seq, hd).reshape(1, nh, seq, hd)
                s = q @ k.transpose(-1, -2) / math.sqrt(hd) + self.mask
                h = h + a.wo((torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(1, seq, nh * hd))
                h = h + blk.mlp(blk.mlp_norm(h))
            return self.m.head(h)

    return StaticLlama().eval()


def export_onnx(name: str, path: Path) -> list:
    """Write the model's ONNX file; return the flattened example input (EZKL's data format)."""
    import torch

    model, x = float_model(name)
    model = model.float()
    if name == "tiny-block":
        mirror = _static_llama(model, TINY_SEQ)
        with torch.no_grad():
            gap = float((mirror(x) - model(x)).abs().max())
        if gap > 1e-4:
            raise RuntimeError(f"static mirror differs from the model by {gap}")
        model = mirror
    else:
        x = x.float()
    torch.onnx.export(model, (x,), str(path), input_names=["input"], output_names=["output"], dynamo=False)
    return x.reshape(-1).tolist()


def run_ezkl(name: str, repeats: int, max_logrows: int) -> dict:
    """The EZKL pipeline on one model, in this (child) process."""
    import asyncio

    import ezkl

    def done(r):
        return asyncio.run(r) if asyncio.iscoroutine(r) else r

    out: dict = {"model": name, "system": "ezkl"}
    with tempfile.TemporaryDirectory(prefix="bench_ezkl_") as tmp:
        d = Path(tmp)
        onnx, settings, data = d / "m.onnx", d / "settings.json", d / "input.json"
        data.write_text(json.dumps({"input_data": [export_onnx(name, onnx)]}))
        args = ezkl.PyRunArgs()
        args.input_visibility, args.param_visibility, args.output_visibility = "private", "fixed", "public"
        t0 = time.perf_counter()
        ezkl.gen_settings(str(onnx), str(settings), py_run_args=args)
        done(ezkl.calibrate_settings(str(data), str(onnx), str(settings), "resources", max_logrows=max_logrows))
        out["calibrate_s"] = time.perf_counter() - t0
        logrows = json.loads(settings.read_text())["run_args"]["logrows"]
        out["logrows"] = logrows
        compiled, srs, vk, pk = d / "m.ezkl", d / "kzg.srs", d / "vk.key", d / "pk.key"
        witness, proof = d / "witness.json", d / "proof.json"
        t0 = time.perf_counter()
        ezkl.compile_circuit(str(onnx), str(compiled), str(settings))
        ezkl.gen_srs(str(srs), logrows)
        out["srs_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ezkl.setup(str(compiled), str(vk), str(pk), str(srs))
        out["setup_s"] = time.perf_counter() - t0
        out["proving_key_bytes"] = pk.stat().st_size
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            done(ezkl.gen_witness(str(data), str(compiled), str(witness), str(vk), str(srs)))
            ezkl.prove(str(witness), str(compiled), str(pk), str(proof), str(srs))
            times.append(time.perf_counter() - t0)
        out["prove_runs"], out["prove_s"] = times, statistics.median(times)
        t0 = time.perf_counter()
        ok = ezkl.verify(str(proof), str(settings), str(vk), str(srs))
        out["verify_s"] = time.perf_counter() - t0
        out["proof_bytes"] = proof.stat().st_size  # EZKL's JSON proof file (hex inside)
        out["status"] = "ok" if ok else "verify rejected"
    return out


def run_blindproof(name: str, repeats: int) -> dict:
    """blindproof's commit/prove/verify on the same float model, in this (child) process."""
    import blindproof  # noqa: F401  (pins threads)
    from blindproof.zk.proof.keys import CommitmentKey
    from blindproof.zk.proof.prover import ModelProver, calibration_input
    from blindproof.quant import quantize
    from bench_zk import timed_verify  # benchmarks/ is on sys.path when run as a script

    model, x = float_model(name)
    calib = calibration_input("mlp-784-56-10") if name == "mlp" else \
        calibration_input("tiny-llama")[:, :TINY_SEQ]
    out: dict = {"model": name, "system": "blindproof"}
    t0 = time.perf_counter()
    qm = quantize(model, calib)
    prover = ModelProver.create(qm, CommitmentKey(b"\x01" * 32))
    out["commit_s"] = time.perf_counter() - t0
    inputs = qm.encode(x)
    prover.prove(inputs)  # warm-up: compiled kernels loaded, the mask plan cached (as in a daemon)
    times, proof = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        proof = prover.prove(inputs)
        times.append(time.perf_counter() - t0)
    data = proof.to_bytes()
    res, vtimes = timed_verify(prover.commitment, data)
    out.update(prove_runs=times, prove_s=statistics.median(times), verify_s=statistics.median(vtimes),
               proof_bytes=len(data), provable_bits=res.provable_bits,
               status="ok" if res.ok else f"verify rejected: {res.reason}")
    return out


def _child(system: str, name: str, repeats: int, max_logrows: int, timeout: float) -> dict:
    env = {**os.environ, "BLINDPROOF_THREADS": str(_threads()), "RAYON_NUM_THREADS": str(_threads())}
    cmd = [sys.executable, __file__, "--one", f"{system}:{name}", "--repeats", str(repeats),
           "--max-logrows", str(max_logrows)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"model": name, "system": system, "status": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"model": name, "system": system, "status": f"failed: {tail}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def markdown(rows: list[dict], machine: dict) -> str:
    lines = [f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['threads']} thread(s); python "
             f"{machine['python']}, numpy {machine['numpy']}, torch {machine['torch']}, ezkl {machine['ezkl']}.",
             "EZKL: inputs private, parameters fixed (weights public, in the verifying key), outputs public, "
             "`resources` calibration, local KZG SRS. blindproof: weights hidden in a hiding commitment. "
             "Prove time = witness + proof for EZKL; the integer trace + proof for blindproof (after one "
             "warm-up proof); blindproof verify: median of 3, EZKL verify: one run. Medians.", "",
             "| model | system | one-time setup (s) | prove (s) | verify (ms) | proof | notes | status |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ok = r.get("status") == "ok"
        if r["system"] == "ezkl":
            setup = sum(r.get(k, 0.0) for k in ("calibrate_s", "srs_s", "setup_s"))
            notes = f"2^{r['logrows']} rows, proving key {r['proving_key_bytes'] / 2**20:.0f} MiB" if "logrows" in r else ""
        else:
            setup, notes = r.get("commit_s", float("nan")), (f"{r['provable_bits']:.1f} provable bits" if ok else "")
        lines.append(f"| {r['model']} | {r['system']} | {setup:.2f} | "
                     f"{r['prove_s']:.3f} | {r['verify_s'] * 1e3:.1f} | {r['proof_bytes'] / 1024:.1f} KB | {notes} | "
                     f"{r['status']} |" if ok else
                     f"| {r['model']} | {r['system']} | – | – | – | – | {notes} | {r.get('status')} |")
    lines += ["", "| model | prove-time ratio EZKL / blindproof (same run) |", "|---|---|"]
    for name in dict.fromkeys(r["model"] for r in rows):
        pair = {r["system"]: r for r in rows if r["model"] == name and r.get("status") == "ok"}
        ratio = f"{pair['ezkl']['prove_s'] / pair['blindproof']['prove_s']:.0f}×" if len(pair) == 2 else "–"
        lines.append(f"| {name} | {ratio} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    """Prove time, verify time and proof size per model, blindproof beside EZKL (a run that did not
    finish is drawn as a hatched bar at the time it was stopped, labelled with its status)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, ax = plt.subplots(1, 3, figsize=(13, 4))
    panels = (("prove_s", "prove (s, median)"), ("verify_s", "verify (s, median)"), ("proof_bytes", "proof (bytes)"))
    for a, (key, label) in zip(ax, panels):
        for k, system in enumerate(("blindproof", "ezkl")):
            for i, m in enumerate(models):
                r = next((r for r in rows if r["model"] == m and r["system"] == system), None)
                if r is None:
                    continue
                x = i + (k - 0.5) * 0.4
                if r.get("status") == "ok":
                    a.bar(x, r[key], width=0.4, color=f"C{k}", label=system if i == 0 else None)
                    a.annotate(f"{r[key]:.3g}", (x, r[key]), ha="center", va="bottom", fontsize=7)
                elif key == "prove_s" and "timed out after" in str(r.get("status")):
                    stop = float(str(r["status"]).split("after")[1].split()[0])
                    a.bar(x, stop, width=0.4, color=f"C{k}", alpha=0.35, hatch="//",
                          label=system if i == 0 else None)
                    a.annotate("not finished", (x, stop), ha="center", va="bottom", fontsize=7)
        a.set_xticks(np.arange(len(models)), models)
        a.set_yscale("log")
        a.set_ylabel(label)
        a.legend(fontsize=8)
    fig.suptitle("blindproof vs EZKL (one machine, one thread)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-logrows", type=int, default=23, help="EZKL calibration cap (2^k circuit rows)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per child run")
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench_ezkl"))
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child mode: system:model
    ap.add_argument("--render", default=None, help="only redraw the plot from a JSON result file")
    args = ap.parse_args(argv)
    if args.render:
        plot(json.loads(Path(args.render).read_text())["results"], Path(args.out).with_suffix(".png"))
        return 0
    if args.one:
        system, name = args.one.split(":", 1)
        r = run_ezkl(name, args.repeats, args.max_logrows) if system == "ezkl" else run_blindproof(name, args.repeats)
        print(json.dumps(r))
        return 0
    machine = _machine()
    if machine["ezkl"] is None:
        print("ezkl is not installed: pip install -e \".[ezkl]\" (ezkl, onnx)", file=sys.stderr)
        return 2
    print(json.dumps(machine))
    rows = []
    for name in [m for m in args.models.split(",") if m]:
        for system in ("blindproof", "ezkl"):
            r = _child(system, name, args.repeats, args.max_logrows, args.timeout)
            print(json.dumps({k: v for k, v in r.items() if k != "prove_runs"}), flush=True)
            rows.append(r)
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps({"machine": machine, "results": rows}, indent=1) + "\n")
    md = "# blindproof vs EZKL\n\nCommand: `python benchmarks/bench_ezkl.py`\n\n" + markdown(rows, machine)
    out.with_suffix(".md").write_text(md)
    plot(rows, out.with_suffix(".png"))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
