"""Dishonest servers of an expanded deployment, for measuring what the identity check catches.

- ``RoutingServer``: answers what looks like a probe with the genuine model and everything else with a
  cheaper copy, deciding per session from the first request (what it can see: ``distinguish``).
- ``ProjectingServer``: computes the first-layer states exactly (it holds ``E'``, so it removes the
  harmless noise) and runs a cheaper copy of the blocks on them.
- A copy that keeps ``E'`` and quantizes the rest is ``substitutes.int8_weights`` with ``expand``
  restored (``first_layer_exact``).
"""

from __future__ import annotations

from typing import Callable

import torch

from blindproof.fingerprint.distinguish import FEATURES, Request, ServerObserver
from blindproof.fingerprint.substitutes import int8_weights
from blindproof.models.transformer import KVCache, Transformer

Detector = Callable[[torch.Tensor], torch.Tensor]  # feature rows -> P(probe)


def first_layer_exact(server: Transformer) -> Transformer:
    """int8 rounding of every weight except the expansion, which stays exactly the deployed one."""
    keep = int8_weights(server)
    keep.expand.weight.data.copy_(server.expand.weight.data)
    return keep


class ProjectingServer(torch.nn.Module):
    """Strips the harmless noise (``X E'^T`` in float64, so the noise cancels exactly) and runs
    ``blocks`` (a server model whose expansion is ignored) on the clean first-layer states."""

    def __init__(self, genuine: Transformer, blocks: Transformer) -> None:
        super().__init__()
        self.w = genuine.expand.weight.detach().to(torch.float64)
        self.blocks = blocks
        self.cfg = genuine.cfg

    @torch.no_grad()
    def run_blocks(self, x: torch.Tensor, start: int = 0, cache: KVCache | None = None) -> torch.Tensor:
        h = (x.to(torch.float64) @ self.w.T).to(x.dtype)
        rope = (self.blocks.rope_cos, self.blocks.rope_sin) if self.blocks.cfg.position == "rope" else None
        for i, blk in enumerate(self.blocks.blocks):
            h = blk(h, start, rope, cache, i)
        return h


class RoutingServer:
    """Routes each session to ``copy`` when ``detector`` scores its first request as among the least
    probe-like ``share`` of the sessions it has seen so far (a running quantile of its scores; the
    first ``warmup`` sessions go to the genuine model), else to ``genuine``. So it cheats a chosen
    fraction of its users, the least suspicious ones. Keeps a per-session KV cache for the chosen model.

    ``run_blocks(x, start, cache)`` is the server model interface: a new ``cache`` at start 0 opens a
    session; ``cache=None`` is a one-shot request (batched probes). ``routed`` counts decisions by the
    truth ``label`` the caller sets before each session (for measurement only; the server never uses it).
    """

    def __init__(self, genuine, copy_model, detector: Detector, share: float, expand_weight: torch.Tensor,
                 drop: tuple[str, ...] = ("n_requests", "output_norm"), warmup: int = 20) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be in [0, 1], got {share}")
        self.genuine, self.copy, self.detector, self.share, self.warmup = genuine, copy_model, detector, share, warmup
        self.scores: list[float] = []
        self.cfg = genuine.cfg
        self.observer = ServerObserver(expand_weight)
        self.keep = [i for i, f in enumerate(FEATURES) if f not in drop]
        self.sessions: dict[int, tuple[object, KVCache]] = {}
        self.label = 0
        self.routed = {(lab, dest): 0 for lab in (0, 1) for dest in ("genuine", "copy")}

    def _route(self, x: torch.Tensor, start: int):
        rows = torch.tensor(self.observer.prompt(Request(x, start)), dtype=torch.float64)
        score = float(self.detector(rows[:, self.keep]).max())
        seen = torch.tensor(self.scores, dtype=torch.float64)
        probe = len(self.scores) < self.warmup or score > float(torch.quantile(seen, self.share))
        self.scores.append(score)
        dest = "genuine" if probe else "copy"
        self.routed[(self.label, dest)] += 1
        return self.genuine if probe else self.copy

    @torch.no_grad()
    def run_blocks(self, x: torch.Tensor, start: int = 0, cache: KVCache | None = None) -> torch.Tensor:
        if cache is None:
            return self._route(x, start).run_blocks(x, start, None)
        if id(cache) not in self.sessions or start == 0:
            model = self._route(x, start)
            self.sessions[id(cache)] = (model, KVCache(self.cfg.n_layers))
        else:
            self.observer.record(Request(x, start))
        model, own = self.sessions[id(cache)]
        return model.run_blocks(x, start, own)

    def share_to_copy(self, label: int = 0) -> float:
        """Fraction of sessions with this truth label that the copy answered."""
        total = self.routed[(label, "genuine")] + self.routed[(label, "copy")]
        return self.routed[(label, "copy")] / total if total else 0.0
