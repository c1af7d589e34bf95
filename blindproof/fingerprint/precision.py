"""Honest servers on reduced-precision hardware, simulated on CPU: TF32 matmuls, float16, bfloat16.

A GPU server is honest yet does not compute in float32: Ampere and later GPUs may run float32 matmuls
in TF32 (10 explicit mantissa bits, float32 range), and many deployments serve in float16 or
bfloat16. Calibrating on a CPU float32 stack and checking such a server flags it falsely, so the
identity check is calibrated per device class. No GPU is needed to calibrate: TF32 is simulated by
rounding both inputs of every matmul to TF32 (accumulation stays float32, as on the GPU), float16 and
bfloat16 by running a copy of the model in that dtype. Simulation and hardware can differ in
accumulation order, which moves results by float32 rounding only; the CUDA test in
tests/test_fingerprint_precision.py runs the real path where a GPU is present.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from typing import Literal

import torch
from torch.overrides import TorchFunctionMode

DeviceClass = Literal["fp32", "tf32", "fp16", "bf16"]
DEVICE_CLASSES: tuple[str, ...] = ("fp32", "tf32", "fp16", "bf16")
_MATMULS = {torch.matmul, torch.bmm, torch.mm, torch.nn.functional.linear, torch.Tensor.__matmul__,
            torch.Tensor.matmul, torch.einsum, torch.baddbmm, torch.addmm}


def round_tf32(x: torch.Tensor) -> torch.Tensor:
    """Round a float32 tensor to TF32 (10 mantissa bits), to nearest, ties to even; other dtypes pass."""
    if x.dtype != torch.float32:
        return x
    bits = x.contiguous().view(torch.int32)
    lsb = (bits >> 13) & 1
    rounded = (bits + 0xFFF + lsb) & ~0x1FFF  # int32 wraps like the hardware's bit pattern would
    out = rounded.view(torch.float32)
    return torch.where(torch.isfinite(x), out, x)


class TF32Matmuls(TorchFunctionMode):
    """Within this mode every float32 matmul / linear rounds its tensor inputs to TF32 first."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _MATMULS:
            args = tuple(round_tf32(a) if isinstance(a, torch.Tensor) else a for a in args)
            kwargs = {k: round_tf32(v) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
        return func(*args, **kwargs)


class DeviceServer:
    """A server model run as a device class would run it; exposes ``run_blocks`` like the model.

    ``fp32`` is the model itself; ``tf32`` rounds matmul inputs; ``fp16``/``bf16`` run a copy in that
    dtype (inputs cast down on arrival, outputs cast back to float32 for the wire).
    """

    def __init__(self, model: torch.nn.Module, device_class: str = "fp32") -> None:
        if device_class not in DEVICE_CLASSES:
            raise ValueError(f"device class must be one of {DEVICE_CLASSES}, got {device_class!r}")
        self.device_class = device_class
        self.dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(device_class, torch.float32)
        self.model = model if self.dtype == torch.float32 else copy.deepcopy(model).to(self.dtype)
        self.cfg = getattr(model, "cfg", None)

    @torch.no_grad()
    def run_blocks(self, x: torch.Tensor, start: int = 0, cache=None) -> torch.Tensor:
        mode = TF32Matmuls() if self.device_class == "tf32" else nullcontext()
        with mode:
            out = self.model.run_blocks(x.to(self.dtype), start, cache)
        return out.to(torch.float32)


def unit_roundoff(device_class: str) -> float:
    """Unit roundoff of the class's matmul inputs: 2^-24 (fp32), 2^-11 (tf32, fp16), 2^-8 (bf16)."""
    return {"fp32": 2.0 ** -24, "tf32": 2.0 ** -11, "fp16": 2.0 ** -11, "bf16": 2.0 ** -8}[device_class]
