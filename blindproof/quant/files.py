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


# --- one-file integer models: `blindproof quantize -o model.qspec` -------------------------------------

QSPEC_FORMAT = "blindproof-qspec/1"


def save_qspec(qm: QuantizedModel, path: str | Path, info: dict | None = None) -> Path:
    """Write an integer model as ONE safetensors file: the weights in their integer dtypes, the spec's
    canonical JSON and ``info`` (JSON: where the model came from, its accuracy report) in the metadata."""
    import json

    p = Path(path)
    arrays = {name: np.ascontiguousarray(qm.weights[name].astype(ws.dtype)) for name, ws in qm.spec.weights.items()}
    meta = {"format": QSPEC_FORMAT, "spec": qm.spec.to_json(), "spec_digest": qm.spec.digest(),
            "info": json.dumps(info or {}, sort_keys=True)}
    save_file(arrays, str(p), metadata=meta)
    return p


def load_qspec(path: str | Path) -> tuple[QuantizedModel, dict]:
    """``(integer model, info)`` of a file written by :func:`save_qspec`; ValueError naming what is wrong."""
    import json

    from safetensors import safe_open

    p = Path(path)
    try:
        with safe_open(str(p), framework="numpy") as f:
            meta = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types on a foreign file
        raise ValueError(f"{p}: not a .qspec file: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if meta.get("format") != QSPEC_FORMAT:
        raise ValueError(f"{p}: not a .qspec file (format {meta.get('format')!r}, expected {QSPEC_FORMAT!r})")
    spec = QuantSpec.from_json(meta["spec"])
    if spec.digest() != meta.get("spec_digest"):
        raise ValueError(f"{p}: the spec does not match its recorded digest")
    for name, ws in spec.weights.items():
        if name in arrays and arrays[name].dtype != np.dtype(ws.dtype):
            raise ValueError(f"{p}: weight {name!r} stored as {arrays[name].dtype}, spec says {ws.dtype}")
    extra = set(arrays) - set(spec.weights)
    if extra:
        raise ValueError(f"{p}: tensors the spec does not name: {sorted(extra)[:5]}")
    try:
        info = json.loads(meta.get("info", "{}"))
    except json.JSONDecodeError:
        info = {}
    return QuantizedModel(spec, dict(arrays)), info
