"""Subcommands of the `blindproof` CLI, one module each; each exposes `register(subparsers)`."""
