"""`blindproof verify`: check a proof file against a model commitment (offline, without weights)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

EXIT_VALID, EXIT_INVALID, EXIT_UNUSABLE = 0, 1, 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="verify a proof of inference against a model commitment",
                       description="Exit status 0: the proof is valid; 1: it is invalid (the reason is printed); "
                                   "2: the files cannot be used (missing, unreadable, not a commitment).")
    p.add_argument("proof", type=Path, help="proof file")
    p.add_argument("--commitment", type=Path, required=True, help="model commitment file")
    p.add_argument("--rotation", nargs=2, action="append", type=Path, default=[], metavar=("COMMITMENT", "CERTIFICATE"),
                   help="a rotation link: the next commitment and the certificate from the previous one (`blindproof "
                        "rotate`); repeat in chain order. --commitment stays the pinned (original) one; the proof "
                        "must be against the last commitment of the chain")
    p.add_argument("--min-bits", type=float, default=None,
                   help="reject proofs below this many provable bits of soundness; it can only raise the "
                        "protocol's floor of 100 bits (the default)")
    p.add_argument("--start", type=int, default=None,
                   help="the position of the first token the proof must be for (default: the proof's own, "
                        "which is printed)")
    p.add_argument("--scope", choices=("model", "blocks"), default=None,
                   help="what the proof must cover (default: the commitment's program, which is printed)")
    p.add_argument("--input", type=Path, default=None,
                   help="pin the input: the .npy given to `blindproof prove` (token ids or float features, encoded "
                        "as the prover does) or a .txt file for byte-vocabulary models; a proof for another input "
                        "is INVALID")
    p.add_argument("--text", default=None, help="pin the input as text (tokenized by --tokenizer, or UTF-8 bytes for "
                                                "byte-vocabulary models)")
    p.add_argument("--tokenizer", type=Path, default=None,
                   help="tokenizer.json (or a model folder holding one): tokenizes a .txt --input or --text and "
                        "prints the proved next token as text")
    p.add_argument("--output", type=Path, default=None,
                   help="pin the output: a .npy of the program's integer output (as `--save-output` writes it)")
    p.add_argument("--save-output", type=Path, default=None,
                   help="write the proved integer output to this .npy file (only when the proof is valid)")
    p.add_argument("--generate", type=int, default=None, metavar="N",
                   help="the proof is a generation proof (`blindproof prove --generate N`): also check that its last "
                        "N tokens are the greedy continuation of the prompt before them, and print both; --input "
                        "then pins the prompt")
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    p.set_defaults(func=run)


def _tokenizer(path: Path | None):
    """The --tokenizer's tokenizer (None without one); SystemExit (exit 2) when it cannot be read."""
    if path is None:
        return None
    from blindproof.models.hf_folder import HfFolderError, load_tokenizer
    try:
        return load_tokenizer(path)
    except HfFolderError as exc:
        raise SystemExit(f"error: {exc}") from None


def _pinned(spec, path: Path | None, kind: str, tokenizer=None, text: str | None = None):
    """The statement values a --input / --output file (or --text) pins (None without one); SystemExit
    (exit 2) when it cannot be used."""
    import numpy as np

    from blindproof.quant.spec import encode_input
    from blindproof.sources import encode_text, vocab_size

    vocab = vocab_size(spec)
    if text is not None:
        if path is not None:
            raise SystemExit("error: give --text or --input, not both")
        try:
            return encode_input(spec, encode_text(text, tokenizer, vocab))
        except (TypeError, ValueError) as exc:
            raise SystemExit(f"error: --text: {exc}") from None
    if path is None:
        return None
    if not path.is_file():
        raise SystemExit(f"error: {kind} file {path} does not exist")
    if kind == "input" and path.suffix == ".txt":
        raw = path.read_bytes()
        try:
            arr = (encode_text(raw.decode("utf-8", errors="replace"), tokenizer, vocab) if tokenizer is not None
                   else np.frombuffer(raw, dtype=np.uint8).astype(np.int64)[None, :])
        except ValueError as exc:
            raise SystemExit(f"error: {path}: {exc}") from None
    else:
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise SystemExit(f"error: {path}: not a .npy file: {exc}") from None
    if kind == "output":
        if arr.dtype.kind not in "iu":
            raise SystemExit(f"error: {path}: the pinned output must be the integer output (--save-output)")
        return {spec.outputs[0]: arr.astype(np.int64)}
    try:
        return encode_input(spec, arr)
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"error: {path}: {exc}") from None


def _argmax_last(spec, outputs) -> dict[str, int]:
    """Per output, the index of the largest value in its last row (the next token for logits)."""
    import numpy as np

    return {k: int(np.argmax(np.asarray(v).reshape(-1, v.shape[-1])[-1])) for k, v in outputs.items() if v.size}


def _check_generation(res, spec, n: int, prompt):
    """The verdict with the generation check added, and the generation (None when it fails)."""
    import dataclasses

    import numpy as np

    from blindproof.zk.proof.generation import GenerationError, prompt_ids, read_generation
    try:
        gen = read_generation(spec, res.proof, n)
    except GenerationError as exc:
        return dataclasses.replace(res, ok=False, reason=f"not a generation of {n} tokens: {exc}"), None
    if prompt is not None:
        try:
            pinned = prompt_ids(prompt, spec)  # one sequence: a batch pin is refused, never flattened
        except GenerationError as exc:
            return dataclasses.replace(res, ok=False, reason=f"the pinned prompt: {exc}"), None
        if not np.array_equal(pinned, gen.prompt):
            return dataclasses.replace(res, ok=False, reason="the proof is for another prompt"), None
    return res, gen


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return EXIT_UNUSABLE


def run(args: argparse.Namespace) -> int:
    from blindproof.zk.proof.commitment import ModelCommitment
    from blindproof.sources import decode_tokens, vocab_size
    from blindproof.zk.proof.proof_file import public_digest
    from blindproof.zk.proof.verifier import required_bits, spec_scope, verify_model_proof

    try:
        model = ModelCommitment.load(args.commitment)
    except OSError as exc:
        return _fail(f"cannot read the commitment: {exc}")
    except ValueError as exc:
        return _fail(f"{args.commitment} is not a usable model commitment: {exc}")
    pinned = model
    links = []
    for com_path, cert_path in args.rotation:
        try:
            links.append((ModelCommitment.load(com_path), cert_path.read_bytes()))
        except OSError as exc:
            return _fail(f"cannot read the rotation link: {exc}")
        except ValueError as exc:
            return _fail(f"{com_path} is not a usable model commitment: {exc}")
    try:
        data = args.proof.read_bytes()
    except OSError as exc:
        return _fail(f"cannot read the proof: {exc}")
    if links:
        from blindproof.zk.proof.rotation import RotationError, follow_chain
        try:
            model = follow_chain(pinned, links)
        except RotationError as exc:
            if args.json:
                print(json.dumps({"valid": False, "reason": str(exc), "pinned_digest": pinned.digest().hex()}))
            else:
                print(f"INVALID rotation chain: {exc}")
            return EXIT_INVALID
    if args.min_bits is not None and not args.min_bits == args.min_bits:  # NaN
        return _fail("--min-bits must be a number")
    tok = _tokenizer(args.tokenizer)
    vocab = vocab_size(model.spec)
    inputs = _pinned(model.spec, args.input, "input", tok, args.text)
    outputs = _pinned(model.spec, args.output, "output")
    prompt = None
    if args.generate is not None:  # --input/--text is the prompt: checked against the generation, not the forward
        from blindproof.zk.proof.generation import GenerationError, check_causal_lm
        try:
            check_causal_lm(model.spec)
        except GenerationError as exc:
            return _fail(str(exc))
        prompt, inputs = (None if inputs is None else next(iter(inputs.values()))), None
    t0 = time.perf_counter()
    res = verify_model_proof(model, data, inputs, outputs, start=args.start, scope=args.scope,
                             min_provable_bits=args.min_bits)
    generation = None
    if res.ok and args.generate is not None:
        res, generation = _check_generation(res, model.spec, args.generate, prompt)
    verify_s = time.perf_counter() - t0
    scope = spec_scope(model.spec)
    out = {"valid": bool(res.ok), "reason": res.reason, "verify_s": round(verify_s, 4),
           "required_bits": required_bits(args.min_bits), "scope": scope,
           "start": res.proof.start if res.proof is not None else None,
           "provable_bits": round(res.provable_bits, 1), "conjectured_bits": round(res.conjectured_bits, 1),
           "model_digest": model.digest().hex(), "pinned_digest": pinned.digest().hex(),
           "rotations": len(links), "proof_bytes": len(data),
           "soundness_terms": [{"term": n, "provable_bits": round(p, 1), "conjectured_bits": round(c, 1)}
                               for n, p, c in res.terms]}
    if res.proof is not None:
        out["input_digest"] = public_digest(res.proof.inputs)
        out["output_digest"] = public_digest(res.proof.outputs)
        out["outputs"] = {k: list(v.shape) for k, v in res.proof.outputs.items()}
        out["output_argmax"] = _argmax_last(model.spec, res.proof.outputs)
        out["pinned"] = [k for k, v in (("input", args.input), ("text", args.text), ("output", args.output))
                         if v is not None]
        logits = res.proof.outputs.get("logits")
        if generation is None and logits is not None and logits.size and (tok is not None or vocab == 256):
            out["next_token"] = decode_tokens([out["output_argmax"]["logits"]], tok, vocab)
    if generation is not None:
        prompt_text, text = generation.text(lambda ids: decode_tokens(ids, tok, vocab))
        out["generation"] = {"prompt_ids": generation.prompt.tolist(), "tokens": generation.tokens.tolist(),
                             "prompt_text": prompt_text, "text": text}
    if res.ok and args.save_output is not None:
        import numpy as np
        try:
            np.save(args.save_output, res.proof.outputs[model.spec.outputs[0]])
        except OSError as exc:
            return _fail(f"cannot write {args.save_output}: {exc}")
    if args.json:
        print(json.dumps(out))
    elif res.ok:
        print(f"VALID proof ({len(data)} bytes, verified in {verify_s * 1000:.1f} ms): soundness "
              f"{res.provable_bits:.1f} provable bits (required {out['required_bits']:.0f}), "
              f"{res.conjectured_bits:.1f} conjectured bits")
        pinned = f" (pinned: {', '.join(out['pinned'])})" if out["pinned"] else " (taken from the proof)"
        print(f"  statement: scope {scope}, start {res.proof.start}, input {out['input_digest']}, "
              f"output {out['output_digest']}{pinned}")
        for k, shape in out["outputs"].items():
            print(f"  output {k}: shape {tuple(shape)}, largest entry of the last row at index "
                  f"{out['output_argmax'].get(k)}")
        if "next_token" in out:
            print(f"  proved next token: {out['next_token']!r}")
        if links:
            print(f"  model: {out['model_digest']}, the same weights as the pinned {out['pinned_digest']} "
                  f"({len(links)} rotation{'s' if len(links) > 1 else ''} verified)")
        for n, p, c in res.terms:
            print(f"  {n}: {p:.1f} / {c:.1f} bits")
        if generation is not None:
            g = out["generation"]
            print(f"  generation: {len(g['tokens'])} tokens, each the argmax of the proved logits before it")
            print(f"  prompt: {g['prompt_text']!r}")
            print(f"  continuation: {g['text']!r}")
    else:
        print(f"INVALID proof: {res.reason}")
        if res.provable_bits:
            print(f"(soundness {res.provable_bits:.1f} provable bits, {res.conjectured_bits:.1f} conjectured bits)")
    return EXIT_VALID if res.ok else EXIT_INVALID
