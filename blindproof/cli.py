"""The `blindproof` command line: one subcommand per user job."""

from __future__ import annotations

import argparse
import importlib
import sys

import blindproof

# Each module registers its subcommand(s) and sets `func` on its parser; add one line per module.
COMMAND_MODULES: list[str] = [
    "blindproof.commands.attack",
    "blindproof.commands.keygen",
    "blindproof.commands.serve",
    "blindproof.commands.deploy",
    "blindproof.commands.infer",
    "blindproof.commands.generate",
    "blindproof.commands.demo",
    "blindproof.commands.fingerprint",
    "blindproof.commands.quantize",
    "blindproof.commands.commit",
    "blindproof.commands.prove",
    "blindproof.commands.verify",
    "blindproof.commands.rotate",
    "blindproof.commands.warmup",
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(prog="blindproof", description="Private and verifiable inference.")
    parser.add_argument("--version", action="version", version=f"blindproof {blindproof.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit status (docs/cli.md, "Exit status").

    Expected failures end as one line on stderr: 1 a check said no (proof, commitment, digest,
    fingerprint), 2 usage or input error, 3 server or transport error, 130 Ctrl-C."""
    from blindproof.client.cli_args import EXIT_INTERRUPTED, EXIT_USAGE, exit_status, one_line
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except SystemExit as exc:
        if isinstance(exc.code, str):  # raise SystemExit("error: ..."): a usage or input error
            print(exc.code, file=sys.stderr)
            return EXIT_USAGE
        raise
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        code = exit_status(exc)
        if code is None:
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
