"""One interceptor around every RPC: malformed messages, unexpected errors and over-long replies.

* A request that is not a valid protobuf of the method's type is answered ``INVALID_ARGUMENT`` (gRPC
  would otherwise answer ``UNKNOWN`` with the decoder's exception).
* An exception no handler expected (a full or read-only store, a SQLite error, a bug) is logged as one
  JSON line with its type and message, and the client gets a clean status without server paths:
  ``RESOURCE_EXHAUSTED`` for a full disk, ``INTERNAL`` otherwise (see :func:`storage_status`).
* Status details are cut to :data:`MAX_DETAILS` characters, so an echoed identifier can never push
  the reply over gRPC's metadata limit (which the client would see as ``RESOURCE_EXHAUSTED``).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import sqlite3

import grpc

from blindproof.server import logs

MAX_DETAILS = 1000  # characters of a status message
MAX_ID_CHARS = 128  # longer ids are refused as malformed; shorter unknown ones are NOT_FOUND


class _Malformed:
    """Stands in for a request message that failed to parse."""

    def __init__(self, error: str) -> None:
        self.error = error


def short(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (with the full length named when cut)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    n = len(value) if isinstance(value, (str, bytes)) else len(text)
    return f"{text[:limit]}… ({n} characters)"


def check_ref(kind: str, value: str) -> str | None:
    """The INVALID_ARGUMENT message for an identifier that cannot be one (too long), else None."""
    if len(value) > MAX_ID_CHARS:
        return f"{kind} id {short(value, 40)} is longer than {MAX_ID_CHARS} characters"
    return None


def storage_status(exc: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """The status a storage failure maps to (None when ``exc`` is no storage failure)."""
    if isinstance(exc, sqlite3.Error):
        text = str(exc).lower()
        if "full" in text:
            return grpc.StatusCode.RESOURCE_EXHAUSTED, "the server's storage is full; nothing was stored"
        if "readonly" in text or "read-only" in text or "permission" in text or "unable to open" in text:
            return grpc.StatusCode.INTERNAL, "the server's storage is not writable; nothing was stored"
        return grpc.StatusCode.INTERNAL, "the server's job database failed; see the server log"
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return grpc.StatusCode.RESOURCE_EXHAUSTED, "the server's storage is full; nothing was stored"
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return grpc.StatusCode.INTERNAL, "the server's storage is not writable; nothing was stored"
        return grpc.StatusCode.INTERNAL, "the server's storage failed; see the server log"
    return None


def log_failure(method: str, exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """Log an unexpected exception as one JSON line; returns the status for the client."""
    mapped = storage_status(exc)
    code, message = mapped or (grpc.StatusCode.INTERNAL, "internal server error; see the server log")
    logs.event("storage_error" if mapped else "internal_error", logging.ERROR, method=method,
               error_type=type(exc).__name__, error=str(exc)[:1000], status=code.name)
    return code, message


class _Context:
    """The servicer context with status details cut to :data:`MAX_DETAILS` characters."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    async def abort(self, code, details: str = "", trailing_metadata=tuple()):
        if len(details) > MAX_DETAILS:
            details = details[:MAX_DETAILS] + "…"
        await self._inner.abort(code, details, trailing_metadata)

    def set_details(self, details: str) -> None:
        self._inner.set_details(details[:MAX_DETAILS])


_PASS = (grpc.aio.AbortError, asyncio.CancelledError, GeneratorExit)


def _deserializer(inner):
    if inner is None:
        return None

    def parse(data: bytes):
        try:
            return inner(data)
        except Exception as exc:  # google.protobuf.message.DecodeError and friends
            return _Malformed(f"{type(exc).__name__}: {str(exc)[:200]}")
    return parse


async def _reject(context, request) -> None:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed request message ({request.error})")


async def _checked_stream(requests, context):
    async for msg in requests:
        if isinstance(msg, _Malformed):
            await _reject(context, msg)
        yield msg


def _wrap(handler, method: str):
    if handler.request_streaming:
        def requests(req, ctx):
            return _checked_stream(req, ctx)
    else:
        requests = None

    async def unary(req, context):
        ctx = _Context(context)
        if isinstance(req, _Malformed):
            await _reject(ctx, req)
        try:
            return await inner(requests(req, ctx) if requests else req, ctx)
        except _PASS:
            raise
        except Exception as exc:
            code, message = log_failure(method, exc)
            await ctx.abort(code, message)

    async def streaming(req, context):
        ctx = _Context(context)
        if isinstance(req, _Malformed):
            await _reject(ctx, req)
        try:
            result = inner(requests(req, ctx) if requests else req, ctx)
            if hasattr(result, "__aiter__"):
                async for reply in result:
                    yield reply
            else:  # a handler that streams with context.write (the health service's Watch)
                await result
        except _PASS:
            raise
        except Exception as exc:
            code, message = log_failure(method, exc)
            await ctx.abort(code, message)

    kinds = {(False, False): "unary_unary", (False, True): "unary_stream",
             (True, False): "stream_unary", (True, True): "stream_stream"}
    kind = kinds[(bool(handler.request_streaming), bool(handler.response_streaming))]
    inner = getattr(handler, kind)
    return handler._replace(request_deserializer=_deserializer(handler.request_deserializer),
                            **{kind: streaming if handler.response_streaming else unary})


class GuardInterceptor(grpc.aio.ServerInterceptor):
    """Applies the rules of this module to every method of the server."""

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return _wrap(handler, handler_call_details.method)
