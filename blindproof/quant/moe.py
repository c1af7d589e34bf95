"""The integer program of a mixture-of-experts MLP: top-k routing proved with the existing ops, experts dense.

Routing (``k`` of ``E`` experts, ties to the lower index, as :func:`blindproof.models.moe.topk_mask`):

1. router logits ``r`` (``linear``, rescaled to int16; DeepSeek-V3: the choice scores, see :func:`route`,
   with its group limit applied first, :func:`_group_limit`, by the same network within each group);
2. pairwise differences ``D[i, j] = r_j − r_i`` (a ``linear`` whose matrix has one +1 and one −1 per row);
3. ``c[i, j] = clamp(D[i, j] + [j < i], 0, 1)``, 1 exactly when expert ``j`` ranks above ``i``
   (``add_weight`` with a 0/1 vector, output range ``[0, 1]``: the clamp is part of the op);
4. ``rank_i = Σ_j c[i, j]`` (a ``linear`` with a 0/1 matrix), ``off_i = clamp(rank_i − (k − 1), 0, 1)``,
   1 for the experts *not* selected;
5. the gates are a softmax over the experts of ``s − 64·off`` (``s`` the router logits at the softmax's
   score exponent): ``exp`` of a score 64 below the row maximum is 0 in the exp table, so the gates are
   exactly the softmax over the selected logits, Mixtral's renormalised top-k weights.

Every step is an op of the program, so the proof covers the routing decision: nothing is computed
outside and trusted. The constant matrices and vectors of steps 2–5 are committed like every weight
(the spec has no public-constant kind); the model commitment fixes them at deployment.

Experts are proved densely: every expert runs on every token and its hidden units are weighted by
its gate (zero when not selected) before one concatenated down projection. The program's shape does
not depend on the routing, so neither the transcript nor the proof's layout reveals it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from blindproof.quant.spec import ACC_BOUND, INT16_MAX, SCORE_HI, SCORE_LO

if TYPE_CHECKING:  # the builder lives in quantizer.py, which imports this module
    from blindproof.quant.builder import _Builder, _Node

WIDE = ACC_BOUND - 1
PENALTY = 64  # real units subtracted from the scores of unselected experts: exp(-64) is 0 in the table


def _const_linear(b: "_Builder", x: "_Node", w: np.ndarray, value: np.ndarray, name: str) -> "_Node":
    """``x @ w.T`` with a constant integer matrix at exponent 0 (exact: the output keeps x's exponent)."""
    out = b.node(name, value, "accumulator", -WIDE, WIDE, derive=lambda: b.exp(x))
    b.weights[name + ".weight"] = lambda: (w.astype(np.int64), "int8", np.zeros(w.shape[0], dtype=np.int64))
    return b.op("linear", [x], out, lambda: {"weight": name + ".weight", "bias": None})


def _clamp01(b: "_Builder", a: "_Node", shift: np.ndarray, value: np.ndarray, name: str) -> "_Node":
    """``clamp(a + shift, 0, 1)`` (``add_weight`` into the range [0, 1]); an integer indicator (exponent 0)."""
    out = b.node(name, value, "activation", 0, 1, fixed=0)
    b.weights[name + ".weight"] = lambda: (shift.astype(np.int64), "int32", 0)
    return b.op("add_weight", [a], out, lambda: {"weight": name + ".weight"})


def _pairs(groups: list[list[int]]) -> list[tuple[int, int]]:
    """Ordered pairs (i, j), i != j, within each group, padded with (0, 0) rows (difference 0, no tie bonus:
    never "beats") to a power-of-two count, so the linears that read their indicators read no padding
    (commitment.check_padding_sound: an add_weight output is not pinned)."""
    pairs = [(i, j) for g in groups for i in g for j in g if i != j]
    width = 1 << (len(pairs) - 1).bit_length()
    return pairs + [(0, 0)] * (width - len(pairs))


def _ranks(b: "_Builder", r: "_Node", n: int, groups: list[list[int]], name: str, sign: int = 1) -> "_Node":
    """``sign`` times the rank of each of the ``n`` entries of ``r`` within its group (0: best; ties to the
    lower index), an accumulator at exponent 0: ``sign · Σ_j clamp(r_j − r_i + [j < i], 0, 1)``."""
    pairs = _pairs(groups)
    diff_w = np.zeros((len(pairs), n), dtype=np.int64)
    for row, (i, j) in enumerate(pairs):
        if i != j:
            diff_w[row, j], diff_w[row, i] = 1, -1
    d = _const_linear(b, r, diff_w, r.value @ diff_w.T, name + ".diff")
    tie = np.array([1 if j < i else 0 for i, j in pairs], dtype=np.int64)
    rv = r.value  # the float values; ties between distinct floats do not occur on real data
    beats = np.stack([(rv[..., j] > rv[..., i]) | ((rv[..., j] == rv[..., i]) & (j < i)) for i, j in pairs], -1)
    c = _clamp01(b, d, tie, beats.astype(np.float64), name + ".beats")
    sum_w = np.zeros((n, len(pairs)), dtype=np.int64)
    for row, (i, j) in enumerate(pairs):
        sum_w[i, row] = sign if i != j else 0
    return _const_linear(b, c, sum_w, c.value @ sum_w.T, name + ".rank")


def _group_limit(b: "_Builder", c: "_Node", n_group: int, topk_group: int, name: str) -> "_Node":
    """DeepSeek-V3's group limit on the choice scores ``c`` (int16): each group scored by the sum of its two
    best scores, the ``topk_group`` best groups kept, the other groups' experts pushed 131068 units below
    any kept one. Returns the masked scores (a rescale output: its padding is pinned)."""
    n = c.value.shape[-1]
    per = n // n_group
    groups = [list(range(g * per, (g + 1) * per)) for g in range(n_group)]
    nrank = _ranks(b, c, n, groups, name + ".in", sign=-1)
    top2 = _clamp01(b, nrank, np.full(n, 2), (nrank.value > -2).astype(np.float64), name + ".top2")
    prod = b.node(name + ".best.acc", c.value * top2.value, "accumulator", -WIDE, WIDE, derive=lambda: b.exp(c))
    b.op("mul", [c, top2], prod)
    best = b.align(prod, c, name + ".best")  # an identity rescale (not elided: the ranges differ): pins padding
    gsum_w = np.zeros((n_group, n), dtype=np.int64)
    for g, members in enumerate(groups):
        gsum_w[g, members] = 1
    gscore = b.requant(_const_linear(b, best, gsum_w, best.value @ gsum_w.T, name + ".group.acc"), name + ".group")
    grank = _ranks(b, gscore, n_group, [list(range(n_group))], name + ".groups")
    off = _clamp01(b, grank, np.full(n_group, -(topk_group - 1)), (grank.value >= topk_group).astype(np.float64),
                   name + ".groups.off")  # 1: the group is dropped
    off4 = b.node(name + ".groups.off4", off.value, "activation", 0, 4, fixed=2)  # ×4 by a left shift: pinned
    b.op("rescale", [off], off4, lambda: {"shift": -2})
    expand = np.repeat(np.eye(n_group, dtype=np.int64), per, axis=0)  # (E, G)
    dropped = _const_linear(b, off4, expand, off4.value @ expand.T, name + ".dropped")
    pen = b.node(name + ".pen", -131068.0 * dropped.value, "accumulator", -WIDE, WIDE, derive=lambda: b.exp(c))
    b.weights[name + ".pen.weight"] = lambda: (np.full(n, -32767, dtype=np.int64), "int16", 0)
    b.op("mul_weight", [dropped], pen, lambda: {"weight": name + ".pen.weight"})
    lo = -131068 - INT16_MAX
    masked = b.node(name + ".masked.raw", c.value, "activation", -(1 << 19), 1 << 19, derive=lambda: b.exp(c))
    b.op("add", [c, pen], masked)
    out = b.node(name + ".masked", c.value, "activation", lo, INT16_MAX, derive=lambda: b.exp(c))
    return b.op("rescale", [masked], out, lambda: {"shift": 0})  # narrower declared range: not elided, pinned


def route(b: "_Builder", x: "_Node", router: np.ndarray, k: int, name: str, kind: str = "softmax",
          select_bias: np.ndarray | None = None, groups: tuple[int, int] = (1, 1), renorm: bool = True) -> "_Node":
    """Gates ``(batch, seq, E)`` at exponent ``prob_exp``, zero off the k selected experts.

    ``softmax`` (Mixtral): experts ranked by their logits, gates a softmax over the selected logits.
    ``sigmoid`` (DeepSeek-V3): ranked by ``sigmoid(r) − 1/2 + bias`` (a centred sigmoid table, then the bias:
    the shift by 1/2 changes no ranking), gates a softmax over the selected ``log sigmoid(r) + log 2``
    (a table), which is ``sigmoid(r_i) / Σ_selected sigmoid(r_j)``."""
    n_exp = router.shape[0]
    acc = b.linear(x, router, None, name + ".logits.acc")
    r = b.requant(acc, name + ".logits")
    se = b.cfg.score_exp
    if kind == "sigmoid":
        rank_in = b.requant(b.add_weight(b.lookup(r, "sigmoid_c", name + ".sig"), select_bias, name + ".choice.acc"),
                            name + ".choice")
        if groups[1] < groups[0]:
            rank_in = _group_limit(b, rank_in, groups[0], groups[1], name + ".grouplimit")
        ls = -np.logaddexp(0.0, -r.value) + np.log(2.0)
        s = b.lookup_fixed(r, "logsigmoid_c", ls, name + ".scores", se, SCORE_LO, SCORE_HI)
    else:
        rank_in = r
        s = b.requant(acc, name + ".scores", SCORE_LO, SCORE_HI, fixed=se)
    if not renorm:  # Qwen2-MoE: a softmax over every expert, then zero off the top k (no renormalisation)
        probs = b.merge_heads(b.softmax(b.split_heads(s, 1, name + ".scores.h"), False, name + ".probs.h"),
                              name + ".probs")
        nrank = _ranks(b, rank_in, n_exp, [list(range(n_exp))], name, sign=-1)
        on = _clamp01(b, nrank, np.full(n_exp, k), (nrank.value > -k).astype(np.float64), name + ".on")
        gates = b.node(name + ".gates", probs.value * on.value, "accumulator", -WIDE, WIDE,
                       derive=lambda: b.exp(probs))
        return b.op("mul", [probs, on], gates)
    rank = _ranks(b, rank_in, n_exp, [list(range(n_exp))], name)
    off = _clamp01(b, rank, np.full(n_exp, -(k - 1)), (rank.value >= k).astype(np.float64), name + ".off")
    # -64·off by an elementwise product (mul_weight), which unlike a linear reads no padding
    pen = b.node(name + ".pen.acc", -PENALTY * off.value, "accumulator", -WIDE, WIDE, fixed=0)
    b.weights[name + ".pen.acc.weight"] = lambda: (np.full(n_exp, -PENALTY, dtype=np.int64), "int16", 0)
    b.op("mul_weight", [off], pen, lambda: {"weight": name + ".pen.acc.weight"})
    pen_s = b.requant(pen, name + ".pen", SCORE_LO, SCORE_HI, fixed=se)  # a left shift: exact
    masked = b.add_fixed(s, pen_s, name + ".masked", SCORE_LO, SCORE_HI, se)
    probs = b.softmax(b.split_heads(masked, 1, name + ".masked.h"), False, name + ".gates.h")
    return b.merge_heads(probs, name + ".gates")


def _gated(b: "_Builder", x: "_Node", sd: dict[str, np.ndarray], p: str, n: str, act_fn: str) -> "_Node":
    """act(gate(x)) ⊙ up(x), rescaled (weights ``{p}gate``, ``{p}up``)."""
    up = b.requant(b.linear(x, sd[p + "up.weight"], None, n + "up.acc"), n + "up")
    gate = b.requant(b.linear(x, sd[p + "gate.weight"], None, n + "gate.acc"), n + "gate")
    return b.requant(b.mul(b.lookup(gate, act_fn, n + act_fn), up, n + "prod.acc"), n + "prod")


def moe_mlp(b: "_Builder", x: "_Node", sd: dict[str, np.ndarray], p: str, n: str, d_ff: int, k: int,
            act_fn: str, kind: str = "softmax", shared_d_ff: int = 0, groups: tuple[int, int] = (1, 1),
            renorm: bool = True) -> "_Node":
    """The MoE block on the normed stream ``x``: routing as above, then the experts densely (plus the
    shared experts, if any); returns the block's output (the residual add follows)."""
    gates = route(b, x, sd[p + "router.weight"], k, n + "router", kind, sd.get(p + "select_bias"), groups, renorm)
    n_exp = sd[p + "router.weight"].shape[0]
    h = _gated(b, x, sd, p, n, act_fn)
    # one bit coarser, by a rescale: its output's padding is pinned to zero, so the linear below may read it
    g = b.requant(gates, n + "gates.r", 0, 1 << (b.cfg.prob_exp - 1), fixed=b.cfg.prob_exp - 1)
    spread = np.repeat(np.eye(n_exp, dtype=np.int64), d_ff, axis=0)  # (E·d_ff, E): gate e on expert e's units
    wide = b.requant(_const_linear(b, g, spread, g.value @ spread.T, n + "gates.wide.acc"), n + "gates.wide")
    weighted = b.requant(b.mul(h, wide, n + "weighted.acc"), n + "weighted")
    routed = b.linear(weighted, sd[p + "down.weight"], None, n + "down.acc")
    if not shared_d_ff:
        return routed
    shared = _gated(b, x, sd, p + "shared_", n + "shared.", act_fn)
    shared_out = b.linear(shared, sd[p + "shared_down.weight"], None, n + "shared.down.acc")
    if p + "shared_scale.weight" in sd:  # Qwen2-MoE: sigmoid(x·w) per token (a centred table, then + 1/2)
        sc = b.requant(b.linear(x, sd[p + "shared_scale.weight"], None, n + "shared.scale.acc"), n + "shared.scale")
        sig = b.add_weight(b.lookup(sc, "sigmoid_c", n + "shared.sig_c"), np.array([0.5]), n + "shared.sig")
        d = shared_out.value.shape[-1]
        wide = b.requant(_const_linear(b, sig, np.ones((d, 1), dtype=np.int64), np.repeat(sig.value, d, -1),
                                       n + "shared.sig.wide.acc"), n + "shared.sig.wide")
        shared_out = b.mul(b.requant(shared_out, n + "shared.out"), wide, n + "shared.gated.acc")
    return b.add(routed, shared_out, n + "sum")
