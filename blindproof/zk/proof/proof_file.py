"""Proof and commitment files: the ``ModelProof`` / ``ModelCommitment`` messages of
``proto/blindproof/v1/proof.proto``, with strict, bounded decoding.

Decoding never trusts the bytes: the size is checked before parsing, the format name and version must
match, every digest must have 32 bytes, tensors must be int64 with a consistent shape and byte length,
and the embedded commitment encodings are parsed by their own bounded readers. Every failure is a
:class:`ProofFileError` (a ``ValueError``) whose message says what was wrong.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from dataclasses import dataclass, field
from typing import Mapping

import blake3
import numpy as np
from google.protobuf.message import DecodeError

from blindproof.proto import proof_pb2, tensor_pb2
from blindproof.zk.commit import pcs
from blindproof.quant.spec import ACC_BOUND

PROOF_FORMAT = "blindproof.model-proof"
VERSION = 5  # 2: parameters fixed by the commitment, public values bounded, start pinned; 3: weights opened with a
# per-proof companion commitment (their own masks gone), hiding symbols for an opening budget; 4: lookups (in proofs and
# in the commitment's well-formedness proof) as one signed fraction tree per lookup with root (0, q), blinding leaves;
# 5: the statement binds the public input and output by their digest, and a proof may travel without them
MAX_PROOF_BYTES = 256 << 20
MAX_TENSORS = 16
MAX_RANK = 8
MAX_TENSOR_ELEMENTS = 1 << 26


class ProofFileError(ValueError):
    """A proof or commitment file is malformed, truncated, oversized or of another format."""


# --- small pieces ---------------------------------------------------------------------------------

def _params_to_proto(p: pcs.PcsParams) -> proof_pb2.PcsParameters:
    return proof_pb2.PcsParameters(security_bits=p.security_bits, blowup=p.blowup,
                                   proximity_tests=p.proximity_tests)


def _params_from_proto(m: proof_pb2.PcsParameters) -> pcs.PcsParams:
    try:
        return pcs.PcsParams(security_bits=float(m.security_bits), blowup=int(m.blowup),
                             proximity_tests=int(m.proximity_tests))
    except ValueError as exc:
        raise ProofFileError(f"invalid parameters: {exc}") from None


def _digest32(b: bytes, what: str) -> bytes:
    if len(b) != 32:
        raise ProofFileError(f"{what} must be 32 bytes, got {len(b)}")
    return bytes(b)


def _tensor_to_proto(name: str, a: np.ndarray) -> proof_pb2.NamedTensor:
    """int32 when every value fits (always, for the integer model's |v| < 2^30), else int64."""
    a = np.asarray(a, dtype=np.int64)
    fits = a.size == 0 or (a.min() >= -(1 << 31) and a.max() < 1 << 31)
    dt = "<i4" if fits else "<i8"
    return proof_pb2.NamedTensor(name=name, tensor=tensor_pb2.Tensor(
        dtype="int32" if fits else "int64", shape=list(a.shape), data=np.ascontiguousarray(a, dtype=dt).tobytes()))


def _tensor_from_proto(m: proof_pb2.NamedTensor) -> tuple[str, np.ndarray]:
    if not m.name:
        raise ProofFileError("a public tensor has no name")
    t = m.tensor
    if t.dtype not in ("int32", "int64"):
        raise ProofFileError(f"public tensor {m.name!r} must be int32 or int64, got {t.dtype!r}")
    size = 4 if t.dtype == "int32" else 8
    shape = tuple(int(d) for d in t.shape)
    if len(shape) > MAX_RANK or any(d < 0 for d in shape):
        raise ProofFileError(f"public tensor {m.name!r} has an invalid shape {shape}")
    n = math.prod(shape)
    if n > MAX_TENSOR_ELEMENTS:
        raise ProofFileError(f"public tensor {m.name!r} is too large ({n} elements)")
    if len(t.data) != size * n:
        raise ProofFileError(f"public tensor {m.name!r}: {len(t.data)} bytes for shape {shape}")
    a = np.frombuffer(t.data, dtype="<i4" if size == 4 else "<i8").astype(np.int64).reshape(shape)
    # every integer of the model lies below 2^29 (< p/2); the verifier then checks the spec's own range
    if a.size and int(np.abs(a).max()) >= ACC_BOUND:
        raise ProofFileError(f"public tensor {m.name!r} holds a value of magnitude ≥ 2^29")
    return m.name, a


def _tensors_from_proto(items, what: str) -> dict[str, np.ndarray]:
    if len(items) > MAX_TENSORS:
        raise ProofFileError(f"too many {what} tensors ({len(items)})")
    out: dict[str, np.ndarray] = {}
    for m in items:
        name, arr = _tensor_from_proto(m)
        if name in out:
            raise ProofFileError(f"{what} tensor {name!r} appears twice")
        out[name] = arr
    return out


def _parse(msg, data: bytes, limit: int, what: str):
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProofFileError(f"{what} must be bytes, got {type(data).__name__}")
    if len(data) > limit:
        raise ProofFileError(f"{what} is too large ({len(data)} bytes > {limit})")
    if len(data) == 0:
        raise ProofFileError(f"{what} is empty")
    try:
        msg.ParseFromString(bytes(data))
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ProofFileError(f"{what} is not a valid protobuf message (truncated or corrupt): {exc}") from None
    return msg


# --- model proof ----------------------------------------------------------------------------------

@dataclass
class SoundnessFigures:
    """Provable and conjectured bits of a whole proof, with the terms they come from."""

    provable_bits: float
    conjectured_bits: float
    terms: list[tuple[str, float, float]] = field(default_factory=list)

    def summary(self) -> str:
        """One line for people."""
        return f"provable {self.provable_bits:.1f} bits, conjectured {self.conjectured_bits:.1f} bits"


@dataclass
class ModelProof:
    """The parts of a proof file (see ``proof.proto`` for each field's meaning)."""

    model_digest: bytes
    spec_digest: bytes
    params: pcs.PcsParams
    start: int
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    trace_commitment: bytes
    program_proof: bytes
    trace_opening: bytes
    weight_opening: bytes
    soundness: SoundnessFigures
    trace_claims: int
    weight_claims: int
    companion_commitment: bytes = b""
    public_digest: bytes = b""  # 32 bytes: BLAKE3 of inputs and outputs (io_digest)

    @property
    def detached(self) -> bool:
        """True when the proof travels without its public input and output."""
        return not self.inputs and not self.outputs

    def without_public(self) -> "ModelProof":
        """The same proof without its public input and output (they stay bound by ``public_digest``):
        what a verifier who already holds them (the client that sent the input and got the output)
        needs to receive."""
        return dataclasses.replace(self, inputs={}, outputs={})

    def with_public(self, inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> "ModelProof":
        """This proof carrying ``inputs`` and ``outputs``; ProofFileError unless they are the ones its
        digest binds."""
        ins = {k: np.asarray(v, dtype=np.int64) for k, v in inputs.items()}
        outs = {k: np.asarray(v, dtype=np.int64) for k, v in outputs.items()}
        if io_digest(ins, outs) != self.public_digest:
            raise ProofFileError("the public input and output are not the ones this proof's digest binds")
        return dataclasses.replace(self, inputs=ins, outputs=outs)

    def public_bytes(self) -> int:
        """Bytes the public input and output take in the file (the rest is the proof proper): the size of
        their two repeated fields alone, without serializing the megabytes of proof around them."""
        return proof_pb2.ModelProof(inputs=[_tensor_to_proto(k, v) for k, v in self.inputs.items()],
                                    outputs=[_tensor_to_proto(k, v) for k, v in self.outputs.items()]).ByteSize()

    def __repr__(self) -> str:  # the byte fields run to megabytes: show what they are, not what they hold
        shapes = lambda d: {k: tuple(v.shape) for k, v in d.items()}  # noqa: E731
        parts = ("trace_commitment", "program_proof", "trace_opening", "weight_opening", "companion_commitment")
        sizes = ", ".join(f"{p}=<{len(getattr(self, p)):,} bytes>" for p in parts)
        return (f"ModelProof(model_digest={self.model_digest.hex()[:16]}…, start={self.start}, "
                f"inputs={shapes(self.inputs)}, outputs={shapes(self.outputs)}, {sizes}, "
                f"provable_bits={self.soundness.provable_bits:.2f}, trace_claims={self.trace_claims}, "
                f"weight_claims={self.weight_claims})")

    def to_bytes(self) -> bytes:
        """Serialize as the ``ModelProof`` message."""
        m = proof_pb2.ModelProof(
            format=PROOF_FORMAT, version=VERSION, model_digest=self.model_digest, spec_digest=self.spec_digest,
            params=_params_to_proto(self.params), start=self.start,
            inputs=[_tensor_to_proto(k, v) for k, v in self.inputs.items()],
            outputs=[_tensor_to_proto(k, v) for k, v in self.outputs.items()],
            trace_commitment=self.trace_commitment, program_proof=self.program_proof,
            trace_opening=self.trace_opening, weight_opening=self.weight_opening,
            soundness=proof_pb2.Soundness(
                provable_bits=self.soundness.provable_bits, conjectured_bits=self.soundness.conjectured_bits,
                terms=[proof_pb2.SoundnessTerm(name=n, provable_bits=p, conjectured_bits=c)
                       for n, p, c in self.soundness.terms]),
            trace_claims=self.trace_claims, weight_claims=self.weight_claims,
            companion_commitment=self.companion_commitment, public_digest=self.public_digest)
        return m.SerializeToString(deterministic=True)

    @staticmethod
    def from_bytes(data: bytes) -> "ModelProof":
        """Parse and validate the framing (not the proof itself); ProofFileError on anything wrong."""
        m = _parse(proof_pb2.ModelProof(), data, MAX_PROOF_BYTES, "proof")
        if m.format != PROOF_FORMAT:
            raise ProofFileError(f"not a model proof (format {m.format!r})")
        if m.version != VERSION:
            raise ProofFileError(f"unsupported proof version {m.version} (expected {VERSION})")
        if not m.HasField("params") or not m.HasField("soundness"):
            raise ProofFileError("proof lacks its parameters or soundness figures")
        s = m.soundness
        proof = ModelProof(
            model_digest=_digest32(m.model_digest, "model digest"),
            spec_digest=_digest32(m.spec_digest, "spec digest"),
            params=_params_from_proto(m.params), start=int(m.start),
            inputs=_tensors_from_proto(m.inputs, "input"), outputs=_tensors_from_proto(m.outputs, "output"),
            trace_commitment=bytes(m.trace_commitment), program_proof=bytes(m.program_proof),
            trace_opening=bytes(m.trace_opening), weight_opening=bytes(m.weight_opening),
            soundness=SoundnessFigures(float(s.provable_bits), float(s.conjectured_bits),
                                       [(t.name, float(t.provable_bits), float(t.conjectured_bits)) for t in s.terms]),
            trace_claims=int(m.trace_claims), weight_claims=int(m.weight_claims),
            companion_commitment=bytes(m.companion_commitment),
            public_digest=_digest32(m.public_digest, "public digest"))
        if bool(proof.inputs) != bool(proof.outputs):
            raise ProofFileError("proof carries its public input without its output or the reverse")
        if proof.inputs and io_digest(proof.inputs, proof.outputs) != proof.public_digest:
            raise ProofFileError("the proof's public input and output do not match its public digest")
        # canonical encoding only: one byte string per proof (no malleable re-encodings)
        if proof.to_bytes() != bytes(data):
            raise ProofFileError("proof is not in canonical encoding")
        return proof


def io_digest(inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> bytes:
    """BLAKE3 of the public input and output (per group a count, then per tensor sorted by name: name,
    shape, int64 values): the statement binds them by it, so that a proof can travel without them."""
    h = blake3.blake3(b"blindproof/public/v1")
    for group in (inputs, outputs):
        h.update(struct.pack("<I", len(group)))
        for k in sorted(group):
            a = np.ascontiguousarray(group[k], dtype="<i8")
            name = k.encode("utf-8")
            h.update(struct.pack("<I", len(name)) + name + struct.pack("<I", a.ndim)
                     + b"".join(struct.pack("<Q", d) for d in a.shape) + a.tobytes())
    return h.digest()


def public_digest(tensors: Mapping[str, np.ndarray]) -> str:
    """Short hex digest of public tensors, for display."""
    h = blake3.blake3()
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k], dtype="<i8")
        h.update(k.encode() + b"\x00" + str(a.shape).encode() + a.tobytes())
    return h.hexdigest()[:16]
