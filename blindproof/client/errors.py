"""Errors raised by the client SDK."""

from __future__ import annotations

import grpc


class RemoteError(RuntimeError):
    """The server answered a call with a non-OK gRPC status."""

    def __init__(self, code: grpc.StatusCode, details: str, method: str) -> None:
        super().__init__(f"{method} failed with {code.name}: {details}")
        self.code = code
        self.details = details
        self.method = method

    @classmethod
    def wrap(cls, err: grpc.RpcError, method: str) -> "RemoteError":
        code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
        details = (err.details() if hasattr(err, "details") else None) or str(err)
        return cls(code, details, method)


class DeploymentDigestError(RuntimeError):
    """The server's digest of an uploaded model differs from the client's."""
