"""Attack (a): recover a static EE key by matching served weights against the public base weights.

Static EE rewrites every weight with the same secret key, so a server that also knows the base
model sees two copies of one matrix related by a few unknown permutations and rotations:

* the first FFN linear (gate for SwiGLU, up for GELU), after folding the norm gain, is
  ``P_ffn · W · Q`` — rows permuted by the FFN key, columns acted on by the residual key Q (a
  permutation in the ``permute`` tier, an orthogonal matrix in the ``rotate`` tier);
* its rows have norms (and biases, gate/up inner products, down-column norms) that neither key
  changes, so the FFN permutation falls out of an assignment on those invariants;
* with the FFN permutation known, Q is an orthogonal Procrustes problem over all layers at once;
* embedding / LM-head rows (when the server holds them) are ``E[p(i)] · Q``: nearest rows give the
  vocabulary permutation;
* with Q known, each attention head block is ``X · W_h · Q`` for a small unknown X: least squares
  finds X for every pairing of served and base heads, and the exact fits give the head permutation.

Everything here uses only the served model and the base model; the true key is never consulted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from blindproof.models.transformer import Transformer


@dataclass
class RecoveredKey:
    """What the weight-matching attack recovered (row-vector convention: ``h_served = h · Q``)."""

    residual: np.ndarray  # (d, d) estimate of the residual-stream key Q
    ffn_perms: list[np.ndarray]  # per layer: served FFN neuron i is base neuron ffn_perms[l][i]
    ffn_residuals: list[float]  # per layer: ||P W Q_rec - W_served|| / ||W_served|| (≈ 0 when exact)
    vocab_perm: np.ndarray | None  # served token id i is base token id vocab_perm[i]; None if not served
    vocab_source: str | None  # "embed" or "lm_head": which served matrix gave the vocabulary key
    head_perms: list[dict[str, np.ndarray]]  # per layer and projection (q, k, v, o): served head i is base head perm[i]
    head_residuals: list[float]  # per layer: worst relative residual of the per-head least-squares keys
    seconds: float
    details: dict = field(default_factory=dict)

    def residual_permutation(self) -> np.ndarray:
        """The nearest permutation to the residual key: served dim j is base dim perm[j]."""
        return nearest_permutation(self.residual)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy()


def check_supported(model: object) -> Transformer:
    """The attacks target the project's Transformer; anything else gets a clear error."""
    if not isinstance(model, Transformer):
        raise TypeError(f"weight matching needs a blindproof Transformer, got {type(model).__name__}")
    return model


def ffn_first(model: Transformer, layer: int) -> tuple[np.ndarray, np.ndarray | None]:
    """First FFN linear of a block with the preceding norm gain (and shift) folded in.

    Pre-norm blocks feed ``norm(h)`` to the FFN, so the weight the residual key meets is
    ``W · diag(γ)`` (bias ``b + W β`` for LayerNorm); post-norm blocks feed the residual itself.
    Folding both sides the same way makes the attack indifferent to whether EE folded the gains.
    """
    blk = model.blocks[layer]
    lin = blk.mlp.gate if model.cfg.mlp == "swiglu" else blk.mlp.up
    w = _np(lin.weight)
    b = None if lin.bias is None else _np(lin.bias)
    if model.cfg.norm_position == "pre":
        norm = blk.mlp_norm
        beta = getattr(norm, "bias", None)
        if beta is not None:
            shift = w @ _np(beta)
            b = shift if b is None else b + shift
        w = w * _np(norm.weight)[None, :]
    return w, b


def ffn_signatures(model: Transformer, layer: int) -> np.ndarray:
    """Per FFN neuron, quantities that neither the residual key nor the FFN permutation changes.

    Columns: norm of the first linear's row, its bias, and (SwiGLU) the up-row norm times the
    down-column norm — a product, so a per-neuron rescaling of up/down would not hide it either.
    """
    w, b = ffn_first(model, layer)
    cols = [np.linalg.norm(w, axis=1)]
    if b is not None:
        cols.append(b)
    blk = model.blocks[layer]
    if model.cfg.mlp == "swiglu":
        up = _np(blk.mlp.up.weight)
        if model.cfg.norm_position == "pre":
            up = up * _np(blk.mlp_norm.weight)[None, :]
        cols.append(np.linalg.norm(up, axis=1) * np.linalg.norm(_np(blk.mlp.down.weight), axis=0))
    else:
        cols.append(np.linalg.norm(_np(blk.mlp.down.weight), axis=0))
    return np.stack(cols, axis=1)


def match_rows(served: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Assignment of served rows to base rows by nearest (scaled) signature.

    Nearest neighbours are enough when they form a permutation (the usual case: the invariants are
    exact up to rounding); otherwise a full linear assignment settles the collisions.
    """
    if served.shape != base.shape:
        raise ValueError(f"signature shapes differ: served {served.shape} vs base {base.shape}")
    scale = base.std(axis=0) + 1e-300
    s, t = served / scale, base / scale
    _, perm = cKDTree(t).query(s, k=1)
    if len(np.unique(perm)) == len(perm):
        return perm.astype(np.int64)
    cost = ((s[:, None, :] - t[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(len(rows), dtype=np.int64)
    perm[rows] = cols
    return perm


def procrustes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The orthogonal Q minimising ||a Q - b||_F."""
    # torch's SVD: numpy's LAPACK build was an order of magnitude slower here under load
    u, _, vt = torch.linalg.svd(torch.from_numpy(a.T @ b))
    return (u @ vt).numpy()


def nearest_permutation(q: np.ndarray) -> np.ndarray:
    """perm with ``q[perm[j], j]`` maximal overall: served dim j carries base dim perm[j]."""
    rows, cols = linear_sum_assignment(-q)
    perm = np.empty(q.shape[1], dtype=np.int64)
    perm[cols] = rows
    return perm


def nearest_rows(served: np.ndarray, base: np.ndarray, dims: int = 16, seed: int = 0) -> np.ndarray:
    """For each served row, the index of the nearest base row.

    Rows are compared through a fixed random projection to ``dims`` dimensions (a k-d tree there is
    fast for 50k-row vocabularies); distinct embedding rows stay far apart, rounding errors stay small.
    """
    if served.shape[1] != base.shape[1]:
        raise ValueError(f"row widths differ: served {served.shape[1]} vs base {base.shape[1]}")
    proj = np.random.default_rng(seed).standard_normal((base.shape[1], min(dims, base.shape[1])))
    _, idx = cKDTree(base @ proj).query(served @ proj, k=1)
    return idx.astype(np.int64)


def _attn_input(model: Transformer, layer: int, name: str) -> np.ndarray:
    """An attention projection (torch layout) with the attention norm gain folded into its input."""
    blk = model.blocks[layer]
    w = _np(getattr(blk.attn, name).weight)
    if name != "wo" and model.cfg.norm_position == "pre":
        w = w * _np(blk.attn_norm.weight)[None, :]
    return w


def head_keys(served: Transformer, base: Transformer, layer: int, q: np.ndarray) -> tuple[dict, float]:
    """Head permutations and per-head keys of one layer, given the residual key ``q``.

    A served head block is ``X · W_h · Q`` (q/k/v rows) or ``Qᵀ · W_h · Y`` (o columns) for an unknown
    head_dim × head_dim X or Y, so a served block must lie in the row space of its base block: the
    projection residual of every (served head, base head) pair is near zero exactly for the match, and
    the least-squares X is then the head key. Returns ({projection: perm}, worst relative residual).
    """
    cfg, hd = base.cfg, base.cfg.head_dim
    perms, worst = {}, 0.0
    for name, n in (("wq", cfg.n_heads), ("wk", cfg.kv_heads), ("wv", cfg.kv_heads), ("wo", cfg.n_heads)):
        s_w, b_w = _attn_input(served, layer, name), _attn_input(base, layer, name)
        if name == "wo":  # columns per head: transpose to the row form X · W · Q
            s_w, b_w = s_w.T, b_w.T
        # X · W_h lies in the row space of W_h: the residual of projecting onto it measures the fit
        sb = torch.from_numpy(s_w @ q.T).view(n, hd, -1)
        basis = torch.linalg.qr(torch.from_numpy(b_w).view(n, hd, -1).transpose(1, 2)).Q  # (n, d, hd)
        coef = torch.einsum("ird,jdk->ijrk", sb, basis)
        fit = torch.einsum("ijrk,jdk->ijrd", coef, basis)
        resid = ((fit - sb[:, None]).norm(dim=(2, 3)) / sb.norm(dim=(1, 2))[:, None]).numpy()
        rows, cols = linear_sum_assignment(resid)
        perm = np.empty(n, dtype=np.int64)
        perm[rows] = cols
        perms[name[1]] = perm
        worst = max(worst, float(resid[rows, cols].max()))
    return perms, worst


def _vocab_matrix(model: Transformer, which: str) -> np.ndarray:
    if which == "embed":
        return _np(model.embed.weight)
    w = _np(model.lm_head.weight)
    if model.cfg.norm_position == "pre":
        w = w * _np(model.final_norm.weight)[None, :]
    return w


def _shape(model: Transformer) -> dict:
    cfg = model.cfg.to_dict()
    cfg.pop("tie_embeddings")  # a server copy may ship untied tables
    return cfg


def _match_full_rows(served: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Assignment of served rows to base rows minimising total squared distance of whole rows."""
    cost = (served ** 2).sum(1)[:, None] + (base ** 2).sum(1)[None, :] - 2.0 * served @ base.T
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(len(rows), dtype=np.int64)
    perm[rows] = cols
    return perm


def recover_key(served: Transformer, base: Transformer, vocab_from: tuple[str, ...] = (),
                refine: int = 5) -> RecoveredKey:
    """Recover the residual key, the FFN permutations and (optionally) the vocabulary permutation.

    ``vocab_from`` names the served matrices that carry the vocabulary key (``"embed"`` when the
    server embeds, ``"lm_head"`` when it decodes); under the default split the server holds neither.
    ``refine`` bounds the rounds of whole-row re-matching after the first Procrustes fit.
    """
    check_supported(served)
    check_supported(base)
    if _shape(served) != _shape(base):
        raise ValueError("served and base models have different architectures")
    for name in vocab_from:
        if name not in ("embed", "lm_head"):
            raise ValueError(f"vocab_from entries must be 'embed' or 'lm_head', got {name!r}")
    t0 = time.perf_counter()
    perms, a_rows, b_rows = [], [], []
    for layer in range(base.cfg.n_layers):
        perm = match_rows(ffn_signatures(served, layer), ffn_signatures(base, layer))
        perms.append(perm)
        a_rows.append(ffn_first(base, layer)[0][perm])
        b_rows.append(ffn_first(served, layer)[0])
    q = procrustes(np.concatenate(a_rows), np.concatenate(b_rows))
    # refine: re-match whole rows under the current Q, re-fit Q (helps when the deployed weights are
    # only close to the base, e.g. fine-tuned, and the scalar invariants no longer pin every neuron)
    for _ in range(refine):
        new = [_match_full_rows(ffn_first(served, layer)[0] @ q.T, ffn_first(base, layer)[0])
               for layer in range(base.cfg.n_layers)]
        if all((a == b).all() for a, b in zip(new, perms)):
            break
        perms = new
        a_rows = [ffn_first(base, layer)[0][perm] for layer, perm in enumerate(perms)]
        q = procrustes(np.concatenate(a_rows), np.concatenate(b_rows))
    resid = [float(np.linalg.norm(a @ q - b) / np.linalg.norm(b)) for a, b in zip(a_rows, b_rows)]
    vocab_perm, source = None, None
    for name in vocab_from:
        # served row i = base row p(i) · Q, so undo Q and take the nearest base row
        vocab_perm = nearest_rows(_vocab_matrix(served, name) @ q.T, _vocab_matrix(base, name))
        source = name
        break
    heads = [head_keys(served, base, layer, q) for layer in range(base.cfg.n_layers)]
    return RecoveredKey(residual=q, ffn_perms=perms, ffn_residuals=resid, vocab_perm=vocab_perm,
                        vocab_source=source, head_perms=[h[0] for h in heads], head_residuals=[h[1] for h in heads],
                        seconds=time.perf_counter() - t0)
