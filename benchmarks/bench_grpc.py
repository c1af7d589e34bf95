"""Blind vs plaintext inference over real gRPC on localhost (tiny-llama, default split).

Measures, in one run against one `blindproof serve` subprocess:
  * round-trip latency p50/p99 of a prefill (16 tokens) and of each generated token, blind and plaintext
    (plaintext = the same model deployed untransformed with the same split; the server runs the same
    operations either way), interleaved so drift in machine load hits both alike;
  * throughput (requests/s) with 1, 4 and 16 concurrent clients;
  * protobuf bytes on the wire per request and per generated token.
Writes docs/bench_grpc.json and docs/bench_grpc.md.

    python benchmarks/bench_grpc.py [--reps 300] [--tokens 32] [--seconds 3] [--tier rotate]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import grpc
import torch

import blindproof
from blindproof._threads import configured_threads
from blindproof.client import BlindClient
from blindproof.ee import generate_key
from blindproof.models.workloads import get_workload
from blindproof.server.process import ServerProcess
from _machine import cpu_name  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

DOCS = Path(__file__).resolve().parent.parent / "docs"


def machine() -> dict:
    cpu = cpu_name()
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": configured_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "grpcio": grpc.__version__, "blindproof": blindproof.__version__,
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            "load_average_1min": round(os.getloadavg()[0], 2)}


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def summary(ms: list[float]) -> dict:
    return {"n": len(ms), "p50_ms": round(pct(ms, 50), 4), "p99_ms": round(pct(ms, 99), 4),
            "mean_ms": round(statistics.fmean(ms), 4)}


@torch.no_grad()
def prefill_ms(client: BlindClient, dep, x: torch.Tensor) -> float:
    t0 = time.perf_counter()
    client.infer(dep, x)
    return 1e3 * (time.perf_counter() - t0)


@torch.no_grad()
def token_ms(client: BlindClient, dep, prompt: torch.Tensor, n: int) -> list[float]:
    """Per-token round trips of one greedy generation (client encode, server step, client decode, argmax)."""
    codec, out = dep.codec, []
    with client.session(dep) as sess:
        logits = codec.client_output(sess.step(codec.client_input(prompt, 0)))
        start = prompt.shape[1]
        for _ in range(n):
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            t0 = time.perf_counter()
            logits = codec.client_output(sess.step(codec.client_input(nxt, start)))
            out.append(1e3 * (time.perf_counter() - t0))
            start += 1
    return out


def throughput(target: str, dep_of, n_clients: int, seconds: float, x: torch.Tensor) -> float:
    """Requests/s of ``n_clients`` threads, each with its own channel, calling infer in a loop."""
    clients = [BlindClient(target) for _ in range(n_clients)]
    deps = [dep_of(c) for c in clients]
    counts = [0] * n_clients
    stop = threading.Event()

    def loop(i: int) -> None:
        while not stop.is_set():
            clients[i].infer(deps[i], x)
            counts[i] += 1

    for c, d in zip(clients, deps):  # warm the channels
        c.infer(d, x)
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(n_clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for c in clients:
        c.close()
    return sum(counts) / elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=300, help="prefill round trips per variant")
    ap.add_argument("--tokens", type=int, default=32, help="tokens per generation")
    ap.add_argument("--generations", type=int, default=10, help="generations per variant")
    ap.add_argument("--seconds", type=float, default=3.0, help="duration of each throughput run")
    ap.add_argument("--tier", choices=["permute", "rotate"], default="rotate")
    ap.add_argument("--out", type=Path, default=DOCS)
    args = ap.parse_args(argv)

    wl = get_workload("tiny-llama")
    model = wl.build(0)
    x = wl.example_input(0)  # (1, 16)
    key = generate_key()
    info = machine()
    print(f"machine: {info}", file=sys.stderr)
    result: dict = {"machine": info, "workload": "tiny-llama", "seq": int(x.shape[1]), "tier": args.tier,
                    "split": "client embeds and decodes; server runs the blocks",
                    "note": "2-core machine shared with other work while this ran; compare ratios, not absolutes"}
    with ServerProcess(env={"BLINDPROOF_THREADS": str(info["threads"])}) as srv:
        with BlindClient(srv.target) as client:
            client.wait_ready()
            blind = client.deploy(model, key, args.tier)
            plain = client.deploy(model, None)
            variants = {"blind": blind, "plaintext": plain}
            for dep in variants.values():  # warm-up
                for _ in range(20):
                    prefill_ms(client, dep, x)

            # Prefill latency, interleaved; the order flips every repetition.
            lat = {k: [] for k in variants}
            for i in range(args.reps):
                order = list(variants) if i % 2 == 0 else list(variants)[::-1]
                for k in order:
                    lat[k].append(prefill_ms(client, variants[k], x))
            result["prefill"] = {k: summary(v) for k, v in lat.items()}
            result["prefill"]["ratio_p50"] = round(result["prefill"]["blind"]["p50_ms"] /
                                                   result["prefill"]["plaintext"]["p50_ms"], 4)

            # Per generated token, interleaved generations.
            prompt = x[:, :8]
            tok = {k: [] for k in variants}
            for i in range(args.generations):
                order = list(variants) if i % 2 == 0 else list(variants)[::-1]
                for k in order:
                    tok[k] += token_ms(client, variants[k], prompt, args.tokens)
            result["per_token"] = {k: summary(v) for k, v in tok.items()}
            result["per_token"]["ratio_p50"] = round(result["per_token"]["blind"]["p50_ms"] /
                                                     result["per_token"]["plaintext"]["p50_ms"], 4)
            same = torch.equal(client.generate(blind, prompt, args.tokens), client.generate(plain, prompt, args.tokens))
            result["blind_tokens_equal_plaintext"] = same

            # Bytes on the wire (serialized protobuf messages).
            wire = {}
            for k, dep in variants.items():
                client.stats.reset()
                client.infer(dep, x)
                wire[f"{k}_prefill_request_plus_reply"] = client.stats.bytes_sent + client.stats.bytes_received
                client.stats.reset()
                with client.session(dep) as sess:
                    sess.step(dep.codec.client_input(prompt, 0))
                    client.stats.reset()
                    sess.step(dep.codec.client_input(prompt[:, :1], prompt.shape[1]))
                wire[f"{k}_per_token_request_plus_reply"] = client.stats.bytes_sent + client.stats.bytes_received
            result["wire_bytes"] = wire
            result["upload_bytes"] = {"blind": int(next(d.size_bytes for d in client.list_deployments()
                                                        if d.deployment_id == blind.deployment_id))}

        # Throughput with concurrent clients (each has its own channel; all run in this process).
        tp = {}
        attach = {"blind": lambda c: c.attach(blind.deployment_id, model, key, args.tier),
                  "plaintext": lambda c: c.attach(plain.deployment_id, model, None)}
        rounds = 3  # alternate blind and plaintext in short rounds so load changes hit both
        for n in (1, 4, 16):
            rates = {k: [] for k in attach}
            for r in range(rounds):
                for k in (list(attach) if r % 2 == 0 else list(attach)[::-1]):
                    rates[k].append(throughput(srv.target, attach[k], n, args.seconds / rounds, x))
            for k, v in rates.items():
                tp[f"{k}_{n}"] = round(statistics.fmean(v), 1)
                print(f"throughput {k} x{n}: {tp[f'{k}_{n}']} req/s", file=sys.stderr)
        result["throughput_rps"] = tp
    result["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_grpc.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "bench_grpc.md").write_text(markdown(result))
    print(markdown(result))
    return 0


def markdown(r: dict) -> str:
    m = r["machine"]
    pf, pt, tp, w = r["prefill"], r["per_token"], r["throughput_rps"], r["wire_bytes"]
    lines = [
        "# gRPC round trips: blind vs plaintext",
        "",
        f"Generated by `python benchmarks/bench_grpc.py` on {m['date_utc']} UTC. Machine: {m['cpu']}, "
        f"{m['cores']} cores, {m['threads']} numeric thread(s), device {m['device']}; Python {m['python']}, "
        f"torch {m['torch']}, grpcio {m['grpcio']}. {r['note']} (1-minute load average "
        f"{m['load_average_1min']} at the start, {r['load_average_1min_end']} at the end).",
        "",
        f"Workload {r['workload']} (prefill of {r['seq']} tokens), tier `{r['tier']}`, split: {r['split']}. "
        "Client and server on one host over localhost TCP; latency is the full client round trip "
        "(embed + encode, RPC, decode + head).",
        "",
        "| measure | blind p50 (ms) | blind p99 (ms) | plaintext p50 (ms) | plaintext p99 (ms) | blind/plaintext (p50) |",
        "|---|---|---|---|---|---|",
        f"| prefill round trip (n={pf['blind']['n']}) | {pf['blind']['p50_ms']:.3f} | {pf['blind']['p99_ms']:.3f} | "
        f"{pf['plaintext']['p50_ms']:.3f} | {pf['plaintext']['p99_ms']:.3f} | {pf['ratio_p50']:.3f} |",
        f"| per generated token (n={pt['blind']['n']}) | {pt['blind']['p50_ms']:.3f} | {pt['blind']['p99_ms']:.3f} | "
        f"{pt['plaintext']['p50_ms']:.3f} | {pt['plaintext']['p99_ms']:.3f} | {pt['ratio_p50']:.3f} |",
        "",
        f"Blind generation produced the same tokens as plaintext: {r['blind_tokens_equal_plaintext']}.",
        "",
        "| concurrent clients | blind (req/s) | plaintext (req/s) |",
        "|---|---|---|",
        *[f"| {n} | {tp[f'blind_{n}']} | {tp[f'plaintext_{n}']} |" for n in (1, 4, 16)],
        "",
        "Throughput: each client is a thread of the benchmark process with its own channel, calling `infer` in a "
        "loop; blind and plaintext alternate in three short rounds. Clients share the cores with the server, "
        "so these figures bound the server from below.",
        "",
        "| bytes on the wire (protobuf, request + reply) | blind | plaintext |",
        "|---|---|---|",
        f"| prefill ({r['seq']} tokens) | {w['blind_prefill_request_plus_reply']} | "
        f"{w['plaintext_prefill_request_plus_reply']} |",
        f"| per generated token | {w['blind_per_token_request_plus_reply']} | "
        f"{w['plaintext_per_token_request_plus_reply']} |",
        "",
        f"Model upload (blocks only, safetensors): {r['upload_bytes']['blind']} bytes.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
