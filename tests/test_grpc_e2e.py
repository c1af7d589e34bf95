"""End to end over real gRPC: a `blindproof serve` subprocess on localhost, the SDK as the client."""

from __future__ import annotations

import pytest
import torch

from blindproof.client import BlindClient, PlainCodec, RemoteError
from blindproof.ee import Split, generate_key
from blindproof.models.workloads import get_workload
from blindproof.server.process import ServerProcess

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def server():
    with ServerProcess() as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    with BlindClient(server.target, timeout=30) as c:
        c.wait_ready()
        yield c


@pytest.fixture(scope="module")
def tiny():
    return get_workload("tiny-llama").build(0)


@pytest.fixture(scope="module")
def key():
    return generate_key()


@pytest.mark.parametrize("tier", ["permute", "rotate"])
def test_blind_infer_equals_local_forward(client, tiny, key, tier):
    dep = client.deploy(tiny, key, tier)
    x = get_workload("tiny-llama").example_input(2, batch=3)
    torch.testing.assert_close(client.infer(dep, x), tiny(x), rtol=1e-4, atol=1e-4)
    assert dep.key_id == key.key_id and dep.digest == "blake3:" + dep.deployment_id


@pytest.mark.parametrize("split", [Split(client_embeds=False), Split(client_decodes=False),
                                   Split(client_embeds=False, client_decodes=False)])
def test_other_splits(client, tiny, key, split):
    dep = client.deploy(tiny, key, "permute", split)
    x = get_workload("tiny-llama").example_input(4, batch=2)
    torch.testing.assert_close(client.infer(dep, x), tiny(x), rtol=1e-4, atol=1e-4)
    listed = {d.deployment_id: d for d in client.list_deployments()}[dep.deployment_id]
    assert ('"embed"' in listed.model_json) == (not split.client_embeds)
    assert ('"head"' in listed.model_json) == (not split.client_decodes)


def test_server_never_receives_client_parts_or_plaintext_weights(client, server, tiny, key):
    """With the default split the upload holds the blocks only, and under a key none of them is plaintext."""
    from safetensors.torch import load_file
    dep = client.deploy(tiny, key, "rotate")
    listed = {d.deployment_id: d for d in client.list_deployments()}[dep.deployment_id]
    assert '"parts":["blocks"]' in listed.model_json
    assert listed.key_id == key.key_id
    stored = load_file(server.store / "models" / f"{dep.deployment_id}.safetensors")
    assert stored and all(name.startswith("blocks.") for name in stored)
    plain = tiny.state_dict()
    for name, t in stored.items():
        if t.dim() == 2:
            assert not torch.allclose(t, plain[name]), f"{name} reached the server in plaintext"


def test_blind_generation_equals_plaintext(client, tiny, key):
    prompt = get_workload("tiny-llama").example_input(5, batch=2)[:, :6]
    dep = client.deploy(tiny, key, "rotate")
    blind = client.generate(dep, prompt, 24)
    assert torch.equal(blind, tiny.generate(prompt, 24))
    plain = client.deploy(tiny, None)
    assert isinstance(plain.codec, PlainCodec) and plain.key_id == ""
    assert torch.equal(client.generate(plain, prompt, 24), blind)


@pytest.mark.parametrize("split", [Split(client_embeds=False), Split(client_decodes=False)])
def test_blind_generation_with_other_splits(client, tiny, key, split):
    prompt = get_workload("tiny-llama").example_input(8)[:, :5]
    dep = client.deploy(tiny, key, "permute", split)
    assert torch.equal(client.generate(dep, prompt, 12), tiny.generate(prompt, 12))


def test_generation_stops_at_stop_token(client, tiny, key):
    dep = client.deploy(tiny, key, "permute")
    prompt = get_workload("tiny-llama").example_input(6)[:, :4]
    ref = tiny.generate(prompt, 10)[0]
    out = client.generate(dep, prompt, 10, stop_token=int(ref[2]))
    assert out.shape[1] <= 3 and torch.equal(out[0], ref[:out.shape[1]])


def test_mlp_deployment(client, key):
    mlp = get_workload("mlp-784-56-10").build(2)
    dep = client.deploy(mlp, key, "rotate")
    x = get_workload("mlp-784-56-10").example_input(1, batch=4)
    torch.testing.assert_close(client.infer(dep, x), mlp(x), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="causal transformer"):
        client.generate(dep, torch.zeros(1, 2, dtype=torch.int64), 2)
    with pytest.raises(RemoteError) as err, client.session(dep) as sess:  # the server refuses as well
        sess.step(dep.codec.client_input(x[:1]))
    assert err.value.code.name == "FAILED_PRECONDITION" and "transformer" in err.value.details


def test_deploy_is_idempotent_and_delete_removes(client, tiny):
    model = get_workload("tiny-llama").build(7)
    first = client.deploy(model, None)
    again = client.deploy(model, None)
    assert again.deployment_id == first.deployment_id and again.existed and not first.existed
    client.delete(first)
    assert first.deployment_id not in {d.deployment_id for d in client.list_deployments()}
    with pytest.raises(RemoteError) as err:
        client.infer(first, torch.zeros(1, 3, dtype=torch.int64))
    assert err.value.code.name == "NOT_FOUND"


def test_concurrent_infers_are_batched_and_correct(client, tiny, key, server):
    from concurrent.futures import ThreadPoolExecutor
    dep = client.deploy(tiny, key, "permute")
    xs = [get_workload("tiny-llama").example_input(100 + i) for i in range(24)]
    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(lambda x: client.infer(dep, x), xs))
    for x, out in zip(xs, outs):
        torch.testing.assert_close(out, tiny(x), rtol=1e-4, atol=1e-4)


def test_attach_checks_the_key(client, tiny, key):
    dep = client.deploy(tiny, key, "rotate")
    again = client.attach(dep.deployment_id, tiny, key, "rotate")
    x = get_workload("tiny-llama").example_input(3)
    torch.testing.assert_close(client.infer(again, x), tiny(x), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="key"):
        client.attach(dep.deployment_id, tiny, generate_key(), "rotate")


def test_store_survives_restart(server, client, tiny, key):
    dep = client.deploy(tiny, key, "rotate")
    before = {d.deployment_id for d in client.list_deployments()}
    server.restart()
    assert server.log().count('"event":"listening"') == 2 and '"event":"stopped"' in server.log()
    client.wait_ready()  # the same channel reconnects to the restarted process
    assert {d.deployment_id for d in client.list_deployments()} == before
    again = client.attach(dep.deployment_id, tiny, key, "rotate")
    x = get_workload("tiny-llama").example_input(9)
    torch.testing.assert_close(client.infer(again, x), tiny(x), rtol=1e-4, atol=1e-4)


def test_health_and_structured_logs(client, server, tiny, key):
    assert client.health() == "SERVING"
    assert client.health("blindproof.v1.Inference") == "SERVING"
    log = server.log()
    assert '"event":"listening"' in log and '"event":"deploy"' in log and '"event":"session_end"' in log
    assert key.seed.hex() not in log  # the key never reaches the server, let alone its log


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_server_on_cuda_matches_cpu(tiny, key):
    with ServerProcess(extra_args=["--device", "cuda"]) as srv, BlindClient(srv.target) as c:
        c.wait_ready()
        assert '"device":"cuda"' in srv.log()
        dep = c.deploy(tiny, key, "rotate")
        x = get_workload("tiny-llama").example_input(2, batch=3)
        torch.testing.assert_close(c.infer(dep, x), tiny(x), rtol=1e-3, atol=1e-3)
        prompt = x[:, :6]
        assert torch.equal(c.generate(dep, prompt, 16), tiny.generate(prompt, 16))
