"""Convolution geometry of the integer program's ``conv`` op, in one place for the reference, the relation
check, the proof and the importers.

Layout is channel-last: an input ``(batch, *spatial, C)`` with one or two spatial axes, a weight
``(O, *kernel, C)``, an output ``(batch, *out, O)``. Channel-last keeps every per-channel quantity (the
bias, a per-channel exponent, the rescale after it, a folded batchnorm) on the last axis, as for
``linear``. Output position ``p`` of axis ``i`` reads input position ``q = stride·p + dilation·k −
padding`` for kernel offset ``k``; positions outside ``[0, size)`` are the convolution's zero padding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

_INT64_SAFE = 1 << 62


@dataclass(frozen=True)
class ConvGeometry:
    """Stride, padding and dilation per spatial axis (groups are always 1)."""

    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]

    @classmethod
    def from_params(cls, params: dict, dims: int) -> "ConvGeometry":
        """The geometry an op's params name; ValueError unless every list has ``dims`` entries in range."""
        out = []
        for key, least in (("stride", 1), ("padding", 0), ("dilation", 1)):
            v = params.get(key)
            if not isinstance(v, (list, tuple)) or len(v) != dims or not all(isinstance(e, int) for e in v):
                raise ValueError(f"conv: {key} must list {dims} integers, got {v!r}")
            if any(e < least or e > 1 << 12 for e in v):
                raise ValueError(f"conv: {key} {list(v)} out of range (each in [{least}, 4096])")
            out.append(tuple(int(e) for e in v))
        return cls(*out)

    def to_params(self) -> dict:
        return {"stride": list(self.stride), "padding": list(self.padding), "dilation": list(self.dilation)}

    def out_sizes(self, sizes: Sequence[int], kernel: Sequence[int]) -> tuple[int, ...]:
        """Output positions per axis; ValueError when the kernel does not fit once."""
        out = []
        for n, k, s, p, d in zip(sizes, kernel, self.stride, self.padding, self.dilation):
            span = d * (k - 1) + 1
            if n + 2 * p < span:
                raise ValueError(f"conv: a kernel spanning {span} does not fit {n} positions padded by {p}")
            out.append((n + 2 * p - span) // s + 1)
        return tuple(out)

    def taps(self, axis: int, size: int, kernel: int, out: int) -> np.ndarray:
        """``(out, kernel)`` input positions read on ``axis`` (−1 where the read falls in the padding)."""
        q = (self.stride[axis] * np.arange(out)[:, None] + self.dilation[axis] * np.arange(kernel)[None, :]
             - self.padding[axis])
        return np.where((q >= 0) & (q < size), q, -1)


def conv_shapes(x_shape: Sequence[int], w_shape: Sequence[int], geom: ConvGeometry) -> tuple[int, ...]:
    """The output shape of a conv of ``x_shape`` by ``w_shape``; ValueError on a mismatch."""
    x_shape, w_shape = tuple(x_shape), tuple(w_shape)
    dims = len(geom.stride)
    if len(x_shape) != dims + 2 or len(w_shape) != dims + 2:
        raise ValueError(f"conv: expected input (batch, *{dims} spatial, C) and weight (O, *{dims} kernel, C), "
                         f"got {x_shape} and {w_shape}")
    if x_shape[-1] != w_shape[-1]:
        raise ValueError(f"conv: input has {x_shape[-1]} channels, weight reads {w_shape[-1]}")
    return (x_shape[0], *geom.out_sizes(x_shape[1:-1], w_shape[1:-1]), w_shape[0])


def conv_exact(x: np.ndarray, w: np.ndarray, geom: ConvGeometry) -> np.ndarray:
    """The integer convolution (int64, exact): one channel product per kernel offset, summed."""
    out_shape = conv_shapes(x.shape, w.shape, geom)
    kernel, sizes, outs = w.shape[1:-1], x.shape[1:-1], out_shape[1:-1]
    amax = int(np.abs(x).max()) if x.size else 0
    wmax = int(np.abs(w).max()) if w.size else 0
    if amax * wmax * x.shape[-1] * int(np.prod(kernel)) >= _INT64_SAFE:
        raise ValueError("conv: int64 partial sums could overflow")
    taps = [geom.taps(i, sizes[i], kernel[i], outs[i]) for i in range(len(kernel))]
    acc = np.zeros(out_shape, dtype=np.int64)
    x64 = np.asarray(x, dtype=np.int64)
    w64 = np.asarray(w, dtype=np.int64)
    for k in np.ndindex(*kernel):
        idx = [taps[i][:, k[i]] for i in range(len(kernel))]
        grids = np.meshgrid(*idx, indexing="ij")
        valid = np.logical_and.reduce([g >= 0 for g in grids])
        gathered = x64[(slice(None), *[np.where(valid, g, 0) for g in grids])]  # (B, *out, C)
        gathered = gathered * valid[None, ..., None]
        acc += gathered @ w64[(slice(None), *k)].T
    return acc


def max_pool_exact(x: np.ndarray, kernel: Sequence[int], stride: Sequence[int]) -> np.ndarray:
    """The max over each window of a channel-last ``(batch, *spatial, C)`` tensor (no padding)."""
    kernel, stride = tuple(int(k) for k in kernel), tuple(int(s) for s in stride)
    if len(kernel) != x.ndim - 2 or len(stride) != x.ndim - 2:
        raise ValueError(f"max_pool: kernel {kernel} and stride {stride} need one entry per spatial axis of {x.shape}")
    outs = []
    for n, k, s in zip(x.shape[1:-1], kernel, stride):
        if k < 1 or s < 1 or n < k:
            raise ValueError(f"max_pool: a window of {k} (stride {s}) does not fit {n} positions")
        outs.append((n - k) // s + 1)
    out = None
    for off in np.ndindex(*kernel):
        v = window_reads(x, off, stride, outs)
        out = v.copy() if out is None else np.maximum(out, v)
    return out


def window_reads(x: np.ndarray, offset: Sequence[int], stride: Sequence[int], outs: Sequence[int]) -> np.ndarray:
    """``x[b, s·p + offset, c]`` for every output position ``p`` (``outs`` per axis): what one window
    offset of a pooling reads, channel-last, no padding."""
    idx = tuple(slice(o, o + s * (m - 1) + 1, s) for o, s, m in zip(offset, stride, outs))
    return x[(slice(None), *idx, slice(None))]
