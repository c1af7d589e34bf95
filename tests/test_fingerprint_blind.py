"""Fingerprints through the blind channel: keyed harmless input expansion, noise on every request,
identity checks over real gRPC (fingerprint/blind.py)."""

from __future__ import annotations

import dataclasses
import os
import stat

import pytest
import torch

from blindproof.ee import Split, encrypt_model, generate_key
from blindproof.fingerprint import blind as B
from blindproof.client import fingerprinted as FPD
from blindproof.fingerprint.protocol import check
from blindproof.fingerprint.substitutes import int8_weights
from blindproof.models.serialize import build_model, content_digest, describe, model_tensors, to_bytes
from blindproof.models.transformer import Transformer, TransformerConfig
from blindproof.models.workloads import get_workload

pytestmark = pytest.mark.timeout(240)

BERT_TINY = TransformerConfig(vocab_size=300, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_seq=32, norm="layer",
                              norm_position="post", mlp="gelu", position="learned", bias=True, causal=False,
                              norm_eps=1e-12, embed_norm=True, type_vocab_size=2, output="mean_pool")


@pytest.fixture(scope="module")
def llama():
    return get_workload("tiny-llama").build(0)


@pytest.fixture(scope="module")
def key():
    return generate_key()


def _bert() -> Transformer:
    torch.manual_seed(3)
    return Transformer(BERT_TINY).eval()


@pytest.mark.parametrize("tier", ["rotate", "permute"])
@pytest.mark.parametrize("arch", ["llama", "bert"])
def test_expanded_deployment_equals_plaintext_with_noise(llama, key, tier, arch):
    model = llama if arch == "llama" else _bert()
    server, codec = B.expanded_deployment(model, key, tier, alpha=100.0)
    assert server.cfg.input_extra == B.DEFAULT_EXTRA and server.cfg.input_width == model.cfg.d_model + 16
    x = torch.randint(0, model.cfg.vocab_size, (3, 12), generator=torch.Generator().manual_seed(1))
    a, b = codec.client_input(x), codec.client_input(x)
    assert a.shape == (3, 12, model.cfg.d_model + 16) and a.dtype == torch.float32
    assert (a - b).abs().max() > 1.0  # fresh noise on every request
    with torch.no_grad():
        ref = model(x)
        out = codec.client_output(server.run_blocks(a))
        no_noise = codec.client_output(server.run_blocks(codec.encode_expanded(codec.pad(model.embed_tokens(x)))))
    assert (out - ref).abs().max() < 2e-3
    assert (no_noise - ref).abs().max() < 2e-4
    if arch == "llama":
        assert torch.equal(out.argmax(-1), ref.argmax(-1))


def test_harmless_space_is_the_null_space_of_the_plain_expansion(llama, key):
    _, codec = B.expanded_deployment(llama, key, "rotate")
    space = codec.space(5)
    assert space.dim == 5 * 16
    d = space.sample(7, torch.Generator().manual_seed(0))
    assert d.shape == (7, 5, 80) and torch.allclose(d.flatten(1).norm(dim=1), torch.ones(7, dtype=torch.float64))
    e = codec.expansion.plain_matrix()
    assert (d @ e).abs().max() < 1e-12  # harmless: E maps it to zero
    assert space.project_out(d).abs().max() < 1e-12
    r = torch.randn(2, 5, 80, dtype=torch.float64)
    assert (r @ e).abs().max() > 0.1 and (space.project_out(r) - r).abs().max() > 0.1


def test_server_weight_annihilates_keyed_directions_and_hides_the_identity(llama, key):
    server, codec = B.expanded_deployment(llama, key, "rotate")
    w = server.expand.weight.detach().double()  # (d, d + r): h' = u' W^T
    d = codec.space(1).sample(20, torch.Generator().manual_seed(2))[:, 0]  # plaintext directions
    keyed = d @ codec.expansion.key
    assert (keyed @ w.T).abs().max() < 1e-5
    assert (w[:, :64] - torch.eye(64, dtype=torch.float64)).abs().max() > 0.1  # no visible identity block


def test_expansion_is_derived_from_the_key(llama):
    k1, k2 = generate_key(), generate_key()
    _, c1 = B.expanded_deployment(llama, k1)
    _, c1b = B.expanded_deployment(llama, k1)
    _, c2 = B.expanded_deployment(llama, k2)
    assert torch.equal(c1.expansion.mix, c1b.expansion.mix) and torch.equal(c1.expansion.key, c1b.expansion.key)
    assert not torch.equal(c1.expansion.mix, c2.expansion.mix)


def test_transformer_expansion_module_and_serialization(llama):
    cfg = dataclasses.replace(llama.cfg, input_extra=8)
    m = Transformer(cfg)
    m.load_state_dict(llama.state_dict(), strict=False)
    x = torch.randint(0, 256, (2, 9))
    with torch.no_grad():
        assert torch.equal(m(x), llama(x))  # zero-padded extra inputs pass through exactly
    with pytest.raises(ValueError, match=r"\(batch, seq, 72\)"):
        m.run_blocks(torch.zeros(1, 3, 64))
    assert "input_extra" not in llama.cfg.to_dict() and cfg.to_dict()["input_extra"] == 8
    desc = describe(m, ["blocks"])
    tensors = model_tensors(m, desc)
    assert "expand.weight" in tensors
    rebuilt = build_model(desc, tensors)
    h = torch.randn(2, 4, 72)
    with torch.no_grad():
        assert torch.equal(rebuilt.run_blocks(h), m.run_blocks(h))
    assert content_digest(desc, tensors) == to_bytes(m, ["blocks"])[1]
    with pytest.raises(ValueError, match="input_extra"):
        TransformerConfig(**{**llama.cfg.to_dict(), "input_extra": -1})
    with pytest.raises(ValueError, match="without its input expansion"):
        encrypt_model(m, generate_key(), "rotate")


def test_bad_arguments(llama, key):
    with pytest.raises(ValueError, match="client_embeds"):
        B.expanded_deployment(llama, key, "rotate", Split(client_embeds=False))
    with pytest.raises(ValueError, match="positive int"):
        B.expanded_deployment(llama, key, "rotate", extra=0)
    with pytest.raises(ValueError, match="alpha"):
        B.expanded_deployment(llama, key, "rotate", alpha=float("nan"))
    _, codec = B.expanded_deployment(llama, key)
    with pytest.raises(ValueError, match=r"\(batch, seq, 80\)"):
        codec.encode_expanded(torch.zeros(1, 2, 64))


@pytest.fixture(scope="module")
def fingerprint(llama, key):
    return B.make_blind_fingerprint(llama, key, "rotate", references=32, probes=400, alpha=100.0,
                                    generator=torch.Generator().manual_seed(5), source="tiny-llama")


def test_fingerprint_round_trip_and_consistency_checks(llama, key, fingerprint, tmp_path):
    path = tmp_path / "fp.json"
    fingerprint.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    back = B.BlindFingerprint.load(path)
    assert torch.equal(back.tokens, fingerprint.tokens) and torch.equal(back.expected, fingerprint.expected)
    assert back.calibrations == fingerprint.calibrations and back.alpha == fingerprint.alpha
    _, codec = B.expanded_deployment(llama, key, alpha=10.0)
    with pytest.raises(ValueError, match="look like ordinary requests"):
        back.library(codec)
    _, codec = B.expanded_deployment(llama, key, extra=8, alpha=fingerprint.alpha)
    with pytest.raises(ValueError, match="width 16"):
        back.library(codec)
    with pytest.raises(ValueError, match="malformed|not a blind"):
        B.BlindFingerprint.from_json('{"format": "x"}')


@pytest.mark.parametrize("mode", ["logits", "labels"])
def test_local_check_accepts_genuine_and_rejects_int8(llama, key, fingerprint, mode):
    server, codec = B.expanded_deployment(llama, key, "rotate", alpha=fingerprint.alpha)
    lib = fingerprint.library(codec)
    cal = fingerprint.calibrations[mode]
    gen = torch.Generator().manual_seed(9)
    honest = check(B.probe_query(codec, B.local_run(server)), lib, cal, p1=0.3, batch=17, generator=gen)
    assert honest.decision == "match"
    sub = check(B.probe_query(codec, B.local_run(int8_weights(server))), lib, cal, p1=0.3, generator=gen)
    assert sub.decision == "mismatch"


def test_amplification_needs_the_expansion_to_differ(llama, key, fingerprint):
    """Label-only: int8 everywhere is amplified; int8 that keeps the expansion exact is not."""
    server, codec = B.expanded_deployment(llama, key, "rotate", alpha=fingerprint.alpha)
    lib = fingerprint.library(codec)
    probes = lib.probes(200, torch.Generator().manual_seed(11))
    keep = int8_weights(server)
    keep.expand.weight.data.copy_(server.expand.weight.data)

    def flips(model):
        out = B.probe_query(codec, B.local_run(model))(probes.inputs)
        return int((out.argmax(1) != probes.expected_labels).sum())

    assert flips(server) == 0
    assert flips(int8_weights(server)) > 60
    assert flips(keep) < 20


@pytest.fixture(scope="module")
def served():
    from blindproof.server.process import ServerProcess
    with ServerProcess() as srv:
        yield srv


def test_check_identity_over_grpc(served, llama, key, fingerprint):
    from blindproof.client import BlindClient

    prompt = torch.tensor([[72, 101, 108, 108, 111]])
    with BlindClient(served.target) as client:
        client.wait_ready()
        dep = FPD.deploy(client, llama, key, "rotate", alpha=fingerprint.alpha, label="fp")
        assert isinstance(dep.codec, B.ExpansionCodec)
        with torch.no_grad():
            assert torch.equal(client.infer(dep, prompt).argmax(-1), llama(prompt).argmax(-1))
            assert torch.equal(client.generate(dep, prompt, 12), llama.generate(prompt, 12))
        verdict = client.check_identity(dep, fingerprint, p1=0.3)
        assert verdict.decision == "match" and verdict.failures == 0
        labels = client.check_identity(dep, fingerprint, mode="labels", p1=0.3)
        assert labels.decision == "match"

        # the server answers with an int8 copy of the deployment: the client still talks to "dep"
        server, _ = B.expanded_deployment(llama, key, "rotate")
        blob, digest = to_bytes(int8_weights(server), ["blocks"])
        sub_id = client.upload(blob, digest, key_id=key.key_id).deployment.deployment_id
        swapped = dataclasses.replace(dep, deployment_id=sub_id)
        assert client.check_identity(swapped, fingerprint, mode="labels", p1=0.3).decision == "mismatch"

        # another key's deployment of the same model
        other = FPD.deploy(client, llama, generate_key(), "rotate", alpha=fingerprint.alpha)
        swapped = dataclasses.replace(dep, deployment_id=other.deployment_id)
        assert client.check_identity(swapped, fingerprint, mode="labels", p1=0.3).decision == "mismatch"

        again = FPD.attach(client, dep.deployment_id, llama, key, "rotate", alpha=fingerprint.alpha)
        assert again.codec.extra == 16 and client.check_identity(again, fingerprint, p1=0.3).decision == "match"
        plain = client.deploy(llama, key, "rotate")
        with pytest.raises(TypeError, match="harmless input expansion"):
            client.check_identity(plain, fingerprint)
        with pytest.raises(ValueError, match="no harmless input expansion"):
            FPD.attach(client, plain.deployment_id, llama, key)
