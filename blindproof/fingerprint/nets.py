"""Small vision front-ends used to exercise fingerprints: ViT-style patch embedding and a CNN.

They are plain ``nn.Sequential`` stacks so that the subspace analysis can walk them layer by layer;
the two small modules below are the only pieces torch does not already have.
"""

from __future__ import annotations

import torch
from torch import nn


class PatchTokens(nn.Module):
    """(batch, channels, h, w) -> (batch, h*w, channels): a conv feature map read as a token sequence."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"PatchTokens expects (batch, channels, h, w), got {tuple(x.shape)}")
        return x.flatten(2).transpose(1, 2)


class AddPosition(nn.Module):
    """Adds a learned position embedding of shape (tokens, dim)."""

    def __init__(self, tokens: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(tokens, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != self.weight.shape:
            raise ValueError(f"AddPosition expects (..., {self.weight.shape[0]}, {self.weight.shape[1]}), "
                             f"got {tuple(x.shape)}")
        return x + self.weight


def patch_embed_net(image: int = 8, patch: int = 4, channels: int = 1, dim: int = 12, hidden: int = 32,
                    classes: int = 10) -> nn.Sequential:
    """ViT-style front: non-overlapping patch conv -> tokens -> + position -> LayerNorm -> MLP head.

    With ``channels * patch**2 > dim`` each patch has a null space; LayerNorm adds one mean direction per
    token on top of it.
    """
    if image % patch:
        raise ValueError(f"image size {image} must be a multiple of the patch size {patch}")
    tokens = (image // patch) ** 2
    return nn.Sequential(
        nn.Conv2d(channels, dim, kernel_size=patch, stride=patch),
        PatchTokens(),
        AddPosition(tokens, dim),
        nn.LayerNorm(dim),
        nn.Flatten(1),
        nn.Linear(tokens * dim, hidden),
        nn.ReLU(),
        nn.Linear(hidden, classes),
    )


def small_cnn(channels: int = 1, width: int = 3, classes: int = 10, image: int = 8) -> nn.Sequential:
    """A strided-stem CNN: conv(k4, s2) -> ReLU -> conv(k3) -> ReLU -> max-pool -> linear."""
    side = image // 2
    return nn.Sequential(
        nn.Conv2d(channels, width, kernel_size=4, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, 16, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(1),
        nn.Linear(16 * (side // 2) ** 2, classes),
    )
