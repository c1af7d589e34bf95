"""Map a Hugging Face mixture-of-experts block onto :class:`blindproof.models.moe.MoE`, by structure.

Recognised: an MLP module with a router child ``gate`` (a ``(n_experts, d_model)`` weight and a
``top_k``) and an ``experts`` child holding either fused parameters ``gate_up_proj``
``(n_experts, 2·d_ff, d_model)`` and ``down_proj`` ``(n_experts, d_model, d_ff)`` (Mixtral in current
``transformers``) or a list of gated MLPs. The routing rule is not read from names: the router is run
on a probe and its weights must equal Mixtral's (softmax, top k, renormalised) or DeepSeek-V3's
(sigmoid scores, selection by score plus ``e_score_correction_bias``, renormalised, times
``routed_scaling_factor``, which is folded into the experts' down projections; group-limited selection
``topk_group`` of ``n_group``, :func:`blindproof.models.moe.group_mask`). Routers that compute anything
else (e.g. no renormalisation) are refused, naming the router. DeepSeek's
``shared_experts`` (a gated MLP added to the routed output) map onto the MoE's shared MLP.
"""

from __future__ import annotations

import torch
from torch import nn

from blindproof.models.hf_common import (NameMap, _close, _fail, _linear, _map_gated_mlp, _path, _probe_input,
                                         _significant, _take, activation_kind)
from blindproof.models.moe import routing_gates


@torch.no_grad()
def _router_kind(router: nn.Module, path: str, top_k: int) -> tuple[str, float, tuple[int, int]]:
    """('softmax' or 'sigmoid', scale of the weights, (n_group, topk_group)) of a router, decided by running
    it on a probe."""
    w = router.weight
    x = _probe_input((7, w.shape[1]), w.dtype, 3)
    try:
        out = router(x)
    except Exception as exc:  # noqa: BLE001 - a router we cannot run is one we cannot map
        _fail(path, f"{type(router).__name__} failed on a probe: {exc}")
    if not (isinstance(out, tuple) and len(out) == 3):
        _fail(path, f"{type(router).__name__} does not return (logits, top-k weights, top-k indices)")
    _, weights, index = out
    logits = x.double() @ w.double().T
    bias = getattr(router, "e_score_correction_bias", None)
    groups = (int(getattr(router, "num_group", 1) or 1), int(getattr(router, "topk_group", 1) or 1))
    if groups[1] > groups[0] or w.shape[0] % groups[0] or (groups[1] < groups[0] and w.shape[0] // groups[0] < 2):
        _fail(path, f"expert groups {groups} do not split {w.shape[0]} experts into groups of at least 2")
    if groups[1] == groups[0]:
        groups = (1, 1)  # every group kept: no limit
    scale = float(getattr(router, "routed_scaling_factor", 1.0) or 1.0)
    candidates = [("softmax", routing_gates(logits, top_k), 1.0),
                  ("softmax-raw", routing_gates(logits, top_k, renorm=False), 1.0)] if groups == (1, 1) else []
    if bias is not None:  # DeepSeek-V3: sigmoid scores, selection biased (group-limited), renormalised, scaled
        candidates.append(("sigmoid", routing_gates(logits, top_k, "sigmoid", bias.double(), groups) * scale, scale))
    for kind, ours, s in candidates:
        if tuple(index.shape) != (7, top_k) or not torch.equal(
                torch.sort(index, -1).values, torch.sort(torch.topk(ours, top_k, -1).indices, -1).values):
            continue
        # routers compute in float32: compare at that precision
        if _close(weights.double(), torch.gather(ours, -1, index.long()), 1e-5):
            return kind, s, groups
    _fail(path, f"{type(router).__name__} routes by no rule implemented: softmax, top {top_k}, renormalised "
                "(Mixtral) or not (Qwen2-MoE), nor sigmoid with a selection bias, top k, renormalised and scaled "
                "(DeepSeek-V3)")
    raise AssertionError


def map_moe(mlp: nn.Module, mp: str, ours: str, m: NameMap) -> tuple[int, str, tuple]:
    """Fill ``m`` for ``ours`` (a :class:`MoE`): (d_ff, activation, (n_experts, top_k, router, shared d_ff,
    (n_group, topk_group), renormalised, shared expert gated))."""

    kids = _significant(mlp)
    extra = sorted(set(kids) - {"gate", "experts", "shared_experts", "shared_expert", "shared_expert_gate"})
    if extra:
        _fail(_path(mp, extra[0]), f"{type(kids[extra[0]]).__name__} is a part of the mixture of experts the "
                                   "Transformer has no place for (expected a router 'gate', 'experts' and "
                                   "optionally 'shared_experts' or a 'shared_expert' with its 'shared_expert_gate')")
    shared_ff, shared_act, shared_gated = 0, None, False
    shared_name = "shared_experts" if "shared_experts" in kids else "shared_expert" if "shared_expert" in kids else None
    if shared_name:  # always-on experts added to the routed output (DeepSeek; Qwen2-MoE with a sigmoid gate)
        tmp: NameMap = {}
        shared_ff, shared_act, shared_bias = _map_gated_mlp(kids[shared_name], _path(mp, shared_name), "s", tmp)
        if shared_bias:
            _fail(_path(mp, shared_name), "shared expert biases are not implemented")
        for part in ("gate", "up", "down"):
            m[f"{ours}.shared_{part}.weight"] = tmp[f"s.{part}.weight"]
    if "shared_expert_gate" in kids:
        sg = _linear(kids["shared_expert_gate"], _path(mp, "shared_expert_gate"))
        if not shared_ff or sg.out_features != 1 or sg.bias is not None:
            _fail(_path(mp, "shared_expert_gate"), "expected a bias-free (d_model -> 1) gate on a shared expert")
        m[f"{ours}.shared_scale.weight"] = _take(_path(mp, "shared_expert_gate.weight"))
        shared_gated = True
    router, rp = kids.get("gate"), _path(mp, "gate")
    w = getattr(router, "weight", None)
    top_k = getattr(router, "top_k", getattr(mlp, "top_k", None))
    if router is None or not isinstance(w, torch.Tensor) or w.dim() != 2 or not isinstance(top_k, int):
        _fail(rp, "expected a router with a (n_experts, d_model) weight and a top_k")
    if getattr(router, "bias", None) is not None:
        _fail(rp, "a router bias is not implemented")
    n_experts = int(w.shape[0])
    kind, scale, groups = _router_kind(router, rp, top_k)
    m[f"{ours}.router.weight"] = _take(f"{rp}.weight")
    if kind == "sigmoid":
        m[f"{ours}.select_bias"] = _take(f"{rp}.e_score_correction_bias")
    scaled = (lambda t: t * scale) if scale != 1.0 else (lambda t: t)  # the routed scale, folded into down
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
        m[f"{ours}.down.weight"] = _take(f"{ep}.down_proj",
                                         lambda t: scaled(t.permute(1, 0, 2).reshape(t.shape[1], -1)))
        if shared_ff and shared_act != act:
            _fail(_path(mp, "shared_experts"), f"activation {shared_act} differs from the experts' {act}")
        return ff, act, (n_experts, top_k, kind.split("-")[0], shared_ff, groups, kind != "softmax-raw",
                                  shared_gated)
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
        m[f"{ours}.down.weight"] = ((lambda sd, ks=keys: scaled(torch.cat([sd[k] for k in ks], dim=1))), keys)
        if shared_ff and shared_act != act:
            _fail(_path(mp, "shared_experts"), f"activation {shared_act} differs from the experts' {act}")
        return ff, act, (n_experts, top_k, kind.split("-")[0], shared_ff, groups, kind != "softmax-raw",
                                  shared_gated)
    _fail(ep, f"{type(experts).__name__}: experts neither as fused gate_up_proj/down_proj tensors nor as a "
              f"list of {n_experts} gated MLPs")
    raise AssertionError
