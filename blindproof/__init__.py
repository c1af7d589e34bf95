"""blindproof: private and verifiable inference for PyTorch models.

The one-call API (loaded on first use, so ``import blindproof`` stays light)::

    import blindproof
    c = blindproof.commit("mlp-784-56-10")        # a workload, a HF folder, a torch module or ONNX file + calibration
    p = blindproof.prove(c, x)                    # a Proof: prints its size and soundness
    v = blindproof.verify(p, c.commitment)        # a Verification: true iff the proof is valid
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from blindproof._threads import pin_threads as _pin_threads

_pin_threads()

__version__ = "0.1.0"

if TYPE_CHECKING:
    from blindproof.api import commit, prove, verify
    from blindproof.results import Committed, Proof, Verification
    from blindproof.sources import ModelSourceError

_LAZY = {"commit": "blindproof.api", "prove": "blindproof.api", "verify": "blindproof.api",
         "Committed": "blindproof.results", "Proof": "blindproof.results", "Verification": "blindproof.results",
         "ModelSourceError": "blindproof.sources"}

__all__ = ["Committed", "ModelSourceError", "Proof", "Verification", "__version__", "commit", "prove", "verify"]


def __getattr__(name: str):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(__all__) | {n for n in globals() if n.startswith("__")})
