"""Convert torch tensors to and from the wire ``Tensor`` message (raw bytes + dtype + shape)."""

from __future__ import annotations

import math

import torch

from blindproof.proto import tensor_pb2

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
    "float64": torch.float64, "int64": torch.int64, "int32": torch.int32,
}
_NAMES = {v: k for k, v in DTYPES.items()}
MAX_RANK = 8


class WireTensorError(ValueError):
    """A wire tensor's dtype, shape or byte length is invalid."""


def dtype_name(dtype: torch.dtype) -> str:
    """The wire name of a torch dtype; TypeError for dtypes the wire does not carry."""
    try:
        return _NAMES[dtype]
    except KeyError:
        raise TypeError(f"dtype {dtype} cannot travel on the wire; supported: {', '.join(DTYPES)}") from None


def to_proto(t: torch.Tensor) -> tensor_pb2.Tensor:
    """Serialize a tensor (any device) as little-endian row-major bytes."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(t).__name__}")
    name = dtype_name(t.dtype)
    t = t.detach().to("cpu").contiguous()
    data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
    return tensor_pb2.Tensor(dtype=name, shape=list(t.shape), data=data)


def from_proto(msg: tensor_pb2.Tensor) -> torch.Tensor:
    """Deserialize a wire tensor, checking dtype, shape and byte length; WireTensorError if invalid."""
    dtype = DTYPES.get(msg.dtype)
    if dtype is None:
        raise WireTensorError(f"unsupported dtype {msg.dtype!r}; supported: {', '.join(DTYPES)}")
    shape = tuple(int(s) for s in msg.shape)
    if len(shape) > MAX_RANK or any(s < 0 for s in shape):
        raise WireTensorError(f"invalid shape {shape}: rank at most {MAX_RANK}, sizes non-negative")
    itemsize = torch.empty((), dtype=dtype).element_size()
    expected = math.prod(shape) * itemsize
    if len(msg.data) != expected:
        raise WireTensorError(f"tensor of dtype {msg.dtype} and shape {shape} needs {expected} bytes, "
                              f"got {len(msg.data)}")
    if expected == 0:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(msg.data), dtype=dtype).reshape(shape)
