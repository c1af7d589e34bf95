"""`blindproof commit`: commit to a model (spec + weights) and write the public `model.commit`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def add_model_args(p: argparse.ArgumentParser, *, key: bool = True, security: bool = True) -> None:
    """The options that pick a model (shared by `commit`, `prove` and `rotate`; `rotate` names its own
    key options and takes the parameters from the old commitment)."""
    p.add_argument("--model", required=True, help="workload name (tiny-llama, small-llama, gpt2-block, gpt2-small, "
                                                  "mlp-784-56-10, minilm-l6), a local Hugging Face folder "
                                                  "(config.json + model.safetensors or a sharded "
                                                  "model.safetensors.index.json), an ONNX file (.onnx), a .qspec "
                                                  "file or a torch module (file.py:name)")
    p.add_argument("--tokenizer", type=Path, default=None,
                   help="tokenizer.json for text in and out (default: the folder's own tokenizer.json, if any)")
    p.add_argument("--calibration", type=Path, default=None,
                   help="typical inputs to quantize on: .npy (token ids or features) or .txt (tokenized into rows of "
                        "32 tokens); needed for a torch module (file.py:name) or an ONNX file, optional for workloads "
                        "and folders; commit and prove must use the same (or quantize once: `blindproof quantize`)")
    p.add_argument("--max-seq", type=int, default=None,
                   help="positions a folder's model covers (default: its own limit, at most 1024); commit and "
                        "prove must use the same")
    p.add_argument("--weights", type=Path, default=None,
                   help="safetensors file with the model's state dict (default: the trained default model for "
                        "tiny-llama, the real all-MiniLM-L6-v2 weights for minilm-l6 where installed, seeded random "
                        "weights otherwise)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    p.add_argument("--scope", choices=("model", "blocks"), default=None,
                   help="what the proof covers: the whole model, or only the transformer blocks (hidden states in "
                        "and out); default: the workload's (blocks for gpt2-block and gpt2-small, else model); "
                        "commit and prove must use the same")
    if key:
        p.add_argument("--key", type=Path, default=None,
                       help="secret commitment key (default: <commitment>.key next to the commitment file)")
    if not security:
        return
    p.add_argument("--security", type=float, default=104.0,
                   help="target provable bits of each commitment opening (default 104, so that the whole proof "
                        "reaches 100; at least 100). The commitment file records the parameters; every proof "
                        "against it uses them")


def load_model(args: argparse.Namespace):
    """The :class:`~blindproof.sources.ModelSource` the options name (float model, integer model,
    tokenizer); SystemExit(2) with a one-line message on bad options or an unusable model."""
    from blindproof.commands.calibration import calibration_data
    from blindproof.sources import resolve

    if args.max_seq is not None and args.max_seq < 1:
        raise SystemExit(f"error: --max-seq must be positive, got {args.max_seq}")
    calib = calibration_data(args.calibration, args.model, args.tokenizer, max_seq=args.max_seq)
    try:
        return resolve(args.model, calib, scope=args.scope, seed=args.seed, weights=args.weights,
                       tokenizer=args.tokenizer, max_seq=args.max_seq)
    except ValueError as exc:  # ModelSourceError, and the loaders' own
        raise SystemExit(f"error: {exc}") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("commit", help="commit to a model: write the public model commitment",
                       description="Quantize a model deterministically, commit to its spec and weights (one hiding "
                                   "polynomial commitment) and write the commitment file a verifier needs. The "
                                   "secret key of the commitment's randomness goes to <out>.key (mode 0600), created "
                                   "if missing; `blindproof prove` needs it.")
    add_model_args(p)
    p.add_argument("-o", "--out", type=Path, default=Path("model.commit"), help="commitment file (default model.commit)")
    p.add_argument("--budget", type=int, default=None,
                   help="openings per key whose weight columns stay hiding (default 8; at most 63): every proof "
                        "and every rotation certificate is one, and the last is kept for a rotation, so a key makes "
                        "budget - 1 proofs. Fixed by the commitment: each unit adds ~5 KB to every proof; `prove` "
                        "refuses past it (`blindproof rotate` to a fresh key)")
    p.add_argument("--json", action="store_true",
                   help="print a JSON summary on stdout; progress goes to stderr as JSON events, one per line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from blindproof.zk.proof.commitment import commit_model
    from blindproof.zk.proof.keys import CommitmentKey
    from blindproof.zk.proof.config import DEFAULT_BUDGET, MAX_BUDGET
    from blindproof.zk.commit.pcs import PcsParams

    key_path = args.key or Path(str(args.out) + ".key")
    budget = DEFAULT_BUDGET if args.budget is None else args.budget
    if not 1 <= budget <= MAX_BUDGET:
        print(f"error: --budget must be in [1, {MAX_BUDGET}], got {budget}", file=sys.stderr)
        return 2
    try:
        key = CommitmentKey.load(key_path) if key_path.exists() else None
        params = PcsParams.for_security(args.security)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from blindproof.commands.progress import Reporter
    say = Reporter(json_events=args.json)
    t0 = time.perf_counter()
    say(f"quantizing {args.model} ...")
    qm = load_model(args).quantized
    t1 = time.perf_counter()
    say(f"quantized ({t1 - t0:.2f} s); committing {len(qm.weights)} weight tensors and proving their dtype ranges ...")
    if key is None:
        key = CommitmentKey.generate()
        key.save(key_path)
    try:
        mc, _ = commit_model(qm.spec, qm.weights, key, params, budget)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t2 = time.perf_counter()
    say(f"committed ({t2 - t1:.2f} s)")
    mc.save(args.out)
    # the key's ledger exists from the start (holding the well-formedness opening): `rotate` refuses a key
    # whose ledger is missing, since the positions it opened would then be unknown
    try:
        from blindproof.zk.proof.rotation import wellformed_positions
        key.ledger().charge(mc.weights, wellformed_positions(mc))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    lay = mc.weights.layout
    summary = {"model": args.model, "commitment": str(args.out), "key": str(key_path), "digest": mc.digest().hex(),
               "spec_digest": mc.spec_digest.hex(), "weights": len(lay.names),
               "committed_elements": sum(1 << s for s in lay.log_sizes), "file_bytes": args.out.stat().st_size,
               "budget": mc.budget, "hiding_symbols": lay.hiding_symbols,
               "quantize_s": round(t1 - t0, 3), "commit_s": round(t2 - t1, 3)}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{args.model}: {summary['weights']} weight tensors, {summary['committed_elements']} committed "
              f"elements; committed in {summary['commit_s']:.2f} s (quantized in {summary['quantize_s']:.2f} s)")
        print(f"wrote {args.out} ({summary['file_bytes']} bytes), digest {summary['digest']}")
        print(f"opening budget: {mc.budget} openings per key, {mc.budget - 1} proofs and one rotation "
              f"({lay.hiding_symbols} hiding symbols per row)")
        print(f"secret key: {key_path} (keep it with the weights and its ledger {key_path}.ledger; "
              "`blindproof prove` needs both)")
    return 0
