"""Per-operation equivariance (docs/ee.md), each with a must-fail counterpart."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from blindproof.ee.keys import EEKey
from blindproof.ee.linalg import (DenseKey, PermKey, haar_orthogonal, log_uniform, orthogonal_fixing_ones,
                                  random_invertible, rope_compatible)
from blindproof.ee.plan import KeyPlan
from blindproof.models.transformer import Attention, KVCache, RMSNorm, Transformer, TransformerConfig, apply_rope, \
    rope_tables
from blindproof.models.workloads import init_weights

D = torch.float64
rng = np.random.default_rng(0)


def t(a):
    return torch.as_tensor(a, dtype=D)


def close(a, b, tol=1e-12):
    return float((a - b).abs().max()) <= tol * max(1.0, float(b.abs().max()))


def test_key_operations_match_their_dense_matrices():
    n = 7
    keys = [PermKey(rng.permutation(n)), PermKey(rng.permutation(n), log_uniform(rng, n)),
            DenseKey(t(random_invertible(rng, n)))]
    x, w = t(rng.standard_normal((3, n))), t(rng.standard_normal((n, 5)))
    for k in keys:
        m = k.dense()
        assert close(k.apply(x), x @ m)
        assert close(k.unapply(k.apply(x)), x)
        assert close(k.pull(w), torch.linalg.inv(m) @ w)
    with pytest.raises(ValueError, match="permutation"):
        PermKey(np.array([0, 0, 1]))
    with pytest.raises(ValueError, match="width 7"):
        keys[0].apply(torch.zeros(2, 6, dtype=D))


def test_linear_rewrite_is_exact_for_any_invertible_keys():
    a, b = DenseKey(t(random_invertible(rng, 6))), DenseKey(t(random_invertible(rng, 4)))
    w, bias, x = t(rng.standard_normal((6, 4))), t(rng.standard_normal(4)), t(rng.standard_normal((5, 6)))
    w2, b2 = b.apply(a.pull(w)), b.apply(bias)
    assert close(a.apply(x) @ w2 + b2, b.apply(x @ w + bias))


def test_relu_commutes_with_positive_scaled_permutations_only():
    x = t(rng.standard_normal((4, 9)))
    k = PermKey(rng.permutation(9), log_uniform(rng, 9))
    assert close(torch.relu(k.apply(x)), k.apply(torch.relu(x)))
    neg = PermKey(rng.permutation(9), -log_uniform(rng, 9))
    assert not close(torch.relu(neg.apply(x)), neg.apply(torch.relu(x)), 1e-3)


@pytest.mark.parametrize("act", [F.silu, F.gelu, lambda z: F.gelu(z, approximate="tanh")])
def test_smooth_activations_commute_with_permutations_but_not_scales(act):
    x = t(rng.standard_normal((4, 9)))
    p = PermKey(rng.permutation(9))
    assert close(act(p.apply(x)), p.apply(act(x)))
    s = PermKey(rng.permutation(9), log_uniform(rng, 9))
    assert not close(act(s.apply(x)), s.apply(act(x)), 1e-3)


def test_swiglu_takes_a_diagonal_on_the_up_branch():
    g, u = t(rng.standard_normal((4, 9))), t(rng.standard_normal((4, 9)))
    perm = rng.permutation(9)
    gate, up = PermKey(perm), PermKey(perm, log_uniform(rng, 9))
    assert close(F.silu(gate.apply(g)) * up.apply(u), up.apply(F.silu(g) * u))


def test_rmsnorm_commutes_with_orthogonal_keys_once_the_gain_is_folded():
    n = 16
    q = DenseKey(t(haar_orthogonal(rng, n)))
    norm = RMSNorm(n, 1e-5).to(D)
    x = t(rng.standard_normal((3, n)))
    with torch.no_grad():
        assert close(norm(q.apply(x)), q.apply(norm(x)))  # gain 1
        norm.weight.copy_(t(1 + 0.3 * rng.standard_normal(n)))
        assert not close(norm(q.apply(x)), q.apply(norm(x)), 1e-3)  # gain left in place breaks it


def test_layernorm_needs_an_orthogonal_key_that_fixes_the_ones_vector():
    n = 16
    fixed = orthogonal_fixing_ones(rng, n)
    assert np.allclose(fixed @ fixed.T, np.eye(n)) and np.allclose(fixed @ np.ones(n), np.ones(n))
    x = t(rng.standard_normal((3, n)) + 2.0)
    ln = torch.nn.LayerNorm(n, elementwise_affine=False).to(D)
    good, bad = DenseKey(t(fixed)), DenseKey(t(haar_orthogonal(rng, n)))
    assert close(ln(good.apply(x)), good.apply(ln(x)))
    assert not close(ln(bad.apply(x)), bad.apply(ln(x)), 1e-3)
    p = PermKey(rng.permutation(n))
    assert close(ln(p.apply(x)), p.apply(ln(x)))


def test_rope_compatible_keys_commute_with_every_position_rotation():
    hd, seq = 8, 20
    cos, sin = rope_tables(hd, seq, 10000.0, D)
    x = t(rng.standard_normal((1, seq, hd)))
    b = t(rope_compatible(rng, hd))
    assert close(apply_rope(x @ b, cos, sin), apply_rope(x, cos, sin) @ b)
    generic = t(random_invertible(rng, hd))
    assert not close(apply_rope(x @ generic, cos, sin), apply_rope(x, cos, sin) @ generic, 1e-3)
    # the key side B^-T is again RoPE-compatible, so q.k is preserved at any pair of positions
    k = torch.linalg.inv(b).T
    assert close(apply_rope(x @ k, cos, sin), apply_rope(x, cos, sin) @ k)


def _keyed_attention(attn: Attention, plan: KeyPlan) -> Attention:
    """The attention module rewritten with one layer's head keys and an identity stream key."""
    new = Attention(attn.cfg).to(D)
    hk = plan.heads(0)
    with torch.no_grad():
        for name, key in (("wq", hk.q), ("wk", hk.k), ("wv", hk.v)):
            src, dst = getattr(attn, name), getattr(new, name)
            dst.weight.copy_(key.apply(src.weight.T).T)
            dst.bias.copy_(key.apply(src.bias))
        new.wo.weight.copy_(hk.o.pull(attn.wo.weight.T).T)
        new.wo.bias.copy_(attn.wo.bias)
    return new


@pytest.mark.parametrize("tier", ["permute", "rotate"])
@pytest.mark.parametrize("position", ["rope", "learned"])
def test_attention_with_gqa_and_per_head_keys_is_exact_with_cache(tier, position):
    cfg = TransformerConfig(vocab_size=10, d_model=48, n_layers=1, n_heads=6, n_kv_heads=2, d_ff=8, max_seq=32,
                            position=position, bias=True)
    model = init_weights(Transformer(cfg), 3).to(D)
    attn = model.blocks[0].attn
    new = _keyed_attention(attn, KeyPlan(model, EEKey(bytes(32)), tier))
    rope = (model.rope_cos, model.rope_sin) if position == "rope" else None
    x = t(rng.standard_normal((2, 10, 48)))
    with torch.no_grad():
        ref = attn(x, 0, rope, None, 0)
        c = KVCache(1)
        got = torch.cat([new(x[:, :6], 0, rope, c, 0), new(x[:, 6:], 6, rope, c, 0)], dim=1)
    assert close(got, ref, 1e-11)
    if tier == "rotate":
        assert not torch.allclose(new.wq.weight, attn.wq.weight)


def test_rope_attention_breaks_with_a_generic_qk_key():
    cfg = TransformerConfig(vocab_size=10, d_model=16, n_layers=1, n_heads=2, d_ff=8, max_seq=16)
    model = init_weights(Transformer(cfg), 4).to(D)
    attn = model.blocks[0].attn
    b = torch.block_diag(*[t(random_invertible(rng, 8)) for _ in range(2)])
    new = Attention(cfg).to(D)
    with torch.no_grad():
        new.load_state_dict(attn.state_dict())
        new.wq.weight.copy_((attn.wq.weight.T @ b).T)
        new.wk.weight.copy_((attn.wk.weight.T @ torch.linalg.inv(b).T).T)
        x = t(rng.standard_normal((1, 8, 16)))
        rope = (model.rope_cos, model.rope_sin)
        assert not close(new(x, 0, rope, None, 0), attn(x, 0, rope, None, 0), 1e-3)


def test_embedding_and_head_follow_the_vocabulary_permutation():
    v, d = 50, 8
    vocab, s = PermKey(rng.permutation(v)), DenseKey(t(haar_orthogonal(rng, d)))
    e = t(rng.standard_normal((v, d)))
    e2 = s.apply(vocab.pull(e))  # rows permuted, columns keyed
    tokens = torch.tensor([[0, 7, 49, 3]])
    assert close(e2[vocab.inv[tokens]], s.apply(e[tokens]))
    w_u = e.T  # tied head (math form)
    w_u2 = vocab.apply(s.pull(w_u))
    h = t(rng.standard_normal((1, 4, d)))
    assert close(vocab.unapply(s.apply(h) @ w_u2), h @ w_u)
    assert math.isclose(float(torch.linalg.det(s.dense()).abs()), 1.0)
