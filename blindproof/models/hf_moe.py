"""Map a Hugging Face mixture-of-experts block onto :class:`blindproof.models.moe.MoE`, by structure.

Recognised: an MLP module with a router child ``gate`` (a ``(n_experts, d_model)`` weight and a
``top_k``) and an ``experts`` child holding either fused parameters ``gate_up_proj``
``(n_experts, 2·d_ff, d_model)`` and ``down_proj`` ``(n_experts, d_model, d_ff)`` (Mixtral in current
``transformers``) or a list of gated MLPs. The routing rule is not read from names: the router is run
on a probe and its weights must equal Mixtral's (softmax, top k, renormalised); routers that compute
anything else (no renormalisation, sigmoid scores, group-limited or biased selection) are refused,
naming the router.
"""

from __future__ import annotations

import torch
from torch import nn

from blindproof.models.hf_map import (NameMap, _close, _fail, _linear, _path, _probe_input, _significant, _take,
                                      activation_kind)
from blindproof.models.moe import routing_gates


@torch.no_grad()
def _check_router(router: nn.Module, path: str, top_k: int) -> None:
    w = router.weight
    x = _probe_input((7, w.shape[1]), w.dtype, 3)
    try:
        out = router(x)
    except Exception as exc:  # noqa: BLE001 - a router we cannot run is one we cannot map
        _fail(path, f"{type(router).__name__} failed on a probe: {exc}")
    if not (isinstance(out, tuple) and len(out) == 3):
        _fail(path, f"{type(router).__name__} does not return (logits, top-k weights, top-k indices)")
    logits, weights, index = out
    ours = routing_gates(x.double() @ w.double().T, top_k)
    if tuple(index.shape) != (7, top_k) or not torch.equal(
            torch.sort(index, -1).values, torch.sort(torch.topk(ours, top_k, -1).indices, -1).values):
        _fail(path, f"{type(router).__name__} selects other experts than the top {top_k} router logits")
    # the router computes its softmax in float32: compare at that precision
    if not _close(weights.double(), torch.gather(ours, -1, index.long()), 1e-5):
        _fail(path, f"{type(router).__name__}: expert weights are not softmax over all experts, top {top_k}, "
                    "renormalised (Mixtral's rule)")


def map_moe(mlp: nn.Module, mp: str, ours: str, m: NameMap) -> tuple[int, str, tuple[int, int]]:
    """Fill ``m`` for ``ours`` (a :class:`MoE`): (d_ff, activation, (n_experts, top_k))."""
    kids = _significant(mlp)
    extra = sorted(set(kids) - {"gate", "experts"})
    if extra:
        _fail(_path(mp, extra[0]), f"{type(kids[extra[0]]).__name__} is a part of the mixture of experts the "
                                   "Transformer has no place for (expected a router 'gate' and 'experts'; "
                                   "shared experts are not implemented)")
    router, rp = kids.get("gate"), _path(mp, "gate")
    w = getattr(router, "weight", None)
    top_k = getattr(router, "top_k", getattr(mlp, "top_k", None))
    if router is None or not isinstance(w, torch.Tensor) or w.dim() != 2 or not isinstance(top_k, int):
        _fail(rp, "expected a router with a (n_experts, d_model) weight and a top_k")
    if getattr(router, "bias", None) is not None:
        _fail(rp, "a router bias is not implemented")
    n_experts = int(w.shape[0])
    _check_router(router, rp, top_k)
    m[f"{ours}.router.weight"] = _take(f"{rp}.weight")
    experts, ep = kids["experts"], _path(mp, "experts")
    gu, down = getattr(experts, "gate_up_proj", None), getattr(experts, "down_proj", None)
    if isinstance(gu, torch.Tensor) and isinstance(down, torch.Tensor):  # fused: (E, 2ff, d), (E, d, ff)
        if gu.dim() != 3 or gu.shape[0] != n_experts or down.dim() != 3 or gu.shape[1] != 2 * down.shape[2]:
            _fail(ep, f"expert tensors gate_up_proj {tuple(gu.shape)} / down_proj {tuple(down.shape)} do not "
                      f"form {n_experts} gated MLPs")
        for name in ("gate_up_proj_bias", "down_proj_bias"):
            if getattr(experts, name, None) is not None:
                _fail(_path(ep, name), "expert biases are not implemented")
        ff = int(down.shape[2])
        act = activation_kind(getattr(experts, "act_fn", None), _path(ep, "act_fn"))
        m[f"{ours}.gate.weight"] = _take(f"{ep}.gate_up_proj", lambda t, f=ff: t[:, :f].reshape(-1, t.shape[2]))
        m[f"{ours}.up.weight"] = _take(f"{ep}.gate_up_proj", lambda t, f=ff: t[:, f:].reshape(-1, t.shape[2]))
        m[f"{ours}.down.weight"] = _take(f"{ep}.down_proj", lambda t: t.permute(1, 0, 2).reshape(t.shape[1], -1))
        return ff, act, (n_experts, top_k)
    if isinstance(experts, nn.ModuleList) and len(experts) == n_experts:  # one gated MLP per expert
        parts = []
        for e, expert in enumerate(experts):
            xp = _path(ep, str(e))
            k = _significant(expert)
            names = ("gate_proj", "up_proj", "down_proj") if "gate_proj" in k else ("w1", "w3", "w2")
            lins = [_linear(k.get(n), _path(xp, n)) for n in names]
            if any(lin.bias is not None for lin in lins):
                _fail(xp, "expert biases are not implemented")
            act_mod = getattr(expert, "act_fn", None)
            parts.append((xp, names, lins[2].in_features, activation_kind(act_mod, _path(xp, "act_fn"))))
        if len({(p[2], p[3]) for p in parts}) != 1:
            _fail(ep, "experts differ in width or activation")
        ff, act = parts[0][2], parts[0][3]
        for ours_name, i in (("gate", 0), ("up", 1)):
            keys = tuple(f"{xp}.{names[i]}.weight" for xp, names, _, _ in parts)
            m[f"{ours}.{ours_name}.weight"] = ((lambda sd, ks=keys: torch.cat([sd[k] for k in ks])), keys)
        keys = tuple(f"{xp}.{names[2]}.weight" for xp, names, _, _ in parts)
        m[f"{ours}.down.weight"] = ((lambda sd, ks=keys: torch.cat([sd[k] for k in ks], dim=1)), keys)
        return ff, act, (n_experts, top_k)
    _fail(ep, f"{type(experts).__name__}: experts neither as fused gate_up_proj/down_proj tensors nor as a "
              f"list of {n_experts} gated MLPs")
    raise AssertionError
