"""Model commitment ``C_W``: the quantization spec (which holds the architecture) and every weight.

A :class:`ModelCommitment` is what a verifier needs about a model, and nothing more:

- the canonical JSON of the :class:`~blindproof.quant.QuantSpec` (the architecture description,
  the op list, every exponent, range and table parameter; hashed into the digest);
- one hiding polynomial commitment (:mod:`blindproof.zk.commit.pcs`) over every weight tensor in canonical
  layout (each dimension zero-padded to a power of two, flattened row-major), named ``"w:<name>"``
  as the op framework expects (:func:`blindproof.zk.iop.layout.weight_name`);
- the proof that every committed weight lies in its dtype's range with zero padding
  (:mod:`blindproof.zk.proof.wellformed`), made by :func:`commit_model` and verified whenever a commitment
  is decoded, so the op proofs' integer bounds hold for a third party's weights too.

Its :meth:`~ModelCommitment.digest` (BLAKE3 of the serialized message) is what proofs name and what
transcripts absorb first. The file form is the ``ModelCommitment`` protobuf message of
``proto/blindproof/v1/proof.proto`` (see :mod:`blindproof.zk.proof.proof_file`).

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
are kept for one rotation certificate (:mod:`blindproof.zk.proof.rotation`), so a spent key can always be
rotated to a fresh one. Every proof and every certificate (on either side) is one of the ``B``
openings: a key makes ``B − 1`` proofs, a key reached by rotation ``B − 2``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Mapping

import blake3
import numpy as np

from blindproof.zk.commit import pcs
from blindproof.zk.iop.layout import canonical, weight_name
from blindproof.quant.spec import QuantSpec
from blindproof.zk.proof.wellformed import prove_wellformed
from blindproof.zk.proof.config import (DEFAULT_BUDGET, MAX_BUDGET, default_params, check_spec_sound, check_floor,
                                        check_params)
from blindproof.zk.proof.keys import CommitmentKey
from blindproof.proto import proof_pb2
from blindproof.zk.field.encoding import ProofFormatError
from blindproof.zk.proof.proof_file import _digest32, _params_from_proto, _params_to_proto, _parse, ProofFileError, VERSION


# --- the commitment -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelCommitment:
    """The public commitment to a model: its spec (canonical JSON), its weights (PCS commitment) and the
    code parameters of every proof about it (``params``: the weight layout and each proof's trace
    layout follow from them by :func:`pcs.make_layout`, so a prover cannot pick weaker ones)."""

    spec_json: str
    weights: pcs.Commitment
    params: pcs.PcsParams
    wellformed: bytes = b""  # :mod:`blindproof.zk.proof.wellformed` proof; decoding a commitment verifies it

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
        from blindproof.quant.spec import canonical_json
        return blake3.blake3(canonical_json(self.spec.arch).encode("ascii")).digest()

    def to_bytes(self) -> bytes:
        """The ``ModelCommitment`` protobuf message."""
        return encode_commitment(self)

    @staticmethod
    def from_bytes(data: bytes) -> "ModelCommitment":
        """Parse and validate; :class:`~blindproof.zk.proof.proof_file.ProofFileError` on anything wrong."""
        return decode_commitment(data)

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


COMMITMENT_FORMAT = "blindproof.model-commitment"


MAX_COMMITMENT_BYTES = 64 << 20


def encode_commitment(mc) -> bytes:
    """Serialize a :class:`~blindproof.zk.proof.commitment.ModelCommitment`."""
    m = proof_pb2.ModelCommitment(format=COMMITMENT_FORMAT, version=VERSION, spec_json=mc.spec_json,
                                  spec_digest=mc.spec_digest, weights=mc.weights.to_bytes(),
                                  params=_params_to_proto(mc.params), wellformed=mc.wellformed)
    return m.SerializeToString(deterministic=True)


def decode_commitment(data: bytes):
    """Parse and validate a commitment file -> ModelCommitment."""
    from blindproof.zk.proof.commitment import ModelCommitment
    from blindproof.zk.proof.config import check_layout

    m = _parse(proof_pb2.ModelCommitment(), data, MAX_COMMITMENT_BYTES, "model commitment")
    if m.format != COMMITMENT_FORMAT:
        raise ProofFileError(f"not a model commitment (format {m.format!r})")
    if m.version != VERSION:
        raise ProofFileError(f"unsupported model commitment version {m.version} (expected {VERSION}; older commitments "
                             "reuse their mask rows in every proof: commit the model again)")
    try:
        weights = pcs.Commitment.from_bytes(m.weights)
    except ProofFormatError as exc:
        raise ProofFileError(f"weight commitment: {exc}") from None
    if not m.spec_json.isascii():
        raise ProofFileError("spec JSON must be ASCII")
    if not m.spec_json:
        raise ProofFileError("model commitment has no spec")
    if not m.HasField("params"):
        raise ProofFileError("model commitment lacks its parameters")
    try:
        mc = ModelCommitment(m.spec_json, weights, _params_from_proto(m.params), bytes(m.wellformed))
    except ValueError as exc:
        raise ProofFileError(f"model commitment parameters: {exc}") from None
    if _digest32(m.spec_digest, "spec digest") != blake3.blake3(m.spec_json.encode("ascii")).digest():
        raise ProofFileError("spec digest does not match the spec")
    try:
        spec = mc.spec
        check_layout(spec, weights)
    except (ValueError, KeyError, TypeError) as exc:
        raise ProofFileError(f"invalid spec or weight layout: {exc}") from None
    if spec.to_json() != m.spec_json:
        raise ProofFileError("spec JSON is not in canonical form")
    if mc.to_bytes() != bytes(data):
        raise ProofFileError("model commitment is not in canonical encoding")
    # a third party's weights are hostile input: every op proof's integer bounds rest on their dtypes
    if not m.wellformed:
        raise ProofFileError("model commitment lacks the proof that its weights respect their dtypes")
    from blindproof.zk.proof.wellformed import verify_wellformed
    res = verify_wellformed(mc, bytes(m.wellformed))
    if not res.ok:
        raise ProofFileError(f"the proof that the committed weights respect their dtypes does not verify: {res.reason}")
    return mc
