"""WHIR-style hiding commitment beside the Ligero commitment, in one run.

For each size (2^16, 2^18, 2^20, 2^22 by default): commit / open / verify CPU-time and wall-clock medians
and proof bytes for WHIR in the provable and the conjectured profile (``WhirParams.for_security(100,
m, profile)``; a size the calculator refuses is reported as refused, with the cap), and for the
Ligero commitment (``pcs``, default parameters: ≥ 100 provable bits). One evaluation claim at a
random extension point per opening, plus a batch of 64 claims for WHIR at 2^20. One thread. Writes
docs/bench_whir.json and docs/bench_whir.md.

    python benchmarks/bench_whir.py [--logs 16 18 20 22] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import blindproof  # noqa: F401  (pins thread pools first)
import numpy as np

from blindproof.zk.commit import pcs, whir
from blindproof.zk.commit.whir_soundness import WhirParams
from blindproof.zk.field import babybear as F
from blindproof.zk.iop import mle
from blindproof.zk.iop.transcript import Transcript
from _machine import machine_facts as machine, timed  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parents[1]
DOMAIN = b"bench-whir"


def _claims(rng, table, m, n):
    pts = [F.erandom(rng, m) for _ in range(n)]
    return pts, [mle.evaluate(table, p) for p in pts]


def run_whir(m: int, profile: str, repeats: int, rng, n_claims: int = 1) -> dict:
    try:
        params = WhirParams.for_security(100, m, profile)
    except ValueError as exc:
        return {"scheme": f"whir-{profile}", "log": m, "refused": str(exc)}
    table = F.random(rng, 1 << m)
    pts, vals = _claims(rng, table, m, n_claims)
    claims = [whir.Claim(p, v) for p, v in zip(pts, vals)]
    rows = {k: ([], []) for k in ("commit", "open", "verify")}
    size = None
    for _ in range(repeats):
        (com, state), w, c = timed(lambda: whir.commit(table, params))
        rows["commit"][0].append(w), rows["commit"][1].append(c)
        proof, w, c = timed(lambda: whir.open_claims(state, claims, Transcript(DOMAIN)).to_bytes())
        rows["open"][0].append(w), rows["open"][1].append(c)
        res, w, c = timed(lambda: whir.verify(com, claims, proof, Transcript(DOMAIN), params))
        assert res.ok, res.reason
        rows["verify"][0].append(w), rows["verify"][1].append(c)
        size = len(proof)
    rep = params.soundness(n_claims)
    out = {"scheme": f"whir-{profile}", "log": m, "claims": n_claims, "proof_bytes": size,
           "provable_bits": round(rep.provable_bits, 1), "conjectured_bits": round(rep.conjectured_bits, 1),
           "queries": list(params.queries), "folds": list(params.folds), "domain_logs": list(params.domain_logs),
           "ext_degree": params.ext_degree, "masks": params.masks}
    for k, (ws, cs) in rows.items():
        out[f"{k}_wall_s"] = statistics.median(ws)
        out[f"{k}_cpu_s"] = statistics.median(cs)
    return out


def run_pcs(m: int, repeats: int, rng) -> dict:
    table = F.random(rng, 1 << m)
    pts, vals = _claims(rng, table, m, 1)
    claims = [pcs.Claim("t", pts[0], vals[0])]
    rows = {k: ([], []) for k in ("commit", "open", "verify")}
    size = None
    for _ in range(repeats):
        (com, state), w, c = timed(lambda: pcs.commit({"t": table}, pcs.PcsParams()))
        rows["commit"][0].append(w), rows["commit"][1].append(c)
        op, w, c = timed(lambda: pcs.open_claims(state, claims, Transcript(DOMAIN)).to_bytes())
        rows["open"][0].append(w), rows["open"][1].append(c)
        res, w, c = timed(lambda: pcs.verify(com, claims, op, Transcript(DOMAIN)))
        assert res.ok, res.reason
        rows["verify"][0].append(w), rows["verify"][1].append(c)
        size = len(op)
    rep = com.layout.soundness(1)
    out = {"scheme": "ligero-pcs", "log": m, "claims": 1, "proof_bytes": size,
           "provable_bits": round(rep.provable_bits, 1), "conjectured_bits": round(rep.conjectured_bits, 1)}
    for k, (ws, cs) in rows.items():
        out[f"{k}_wall_s"] = statistics.median(ws)
        out[f"{k}_cpu_s"] = statistics.median(cs)
    return out


def fmt_ms(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 10 else f"{s:.1f} s"


def _field(r: dict) -> str:
    """The field of ρ and the folding challenges (older JSON rows: recomputed from the parameter rule)."""
    if not r["scheme"].startswith("whir"):
        return ""
    d = r.get("ext_degree") or WhirParams.for_security(100, r["log"], r["scheme"].split("-", 1)[1]).ext_degree
    masks = r.get("masks")
    if masks is None:  # rows of the construction with base-field masks (ext_degree / 4 of them)
        return f"degree {d}" + (" (2 masks)" if d == 8 else "")
    return f"degree {d}, mask of {masks} base rows"


def write_md(res: dict, path: Path) -> None:
    m = res["machine"]
    lines = ["# WHIR-style commitment beside Ligero", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['threads']} thread(s); Python {m['python']}, "
             f"numpy {m['numpy']}, numba {m['numba']}; 1-minute load average {m['loadavg_1m_start']:.2f} at start, "
             f"{m.get('loadavg_1m_end', 0):.2f} at the end (a shared machine: compare rows of one run, not across runs).", "",
             f"Command: `{res['command']}` ({res['repeats']} repeats, medians; CPU time of the process, wall "
             "clock in docs/bench_whir.json). One claim at a random extension point unless stated.", "",
             "| 2^m | scheme | commit | open | verify | proof | provable / conjectured bits | queries per oracle | challenge field |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        label = r["scheme"] + (f" ({r['claims']} claims)" if r.get("claims", 1) > 1 else "")
        if "refused" in r:
            lines.append(f"| {r['log']} | {label} | refused by the calculator: {r['refused'].split(':')[1].strip()} "
                         "| | | | | | |")
            continue
        lines.append(f"| {r['log']} | {label} | {fmt_ms(r['commit_cpu_s'])} | {fmt_ms(r['open_cpu_s'])} | "
                     f"{fmt_ms(r['verify_cpu_s'])} | {r['proof_bytes'] / 1000:.1f} KB | "
                     f"{r['provable_bits']} / {r['conjectured_bits']} | {', '.join(map(str, r.get('queries', [])))} | "
                     f"{_field(r)} |")
    lines += ["", "Ratios in the same run (WHIR ÷ Ligero, CPU time):", "",
              "| 2^m | profile | commit | open | commit + open | verify | proof |", "|---|---|---|---|---|---|---|"]
    by = {(r["log"], r["scheme"], r.get("claims", 1)): r for r in res["rows"]}
    for log in res["logs"]:
        lig = by.get((log, "ligero-pcs", 1))
        for prof in ("provable", "conjectured"):
            w = by.get((log, f"whir-{prof}", 1))
            if not lig or not w or "refused" in w:
                continue
            prover = (w["commit_cpu_s"] + w["open_cpu_s"]) / (lig["commit_cpu_s"] + lig["open_cpu_s"])
            lines.append(f"| {log} | {prof} | {w['commit_cpu_s'] / lig['commit_cpu_s']:.1f}× | "
                         f"{w['open_cpu_s'] / lig['open_cpu_s']:.1f}× | {prover:.1f}× | "
                         f"{w['verify_cpu_s'] / lig['verify_cpu_s']:.1f}× | {w['proof_bytes'] / lig['proof_bytes']:.2f}× |")
    before = res.get("before")
    if before:
        lines += ["", f"Cost of the mask with challenge-field values (`{before['label']}`, run {before['when']}; "
                  "CPU-time medians, before → after):", "",
                  "| 2^m | scheme | commit | open | verify | proof |", "|---|---|---|---|---|---|"]
        old = {(r["log"], r["scheme"], r.get("claims", 1)): r for r in before["rows"]}
        for r in res["rows"]:
            o = old.get((r["log"], r["scheme"], r.get("claims", 1)))
            if not r["scheme"].startswith("whir") or not o or "refused" in r or "refused" in o:
                continue
            label = r["scheme"] + (f" ({r['claims']} claims)" if r.get("claims", 1) > 1 else "")
            cells = [f"{fmt_ms(o[f'{k}_cpu_s'])} → {fmt_ms(r[f'{k}_cpu_s'])} "
                     f"({r[f'{k}_cpu_s'] / o[f'{k}_cpu_s']:.2f}×)" for k in ("commit", "open", "verify")]
            cells.append(f"{o['proof_bytes'] / 1000:.1f} → {r['proof_bytes'] / 1000:.1f} KB "
                         f"({r['proof_bytes'] / o['proof_bytes']:.2f}×)")
            lines.append(f"| {r['log']} | {label} | " + " | ".join(cells) + " |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--logs", type=int, nargs="+", default=[16, 18, 20, 22])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench_whir"))
    ap.add_argument("--md-only", action="store_true", help="rewrite the markdown from the JSON of the last run")
    ap.add_argument("--before", help="JSON of a run of an earlier version (same machine, same session): "
                    "adds a before → after table")
    ap.add_argument("--before-label", default="before")
    args = ap.parse_args()
    if args.md_only:
        out = Path(args.out)
        write_md(json.loads(out.with_suffix(".json").read_text()), out.with_suffix(".md"))
        print(out.with_suffix(".md").read_text())
        return
    rng = np.random.default_rng(2024)
    mach = machine()
    print(json.dumps(mach))
    # compile every kernel once (numba's on-disk cache makes later runs start warm)
    run_whir(12, "provable", 1, rng)
    run_whir(12, "conjectured", 1, rng)
    run_pcs(12, 1, rng)
    rows = []
    for m in args.logs:
        for r in (run_pcs(m, args.repeats, rng), run_whir(m, "provable", args.repeats, rng),
                  run_whir(m, "conjectured", args.repeats, rng)):
            rows.append(r)
            print(json.dumps(r))
        if m == 20:
            r = run_whir(m, "provable", args.repeats, rng, n_claims=64)
            rows.append(r)
            print(json.dumps(r))
    res = {"machine": mach, "command": "python benchmarks/bench_whir.py " + " ".join(
        f"--logs {' '.join(map(str, args.logs))} --repeats {args.repeats}".split()), "repeats": args.repeats,
        "logs": args.logs, "rows": rows}
    res["machine"]["loadavg_1m_end"] = os.getloadavg()[0]
    if args.before:
        bpath = Path(args.before)
        res["before"] = {"label": args.before_label, "file": bpath.name,
                         "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(bpath.stat().st_mtime)),
                         "rows": json.loads(bpath.read_text())["rows"]}
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1))
    write_md(res, out.with_suffix(".md"))
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
