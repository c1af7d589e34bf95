"""`blindproof prove`: prove one inference of a committed model and write the proof file."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from blindproof.commands.commit import add_model_args, load_model


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prove", help="prove an inference of a committed model",
                       description="Run the integer model on an input and write a zero-knowledge proof that the "
                                   "output came from the committed model. Needs the commitment key written by "
                                   "`blindproof commit`.")
    add_model_args(p)
    p.add_argument("--input", type=Path, default=None,
                   help=".npy file (token ids (1, seq), float features (1, dim), or for --scope blocks token ids or "
                        "float hidden states (1, seq, d_model)) or a .txt file (tokenized by --tokenizer, or UTF-8 "
                        "bytes for byte-vocabulary models); default: the model's fixed example input")
    p.add_argument("--text", default=None, help="input text (tokenized like a .txt --input)")
    p.add_argument("--commitment", type=Path, default=Path("model.commit"),
                   help="the model commitment to prove against (default model.commit)")
    p.add_argument("--start", type=int, default=0, help="position of the first token (default 0)")
    p.add_argument("-o", "--out", type=Path, default=Path("proof.bin"), help="proof file (default proof.bin)")
    p.add_argument("--generate", type=int, default=None, metavar="N",
                   help="generate N tokens greedily after the input (the prompt) and prove them: one proof of one "
                        "forward over the prompt and the first N − 1 new tokens (verify with `blindproof verify "
                        "--generate N`)")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout; progress goes to stderr as JSON events, one per line")
    p.set_defaults(func=run)


def _read_input(args: argparse.Namespace, source):
    """The model input the options name: --text, a .txt or .npy --input, or the model's example input."""
    from blindproof.sources import ModelSourceError

    path = args.input
    if args.text is not None and path is not None:
        raise SystemExit("error: give --text or --input, not both")
    try:
        if args.text is not None:
            return source.encode_text(args.text)
        if path is None:
            if source.example is None:
                raise SystemExit(f"error: {source.name} has no example input: pass --input or --text")
            return source.example
        if not path.is_file():
            raise SystemExit(f"error: input file {path} does not exist")
        if path.suffix == ".txt":
            return source.encode_text(path.read_text(encoding="utf-8", errors="replace"))
    except ModelSourceError as exc:
        raise SystemExit(f"error: {exc}") from None
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise SystemExit(f"error: {path}: not a .npy file: {exc}") from None


def next_token_text(source, outputs) -> str | None:
    """The decoded argmax of the logits' last row (the greedy next token), where the model has text."""
    if source.quantized.spec.outputs[0] != "logits" or (source.tokenizer is None and source.vocab_size != 256):
        return None
    y = np.asarray(outputs["logits"])
    return source.decode_tokens([int(np.argmax(y.reshape(-1, y.shape[-1])[-1]))])


def run(args: argparse.Namespace) -> int:
    from blindproof.zk.proof.commitment import ModelCommitment
    from blindproof.zk.proof.keys import LEDGER_SUFFIX, CommitmentKey, OpeningBudgetExceeded
    from blindproof.zk.commit.pcs import PcsParams
    from blindproof.zk.proof.prover import ModelProver

    key_path = args.key or Path(str(args.commitment) + ".key")
    if not key_path.exists():
        print(f"error: no commitment key at {key_path}; run `blindproof commit --model {args.model} "
              f"-o {args.commitment}` first", file=sys.stderr)
        return 2
    ledger_path = Path(str(key_path) + LEDGER_SUFFIX)
    if not ledger_path.exists():  # `commit` creates it: a lost ledger would silently restart the budget
        print(f"error: no opening ledger at {ledger_path}: the positions this key opened are unknown, so a proof "
              "could take them past its hiding symbols; restore the ledger from a backup, or rotate to a fresh "
              "key (`blindproof rotate`) and prove with that one", file=sys.stderr)
        return 2
    try:
        key = CommitmentKey.load(key_path)
        public = ModelCommitment.load(args.commitment) if args.commitment.exists() else None
        # an existing commitment fixes the parameters; --security only applies to a fresh one
        params = public.params if public is not None else PcsParams.for_security(args.security)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from blindproof.commands.progress import Reporter
    say = Reporter(json_events=args.json)
    t0 = time.perf_counter()
    source = load_model(args)
    qm = source.quantized
    say(f"quantized {args.model} ({time.perf_counter() - t0:.2f} s)")
    t1 = time.perf_counter()
    try:  # the public commitment fixes the budget; the ledger beside the key counts the openings
        prover = ModelProver.create(qm, key, params, **({"budget": public.budget} if public is not None else {}))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    say(f"model commitment rebuilt ({time.perf_counter() - t1:.2f} s)")
    if public is not None and public.digest() != prover.commitment.digest():
        print(f"error: the model, weights or key do not match {args.commitment}", file=sys.stderr)
        return 2
    x = _read_input(args, source)
    try:
        inputs = source.program_input(x)
    except (TypeError, ValueError) as exc:
        print(f"error: bad input: {exc}", file=sys.stderr)
        return 2
    t2 = time.perf_counter()
    generation = None
    try:
        if args.generate is not None:
            from blindproof.zk.proof.generation import GenerationError, prove_generation
            if args.start:
                print("error: --generate proves from position 0 (no --start)", file=sys.stderr)
                return 2
            try:
                proof, generation = prove_generation(prover, next(iter(inputs.values())), args.generate, progress=say)
            except GenerationError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
        else:
            proof = prover.prove(inputs, start=args.start, progress=say)
    except OpeningBudgetExceeded as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, RuntimeError) as exc:
        print(f"error: cannot prove {args.model}: {exc}", file=sys.stderr)
        return 1
    prove_s = time.perf_counter() - t2
    data = proof.to_bytes()
    args.out.write_bytes(data)
    public_bytes = proof.public_bytes()  # the input and output the file carries beside the proof
    summary = {"model": args.model, "proof": str(args.out), "proof_bytes": len(data) - public_bytes,
               "public_bytes": public_bytes, "file_bytes": len(data), "prove_s": round(prove_s, 3),
               "provable_bits": round(proof.soundness.provable_bits, 1),
               "conjectured_bits": round(proof.soundness.conjectured_bits, 1),
               "model_digest": proof.model_digest.hex(), "start": proof.start,
               "scope": str(qm.spec.arch.get("scope", "model")), "openings_left": prover.openings_left(),
               "ledger": str(prover.ledger.path) if prover.ledger.path else None}
    if generation is not None:
        prompt_text, text = generation.text(source.decode_tokens if source.tokenizer is not None else None)
        summary["generation"] = {"prompt_ids": generation.prompt.tolist(), "tokens": generation.tokens.tolist(),
                                 "prompt_text": prompt_text, "text": text}
    token = next_token_text(source, proof.outputs) if generation is None else None
    if token is not None:
        summary["next_token"] = token
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"proved {args.model} in {prove_s:.2f} s: {args.out} ({len(data) - public_bytes} bytes of proof and "
              f"{public_bytes} of public input and output), "
              f"{proof.soundness.summary()}")
        if generation is not None:
            print(f"generated {args.generate} tokens after {summary['generation']['prompt_text']!r}: "
                  f"{summary['generation']['text']!r}")
        if token is not None:
            print(f"proved next token: {token!r}")
        print(f"proofs left under this key: {summary['openings_left']} (budget {prover.commitment.budget} openings, "
              f"the last kept for `blindproof rotate`; ledger {summary['ledger']})")
    return 0
