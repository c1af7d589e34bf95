"""Commitment keys (the secret behind the weight commitment's hiding randomness) and the
opening ledgers that enforce a key's opening budget (conventions in
``blindproof.zk.proof.commitment``).
"""

from __future__ import annotations

import json
import os
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path

import blake3
import numpy as np

from blindproof.zk.commit import pcs
from blindproof.zk.field import babybear as F
from blindproof.zk.proof.config import rotation_reserve


KEY_BYTES = 32
_KEY_MAGIC = b"BPKEY1\n"
_MEMORY_LEDGERS: dict[bytes, "OpeningLedger"] = {}  # in-memory ledgers by key digest, for the process
_MEMORY_LOCK = threading.Lock()
LEDGER_SUFFIX = ".ledger"


# --- the secret behind the hiding randomness ------------------------------------------------------

class KeyedFieldRng:
    """A deterministic, cryptographic source of base-field elements (BLAKE3 keyed XOF, rejection of
    31-bit words ≥ p). Duck-types the one ``numpy.random.Generator`` method the commitment uses."""

    def __init__(self, key: bytes, label: str) -> None:
        if not isinstance(key, bytes) or len(key) != KEY_BYTES:
            raise ValueError(f"key must be {KEY_BYTES} bytes")
        self._xof = blake3.blake3(label.encode("utf-8"), key=key)
        self._seek = 0

    def integers(self, low: int, high: int, size=None, dtype=np.uint32) -> np.ndarray:
        """Uniform field elements in ``[0, p)``; only ``low=0, high=p`` is supported."""
        if low != 0 or high != F.P:
            raise ValueError("KeyedFieldRng draws field elements only (low=0, high=p)")
        return F.uniform_from_bytes(self._read, size, dtype)

    def _read(self, n: int) -> bytes:
        data = self._xof.digest(length=n, seek=self._seek)
        self._seek += n
        return data


def memory_ledger(secret: bytes) -> "OpeningLedger":
    """The process's in-memory ledger of a key that never touched disk (one per secret)."""
    tag = blake3.blake3(secret).digest()
    with _MEMORY_LOCK:
        return _MEMORY_LEDGERS.setdefault(tag, OpeningLedger(None))


@dataclass(frozen=True)
class CommitmentKey:
    """The model owner's 32-byte secret from which the weight commitment's hiding randomness comes.
    ``path``: the key file it was loaded from or saved to (its opening ledger lives beside it)."""

    secret: bytes
    path: Path | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.secret, bytes) or len(self.secret) != KEY_BYTES:
            raise ValueError(f"a commitment key is {KEY_BYTES} bytes")

    @staticmethod
    def generate() -> "CommitmentKey":
        """A fresh key from the OS CSPRNG."""
        return CommitmentKey(os.urandom(KEY_BYTES))

    def rng(self, label: str) -> KeyedFieldRng:
        """The randomness stream for one commitment."""
        return KeyedFieldRng(self.secret, label)

    def save(self, path: str | Path) -> None:
        """Write the key readable by its owner only (and remember where: its ledger goes beside it). The
        ledger file is created, holding every opening this key already made in memory: saving must not
        start the budget afresh."""
        p = Path(path)
        OpeningLedger(Path(str(p) + LEDGER_SUFFIX)).absorb(memory_ledger(self.secret))
        p.write_bytes(_KEY_MAGIC + self.secret.hex().encode("ascii") + b"\n")
        os.chmod(p, stat.S_IRUSR | stat.S_IWUSR)
        object.__setattr__(self, "path", p)

    def ledger(self) -> "OpeningLedger":
        """The opening ledger of this key: ``<key file>.ledger`` for a key read from or written to a
        file, else the process's one in-memory ledger for this secret (every call, prover and rotation
        shares it: a fresh one per call would reset the budget; a key that never touches disk must not
        be used again after a restart)."""
        if self.path is not None:
            lp = Path(str(self.path) + LEDGER_SUFFIX)
            if not lp.exists():  # a key file copied without its ledger would start the budget afresh
                raise LedgerError(f"no opening ledger at {lp}: the positions this key opened are unknown; "
                                  "restore the ledger from a backup, or rotate to a fresh key")
            return OpeningLedger(lp)
        return memory_ledger(self.secret)

    @staticmethod
    def load(path: str | Path) -> "CommitmentKey":
        """Read a key written by :meth:`save`; ValueError if the file is not one."""
        data = Path(path).read_bytes()
        if not data.startswith(_KEY_MAGIC) or len(data) != len(_KEY_MAGIC) + 2 * KEY_BYTES + 1:
            raise ValueError(f"{path}: not a blindproof commitment key file")
        try:
            return CommitmentKey(bytes.fromhex(data[len(_KEY_MAGIC):-1].decode("ascii")), Path(path))
        except ValueError:
            raise ValueError(f"{path}: corrupt commitment key") from None


# --- the opening budget ---------------------------------------------------------------------------

class OpeningBudgetExceeded(ValueError):
    """A proof would open more distinct positions of a reused commitment than it has hiding symbols."""


class LedgerError(ValueError):
    """An opening ledger file is unreadable or corrupt (never reset silently: a reset would let the
    prover open positions again and void the hiding budget)."""


_LEDGER_FORMAT = "blindproof.opening-ledger"
_LEDGER_VERSION = 1


class OpeningLedger:
    """The set of positions opened under a key, per reused commitment (keyed by its PCS digest).

    File-backed (``path``) or in memory (``path=None``). :meth:`charge` adds an opening's positions and
    refuses (:class:`OpeningBudgetExceeded`, nothing recorded) when the distinct positions would exceed
    the commitment's hiding symbols; a file-backed ledger is re-read and written atomically (temporary
    file, fsync, rename, fsync of the directory) under an exclusive lock before :meth:`charge` returns,
    so the positions are on disk before any column leaves the prover, and processes sharing the file
    never lose each other's openings. A corrupt file raises :class:`LedgerError`."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._mem: dict[str, tuple[int, set[int]]] = {}
        if self.path is not None:
            self._load()  # a corrupt ledger is an error now, not at the first proof

    def __repr__(self) -> str:
        return f"OpeningLedger({str(self.path) if self.path else 'in memory'})"

    # -- file form --
    def _load(self) -> dict[str, tuple[int, set[int]]]:
        if self.path is None:
            return self._mem
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise LedgerError(f"{self.path}: cannot read the opening ledger: {exc}") from None
        try:
            doc = json.loads(raw.decode("utf-8"))
            if doc.get("format") != _LEDGER_FORMAT:
                raise ValueError("not an opening ledger")
            if doc.get("version") != _LEDGER_VERSION:
                raise ValueError(f"unsupported ledger version {doc.get('version')!r}")
            body = doc["commitments"]
            if blake3.blake3(_canonical(body)).hexdigest() != doc.get("blake3"):
                raise ValueError("checksum mismatch")
            out: dict[str, tuple[int, set[int]]] = {}
            for key, ent in body.items():
                limit, pos = int(ent["hiding_symbols"]), ent["positions"]
                if len(key) != 64 or not all(isinstance(p, int) and 0 <= p < 1 << 32 for p in pos):
                    raise ValueError("malformed entry")
                if len(set(pos)) != len(pos) or len(pos) > limit:
                    raise ValueError("positions repeated or over the budget")
                out[key] = (limit, set(pos))
            return out
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            raise LedgerError(f"{self.path}: the opening ledger is corrupt ({exc}); refusing to prove with this "
                              "key (restore the ledger from a backup, or rotate to a fresh key)") from None

    def _store(self, entries: dict[str, tuple[int, set[int]]]) -> None:
        if self.path is None:
            self._mem = entries
            return
        body = {k: {"hiding_symbols": lim, "positions": sorted(pos)} for k, (lim, pos) in sorted(entries.items())}
        doc = {"format": _LEDGER_FORMAT, "version": _LEDGER_VERSION, "commitments": body,
               "blake3": blake3.blake3(_canonical(body)).hexdigest()}
        tmp = self.path.with_name(f"{self.path.name}.tmp.{os.getpid()}.{threading.get_ident()}")
        with open(tmp, "wb") as fh:
            fh.write(json.dumps(doc, sort_keys=True).encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, stat.S_IRUSR | stat.S_IWUSR)
        os.replace(tmp, self.path)
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def _locked(self):
        """An exclusive lock over processes (``<ledger>.lock``) and threads."""
        import contextlib
        import fcntl

        @contextlib.contextmanager
        def cm():
            with self._lock:
                if self.path is None:
                    yield
                    return
                fd = os.open(str(self.path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    yield
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)
        return cm()

    # -- API --
    def absorb(self, other: "OpeningLedger") -> None:
        """Add every position ``other`` records (the union, per commitment) and store the result; the
        file is created even when there is nothing to add."""
        with other._locked():
            src = {k: (lim, set(pos)) for k, (lim, pos) in other._load().items()}
        with self._locked():
            entries = self._load()
            for key, (lim, pos) in src.items():
                entries[key] = (lim, entries.get(key, (lim, set()))[1] | pos)
            self._store(entries)

    def opened(self, com: pcs.Commitment) -> frozenset[int]:
        """The positions of ``com`` opened so far."""
        with self._locked():
            return frozenset(self._load().get(com.digest().hex(), (0, set()))[1])

    def remaining(self, com: pcs.Commitment) -> int:
        """Positions that may still be opened before the hiding symbols run out (the rotation
        reserve included)."""
        return com.layout.hiding_symbols - len(self.opened(com))

    def openings_left(self, com: pcs.Commitment) -> int:
        """Proofs certainly left (each opens at most ``t`` new positions; the last ``t`` positions
        are kept for a rotation certificate)."""
        return max(0, self.remaining(com) - rotation_reserve(com)) // com.layout.n_queries

    def rotation_left(self, com: pcs.Commitment) -> bool:
        """Whether a rotation certificate away from ``com`` can still be made (``t`` positions left)."""
        return self.remaining(com) >= com.layout.n_queries

    def charge(self, com: pcs.Commitment, positions) -> int:
        """Record an opening's ``positions`` (a proof, or a certificate rotating TO ``com``); returns
        the positions left. Raises :class:`OpeningBudgetExceeded` (recording nothing) when the distinct
        positions would exceed ``t_h − t`` (the last ``t`` are the rotation reserve)."""
        return self._charge(com, positions, com.layout.hiding_symbols - rotation_reserve(com))

    def charge_rotation(self, com: pcs.Commitment, positions) -> int:
        """Record the positions of a rotation certificate AWAY from ``com``: it may use the reserve,
        never more than ``t_h``."""
        return self._charge(com, positions, com.layout.hiding_symbols)

    def _charge(self, com: pcs.Commitment, positions, allowed: int) -> int:
        pos = {int(p) for p in np.asarray(positions).reshape(-1)}
        limit = com.layout.hiding_symbols
        key = com.digest().hex()
        with self._locked():
            entries = self._load()
            have = entries.get(key, (limit, set()))[1]
            new = have | pos
            if len(new) > allowed:
                kept = (f" ({limit - allowed} of them kept for one rotation certificate: `blindproof rotate`)"
                        if allowed < limit else "")
                raise OpeningBudgetExceeded(
                    f"this opening would reveal {len(new)} distinct positions of the weight commitment, over the "
                    f"{allowed} its {limit} hiding symbols allow{kept} ({len(have)} opened so far"
                    f"{' in ' + str(self.path) if self.path else ''}): further openings would leak the weights; "
                    "rotate to a fresh key (blindproof.zk.proof.rotation.rotate)")
            if new != have:
                entries = dict(entries)
                entries[key] = (limit, new)
                self._store(entries)
            return limit - len(new)


def _canonical(body) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")
