"""Strict, bounded binary encoding for proof objects.

``Writer`` appends little-endian integers, field arrays, extension arrays and length-prefixed byte
strings. ``Reader`` reads them back and checks every length against a maximum the caller declares
(so a hostile length prefix never allocates), every field word against p, and — in ``finish()`` —
that no bytes are left over. Any violation raises :class:`ProofFormatError`.
"""

from __future__ import annotations

import struct

import numpy as np

from blindproof.zk.field import babybear as F


class ProofFormatError(ValueError):
    """Serialized proof bytes are malformed (truncated, oversized, non-canonical, trailing data...)."""


def _check_uint(v: int, bits: int, what: str) -> int:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not 0 <= int(v) < (1 << bits):
        raise ValueError(f"Writer.{what}: {v!r} is not an unsigned {bits}-bit integer")
    return int(v)


class Writer:
    """Builds a byte string; call :meth:`getvalue` at the end."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def header(self, magic: bytes, version: int) -> None:
        """A magic tag (4 bytes) and a u16 format version."""
        if not isinstance(magic, bytes) or len(magic) != 4:
            raise ValueError("Writer.header: magic must be exactly 4 bytes")
        self._parts.append(magic + struct.pack("<H", _check_uint(version, 16, "header")))

    def u8(self, v: int) -> None:
        """One unsigned byte."""
        self._parts.append(struct.pack("<B", _check_uint(v, 8, "u8")))

    def u32(self, v: int) -> None:
        """Unsigned 32-bit little-endian integer."""
        self._parts.append(struct.pack("<I", _check_uint(v, 32, "u32")))

    def u64(self, v: int) -> None:
        """Unsigned 64-bit little-endian integer."""
        self._parts.append(struct.pack("<Q", _check_uint(v, 64, "u64")))

    def bytes_(self, data: bytes) -> None:
        """A u32 length prefix and the bytes."""
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("Writer.bytes_: data must be bytes")
        self.u32(len(data))
        self._parts.append(bytes(data))

    def field_fixed(self, arr: np.ndarray) -> None:
        """Base-field elements without a length prefix (the reader knows the count)."""
        a = F._check(arr, "Writer.field_fixed")
        self._parts.append(np.ascontiguousarray(a.reshape(-1), dtype="<u4").tobytes())

    def field_array(self, arr: np.ndarray) -> None:
        """A u32 count and that many base-field elements (input flattened)."""
        a = F._check(arr, "Writer.field_array").reshape(-1)
        self.u32(a.size)
        self.field_fixed(a)

    def ext_fixed(self, arr: np.ndarray) -> None:
        """Extension elements without a count (the reader knows it); input shape (..., 4)."""
        a = F._check_ext(arr, "Writer.ext_fixed")
        self._parts.append(np.ascontiguousarray(a.reshape(-1, 4), dtype="<u4").tobytes())

    def ext_array(self, arr: np.ndarray) -> None:
        """A u32 count and that many extension elements; input shape (n, 4)."""
        a = F._check_ext(arr, "Writer.ext_array").reshape(-1, 4)
        self.u32(a.shape[0])
        self.ext_fixed(a)

    def getvalue(self) -> bytes:
        """The bytes written so far."""
        return b"".join(self._parts)


class Reader:
    """Reads what a :class:`Writer` wrote, bounds-checked; every error is a :class:`ProofFormatError`."""

    def __init__(self, data: bytes, max_total: int | None = None) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ProofFormatError(f"proof must be bytes, got {type(data).__name__}")
        data = bytes(data)
        if max_total is not None and len(data) > max_total:
            raise ProofFormatError(f"proof is {len(data)} bytes, more than the allowed {max_total}")
        self._data = data
        self._pos = 0

    @property
    def remaining(self) -> int:
        """Bytes not read yet."""
        return len(self._data) - self._pos

    def _take(self, n: int, what: str) -> bytes:
        if n < 0 or self._pos + n > len(self._data):
            raise ProofFormatError(f"truncated proof: {what} needs {n} bytes at offset {self._pos}, "
                                   f"{self.remaining} left")
        out = self._data[self._pos:self._pos + n]
        self._pos += n
        return out

    def header(self, magic: bytes, versions: tuple[int, ...]) -> int:
        """Check the magic tag and return the version, which must be one of ``versions``."""
        got = self._take(4, "magic")
        if got != magic:
            raise ProofFormatError(f"bad magic {got!r}, expected {magic!r}")
        (version,) = struct.unpack("<H", self._take(2, "version"))
        if version not in versions:
            raise ProofFormatError(f"unsupported format version {version}; supported {versions}")
        return version

    def u8(self, max_value: int = 0xFF) -> int:
        """One byte, at most ``max_value``."""
        (v,) = struct.unpack("<B", self._take(1, "u8"))
        return self._bounded(v, max_value, "u8")

    def u32(self, max_value: int = 0xFFFFFFFF) -> int:
        """A u32, at most ``max_value``."""
        (v,) = struct.unpack("<I", self._take(4, "u32"))
        return self._bounded(v, max_value, "u32")

    def u64(self, max_value: int = (1 << 64) - 1) -> int:
        """A u64, at most ``max_value``."""
        (v,) = struct.unpack("<Q", self._take(8, "u64"))
        return self._bounded(v, max_value, "u64")

    @staticmethod
    def _bounded(v: int, max_value: int, what: str) -> int:
        if v > max_value:
            raise ProofFormatError(f"{what} value {v} exceeds the maximum {max_value}")
        return v

    def _count(self, max_len: int, exact: int | None, what: str) -> int:
        n = self.u32()
        if exact is not None and n != exact:
            raise ProofFormatError(f"{what}: count {n}, expected exactly {exact}")
        if n > max_len:
            raise ProofFormatError(f"{what}: count {n} exceeds the maximum {max_len}")
        return n

    def bytes_(self, max_len: int, exact: int | None = None) -> bytes:
        """A length-prefixed byte string of at most ``max_len`` bytes (or exactly ``exact``)."""
        n = self._count(max_len, exact, "bytes")
        return self._take(n, "bytes")

    def field_fixed(self, n: int) -> np.ndarray:
        """Exactly ``n`` canonical base-field elements (no prefix)."""
        raw = np.frombuffer(self._take(4 * n, "field elements"), dtype="<u4").astype(np.uint32)
        if raw.size and int(raw.max()) >= F.P:
            raise ProofFormatError(f"non-canonical field element {int(raw.max())} (≥ p)")
        return raw

    def field_array(self, max_len: int, exact: int | None = None) -> np.ndarray:
        """A counted array of base-field elements, shape (n,)."""
        return self.field_fixed(self._count(max_len, exact, "field array"))

    def ext_fixed(self, n: int) -> np.ndarray:
        """Exactly ``n`` extension elements (no prefix), shape (n, 4)."""
        return self.field_fixed(4 * n).reshape(n, 4)

    def ext_array(self, max_len: int, exact: int | None = None) -> np.ndarray:
        """A counted array of extension elements, shape (n, 4)."""
        return self.ext_fixed(self._count(max_len, exact, "extension array"))

    def finish(self) -> None:
        """Reject trailing bytes."""
        if self.remaining:
            raise ProofFormatError(f"{self.remaining} trailing bytes after the proof")
