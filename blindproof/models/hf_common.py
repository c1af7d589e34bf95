"""Helpers shared by the mappings of Hugging Face modules (``hf_map`` and the latent-attention and
mixture-of-experts mappings it dispatches to): name maps, checked reads of linear layers and norms,
probes, and the errors a mapping raises. Below all of them, so none imports another back."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

class UnsupportedModelError(ValueError):
    """A model type or configuration option the reference Transformer does not implement."""


def _fail(path: str, what: str) -> None:
    raise UnsupportedModelError(f"{path or '<root>'}: {what}")


def _path(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _children(m: nn.Module) -> dict[str, nn.Module]:
    return dict(m.named_children())


_DROPOUT = (nn.Dropout,)


def _significant(m: nn.Module) -> dict[str, nn.Module]:
    """Children that compute something in eval mode (dropouts are identities)."""
    return {k: v for k, v in _children(m).items() if not isinstance(v, _DROPOUT)}


def _expect_children(m: nn.Module, path: str, allowed: set[str], what: str) -> dict[str, nn.Module]:
    kids = _significant(m)
    extra = sorted(set(kids) - allowed)
    if extra:
        _fail(_path(path, extra[0]), f"{type(kids[extra[0]]).__name__} is a part of the {what} the Transformer "
                                     f"has no place for (expected only {sorted(allowed)})")
    return kids


def _linear(m: Any, path: str) -> nn.Linear:
    if not isinstance(m, nn.Linear):
        _fail(path, f"expected a Linear layer, got {type(m).__name__}")
    return m


def _probe_input(shape: tuple[int, ...], dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def _close(a: torch.Tensor, b: torch.Tensor, rel: float) -> bool:
    a, b = a.double(), b.double()
    return bool((a - b).abs().max() <= rel * max(float(b.abs().max()), 1e-30))


def _tol(dtype: torch.dtype) -> float:
    return 1e-9 if dtype == torch.float64 else 2e-2 if dtype in (torch.float16, torch.bfloat16) else 1e-4


@torch.no_grad()
def rms_norm_gain(norm: nn.Module, path: str) -> tuple[torch.Tensor, float]:
    """(effective gain, eps) of an RMSNorm-like module: ``w`` or ``1 + w``, decided by running it."""
    w = getattr(norm, "weight", None)
    if not isinstance(w, torch.Tensor) or w.dim() != 1 or getattr(norm, "bias", None) is not None:
        _fail(path, f"{type(norm).__name__} is not an RMSNorm (a 1-d weight and no bias)")
    eps = getattr(norm, "variance_epsilon", getattr(norm, "eps", None))
    if not isinstance(eps, (int, float)):
        _fail(path, f"{type(norm).__name__}: no epsilon attribute (variance_epsilon or eps)")
    x = _probe_input((3, w.shape[0]), w.dtype, 1) * 3.0
    y = norm(x)
    xd = x.double()
    core = xd * torch.rsqrt(xd.pow(2).mean(-1, keepdim=True) + float(eps))
    for gain in (w.detach().double(), 1.0 + w.detach().double()):
        if _close(y, core * gain, max(_tol(w.dtype), 1e-5)):
            return gain.to(w.dtype) if gain is not w else gain, float(eps)
    _fail(path, f"{type(norm).__name__} computes neither x/rms(x)*w nor x/rms(x)*(1 + w)")
    raise AssertionError  # unreachable


_ACTS = {"silu": lambda x: F.silu(x), "gelu": lambda x: F.gelu(x),
         "gelu_tanh": lambda x: F.gelu(x, approximate="tanh")}


@torch.no_grad()
def activation_kind(act: Any, path: str) -> str:
    """'silu', 'gelu' or 'gelu_tanh', decided by evaluating ``act`` on a grid."""
    if not callable(act):
        _fail(path, f"activation {act!r} is not callable")
    x = torch.linspace(-6.0, 6.0, 241, dtype=torch.float64)
    try:
        y = act(x)
    except Exception as exc:  # noqa: BLE001 - any failure means we cannot identify it
        _fail(path, f"activation {type(act).__name__} failed on a probe: {exc}")
    for name, fn in _ACTS.items():
        if _close(y, fn(x), 1e-6):
            return name
    _fail(path, f"activation {type(act).__name__} is none of SiLU, GELU (exact) or GELU (tanh)")
    raise AssertionError


NameMap = dict  # target parameter name -> (function of the source state dict, source keys)


def _take(key: str, transform=lambda t: t):
    return (lambda sd: transform(sd[key])), (key,)


def _lin_map(m: dict, ours: str, theirs: str, lin: nn.Linear, rows: slice | None = None) -> None:
    if rows is None:
        m[f"{ours}.weight"] = _take(f"{theirs}.weight")
        if lin.bias is not None:
            m[f"{ours}.bias"] = _take(f"{theirs}.bias")
    else:
        m[f"{ours}.weight"] = _take(f"{theirs}.weight", lambda w, r=rows: w[r])
        if lin.bias is not None:
            m[f"{ours}.bias"] = _take(f"{theirs}.bias", lambda b, r=rows: b[r])


def _map_gated_mlp(mlp: nn.Module, mp: str, ours: str, m: NameMap) -> tuple[int, str, bool]:
    """A gated MLP (gate, up, down; Phi-3's fused gate_up): (d_ff, activation, has biases)."""
    mk = _expect_children(mlp, mp, {"gate_proj", "up_proj", "down_proj", "gate_up_proj", "act_fn",
                                    "activation_fn"}, "MLP (a gated MLP: gate, up, down)")
    act = mk.get("act_fn", mk.get("activation_fn", getattr(mlp, "act_fn", None)))
    act_name = activation_kind(act, _path(mp, "act_fn"))
    down = _linear(mk.get("down_proj"), _path(mp, "down_proj"))
    ff = down.in_features
    if "gate_up_proj" in mk:  # Phi-3: rows [gate | up]
        fused = _linear(mk["gate_up_proj"], _path(mp, "gate_up_proj"))
        if fused.out_features != 2 * ff:
            _fail(_path(mp, "gate_up_proj"), f"output width {fused.out_features} != 2 x d_ff {ff}")
        _lin_map(m, f"{ours}.gate", _path(mp, "gate_up_proj"), fused, slice(0, ff))
        _lin_map(m, f"{ours}.up", _path(mp, "gate_up_proj"), fused, slice(ff, 2 * ff))
        biases = [fused.bias is not None, down.bias is not None]
    else:
        for need in ("gate_proj", "up_proj"):
            if need not in mk:
                _fail(_path(mp, need), "missing (the MLP must be gated: gate_proj, up_proj, down_proj)")
        gate, up = _linear(mk["gate_proj"], _path(mp, "gate_proj")), _linear(mk["up_proj"], _path(mp, "up_proj"))
        _lin_map(m, f"{ours}.gate", _path(mp, "gate_proj"), gate)
        _lin_map(m, f"{ours}.up", _path(mp, "up_proj"), up)
        biases = [gate.bias is not None, up.bias is not None, down.bias is not None]
    if len(set(biases)) > 1:
        _fail(mp, "MLP linears differ in having a bias")
    _lin_map(m, f"{ours}.down", _path(mp, "down_proj"), down)
    return ff, act_name, biases[0]


