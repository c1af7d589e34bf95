"""Identity checks through the blind channel: what the keyed harmless input expansion detects.

For each model (the embedded default model, tiny-llama with seeded weights, a small BERT-style encoder)
and each noise norm alpha, a fingerprint is made under one EE key (rotate tier) and calibrated on the
local stack (batch 256). Then N fresh probes (secret references + harmless noise of norm alpha, keyed
exactly like ordinary requests) are answered by each server model, run in-process at batch 1:

- honest: the genuine expanded deployment;
- other model, same key: another model of the same architecture deployed under the same key (same
  expansion, other blocks);
- other key: the same model deployed under another key;
- int8 (all weights): per-channel int8 rounding of every weight, the expansion included;
- fp16 (all weights): the deployment run in float16;
- int8, expansion kept: int8 rounding of every weight except the expansion (a server that keeps the
  expansion layer and swaps the rest).

Per cell: the per-probe failure rate in logits mode (max |output error| above the calibrated
threshold) and labels mode (top-1 differs; decoders only), and the probes a fixed-size test needs for
false-positive and miss probabilities below 2^-40 (p0: calibration's 99.9% upper bound, p1: the
measured rate's 95% lower bound; "-" when p1 <= p0). A second table checks ordinary traffic: greedy
generation of 64 tokens with noise on every request against plaintext generation. A third measures the
zk binding of published directions to the model commitment (fingerprint/binding.py).

Writes docs/bench_fingerprint_blind.json and docs/bench_fingerprint_blind.md.

The ``traffic`` section (benchmarks/bench_fingerprint_traffic.py) measures probes that are traffic: each
server-side distinguisher's accuracy at telling probe sessions from the client's sessions (and, for
comparison, the fixed-batch random-byte probes), honest servers of each device class (CPU float32;
TF32, float16, bfloat16 simulated on CPU) against their own calibration and the CPU one, their top-1
agreement with the reference with and without the request noise, and the routing, projecting and
first-layer-exact servers per device class. Writes docs/bench_fingerprint_traffic.json and .md.

    python benchmarks/bench_fingerprint_blind.py [--sections blind traffic] [--probes 500] [--alphas 10 100 1000]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from pathlib import Path

import blindproof  # noqa: F401  (pins thread pools first)
import numpy as np
import torch

from blindproof.ee import generate_key
from blindproof.fingerprint import blind as B
from blindproof.fingerprint.protocol import _failures
from blindproof.fingerprint.stats import design_test, lower_bound
from blindproof.fingerprint.substitutes import int8_weights
from blindproof.models.default import default_prompt, load_default_model
from blindproof.models.transformer import Transformer, TransformerConfig
from blindproof.models.workloads import get_workload
from _machine import cpu_name  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parents[1]
TARGET = 2.0 ** -40
BERT_TINY = TransformerConfig(vocab_size=1000, d_model=64, n_layers=2, n_heads=4, d_ff=256, max_seq=64, norm="layer",
                              norm_position="post", mlp="gelu", position="learned", bias=True, causal=False,
                              norm_eps=1e-12, embed_norm=True, type_vocab_size=2, output="mean_pool")


def machine() -> dict:
    cpu = cpu_name()
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "platform": platform.platform(), "loadavg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def seeded(cfg: TransformerConfig, seed: int) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(cfg).eval()


class Half(torch.nn.Module):
    """A server model run in float16 (inputs cast down, outputs back up)."""

    def __init__(self, model: Transformer) -> None:
        super().__init__()
        self.inner = copy.deepcopy(model).half()

    def run_blocks(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.run_blocks(x.half()).float()


def servers(model: Transformer, other: Transformer, key, alpha: float) -> dict:
    genuine, _ = B.expanded_deployment(model, key, "rotate", alpha=alpha)
    keep = int8_weights(genuine)
    keep.expand.weight.data.copy_(genuine.expand.weight.data)
    return {
        "honest (batch 1)": genuine,
        "other model, same key": B.expanded_deployment(other, key, "rotate", alpha=alpha)[0],
        "other key": B.expanded_deployment(model, generate_key(), "rotate", alpha=alpha)[0],
        "int8 (all weights)": int8_weights(genuine),
        "fp16 (all weights)": Half(genuine),
        "int8, expansion kept": keep,
    }


def probes_needed(p0: float, rate: float, n: int) -> int | None:
    p1 = lower_bound(int(round(rate * n)), n, 0.95)
    if p1 <= p0:
        return None
    try:
        return design_test(p0, p1, TARGET, TARGET).n
    except ValueError:  # needs more than a million probes
        return None


@torch.no_grad()
def run_model(name: str, model: Transformer, other: Transformer, alphas, n: int, modes) -> list[dict]:
    rows = []
    key = generate_key()
    for alpha in alphas:
        gen = torch.Generator().manual_seed(int(alpha) + 1)
        t0 = time.perf_counter()
        fp = B.make_blind_fingerprint(model, key, "rotate", references=64, alpha=alpha, probes=1000, modes=modes,
                                      generator=gen)
        make_s = time.perf_counter() - t0
        _, codec = B.expanded_deployment(model, key, "rotate", alpha=alpha)
        lib = fp.library(codec)
        probes = lib.probes(n, gen)
        for sub, server in servers(model, other, key, alpha).items():
            q = B.probe_query(codec, lambda x, s=server: s.run_blocks(x))
            outs = torch.cat([q(probes.inputs[i:i + 1]) for i in range(n)]) if sub.startswith("honest") \
                else q(probes.inputs)
            row = {"model": name, "alpha": alpha, "server": sub, "probes": n, "make_s": round(make_s, 2)}
            for mode in modes:
                cal = fp.calibrations[mode]
                o = outs if mode == "logits" else outs.argmax(dim=1)
                fail, dev = _failures(o, probes, mode, cal.threshold)
                rate = float(fail.double().mean())
                row[f"{mode}_rate"] = rate
                row[f"{mode}_probes_needed"] = probes_needed(cal.p0_upper, rate, n)
                row[f"{mode}_threshold"] = cal.threshold
                row[f"{mode}_p0"] = cal.p0_upper
                if mode == "logits":
                    row["median_deviation"] = float(dev.median())
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


@torch.no_grad()
def traffic(model: Transformer, alphas, tokens: int = 64) -> list[dict]:
    """Greedy generation with noise on every request vs plaintext generation."""
    from blindproof.ee import blind_generate
    from blindproof.models import tokenizer

    prompt = tokenizer.encode(default_prompt())
    ref = model.generate(prompt, tokens)
    out = []
    key = generate_key()
    for alpha in [0.0, *alphas]:
        server, codec = B.expanded_deployment(model, key, "rotate", alpha=alpha)
        from blindproof.models.transformer import KVCache
        cache = KVCache(model.cfg.n_layers)
        got = blind_generate(codec, lambda x, s: server.run_blocks(x, s, cache), prompt, tokens)  # type: ignore[arg-type]
        x = prompt
        dev = float((codec.client_output(server.run_blocks(codec.client_input(x))) - model(x)).abs().max())
        out.append({"alpha": alpha, "tokens": tokens, "identical_to_plaintext": bool(torch.equal(got, ref)),
                    "max_logit_deviation_on_prompt": dev})
        print(json.dumps(out[-1]), flush=True)
    return out


def binding(dims_list=((64, 32, 32, 10), (256, 64, 10)), repeats: int = 3) -> list[dict]:
    """zk binding of the published directions to the model commitment: prove / verify / size."""
    from blindproof.fingerprint import binding as FB
    from blindproof.models.mlp import MLP
    from blindproof import quant
    from blindproof.zk.proof.commitment import commit_model
    from blindproof.zk.proof.keys import CommitmentKey, OpeningLedger

    out = []
    for dims in dims_list:
        torch.manual_seed(0)
        qm = quant.quantize(MLP(dims), torch.randn(64, dims[0]))
        com, state = commit_model(qm.spec, qm.weights, CommitmentKey.generate())
        w = FB.first_linear_weight(com)
        t0 = time.perf_counter()
        dirs = FB.published_directions(qm.weights[w])
        lll = time.perf_counter() - t0
        prove_s, verify_s = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            # a throwaway key proving more often than its budget: each repeat counted in a ledger of its own
            proof = FB.prove_binding(com, state, w, dirs, ledger=OpeningLedger())
            prove_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            ok = FB.verify_binding(com, w, dirs, proof).ok
            verify_s.append(time.perf_counter() - t0)
            assert ok
        out.append({"mlp": list(dims), "weight": w, "shape": list(qm.weights[w].shape), "directions": int(dirs.shape[0]),
                    "max_abs_entry": int(np.abs(dirs).max()), "directions_s": round(lll, 3),
                    "prove_s": round(float(np.median(prove_s)), 4), "verify_s": round(float(np.median(verify_s)), 4),
                    "proof_bytes": len(proof)})
        print(json.dumps(out[-1]), flush=True)
    return out


def fmt_rate(row: dict, mode: str) -> str:
    if f"{mode}_rate" not in row:
        return "n/a"
    need = row[f"{mode}_probes_needed"]
    return f"{100 * row[f'{mode}_rate']:.1f}% ({need if need is not None else '-'})"


def markdown(info: dict, rows: list[dict], gen_rows: list[dict], bind_rows: list[dict], args) -> str:
    lines = ["# Identity checks through the blind channel (keyed harmless input expansion)", "",
             f"Machine: {info['cpu']} ({info['cores']} cores), torch threads {info['torch_threads']}, "
             f"torch {info['torch']}, numpy {info['numpy']}, Python {info['python']}; load average "
             f"{info['loadavg_1m']} at the start (shared machine, other work running; results are counts, "
             "not timings).", "",
             f"`python benchmarks/bench_fingerprint_blind.py --probes {args.probes} --alphas "
             f"{' '.join(str(a) for a in args.alphas)}`: rotate tier, expansion width 16, 64 secret references of "
             f"16 tokens, calibration 1000 probes per mode at batch 256; {args.probes} fresh probes per cell, the "
             "honest server at batch 1. Cells: per-probe failure rate (probes a fixed-size test needs for false "
             "positive and miss < 2^-40 *given* p0 = the calibration's 99.9% bound and p1 = the measured rate's 95% "
             "lower bound; unconditionally at most 2^-40 + 1e-3 and 2^-40 + 0.05; '-' = not separable from honest "
             "rounding).", "",
             "| model | alpha | server | logits | labels (top-1) | median max-abs output error |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['alpha']:g} | {r['server']} | {fmt_rate(r, 'logits')} | "
                     f"{fmt_rate(r, 'labels')} | {r['median_deviation']:.3g} |")
    lines += ["", "Ordinary traffic (default model, greedy generation, noise of norm alpha on every request, "
              "rotate tier):", "", "| alpha | tokens | identical to plaintext | max logit deviation on the prompt |",
              "|---|---|---|---|"]
    for g in gen_rows:
        lines.append(f"| {g['alpha']:g} | {g['tokens']} | {g['identical_to_plaintext']} | "
                     f"{g['max_logit_deviation_on_prompt']:.2e} |")
    lines += ["", "zk binding of the published directions to the model commitment (quantized MLPs, first layer; "
              "wall-clock medians of 3 on the loaded machine; directions: exact integer null vectors, LLL-reduced):",
              "", "| MLP | first weight | directions (max abs entry) | finding them | prove | verify | proof |",
              "|---|---|---|---|---|---|---|"]
    for b in bind_rows:
        lines.append(f"| {'-'.join(map(str, b['mlp']))} | {b['shape'][0]}x{b['shape'][1]} | {b['directions']} "
                     f"({b['max_abs_entry']}) | {b['directions_s']:.2f} s | {1e3 * b['prove_s']:.0f} ms | "
                     f"{1e3 * b['verify_s']:.0f} ms | {b['proof_bytes'] / 1024:.0f} KiB |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", nargs="+", choices=("blind", "traffic"), default=["blind", "traffic"])
    ap.add_argument("--probes", type=int, default=500)
    ap.add_argument("--alphas", type=float, nargs="+", default=[10.0, 100.0, 1000.0])
    ap.add_argument("--splits", type=int, default=10, help="traffic: independent text splits for the distinguishers")
    ap.add_argument("--precision-alphas", type=float, nargs="+", default=[0.0, 0.3, 1.0, 3.0, 10.0, 100.0])
    ap.add_argument("--precision-sessions", type=int, default=150)
    ap.add_argument("--calibration", type=int, default=1000, help="traffic: honest calibration sessions per class")
    ap.add_argument("--traffic-probes", type=int, default=500, help="traffic: probe sessions per server")
    args = ap.parse_args()
    info = machine()
    print(json.dumps(info), flush=True)
    if "traffic" in args.sections:
        import bench_fingerprint_traffic as _bench_traffic
        result = _bench_traffic.run(argparse.Namespace(**{**vars(args), "probes": args.traffic_probes}))
        result = {"machine": info, "args": vars(args), **result}
        (ROOT / "docs" / "bench_fingerprint_traffic.json").write_text(json.dumps(result, indent=1) + "\n")
        (ROOT / "docs" / "bench_fingerprint_traffic.md").write_text(traffic_markdown(info, result, args))
        print(f"traffic section done in {result['seconds']} s")
    if "blind" not in args.sections:
        return
    t0 = time.perf_counter()
    rows = []
    rows += run_model("default (trained tiny-llama)", load_default_model(), seeded(load_default_model().cfg, 1),
                      args.alphas, args.probes, ("logits", "labels"))
    tl = get_workload("tiny-llama").build(0)
    rows += run_model("tiny-llama (seed 0)", tl, get_workload("tiny-llama").build(1), args.alphas, args.probes,
                      ("logits", "labels"))
    rows += run_model("BERT-style d64 (seeded)", seeded(BERT_TINY, 0), seeded(BERT_TINY, 1), args.alphas,
                      args.probes, ("logits",))
    gen_rows = traffic(load_default_model(), args.alphas)
    bind_rows = binding()
    result = {"machine": info, "args": vars(args), "rows": rows, "generation": gen_rows, "binding": bind_rows,
              "seconds": round(time.perf_counter() - t0, 1)}
    (ROOT / "docs" / "bench_fingerprint_blind.json").write_text(json.dumps(result, indent=1) + "\n")
    (ROOT / "docs" / "bench_fingerprint_blind.md").write_text(markdown(info, rows, gen_rows, bind_rows, args))
    print(f"done in {result['seconds']} s")


def traffic_markdown(info: dict, r: dict, args) -> str:
    """The traffic section as markdown: every error figure with its condition."""
    d, srv = r["distinguishers"], r["servers"]
    lines = ["# Probes that are traffic: what the server can tell apart, and what it gets away with", "",
             f"Machine: {info['cpu']} ({info['cores']} cores), torch threads {info['torch_threads']}, torch "
             f"{info['torch']}, numpy {info['numpy']}, Python {info['python']}; load average {info['loadavg_1m']} "
             "at the start (shared machine; results are counts, not timings). TF32, float16 and bfloat16 are "
             "simulated on this CPU (fingerprint/precision.py); no GPU was used.", "",
             f"`python benchmarks/bench_fingerprint_blind.py --sections traffic --splits {args.splits} "
             f"--calibration {args.calibration} --traffic-probes {args.traffic_probes}`: default model, rotate "
             f"tier, expansion width 16, request noise {d['alpha']:g}; sessions: prompts of 8-48 bytes of the "
             "model's corpora (split by sentence into disjoint traffic / probe pool / labelled-probe parts), "
             "2-6 decoded tokens, batch 1, start 0.", "",
             f"## Distinguishers (held-out balanced accuracy; mean, its 95% confidence interval (t over splits) "
             f"and max over {d['splits']} independent splits, each with its own key, noise and text split; 50 % is "
             "chance)", "",
             "| distinguisher | traffic probes: mean ± 95% CI | max | fixed-batch random probes: mean | max |",
             "|---|---|---|---|---|"]
    tp, bp = d["accuracy"]["traffic probes"], d["accuracy"]["fixed-batch random probes"]
    for name in tp:
        lines.append(f"| {name} | {100 * tp[name]['mean']:.1f}% ± {100 * tp[name]['ci95']:.1f} | "
                     f"{100 * tp[name]['max']:.1f}% | {100 * bp[name]['mean']:.1f}% | {100 * bp[name]['max']:.1f}% |")
    sizes = d["sessions_per_split"]
    lines += ["", f"Sessions per split: {min(x['traffic'] for x in sizes)}-{max(x['traffic'] for x in sizes)} "
              f"traffic, {min(x['probes'] for x in sizes)}-{max(x['probes'] for x in sizes)} probes; half fit "
              "each distinguisher's threshold (or the regression), the other half measure it.", "",
              "## Honest servers per device class: top-1 agreement with the reference (last prompt position and "
              "every decoding step) by request-noise norm", "",
              "| noise | positions | " + " | ".join(DEVICE_CLASSES_MD) + " |", "|---|---|" + "---|" * 4]
    for p in r["precision"]:
        lines.append(f"| {p['alpha']:g} | {p['positions']} | " + " | ".join(
            f"{100 * p[c]['top1_agreement']:.2f}% (max error {p[c]['max_logit_error']:.3g})" for c in DEVICE_CLASSES_MD)
            + " |")
    lines += ["", f"## Servers per device class (noise {srv['alpha']:g}, pool of {srv['pool']} one-use references; "
              "failures / probe sessions; in brackets the probes a fixed-size test needs for false positive and "
              "miss <= 2^-40 *given* p0 (the calibration's 99.9% bound) and p1 (the measured rate's 95% lower "
              "bound); '-' = not separable)", ""]
    names = [k for k in srv["rows"][0] if isinstance(srv["rows"][0][k], dict)]
    lines += ["| class | mode | threshold | p0 | " + " | ".join(names) + " | honest vs CPU-fp32 calibration |",
              "|---|---|---|---|" + "---|" * (len(names) + 1)]
    for row in srv["rows"]:
        cells = []
        for n in names:
            c = row[n]
            need = c["needed"] if c.get("needed") is not None else "-"
            cells.append(f"{c['failures']}/{c['probes']} ({need})")
        hv = row.get("honest vs fp32 calibration")
        lines.append(f"| {row['class']} | {row['mode']} | {row['threshold']:.3g} | {row['p0']:.3g} | "
                     + " | ".join(cells) + f" | {'-' if hv is None else str(hv['failures']) + '/' + str(hv['probes'])} |")
    lines += ["", f"Rows 'logits (margin 1, held-out p0)': the threshold is the largest honest error in "
              f"{args.calibration} calibration sessions of the class and p0 is counted on {args.calibration} others; "
              "other rows: 8 times the largest honest error, p0 on the same sessions."]
    lines += ["", f"Routing server: its copy answered {100 * srv['routing_share_traffic_to_copy']:.1f}% of traffic "
              f"sessions and {100 * srv['routing_share_probes_to_copy']:.1f}% of probe sessions; its copy's first "
              f"next token differs from the genuine one for {100 * srv['routing_users_with_other_next_token']:.1f}% "
              f"of {srv['users_measured']} traffic prompts."]
    return "\n".join(lines) + "\n"


DEVICE_CLASSES_MD = ("fp32", "tf32", "fp16", "bf16")


if __name__ == "__main__":
    main()
