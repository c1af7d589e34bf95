"""Connection arguments shared by the client commands (kept free of heavy imports)."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Callable

# Exit statuses of every `blindproof` command (docs/cli.md has the table).
EXIT_OK = 0
EXIT_INVALID = 1  # a proof, commitment, digest or fingerprint check failed: the answer is "no"
EXIT_USAGE = 2  # bad arguments or input: a missing or unreadable file, an unknown model, a bad value
EXIT_SERVER = 3  # the server could not be reached, refused or failed the call, or could not start serving
EXIT_INTERRUPTED = 130  # Ctrl-C


def check_private(path: Path, what: str) -> None:
    """Refuse a secret file (key, token) that others can read, as key files are refused."""
    import os
    import stat
    st = path.stat()
    if os.name == "posix" and stat.S_IMODE(st.st_mode) & 0o077:
        raise PermissionError(f"{what} {path} has mode {stat.S_IMODE(st.st_mode):04o}; it must be readable by its "
                              f"owner only (chmod 600 {path})")


def add_connection_args(p: argparse.ArgumentParser, server_required: bool = True) -> None:
    """--server, --tls-ca, --server-name, --token-file, --timeout."""
    p.add_argument("--server", required=server_required, help="server address host:port")
    p.add_argument("--tls-ca", type=Path, help="PEM root certificate(s) to verify the server (enables TLS)")
    p.add_argument("--server-name", help="TLS name to expect when it differs from the host")
    p.add_argument("--token-file", type=Path,
                   help="file holding the bearer token (default: $BLINDPROOF_TOKEN when set)")
    p.add_argument("--timeout", type=float, default=60.0, help="deadline of each call in seconds")


def exit_status(exc: BaseException) -> int | None:
    """The exit status of an expected failure (None for a bug, which keeps its traceback)."""
    from blindproof.client.errors import DeploymentDigestError, RemoteError
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, (RemoteError, TimeoutError, ConnectionError)) or type(exc).__name__ == "ProofJobError":
        return EXIT_SERVER
    if isinstance(exc, DeploymentDigestError) or type(exc).__name__ == "ProofVerificationError":
        return EXIT_INVALID
    if isinstance(exc, (ValueError, TypeError, OSError, KeyError)):
        return EXIT_USAGE
    return None


def one_line(exc: BaseException) -> str:
    """An exception as one line of text."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, KeyError) and text.startswith("'") and text.endswith("'"):
        text = text[1:-1]
    return text


def cli_errors(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Report expected failures as one line on stderr with the documented exit status (EXIT_*)."""
    @functools.wraps(fn)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except (Exception, KeyboardInterrupt) as exc:
            code = exit_status(exc)
            if code is None:
                raise
            print(f"error: {one_line(exc)}", file=sys.stderr)
            return code
    return wrapper
