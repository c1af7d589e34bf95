"""The integer model: the exact integer semantics a proof of inference attests (docs/quant.md).

- `spec`: op set and the serializable, hashable quantization spec
- `tables`: public lookup tables (SiLU, GELU, exp, RoPE cos/sin)
- `quantizer`: torch Transformer / MLP -> integer program, with calibration (`quantize`)
- `reference`: the numpy int64 forward that records every witness
"""

from blindproof.quant.reference import BoundError, Trace, run_program
from blindproof.quant.spec import ACC_BOUND, Op, QuantSpec, TableSpec, TensorSpec, WeightSpec

_QUANTIZER = ("SCOPES", "QuantConfig", "QuantizationError", "QuantizedModel", "build_program", "embed_float", "quantize")


def __getattr__(name: str):
    # the quantizer imports torch (about a second): loaded on first use, so that a verifier, which only
    # reads specs, never pays for it
    if name in _QUANTIZER:
        import importlib
        mod = importlib.import_module("blindproof.quant.quantizer")
        globals().update({n: getattr(mod, n) for n in _QUANTIZER})
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["ACC_BOUND", "BoundError", "Op", "QuantConfig", "QuantSpec", "QuantizationError", "QuantizedModel",
           "SCOPES", "TableSpec", "TensorSpec", "Trace", "WeightSpec", "build_program", "embed_float", "quantize",
           "run_program"]
