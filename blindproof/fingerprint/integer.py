"""Fingerprints for integer programs (blindproof.quant): exact integer probes, bit-exact harmlessness.

The integer model is the statement a proof attests, so its probes must be integers: x_int + alpha * v
with v an integer null vector of the program's first linear layer. Its accumulator ``W (x + alpha v)``
equals ``W x`` exactly, so every later integer is unchanged bit for bit; only the input's range limits
alpha. The functions take the program's spec and integer weights (duck-typed: ``spec.ops``,
``spec.inputs``, ``spec.tensors``), so this module does not depend on the zk package.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from blindproof.fingerprint.linalg import integer_null_space


def input_null_vectors(spec: Any, weights: dict[str, np.ndarray], reduce: bool = True) -> np.ndarray:
    """Integer null vectors (k, n) of the program's first op, which must be a linear op on its input."""
    if not spec.ops:
        raise ValueError("the integer program has no ops")
    op = spec.ops[0]
    if op.kind != "linear" or op.inputs[0] not in spec.inputs:
        raise ValueError(f"the program's first op must be a linear op on its input, got {op.kind!r} on {op.inputs}")
    w = np.asarray(weights[op.params["weight"]])
    if w.ndim != 2:
        raise ValueError(f"the program's first op reads its input with a weight of shape {w.shape}, not a matrix")
    vecs = integer_null_space(w, reduce=reduce)
    n = w.shape[1]
    if any(abs(x) > 2**62 for v in vecs for x in v):
        raise OverflowError("null vectors exceed int64; use reduce=True")
    return np.array(vecs, dtype=np.int64).reshape(len(vecs), n)


def integer_probes(spec: Any, vectors: np.ndarray, x_int: np.ndarray, count: int, rng: np.random.Generator,
                   max_alpha: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``count`` probes x + alpha * v (rows of x_int drawn at random) with v a random +-1 combination of
    null vectors and alpha the largest integer keeping the probe inside the input's range (capped by
    ``max_alpha``). Returns (probes, index of the reference row used)."""
    if vectors.shape[0] == 0:
        raise ValueError("no integer null vectors: the first layer is injective")
    ts = spec.tensors[spec.inputs[0]]
    x_int = np.asarray(x_int, dtype=np.int64)
    if x_int.ndim != 2 or x_int.shape[1] != vectors.shape[1]:
        raise ValueError(f"x_int must have shape (batch, {vectors.shape[1]}), got {x_int.shape}")
    idx = rng.integers(0, x_int.shape[0], count)
    out = np.empty((count, x_int.shape[1]), dtype=np.int64)
    for j, i in enumerate(idx):
        signs = rng.choice(np.array([-1, 0, 1]), size=vectors.shape[0])
        if not signs.any():
            signs[rng.integers(0, len(signs))] = 1
        v = signs @ vectors
        a = headroom(x_int[i], v, ts.lo, ts.hi)
        if max_alpha is not None:
            a = min(a, max_alpha)
        out[j] = x_int[i] + a * v
    return out, idx


def headroom(x: np.ndarray, v: np.ndarray, lo: int, hi: int) -> int:
    """Largest integer alpha >= 0 with lo <= x + alpha * v <= hi."""
    up, down = v > 0, v < 0
    limits = [np.floor_divide(hi - x[up], v[up]), np.floor_divide(x[down] - lo, -v[down])]
    vals = np.concatenate([lim for lim in limits if lim.size]) if any(lim.size for lim in limits) else np.array([2**31])
    return max(0, int(vals.min()))
