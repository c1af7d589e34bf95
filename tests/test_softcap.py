"""Soft-capping ``c·tanh(x/c)`` (Gemma 2) in the integer model: its public table, the lookup proof over it
(completeness and must-reject), and the programs that use it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from blindproof.models.transformer import Transformer, TransformerConfig, softcap
from blindproof.zk.ops import lookup_ops
from blindproof.quant import quantize
from blindproof.quant.spec import Op, TensorSpec
from blindproof.quant.tables import softcap_table
from blindproof.quant.functions import table_values

from zk_nonlinear_harness import REJECTIONS, one_op_spec, run, same_claims, trace_values

CAP, IN_EXP, OUT_EXP = 2.0, 12, 12
BOUND = int(np.ceil(CAP * 2 ** OUT_EXP))


def test_table_is_c_tanh_x_over_c():
    ts = softcap_table("cap", CAP, IN_EXP, OUT_EXP)
    vals = table_values(ts)
    x = np.arange(ts.lo, ts.hi + 1) * 2.0 ** -IN_EXP
    assert np.abs(vals - CAP * np.tanh(x / CAP) * 2 ** OUT_EXP).max() <= 0.5
    assert vals[-ts.lo] == 0 and np.abs(vals).max() <= BOUND  # f(0) = 0: the lookup's padding row
    assert softcap_table("cap", 3.0, IN_EXP, OUT_EXP).digest != ts.digest  # the constant is in the digest
    with pytest.raises(ValueError, match="positive"):
        softcap_table("cap", 0.0, IN_EXP, OUT_EXP)


def _spec():
    op = Op("lookup", ("x",), "y", {"table": "cap"})
    tensors = {"x": TensorSpec("x", IN_EXP, -32767, 32767, "activation"),
               "y": TensorSpec("y", OUT_EXP, -BOUND, BOUND, "activation")}
    return one_op_spec(op, tensors, {"cap": softcap_table("cap", CAP, IN_EXP, OUT_EXP)}), op


def _values(seed: int = 0):
    spec, op = _spec()
    x = np.random.default_rng(seed).integers(-32767, 32768, size=(2, 4, 24))
    return spec, op, trace_values(spec, {"x": x})


def test_softcap_lookup_proves_and_verifies():
    spec, op, vals = _values()
    assert np.abs(vals["y"]).max() < np.abs(vals["x"]).max() / 3  # large inputs really are capped
    out = run(lookup_ops, spec, op, vals)
    assert same_claims(out.prover_claims, out.verifier_claims)


def test_uncapped_output_is_rejected():
    spec, op, vals = _values(seed=1)
    vals["y"] = vals["y"].copy()
    i = np.unravel_index(np.argmax(vals["x"]), vals["x"].shape)
    vals["y"][i] = vals["x"][i]  # a prover that skips the cap on one score
    with pytest.raises(REJECTIONS, match="lookup"):
        run(lookup_ops, spec, op, vals, strict=False)


def _tiny(sandwich: bool = True) -> Transformer:
    cfg = TransformerConfig(vocab_size=64, d_model=32, n_layers=1, n_heads=4, d_ff=64, n_kv_heads=2, max_seq=16,
                            glu_act="gelu", gelu_approx="tanh", sandwich_norm=sandwich, attn_softcap=0.05,
                            logit_softcap=0.5)
    torch.manual_seed(0)
    return Transformer(cfg).double().eval()


def test_float_model_caps_scores_and_logits():
    m = _tiny()
    ids = torch.randint(0, 64, (2, 10), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = m(ids)
        assert y.abs().max() < 0.5
        h = m.final_norm(m.run_blocks(m.embed_tokens(ids)))
        assert torch.allclose(y, softcap(m.lm_head(h), 0.5))
    with pytest.raises(ValueError, match="logit_softcap"):
        TransformerConfig(vocab_size=8, d_model=8, n_layers=1, n_heads=2, d_ff=8, output="hidden", logit_softcap=1.0)
    with pytest.raises(ValueError, match="sandwich_norm"):
        TransformerConfig(vocab_size=8, d_model=8, n_layers=1, n_heads=2, d_ff=8, norm_position="post",
                          sandwich_norm=True)


def test_integer_program_caps_by_table():
    m = _tiny()
    ids = torch.randint(0, 64, (4, 12), generator=torch.Generator().manual_seed(1))
    qm = quantize(m, ids)
    caps = [op for op in qm.spec.ops if op.kind == "lookup" and qm.spec.tables[op.params["table"]].fn == "softcap"]
    assert [op.output for op in caps] == ["b0.attn.scores", "logits"]
    assert qm.spec.tensors["b0.attn.scores"].exp == 12  # the softmax's score exponent
    norms = [op.output for op in qm.spec.ops if op.kind == "norm"]
    assert any("attn_post_norm" in n for n in norms) and any("mlp_post_norm" in n for n in norms)
    with torch.no_grad():
        ref = m(ids).numpy()
    y = qm.forward(ids.numpy())
    assert np.abs(y).max() <= 0.5 and (y.argmax(-1) == ref.argmax(-1)).mean() >= 0.9


@pytest.mark.parametrize("fn,ref", [("tanh", np.tanh), ("sigmoid_c", lambda x: 1 / (1 + np.exp(-x)) - 0.5),
                                    ("logsigmoid_c", lambda x: np.log(1 / (1 + np.exp(-x))) + np.log(2.0))])
def test_routing_and_pooler_tables(fn, ref):
    from blindproof.quant.tables import activation_table

    ts = activation_table("t", fn, 10, 12)
    vals = table_values(ts)
    x = np.arange(ts.lo, ts.hi + 1) * 2.0 ** -10
    assert vals[-ts.lo] == 0  # f(0) = 0: the lookup's padding row (and why sigmoid and log-sigmoid are centred)
    assert np.abs(vals - ref(x) * 2 ** 12).max() <= 0.5 + 1e-6 * np.abs(ref(x) * 2 ** 12).max()
