"""Connection arguments shared by the client commands (kept free of heavy imports)."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Callable


def add_connection_args(p: argparse.ArgumentParser, server_required: bool = True) -> None:
    """--server, --tls-ca, --server-name, --token-file, --timeout."""
    p.add_argument("--server", required=server_required, help="server address host:port")
    p.add_argument("--tls-ca", type=Path, help="PEM root certificate(s) to verify the server (enables TLS)")
    p.add_argument("--server-name", help="TLS name to expect when it differs from the host")
    p.add_argument("--token-file", type=Path,
                   help="file holding the bearer token (default: $BLINDPROOF_TOKEN when set)")
    p.add_argument("--timeout", type=float, default=60.0, help="deadline of each call in seconds")


def cli_errors(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Report expected failures (server status, bad input, files) as one line and exit status 1."""
    @functools.wraps(fn)
    def wrapper(args: argparse.Namespace) -> int:
        from blindproof.client.errors import DeploymentDigestError, RemoteError
        try:
            return fn(args)
        except (RemoteError, DeploymentDigestError, ValueError, TypeError, OSError, TimeoutError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return wrapper
