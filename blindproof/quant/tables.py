"""Public lookup tables of the integer model, regenerated deterministically from their parameters.

Every entry is `floor(f(i * 2^-in_exp) * 2^out_exp + 1/2)` (round half up) over the integer domain
[lo, hi], computed in float64. The spec stores each table's BLAKE3 digest so a verifier can check that
its regenerated copy is the one the prover used.
"""

from __future__ import annotations

import math


from blindproof.quant.spec import EXP_DOMAIN_MAX, INT16_MAX, TableSpec
from blindproof.quant.functions import _key, _cached, table_digest


def make_table(name: str, fn: str, in_exp: int, out_exp: int, lo: int, hi: int, params: dict | None = None
               ) -> TableSpec:
    """Build a TableSpec (with its digest) for function `fn` on domain [lo, hi]."""
    params = dict(params or {})
    values = _cached(fn, in_exp, out_exp, lo, hi, _key(params))
    return TableSpec(name, fn, in_exp, out_exp, lo, hi, table_digest(values), params)


def activation_table(name: str, fn: str, in_exp: int, out_exp: int) -> TableSpec:
    """SiLU/GELU table over the symmetric int16 domain [-32767, 32767]."""
    return make_table(name, fn, in_exp, out_exp, -INT16_MAX, INT16_MAX)


def softcap_table(name: str, cap: float, in_exp: int, out_exp: int) -> TableSpec:
    """Soft-capping table ``c·tanh(x/c)`` over the symmetric int16 domain (``cap`` is a public parameter)."""
    if not (math.isfinite(cap) and cap > 0):
        raise ValueError(f"soft-capping constant must be positive and finite, got {cap!r}")
    return make_table(name, "softcap", in_exp, out_exp, -INT16_MAX, INT16_MAX, {"cap": float(cap)})


def exp_table(name: str, in_exp: int, out_exp: int) -> TableSpec:
    """Softmax table: T[z] = round(2^out_exp * exp(-z 2^-in_exp)) for z in [0, 2^16 - 1]."""
    return make_table(name, "exp_neg", in_exp, out_exp, 0, EXP_DOMAIN_MAX)


def rope_table(name: str, fn: str, out_exp: int, head_dim: int, max_seq: int, theta: float,
               llama3: tuple | None = None, freqs: tuple | None = None) -> TableSpec:
    """RoPE cos or sin table, flattened row-major from (max_seq, head_dim/2); the Llama 3 scaling, when
    given, is part of the table's public parameters (absent otherwise, so plain tables are unchanged)."""
    n = max_seq * (head_dim // 2)
    params: dict = {"head_dim": head_dim, "max_seq": max_seq, "theta": theta}
    if llama3 is not None:
        params.update({f"llama3_{k}": float(v) for k, v in zip(("factor", "low", "high", "orig"), llama3)})
    if freqs is not None:
        params["freqs"] = [float(f) for f in freqs]
    return make_table(name, fn, 0, out_exp, 0, n - 1, params)


