"""The inference server: gRPC service, on-disk model store, torch executor with batching."""

from blindproof.server.app import ServerConfig, run, serve

__all__ = ["ServerConfig", "run", "serve"]
