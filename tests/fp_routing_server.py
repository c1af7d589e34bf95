"""`blindproof serve` with a dishonest executor: a routing server for the identity-check CLI tests.

Run as ``python tests/fp_routing_server.py serve ...`` (``ServerProcess(program=[python, this file])``).
For every deployment with a harmless input expansion it keeps an int8 copy of the deployed weights
(expansion included, ``fingerprint.substitutes.int8_weights``) and answers

- a stateless request of several rows (the shape of ``--legacy-probes``' fixed batches, which a
  client's own traffic never has) with the genuine model;
- every generation session, decided at its first request, with the copy with probability
  ``ROUTING_SHARE`` (default 0.5) and the genuine model otherwise, by a seeded coin
  (``ROUTING_SEED``): against probe sessions shaped like traffic the distinguishers of
  ``fingerprint.distinguish`` are at chance (docs/fingerprint.md, section 7), so a router's choice is
  as good as a coin there, while this one still recognises the fixed batches exactly;
- other stateless requests by the same coin.

Each decision is appended to ``ROUTING_LOG`` (when set) as ``<kind> <rows> <copy|genuine>``.
Deployments without an expansion are served honestly.
"""

from __future__ import annotations

import dataclasses
import os
import random
import sys

import blindproof.server.executor as executor
import blindproof.server.service as service
from blindproof.cli import main
from blindproof.fingerprint.substitutes import int8_weights

SHARE = float(os.environ.get("ROUTING_SHARE", "0.5"))
RNG = random.Random(int(os.environ.get("ROUTING_SEED", "0")))
LOG = os.environ.get("ROUTING_LOG")
GENUINE = executor.forward
_copies: dict[str, object] = {}
_sessions: dict[int, bool] = {}  # id of a session's KV cache -> answered by the copy


def _log(kind: str, rows: int, copy: bool) -> None:
    if LOG:
        with open(LOG, "a") as f:
            f.write(f"{kind} {rows} {'copy' if copy else 'genuine'}\n")


def routed_forward(loaded, x, start=0, cache=None):
    if not loaded.description.get("config", {}).get("input_extra"):
        return GENUINE(loaded, x, start, cache)
    if cache is None:
        copy = x.shape[0] == 1 and RNG.random() < SHARE
        _log("infer", int(x.shape[0]), copy)
    else:
        if cache.length == 0:  # a new session: decide once, keep the choice for its decoding steps
            _sessions[id(cache)] = RNG.random() < SHARE
            _log("session", int(x.shape[0]), _sessions[id(cache)])
        copy = _sessions.get(id(cache), False)
    if copy:
        if loaded.digest not in _copies:
            _copies[loaded.digest] = dataclasses.replace(loaded, model=int8_weights(loaded.model))
        loaded = _copies[loaded.digest]
    return GENUINE(loaded, x, start, cache)


executor.forward = routed_forward  # stateless requests (the batcher calls the module's forward)
service.forward = routed_forward  # generation sessions

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
