"""`blindproof serve`: the blind inference server."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

MiB = 1 << 20


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the gRPC inference server",
                       description="Serve deployed (EE-transformed) models over gRPC. The bearer token, when "
                                   "wanted, comes from --token-file or the BLINDPROOF_TOKEN environment "
                                   "variable (never the command line, which other users can read).")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=50051, help="port (0 picks a free one; default 50051)")
    p.add_argument("--port-file", type=Path, help="write the bound port to this file once serving")
    p.add_argument("--store", type=Path, default=Path(os.environ.get("BLINDPROOF_STORE", "blindproof-store")),
                   help="model store directory (default ./blindproof-store or $BLINDPROOF_STORE)")
    p.add_argument("--device", help="torch device (default: cuda when present, else cpu)")
    p.add_argument("--tls-cert", type=Path, help="PEM certificate chain (enables TLS with --tls-key)")
    p.add_argument("--tls-key", type=Path, help="PEM private key")
    p.add_argument("--token-file", type=Path,
                   help="file (mode 0600) holding the bearer token clients must send, or one 'NAME TOKEN' line per "
                        "client: the name is the identity that per-client limits count against")
    p.add_argument("--insecure", action="store_true",
                   help="allow a non-loopback --host without TLS (the wire is then readable by anyone on the path)")
    p.add_argument("--max-message-mb", type=float, default=64, help="largest gRPC message in MiB (default 64)")
    p.add_argument("--max-model-mb", type=float, default=4096, help="largest model upload in MiB (default 4096)")
    p.add_argument("--session-idle-s", type=float, default=300, help="drop idle generation sessions after this")
    p.add_argument("--max-sessions", type=int, default=64, help="most concurrent generation sessions")
    p.add_argument("--max-sessions-per-client", type=int, default=8,
                   help="most concurrent generation sessions of one client (default 8)")
    p.add_argument("--upload-idle-s", type=float, default=60,
                   help="drop a deploy upload that sends nothing for this long (default 60)")
    p.add_argument("--max-uploads", type=int, default=8, help="most deploy uploads in progress at once (default 8)")
    p.add_argument("--max-watchers", type=int, default=64, help="most open WatchJob streams (default 64)")
    p.add_argument("--max-watchers-per-client", type=int, default=8,
                   help="most open WatchJob streams of one client (default 8)")
    p.add_argument("--batch-wait-ms", type=float, default=0.0,
                   help="hold each new batch this long for company (default 0: batch only the calls that "
                        "queue while a forward runs)")
    p.add_argument("--max-batch-rows", type=int, default=64, help="most rows in one batched forward")
    p.add_argument("--jobs-db", type=Path, help="SQLite database of proof jobs and kept inferences "
                                                "(default <store>/jobs.sqlite)")
    p.add_argument("--prover-workers", type=int, default=1,
                   help="prover worker processes (default 1; 0 proves nothing)")
    p.add_argument("--max-queued-per-client", type=int, default=16,
                   help="most queued or running proof jobs per client (default 16; more: RESOURCE_EXHAUSTED)")
    p.add_argument("--keep-requests", type=int, default=10_000,
                   help="served integer inferences kept for proving later (default 10000)")
    p.add_argument("--prover-device", default=None, type=_prover_device,
                   help="where the prover workers run their heavy vector work (Reed-Solomon encoding, trace "
                        "matmuls): auto (cuda when present, else the CPU path), cpu, cuda or cuda:N (an error "
                        "at start-up when no CUDA device is present), torch-cpu (torch on the CPU, for testing); "
                        "default $BLINDPROOF_PROVER_DEVICE or auto")
    p.add_argument("--prover", default=None,
                   help="prover factory as module:attribute (default: whole-model zk proofs)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="JSON log level on stderr (DEBUG logs every call)")
    p.set_defaults(func=run)


def _prover_device(value: str) -> str:
    from blindproof.zk.device import parse_choice

    try:
        return parse_choice(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def read_token(token_file: Path | None) -> str | dict[str, str] | None:
    """The bearer token(s) from a file or $BLINDPROOF_TOKEN; None when neither is set.

    The file holds one token, or one ``NAME TOKEN`` line per client (``#`` starts a comment); it must
    be readable by its owner only, like a key file."""
    if token_file is None:
        return os.environ.get("BLINDPROOF_TOKEN") or None
    from blindproof.client.cli_args import check_private
    check_private(token_file, "token file")
    lines = [ln.strip() for ln in token_file.read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise ValueError(f"token file {token_file} is empty")
    if len(lines) == 1 and len(lines[0].split()) == 1:
        return lines[0]
    tokens: dict[str, str] = {}
    for i, line in enumerate(lines, 1):
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"token file {token_file}: line {i} is not 'NAME TOKEN'")
        name, token = parts
        if name in tokens or token in tokens.values():
            raise ValueError(f"token file {token_file}: name or token of line {i} repeats an earlier line")
        tokens[name] = token
    return tokens


def _fail(code: int, reason: str, exc: BaseException) -> int:
    """One JSON log line (the server's log format) for a start-up failure; returns the exit status."""
    import json
    import time
    print(json.dumps({"ts": round(time.time(), 3), "event": "startup_failed", "reason": reason,
                      "error": str(exc) or type(exc).__name__, "exit": code}, separators=(",", ":")),
          file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    from blindproof.client.cli_args import EXIT_INTERRUPTED, EXIT_SERVER, EXIT_USAGE
    try:
        return _run(args)
    except KeyboardInterrupt as exc:
        return _fail(EXIT_INTERRUPTED, "interrupted", exc)
    except Exception as exc:
        from blindproof.server.app import PortInUseError, StoreInUseError
        from blindproof.zk.device import DeviceError
        if isinstance(exc, (PortInUseError, StoreInUseError)):
            return _fail(EXIT_SERVER, "address or store in use", exc)
        if isinstance(exc, (ValueError, DeviceError)):
            return _fail(EXIT_USAGE, "invalid configuration", exc)
        if isinstance(exc, PermissionError):
            return _fail(EXIT_USAGE, "store or file not accessible", exc)
        if isinstance(exc, OSError):
            return _fail(EXIT_USAGE, "file or store error", exc)
        import sqlite3
        if isinstance(exc, sqlite3.Error):
            return _fail(EXIT_USAGE, "jobs database not usable", exc)
        raise


def _run(args: argparse.Namespace) -> int:
    # grpc's own C-core messages are not JSON lines; failures it reports reach the log as our events
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    from blindproof.server import ServerConfig
    from blindproof.server import run as run_server

    for flag, path in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key), ("--token-file", args.token_file)):
        if path is not None and not path.is_file():
            raise ValueError(f"{flag} {path}: no such file")
    cfg = ServerConfig(store=args.store, host=args.host, port=args.port, device=args.device,
                       tls_cert=args.tls_cert, tls_key=args.tls_key, token=read_token(args.token_file),
                       insecure=args.insecure, max_sessions_per_client=args.max_sessions_per_client,
                       upload_idle_s=args.upload_idle_s, max_uploads=args.max_uploads,
                       max_watchers=args.max_watchers, max_watchers_per_client=args.max_watchers_per_client,
                       max_message_bytes=int(args.max_message_mb * MiB), max_model_bytes=int(args.max_model_mb * MiB),
                       session_idle_s=args.session_idle_s, max_sessions=args.max_sessions,
                       batch_wait_ms=args.batch_wait_ms, max_batch_rows=args.max_batch_rows,
                       port_file=args.port_file, log_level=args.log_level, jobs_db=args.jobs_db,
                       prover_workers=args.prover_workers, max_queued_per_client=args.max_queued_per_client,
                       keep_requests=args.keep_requests, prover_device=args.prover_device,
                       **({"prover": args.prover} if args.prover else {}))
    run_server(cfg)
    return 0
