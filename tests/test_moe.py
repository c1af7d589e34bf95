"""Mixture of experts: top-k routing (float and integer), dense experts equal to sparse dispatch, and a
proof that rejects a forged routing decision."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from blindproof.models.moe import MoE, routing_gates, topk_mask
from blindproof.models.transformer import Transformer, TransformerConfig
from blindproof.quant import quantize


def test_topk_mask_breaks_ties_to_the_lower_index():
    s = torch.tensor([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [0.0, -1.0, 5.0, 4.0]])
    assert topk_mask(s, 2).tolist() == [[False, True, True, False], [True, True, False, False],
                                        [False, False, True, True]]
    assert topk_mask(s, 1).tolist() == [[False, True, False, False], [True, False, False, False],
                                        [False, False, True, False]]


def test_gates_are_mixtrals_renormalised_top_k():
    logits = torch.randn(50, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    top, idx = torch.topk(torch.softmax(logits, -1), 2, -1)
    ref = torch.zeros_like(logits).scatter(-1, idx, top / top.sum(-1, keepdim=True))
    assert torch.allclose(routing_gates(logits, 2), ref, atol=1e-15)
    raw = torch.zeros_like(logits).scatter(-1, idx, top)  # Qwen2-MoE: the same top k, not renormalised
    assert torch.allclose(routing_gates(logits, 2, renorm=False), raw, atol=1e-15)


def test_sigmoid_gates_are_deepseeks():
    g = torch.Generator().manual_seed(1)
    logits, bias = torch.randn(40, 8, generator=g, dtype=torch.float64), 0.3 * torch.randn(8, generator=g).double()
    s = torch.sigmoid(logits)
    idx = torch.topk(s + bias, 2, -1).indices  # the bias moves the choice ...
    w = s.gather(1, idx)
    ref = torch.zeros_like(s).scatter(-1, idx, w / w.sum(-1, keepdim=True))  # ... not the weights
    assert torch.allclose(routing_gates(logits, 2, "sigmoid", bias), ref, atol=1e-15)
    assert not torch.equal(topk_mask(s + bias, 2), topk_mask(s, 2))  # the bias changed some choices
    sel = ref > 0  # the integer model's form: a softmax of log sigmoid over the selected experts
    alt = torch.softmax(torch.nn.functional.logsigmoid(logits).masked_fill(~sel, float("-inf")), -1)
    assert torch.allclose(alt, ref, atol=1e-15)


def test_dense_experts_equal_sparse_dispatch():
    torch.manual_seed(0)
    moe = MoE(16, 8, 4, 2, "silu", "none").double()
    x = torch.randn(3, 5, 16, dtype=torch.float64)
    with torch.no_grad():
        dense = moe(x)
        g = moe.gates(x)
        sparse = torch.zeros_like(x)
        for e in range(4):  # only the selected tokens through expert e, as a sparse server would
            rows = slice(e * 8, (e + 1) * 8)
            sel = g[..., e] > 0
            h = torch.nn.functional.silu(x[sel] @ moe.gate.weight[rows].T) * (x[sel] @ moe.up.weight[rows].T)
            sparse[sel] += g[..., e][sel, None] * (h @ moe.down.weight[:, rows].T)
    assert (g > 0).sum(-1).eq(2).all()
    assert torch.allclose(dense, sparse, atol=1e-13)


def _tiny_moe(n_experts: int = 3, k: int = 2, groups: tuple[int, int] = (1, 1)) -> Transformer:
    grouped = groups != (1, 1)
    cfg = TransformerConfig(vocab_size=64, d_model=32, n_layers=1, n_heads=4, d_ff=16, n_kv_heads=2, max_seq=16,
                            n_experts=n_experts, experts_top_k=k, router="sigmoid" if grouped else "softmax",
                            expert_groups=groups)
    torch.manual_seed(1)
    m = Transformer(cfg).double().eval()
    if grouped:
        with torch.no_grad():
            m.blocks[0].mlp.router.weight.mul_(20.0)  # spread the sigmoid scores so groups differ clearly
            m.blocks[0].mlp.select_bias.copy_(0.05 * torch.randn(n_experts, dtype=torch.float64))
    return m


def _float_gates(m, ids) -> np.ndarray:
    """The float model's routing gates of the first block's experts."""
    with torch.no_grad():
        blk, h = m.blocks[0], m.embed_tokens(ids)
        h = h + blk.attn(blk.attn_norm(h), 0, (m.rope_cos, m.rope_sin), None, 0)
        return blk.mlp.gates(blk.mlp_norm(h)).numpy()


@pytest.mark.parametrize("n_experts,k", [(3, 2), (4, 1)])
def test_integer_routing_selects_the_float_experts(n_experts, k):
    m = _tiny_moe(n_experts, k)
    ids = torch.randint(0, 64, (4, 12), generator=torch.Generator().manual_seed(2))
    qm = quantize(m, ids)
    trace = qm.run(ids.numpy())
    g = _float_gates(m, ids)
    gi = trace.tensors["b0.mlp.router.gates"]
    assert ((gi > 0) == (g > 0)).mean() >= 0.97  # the integer logits are int16: near-ties may differ
    assert ((gi > 0).sum(-1) == k).all()  # exactly k experts per token, zero gates elsewhere
    assert np.abs(gi / 2.0 ** 14 - g).max() < 0.02
    with pytest.raises(ValueError, match="experts_top_k"):
        TransformerConfig(vocab_size=8, d_model=8, n_layers=1, n_heads=2, d_ff=8, n_experts=2, experts_top_k=3)


def test_group_limited_routing_keeps_the_best_groups():
    m = _tiny_moe(8, 3, (4, 2))
    ids = torch.randint(0, 64, (4, 12), generator=torch.Generator().manual_seed(5))
    qm = quantize(m, ids)
    trace = qm.run(ids.numpy())
    g = _float_gates(m, ids)
    sel = trace.tensors["b0.mlp.router.off"] == 0  # (a selected expert's gate may round to 0 at 2^-14)
    groups_used = sel.reshape(*sel.shape[:-1], 4, 2).any(-1).sum(-1)
    assert (sel.sum(-1) == 3).all() and (groups_used <= 2).all()  # 3 experts from at most 2 groups
    assert ((g > 0).reshape(*g.shape[:-1], 4, 2).any(-1).sum(-1) <= 2).all()
    assert (sel == (g > 0)).all(-1).mean() >= 0.9
    with pytest.raises(ValueError, match="expert_groups"):
        TransformerConfig(vocab_size=8, d_model=8, n_layers=1, n_heads=2, d_ff=8, n_experts=4, experts_top_k=1,
                          expert_groups=(2, 1))  # the group limit is the sigmoid router's


@pytest.mark.parametrize("groups,target", [((1, 1), "b0.mlp.router.off"),
                                           ((2, 1), "b0.mlp.router.grouplimit.groups.off")])
def test_forged_routing_is_rejected(groups, target):
    """A prover that routes one token to another expert (or keeps another expert group), computing
    everything after it honestly from that choice, cannot make a proof that verifies: the selection is a
    relation of the program."""
    from blindproof.zk.proof.keys import CommitmentKey
    from blindproof.zk.proof.prover import ModelProver
    from blindproof.quant import reference
    from blindproof.zk.proof.verifier import verify_model_proof

    m = _tiny_moe(4, 1, groups)
    qm = quantize(m, torch.randint(0, 64, (4, 12), generator=torch.Generator().manual_seed(3)))
    prover = ModelProver.create(qm, CommitmentKey(b"\x11" * 32))
    inputs = qm.encode(np.random.default_rng(4).integers(0, 64, (1, 8)))
    honest = prover.prove(inputs, rng=np.random.default_rng(0))
    assert verify_model_proof(prover.commitment, honest.to_bytes()).ok

    real = reference._Run.add_weight

    def forged(self, op, a):
        y, wit = real(self, op, a)
        if op.output == target:
            y = y.copy()
            n = y.shape[-1]
            sel = int(np.argmin(y[0, 0]))  # token 0's expert or group (off = 0) ...
            y[0, 0] = 1
            y[0, 0, (sel + 1) % n] = 0  # ... swapped for the next one
        return y, wit

    reference._Run.add_weight = forged
    try:
        bad = reference.run_program(qm.spec, qm.weights, inputs)
    finally:
        reference._Run.add_weight = real
    out = qm.spec.outputs[0]
    assert not np.array_equal(bad.tensors[out], prover.model.run(inputs["tokens"]).tensors[out])
    proof = prover.prove(inputs, trace=bad, strict=False, rng=np.random.default_rng(1))
    res = verify_model_proof(prover.commitment, proof.to_bytes())
    assert not res.ok and "add_weight" in res.reason, res.reason
