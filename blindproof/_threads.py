"""Pin numeric libraries to a fixed number of threads.

Threaded BLAS/numba/torch numerics are unreliable on some hosts, so every entry point pins them to
one thread unless ``BLINDPROOF_THREADS`` says otherwise. This must run before numpy/torch/numba
spin up their pools, which is why ``blindproof/__init__`` calls it first.
"""

from __future__ import annotations

import os

_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
         "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def configured_threads() -> int:
    """Thread count from ``BLINDPROOF_THREADS`` (default 1)."""
    raw = os.environ.get("BLINDPROOF_THREADS", "1")
    try:
        n = int(raw)
    except ValueError as exc:
        raise ValueError(f"BLINDPROOF_THREADS must be a positive integer, got {raw!r}") from exc
    if n < 1:
        raise ValueError(f"BLINDPROOF_THREADS must be a positive integer, got {raw!r}")
    return n


def pin_threads(n: int | None = None) -> int:
    """Set environment limits for libraries not yet loaded and torch's pools if it is loaded."""
    n = configured_threads() if n is None else n
    for var in _VARS:
        os.environ[var] = str(n)
    import sys
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.set_num_threads(n)
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError:  # already set once in this process
            pass
    return n
