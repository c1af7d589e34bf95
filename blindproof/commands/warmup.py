"""`blindproof warmup`: compile the prover's and verifier's kernels once, ahead of the first real proof.

The zk kernels are numba functions with ``cache=True``: the first proof on a machine compiles them
(tens of seconds on a small CPU) and every later process loads the compiled code from numba's on-disk
cache. This command makes that first proof now: the embedded default model, EE-transformed under a
throwaway key and quantized exactly as ``demo`` and ``deploy --integer`` do, proved on a few tokens
and verified. Run it once after installing (the README's install step does); the demo's first proof
then runs at its warm speed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("warmup", help="compile the prover's kernels once (run after installing)",
                       description="Prove and verify one short blind inference locally so numba compiles and "
                                   "caches the prover's and verifier's kernels; later proofs start warm.")
    p.add_argument("--tokens", type=int, default=4, help="tokens in the warm-up proof (default 4)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=run)


def kernels_cached() -> bool:
    """Whether numba's on-disk cache already holds compiled zk kernels (a heuristic: index files exist
    beside the kernels' modules, or in $NUMBA_CACHE_DIR)."""
    import os

    import blindproof.zk as zk
    custom = os.environ.get("NUMBA_CACHE_DIR")
    roots = [Path(custom)] if custom else [Path(zk.__file__).parent / "__pycache__"]
    return any(next(r.rglob("_kernels.*.nbi"), None) is not None for r in roots if r.is_dir())


def first_run_notice() -> str | None:
    """A line to show before the first proof on a machine whose kernels are not compiled yet."""
    if kernels_cached():
        return None
    return ("first proof on this machine: numba compiles the prover's kernels once (1-3 minutes on a small "
            "CPU; later runs load them from the cache). `blindproof warmup` does this ahead of time.")


def warm(tokens: int = 4, say=lambda msg: None) -> dict:
    """Prove and verify one blind inference of the default model in this process; returns timings."""
    import os

    import numpy as np
    import torch

    from blindproof.client.integer import IntegerCodec, default_calibration, integer_split, quantize_for_server
    from blindproof.client.sdk import _server_copy
    from blindproof.ee import generate_key
    from blindproof.zk.proof.keys import CommitmentKey
    from blindproof.zk.proof.prover import ModelProver
    from blindproof.zk.proof.verifier import verify_model_proof

    try:
        from blindproof.models.default import load_default_model
        model, name = load_default_model(), "default"
    except (ImportError, FileNotFoundError):
        from blindproof.models.workloads import get_workload
        model, name = get_workload("tiny-llama").build(0), "tiny-llama"
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    inner, server_model, _, _ = _server_copy(model, generate_key(), "rotate", integer_split(model))
    qm = quantize_for_server(server_model, inner, default_calibration(model))
    ckey = os.urandom(32)
    codec = IntegerCodec(inner, qm, ckey)
    seconds["quantize"] = time.perf_counter() - t0
    say(f"quantized {name} ({seconds['quantize']:.1f} s); committing")
    t0 = time.perf_counter()
    prover = ModelProver.create(qm, CommitmentKey(ckey))
    seconds["commit"] = time.perf_counter() - t0
    say(f"committed ({seconds['commit']:.1f} s); proving {tokens} tokens")
    x = codec.client_input(torch.randint(0, model.cfg.vocab_size, (1, tokens), generator=torch.Generator().manual_seed(0)), 0)
    inputs = {qm.spec.inputs[0]: x.numpy().astype(np.int64)}
    t0 = time.perf_counter()
    proof = prover.prove(inputs, 0)
    seconds["prove"] = time.perf_counter() - t0
    say(f"proved ({seconds['prove']:.1f} s); verifying")
    t0 = time.perf_counter()
    ok = verify_model_proof(prover.commitment, proof.to_bytes()).ok
    seconds["verify"] = time.perf_counter() - t0
    if not ok:
        raise RuntimeError("the warm-up proof did not verify")
    return {"model": name, "tokens": tokens, "verified": ok, "seconds": {k: round(v, 2) for k, v in seconds.items()}}


def run(args: argparse.Namespace) -> int:
    if args.tokens < 1:
        raise SystemExit("error: --tokens must be positive")
    say = (lambda m: None) if args.json else (lambda m: print(f"  {m}", file=sys.stderr, flush=True))
    cached = kernels_cached()
    if not args.json:
        print("compiling the prover's and verifier's kernels (one-off; 1-3 minutes on a small CPU)"
              if not cached else "kernels already compiled; checking that a proof runs warm", file=sys.stderr)
    t0 = time.perf_counter()
    summary = warm(args.tokens, say)
    summary.update(total_s=round(time.perf_counter() - t0, 2), was_cached=cached)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"warm: a {summary['tokens']}-token proof of the {summary['model']} model proved in "
              f"{summary['seconds']['prove']:.1f} s and verified in {summary['seconds']['verify']:.1f} s "
              f"({summary['total_s']:.1f} s in all)")
    return 0
