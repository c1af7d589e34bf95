"""Integer deployments: the file format, EE composed with quantization, and serving over a real server."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
import torch
from safetensors.torch import save as st_save

from blindproof.client import BlindClient, RemoteError
from blindproof.client.codecs import PlainCodec
from blindproof.client.integer import IntegerCodec, default_calibration, integer_split, quantize_for_server
from blindproof.ee import ClientCodec, encrypt_model, generate_key
from blindproof.models.mlp import MLP
from blindproof.models.serialize import DigestMismatchError, ModelFormatError, to_bytes
from blindproof.models.workloads import get_workload
from blindproof.proto import inference_pb2 as pb
from blindproof.proto.tensors import to_proto
from blindproof.server.integer_executor import (IntegerInputError, LoadedIntegerModel, check_integer_input,
                                                integer_forward, integer_to_bytes, is_integer_file, load_deployment,
                                                load_integer)
from blindproof.server.process import ServerProcess
from blindproof.quant import run_program

KEY = bytes(range(32))


def _mlp() -> MLP:
    torch.manual_seed(0)
    return MLP((16, 8, 4)).eval()


def _tiny_llama():
    return get_workload("tiny-llama").build(0).eval()


def _integer(model, tier: str | None = None):
    split = integer_split(model)
    if tier is None:
        codec, server_model = PlainCodec(model, split), model
    else:
        key = generate_key()
        server_model, codec = encrypt_model(model, key, tier, split).model, ClientCodec(model, key, tier, split)
    qm = quantize_for_server(server_model, codec, default_calibration(model))
    return IntegerCodec(codec, qm, KEY)


def _write(tmp_path, blob: bytes, name: str = "m.safetensors"):
    p = tmp_path / name
    p.write_bytes(blob)
    return p


# --- file format ----------------------------------------------------------------------------------

def test_integer_file_round_trip(tmp_path):
    qm = _integer(_mlp()).quantized
    blob, digest = integer_to_bytes(qm, KEY)
    assert integer_to_bytes(qm, KEY)[1] == digest  # deterministic content digest, so the deployment id is too
    p = _write(tmp_path, blob)
    assert is_integer_file(p)
    loaded = load_deployment(p, digest)
    assert isinstance(loaded, LoadedIntegerModel) and loaded.digest == digest and loaded.commitment_key == KEY
    assert loaded.quantized.spec.to_json() == qm.spec.to_json()
    assert all(np.array_equal(loaded.quantized.weights[n], qm.weights[n]) for n in qm.weights)
    assert loaded.description["kind"] == "integer" and loaded.description["spec_digest"] == qm.spec.digest()
    assert KEY.hex() not in json.dumps(loaded.description)  # listings never show the commitment key
    assert integer_to_bytes(qm, bytes(32))[1] != digest  # the key is part of the content
    fblob, fdigest = to_bytes(_mlp())
    fp = _write(tmp_path, fblob, "f.safetensors")
    assert not is_integer_file(fp) and not isinstance(load_deployment(fp, fdigest), LoadedIntegerModel)


def test_integer_file_rejects_tampering(tmp_path):
    qm = _integer(_mlp()).quantized
    blob, digest = integer_to_bytes(qm, KEY)
    bad = bytearray(blob)
    bad[-3] ^= 1  # a weight byte (the data section ends the file)
    with pytest.raises(DigestMismatchError):
        load_integer(_write(tmp_path, bytes(bad)))
    with pytest.raises(DigestMismatchError, match="expected"):
        load_integer(_write(tmp_path, blob, "ok.safetensors"), "blake3:" + "0" * 64)
    with pytest.raises(ValueError, match="32 bytes"):
        integer_to_bytes(qm, b"short")
    with pytest.raises(ModelFormatError, match="lacks"):
        load_integer(_write(tmp_path, st_save({"w/x": torch.zeros(2, dtype=torch.int8)}), "bare.safetensors"))
    with pytest.raises(ModelFormatError):
        load_integer(_write(tmp_path, b"not a safetensors file", "junk.safetensors"))


def test_input_checks():
    ic = _integer(_tiny_llama())
    loaded = LoadedIntegerModel(ic.quantized, {}, "", KEY)
    check_integer_input(loaded, torch.zeros(1, 4, dtype=torch.int64), 0)
    cases = [(torch.zeros(1, 4), 0, "int64"), (torch.zeros(4, dtype=torch.int64), 0, "shape"),
             (torch.full((1, 4), 256), 0, "lie in"), (torch.zeros(1, 4, dtype=torch.int64), 253, "max_seq"),
             (torch.zeros(1, 4, dtype=torch.int64), -1, "non-negative")]
    for x, start, msg in cases:
        with pytest.raises(IntegerInputError, match=msg):
            check_integer_input(loaded, x, start)
    mlp = LoadedIntegerModel(_integer(_mlp()).quantized, {}, "", KEY)
    with pytest.raises(IntegerInputError, match=r"\(batch, 16\)"):
        check_integer_input(mlp, torch.zeros(1, 15, dtype=torch.int64), 0)


# --- EE composed with quantization ------------------------------------------------------------------

@pytest.mark.parametrize("build", [_mlp, _tiny_llama], ids=["mlp", "tiny-llama"])
def test_permute_tier_is_exact_on_the_integer_path(build):
    """Quantizing the permuted model gives the permuted integer model: decoded outputs are bit-equal."""
    model = build()
    x = default_calibration(model, batch=3)
    plain = _integer(model)
    blind = _integer(model, "permute")
    run = lambda ic: ic.client_output(integer_forward(LoadedIntegerModel(ic.quantized, {}, "", KEY),  # noqa: E731
                                                      ic.client_input(x)))
    assert torch.equal(run(plain), run(blind))
    assert not torch.equal(plain.client_input(x), blind.client_input(x)) or isinstance(model, MLP)


@pytest.mark.parametrize("build", [_mlp, _tiny_llama], ids=["mlp", "tiny-llama"])
def test_rotate_tier_keeps_fidelity_on_the_integer_path(build):
    """The rotate tier is not bit-exact after quantization (rotated weights round differently) but
    stays close to the float model; the measured figures are in docs/serving.md."""
    model = build()
    x = default_calibration(model, batch=3)
    ic = _integer(model, "rotate")
    out = ic.client_output(integer_forward(LoadedIntegerModel(ic.quantized, {}, "", KEY), ic.client_input(x)))
    with torch.no_grad():
        f = model(x.to(next(model.parameters()).dtype) if isinstance(model, MLP) else x).double()
    cos = torch.nn.functional.cosine_similarity(out.reshape(-1, out.shape[-1]), f.reshape(-1, f.shape[-1]), dim=-1)
    assert float(cos.min()) > 0.98, float(cos.min())


# --- a real server ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(store=tmp_path_factory.mktemp("int") / "store", extra_args=["--prover-workers", "0"]) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    with BlindClient(server.target) as c:
        c.wait_ready()
        yield c


@pytest.mark.parametrize("build,tier", [(_mlp, "rotate"), (_tiny_llama, "permute"), (_tiny_llama, None)],
                         ids=["mlp-rotate", "llama-permute", "llama-plain"])
def test_served_integer_output_is_the_programs(client, build, tier):
    model = build()
    key = generate_key() if tier else None
    dep = client.deploy(model, key, tier=tier or "rotate", mode="integer")
    assert dep.mode == "integer"
    x = default_calibration(model, batch=2)
    wire = dep.codec.client_input(x)
    raw = client.infer_raw(dep.deployment_id, wire)
    qm = dep.codec.quantized
    local = run_program(qm.spec, qm.weights, {qm.spec.inputs[0]: wire.numpy()}, record=False).output(0)
    assert raw.dtype == torch.int64 and np.array_equal(raw.numpy(), local)  # bit for bit
    out = client.infer(dep, x)
    assert torch.equal(out, dep.codec.client_output(raw))
    with torch.no_grad():
        f = model(x.float() if isinstance(model, MLP) else x)
    assert float((out.argmax(-1) == f.argmax(-1)).double().mean()) >= 0.75
    listed = {d.deployment_id: d for d in client.list_deployments()}[dep.deployment_id]
    assert json.loads(listed.model_json)["kind"] == "integer" and dep.codec.commitment_key.hex() not in listed.model_json
    again = client.deploy(model, None, mode="integer", commitment_key=dep.codec.commitment_key) if tier is None else None
    if again is not None:
        assert again.existed and again.deployment_id == dep.deployment_id


def _status(fn) -> grpc.StatusCode:
    with pytest.raises(RemoteError) as e:
        fn()
    return e.value.code


def test_mode_must_match_the_file(client):
    model = _mlp()
    ic = _integer(model)
    blob, digest = integer_to_bytes(ic.quantized, KEY)
    fblob, fdigest = to_bytes(model)
    assert _status(lambda: client.upload(blob, digest, mode="")) == grpc.StatusCode.INVALID_ARGUMENT
    assert _status(lambda: client.upload(fblob, fdigest, mode="integer")) == grpc.StatusCode.INVALID_ARGUMENT
    assert _status(lambda: client.upload(blob, digest, mode="int4")) == grpc.StatusCode.INVALID_ARGUMENT
    assert not client.upload(blob, digest, mode="integer").existed
    assert client.upload(blob, digest, mode="integer").existed
    assert _status(lambda: client.upload(blob, digest, mode="")) == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(ValueError, match="mode"):
        client.deploy(model, None, mode="int4")


def test_bad_inputs_and_generation(client):
    model = _tiny_llama()
    dep = client.deploy(model, generate_key(), tier="permute", mode="integer")
    tokens = torch.zeros(1, 4, dtype=torch.int64)
    for x, start in [(torch.zeros(1, 4, 64), 0), (torch.full((1, 4), 300), 0), (tokens, 253), (tokens, -1)]:
        code = _status(lambda: client.infer_raw(dep.deployment_id, x, start))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
    with client.session(dep) as sess:
        assert _status(lambda: sess.step(tokens)) == grpc.StatusCode.FAILED_PRECONDITION
    assert client.health() == "SERVING"


def test_integer_deployments_survive_a_restart(tmp_path):
    with ServerProcess(store=tmp_path / "store", extra_args=["--prover-workers", "0"]) as srv:
        with BlindClient(srv.target) as c:
            c.wait_ready()
            dep = c.deploy(_mlp(), generate_key(), tier="rotate", mode="integer")
            x = torch.randn(2, 16)
            before = c.infer(dep, x)
            srv.restart()
            c.wait_ready()
            assert torch.equal(c.infer(dep, x), before)  # reloaded from disk, digest re-verified
            req = pb.InferRequest(deployment_id=dep.deployment_id, input=to_proto(dep.codec.client_input(x)))
            assert c._stub.Infer(req, timeout=30).request_id  # kept for proving even without workers
