"""`blindproof attack`: measure what static EE leaks (key recovery, prompt inversion, decipherment)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _lengths(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--lengths must be comma-separated byte counts, got {text!r}") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"--lengths must be positive byte counts, got {text!r}")
    return values


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("attack", help="run the leakage attacks on static EE and report measured recovery rates",
                       description="Run the attacks of blindproof.ee.attacks against the real EE transforms of a "
                                   "named workload: key recovery by weight matching, prompt recovery from the "
                                   "hidden states the server sees, and substitution decipherment of the client's "
                                   "traffic. See docs/threat-model.md.")
    p.add_argument("--tier", default="all", choices=("permute", "rotate", "all"), help="EE tier (default: both)")
    p.add_argument("--workload", default="tiny-llama",
                   help="named transformer workload, or several separated by commas (default tiny-llama: the "
                        "trained default model when its weights are installed)")
    p.add_argument("--seed", type=int, default=0, help="seed of the experiment's key and of seeded weights")
    p.add_argument("--lengths", type=_lengths, default=None,
                   help="ciphertext sizes in bytes for the decipherment curve (default 256,1024,4096,16384)")
    p.add_argument("--prompt-bytes", type=int, default=64, help="length of the prompt the server inverts")
    p.add_argument("--restarts", type=int, default=20, help="hill-climbing restarts of the decipherment")
    p.add_argument("--trials", type=int, default=1,
                   help="disjoint stretches of victim text per ciphertext length (mean and worst reported)")
    p.add_argument("--json", action="store_true", help="print the full JSON report")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON report to this file")
    p.add_argument("--markdown", type=Path, default=None, help="also write a markdown table of the figures")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from blindproof.ee.attacks.evaluate import DEFAULT_LENGTHS, TIERS, AttackConfig, environment, run_attacks

    tiers = TIERS if args.tier == "all" else (args.tier,)
    names = [w.strip() for w in args.workload.split(",") if w.strip()]
    if not names:
        raise SystemExit("error: --workload names no workload")
    if args.prompt_bytes < 1 or args.restarts < 0 or args.trials < 1:
        raise SystemExit("error: --prompt-bytes and --trials must be positive, --restarts non-negative")
    runs = []
    for name in names:
        for tier in tiers:
            cfg = AttackConfig(workload=name, tier=tier, seed=args.seed, prompt_bytes=args.prompt_bytes,
                               lengths=args.lengths or DEFAULT_LENGTHS, restarts=args.restarts,
                               trials=args.trials)
            try:
                runs.append(run_attacks(cfg))
            except (KeyError, ValueError) as exc:
                raise SystemExit(f"error: {exc.args[0] if exc.args else exc}") from None
    report = {"runs": runs, "environment": environment()}
    text = json.dumps(report, indent=2)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(report) + "\n", encoding="utf-8")
    print(text if args.json else summary(report))
    return 0


def summary(report: dict) -> str:
    """A short human-readable table of the headline figures of each run."""
    lines = []
    env = report["environment"]
    lines.append(f"machine {env['machine']}, {env['cpus']} cpus, {env['threads']} thread(s), torch {env['torch']}")
    for r in report["runs"]:
        kr = r["key_recovery"]["default"]
        lines.append(f"\n{r['workload']} [{r['model']}] tier={r['tier']}")
        exact = kr.get("residual_exact_fraction")
        key_txt = f"exact {exact:.1%}" if exact is not None else f"rel. error {kr['residual_rel_error']:.1e}"
        if "output_top1_agreement" in kr:
            out_txt = f"output top-1 agreement after decryption {kr['output_top1_agreement']:.1%}"
        else:
            out_txt = f"output relative error after decryption {kr['output_rel_error']:.1e}"
        lines.append(f"  server with base weights: residual key recovered ({kr['residual_key']}, {key_txt}) "
                     f"in {kr['seconds']:.3f} s; {out_txt}")
        wb = kr["wrong_base"]
        first = r["hidden_inversion"]["layers"][0]
        lines.append(f"  same attacks with another model of the same shape (no base weights): residual key rel. "
                     f"error {wb['residual_rel_error']:.2f}, fit residual "
                     f"{wb['ffn_reconstruction_max_rel_residual']:.2f}; prompt from layer-0 states "
                     f"{first['wrong_base_without_key']:.1%}")
        se = r["key_recovery"].get("server_embeds", {})
        if "vocab_exact_fraction" in se:
            lines.append(f"  server-embeds split: vocabulary permutation recovered {se['vocab_exact_fraction']:.1%}")
        for row in r["hidden_inversion"]["layers"]:
            lines.append(f"  prompt from layer-{row['layer']} states: {row['with_recovered_key']:.1%} with the "
                         f"recovered key, {row['without_key']:.1%} without it")
        for row in r.get("related_base", {}).get("rows", []):
            exact = row.get("residual_exact_fraction")
            key_txt = f"exact {exact:.1%}" if exact is not None else f"rel. error {row['residual_rel_error']:.2f}"
            lines.append(f"  server with a related model (weights changed by {row['relative_change']:g} relative): "
                         f"residual key {key_txt}; prompt from layer-0 states "
                         f"{row['prompt_layer0_with_recovered_key']:.1%} with the recovered key, "
                         f"{row['prompt_layer0_without_key']:.1%} without it")
        sl = r.get("served_model_language", {})
        if "victim_text_accuracy" in sl:
            lines.append(f"  server without base weights, server-embeds-and-decodes split: vocabulary key from the "
                         f"served model's own predictions decodes {sl['victim_text_accuracy']:.1%} of victim text")
        for stream, curve in r["decipherment"]["curves"].items():
            pts = ", ".join(f"{e['bytes']} B: " + (f"{e['known_plaintext']:.1%}" if "known_plaintext" in e else "n/a")
                            for e in curve)
            if curve and not curve[0]["substitution"]:
                pts += " (stream is not a per-token substitution)"
            lines.append(f"  wire observer, {stream.replace('_', ' ')} (frequency + known plaintext): {pts}")
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def markdown(report: dict) -> str:
    """Markdown tables of the headline figures: one row per (workload, tier)."""
    env = report["environment"]
    out = [f"Measured on {env['machine']}, {env['cpus']} CPUs, {env['threads']} thread(s), torch {env['torch']}, "
           f"numpy {env['numpy']}, scipy {env['scipy']}, numba {env['numba']} (shared machine, under load).", ""]
    out += ["| workload | tier | key from weights (with base) | seconds | decrypted output | vocab key "
            "(server embeds) | same attack, wrong base | prompt from states, with key / keyless (layers) | "
            "keyless, wrong base (layer 0) | vocab key from served model alone |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["runs"]:
        kr, se = r["key_recovery"]["default"], r["key_recovery"]["server_embeds"]
        exact = kr.get("residual_exact_fraction")
        key = f"{_pct(exact)} exact" if exact is not None else f"rel. error {kr['residual_rel_error']:.1e}"
        key += f"; heads fit {kr['head_keys_max_rel_residual']:.0e}"
        outp = (_pct(kr["output_top1_agreement"]) + " top-1" if "output_top1_agreement" in kr
                else f"rel. error {kr['output_rel_error']:.1e}")
        wb = kr["wrong_base"]
        layers = r["hidden_inversion"]["layers"]
        inv = ", ".join(f"L{row['layer']}: {_pct(row['with_recovered_key'])}/{_pct(row['without_key'])}"
                        for row in layers)
        sl = r.get("served_model_language", {})
        out.append(f"| {r['workload']} | {r['tier']} | {key} | {kr['seconds']:.3f} | {outp} | "
                   f"{_pct(se.get('vocab_exact_fraction'))} | rel. error {wb['residual_rel_error']:.2f} | {inv} | "
                   f"{_pct(layers[0]['wrong_base_without_key'])} | {_pct(sl.get('victim_text_accuracy'))} |")
    out += ["", "Server that knows only a related model (deployed weights = base + Gaussian noise of the given "
            "relative size, a proxy for fine-tuning):", "",
            "| workload | tier | relative change | residual key | prompt, layer 0 (recovered key / keyless) | "
            "output top-1 vs deployed model |", "|---|---|---|---|---|---|"]
    for r in report["runs"]:
        for row in r.get("related_base", {}).get("rows", []):
            exact = row.get("residual_exact_fraction")
            key = f"{_pct(exact)} exact" if exact is not None else f"rel. error {row['residual_rel_error']:.3f}"
            out.append(f"| {r['workload']} | {r['tier']} | {row['relative_change']:g} | {key} | "
                       f"{_pct(row['prompt_layer0_with_recovered_key'])} / {_pct(row['prompt_layer0_without_key'])} | "
                       f"{_pct(row.get('output_top1_agreement'))} |")
    out += ["", "Decipherment of the client's traffic by a wire observer (fraction of message text recovered; "
            "mean over trials, worst in brackets):", ""]
    for r in report["runs"]:
        for stream, curve in r["decipherment"]["curves"].items():
            if not curve:
                continue
            if not out[-1].startswith("|"):
                out += ["| workload | tier | stream | " + " | ".join(f"{e['bytes']} B" for e in curve) + " |",
                        "|---|---|---|" + "---|" * len(curve)]
            cells = []
            for e in curve:
                if "known_plaintext" not in e:
                    cells.append("not a substitution" if not e["substitution"] else "n/a")
                    continue
                cells.append(f"{_pct(e['known_plaintext'])} [{_pct(e['known_plaintext_min'])}] known template; "
                             f"{_pct(e['frequency_only'])} [{_pct(e['frequency_only_min'])}] frequency only "
                             f"(×{e['trials']})")
            out.append(f"| {r['workload']} | {r['tier']} | {stream.replace('_', ' ')} | " + " | ".join(cells) + " |")
    return "\n".join(out)
