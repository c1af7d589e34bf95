"""The relations of the integer model hold on honest traces and reject tampered ones."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blindproof.models.transformer import Transformer, TransformerConfig
from blindproof.models.workloads import TINY_LLAMA, init_weights
from blindproof.quant import quantize
from blindproof.quant.check import RelationError, check_trace
from blindproof.quant.reference import div_round, isqrt, shift_round

BERT = TransformerConfig(vocab_size=200, d_model=64, n_layers=1, n_heads=4, d_ff=128, max_seq=32, norm="layer",
                         norm_position="post", mlp="gelu", position="learned", bias=True, causal=False,
                         embed_norm=True, type_vocab_size=2, output="mean_pool")


def _setup(cfg: TransformerConfig):
    model = init_weights(Transformer(cfg), 0).eval()
    g = torch.Generator().manual_seed(1)
    qm = quantize(model, torch.randint(0, cfg.vocab_size, (2, 12), generator=g))
    x = torch.randint(0, cfg.vocab_size, (1, 10), generator=g)
    return qm, qm.run(x)


@pytest.fixture(scope="module")
def llama():
    return _setup(TINY_LLAMA)


@pytest.fixture(scope="module")
def bert():
    return _setup(BERT)


def test_honest_traces_satisfy_every_relation(llama, bert):
    for qm, tr in (llama, bert):
        check_trace(qm.spec, qm.weights, tr)
        assert {op.kind for op in qm.spec.ops} <= {
            "embed", "linear", "rescale", "add", "add_weight", "mul", "mul_weight", "lookup", "norm",
            "split_heads", "merge_heads", "rope", "qk", "softmax", "pv", "mean_pool"}


def test_relations_hold_at_a_position_offset():
    model = init_weights(Transformer(TINY_LLAMA), 0).eval()
    qm = quantize(model, torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(1)))
    tr = qm.run(torch.randint(0, 256, (1, 6)), start=5)
    check_trace(qm.spec, qm.weights, tr, start=5)
    with pytest.raises(RelationError):
        check_trace(qm.spec, qm.weights, tr, start=0)


def _tampered(tr, fn):
    bad = copy.copy(tr)
    bad.tensors = dict(tr.tensors)
    fn(bad.tensors)
    return bad


def _first(qm, kind: str, pred=lambda op: True) -> str:
    return next(op.output for op in qm.spec.ops if op.kind == kind and pred(op))


def test_rejects_tampered_output(llama):
    qm, tr = llama
    out = qm.spec.outputs[0]

    def f(t):
        t[out] = t[out].copy()
        t[out][0, 0, 0] += 1
    with pytest.raises(RelationError):
        check_trace(qm.spec, qm.weights, _tampered(tr, f))


def test_rejects_remainder_out_of_range(llama):
    qm, tr = llama
    name = _first(qm, "rescale", lambda op: isinstance(op.params["shift"], int) and op.params["shift"] > 0)
    s = next(op.params["shift"] for op in qm.spec.ops if op.output == name)

    def f(t):  # same equation x + 2^(s-1) = q 2^s + r, but r = r_true + 2^s and q one lower
        t[f"{name}/q"] = t[f"{name}/q"] - 1
        t[f"{name}/r"] = t[f"{name}/r"] + (1 << s)
    with pytest.raises(RelationError, match="0 <= r"):
        check_trace(qm.spec, qm.weights, _tampered(tr, f))


def test_rejects_inflated_softmax_shift(llama):
    qm, tr = llama
    name = _first(qm, "softmax")
    table_lo = qm.spec.tables[next(op.params["table"] for op in qm.spec.ops if op.output == name)]

    def f(t):  # a huge shift: every exponential underflows, every relation but the sum bound still holds
        m = t[f"{name}/max"] + (1 << 17)
        s = t[next(op.inputs[0] for op in qm.spec.ops if op.output == name)]
        allowed = t[f"{name}/e"] > 0
        t[f"{name}/max"] = m
        t[f"{name}/diff"] = np.where(allowed | (t[f"{name}/diff"] > 0), m - s, 0)
        t[f"{name}/z"] = np.minimum(t[f"{name}/diff"], 65535)
        t[f"{name}/e"] = np.zeros_like(t[f"{name}/e"])
        t[f"{name}/sum"] = np.zeros_like(t[f"{name}/sum"])
    assert table_lo.lo == 0
    with pytest.raises(RelationError, match="sum >= T"):
        check_trace(qm.spec, qm.weights, _tampered(tr, f))


def test_rejects_slightly_inflated_softmax_shift(llama):
    qm, tr = llama
    name = _first(qm, "softmax")
    s = tr.tensors[next(op.inputs[0] for op in qm.spec.ops if op.output == name)]
    table = qm.spec.tables["softmax.exp"]
    from blindproof.quant.functions import table_values
    values = table_values(table)

    def f(t):  # shift up by 1: everything stays consistent and the sum still passes 2^15 on long rows
        allowed = np.arange(s.shape[-1])[None, :] <= np.arange(s.shape[-2])[:, None]
        m = t[f"{name}/max"] + (np.arange(s.shape[-2]) >= 1)[:, None]  # row 0 has one key: leave it
        diff = np.where(allowed, m - s, 0)
        z = np.minimum(diff, 65535)
        e = np.where(allowed, values[z], 0)
        tot = e.sum(-1, keepdims=True)
        num = e << 14
        p = np.floor_divide(num + tot // 2, tot)
        t.update({f"{name}/max": m, f"{name}/diff": diff, f"{name}/z": z, f"{name}/e": e, f"{name}/sum": tot,
                  f"{name}/r": num + tot // 2 - p * tot, name: p})
    bad = _tampered(tr, f)
    assert np.all(bad.tensors[f"{name}/sum"] >= values[0])  # the sum rule alone does not catch it
    with pytest.raises(RelationError, match="argmax"):
        check_trace(qm.spec, qm.weights, bad)


def test_rejects_wrong_inverse_sqrt(llama):
    qm, tr = llama
    name = _first(qm, "norm")

    def f(t):
        t[f"{name}/s"] = t[f"{name}/s"] + 1
    with pytest.raises(RelationError, match="s\\^2"):
        check_trace(qm.spec, qm.weights, _tampered(tr, f))


def test_rejects_wrong_layernorm_mean(bert):
    qm, tr = bert
    name = _first(qm, "norm")

    def f(t):
        t[f"{name}/mean"] = t[f"{name}/mean"] + 1
    with pytest.raises(RelationError, match="mean"):
        check_trace(qm.spec, qm.weights, _tampered(tr, f))


def test_rejects_changed_intermediate(llama):
    qm, tr = llama
    name = _first(qm, "lookup")

    def f(t):
        t[name] = t[name].copy()
        t[name].flat[3] += 1
    with pytest.raises(RelationError, match="T\\[index\\]"):
        check_trace(qm.spec, qm.weights, _tampered(tr, f))


def test_rejects_other_weights(llama):
    qm, tr = llama
    w = dict(qm.weights)
    name = next(n for n in w if n.endswith(".weight") and w[n].ndim == 2 and "embed" not in n)
    w[name] = w[name].copy()
    w[name][0, 0] = w[name][0, 0] + (1 if w[name][0, 0] < 127 else -1)
    with pytest.raises(RelationError):
        check_trace(qm.spec, w, tr)


@pytest.mark.parametrize("x,s,q", [(5, 1, 3), (-5, 1, -2), (6, 2, 2), (-6, 2, -1), (-7, 2, -2), (7, 0, 7), (3, -2, 12)])
def test_rounding_convention(x, s, q):
    got, r = shift_round(np.array([x]), s)
    assert int(got[0]) == q  # floor((x + 2^(s-1)) / 2^s): halves round up (toward +infinity)
    assert 0 <= int(r[0]) < max(1, 1 << max(s, 0))


def test_division_and_isqrt_exhaustively_small():
    n = np.arange(-300, 300)
    for d in (1, 2, 3, 7, 64):
        q, r = div_round(n, d)
        assert np.all(n + d // 2 == q * d + r) and np.all((0 <= r) & (r < d))
        np.testing.assert_array_equal(q, np.floor(n / d + 0.5).astype(np.int64))
    v = np.concatenate([np.arange(0, 5000), (1 << 30) - np.arange(1, 5000), np.arange(1, 40) ** 2 * 1000003])
    s = isqrt(v)
    assert np.all(s * s <= v) and np.all(v < (s + 1) * (s + 1))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(norm=st.sampled_from(["rms", "layer"]), pos=st.sampled_from(["pre", "post"]),
       mlp=st.sampled_from(["swiglu", "gelu"]), position=st.sampled_from(["rope", "learned"]),
       bias=st.booleans(), causal=st.booleans(), kv=st.sampled_from([1, 2, 4]), seed=st.integers(0, 1000))
def test_any_architecture_mix_quantizes_with_valid_relations(norm, pos, mlp, position, bias, causal, kv, seed):
    cfg = TransformerConfig(vocab_size=64, d_model=32, n_layers=1, n_heads=4, n_kv_heads=kv, d_ff=64, max_seq=16,
                            norm=norm, norm_position=pos, mlp=mlp, position=position, bias=bias, causal=causal)
    model = init_weights(Transformer(cfg), seed).eval()
    g = torch.Generator().manual_seed(seed)
    qm = quantize(model, torch.randint(0, 64, (2, 8), generator=g))
    x = torch.randint(0, 64, (1, 8), generator=g)
    tr = qm.run(x)
    check_trace(qm.spec, qm.weights, tr)
    with torch.no_grad():
        f = model(x).double().numpy()
    q = qm.decode(tr)
    assert ((f * q).sum(-1) / np.linalg.norm(f, axis=-1) / np.linalg.norm(q, axis=-1)).min() >= 0.99
