"""`blindproof infer`: one blind forward pass through a deployment."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from blindproof.client.cli_args import add_connection_args, cli_errors


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("infer", help="run one blind forward pass",
                       description="Encode the input locally, run the deployment's part on the server, decode "
                                   "the reply. Prints the next-token prediction (language models) or the output "
                                   "vector.")
    add_connection_args(p, server_required=False)
    p.add_argument("--record", type=Path, default=Path("deployment.json"), help="deployment record from `deploy`")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="input text (byte tokenizer)")
    src.add_argument("--tokens", help="comma-separated token ids")
    src.add_argument("--features", type=Path, help=".npy file of features (batch, in) for an MLP")
    p.add_argument("--top", type=int, default=5, help="how many next-token candidates to print")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=run)


def parse_input(args: argparse.Namespace):
    """The input tensor from --text, --tokens or --features."""
    import numpy as np
    import torch

    if args.text is not None:
        from blindproof.models import tokenizer
        return tokenizer.encode(args.text)
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
    from blindproof.models import tokenizer
    from blindproof.models.transformer import Transformer

    record = DeploymentRecord.load(args.record)
    x = parse_input(args)
    with connect(args, args.server or record.server) as client:
        dep = record.attach(client)
        out = client.infer(dep, x)
    summary: dict = {"deployment_id": dep.deployment_id, "output_shape": list(out.shape)}
    model = dep.model
    if isinstance(model, Transformer) and model.cfg.output == "logits":
        top = torch.topk(out[0, -1].softmax(-1), min(args.top, out.shape[-1]))
        summary["next_tokens"] = [{"id": int(i), "p": round(float(p), 4),
                                   **({"text": tokenizer.decode([int(i)])} if model.cfg.vocab_size == 256 else {})}
                                  for p, i in zip(top.values, top.indices)]
    else:
        summary["output"] = out.tolist()
    print(json.dumps(summary) if args.json else json.dumps(summary, indent=2))
    return 0
