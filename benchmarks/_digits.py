"""The MLP 784-56-10 trained on scikit-learn's digits (upsampled to 28×28), shared by benchmarks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

N_TRAIN = 1297  # the rest of the 1797 digits is held out


def digits_mlp(quick: bool) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """(trained model in eval mode, inputs (1797, 784) in a fixed shuffled order, labels)."""
    from sklearn.datasets import load_digits

    from blindproof.models.mlp import MLP

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False).reshape(len(x), 784)
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[perm], y[perm]
    torch.manual_seed(0)
    model = MLP((784, 56, 10))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(5 if quick else 30):
        for i in range(0, N_TRAIN, 64):
            opt.zero_grad()
            F.cross_entropy(model(x[i:i + 64][: N_TRAIN - i]), y[i:i + 64][: N_TRAIN - i]).backward()
            opt.step()
    return model.eval(), x, y
