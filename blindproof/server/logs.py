"""Structured server logs: one JSON object per line on stderr.

Only scalar fields are accepted (names, ids, shapes, sizes, durations, status codes), which keeps
tensors, tokens and key material out of the log by construction.
"""

from __future__ import annotations

import json
import logging
import sys
import time

_LOGGER = logging.getLogger("blindproof.server")
_SCALARS = (str, int, float, bool, type(None))


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure(level: str = "INFO") -> None:
    """Send the server's log records to stderr as JSON lines."""
    if not _LOGGER.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        _LOGGER.addHandler(handler)
    _LOGGER.setLevel(level.upper())
    _LOGGER.propagate = False


def event(name: str, level: int = logging.INFO, **fields: object) -> None:
    """Log one event; every field must be a scalar or a tuple/list of ints (a shape)."""
    record: dict[str, object] = {"ts": round(time.time(), 3), "event": name}
    for key, value in fields.items():
        if isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value):
            value = list(value)
        elif not isinstance(value, _SCALARS):
            raise TypeError(f"log field {key!r} must be a scalar or a shape, got {type(value).__name__}")
        record[key] = value
    if not _LOGGER.isEnabledFor(level):
        return
    _LOGGER.log(level, json.dumps(record, separators=(",", ":")))
