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


class _Text:
    """Text in and out through a ``tokenizers.Tokenizer``, with the byte tokenizer's interface."""

    def __init__(self, tok) -> None:
        self.tok = tok

    def encode(self, text: str):
        import torch
        ids = self.tok.encode(text).ids
        if not ids:
            raise ValueError("the prompt encodes to no tokens")
        return torch.tensor([ids], dtype=torch.int64)

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids.reshape(-1).tolist()], skip_special_tokens=False)


def text_codec(tokenizer_path: Path | None, model_source: str):
    """How text becomes tokens: --tokenizer, else the deployed folder's tokenizer.json, else UTF-8 bytes."""
    from blindproof.models import tokenizer
    from blindproof.models.hf_folder import TOKENIZER, load_tokenizer

    if tokenizer_path is None and Path(model_source).is_dir() and (Path(model_source) / TOKENIZER).is_file():
        tokenizer_path = Path(model_source) / TOKENIZER
    return _Text(load_tokenizer(tokenizer_path)) if tokenizer_path is not None else tokenizer


@cli_errors
def run(args: argparse.Namespace) -> int:
    from blindproof.client.local import DeploymentRecord, connect

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
