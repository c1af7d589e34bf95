"""`blindproof generate`: greedy text generation with every forward run blind on the server."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from blindproof.client.cli_args import add_connection_args, cli_errors


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate text blind (server keeps the KV cache)",
                       description="Greedy decoding: the client embeds and encodes each token, the server runs "
                                   "the blocks with its KV cache, the client decodes and picks the next token.")
    add_connection_args(p, server_required=False)
    p.add_argument("--record", type=Path, default=Path("deployment.json"), help="deployment record from `deploy`")
    p.add_argument("--prompt", help="prompt text (default: the embedded model's prompt)")
    p.add_argument("--tokens", type=int, default=60, help="number of new tokens (default 60)")
    p.add_argument("--tokenizer", type=Path, default=None,
                   help="tokenizer.json for the prompt and the text (default: the deployed Hugging Face folder's "
                        "tokenizer.json, else UTF-8 bytes)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=run)


@cli_errors
def run(args: argparse.Namespace) -> int:
    from blindproof.client.local import DeploymentRecord, connect
    from blindproof.commands.text import text_codec

    record = DeploymentRecord.load(args.record)
    tokenizer = text_codec(args.tokenizer, record.model)
    if args.prompt is None:
        from blindproof.models.default import default_prompt
        args.prompt = default_prompt()
    prompt = tokenizer.encode(args.prompt)
    with connect(args, args.server or record.server) as client:
        dep = record.attach(client)
        t0 = time.perf_counter()
        stream = not args.json and sys.stdout.isatty()
        if stream:
            print(args.prompt, end="", flush=True)
        on_token = (lambda i, t: print(tokenizer.decode(t[0]), end="", flush=True)) if stream else None
        new = client.generate(dep, prompt, args.tokens, on_token=on_token)
        seconds = time.perf_counter() - t0
    text = tokenizer.decode(new[0])
    if args.json:
        print(json.dumps({"deployment_id": dep.deployment_id, "prompt": args.prompt, "text": text,
                          "tokens": new[0].tolist(), "seconds": round(seconds, 4)}))
    elif stream:
        print(f"\n[{args.tokens} tokens in {seconds:.2f} s]", file=sys.stderr)
    else:
        print(args.prompt + text)
    return 0
