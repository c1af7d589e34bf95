"""Where the prover's heavy vector work runs: the numba/numpy CPU path, or torch (``cuda``).

Two kernels have a torch form that gives bit-identical results to the CPU path:

* :func:`encode_rows` — Reed–Solomon encoding of commitment rows (the decimation-in-frequency NTT of
  :mod:`blindproof.zk.commit.reed_solomon`, stage by stage over the whole (rows, n) matrix in int64 tensors: a product
  of two residues below p < 2^31 is below 2^62 and fits, so no uint32 multiply is needed on cuda);
* :func:`matmul_f64` — the integer matmuls of the trace (:func:`blindproof.quant.reference.
  _exact_matmul`) through float64, which is exact while every partial sum stays below 2^53 (the caller
  decides that from the operands' bounds; cuda has no int64 matmul).

The choice is ``auto | cpu | cuda[:N] | torch-cpu``, from :func:`set_prover_device` or the environment
variable ``BLINDPROOF_PROVER_DEVICE`` (default ``auto``: cuda when ``torch.cuda.is_available()``, else the
CPU path). ``cuda`` on a host without a usable CUDA device raises :class:`DeviceError`; it never falls
back silently. ``torch-cpu`` runs the torch kernels on the CPU: slower than the numba path, it exists to
test the torch code on machines without a GPU.

Only large inputs go to torch (below the thresholds the transfers cost more than the work). Torch is
imported on the first call above a threshold, so small proofs never load it; on Linux without the
NVIDIA driver ``auto`` resolves to the CPU path without importing torch at all.
"""

from __future__ import annotations

import logging
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Callable, Iterator, TypeVar

import numpy as np

ENV = "BLINDPROOF_PROVER_DEVICE"
CHOICES = ("auto", "cpu", "cuda", "torch-cpu")

# Below these sizes the CPU path is kept. Chosen from transfer and launch costs, not tuned on a GPU:
# an encode of 2^18 output entries is ~1 MB each way and ~2 ms of numba work; a matmul of 2^24
# multiply-adds is a few ms of single-thread float64 BLAS.
MIN_RS_ELEMENTS = 1 << 18
MIN_MATMUL_MACS = 1 << 24
# Rows of an encode are sent in chunks of at most this many codeword entries (512 MiB as int64),
# which bounds the device memory one call needs (about 3x the chunk).
CHUNK_ELEMENTS = 1 << 26


class DeviceError(RuntimeError):
    """The prover device asked for is not usable here (e.g. ``cuda`` without a CUDA device)."""


@dataclass(frozen=True)
class Backend:
    """The current choice and its thresholds; ``device`` is resolved on first use."""

    choice: str = "auto"
    min_rs_elements: int = MIN_RS_ELEMENTS
    min_matmul_macs: int = MIN_MATMUL_MACS


def parse_choice(choice: str) -> str:
    """Normalise and check a device choice: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``torch-cpu``."""
    if not isinstance(choice, str):
        raise TypeError(f"prover device must be a string, got {type(choice).__name__}")
    c = choice.strip().lower()
    if c in CHOICES:
        return c
    if c.startswith("cuda:") and c[5:].isdigit():
        return c
    raise ValueError(f"prover device must be one of {', '.join(CHOICES)} or cuda:N, got {choice!r}")


def torch_device_for(choice: str) -> str | None:
    """The torch device a choice runs on (None: the numba/numpy CPU path); imports torch unless ``cpu``.

    Raises :class:`DeviceError` for ``cuda`` when no usable CUDA device is present."""
    c = parse_choice(choice)
    if c == "cpu" or (c == "auto" and not _nvidia_driver_possible()):
        return None
    import torch

    if c == "torch-cpu":
        return "cpu"
    if c == "auto":
        return "cuda" if torch.cuda.is_available() else None
    if not torch.cuda.is_available():
        raise DeviceError(f"prover device {c!r} asked for, but torch {torch.__version__} sees no CUDA device "
                          f"(use 'auto' to fall back to the CPU, or 'cpu')")
    index = int(c[5:]) if ":" in c else 0
    if index >= torch.cuda.device_count():
        raise DeviceError(f"prover device {c!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist")
    return c


def _nvidia_driver_possible() -> bool:
    """False when this is Linux without the NVIDIA driver's device nodes (then cuda cannot be
    available, and ``auto`` picks the CPU without paying ~1-3 s to import torch)."""
    import sys

    if "torch" in sys.modules or not sys.platform.startswith("linux"):
        return True
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/proc/driver/nvidia")


_lock = threading.Lock()
_backend: Backend | None = None
_resolved: dict[str, str | None] = {}  # choice -> torch device (None: the CPU path)


def choice_from_env() -> str:
    """The choice ``$BLINDPROOF_PROVER_DEVICE`` names (``auto`` when unset); ValueError naming the variable."""
    raw = os.environ.get(ENV, "auto")
    try:
        return parse_choice(raw)
    except ValueError as exc:
        raise ValueError(f"{ENV}: {exc}") from None


def _from_env() -> Backend:
    return Backend(choice_from_env())


def _env_or_default() -> Backend:
    try:
        return _from_env()
    except ValueError:  # an explicit choice does not need a valid environment variable
        return Backend()


def current() -> Backend:
    """The backend in force (from :func:`set_prover_device`, else ``$BLINDPROOF_PROVER_DEVICE``)."""
    global _backend
    with _lock:
        if _backend is None:
            _backend = _from_env()
        return _backend


def set_prover_device(choice: str | None = None, *, min_rs_elements: int | None = None,
                      min_matmul_macs: int | None = None, check: bool = False) -> Backend:
    """Choose where the prover's heavy vector work runs; returns the previous backend.

    ``choice`` None re-reads ``$BLINDPROOF_PROVER_DEVICE``. The thresholds (entries of an encoded
    matrix, multiply-adds of a matmul) below which the CPU path is kept default to the module's
    constants; 0 sends everything to torch. ``check=True`` resolves the device now, so ``cuda`` on a
    host without one raises :class:`DeviceError` here instead of at the first large input."""
    global _backend
    new = _from_env() if choice is None else Backend(parse_choice(choice))
    for name, v in (("min_rs_elements", min_rs_elements), ("min_matmul_macs", min_matmul_macs)):
        if v is not None:
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name} must be a non-negative int, got {v!r}")
            new = replace(new, **{name: int(v)})
    if check:
        _resolve(new)
    with _lock:
        old = _backend if _backend is not None else _env_or_default()
        _backend = new
    return old


@contextmanager
def prover_device(choice: str, **kwargs) -> Iterator[Backend]:
    """Context manager form of :func:`set_prover_device`; restores the previous backend on exit."""
    old = set_prover_device(choice, **kwargs)
    try:
        yield current()
    finally:
        with _lock:
            global _backend
            _backend = old


def _resolve(b: Backend) -> str | None:
    if b.choice not in _resolved:
        _resolved[b.choice] = torch_device_for(b.choice)
    return _resolved[b.choice]


def device_for_encode(rows: int, n: int) -> str | None:
    """The torch device to encode a (rows, n) codeword matrix on, or None for the CPU path."""
    b = current()
    if b.choice == "cpu" or rows * n < max(b.min_rs_elements, 1):
        return None
    return _resolve(b)


def device_for_matmul(macs: int) -> str | None:
    """The torch device for an exact float64 matmul of ``macs`` multiply-adds, or None for the CPU."""
    b = current()
    if b.choice == "cpu" or macs < max(b.min_matmul_macs, 1):
        return None
    return _resolve(b)


def describe() -> dict:
    """What the prover uses now (for logs): the choice, the resolved device, the thresholds."""
    b = current()
    dev = _resolve(b)
    return {"choice": b.choice, "device": dev or "cpu (numba/numpy)", "min_rs_elements": b.min_rs_elements,
            "min_matmul_macs": b.min_matmul_macs}


T = TypeVar("T")
_log = logging.getLogger(__name__)


def attempt(kernel: Callable[..., T], *args, device: str) -> T | None:
    """``kernel(*args, device)``, or None when the device runs out of memory (a GPU shared with the
    daemon's inference can be full): the cache is released, a warning logged, and the caller takes the
    CPU path, so a proof never fails for want of device memory. Other errors propagate."""
    import torch

    try:
        return kernel(*args, device)
    except torch.OutOfMemoryError as exc:
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        _log.warning("prover device %s out of memory in %s; using the CPU path (%s)", device,
                     getattr(kernel, "__name__", kernel), str(exc).splitlines()[0] if str(exc) else "")
        return None


# --- kernels -----------------------------------------------------------------------------------------

def _as_tensor(a: np.ndarray, device: str):
    """A torch tensor on ``device`` holding ``a`` (numpy arrays that torch cannot share are copied)."""
    import torch

    if not a.flags.writeable or any(s < 0 for s in a.strides):
        a = np.array(a)
    return torch.from_numpy(a).to(device)


@lru_cache(maxsize=32)
def _stage_twiddles(log_n: int, device: str):
    """Per-stage twiddles (plain residues, int64) on ``device``: stage h is ``[h-1 : 2h-1]``."""
    import torch

    from blindproof.zk.field import ntt

    return torch.from_numpy(ntt.plain_twiddles(log_n).astype(np.int64)).to(device)


def _dif_inplace(x, tw) -> None:
    """In-place DIF NTT of every row of the int64 tensor ``x`` (B, n) with canonical entries: the same
    butterflies as :func:`blindproof.zk.commit.reed_solomon._dif_rows`, one stage at a time over all rows."""
    import torch

    from blindproof.zk.field.babybear import P as _P

    B, n = x.shape
    h = n >> 1
    while h >= 1:
        v = x.view(B, n // (2 * h), 2, h)
        lo, hi = v[:, :, 0, :], v[:, :, 1, :]
        s = lo + hi
        s = torch.where(s >= _P, s - _P, s)
        d = torch.remainder((lo - hi) * tw[h - 1:2 * h - 1], _P)  # |lo - hi| < 2^31, tw < 2^31: < 2^62
        lo.copy_(s)
        hi.copy_(d)
        h >>= 1


def encode_rows(coeffs: np.ndarray, n: int, device: str) -> np.ndarray:
    """Torch form of :func:`blindproof.zk.commit.reed_solomon.encode_rows`: ``coeffs`` (B, k) canonical uint32 residues,
    k ≤ n, n a power of two (the caller validates) -> (B, n) uint32, bit-identical to the CPU path."""
    import torch

    B, k = coeffs.shape
    out = np.empty((B, n), dtype=np.uint32)
    if B == 0:
        return out
    tw = _stage_twiddles(n.bit_length() - 1, device) if n > 1 else None
    step = max(1, CHUNK_ELEMENTS // n)
    src = coeffs.view(np.int32)  # residues < p < 2^31: the same bits as int32
    for i in range(0, B, step):
        part = _as_tensor(np.ascontiguousarray(src[i:i + step]), device)
        x = torch.zeros((part.shape[0], n), dtype=torch.int64, device=device)
        x[:, :k] = part
        if n > 1:
            _dif_inplace(x, tw)
        out[i:i + step] = x.to(torch.int32).cpu().numpy().view(np.uint32)
    del x
    if device.startswith("cuda"):
        torch.cuda.empty_cache()  # give the GB of an encode back (the daemon's inference shares the GPU)
    return out


def matmul_f64(a: np.ndarray, b: np.ndarray, device: str) -> np.ndarray:
    """Integer ``a @ b`` (numpy broadcasting) through float64 on ``device``, as int64 numpy.

    Exact only when every partial sum is below 2^53; the caller checks that bound."""
    import torch

    ta = _as_tensor(a, device).to(torch.float64)
    tb = _as_tensor(b, device).to(torch.float64)
    return torch.matmul(ta, tb).to(torch.int64).cpu().numpy()


def matmul_macs(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> int:
    """Multiply-adds of ``a @ b`` for operands of at least two axes (numpy broadcasting of the batch)."""
    batch = np.broadcast_shapes(tuple(a_shape[:-2]), tuple(b_shape[:-2]))
    return int(np.prod(batch, dtype=np.int64)) * int(a_shape[-2]) * int(a_shape[-1]) * int(b_shape[-1])
