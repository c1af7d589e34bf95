"""Save and load an integer model: the spec as canonical JSON, the weights as safetensors.

The weights are stored in their declared integer dtypes (int8 / int16 / int32), so the file is the
size of the committed model; loading checks them against the spec.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from blindproof.quant.quantizer import QuantizedModel
from blindproof.quant.spec import QuantSpec

SPEC_FILE = "quant_spec.json"
WEIGHTS_FILE = "quant_weights.safetensors"


def save_quantized(qm: QuantizedModel, folder: str | Path) -> Path:
    """Write `quant_spec.json` and `quant_weights.safetensors` into `folder` (created if needed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SPEC_FILE).write_text(qm.spec.to_json(), encoding="ascii")
    arrays = {name: qm.weights[name].astype(ws.dtype) for name, ws in qm.spec.weights.items()}
    save_file(arrays, str(folder / WEIGHTS_FILE), metadata={"spec_digest": qm.spec.digest()})
    return folder


def load_quantized(folder: str | Path) -> QuantizedModel:
    """Read an integer model written by `save_quantized`; raises if the files do not match each other."""
    folder = Path(folder)
    for f in (SPEC_FILE, WEIGHTS_FILE):
        if not (folder / f).exists():
            raise FileNotFoundError(f"{folder / f} missing (write it with save_quantized)")
    spec = QuantSpec.from_json((folder / SPEC_FILE).read_text(encoding="ascii"))
    arrays = load_file(str(folder / WEIGHTS_FILE))
    for name, ws in spec.weights.items():
        if name in arrays and arrays[name].dtype != np.dtype(ws.dtype):
            raise ValueError(f"weight {name!r} stored as {arrays[name].dtype}, spec says {ws.dtype}")
    extra = set(arrays) - set(spec.weights)
    if extra:
        raise ValueError(f"weights file holds tensors the spec does not name: {sorted(extra)[:5]}")
    return QuantizedModel(spec, dict(arrays))
