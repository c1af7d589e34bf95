"""`blindproof fingerprint make` / `check` as a user runs them, against an honest and a routing server.

Every step is the command line in a subprocess; the servers are `blindproof serve` processes on
localhost. The routing server (tests/fp_routing_server.py) answers multi-row requests (the legacy
fixed-batch probes) with the genuine model and each generation session with an int8 copy with
probability --share (a coin: against traffic-shaped probes the distinguishers of
docs/fingerprint.md section 7 are at chance). Reports, per server and p1: the decisions and the probe
sessions each check sent; and the cost of `make` (seconds, file size).

    python benchmarks/bench_fingerprint_cli.py [--model default] [--checks 5] [--shares 0.5 0.1] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from blindproof.server.process import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
ROUTER = [sys.executable, str(ROOT / "tests" / "fp_routing_server.py")]


def cli(*args: str) -> tuple[int, str, str, float]:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "blindproof.cli", *args], capture_output=True, text=True, timeout=3600)
    return p.returncode, p.stdout, p.stderr, time.perf_counter() - t0


def make(d: Path, key: Path, name: str, model: str, sessions: int, calibration: int, extra: list[str]) -> dict:
    fp = d / name
    code, out, err, s = cli("fingerprint", "make", "--model", model, "--key", str(key), "--sessions", str(sessions),
                            "--probes", str(calibration), "-o", str(fp), "--json", *extra)
    if code:
        raise SystemExit(f"make failed: {err[-2000:]}")
    return {"path": fp, "seconds": round(s, 1), "bytes": fp.stat().st_size, **json.loads(out)}


def checks(srv: ServerProcess, d: Path, key: Path, model: str, fp: Path, n: int, extra: list[str]) -> list[dict]:
    record = d / f"dep-{srv.port}.json"
    if not record.exists():
        code, _, err, _ = cli("fingerprint", "deploy", "--server", srv.target, "--model", model, "--key", str(key),
                              "--record", str(record))
        if code:
            raise SystemExit(f"deploy failed: {err[-2000:]}")
    out = []
    for _ in range(n):
        code, stdout, err, s = cli("fingerprint", "check", "--record", str(record), "--fingerprint", str(fp),
                                   "--json", *extra)
        if code == 2 and "has been sent" in err:
            break  # the pool is spent: as many checks as it held
        if code not in (0, 1):
            raise SystemExit(f"check failed ({code}): {err[-2000:]}")
        v = json.loads(stdout)
        out.append({"decision": v["decision"], "probes": v["probes"], "failures": v["failures"],
                    "budget": v.get("probe_budget"), "seconds": round(s, 2)})
        print(json.dumps({"fingerprint": fp.name, "server": srv.target, "extra": extra, **out[-1]}), file=sys.stderr,
              flush=True)
    return out


def summary(rows: list[dict]) -> dict:
    probes = [r["probes"] for r in rows] or [0]
    return {"decisions": {d: sum(r["decision"] == d for r in rows) for d in {r["decision"] for r in rows}},
            "probes_median": statistics.median(probes), "probes_max": max(probes),
            "seconds_median": statistics.median([r["seconds"] for r in rows] or [0]), "runs": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--checks", type=int, default=5, help="checks per server and setting")
    ap.add_argument("--sessions", type=int, default=256, help="probe sessions per fingerprint")
    ap.add_argument("--calibration", type=int, default=1000)
    ap.add_argument("--shares", type=float, nargs="+", default=[0.5, 0.1], help="routing shares to measure")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res: dict = {"model": args.model, "checks": args.checks}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        key = d / "k.key"
        cli("keygen", "--out", str(key))
        fp = make(d, key, "honest.json", args.model, args.sessions, args.calibration, [])
        res["make"] = {k: fp[k] for k in ("seconds", "bytes", "sessions", "prompt_tokens", "decoded_tokens")}
        res["make"]["calibration"] = fp["calibration"]
        with ServerProcess() as srv:
            res["honest, p1 0.5"] = summary(checks(srv, d, key, args.model, fp["path"], args.checks, []))
        legacy = d / "legacy.json"
        code, _, err, s = cli("fingerprint", "make", "--model", args.model, "--key", str(key), "--legacy-probes",
                              "--probes", str(args.calibration), "-o", str(legacy))
        if code:
            raise SystemExit(f"legacy make failed: {err[-2000:]}")
        for share in args.shares:
            env = {"ROUTING_SHARE": str(share), "ROUTING_SEED": str(int(1000 * share))}
            with ServerProcess(program=ROUTER, env=env) as srv:
                res[f"routing {share}, legacy probes"] = summary(
                    checks(srv, d, key, args.model, legacy, args.checks, ["--legacy-probes"]))
                for p1 in sorted({0.5, share}, reverse=True):
                    # a small p1 needs long checks: such a pool takes all the corpus gives
                    size = args.sessions if p1 >= 0.5 else 100_000
                    pool = make(d, key, f"routing-{share}-{p1}.json", args.model, size, args.calibration, [])
                    res[f"routing {share}, p1 {p1}"] = summary(
                        checks(srv, d, key, args.model, pool["path"], args.checks, ["--p1", str(p1)]))
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        for k, v in res.items():
            if isinstance(v, dict) and "decisions" in v:
                print(f"{k:<32} {v['decisions']}  probes median {v['probes_median']} max {v['probes_max']}  "
                      f"{v['seconds_median']} s per check")
        print(f"make: {res['make']['seconds']} s, {res['make']['bytes'] / 1e6:.2f} MB, {res['make']['sessions']} sessions")


if __name__ == "__main__":
    os.environ.setdefault("BLINDPROOF_THREADS", "1")
    main()
