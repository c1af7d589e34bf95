"""Fingerprint detection table: probes needed to catch each substitute, and honest false positives.

Two reference models trained on scikit-learn's digits (shipped with the package): an MLP 64-32-32-10 and
a ViT-style patch-embedding model (4x4 patches -> 12 channels -> LayerNorm -> MLP head). For each probe
magnitude alpha (0 = the plain secret inputs, no amplification) and each access mode (logits, labels
only) it measures, over N fresh probes per substitute:

- the per-probe failure rate of each substitute (logits: max |logit error| above the calibrated
  threshold; labels: top-1 label differs from the reference label);
- the probes a fixed-size binomial test needs for false-positive AND miss probabilities below 2^-40
  (given the calibrated p0 and the measured p1; see the markdown for the unconditional figures),
  using p0 = Clopper-Pearson 99.9% upper bound of the honest failure rate from the calibration and
  p1 = Clopper-Pearson 95% lower bound of the substitute's measured rate ("-" when p1 <= p0);
- honest failures over N fresh probes served by another stack (batch size 1 instead of 256).

For the MLP a last column uses local spaces (through both ReLU layers, one space per reference), whose
probes are capped at half their exact radius. A final table measures transformer MLP ports on tiny-llama.

Writes docs/bench_fingerprint.json and docs/bench_fingerprint.md.

    python benchmarks/bench_fingerprint.py [--probes 1000] [--alphas 0 100 1000 10000]
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
import sklearn
import torch
from sklearn.datasets import load_digits

from blindproof.fingerprint import calibrate, certify, check, design_test, harmless_space, make_fingerprint
from blindproof.fingerprint import substitutes as S
from blindproof.fingerprint.nets import patch_embed_net
from blindproof.fingerprint.protocol import _failures, _outputs
from blindproof.fingerprint.stats import lower_bound
from blindproof.models.mlp import MLP
from _machine import cpu_name  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parents[1]
TARGET = 2.0 ** -40
EPOCHS = 60


def machine() -> dict:
    cpu = cpu_name()
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "scikit-learn": sklearn.__version__, "platform": platform.platform(),
            "loadavg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    d = load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    tr, te = perm[:1400], perm[1400:]
    return x[tr], y[tr], x[te], y[te]


def substitutes(ref, build, xtr, ytr, space) -> dict:
    int8 = S.int8_weights(ref)
    return {
        "int8 weights (per-channel)": int8,
        "fp16": S.HalfPrecision(ref),
        "fine-tuned 1 epoch": S.fine_tuned(ref, xtr, ytr, epochs=1, lr=1e-3),
        "10% magnitude-pruned": S.magnitude_pruned(ref, 0.1),
        "independently trained": S.train_classifier(build(1), xtr, ytr, EPOCHS, seed=1),
        "same first layer, other upper layers": S.same_first_layer(ref, build(3), xtr, ytr, EPOCHS),
        "projecting server (int8 inside)": S.ProjectingServer(int8, space),
    }


def probes_needed(p0: float, failures: int, n: int) -> int | None:
    if failures == 0:
        return None
    p1 = lower_bound(failures, n, 0.95)
    if p1 <= p0:
        return None
    return design_test(p0, p1, TARGET, TARGET).n


def run_model(name: str, build, shape, data, alphas, n_probes: int, local_depths: tuple[int, ...] = ()) -> dict:
    xtr, ytr, xte, yte = data
    xtr, xte = xtr.reshape(-1, *shape), xte.reshape(-1, *shape)
    t0 = time.perf_counter()
    ref = S.train_classifier(build(0), xtr, ytr, EPOCHS, seed=0)
    train_s = time.perf_counter() - t0
    space = harmless_space(ref, shape)
    cert = certify(ref, space, xte[:8], alphas=(1.0, 100.0, 10000.0))
    subs = substitutes(ref, build, xtr, ytr, space)
    with torch.no_grad():
        acc = {k: float((m(xte).argmax(1) == yte).float().mean()) for k, m in [("reference", ref), *subs.items()]}
    out = {"model": name, "input_shape": list(shape), "train_s": round(train_s, 2), "test_accuracy": acc,
           "harmless_dim": space.dim, "space": space.description,
           "certificate": {"alphas": cert.alphas, "harmless_change": cert.harmless_change,
                           "rounding_bound": cert.rounding_bound, "random_change": cert.random_change,
                           "passed": cert.passed}, "runs": []}
    refs = xte[:200]
    settings = [(f"alpha {a:g}", a, 0) for a in alphas] + [(f"local depth {d}, radius-capped", max(alphas), d)
                                                          for d in local_depths]
    for column, alpha, depth in settings:
        fp = make_fingerprint(ref, refs, alpha=max(alpha, 1e-12), depth=depth, min_margin=0.5)
        for mode in ("logits", "labels"):
            labels = mode == "labels"
            g = torch.Generator().manual_seed(int(alpha) * 7 + 1000 * depth + labels)
            cal = calibrate(S.as_query(ref, labels, batch=256), fp, mode=mode, probes=n_probes, generator=g)
            honest_p = fp.probes(n_probes, g)
            honest_fail, honest_dev = _failures(_outputs(S.as_query(ref, labels, batch=1), honest_p.inputs, mode, 1),
                                                honest_p, mode, cal.threshold)
            row = {"column": column, "alpha": alpha, "depth": depth, "mode": mode, "threshold": cal.threshold, "calibration_max_dev": cal.max_deviation,
                   "p0_upper": cal.p0_upper, "honest_probes": n_probes, "honest_failures": int(honest_fail.sum()),
                   "honest_max_dev": float(honest_dev.max()), "substitutes": {}}
            p = fp.probes(n_probes, g)
            for sname, sub in subs.items():
                fail, dev = _failures(_outputs(S.as_query(sub, labels), p.inputs, mode, 1000), p, mode, cal.threshold)
                f = int(fail.sum())
                row["substitutes"][sname] = {"failures": f, "rate": f / n_probes,
                                             "median_dev": float(dev.median()),
                                             "probes_needed": probes_needed(cal.p0_upper, f, n_probes)}
            row["median_magnitude"] = float(p.magnitudes.median())
            out["runs"].append(row)
    out["checks"] = run_checks(ref, subs, refs, max(alphas), n_probes)
    return out


def run_checks(ref, subs: dict, refs: torch.Tensor, alpha: float, n_cal: int, repeats: int = 10,
               p1: float = 0.2) -> dict:
    """The public check() end to end, label-only at the largest alpha: fixed-size and sequential verdicts."""
    fp = make_fingerprint(ref, refs, alpha=alpha, min_margin=0.5)
    g = torch.Generator().manual_seed(99)
    cal = calibrate(S.as_query(ref, True, batch=256), fp, mode="labels", probes=n_cal, generator=g)
    rows = {}
    for name, model in [("honest (batch 1)", ref), *subs.items()]:
        q = S.as_query(model, True, batch=1 if model is ref else None)
        fixed = [check(q, fp, cal, p1=p1, generator=g) for _ in range(repeats)]
        seq = [check(q, fp, cal, p1=p1, sequential=True, batch=8, generator=g) for _ in range(repeats)]
        rows[name] = {"fixed_mismatch": sum(v.decision == "mismatch" for v in fixed), "fixed_probes": fixed[0].probes,
                      "fixed_threshold": fixed[0].threshold_failures, "seq_mismatch": sum(v.decision == "mismatch" for v in seq),
                      "seq_undecided": sum(v.decision == "undecided" for v in seq),
                      "seq_mean_probes": float(np.mean([v.probes for v in seq])),
                      "false_positive": fixed[0].false_positive, "miss": fixed[0].miss,
                      "seq_bounds": [seq[0].false_positive, seq[0].miss]}
    return {"alpha": alpha, "mode": "labels", "p1": p1, "p0": cal.p0_upper, "repeats": repeats, "rows": rows}


def run_transformer_ports(alphas=(100.0, 1000.0, 10000.0)) -> dict:
    """tiny-llama (seeded weights): MLP-port probes on the genuine model and on two substitutes."""
    from blindproof.fingerprint.transformer import port_change
    from blindproof.models import get_workload

    wl = get_workload("tiny-llama")
    ref = wl.build(0)
    with torch.no_grad():
        h = ref.embed_tokens(wl.example_input(0, batch=4))
    keep_down = S.int8_weights(ref)
    with torch.no_grad():  # every weight int8 except the probed W_down matrices: what ports cannot see
        for blk, orig in zip(keep_down.blocks, ref.blocks):
            blk.mlp.down.weight.copy_(orig.mlp.down.weight)
    subs = {"int8 weights (per-channel)": S.int8_weights(ref), "10% magnitude-pruned": S.magnitude_pruned(ref, 0.1),
            "int8 except W_down": keep_down}
    rows = []
    for layer in range(len(ref.blocks)):
        for alpha in alphas:
            g = lambda: torch.Generator().manual_seed(layer * 100 + int(alpha))  # same directions for all
            row = {"layer": layer, "alpha": alpha, "genuine": port_change(ref, h, layer, alpha, g()).harmless_change,
                   "random_direction": port_change(ref, h, layer, alpha, g()).random_change}
            with torch.no_grad():
                for name, sub in subs.items():
                    row[name] = port_change(sub, h, layer, alpha, g(), reference=ref).harmless_change
                    row[name + " (no probe)"] = float((sub.run_blocks(h) - ref.run_blocks(h)).abs().max())
            rows.append(row)
    return {"workload": "tiny-llama", "tokens": list(h.shape[:2]), "rows": rows}


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = ["# Fingerprint detection table", "",
             "Plot: [bench_fingerprint.png](bench_fingerprint.png) (`--render docs/bench_fingerprint.json` redraws it).", "",
             f"Machine: {m['cpu']} ({m['cores']} cores, torch threads {m['torch_threads']}, load {m['loadavg_1m']:.1f}); "
             f"python {m['python']}, torch {m['torch']}, numpy {m['numpy']}, scikit-learn {m['scikit-learn']}. "
             f"Run: `{res['command']}` in {res['wall_s']:.0f} s on a shared, loaded machine.", "",
             f"{res['probes']} fresh probes per cell. Cell = per-probe failure rate (probes a fixed binomial test needs "
             "for false-positive and miss probabilities both < 2^-40 *given* p0 and p1; `-` = not detectable: no "
             "failure, or rate not above the honest bound). p0 = 99.9% upper bound on the honest rate from "
             "calibration, p1 = 95% lower bound on the substitute's rate; without those conditions the false "
             "positive is at most 2^-40 + 1e-3 and the miss 2^-40 + 0.05. alpha = 0 is the plain secret inputs "
             "(no amplification).", ""]
    for mres in res["models"]:
        lines += [f"## {mres['model']}", "",
                  f"Harmless space: {mres['harmless_dim']} dims ({mres['space']}); certificate max output change "
                  f"{', '.join(f'{c:.1e}' for c in mres['certificate']['harmless_change'])} (rounding bound "
                  f"{', '.join(f'{c:.1e}' for c in mres['certificate']['rounding_bound'])}) vs random direction "
                  f"{', '.join(f'{c:.1e}' for c in mres['certificate']['random_change'])} at alpha "
                  f"{', '.join(f'{a:g}' for a in mres['certificate']['alphas'])} (passed: {mres['certificate']['passed']}). "
                  f"Test accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in mres["test_accuracy"].items()) + ".", ""]
        for mode in ("labels", "logits"):
            runs = [r for r in mres["runs"] if r["mode"] == mode]
            lines += [f"### {mode}" + (" only" if mode == "labels" else ""), "",
                      "| substitute | " + " | ".join(r["column"] for r in runs) + " |",
                      "|---|" + "---|" * len(runs)]
            for sname in runs[0]["substitutes"]:
                cells = []
                for r in runs:
                    s = r["substitutes"][sname]
                    cells.append(f"{s['rate']:.3f} ({s['probes_needed'] if s['probes_needed'] else '-'})")
                lines.append(f"| {sname} | " + " | ".join(cells) + " |")
            lines.append("| **honest, other stack: failures** | " + " | ".join(
                f"**{r['honest_failures']}/{r['honest_probes']}** (max dev {r['honest_max_dev']:.1e}"
                + (f", threshold {r['threshold']:.1e}" if mode == "logits" else "") + ")" for r in runs) + " |")
            for r in runs:
                if r.get("depth"):
                    lines.append(f"\n{r['column']}: one local space per reference (through {r['depth']} ReLU layers); "
                                 f"median probe magnitude {r['median_magnitude']:.3g} (half the exact radius, at most "
                                 f"alpha {r['alpha']:g}).")
            lines.append("")
    for mres in res["models"]:
        c = mres.get("checks")
        if not c:
            continue
        first = next(iter(c["rows"].values()))
        lines += [f"## check() verdicts, {mres['model']}, labels only, alpha {c['alpha']:g}", "",
                  f"{c['repeats']} checks per row, each on fresh probes; p0 = {c['p0']:.4f} (calibration), assumed "
                  f"p1 = {c['p1']}. Fixed-size test: {first['fixed_probes']} probes, mismatch at >= "
                  f"{first['fixed_threshold']} failures, false positive {first['false_positive']:.1e} given an honest "
                  f"rate <= p0 (unconditionally <= {first['false_positive'] + 1e-3:.1e}), miss {first['miss']:.1e} "
                  f"given a substitute rate >= p1 (an assumption; substitutes failing less are not covered). "
                  f"Sequential (Wald, batches of 8): bounds {first['seq_bounds'][0]:.1e} / {first['seq_bounds'][1]:.1e} "
                  "under the same conditions.", "",
                  "| server | fixed: mismatch verdicts | sequential: mismatch verdicts | sequential: undecided | sequential: mean probes |",
                  "|---|---|---|---|---|"]
        for name, r in c["rows"].items():
            lines.append(f"| {name} | {r['fixed_mismatch']}/{c['repeats']} | {r['seq_mismatch']}/{c['repeats']} | "
                         f"{r['seq_undecided']}/{c['repeats']} | {r['seq_mean_probes']:.1f} |")
        lines.append("")
    tp = res.get("transformer_ports")
    if tp:
        keys = [k for k in tp["rows"][0] if k not in ("layer", "alpha")]
        lines += ["## Transformer MLP ports (tiny-llama, seeded weights)", "",
                  f"Max |change| that a probe causes in each model's own residual stream after all blocks "
                  f"({tp['tokens'][0]}x{tp['tokens'][1]} tokens): alpha x (a unit null-space direction of the genuine "
                  "W_down, per token) is added before W_down of one block. `(no probe)` = the substitute's deviation "
                  "from the genuine model without any probe (what a logit check sees anyway).", "",
                  "| layer | alpha | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
        for r in tp["rows"]:
            lines.append(f"| {r['layer']} | {r['alpha']:g} | " + " | ".join(f"{r[k]:.2e}" for k in keys) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def plot(res: dict, path: Path) -> None:
    """Per model (first run: α = 0, logits), each substitute's median deviation on the probes against
    the decision threshold, and the genuine model's largest deviation: a substitute far above the line
    is told apart in a few probes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    models = res["models"]
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.2), squeeze=False)
    for ax, m in zip(axes[0], models):
        run = m["runs"][0]
        subs = run["substitutes"]
        names = ["genuine (largest)"] + list(subs)
        vals = [run["honest_max_dev"]] + [subs[n]["median_dev"] for n in subs]
        colors = ["C2"] + ["C3" if subs[n]["rate"] >= 0.5 else "C1" for n in subs]
        ax.barh(np.arange(len(names)), vals, color=colors)
        ax.axvline(run["threshold"], color="k", lw=1, ls="--", label=f"threshold {run['threshold']:.1e}")
        ax.set_xscale("log")
        ax.set_yticks(np.arange(len(names)), names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("deviation on the probes (median; genuine: largest)")
        ax.set_title(m["model"], fontsize=9)
        ax.legend(fontsize=8)
    fig.suptitle(f"Harmless-perturbation fingerprints: {res['probes']} probes per model")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probes", type=int, default=1000)
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.0, 100.0, 1000.0, 10000.0])
    ap.add_argument("--render", type=Path, default=None, help="only redraw the plot from a JSON result file")
    args = ap.parse_args()
    if args.render:
        plot(json.loads(args.render.read_text()), ROOT / "docs" / "bench_fingerprint.png")
        return
    t0 = time.perf_counter()
    data = digits()

    def mlp(seed):
        torch.manual_seed(seed)
        return MLP((64, 32, 32, 10))

    def patch(seed):
        torch.manual_seed(seed)
        return patch_embed_net()

    res = {"machine": machine(), "probes": args.probes, "alphas": args.alphas, "target": TARGET,
           "command": "python benchmarks/bench_fingerprint.py" + (
               f" --probes {args.probes}" if args.probes != 1000 else ""),
           "models": [run_model("MLP 64-32-32-10 (digits)", mlp, (64,), data, args.alphas, args.probes, local_depths=(2,)),
                      run_model("ViT-style patch embedding 4x4 -> 12, LayerNorm (digits)", patch, (1, 8, 8), data,
                                args.alphas, args.probes)],
           "transformer_ports": run_transformer_ports()}
    res["wall_s"] = time.perf_counter() - t0
    (ROOT / "docs").mkdir(exist_ok=True)
    (ROOT / "docs" / "bench_fingerprint.json").write_text(json.dumps(res, indent=1))
    plot(res, ROOT / "docs" / "bench_fingerprint.png")
    md = markdown(res)
    (ROOT / "docs" / "bench_fingerprint.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
