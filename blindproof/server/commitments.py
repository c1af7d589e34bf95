"""The model commitment of an integer deployment, as the server computes it.

The server commits to the integer model it holds (its weights and the owner's commitment key, both in
the deployed file) with the parameters its prover uses, and returns the commitment in the deploy
reply. The client computes the same commitment from its own copy and refuses the deployment on any
difference, so both sides agree on what every later proof must be about.
"""

from __future__ import annotations

import threading
from collections import OrderedDict


class CommitmentCache:
    """Serialized model commitments by deployment id (computing one takes a moment on large models)."""

    def __init__(self, capacity: int = 64) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, deployment_id: str, loaded) -> bytes:
        """The commitment bytes of a loaded integer deployment (``LoadedIntegerModel``)."""
        with self._lock:
            if deployment_id in self._items:
                self._items.move_to_end(deployment_id)
                return self._items[deployment_id]
        data = commitment_bytes(loaded)
        with self._lock:
            self._items[deployment_id] = data
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return data

    def drop(self, deployment_id: str) -> None:
        """Forget a deleted deployment."""
        with self._lock:
            self._items.pop(deployment_id, None)


def commitment_bytes(loaded) -> bytes:
    """Commit to a loaded integer deployment exactly as the prover workers do."""
    from blindproof.zk.proof.commitment import commit_model
    from blindproof.zk.proof.keys import CommitmentKey

    qm = loaded.quantized
    com, _ = commit_model(qm.spec, qm.weights, CommitmentKey(loaded.commitment_key))
    return com.to_bytes()
