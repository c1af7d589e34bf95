"""Client SDK: deploy EE-transformed models and run blind inference over gRPC.

    from blindproof.client import BlindClient
    from blindproof.ee import generate_key

    with BlindClient("localhost:50051") as client:
        dep = client.deploy(model, generate_key(), tier="rotate")
        logits = client.infer(dep, tokens)            # decoded: equals model(tokens)
        new_tokens = client.generate(dep, prompt, 20)  # KV cache kept on the server
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# Loaded on first use, so `blindproof --help` and argument parsing stay fast.
_EXPORTS = {
    "BlindClient": "sdk", "Deployment": "sdk", "GenerateSession": "sdk", "RemoteDeployment": "sdk",
    "WireStats": "sdk", "PlainCodec": "codecs", "server_parts": "codecs", "RemoteError": "errors",
    "DeploymentDigestError": "errors", "InferResult": "sdk", "JobStatus": "sdk", "ProofJobError": "sdk",
    "IntegerCodec": "integer", "default_calibration": "integer",
    "VerifiedInference": "sdk", "VerifiedGeneration": "sdk", "ProofVerificationError": "verify", "VerifiedProof": "verify",
    "CommitmentMismatchError": "verify",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from blindproof.client.codecs import PlainCodec, server_parts
    from blindproof.client.errors import DeploymentDigestError, RemoteError
    from blindproof.client.sdk import BlindClient, Deployment, GenerateSession, RemoteDeployment, WireStats


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"blindproof.client.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'blindproof.client' has no attribute {name!r}")
