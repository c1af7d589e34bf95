"""Where a proof's bytes go: the size of each part of one whole-model proof, per workload.

    python benchmarks/bench_proof_parts.py [--workloads tiny-llama,gpt2-block]

Parts are the proof file's fields (public input/output, trace commitment and the tensor names in its
layout, op proofs by op kind, the batched lookups, the trace and weight openings) plus the committed
trace and weight sizes. One proof per workload, one thread. Sizes are exact; the prove time printed
beside them is one run, for orientation only (bench_zk.py measures time).
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import platform
import sys
import time

from _machine import cpu_name  # noqa: E402  (benchmarks/ is on sys.path when run as a script)


def parts(name: str) -> dict:
    """Prove ``name`` once and split the proof file into its parts (bytes)."""
    import blindproof  # noqa: F401  (pins threads)
    from blindproof.zk.commit import pcs
    from blindproof.zk.field.encoding import Writer
    from blindproof.zk.proof.keys import CommitmentKey
    from blindproof.zk.proof.program import ProgramProof
    from blindproof.zk.proof.prover import (ModelProver, example_input, program_input, quantized_workload,
                                            workload_float_model)

    model = workload_float_model(name)
    qm = quantized_workload(name, model=model)
    prover = ModelProver.create(qm, CommitmentKey(b"\x01" * 32))
    inputs = qm.encode(program_input(qm, model, example_input(name)))
    t0 = time.perf_counter()
    proof = prover.prove(inputs)
    prove_s = time.perf_counter() - t0
    out: dict = {"workload": name, "prove_s": prove_s, "total": len(proof.to_bytes())}
    out["public input + output"] = proof.public_bytes()  # beside the proof, bound by its digest
    trace = pcs.Commitment.from_bytes(proof.trace_commitment)
    out["trace commitment"] = len(proof.trace_commitment)
    out["  of which tensor names"] = sum(len(n.encode()) for n in trace.layout.names)
    program = ProgramProof.from_bytes(proof.program_proof, len(qm.spec.ops))
    by_kind: collections.Counter = collections.Counter()
    count: collections.Counter = collections.Counter()
    for op, p, m in zip(qm.spec.ops, program.op_proofs, program.merges):
        for part in (p, m):
            if part is not None:
                w = Writer()
                part.write(w)
                by_kind[op.kind] += len(w.getvalue())
                count[op.kind] += 1
    w = Writer()
    program.lookups.write(w)
    out["op proofs (lookups excluded)"] = sum(by_kind.values())
    out["lookups"] = len(w.getvalue())
    out["trace opening"] = len(proof.trace_opening)
    out["weight opening"] = len(proof.weight_opening)
    out["companion commitment"] = len(proof.companion_commitment)
    out["op kinds"] = {k: (v, count[k]) for k, v in by_kind.most_common()}
    out["trace"] = (len(trace.layout.names), math.log2(sum(1 << s for s in trace.layout.log_sizes)))
    wl = prover.commitment.weights.layout
    out["weights"] = (len(wl.names), math.log2(sum(1 << s for s in wl.log_sizes)))
    out["claims"] = (proof.trace_claims, proof.weight_claims)
    out["bits"] = proof.soundness.summary()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", default="tiny-llama,gpt2-block")
    args = ap.parse_args(argv)
    import numba
    import numpy as np

    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, 1 thread; python {platform.python_version()}, "
          f"numpy {np.__version__}, numba {numba.__version__}")
    for name in args.workloads.split(","):
        r = parts(name)
        print(f"\n## {name}: proof {r['total']:,} bytes (one prove: {r['prove_s']:.2f} s)")
        print(f"  {'proof without public I/O':32s} {r['total'] - r['public input + output']:>11,}")
        for k in ("public input + output", "trace commitment", "  of which tensor names",
                  "op proofs (lookups excluded)", "lookups", "trace opening", "weight opening",
                  "companion commitment"):
            print(f"  {k:32s} {r[k]:>11,}")
        for kind, (size, n) in r["op kinds"].items():
            print(f"    {kind:30s} {size:>11,}  ({n} proofs)")
        print(f"  committed trace: {r['trace'][0]} tensors, 2^{r['trace'][1]:.2f} entries; "
              f"weights: {r['weights'][0]} tensors, 2^{r['weights'][1]:.2f} entries")
        print(f"  claims (trace, weights): {r['claims']}; {r['bits']}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())
