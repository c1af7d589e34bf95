"""Client-side helpers for the command line: model sources, connections and deployment records.

A deployment record is a small JSON file the client writes after ``deploy`` so later commands can reach
the deployment again. It holds public data only (ids, tier, split, where the key file is); the key
itself stays in its 0600 key file.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from torch import nn

from blindproof.client.sdk import BlindClient, Deployment
from blindproof.ee import Split, load_key

RECORD_FORMAT = "blindproof-deployment/1"


def load_local_model(source: str, seed: int = 0) -> nn.Module:
    """``default`` (the embedded model), a workload name, a local Hugging Face folder (config.json +
    safetensors), or a model file written by ``save_model``."""
    if source == "default":
        from blindproof.models.default import load_default_model
        return load_default_model()
    path = Path(source)
    if path.is_dir():
        from blindproof.models.hf_folder import load_hf_folder
        return load_hf_folder(path)
    if path.suffix == ".safetensors" or path.exists():
        from blindproof.models.serialize import load_model
        loaded = load_model(path)
        if loaded.description.get("kind") == "transformer" and \
                loaded.description["parts"] != ["embed", "blocks", "head"]:
            raise ValueError(f"{source} holds only the parts {loaded.description['parts']}; the client needs "
                             "the whole model")
        return loaded.model
    from blindproof.models.workloads import WORKLOADS, get_workload
    if source in WORKLOADS:
        return get_workload(source).build(seed)
    raise ValueError(f"unknown model {source!r}: use 'default', a workload ({', '.join(WORKLOADS)}), "
                     "a Hugging Face folder or a .safetensors model file")


def connect(args: argparse.Namespace, server: str | None = None) -> BlindClient:
    """A BlindClient configured from the connection arguments."""
    token = None
    if args.token_file:
        from blindproof.client.cli_args import check_private
        check_private(args.token_file, "token file")
        token = args.token_file.read_text().strip()
    token = token or os.environ.get("BLINDPROOF_TOKEN")
    return BlindClient(server or args.server, root_certificates=args.tls_ca, token=token or None,
                       timeout=args.timeout, server_name=args.server_name)


@dataclass(frozen=True)
class DeploymentRecord:
    """What the client remembers about a deployment (no secrets)."""

    deployment_id: str
    digest: str
    key_id: str
    tier: str | None
    client_embeds: bool
    client_decodes: bool
    model: str
    seed: int
    key_file: str | None
    server: str
    format: str = RECORD_FORMAT
    expansion: int = 0  # width of a harmless input expansion (blindproof.fingerprint.blind); 0: none
    alpha: float = 0.0  # norm of the harmless noise added to every request of an expanded deployment
    mode: str = "float"  # "integer": the server runs (and proves) the integer program
    commitment: str = ""  # integer: the model commitment the client computed (base64), proofs check against it
    commitment_key_file: str | None = None  # integer: 0600 file with the commitment key (rebuilds the model file)
    calibration_file: str | None = None  # integer: .npy of the calibration data it was quantized on (None: default)

    def model_commitment(self):
        """The client's own copy of the model commitment (integer deployments)."""
        import base64
        from blindproof.zk.proof.commitment import ModelCommitment
        if self.mode != "integer" or not self.commitment:
            raise ValueError("this deployment record has no model commitment (deploy with --integer)")
        return ModelCommitment.from_bytes(base64.b64decode(self.commitment))

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "DeploymentRecord":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read deployment record {path}: {exc}") from exc
        if data.get("format") != RECORD_FORMAT:
            raise ValueError(f"{path} is not a deployment record ({RECORD_FORMAT})")
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def attach(self, client: BlindClient) -> Deployment:
        """The deployment, with its codec rebuilt from the local model and key file."""
        model = load_local_model(self.model, self.seed)
        key = load_key(self.key_file) if self.key_file else None
        split = Split(client_embeds=self.client_embeds, client_decodes=self.client_decodes)
        if self.mode == "integer":
            from blindproof.zk.proof.keys import CommitmentKey
            if not self.commitment_key_file:
                raise ValueError("an integer deployment record needs its commitment key file")
            ckey = CommitmentKey.load(self.commitment_key_file).secret
            calibration = None
            if self.calibration_file:
                import numpy as np
                import torch
                calibration = torch.from_numpy(np.load(self.calibration_file, allow_pickle=False))
            return client.attach_integer(self.deployment_id, model, key, self.tier or "rotate", ckey,
                                         self.model_commitment(), calibration)
        if self.expansion:
            from blindproof.client.fingerprinted import attach
            if key is None:
                raise ValueError("an expanded deployment needs its key file")
            return attach(client, self.deployment_id, model, key, self.tier or "rotate", split, self.alpha)
        return client.attach(self.deployment_id, model, key, self.tier or "rotate", split)

