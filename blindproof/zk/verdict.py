"""The result type every verifier returns: accept, or reject with a reason. Never an exception."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of a verification. ``bool(result)`` is ``result.ok``."""

    ok: bool
    reason: str = ""
    claims: tuple = ()  # evaluation claims left for a commitment to settle (see lookup/sumcheck)

    def __bool__(self) -> bool:
        return self.ok

    @staticmethod
    def accept(claims: tuple = ()) -> "VerifyResult":
        """Accepted (possibly conditional on ``claims`` being opened correctly)."""
        return VerifyResult(True, "", tuple(claims))

    @staticmethod
    def reject(reason: str) -> "VerifyResult":
        """Rejected, with a human-readable reason."""
        return VerifyResult(False, reason)


@dataclass(frozen=True)
class SoundnessResult(VerifyResult):
    """A verdict plus the soundness of what was checked (0 when it could not be computed)."""

    provable_bits: float = 0.0
    conjectured_bits: float = 0.0


def guarded(fn: Callable[[], VerifyResult], what: str) -> VerifyResult:
    """Run a verification; any exception becomes a rejection naming ``what`` and the error."""
    try:
        result = fn()
    except Exception as exc:  # noqa: BLE001 - a verifier must never let an exception escape
        return VerifyResult.reject(f"{what}: {type(exc).__name__}: {exc}")
    if not isinstance(result, VerifyResult):
        return VerifyResult.reject(f"{what}: internal error (no verdict)")
    return result
