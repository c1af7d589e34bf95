"""Fiat–Shamir transcript over BLAKE3 with domain separation.

The statement is part of the constructor, so it is always absorbed before anything else. Every absorb
is framed as ``kind ‖ len(label) ‖ label ‖ len(data) ‖ data`` so that no two different sequences of
messages hash the same. A challenge is read from BLAKE3's extendable output of the current state plus
its label and a counter, and is then absorbed itself, so every later challenge depends on it.

Challenges are extension elements (never base-field elements: ~124 bits instead of ~31). Each
coefficient is a 31-bit word kept only if it is below p (rejection sampling, no modular bias).
"""

from __future__ import annotations

import functools
import struct

import blake3
import numpy as np

from blindproof.zk.field import babybear as F

_KIND_DOMAIN = b"\x00"
_KIND_BYTES = b"\x01"
_KIND_FIELD = b"\x02"
_KIND_EXT = b"\x03"
_KIND_DIGEST = b"\x04"
_KIND_CHALLENGE = b"\x05"
_KIND_SQUEEZE = b"\x06"

_MAX_INDEX_BOUND = 1 << 62


@functools.lru_cache(maxsize=4096)
def _frame_head(kind: bytes, label: str) -> bytes:
    lab = label.encode("utf-8")
    return kind + struct.pack("<I", len(lab)) + lab


def _frame(kind: bytes, label: str, data: bytes) -> bytes:
    return _frame_head(kind, label) + struct.pack("<Q", len(data)) + data


@functools.lru_cache(maxsize=1024)
def _shape_head(shape: tuple[int, ...]) -> bytes:
    return struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", d) for d in shape)


def _shape_bytes(arr: np.ndarray) -> bytes:
    return _shape_head(arr.shape)


class Transcript:
    """A Fiat–Shamir transcript. ``Transcript(domain, statement)`` absorbs both before anything else."""

    def __init__(self, domain: bytes, statement: bytes = b"") -> None:
        if not isinstance(domain, (bytes, bytearray)) or not domain:
            raise TypeError("Transcript: domain must be non-empty bytes")
        if not isinstance(statement, (bytes, bytearray)):
            raise TypeError("Transcript: statement must be bytes")
        self._h = blake3.blake3()
        self._h.update(_frame(_KIND_DOMAIN, "domain", bytes(domain)))
        self._h.update(_frame(_KIND_DOMAIN, "statement", bytes(statement)))
        self._counter = 0

    # --- absorbing -------------------------------------------------------------------------------

    def _update(self, kind: bytes, label: str, data: bytes) -> None:
        if not isinstance(label, str) or not label:
            raise TypeError("Transcript: label must be a non-empty str")
        self._h.update(_frame(kind, label, data))

    def absorb_bytes(self, label: str, data: bytes) -> None:
        """Absorb a labelled byte string."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"absorb_bytes({label!r}): data must be bytes, got {type(data).__name__}")
        self._update(_KIND_BYTES, label, bytes(data))

    def absorb_field(self, label: str, arr: np.ndarray) -> None:
        """Absorb base-field elements (any shape; the shape is absorbed too)."""
        a = F._check(arr, f"absorb_field({label!r})")
        self._update(_KIND_FIELD, label, _shape_bytes(a) + np.ascontiguousarray(a, dtype="<u4").tobytes())

    def absorb_ext(self, label: str, arr: np.ndarray) -> None:
        """Absorb extension elements (trailing axis of length 4; the shape is absorbed too)."""
        a = F._check_ext(arr, f"absorb_ext({label!r})")
        self._update(_KIND_EXT, label, _shape_bytes(a) + np.ascontiguousarray(a, dtype="<u4").tobytes())

    def absorb_digest(self, label: str, d: bytes) -> None:
        """Absorb a commitment digest (e.g. a Merkle root)."""
        if not isinstance(d, (bytes, bytearray)) or not 1 <= len(d) <= 64:
            raise TypeError(f"absorb_digest({label!r}): digest must be 1..64 bytes")
        self._update(_KIND_DIGEST, label, bytes(d))

    # --- squeezing -------------------------------------------------------------------------------

    def _stream(self, label: str, n_bytes: int, seek: int) -> bytes:
        h = self._h.copy()
        h.update(_frame(_KIND_SQUEEZE, label, struct.pack("<Q", self._counter)))
        return h.digest(length=n_bytes, seek=seek)

    def _finish(self, label: str, out: np.ndarray) -> None:
        self._counter += 1
        self._update(_KIND_CHALLENGE, label, np.ascontiguousarray(out).tobytes())

    def challenge_exts(self, label: str, n: int) -> np.ndarray:
        """``n`` uniform extension elements, shape (n, 4)."""
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"challenge_exts({label!r}): n must be a non-negative int, got {n!r}")
        need = 4 * int(n)
        if need <= 16:  # a few challenges: filter one chunk of the stream on Python ints
            chunk = (need + need // 8 + 8) * 4
            words = struct.unpack(f"<{chunk // 4}I", self._stream(label, chunk, 0))
            kept = [w for w in (w & 0x7FFFFFFF for w in words) if w < F.P]
            if len(kept) >= need:
                out = np.array(kept[:need], dtype=np.uint32).reshape(int(n), 4)
                self._finish(label, out)
                return out
        got = np.empty(0, dtype=np.uint32)
        seek = 0
        while got.size < need:
            words = need - got.size
            chunk = (words + words // 8 + 8) * 4
            raw = np.frombuffer(self._stream(label, chunk, seek), dtype="<u4") & np.uint32(0x7FFFFFFF)
            seek += chunk
            got = np.concatenate([got, raw[raw < F.P]])
        out = got[:need].astype(np.uint32).reshape(int(n), 4)
        self._finish(label, out)
        return out

    def challenge_ext(self, label: str) -> np.ndarray:
        """One uniform extension element, shape (4,)."""
        return self.challenge_exts(label, 1)[0]

    def challenge_indices(self, label: str, n: int, bound: int) -> np.ndarray:
        """``n`` uniform indices in ``[0, bound)`` (int64), by rejection sampling of 64-bit words."""
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"challenge_indices({label!r}): n must be a non-negative int, got {n!r}")
        if not isinstance(bound, (int, np.integer)) or not 1 <= bound <= _MAX_INDEX_BOUND:
            raise ValueError(f"challenge_indices({label!r}): bound must be in [1, 2^62], got {bound!r}")
        bound = int(bound)
        limit_int = ((1 << 64) // bound) * bound  # accept u < limit: u % bound is uniform
        accept_all = limit_int == 1 << 64  # powers of two divide 2^64: no rejection needed
        limit = np.uint64(0 if accept_all else limit_int)
        got = np.empty(0, dtype=np.uint64)
        seek = 0
        while got.size < n:
            words = int(n) - got.size
            chunk = (words + 4) * 8
            raw = np.frombuffer(self._stream(label, chunk, seek), dtype="<u8")
            seek += chunk
            ok = np.ones(raw.shape, dtype=bool) if accept_all else raw < limit
            got = np.concatenate([got, raw[ok]])
        out = (got[: int(n)] % np.uint64(bound)).astype(np.int64)
        self._finish(label, out)
        return out

    def state_digest(self) -> bytes:
        """A digest of everything absorbed so far (for tests and debugging; absorbs nothing)."""
        return self._h.copy().digest()
