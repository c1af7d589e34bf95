"""Linear keys and the random matrices they are drawn from.

A key is an invertible matrix M acting on row vectors from the right (x -> x M), as in docs/ee.md.
Two representations share one interface: `PermKey` (a permutation times a diagonal, applied by
indexing so it is exact and cheap at any width) and `DenseKey` (any invertible matrix, float64).

    apply(x)   = x M        on the last dimension   (activations; a weight's output side)
    unapply(y) = y M^-1     on the last dimension
    pull(W)    = M^-1 W     on the first dimension  (a weight's input side, W in math form (in, out))

All arithmetic is float64 on the input's device; callers cast the results to the model's dtype.
"""

from __future__ import annotations

import math

import numpy as np
import torch

F64 = torch.float64


class PermKey:
    """M = P diag(scale): (x M)[j] = x[perm[j]] * scale[j]."""

    def __init__(self, perm: np.ndarray, scale: np.ndarray | None = None) -> None:
        perm = np.asarray(perm, dtype=np.int64)
        if perm.ndim != 1 or not np.array_equal(np.sort(perm), np.arange(perm.size)):
            raise ValueError("perm must be a permutation of 0..n-1")
        if scale is not None and (np.shape(scale) != perm.shape or not np.all(np.asarray(scale) != 0)):
            raise ValueError("scale must be a nonzero vector of the permutation's length")
        self.n = perm.size
        self.perm = torch.from_numpy(perm)
        self.inv = torch.empty_like(self.perm)
        self.inv[self.perm] = torch.arange(self.n)
        self.scale = None if scale is None else torch.as_tensor(np.asarray(scale, dtype=np.float64))

    def _check(self, x: torch.Tensor, dim: int) -> None:
        if x.shape[dim] != self.n:
            raise ValueError(f"key of width {self.n} applied to a tensor of shape {tuple(x.shape)}")

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, -1)
        y = x[..., self.perm.to(x.device)]
        return y if self.scale is None else y * self.scale.to(device=y.device, dtype=y.dtype)

    def unapply(self, y: torch.Tensor) -> torch.Tensor:
        self._check(y, -1)
        if self.scale is not None:
            y = y / self.scale.to(device=y.device, dtype=y.dtype)
        return y[..., self.inv.to(y.device)]

    def pull(self, w: torch.Tensor) -> torch.Tensor:
        self._check(w, 0)
        w = w[self.perm.to(w.device)]
        if self.scale is None:
            return w
        return w / self.scale.to(device=w.device, dtype=w.dtype).reshape(-1, *([1] * (w.dim() - 1)))

    def dense(self) -> torch.Tensor:
        """The matrix M (for tests and analysis)."""
        m = torch.zeros(self.n, self.n, dtype=F64)
        m[self.perm, torch.arange(self.n)] = 1.0 if self.scale is None else self.scale
        return m


class DenseKey:
    """Any invertible M with its inverse, both float64."""

    def __init__(self, m: torch.Tensor, m_inv: torch.Tensor | None = None) -> None:
        m = torch.as_tensor(m, dtype=F64)
        if m.dim() != 2 or m.shape[0] != m.shape[1]:
            raise ValueError(f"a dense key must be a square matrix, got shape {tuple(m.shape)}")
        self.n = m.shape[0]
        self.m = m
        self.m_inv = torch.linalg.inv(m) if m_inv is None else torch.as_tensor(m_inv, dtype=F64)

    def _check(self, x: torch.Tensor, dim: int) -> None:
        if x.shape[dim] != self.n:
            raise ValueError(f"key of width {self.n} applied to a tensor of shape {tuple(x.shape)}")

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, -1)
        return x @ self.m.to(device=x.device, dtype=x.dtype)

    def unapply(self, y: torch.Tensor) -> torch.Tensor:
        self._check(y, -1)
        return y @ self.m_inv.to(device=y.device, dtype=y.dtype)

    def pull(self, w: torch.Tensor) -> torch.Tensor:
        self._check(w, 0)
        return self.m_inv.to(device=w.device, dtype=w.dtype) @ w

    def dense(self) -> torch.Tensor:
        return self.m


LinearKey = PermKey | DenseKey


# --- random matrices ---------------------------------------------------------------------------

def haar_orthogonal(rng: np.random.Generator, n: int) -> np.ndarray:
    """A Haar-random orthogonal matrix (QR of a Gaussian with the sign fix)."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def orthogonal_fixing_ones(rng: np.random.Generator, n: int) -> np.ndarray:
    """A random orthogonal Q with Q 1 = 1, so it commutes with LayerNorm's mean subtraction.

    Q = H diag(1, O) H, where the Householder reflection H maps e1 to 1/sqrt(n) and O is Haar on the
    orthogonal complement of the all-ones vector.
    """
    u = np.full(n, 1.0 / math.sqrt(n))
    v = np.zeros(n)
    v[0] = 1.0
    v -= u
    h = np.eye(n) - 2.0 * np.outer(v, v) / (v @ v)
    inner = np.eye(n)
    inner[1:, 1:] = haar_orthogonal(rng, n - 1)
    return h @ inner @ h


def log_uniform(rng: np.random.Generator, n: int, spread: float = 2.0) -> np.ndarray:
    """Positive scales in [1/spread, spread], log-uniform (keeps keys well conditioned)."""
    return np.exp(rng.uniform(-math.log(spread), math.log(spread), n))


def random_invertible(rng: np.random.Generator, n: int, spread: float = 2.0) -> np.ndarray:
    """O1 diag(s) O2 with Haar O1, O2 and s in [1/spread, spread]: condition number <= spread**2."""
    return haar_orthogonal(rng, n) @ np.diag(log_uniform(rng, n, spread)) @ haar_orthogonal(rng, n)


def rope_compatible(rng: np.random.Generator, head_dim: int, spread: float = 2.0) -> np.ndarray:
    """A scaled 2x2 rotation on every RoPE frequency pair (i, i + head_dim/2).

    Rotations of one plane commute, so x B R_t = x R_t B for every position rotation R_t; the matching
    key side B^-T is the same rotation with the inverse scale.
    """
    if head_dim % 2:
        raise ValueError("RoPE-compatible keys need an even head dimension")
    half = head_dim // 2
    ang = rng.uniform(0.0, 2.0 * math.pi, half)
    s = log_uniform(rng, half, spread)
    b = np.zeros((head_dim, head_dim))
    i = np.arange(half)
    b[i, i] = s * np.cos(ang)
    b[i, i + half] = s * np.sin(ang)
    b[i + half, i] = -s * np.sin(ang)
    b[i + half, i + half] = s * np.cos(ang)
    return b


def block_key(layout: list[int], blocks: list[np.ndarray]) -> DenseKey:
    """Block matrix sending old block layout[j] to new block j through blocks[j].

    (x M)_block j = x_block layout[j] @ blocks[j]: a block permutation with a per-block key.
    """
    k = blocks[0].shape[0]
    n = len(layout) * k
    m = np.zeros((n, n))
    m_inv = np.zeros((n, n))
    for j, (src, blk) in enumerate(zip(layout, blocks)):
        m[src * k:(src + 1) * k, j * k:(j + 1) * k] = blk
        m_inv[j * k:(j + 1) * k, src * k:(src + 1) * k] = np.linalg.inv(blk)
    return DenseKey(torch.from_numpy(m), torch.from_numpy(m_inv))
