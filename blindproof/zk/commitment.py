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
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
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
DEFAULT_SECURITY = 104.0  # commitment target: the whole proof (union bound) stays ≥ 100 provable bits


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


@dataclass(frozen=True)
class CommitmentKey:
    """The model owner's 32-byte secret from which the weight commitment's hiding randomness comes."""

    secret: bytes

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
        """Write the key readable by its owner only."""
        p = Path(path)
        p.write_bytes(_KEY_MAGIC + self.secret.hex().encode("ascii") + b"\n")
        os.chmod(p, stat.S_IRUSR | stat.S_IWUSR)

    @staticmethod
    def load(path: str | Path) -> "CommitmentKey":
        """Read a key written by :meth:`save`; ValueError if the file is not one."""
        data = Path(path).read_bytes()
        if not data.startswith(_KEY_MAGIC) or len(data) != len(_KEY_MAGIC) + 2 * KEY_BYTES + 1:
            raise ValueError(f"{path}: not a blindproof commitment key file")
        try:
            return CommitmentKey(bytes.fromhex(data[len(_KEY_MAGIC):-1].decode("ascii")))
        except ValueError:
            raise ValueError(f"{path}: corrupt commitment key") from None


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
    proximity tests are never a committer's or a prover's choice."""
    check_floor(params)
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


def commit_model(spec: QuantSpec, weights: Mapping[str, np.ndarray], key: CommitmentKey,
                 params: pcs.PcsParams | None = None) -> tuple[ModelCommitment, pcs.ProverState]:
    """Commit to a quantized model. The same (spec, weights, key, params) always give the same
    commitment, so the prover can rebuild its opening state from the key."""
    if not isinstance(spec, QuantSpec):
        raise TypeError(f"commit_model: spec must be a QuantSpec, got {type(spec).__name__}")
    if not isinstance(key, CommitmentKey):
        raise TypeError(f"commit_model: key must be a CommitmentKey, got {type(key).__name__}")
    if not spec.weights:
        raise ValueError("commit_model: the program has no weights to commit")
    params = params or default_params()
    check_floor(params)  # before the (costly) commitment, which the constructor would refuse anyway
    check_spec_sound(spec)
    tables = weight_tables(spec, weights)
    com, state = pcs.commit(tables, params, rng=key.rng("blindproof/model-weights/" + spec.digest()))
    # the proof that every weight respects its dtype ships with the commitment (its randomness from the
    # key too, so the commitment stays reproducible); it refuses weights outside their dtype's range
    wellformed = prove_wellformed(spec, state, params, rng=key.rng("blindproof/weights-wellformed/" + spec.digest()))
    return ModelCommitment(spec.to_json(), com, params, wellformed), state
