"""`blindproof infer`: one blind forward pass through a deployment."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from blindproof.client.cli_args import EXIT_INVALID, add_connection_args, cli_errors


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("infer", help="run one blind forward pass",
                       description="Encode the input locally, run the deployment's part on the server, decode "
                                   "the reply. Prints the next-token prediction (language models) or the output "
                                   "vector. With --prove (integer deployments) the server's proof is verified here; "
                                   "exit status 3 if it is rejected.")
    add_connection_args(p, server_required=False)
    p.add_argument("--record", type=Path, default=Path("deployment.json"), help="deployment record from `deploy`")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="input text (tokenized by --tokenizer, else UTF-8 bytes)")
    src.add_argument("--tokens", help="comma-separated token ids")
    src.add_argument("--features", type=Path, help=".npy file of features (batch, in) for an MLP")
    p.add_argument("--tokenizer", type=Path, default=None,
                   help="tokenizer.json for --text and the next tokens (default: the deployed Hugging Face folder's "
                        "tokenizer.json, else UTF-8 bytes)")
    p.add_argument("--top", type=int, default=5, help="how many next-token candidates to print")
    p.add_argument("--prove", action="store_true",
                   help="integer deployments: have the server prove this inference; the proof is verified here "
                        "against the deployment's own commitment and the exact encrypted request and response")
    p.add_argument("--proof-out", type=Path, default=Path("proof.bin"),
                   help="with --prove: where to write the verified proof (default proof.bin)")
    p.add_argument("--proof-timeout", type=float, default=3600.0, help="with --prove: seconds to wait for the proof")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=run)


def parse_input(args: argparse.Namespace, codec=None):
    """The input tensor from --text (encoded by ``codec``, default UTF-8 bytes), --tokens or --features."""
    import numpy as np
    import torch

    if args.text is not None:
        from blindproof.models import tokenizer
        return (codec or tokenizer).encode(args.text)
    if args.tokens is not None:
        try:
            ids = [int(t) for t in args.tokens.split(",") if t.strip()]
        except ValueError:
            raise SystemExit(f"error: --tokens must be comma-separated integers, got {args.tokens!r}") from None
        return torch.tensor([ids], dtype=torch.int64)
    return torch.from_numpy(np.load(args.features)).float()


@cli_errors
def run(args: argparse.Namespace) -> int:
    import torch

    from blindproof.client.local import DeploymentRecord, connect
    from blindproof.commands.text import text_codec
    from blindproof.models import tokenizer as bytes_codec
    from blindproof.models.transformer import Transformer

    record = DeploymentRecord.load(args.record)
    tokenizer = text_codec(getattr(args, "tokenizer", None), record.model)
    x = parse_input(args, tokenizer)
    with connect(args, args.server or record.server) as client:
        dep = record.attach(client)
        if args.prove:
            from blindproof.client.verify import ProofVerificationError
            try:
                res = client.infer(dep, x, prove=True, proof_timeout=args.proof_timeout)
            except ProofVerificationError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return EXIT_INVALID
            out = res.output
            res.proof.save(args.proof_out)
        else:
            out = client.infer(dep, x)
    summary: dict = {"deployment_id": dep.deployment_id, "output_shape": list(out.shape)}
    if args.prove:
        summary["proof"] = {"verified": True, "file": str(args.proof_out), "bytes": len(res.proof.proof),
                            "job_id": res.job_id, "model_digest": res.proof.model_digest.hex(),
                            "provable_bits": round(res.proof.provable_bits, 1),
                            "conjectured_bits": round(res.proof.conjectured_bits, 1),
                            "seconds": {k: round(v, 4) for k, v in res.seconds.items()}}
    model = dep.model
    if isinstance(model, Transformer) and model.cfg.output == "logits":
        top = torch.topk(out[0, -1].softmax(-1), min(args.top, out.shape[-1]))
        summary["next_tokens"] = [{"id": int(i), "p": round(float(p), 4),
                                   **({"text": tokenizer.decode(torch.tensor([int(i)]))}
                                      if model.cfg.vocab_size == 256 or tokenizer is not bytes_codec else {})}
                                  for p, i in zip(top.values, top.indices)]
    else:
        summary["output"] = out.tolist()
    if args.json:
        print(json.dumps(summary))
    else:
        print(_human(summary))
    return 0


def _human(summary: dict) -> str:
    """The summary as a few lines of text (``--json`` prints it as JSON)."""
    lines = [f"deployment {summary['deployment_id'][:16]}…, output shape {tuple(summary['output_shape'])}"]
    if "next_tokens" in summary:
        lines.append("next token: " + ", ".join(
            (repr(t["text"]) if "text" in t else str(t["id"])) + f" {t['p']:.3f}" for t in summary["next_tokens"]))
    else:
        out = summary["output"]
        text = json.dumps(out)
        lines.append("output: " + (text if len(text) <= 400 else text[:400] + "…"))
    if "proof" in summary:
        p = summary["proof"]
        lines.append(f"proof VERIFIED ({p['bytes'] / 1e6:.2f} MB, {p['provable_bits']} provable bits), written to "
                     f"{p['file']}")
    return "\n".join(lines)
