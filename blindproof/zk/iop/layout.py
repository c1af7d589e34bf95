"""How a tensor is committed and read as a multilinear extension: names of derived
tensors, each dimension zero-padded to a power of two, row-major, signed integers as
field elements; public indicators and broadcasts (conventions in
``blindproof.zk.ops.base``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from blindproof.zk.field import babybear as F
from blindproof.zk.iop import mle


def witness_name(output: str, witness: str) -> str:
    """Name of an op witness as the reference trace records it."""
    return f"{output}/{witness}"


def weight_name(name: str) -> str:
    """Name of a committed weight tensor."""
    return f"w:{name}"


def aux_name(output: str, what: str) -> str:
    """Name of an auxiliary column an op commits for its gadgets."""
    return f"{output}~{what}"


def dim_vars(d: int) -> int:
    """Number of MLE variables of one dimension of size ``d`` (padded to a power of two)."""
    if d < 1:
        raise ValueError(f"tensor dimensions must be ≥ 1, got {d}")
    return (d - 1).bit_length()


def padded_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """Every dimension rounded up to a power of two."""
    return tuple(1 << dim_vars(int(d)) for d in shape)


def n_vars(shape: Sequence[int]) -> int:
    """Number of MLE variables of a tensor of ``shape`` in canonical layout."""
    return sum(dim_vars(int(d)) for d in shape)


def canonical(values: np.ndarray, shape: Sequence[int] | None = None) -> np.ndarray:
    """Canonical table: zero-pad every dimension to a power of two, flatten row-major, map to the field.

    Accepts signed integers (int64) or field elements (uint32, taken as they are)."""
    v = np.asarray(values)
    if shape is not None and tuple(v.shape) != tuple(shape):
        raise ValueError(f"canonical: values have shape {v.shape}, expected {tuple(shape)}")
    if v.dtype.kind not in "iu":
        raise TypeError(f"canonical: expected an integer array, got {v.dtype}")
    fv = v if v.dtype == np.uint32 else F.from_signed(v)
    pad = padded_shape(v.shape)
    if pad == v.shape:
        return np.ascontiguousarray(fv).reshape(-1)
    out = np.zeros(pad, dtype=np.uint32)
    out[tuple(slice(0, d) for d in v.shape)] = fv
    return out.reshape(-1)


def split_point(point: np.ndarray, shape: Sequence[int]) -> list[np.ndarray]:
    """Split a point of a tensor into its per-dimension sub-points (MSB-first order)."""
    out, k = [], 0
    for d in shape:
        m = dim_vars(int(d))
        out.append(point[k:k + m])
        k += m
    if k != point.shape[0]:
        raise ValueError(f"point has {point.shape[0]} coordinates, shape {tuple(shape)} needs {k}")
    return out


def prefix_ones_eval(d: int, point: np.ndarray) -> np.ndarray:
    """MLE of ``[1]*d + [0]*(2^k − d)`` at a ``k``-coordinate point: Σ_{i<d} eq(point, i)."""
    k = point.shape[0]
    if d == 1 << k:
        return F.eone()
    # walk the bits of d (MSB first): the entries i < d are, for each set bit j of d, the block of
    # indices sharing d's higher bits with bit j = 0.
    total, prefix = F.ezero(), F.eone()
    one = F.eone()
    for j in range(k):
        bit = (d >> (k - 1 - j)) & 1
        r = point[j]
        if bit:
            total = F.eadd(total, F.emul(prefix, F.esub(one, r)))
            prefix = F.emul(prefix, r)
        else:
            prefix = F.emul(prefix, F.esub(one, r))
    return total


def indicator_eval(shape: Sequence[int], point: np.ndarray) -> np.ndarray:
    """MLE of the real-entries indicator of ``shape`` (1 on real entries, 0 on padding) at ``point``."""
    out = F.eone()
    for d, sub in zip(shape, split_point(point, shape)):
        out = F.emul(out, prefix_ones_eval(int(d), sub))
    return out


def indicator_table(shape: Sequence[int]) -> np.ndarray:
    """The real-entries indicator as a canonical base table."""
    return canonical(np.ones(tuple(shape), dtype=np.int64))


def public_eval(values: np.ndarray, point: np.ndarray) -> np.ndarray:
    """MLE of a public integer tensor (canonical layout) at an extension point -> (4,)."""
    return mle.evaluate(canonical(values), point)


def dim_index_weights(d: int, k: int) -> np.ndarray:
    """Base table of length 2^k with ``t[i] = i`` for ``i < d`` and 0 on padding."""
    t = np.zeros(1 << k, dtype=np.uint32)
    t[:d] = np.arange(d, dtype=np.uint32)
    return t


def broadcast_table(vec: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Canonical table of ``vec`` (length ``shape[-1]``) broadcast over the leading dimensions,
    INCLUDING their padding (so its MLE, :func:`broadcast_eval`, ignores the leading variables)."""
    vec = np.asarray(vec)
    if vec.shape != (shape[-1],):
        raise ValueError(f"broadcast_table: vector of shape {vec.shape}, last dimension {shape[-1]}")
    pad = padded_shape(shape)
    row = canonical(vec)
    return np.ascontiguousarray(np.broadcast_to(row, (int(np.prod(pad[:-1], dtype=np.int64)), pad[-1]))).reshape(-1)


def broadcast_eval(vec: np.ndarray, shape: Sequence[int], point: np.ndarray) -> np.ndarray:
    """MLE of :func:`broadcast_table` at ``point``: the vector's MLE at the last-axis coordinates."""
    k = dim_vars(int(shape[-1]))
    return public_eval(np.asarray(vec), point[point.shape[0] - k:])
