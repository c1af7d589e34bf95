"""Probe points for a deployed transformer (design: docs/fingerprint.md, "Transformers").

The server's input is the residual stream, which every block copies forward: no direction at it is
harmless. Two probe points are built instead:

- ``HarmlessExpansion``: the deployed model takes a wider input u = (a, b) and first computes
  h = a + b @ M^T. Directions (-M z, z) are harmless at any magnitude. It tests only M (and that the
  server applies it), so it catches oblivious substitution, not a server that keeps M.
- MLP ports: the deployed model takes an optional extra tensor added to the MLP hidden activation of
  block l, just before its down projection W_down (d_ff -> d). The null space of W_down (dimension
  d_ff - d) is harmless at any magnitude for the genuine model, while a substitute's W_down' turns a
  probe into a residual change alpha * (W_down' - W_down) d that every later block carries to the output.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from blindproof.fingerprint.linalg import null_space
from blindproof.fingerprint.subspace import DenseSpace
from blindproof.models.transformer import Transformer


class HarmlessExpansion(nn.Module):
    """Input map R^(d+r) -> R^d, h = a + b @ M^T for u = (a, b); its null space {(-M z, z)} has dimension r."""

    def __init__(self, d_model: int, extra: int, seed: int = 0) -> None:
        super().__init__()
        if d_model <= 0 or extra <= 0:
            raise ValueError(f"d_model and extra must be positive, got {d_model}, {extra}")
        g = torch.Generator().manual_seed(seed)
        self.d_model, self.extra = d_model, extra
        self.mix = nn.Parameter(torch.randn((d_model, extra), generator=g) / extra ** 0.5, requires_grad=False)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        if u.shape[-1] != self.d_model + self.extra:
            raise ValueError(f"expanded input must have last dimension {self.d_model + self.extra}, got {tuple(u.shape)}")
        a, b = u[..., :self.d_model], u[..., self.d_model:]
        return a + b @ self.mix.T.to(u.dtype)

    def encode(self, h: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Client side: u with forward(u) == h; ``noise`` (..., extra) rides along harmlessly."""
        z = torch.zeros(*h.shape[:-1], self.extra, dtype=h.dtype) if noise is None else noise.to(h.dtype)
        return torch.cat([h - z @ self.mix.T.to(h.dtype), z], dim=-1)

    def space(self) -> DenseSpace:
        """The harmless space per token: orthonormal basis of {(-M z, z)}."""
        w = torch.cat([torch.eye(self.d_model, dtype=torch.float64), self.mix.detach().double()], dim=1)
        return DenseSpace(torch.from_numpy(null_space(w.numpy())), (self.d_model + self.extra,), "global", None,
                          "HarmlessExpansion")


def _block_mlp_down(model: Transformer, layer: int) -> nn.Linear:
    if not isinstance(model, Transformer):
        raise TypeError(f"expected a blindproof Transformer, got {type(model).__name__}")
    if not 0 <= layer < len(model.blocks):
        raise ValueError(f"layer must be in [0, {len(model.blocks)}), got {layer}")
    return model.blocks[layer].mlp.down


def mlp_port_space(model: Transformer, layer: int) -> DenseSpace:
    """Harmless directions (per token, shape (d_ff,)) at the MLP port of block ``layer``: null(W_down)."""
    down = _block_mlp_down(model, layer)
    basis = torch.from_numpy(null_space(down.weight.detach().double().numpy()))
    return DenseSpace(basis, (down.in_features,), "global", None, f"blocks[{layer}].mlp.down null space")


@contextlib.contextmanager
def mlp_port(model: Transformer, layer: int, injection: torch.Tensor) -> Iterator[None]:
    """While active, ``injection`` (broadcastable to (batch, seq, d_ff)) is added before W_down of ``layer``.

    This is the server-side half of the port: a deployed model accepts the tensor with each request.
    """
    down = _block_mlp_down(model, layer)
    if injection.shape[-1] != down.in_features:
        raise ValueError(f"injection must end in d_ff={down.in_features}, got {tuple(injection.shape)}")

    def hook(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return (args[0] + injection.to(args[0].dtype),) + tuple(args[1:])

    handle = down.register_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@dataclass(frozen=True)
class PortCheck:
    """Output change of ``run_blocks`` with an injection at a port, harmless against random."""

    layer: int
    alpha: float
    harmless_change: float
    random_change: float


@torch.no_grad()
def port_change(model: Transformer, h: torch.Tensor, layer: int, alpha: float,
                generator: torch.Generator | None = None, reference: Transformer | None = None) -> PortCheck:
    """Inject alpha * (unit harmless direction per token) at block ``layer``'s MLP port and measure.

    The directions come from ``reference`` (default: the model itself), so passing a substitute as
    ``model`` and the genuine model as ``reference`` shows what a probe does to a substitute.
    """
    gen = generator or torch.Generator().manual_seed(0)
    space = mlp_port_space(reference or model, layer)
    b, t, _ = h.shape
    d = space.sample(b * t, gen).reshape(b, t, -1)
    r = torch.randn(d.shape, generator=gen, dtype=torch.float64)
    r = r / r.norm(dim=-1, keepdim=True)
    base = model.run_blocks(h)
    with mlp_port(model, layer, alpha * d):
        harm = float((model.run_blocks(h) - base).abs().max())
    with mlp_port(model, layer, alpha * r):
        rand = float((model.run_blocks(h) - base).abs().max())
    return PortCheck(layer, float(alpha), harm, rand)
