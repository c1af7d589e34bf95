import pytest
import torch

from blindproof.models import KVCache, Transformer, get_workload


@pytest.mark.parametrize("name", ["tiny-llama", "small-llama", "mlp-784-56-10", "minilm-l6"])
def test_workload_forward_shapes(name):
    w = get_workload(name)
    m = w.build(0)
    y = m(w.example_input())
    if name == "mlp-784-56-10":
        assert y.shape == (1, 10)
    elif name == "minilm-l6":
        assert y.shape == (1, 384)
    else:
        assert y.shape == (1, w.seq, 256)
    assert torch.isfinite(y).all()


def test_kv_cache_matches_full_forward():
    m = get_workload("tiny-llama").build(1).double()
    x = get_workload("tiny-llama").example_input(batch=2)
    full = m(x)
    cache = KVCache(m.cfg.n_layers)
    a = m(x[:, :10], 0, cache)
    b = m(x[:, 10:], cache.length, cache)
    assert torch.allclose(torch.cat([a, b], 1), full, atol=1e-10)


def test_bad_inputs_raise_clear_errors():
    m = get_workload("tiny-llama").build(0)
    with pytest.raises(TypeError, match="int64"):
        m(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="token ids"):
        m(torch.tensor([[300]]))
    with pytest.raises(ValueError, match="hidden states"):
        m.run_blocks(torch.zeros(1, 4, 7))
    with pytest.raises(KeyError, match="known"):
        get_workload("nope")
