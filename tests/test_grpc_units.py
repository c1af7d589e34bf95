"""In-process pieces of the serving stack: wire tensors, the batcher, input checks, logs."""

from __future__ import annotations

import asyncio
import json
import logging

import grpc
import pytest
import torch

from blindproof.models.serialize import describe, model_tensors, content_digest, LoadedModel
from blindproof.models.workloads import get_workload
from blindproof.proto.tensors import DTYPES, WireTensorError, from_proto, to_proto
from blindproof.server import logs
from blindproof.server.executor import BadInputError, Executor, check_input, forward


@pytest.mark.parametrize("dtype", list(DTYPES.values()))
def test_wire_tensor_round_trip(dtype):
    t = (torch.randn(2, 3, 5) * 100).to(dtype)
    back = from_proto(to_proto(t))
    assert back.dtype == dtype and torch.equal(back, t)
    assert from_proto(to_proto(torch.empty(0, 4))).shape == (0, 4)


def test_wire_tensor_rejects_bad_messages():
    msg = to_proto(torch.zeros(2, 2))
    msg.data = msg.data[:-1]
    with pytest.raises(WireTensorError, match="needs 16 bytes, got 15"):
        from_proto(msg)
    msg = to_proto(torch.zeros(2, 2))
    msg.dtype = "uint8"
    with pytest.raises(WireTensorError, match="unsupported dtype 'uint8'"):
        from_proto(msg)
    msg = to_proto(torch.zeros(2, 2))
    msg.shape[:] = [2, -2]
    with pytest.raises(WireTensorError, match="invalid shape"):
        from_proto(msg)
    with pytest.raises(TypeError, match="bool"):
        to_proto(torch.zeros(2, dtype=torch.bool))


def _loaded(parts):
    model = get_workload("tiny-llama").build(0)
    desc = describe(model, parts)
    from blindproof.models.serialize import build_model
    tensors = model_tensors(model, desc)
    return model, LoadedModel(build_model(desc, tensors), desc, content_digest(desc, tensors))


def test_batcher_groups_concurrent_calls_and_splits_results():
    model, loaded = _loaded(["blocks"])
    hs = [model.embed_tokens(get_workload("tiny-llama").example_input(i)) for i in range(6)]
    odd = model.embed_tokens(get_workload("tiny-llama").example_input(9)[:, :5])

    async def go(wait):
        ex = Executor(max_batch_rows=64, max_wait_s=wait)
        outs = await asyncio.gather(*(ex.infer("d", loaded, h, 0) for h in hs), ex.infer("d", loaded, odd, 0))
        ex.shutdown()
        return ex, outs

    for wait in (0.0, 0.02):
        ex, outs = asyncio.run(go(wait))
        assert ex.batches_run == 2 and ex.rows_run == 7  # six same-shape calls in one forward, the odd one alone
        for h, out in zip(hs + [odd], outs):
            torch.testing.assert_close(out, model.run_blocks(h), rtol=1e-5, atol=1e-5)


def test_batcher_groups_calls_that_queue_behind_a_running_batch():
    model, loaded = _loaded(["blocks"])
    h = model.embed_tokens(get_workload("tiny-llama").example_input(0))

    async def go():
        ex = Executor()
        first = asyncio.ensure_future(ex.infer("d", loaded, h, 0))
        await asyncio.sleep(0)  # the first call starts alone on the idle torch thread
        later = [ex.infer("d", loaded, h, 0) for _ in range(5)]
        outs = await asyncio.gather(first, *later)
        ex.shutdown()
        return ex, outs

    ex, outs = asyncio.run(go())
    assert ex.batches_run == 2 and ex.rows_run == 6
    for out in outs:
        torch.testing.assert_close(out, model.run_blocks(h), rtol=1e-5, atol=1e-5)


def test_batcher_caps_batch_rows_and_reports_errors():
    model, loaded = _loaded(["blocks"])
    h = model.embed_tokens(get_workload("tiny-llama").example_input(0))

    async def go():
        ex = Executor(max_batch_rows=2, max_wait_s=0.05)
        outs = await asyncio.gather(*(ex.infer("d", loaded, h, 0) for _ in range(5)))
        with pytest.raises(ValueError, match="max_seq"):
            await ex.infer("d", loaded, h, 250)  # forward raises: the caller sees the error
        ex.shutdown()
        return ex, outs

    ex, outs = asyncio.run(go())
    assert ex.batches_run == 3 and len(outs) == 5


def test_check_input_and_forward_of_parts():
    model, blocks = _loaded(["blocks"])
    _, full = _loaded(["embed", "blocks", "head"])
    tokens = get_workload("tiny-llama").example_input(0)
    check_input(full, tokens, 0)
    torch.testing.assert_close(forward(full, tokens), model(tokens), rtol=0, atol=0)
    with pytest.raises(BadInputError, match="ids"):
        check_input(full, tokens.float(), 0)
    with pytest.raises(BadInputError, match=r"\[0, 256\)"):
        check_input(full, tokens + 300, 0)
    with pytest.raises(BadInputError, match="follow"):
        check_input(blocks, torch.zeros(1, 1, 64), 3, cache_len=2)
    with pytest.raises(BadInputError, match="non-negative"):
        check_input(blocks, torch.zeros(1, 1, 64), -1)
    with pytest.raises(BadInputError, match="at least one"):
        check_input(blocks, torch.zeros(1, 0, 64), 0)


def test_logs_are_json_and_refuse_tensors(capsys):
    logs.configure("INFO")
    logs.event("unit", deployment="x", shape=(1, 2), ms=1.5)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert json.loads(line)["shape"] == [1, 2]
    with pytest.raises(TypeError, match="tensor"):
        logs.event("unit", tensor=torch.zeros(2))
    with pytest.raises(TypeError, match="data"):
        logs.event("unit", data=b"secret")
    logs.event("quiet", logging.DEBUG, x=1)
    assert "quiet" not in capsys.readouterr().err


class _Unavailable(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.UNAVAILABLE

    def details(self):
        return "connection refused"


def test_client_retries_only_idempotent_calls():
    from blindproof.client import BlindClient, RemoteError
    from blindproof.proto import inference_pb2 as pb

    client = BlindClient("127.0.0.1:1", retries=2)
    calls = {"list": 0, "delete": 0}

    class Stub:
        def ListDeployments(self, *a, **kw):
            calls["list"] += 1
            if calls["list"] < 3:
                raise _Unavailable()
            return pb.ListDeploymentsReply()

        def DeleteDeployment(self, *a, **kw):
            calls["delete"] += 1
            raise _Unavailable()

    client._stub = Stub()
    assert client.list_deployments() == [] and calls["list"] == 3  # two failures, then success
    with pytest.raises(RemoteError) as err:
        client.delete("ab" * 32)
    assert calls["delete"] == 1 and err.value.code == grpc.StatusCode.UNAVAILABLE
    calls["list"] = -10
    with pytest.raises(RemoteError, match="UNAVAILABLE"):
        client.list_deployments()  # gives up after 1 + retries attempts
    assert calls["list"] == -7
    client.close()
