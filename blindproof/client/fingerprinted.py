"""Deployments with a keyed harmless input expansion, through a client
(``blindproof.fingerprint.blind`` builds the expansion and checks the answers).
"""

from __future__ import annotations

import json

from blindproof.ee import EEKey, Split, Tier
from blindproof.fingerprint.blind import DEFAULT_ALPHA, DEFAULT_EXTRA, expanded_deployment, ExpansionCodec
from blindproof.models.transformer import Transformer


def deploy(client: "BlindClient", model: Transformer, key: EEKey, tier: Tier = "rotate", split: Split = Split(),
           extra: int = DEFAULT_EXTRA, alpha: float = DEFAULT_ALPHA, label: str = "") -> "Deployment":
    """Deploy ``model`` under ``key`` with a keyed harmless expansion; the result works with
    ``client.infer``/``client.generate`` (noise on every request) and ``client.check_identity``."""
    from blindproof.client.codecs import server_parts
    from blindproof.client.errors import DeploymentDigestError
    from blindproof.client.sdk import Deployment
    from blindproof.models.serialize import to_bytes

    server, codec = expanded_deployment(model, key, tier, split, extra, alpha)
    blob, digest = to_bytes(server, server_parts(model, split))
    reply = client.upload(blob, digest, key_id=key.key_id, label=label)
    if reply.deployment.digest != digest:
        raise DeploymentDigestError(f"server computed digest {reply.deployment.digest}, client {digest}")
    return Deployment(reply.deployment.deployment_id, digest, key.key_id, codec, tier, reply.existed)


def attach(client: "BlindClient", deployment_id: str, model: Transformer, key: EEKey, tier: Tier = "rotate",
           split: Split = Split(), alpha: float = DEFAULT_ALPHA) -> "Deployment":
    """Reconnect to an expanded deployment; its width r is read from the server's public description."""
    from blindproof.client.sdk import Deployment

    dep = client.attach(deployment_id, model, key, tier, split)
    cfg = json.loads(client_description(client, deployment_id)).get("config", {})
    extra = cfg.get("input_extra", 0)
    if not extra:
        raise ValueError(f"deployment {deployment_id} has no harmless input expansion")
    codec = ExpansionCodec(dep.codec, int(extra), alpha)
    return Deployment(dep.deployment_id, dep.digest, dep.key_id, codec, tier, True)


def client_description(client: "BlindClient", deployment_id: str) -> str:
    """The public model description (JSON) the server lists for a deployment."""
    for d in client.list_deployments():
        if d.deployment_id == deployment_id:
            return d.model_json
    raise ValueError(f"unknown deployment {deployment_id}")
