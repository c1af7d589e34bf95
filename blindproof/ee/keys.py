"""Client-held EE keys: a 32-byte CSPRNG seed expanded with HKDF-SHA256.

Every key component (vocabulary permutation, residual rotation, per-head keys, ...) is drawn from its
own deterministic stream, domain-separated by a label, so the client can rebuild any component from the
seed alone. The key file is JSON with a format version and a SHA-256 checksum over its body, written
atomically with mode 0600; loading refuses files readable by others, unknown versions and corrupted
bodies.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_VERSION: int = 1
SEED_BYTES = 32
_FORMAT = "blindproof-ee-key"
_SALT = b"blindproof/ee/v1"


class KeyFileError(ValueError):
    """A key file that cannot be used: wrong permissions, unknown version or corrupted body."""


def _hkdf(seed: bytes, info: bytes, n: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=n, salt=_SALT, info=info).derive(seed)


@dataclass(frozen=True, repr=False)
class EEKey:
    """A secret EE key. Never send it to a server; share only `key_id`."""

    seed: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.seed, bytes):
            raise TypeError(f"key seed must be bytes, got {type(self.seed).__name__}")
        if len(self.seed) != SEED_BYTES:
            raise ValueError(f"key seed must be {SEED_BYTES} bytes, got {len(self.seed)}")

    def __repr__(self) -> str:  # never print the seed
        return f"EEKey(key_id={self.key_id!r})"

    @property
    def key_id(self) -> str:
        """Public identifier of the key (hex of 16 HKDF bytes); binds a deployment to its key."""
        return _hkdf(self.seed, b"blindproof/key-id", 16).hex()

    def derive(self, label: str, n: int = 32) -> bytes:
        """`n` pseudorandom bytes for one key component, domain-separated by `label`."""
        if not isinstance(label, str) or not label:
            raise ValueError("derive needs a non-empty string label")
        if not 1 <= n <= 255 * 32:
            raise ValueError(f"derive can produce 1..{255 * 32} bytes, asked for {n}")
        return _hkdf(self.seed, b"blindproof/component/" + label.encode(), n)

    def rng(self, label: str) -> np.random.Generator:
        """A deterministic generator for one key component, seeded with 256 HKDF bits."""
        words = np.frombuffer(self.derive(label, 32), dtype=np.uint32)
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(words.tolist())))


def generate_key() -> EEKey:
    """A fresh key from the operating system's CSPRNG."""
    return EEKey(secrets.token_bytes(SEED_BYTES))


def _checksum(version: int, seed_hex: str, key_id: str) -> str:
    body = f"{_FORMAT}|{version}|{seed_hex}|{key_id}".encode()
    return hashlib.sha256(body).hexdigest()


def save_key(key: EEKey, path: str | os.PathLike, *, overwrite: bool = True) -> None:
    """Write `key` to `path` with mode 0600, atomically (temp file + rename).

    With `overwrite=False` an existing file is left alone and FileExistsError is raised (losing a key
    loses its deployments).
    """
    if not isinstance(key, EEKey):
        raise TypeError(f"save_key needs an EEKey, got {type(key).__name__}")
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"key file {path} already exists (pass overwrite=True to replace it)")
    seed_hex = key.seed.hex()
    doc = {"format": _FORMAT, "version": KEY_VERSION, "key_id": key.key_id, "seed": seed_hex,
           "checksum": _checksum(KEY_VERSION, seed_hex, key.key_id)}
    data = (json.dumps(doc, indent=1) + "\n").encode()
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=".key-", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_key(path: str | os.PathLike) -> EEKey:
    """Read a key file written by `save_key`; raises KeyFileError naming what is wrong."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist") from None
    if os.name == "posix" and stat.S_IMODE(st.st_mode) & 0o077:
        raise KeyFileError(f"key file {path} has mode {stat.S_IMODE(st.st_mode):04o}; it must be readable "
                           f"by its owner only (chmod 600 {path})")
    try:
        doc = json.loads(path.read_bytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeyFileError(f"key file {path} is corrupted (not valid JSON: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
        raise KeyFileError(f"{path} is not a blindproof key file")
    version = doc.get("version")
    if version != KEY_VERSION:
        raise KeyFileError(f"key file {path} has version {version!r}; this blindproof reads version {KEY_VERSION}")
    seed_hex, key_id, checksum = doc.get("seed"), doc.get("key_id"), doc.get("checksum")
    if not all(isinstance(v, str) for v in (seed_hex, key_id, checksum)):
        raise KeyFileError(f"key file {path} is corrupted (missing seed, key_id or checksum)")
    if not hmac.compare_digest(_checksum(version, seed_hex, key_id), checksum):
        raise KeyFileError(f"key file {path} is corrupted (checksum mismatch)")
    try:
        key = EEKey(bytes.fromhex(seed_hex))
    except ValueError as exc:
        raise KeyFileError(f"key file {path} is corrupted ({exc})") from None
    if key.key_id != key_id:
        raise KeyFileError(f"key file {path} is corrupted (key_id does not match the seed)")
    return key
