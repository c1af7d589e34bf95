"""Bad input and faults against a real `blindproof serve` process: the right status, a clear message,
the server keeps serving and no partial deployment is left behind."""

from __future__ import annotations

import time

import grpc
import pytest
import torch

from blindproof.client import BlindClient, RemoteError
from blindproof.ee import generate_key
from blindproof.models.serialize import to_bytes
from blindproof.models.workloads import get_workload
from blindproof.proto import inference_pb2 as pb
from blindproof.proto.tensors import to_proto
from blindproof.server.process import ServerProcess

pytestmark = pytest.mark.timeout(180)
IDLE_S = 1.5


@pytest.fixture(scope="module")
def server():
    # Small limits so oversize payloads are cheap to produce.
    with ServerProcess(extra_args=["--max-message-mb", "1", "--max-model-mb", "1",
                                   "--session-idle-s", str(IDLE_S)]) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    with BlindClient(server.target, timeout=30, max_message_bytes=64 << 20, chunk_bytes=64 << 10) as c:
        c.wait_ready()
        yield c


@pytest.fixture(scope="module")
def tiny():
    return get_workload("tiny-llama").build(0)


@pytest.fixture(scope="module")
def dep(client, tiny):
    return client.deploy(tiny, generate_key(), "rotate")


@pytest.fixture(autouse=True)
def still_serving(client, server):
    """After every test: the server process is alive, healthy and holds no half-finished upload."""
    yield
    assert server.alive(), server.log()[-2000:]
    assert client.health() == "SERVING"
    deadline = time.monotonic() + 5
    while any((server.store / "uploads").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any((server.store / "uploads").iterdir()), "an upload was left behind"


def _code(fn) -> tuple[str, str]:
    with pytest.raises(RemoteError) as err:
        fn()
    return err.value.code.name, err.value.details


def _ids(client) -> set[str]:
    return {d.deployment_id for d in client.list_deployments()}


def test_wrong_shape(client, dep):
    code, msg = _code(lambda: client.infer_raw(dep.deployment_id, torch.zeros(1, 4, 63)))
    assert code == "INVALID_ARGUMENT" and "(batch, seq, 64)" in msg
    code, msg = _code(lambda: client.infer_raw(dep.deployment_id, torch.zeros(4, 64)))
    assert code == "INVALID_ARGUMENT" and "shape" in msg


def test_wrong_dtype(client, dep):
    code, msg = _code(lambda: client.infer_raw(dep.deployment_id, torch.zeros(1, 4, 64, dtype=torch.float64)))
    assert code == "INVALID_ARGUMENT" and "float32" in msg and "float64" in msg
    code, msg = _code(lambda: client.infer_raw(dep.deployment_id, torch.zeros(1, 4, dtype=torch.int64)))
    assert code == "INVALID_ARGUMENT"


def test_inconsistent_tensor_bytes_and_unknown_dtype(client, dep):
    stub = client._stub
    t = to_proto(torch.zeros(1, 4, 64))
    t.data = t.data[:-4]
    with pytest.raises(grpc.RpcError) as err:
        stub.Infer(pb.InferRequest(deployment_id=dep.deployment_id, input=t), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "bytes" in err.value.details()
    t = to_proto(torch.zeros(1, 4, 64))
    t.dtype = "complex64"
    with pytest.raises(grpc.RpcError) as err:
        stub.Infer(pb.InferRequest(deployment_id=dep.deployment_id, input=t), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "complex64" in err.value.details()


def test_positions_beyond_max_seq(client, dep):
    code, msg = _code(lambda: client.infer_raw(dep.deployment_id, torch.zeros(1, 4, 64), start=254))
    assert code == "INVALID_ARGUMENT" and "max_seq" in msg


def test_oversize_payload(client, dep):
    big = torch.zeros(1, 4200, 64)  # ~1.07 MB > the server's 1 MiB message limit
    code, _ = _code(lambda: client.infer_raw(dep.deployment_id, big))
    assert code == "RESOURCE_EXHAUSTED"


def test_oversize_model(client):
    before = _ids(client)
    code, msg = _code(lambda: client.deploy(get_workload("small-llama").build(0), None))
    assert code == "RESOURCE_EXHAUSTED" and "limit" in msg
    assert _ids(client) == before


def test_unknown_and_malformed_deployment(client):
    code, msg = _code(lambda: client.infer_raw("ab" * 32, torch.zeros(1, 2, 64)))
    assert code == "NOT_FOUND" and "ab" * 32 in msg
    code, msg = _code(lambda: client.infer_raw("../../etc/passwd", torch.zeros(1, 2, 64)))
    assert code == "INVALID_ARGUMENT" and "hex" in msg
    code, _ = _code(lambda: client.delete("cd" * 32))
    assert code == "NOT_FOUND"
    with pytest.raises(RemoteError) as err, client.session("ef" * 32) as sess:
        sess.step(torch.zeros(1, 2, 64))
    assert err.value.code.name == "NOT_FOUND"


def test_truncated_upload(client, tiny):
    blob, digest = to_bytes(get_workload("tiny-llama").build(11), ["blocks"])
    before = _ids(client)
    code, msg = _code(lambda: client.upload(blob[: len(blob) // 2], digest, total_bytes=len(blob)))
    assert code == "INVALID_ARGUMENT" and "truncated" in msg
    code, msg = _code(lambda: client.upload(blob + b"extra", digest, total_bytes=len(blob)))
    assert code == "INVALID_ARGUMENT" and "longer" in msg
    assert _ids(client) == before


def test_digest_mismatch(client):
    blob, digest = to_bytes(get_workload("tiny-llama").build(12), ["blocks"])
    _, other = to_bytes(get_workload("tiny-llama").build(13), ["blocks"])
    before = _ids(client)
    code, msg = _code(lambda: client.upload(blob, other))
    assert code == "DATA_LOSS" and "digest mismatch" in msg
    tampered = bytearray(blob)
    tampered[-3] ^= 1  # inside the last tensor; header and recorded digest unchanged
    code, msg = _code(lambda: client.upload(bytes(tampered), digest))
    assert code == "DATA_LOSS"
    assert _ids(client) == before
    assert client.upload(blob, digest).deployment.digest == digest  # the honest upload still works


def test_malformed_uploads(client):
    code, msg = _code(lambda: client.upload(b"x" * 100, "blake3:" + "0" * 64))
    assert code == "INVALID_ARGUMENT" and "safetensors" in msg
    code, msg = _code(lambda: client.upload(b"x" * 100, "sha1:1234"))
    assert code == "INVALID_ARGUMENT" and "digest" in msg
    with pytest.raises(grpc.RpcError) as err:
        client._stub.Deploy(iter([pb.DeployRequest(chunk=b"abc")]), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "header" in err.value.details()


def test_client_disconnect_mid_upload(client, server):
    blob, digest = to_bytes(get_workload("tiny-llama").build(14), ["blocks"])
    sent = []

    def requests():
        yield pb.DeployRequest(header=pb.DeployHeader(digest=digest, total_bytes=len(blob)))
        for off in range(0, len(blob) // 2, 32 << 10):
            sent.append(off)
            yield pb.DeployRequest(chunk=blob[off:off + (32 << 10)])
        time.sleep(30)  # stall: the client gives up (cancels) while the upload is half done

    fut = client._stub.Deploy.future(requests(), timeout=30)
    deadline = time.monotonic() + 10
    while len(sent) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    fut.cancel()
    assert digest.split(":")[1] not in _ids(client)  # still_serving checks the uploads folder is empty


def test_client_disconnect_mid_generation(client, dep, server, tiny):
    sess = client.session(dep)
    x = dep.codec.client_input(get_workload("tiny-llama").example_input(0)[:, :5], 0)
    assert sess.step(x).shape == (1, 1, 64)
    opened = server.log().count('"event":"session_open"')
    sess._replies.cancel()  # drop the stream without closing it
    deadline = time.monotonic() + 5
    while server.log().count('"event":"session_end"') < opened and time.monotonic() < deadline:
        time.sleep(0.05)
    ends = [line for line in server.log().splitlines() if '"event":"session_end"' in line]
    assert len(ends) == opened and '"steps":1,' in ends[-1]  # the session (and its KV cache) is gone
    assert torch.equal(client.generate(dep, get_workload("tiny-llama").example_input(0)[:, :5], 4),
                       tiny.generate(get_workload("tiny-llama").example_input(0)[:, :5], 4))


def test_bad_generation_messages(client, dep):
    with pytest.raises(grpc.RpcError) as err:
        list(client._stub.Generate(iter([pb.GenerateRequest(step=pb.GenerateStep(input=to_proto(torch.zeros(1))))]),
                                   timeout=10))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "open" in err.value.details()
    with client.session(dep) as sess:
        sess.step(torch.zeros(2, 3, 64))
        with pytest.raises(RemoteError) as err2:
            sess.step(torch.zeros(1, 1, 64))
    assert err2.value.code.name == "INVALID_ARGUMENT" and "batch" in err2.value.details


def test_idle_session_is_dropped(client, dep, server):
    with client.session(dep) as sess:
        sess.step(torch.zeros(1, 2, 64))
        time.sleep(IDLE_S + 1.0)
        with pytest.raises(RemoteError) as err:
            sess.step(torch.zeros(1, 1, 64))
    assert err.value.code.name == "DEADLINE_EXCEEDED" and "idle" in err.value.details
    assert '"reason":"idle"' in server.log()


def test_expired_deadline(client, dep):
    """A 0.1 ms deadline expires before the answer (on a loaded host the answer can win the race once
    in a while: a few tries, and any error must be the deadline's)."""
    for _ in range(5):
        try:
            client._stub.Infer(pb.InferRequest(deployment_id=dep.deployment_id,
                                               input=to_proto(torch.zeros(1, 2, 64))), timeout=1e-4)
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            return
    pytest.fail("five calls with a 0.1 ms deadline all completed")


def test_ctrl_c_during_a_generation_read_propagates_as_keyboardinterrupt():
    """Ctrl-C while a session waits for the server's reply: the way out cancels the stream. (Draining it
    instead started a second read on the call, and gRPC's internal error replaced the KeyboardInterrupt.)"""
    import _thread
    import threading
    from concurrent import futures

    released = threading.Event()

    def never_answers(request_iterator, context):  # reads the stream, replies to nothing until cancelled
        for _ in request_iterator:
            pass
        released.wait(10)
        return iter(())

    handler = grpc.method_handlers_generic_handler("blindproof.v1.Inference", {
        "Generate": grpc.stream_stream_rpc_method_handler(
            never_answers, request_deserializer=pb.GenerateRequest.FromString,
            response_serializer=pb.GenerateReply.SerializeToString)})
    silent = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    silent.add_generic_rpc_handlers((handler,))
    port = silent.add_insecure_port("127.0.0.1:0")
    silent.start()
    timer = threading.Timer(0.5, _thread.interrupt_main)
    try:
        with BlindClient(f"127.0.0.1:{port}", timeout=5.0) as c:
            timer.start()
            with pytest.raises(KeyboardInterrupt), c.session("ab" * 32) as sess:
                sess.step(torch.zeros(1, 1, dtype=torch.long))
            assert sess._closed
    finally:
        timer.cancel()
        released.set()
        silent.stop(0)
