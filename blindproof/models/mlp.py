"""A small ReLU multilayer perceptron (the mlp-784-56-10 workload)."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """Linear -> ReLU -> ... -> Linear; `dims` lists every layer width, input first."""

    def __init__(self, dims: tuple[int, ...] = (784, 56, 10)) -> None:
        super().__init__()
        if len(dims) < 2:
            raise ValueError("an MLP needs at least an input and an output width")
        self.dims = tuple(dims)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.dims[0]:
            raise ValueError(f"input must have last dimension {self.dims[0]}, got {tuple(x.shape)}")
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x
