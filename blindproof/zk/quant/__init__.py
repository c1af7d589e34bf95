"""The integer model: the exact integer semantics a proof of inference attests (docs/quant.md).

- `spec`: op set and the serializable, hashable quantization spec
- `tables`: public lookup tables (SiLU, GELU, exp, RoPE cos/sin)
- `quantize`: torch Transformer / MLP -> integer program, with calibration
- `reference`: the numpy int64 forward that records every witness
"""

from blindproof.zk.quant.quantize import (SCOPES, QuantConfig, QuantizationError, QuantizedModel, build_program, embed_float,
                                          quantize)
from blindproof.zk.quant.reference import BoundError, Trace, run_program
from blindproof.zk.quant.spec import ACC_BOUND, Op, QuantSpec, TableSpec, TensorSpec, WeightSpec

__all__ = ["ACC_BOUND", "BoundError", "Op", "QuantConfig", "QuantSpec", "QuantizationError", "QuantizedModel",
           "SCOPES", "TableSpec", "TensorSpec", "Trace", "WeightSpec", "build_program", "embed_float", "quantize",
           "run_program"]
