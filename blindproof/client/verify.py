"""Client-side checking of served proofs: a proof counts only if it is about this exchange.

A server's proof of an inference is checked against the client's own copy of the model commitment
(computed locally when the model was deployed, never taken from the server), and its public
statement must be exactly the encrypted request the client sent and the encrypted response it
received. So a server that answers with a wrong output, proves with other weights, or hands over a
proof of another request is caught here, with a :class:`ProofVerificationError` naming why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from blindproof.client.errors import DeploymentDigestError
from blindproof.zk.proof.commitment import ModelCommitment


class ProofVerificationError(RuntimeError):
    """A served proof does not verify, or verifies a statement other than the client's exchange."""

    def __init__(self, reason: str, job_id: str = "") -> None:
        super().__init__(f"proof{f' of job {job_id}' if job_id else ''} rejected: {reason}")
        self.reason = reason
        self.job_id = job_id


class CommitmentMismatchError(DeploymentDigestError):
    """The server's model commitment of a deployment differs from the one the client computed."""


@dataclass(frozen=True)
class VerifiedProof:
    """A proof that verified against the client's commitment and its own request and response."""

    proof: bytes = field(repr=False)  # megabytes: printed as its size (see __repr__)
    model_digest: bytes
    provable_bits: float
    conjectured_bits: float
    verify_s: float
    job_id: str = ""
    request_id: str = ""

    def __repr__(self) -> str:
        return (f"VerifiedProof({len(self.proof)} bytes, model_digest={self.model_digest.hex()[:16]}…, "
                f"provable_bits={self.provable_bits:.1f}, conjectured_bits={self.conjectured_bits:.1f}, "
                f"verify_s={self.verify_s:.3f}, job_id={self.job_id!r}, request_id={self.request_id!r})")

    def save(self, path) -> None:
        """Write the proof file (``blindproof verify`` checks it offline with the commitment)."""
        from pathlib import Path
        Path(path).write_bytes(self.proof)


def check_commitment(local: ModelCommitment, server_bytes: bytes) -> None:
    """Raise :class:`CommitmentMismatchError` unless the server returned exactly the local commitment."""
    if not server_bytes:
        raise CommitmentMismatchError("the server returned no model commitment for an integer deployment")
    if bytes(server_bytes) != local.to_bytes():
        try:
            theirs = ModelCommitment.from_bytes(bytes(server_bytes)).digest().hex()[:16]
        except ValueError:
            theirs = "an unreadable one"
        raise CommitmentMismatchError(f"the server committed to model {theirs}, the client computed "
                                      f"{local.digest().hex()[:16]}: refusing the deployment")


def _as_int64(tensors: Mapping[str, object]) -> dict[str, np.ndarray]:
    out = {}
    for name, t in tensors.items():
        a = t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)
        if a.dtype.kind not in "iu":
            raise TypeError(f"public tensor {name!r} must be integer (the program's wire form), got {a.dtype}")
        out[name] = a.astype(np.int64)
    return out


def verify_exchange(commitment: ModelCommitment, proof: bytes, sent: Mapping[str, object],
                    received: Mapping[str, object], *, start: int = 0, min_provable_bits: float | None = None,
                    job_id: str = "", request_id: str = "") -> VerifiedProof:
    """Verify ``proof`` against ``commitment`` with the statement pinned to ``sent`` -> ``received``
    (the program's integer input and output tensors, by name, as they crossed the wire) at position
    ``start`` (what the request asked for). ``min_provable_bits`` may raise the floor of 100 bits,
    never lower it.

    Returns a :class:`VerifiedProof`; raises :class:`ProofVerificationError` otherwise."""
    from blindproof.zk.proof.verifier import verify_model_proof

    if not isinstance(commitment, ModelCommitment):
        raise TypeError(f"commitment must be a ModelCommitment, got {type(commitment).__name__}")
    if not isinstance(proof, (bytes, bytearray)) or not proof:
        raise ProofVerificationError("no proof bytes", job_id)
    inputs, outputs = _as_int64(sent), _as_int64(received)
    t0 = time.perf_counter()
    res = verify_model_proof(commitment, bytes(proof), inputs, outputs, start=start,
                             min_provable_bits=min_provable_bits)
    verify_s = time.perf_counter() - t0
    if not res.ok:
        raise ProofVerificationError(res.reason or "rejected", job_id)
    return VerifiedProof(bytes(proof), commitment.digest(), res.provable_bits, res.conjectured_bits, verify_s,
                         job_id, request_id)
