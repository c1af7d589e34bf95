"""The functions behind the integer model's lookup tables, and the tables' values
(``blindproof.quant.tables`` builds table specs from them).
"""

from __future__ import annotations

import math
from functools import lru_cache

import blake3
import numpy as np


def _silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def _gelu(x: np.ndarray) -> np.ndarray:
    erf = np.frompyfunc(math.erf, 1, 1)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)).astype(np.float64))


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def _exp_neg(x: np.ndarray) -> np.ndarray:
    return np.exp(-x)


def _sigmoid_c(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x)) - 0.5  # centred, so f(0) = 0 (the lookup's padding row)


def _logsigmoid_c(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x) + math.log(2.0)  # log sigmoid(x) + log 2: f(0) = 0


_ACTIVATIONS = {"silu": _silu, "gelu": _gelu, "gelu_tanh": _gelu_tanh, "exp_neg": _exp_neg,
                "tanh": np.tanh,  # BERT/RoBERTa classification poolers
                # DeepSeek-V3 routing: selection scores, and the log weights a softmax renormalises
                "sigmoid_c": _sigmoid_c, "logsigmoid_c": _logsigmoid_c}


def round_half_up(x: np.ndarray) -> np.ndarray:
    """floor(x + 1/2) as int64 (the one rounding rule of the integer model for float -> int)."""
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5).astype(np.int64)


def rope_angles(head_dim: int, max_seq: int, theta: float, llama3: tuple | None = None,
                freqs: tuple | list | None = None) -> np.ndarray:
    """Angles (max_seq, head_dim/2) of the half-split RoPE convention, in float64; ``llama3`` =
    (factor, low_freq_factor, high_freq_factor, original_max_positions) applies Llama 3.x scaling."""
    inv = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    if freqs is not None:  # explicit inverse frequencies (a public table parameter)
        inv = np.asarray(freqs, dtype=np.float64)
    elif llama3 is not None:
        factor, low, high, orig = (float(v) for v in llama3)
        wavelen = 2 * math.pi / inv
        scaled = np.where(wavelen > orig / low, inv / factor, inv)
        smooth = (orig / wavelen - low) / (high - low)
        medium = (wavelen >= orig / high) & (wavelen <= orig / low)
        inv = np.where(medium, (1 - smooth) * scaled / factor + smooth * scaled, scaled)
    return np.arange(max_seq, dtype=np.float64)[:, None] * inv[None, :]


def _values(fn: str, in_exp: int, out_exp: int, lo: int, hi: int, params: dict) -> np.ndarray:
    if fn in _ACTIVATIONS:
        x = np.arange(lo, hi + 1, dtype=np.float64) * 2.0 ** -in_exp
        return round_half_up(_ACTIVATIONS[fn](x) * 2.0 ** out_exp)
    if fn == "softcap":  # Gemma 2: c·tanh(x/c), c a public parameter
        c = float(params["cap"])
        x = np.arange(lo, hi + 1, dtype=np.float64) * 2.0 ** -in_exp
        return round_half_up(c * np.tanh(x / c) * 2.0 ** out_exp)
    if fn in ("cos", "sin"):
        llama3 = None
        if "llama3_factor" in params:
            llama3 = tuple(float(params[f"llama3_{k}"]) for k in ("factor", "low", "high", "orig"))
        ang = rope_angles(int(params["head_dim"]), int(params["max_seq"]), float(params["theta"]),
                          llama3, params.get("freqs")).reshape(-1)
        return round_half_up((np.cos(ang) if fn == "cos" else np.sin(ang)) * 2.0 ** out_exp)
    raise ValueError(f"unknown table function {fn!r}; known: {', '.join([*_ACTIVATIONS, 'softcap', 'cos', 'sin'])}")


def _key(params: dict) -> tuple:
    """A hashable cache key of table parameters (lists, e.g. RoPE frequencies, as tuples)."""
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in params.items()))


@lru_cache(maxsize=64)
def _cached(fn: str, in_exp: int, out_exp: int, lo: int, hi: int, params_key: tuple) -> np.ndarray:
    t = _values(fn, in_exp, out_exp, lo, hi, dict(params_key))
    t.setflags(write=False)
    return t


def table_digest(values: np.ndarray) -> str:
    """BLAKE3 hex digest of a table's int64 little-endian bytes."""
    return blake3.blake3(np.ascontiguousarray(values, dtype="<i8").tobytes()).hexdigest()


def table_values(spec: TableSpec, check_digest: bool = True) -> np.ndarray:
    """The table's int64 entries (read-only); raises if they do not match the spec's digest."""
    values = _cached(spec.fn, spec.in_exp, spec.out_exp, spec.lo, spec.hi, _key(spec.params))
    if check_digest and table_digest(values) != spec.digest:
        raise ValueError(f"table {spec.name!r} ({spec.fn}) regenerated with a different digest: "
                         "this platform's float64 math disagrees with the one that built the spec")
    return values
