"""Model files: round trip, digest stability and sensitivity, partial parts, malformed input."""

from __future__ import annotations

import json

import pytest
import torch

from blindproof.models.serialize import (DigestMismatchError, ModelFormatError, build_model, content_digest,
                                         describe, load_model, model_tensors, read_description, save_model,
                                         to_bytes)
from blindproof.models.workloads import get_workload


@pytest.fixture(scope="module")
def tiny():
    return get_workload("tiny-llama").build(0)


def test_round_trip_full_model(tmp_path, tiny):
    path = tmp_path / "m.safetensors"
    digest = save_model(tiny, path)
    loaded = load_model(path, expected_digest=digest)
    assert loaded.digest == digest and digest.startswith("blake3:")
    x = get_workload("tiny-llama").example_input(1, batch=2)
    torch.testing.assert_close(loaded.model(x), tiny(x), rtol=0, atol=0)


def test_digest_is_deterministic_and_matches_bytes(tiny):
    blob, digest = to_bytes(tiny, ["blocks"])
    _, digest2 = to_bytes(get_workload("tiny-llama").build(0), ["blocks"])
    assert digest == digest2 and len(blob) > 0


def test_digest_changes_with_any_weight_or_config(tiny):
    desc = describe(tiny, ["blocks"])
    tensors = model_tensors(tiny, desc)
    base = content_digest(desc, tensors)
    name = sorted(tensors)[3]
    bumped = dict(tensors)
    bumped[name] = tensors[name].clone()
    bumped[name].view(-1)[0] += 1e-6
    assert content_digest(desc, bumped) != base
    assert content_digest({**desc, "parts": ["blocks", "head"]}, tensors) != base
    renamed = {("x" + k if k == name else k): v for k, v in tensors.items()}
    assert content_digest(desc, renamed) != base
    assert content_digest(desc, {**tensors, name: tensors[name].double()}) != base


def test_partial_model_has_only_its_parts(tmp_path, tiny):
    path = tmp_path / "blocks.safetensors"
    save_model(tiny, path, parts=["blocks"])
    loaded = load_model(path)
    assert not hasattr(loaded.model, "embed") and not hasattr(loaded.model, "lm_head")
    h = tiny.embed_tokens(get_workload("tiny-llama").example_input(0))
    torch.testing.assert_close(loaded.model.run_blocks(h), tiny.run_blocks(h), rtol=0, atol=0)
    with pytest.raises(AttributeError):
        loaded.model.embed_tokens(torch.zeros(1, 2, dtype=torch.int64))


def test_tied_embeddings_and_mlp_round_trip(tmp_path):
    from blindproof.models.transformer import Transformer, TransformerConfig
    from blindproof.models.workloads import init_weights
    cfg = TransformerConfig(vocab_size=50, d_model=16, n_layers=1, n_heads=2, d_ff=32, norm="layer", mlp="gelu",
                            position="learned", bias=True, tie_embeddings=True, max_seq=32)
    m = init_weights(Transformer(cfg), 3).eval()
    save_model(m, tmp_path / "t.safetensors")
    x = torch.randint(0, 50, (2, 5))
    torch.testing.assert_close(load_model(tmp_path / "t.safetensors").model(x), m(x), rtol=0, atol=0)
    mlp = get_workload("mlp-784-56-10").build(1)
    save_model(mlp, tmp_path / "mlp.safetensors")
    x = torch.rand(3, 784)
    torch.testing.assert_close(load_model(tmp_path / "mlp.safetensors").model(x), mlp(x), rtol=0, atol=0)


def test_rejects_tampered_file(tmp_path, tiny):
    path = tmp_path / "m.safetensors"
    digest = save_model(tiny, path, parts=["blocks"])
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0x40  # flip a bit inside the last tensor
    path.write_bytes(bytes(raw))
    with pytest.raises(DigestMismatchError, match="digest mismatch"):
        load_model(path)
    path2 = tmp_path / "ok.safetensors"
    save_model(tiny, path2, parts=["blocks"])
    with pytest.raises(DigestMismatchError):
        load_model(path2, expected_digest=digest[:-1] + ("0" if digest[-1] != "0" else "1"))


def test_rejects_malformed_files_and_descriptions(tmp_path, tiny):
    bad = tmp_path / "junk.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelFormatError, match="not a safetensors"):
        read_description(bad)
    desc = describe(tiny, ["blocks"])
    tensors = model_tensors(tiny, desc)
    with pytest.raises(ModelFormatError, match="missing"):
        build_model(desc, {k: v for k, v in list(tensors.items())[1:]})
    name = next(iter(tensors))
    with pytest.raises(ModelFormatError, match=name):
        build_model(desc, {**tensors, name: tensors[name][..., :1]})
    with pytest.raises(ModelFormatError, match="kind"):
        build_model({**desc, "kind": "cnn"}, tensors)
    with pytest.raises(ModelFormatError, match="parts"):
        build_model({**desc, "parts": ["blocks", "blocks"]}, tensors)
    with pytest.raises(ModelFormatError, match="config"):
        build_model({**desc, "config": {**desc["config"], "n_heads": 5}}, tensors)
    with pytest.raises(ValueError, match="parts"):
        describe(tiny, ["middle"])
    with pytest.raises(TypeError, match="Linear"):
        describe(torch.nn.Linear(2, 2))
    assert json.loads(json.dumps(desc)) == desc


def test_description_cannot_make_the_reader_allocate(tiny):
    """A config promising a huge embedding or context is refused without allocating it."""
    desc = describe(tiny, ["blocks"])
    tensors = model_tensors(tiny, desc)
    huge_vocab = {**desc, "config": {**desc["config"], "vocab_size": 10 ** 12}}
    model = build_model(huge_vocab, tensors)  # the embedding is not shipped: never allocated
    assert not hasattr(model, "embed")
    with pytest.raises(ModelFormatError, match="RoPE"):
        build_model({**desc, "config": {**desc["config"], "max_seq": 10 ** 12}}, tensors)
    with pytest.raises(ModelFormatError, match="missing"):
        build_model({**huge_vocab, "parts": ["embed", "blocks"]}, tensors)
