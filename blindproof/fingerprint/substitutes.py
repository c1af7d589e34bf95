"""Model substitutes a dishonest server might run, and a server that strips probes.

Used by the tests and the detection benchmark; each returns a new model and leaves its input untouched.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn

from blindproof.fingerprint.subspace import HarmlessSpace


def _weights(model: nn.Module) -> list[nn.Parameter]:
    return [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]


@torch.no_grad()
def int8_weights(model: nn.Module) -> nn.Module:
    """Symmetric per-output-channel int8 weight quantization (weights rounded to the int8 grid)."""
    out = copy.deepcopy(model)
    for w in _weights(out):
        flat = w.reshape(w.shape[0], -1)
        scale = flat.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127.0
        flat.copy_(torch.round(flat / scale).clamp(-127, 127) * scale)
    return out


@torch.no_grad()
def magnitude_pruned(model: nn.Module, fraction: float = 0.1) -> nn.Module:
    """Zero the ``fraction`` smallest-magnitude entries of every weight matrix."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    out = copy.deepcopy(model)
    for w in _weights(out):
        k = int(fraction * w.numel())
        if k:
            cut = w.abs().flatten().kthvalue(k).values
            w.masked_fill_(w.abs() <= cut, 0.0)
    return out


class HalfPrecision(nn.Module):
    """Runs a model in float16 (inputs cast down, outputs cast back to float32)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = copy.deepcopy(model).half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.half()).float()


class ProjectingServer(nn.Module):
    """A server that knows the harmless space and removes it from every input before its own model."""

    def __init__(self, model: nn.Module, space: HarmlessSpace) -> None:
        super().__init__()
        self.inner = model
        self.space = space

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(self.space.project_out(x))


def as_query(model: nn.Module, labels_only: bool = False, batch: int | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """Wrap a model as the ``query`` callable the protocol uses (optionally labels only, or per-batch)."""
    model = model.eval()

    @torch.no_grad()
    def query(x: torch.Tensor) -> torch.Tensor:
        step = batch or x.shape[0]
        out = torch.cat([model(x[i:i + step]) for i in range(0, x.shape[0], step)])
        return out.argmax(dim=1) if labels_only else out

    return query


def train_classifier(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float = 1e-2,
                     batch: int = 64, seed: int = 0, frozen: tuple[nn.Parameter, ...] = ()) -> nn.Module:
    """Adam with cross-entropy on (x, y) in place, seeded shuffling; ``frozen`` parameters stay fixed."""
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError("x and y must be non-empty and of equal length")
    frozen_ids = {id(p) for p in frozen}
    params = [p for p in model.parameters() if id(p) not in frozen_ids]
    opt = torch.optim.Adam(params, lr=lr)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=g)
        for s in range(0, x.shape[0], batch):
            i = order[s:s + batch]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i]), y[i]).backward()
            opt.step()
    return model.eval()


def fine_tuned(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int = 1, lr: float = 1e-3,
               seed: int = 1) -> nn.Module:
    """A copy trained ``epochs`` more epochs on (x, y)."""
    return train_classifier(copy.deepcopy(model), x, y, epochs, lr=lr, seed=seed)


def same_first_layer(model: nn.Module, fresh: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int,
                     seed: int = 2) -> nn.Module:
    """``fresh`` (same architecture) with ``model``'s first weight layer copied in and frozen, rest trained."""
    first_src = next(m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)))
    first_dst = next(m for m in fresh.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)))
    if first_src.weight.shape != first_dst.weight.shape:
        raise ValueError("the fresh model's first layer has another shape")
    with torch.no_grad():
        first_dst.load_state_dict(first_src.state_dict())
    frozen = tuple(first_dst.parameters())
    return train_classifier(fresh, x, y, epochs, seed=seed, frozen=frozen)
