"""`blindproof keygen`: create an EE key file (mode 0600)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keygen", help="create a secret EE key file",
                       description="Write a fresh EE key (32 bytes from the OS CSPRNG) to a file with mode 0600 "
                                   "and print its public key id.")
    p.add_argument("--out", type=Path, default=Path("blindproof.key"), help="key file (default blindproof.key)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from blindproof.ee import generate_key, save_key

    if args.out.exists() and not args.force:
        raise SystemExit(f"error: {args.out} exists; pass --force to overwrite it")
    key = generate_key()
    save_key(key, args.out)
    if args.json:
        print(json.dumps({"key_file": str(args.out), "key_id": key.key_id}))
    else:
        print(f"wrote {args.out} (key id {key.key_id}); keep it secret, never send it to a server")
    return 0
