"""LayerNorm's mean is range-checked: a wrapped mean that solves the row sum modulo p is rejected."""

from __future__ import annotations

import numpy as np
import pytest

from blindproof.zk.field import babybear as F
from blindproof.zk.ops import norm
from blindproof.quant.spec import Op, TensorSpec

from zk_nonlinear_harness import REJECTIONS, one_op_spec, run, trace_values


def _wrapped_mean_cheat():
    """d = 16, C = 20000 (a multiple of d). For a row with mean remainder ``m ≥ 1`` put ``t = d − 2m``:
    ``mean' = mean − t·d⁻¹ (mod p)`` with remainder ``m + t = d − m`` solves ``Σx + d/2 = d·mean' +
    mean_r'``, leaves ``S = Σ c'² + E`` unchanged (``c' = c + t·d⁻¹`` and ``Σ c = m − d/2`` make the cross
    terms cancel), and moves ``C·c'`` by the integer ``C·t/d``: the division then proves a shifted output.
    Returns the spec, the honest values and the cheating ones."""
    d, C = 16, 20000
    op = Op("norm", ("x",), "y", {"kind": "layer", "d": d, "E": 5, "C": C})
    tensors = {"x": TensorSpec("x", 10, -32767, 32767, "activation"),
               "y": TensorSpec("y", 12, -32767, 32767, "activation")}
    spec = one_op_spec(op, tensors, {})
    rng = np.random.default_rng(4)
    for _ in range(100):
        x = rng.integers(-3000, 3000, size=(1, 1, d))
        vals = trace_values(spec, {"x": x})
        m = int(vals["y/mean_r"][0, 0, 0])
        if 1 <= m and (d - 2 * m) != 0:
            break
    t = d - 2 * m
    inv_d = pow(d, F.P - 2, F.P)
    cheat = {k: v.copy() for k, v in vals.items()}
    mean2 = (int(vals["y/mean"][0, 0, 0]) - t * inv_d) % F.P
    mean2 = mean2 - F.P if mean2 > F.P // 2 else mean2  # its signed representative (a huge value)
    cheat["y/mean"][...] = mean2
    cheat["y/mean_r"][...] = m + t
    c2 = (x - mean2) % F.P
    cheat["y/centred"] = np.where(c2 > F.P // 2, c2 - F.P, c2)
    s = int(vals["y/s"][0, 0, 0])
    num = vals["y/centred"] * C + (C * t) // d + s // 2  # C·c' + ⌊s/2⌋ as an integer
    n2 = num // s
    cheat["y/n"], cheat["y/r"] = n2, num - n2 * s
    cheat["y"] = np.clip(n2, -32767, 32767)
    return spec, op, vals, cheat


def test_wrapped_mean_is_rejected():
    spec, op, vals, cheat = _wrapped_mean_cheat()
    assert not np.array_equal(cheat["y"], vals["y"])  # the cheat would change the output
    assert abs(int(cheat["y/mean"][0, 0, 0])) > 1 << 20
    # every field relation of the norm holds for the cheat (only the mean's range does not)
    P = F.P
    x, C, d = vals["x"], 20000, 16
    assert (int(x.sum()) + d // 2 - d * int(cheat["y/mean"][0, 0, 0]) - int(cheat["y/mean_r"][0, 0, 0])) % P == 0
    assert (int((cheat["y/centred"].astype(object) ** 2).sum()) + 5 - int(vals["y/S"][0, 0, 0])) % P == 0
    lhs = cheat["y/centred"].astype(object) * C + int(vals["y/s"][0, 0, 0]) // 2
    rhs = cheat["y/n"].astype(object) * int(vals["y/s"][0, 0, 0]) + cheat["y/r"].astype(object)
    assert all(int(v) % P == 0 for v in (lhs - rhs).reshape(-1))
    with pytest.raises(REJECTIONS, match="range|limb|lookup|sumcheck"):
        run(norm, spec, op, cheat, strict=False)


def test_honest_layernorm_still_proves():
    spec, op, vals, _ = _wrapped_mean_cheat()
    run(norm, spec, op, vals)
