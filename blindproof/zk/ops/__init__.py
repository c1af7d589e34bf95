"""Layer protocols of the integer program: one module per op family (see ``base`` for the interface).

``protocol(kind)`` returns the module that proves and verifies ops of that kind (``shapes``, ``aux``,
``prove``, ``verify``); modules are imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

# op kind -> module (relative to this package)
_MODULES: dict[str, str] = {
    "lookup": "lookup_ops",
    "norm": "norm",
    "softmax": "softmax",
    "linear": "matmul",
    "conv": "conv",
    "qk": "matmul",
    "pv": "matmul",
    "rescale": "rescale",
    "add": "elementwise",
    "add_weight": "elementwise",
    "mul": "elementwise",
    "mul_weight": "elementwise",
    "embed": "embed",
    "split_heads": "heads",
    "merge_heads": "heads",
    "rope": "rope",
    "mean_pool": "pool",
    "max_pool": "maxpool",
}


def protocol(kind: str) -> ModuleType:
    """The protocol module for an op kind; ValueError if the kind has none."""
    try:
        name = _MODULES[kind]
    except KeyError:
        raise ValueError(f"no proof protocol for op kind {kind!r}; known: {', '.join(sorted(_MODULES))}") from None
    return import_module(f"{__name__}.{name}")


def kinds() -> tuple[str, ...]:
    """Op kinds with a protocol."""
    return tuple(sorted(_MODULES))
