"""Model commitment ``C_W``: the quantization spec (which holds the architecture) and every weight.

A :class:`ModelCommitment` is what a verifier needs about a model, and nothing more:

- the canonical JSON of the :class:`~blindproof.zk.quant.QuantSpec` (the architecture description,
  the op list, every exponent, range and table parameter; hashed into the digest);
- one hiding polynomial commitment (:mod:`blindproof.zk.pcs`) over every weight tensor in canonical
  layout (each dimension zero-padded to a power of two, flattened row-major), named ``"w:<name>"``
  as the op framework expects (:func:`blindproof.zk.ops.base.weight_name`);
- the proof that every committed weight lies in its dtype's range with zero padding
  (:mod:`blindproof.zk.wellformed`), made by :func:`commit_model` and verified whenever a commitment
  is decoded, so the op proofs' integer bounds hold for a third party's weights too.

Its :meth:`~ModelCommitment.digest` (BLAKE3 of the serialized message) is what proofs name and what
transcripts absorb first. The file form is the ``ModelCommitment`` protobuf message of
``proto/blindproof/v1/proof.proto`` (see :mod:`blindproof.zk.proof_file`).

Hiding randomness. The weight commitment must be reproducible by the prover (it opens the same rows
later) yet unpredictable to everyone else. It is drawn from BLAKE3's keyed XOF under a 32-byte secret
:class:`CommitmentKey` that the model owner keeps next to the weights; a fresh key per model.

Hiding over many proofs. The weight commitment is reused by every proof, so it keeps no mask rows
(each proof brings a fresh companion commitment with them, :func:`pcs.commit_companion`) and its rows
carry ``t_h = (B + 1) · t`` hiding symbols for an opening budget of ``B`` proofs (plus the
commitment's own well-formedness proof): any ``t_h`` opened positions are uniform, whatever the
weights. The budget is part of the commitment (its layout, hence its digest). An
:class:`OpeningLedger` kept beside the key (``<key file>.ledger``) records the positions opened under
the key, and the prover refuses a proof that would take them past ``t_h − t``: the last ``t`` positions
are kept for one rotation certificate (:mod:`blindproof.zk.rotation`), so a spent key can always be
rotated to a fresh one. Every proof and every certificate (on either side) is one of the ``B``
openings: a key makes ``B − 1`` proofs, a key reached by rotation ``B − 2``.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Mapping

import blake3
import numpy as np

from blindproof.zk import field as F
from blindproof.zk import pcs
from blindproof.zk.ops.base import canonical, n_vars, weight_name
from blindproof.zk.quant.spec import QuantSpec
from blindproof.zk.soundness import PROOF_FLOOR_BITS
from blindproof.zk.wellformed import prove_wellformed

KEY_BYTES = 32
_KEY_MAGIC = b"BPKEY1\n"
_MEMORY_LEDGERS: dict[bytes, "OpeningLedger"] = {}  # in-memory ledgers by key digest, for the process
_MEMORY_LOCK = threading.Lock()
DEFAULT_SECURITY = 104.0  # commitment target: the whole proof (union bound) stays ≥ 100 provable bits
# openings per key (proofs and rotation certificates; the last is kept for a rotation) whose opened
# weight columns stay uniform. Each unit adds t hiding symbols per row:
# 16·(1 + P)·t bytes per proof (~5 KB at t ≈ 155) and, past C + t_h − t > C, a longer code (commit
# time ×2): 8 keeps tiny-llama's proof within a few per cent of the once-opened size, gpt2-block's
# commit at ×2; a spent key is rotated (:mod:`blindproof.zk.rotation`) for the cost of one commitment.
DEFAULT_BUDGET = 8
MAX_BUDGET = pcs.MAX_OPENINGS - 1
LEDGER_SUFFIX = ".ledger"


def default_params() -> pcs.PcsParams:
    """The code parameters of a commitment made without explicit ones."""
    return pcs.PcsParams.for_security(DEFAULT_SECURITY)


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
                    "rotate to a fresh key (blindproof.zk.rotation.rotate)")
            if new != have:
                entries = dict(entries)
                entries[key] = (limit, new)
                self._store(entries)
            return limit - len(new)


def rotation_reserve(com: pcs.Commitment) -> int:
    """Positions of ``com`` a proof may not take: one opening's worth (``t``), kept so that a spent key
    can still certify its successor (a rotation opens ``t`` positions of the old commitment)."""
    return com.layout.n_queries


def _canonical(body) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


# --- the commitment -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelCommitment:
    """The public commitment to a model: its spec (canonical JSON), its weights (PCS commitment) and the
    code parameters of every proof about it (``params``: the weight layout and each proof's trace
    layout follow from them by :func:`pcs.make_layout`, so a prover cannot pick weaker ones)."""

    spec_json: str
    weights: pcs.Commitment
    params: pcs.PcsParams
    wellformed: bytes = b""  # :mod:`blindproof.zk.wellformed` proof; decoding a commitment verifies it

    def __post_init__(self) -> None:
        if not isinstance(self.spec_json, str) or not self.spec_json:
            raise ValueError("ModelCommitment: spec_json must be a non-empty string")
        if not isinstance(self.weights, pcs.Commitment):
            raise TypeError("ModelCommitment: weights must be a pcs.Commitment")
        if not isinstance(self.params, pcs.PcsParams):
            raise TypeError("ModelCommitment: params must be a pcs.PcsParams")
        if not isinstance(self.wellformed, bytes):
            raise TypeError("ModelCommitment: wellformed must be bytes")
        check_params(self.params, self.weights.layout)

    @property
    def budget(self) -> int:
        """Openings per key whose weight columns stay hiding (fixed by the commitment's layout), beyond the
        commitment's own well-formedness proof: proofs and rotation certificates, the last kept for a
        rotation (:func:`rotation_reserve`)."""
        return self.weights.layout.openings - 1

    @cached_property
    def spec(self) -> QuantSpec:
        """The parsed quantization spec."""
        return QuantSpec.from_json(self.spec_json)

    @cached_property
    def spec_digest(self) -> bytes:
        """BLAKE3 of the spec's canonical JSON (``QuantSpec.digest`` as bytes)."""
        return blake3.blake3(self.spec_json.encode("ascii")).digest()

    @cached_property
    def arch_digest(self) -> bytes:
        """BLAKE3 of the architecture description alone (canonical JSON)."""
        from blindproof.zk.quant.spec import canonical_json
        return blake3.blake3(canonical_json(self.spec.arch).encode("ascii")).digest()

    def to_bytes(self) -> bytes:
        """The ``ModelCommitment`` protobuf message."""
        from blindproof.zk import proof_file
        return proof_file.encode_commitment(self)

    @staticmethod
    def from_bytes(data: bytes) -> "ModelCommitment":
        """Parse and validate; :class:`~blindproof.zk.proof_file.ProofFileError` on anything wrong."""
        from blindproof.zk import proof_file
        return proof_file.decode_commitment(data)

    @cached_property
    def _digest(self) -> bytes:
        return blake3.blake3(b"blindproof/model-commitment/v1\x00" + self.to_bytes()).digest()

    def digest(self) -> bytes:
        """The 32-byte identifier of the model: what proofs name and transcripts absorb."""
        return self._digest

    def save(self, path: str | Path) -> None:
        """Write the commitment file."""
        Path(path).write_bytes(self.to_bytes())

    @staticmethod
    def load(path: str | Path) -> "ModelCommitment":
        """Read a commitment file (validated)."""
        return ModelCommitment.from_bytes(Path(path).read_bytes())


def expected_weight_layout(spec: QuantSpec) -> dict[str, int]:
    """Committed name -> log2 of the canonical size, for every weight of a spec (in spec order)."""
    return {weight_name(n): n_vars(ws.shape) for n, ws in spec.weights.items()}


def zero_padded_tensors(spec: QuantSpec) -> set[str]:
    """Tensors whose padded entries every accepted proof pins to zero: public inputs (the verifier builds
    their tables), ``rescale`` outputs (on padding the rounding relation reads ``q + r = 0``),
    ``lookup`` outputs of such a tensor through a table with ``T(0) = 0`` (SiLU, GELU: the pair ``(0, y)``
    forces ``y = 0``), and head splits / merges of such a tensor (a relabelling of entries)."""
    from blindproof.zk.quant.tables import table_values

    zero = set(spec.inputs)
    for op in spec.ops:
        if op.kind == "rescale" or (op.kind in ("split_heads", "merge_heads") and op.inputs[0] in zero):
            zero.add(op.output)
        elif op.kind == "lookup" and op.inputs[0] in zero:
            ts = spec.tables[op.params["table"]]
            if ts.lo <= 0 <= ts.hi and int(table_values(ts)[-ts.lo]) == 0:
                zero.add(op.output)
    return zero


def check_padding_sound(spec: QuantSpec) -> None:
    """ValueError unless no junk in the padding of a committed weight table can reach a real output.

    A verifier cannot see a third party's weight padding. Weights enter real entries only through sums
    over a padded axis: ``linear`` over its input width (``Σ_j x[·, j]·W[c, j]``, junk columns of ``W``
    times the padded columns of ``x``). Every other weight read (``embed`` rows by public one-hot
    indices, ``mul_weight`` / ``add_weight`` / bias vectors broadcast over the last axis) puts junk only on
    padded output entries, and no op carries a padded entry into a real one: norms, softmax and
    mean_pool sum real columns only (public indicators; mean_pool zero-checks its padded rows),
    rescale zeroes its output's padding, pv meets padded keys with a probability pinned to 0. So a
    linear whose input width is not a power of two must read a tensor whose padding is pinned to zero
    (:func:`zero_padded_tensors`); so must both operands of ``qk`` (a sum over the head width, for trace
    padding). Every workload's program meets this (docs/proofs.md §4)."""
    zero = zero_padded_tensors(spec)
    pow2 = lambda n: n & (n - 1) == 0  # noqa: E731
    for op in spec.ops:
        if op.kind == "linear":
            k = spec.weights[op.params["weight"]].shape[-1]
            if not pow2(k) and op.inputs[0] not in zero:
                raise ValueError(f"linear {op.output}: input {op.inputs[0]!r} (width {k}, padded) is not pinned "
                                 "to zero on its padding, so junk weight padding could reach the output")
        elif op.kind == "qk":
            bad = [n for n in op.inputs if n not in zero]
            if bad:
                raise ValueError(f"qk {op.output}: operand {bad[0]!r} is not pinned to zero on its padding "
                                 "(the sum over the head width would count it)")


def check_spec_sound(spec: QuantSpec) -> None:
    """ValueError unless the spec keeps weight padding away from real outputs
    (:func:`check_padding_sound`) and every relation whose uniqueness needs the spec's declared
    ranges to cover the proven ones has them (``mean_pool``: :func:`ops.pool.check_bounds`). A third
    party's commitment is hostile input: it is refused when loaded, not when a proof fails."""
    from blindproof.zk.ops import pool

    check_padding_sound(spec)
    for op in spec.ops:
        if op.kind == "mean_pool":
            pool.check_bounds(op, spec)


def check_floor(params: pcs.PcsParams) -> None:
    """ValueError unless ``params`` target at least the protocol's floor of provable bits."""
    if params.security_bits < PROOF_FLOOR_BITS:
        raise ValueError(f"the commitment targets {params.security_bits} bits, below the floor of "
                         f"{PROOF_FLOOR_BITS} provable bits")


def check_params(params: pcs.PcsParams, layout: pcs.Layout) -> None:
    """ValueError unless ``params`` reach the protocol's floor and ``layout`` is the one the parameter
    rule gives for its tensors (:func:`pcs.check_layout_rule`): query count, columns, blowup and
    proximity tests are never a committer's or a prover's choice. The weight commitment is a reused
    one (no mask rows; each proof brings a companion) with hiding symbols for ``budget + 1``
    openings, ``1 ≤ budget ≤ MAX_BUDGET``."""
    check_floor(params)
    if layout.masks:
        raise ValueError("the weight commitment holds its own mask rows: it would be opened with the same masks "
                         "by every proof (a commitment of format 1); commit the model again")
    if not 1 <= layout.openings - 1 <= MAX_BUDGET or layout.hiding_symbols != layout.openings * layout.n_queries:
        raise ValueError(f"the weight commitment's hiding symbols ({layout.hiding_symbols} for {layout.n_queries} "
                         f"queries) do not encode an opening budget in [1, {MAX_BUDGET}]")
    pcs.check_layout_rule(layout, params, "the weight commitment")


def check_layout(spec: QuantSpec, com: pcs.Commitment) -> None:
    """ValueError unless the weight commitment holds exactly the spec's weights at their sizes and the
    spec is sound (:func:`check_spec_sound`)."""
    check_spec_sound(spec)
    want = expected_weight_layout(spec)
    got = dict(zip(com.layout.names, com.layout.log_sizes))
    if set(got) != set(want):
        extra, missing = sorted(set(got) - set(want)), sorted(set(want) - set(got))
        raise ValueError(f"weight commitment does not match the spec (extra {extra[:3]}, missing {missing[:3]})")
    bad = [n for n in want if got[n] != want[n]]
    if bad:
        raise ValueError(f"weight {bad[0]!r} committed with 2^{got[bad[0]]} entries, the spec needs 2^{want[bad[0]]}")


def weight_tables(spec: QuantSpec, weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Canonical base-field tables of every weight, named ``"w:<name>"`` (spec order)."""
    out: dict[str, np.ndarray] = {}
    for name, ws in spec.weights.items():
        if name not in weights:
            raise ValueError(f"weight {name!r} missing")
        out[weight_name(name)] = canonical(np.asarray(weights[name]), ws.shape)
    return out


def _tables_digest(tables: Mapping[str, np.ndarray]) -> str:
    h = blake3.blake3()
    for name in sorted(tables):
        nb = name.encode("utf-8")
        h.update(len(nb).to_bytes(4, "little") + nb + np.ascontiguousarray(tables[name], dtype="<u4").tobytes())
    return h.hexdigest()


def commit_model(spec: QuantSpec, weights: Mapping[str, np.ndarray], key: CommitmentKey,
                 params: pcs.PcsParams | None = None, budget: int = DEFAULT_BUDGET
                 ) -> tuple[ModelCommitment, pcs.ProverState]:
    """Commit to a quantized model, with hiding symbols for ``budget`` proofs (plus the commitment's
    own well-formedness proof). The same (spec, weights, key, params, budget) always give the same
    commitment, so the prover can rebuild its opening state from the key."""
    if not isinstance(spec, QuantSpec):
        raise TypeError(f"commit_model: spec must be a QuantSpec, got {type(spec).__name__}")
    if not isinstance(key, CommitmentKey):
        raise TypeError(f"commit_model: key must be a CommitmentKey, got {type(key).__name__}")
    if not spec.weights:
        raise ValueError("commit_model: the program has no weights to commit")
    params = params or default_params()
    check_floor(params)  # before the (costly) commitment, which the constructor would refuse anyway
    if not isinstance(budget, int) or isinstance(budget, bool) or not 1 <= budget <= MAX_BUDGET:
        raise ValueError(f"the opening budget must be an int in [1, {MAX_BUDGET}], got {budget!r}")
    check_spec_sound(spec)
    tables = weight_tables(spec, weights)
    # the stream depends on every choice that shapes the matrix AND on the weights: two commitments under
    # one key never share hiding symbols or masks (two weight sets under one key would otherwise give
    # away their difference)
    label = (f"blindproof/model-weights/v3/{params.security_bits!r}/{params.blowup}/{params.proximity_tests}/"
             f"{budget}/{spec.digest()}/{_tables_digest(tables)}")
    com, state = pcs.commit(tables, params, rng=key.rng(label), openings=budget + 1)
    # the proof that every weight respects its dtype ships with the commitment (its randomness from the
    # key too, so the commitment stays reproducible); it refuses weights outside their dtype's range
    wellformed = prove_wellformed(spec, state, params, rng=key.rng(label.replace("model-weights", "weights-wellformed")))
    return ModelCommitment(spec.to_json(), com, params, wellformed), state
