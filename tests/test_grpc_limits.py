"""Limits and clean failures of a real `blindproof serve` process (issue 19, D1-D7 and the bind rule).

Message-size limits against proof chunks, over-long ids, malformed protobuf, store failures, stalled
uploads, watcher / session / job limits per authenticated identity, private file modes, and the
refusal to serve a non-loopback address in the clear.
"""

from __future__ import annotations

import json
import os
import queue
import stat
import subprocess
import sys
import threading
import time

import grpc
import pytest
import torch

from blindproof.client import BlindClient, RemoteError
from blindproof.proto import inference_pb2 as pb
from blindproof.proto import prover_pb2
from blindproof.server.process import ServerProcess
from test_prover_daemon import _mlp, _serve, _wait  # the stand-in prover and its helpers

pytestmark = pytest.mark.timeout(180)
PROOF_BYTES = 3 << 20  # three times the smallest message limit
TOKENS = {"alice": "alice-token-0123", "bob": "bob-token-4567", "carol": "carol-token-89ab"}


def _code(fn) -> tuple[grpc.StatusCode, str]:
    with pytest.raises((grpc.RpcError, RemoteError)) as err:
        fn()
    e = err.value
    if isinstance(e, RemoteError):
        return e.code, e.details
    return e.code(), e.details()


# --- one server at the smallest message limit ------------------------------------------------------

@pytest.fixture(scope="module")
def small(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("small")
    srv = _serve(tmp, "--max-message-mb", "1", "--upload-idle-s", "1", "--max-uploads", "2",
                 steps=2, step_s=0.01, proof_bytes=PROOF_BYTES)
    with srv:
        with BlindClient(srv.target, timeout=30) as client:  # every client setting at its default
            client.wait_ready()
            dep = client.deploy(_mlp(), None, mode="integer")
            res = client.infer_verifiable(dep, torch.randn(1, 16), prove=True)
            srv.client, srv.dep, srv.res = client, dep, res
            yield srv


def test_default_download_fits_the_smallest_message_limit(small):
    """D1: a 3 MiB proof comes down with the client's defaults at --max-message-mb 1."""
    client, res = small.client, small.res
    proof = client.wait_proof(res.job_id)
    assert len(proof) == PROOF_BYTES
    assert client.download_proof(res.job_id) == proof
    # the largest chunk that fits is served; one that cannot fit is refused up front, and logged
    ok = client.download_proof(res.job_id, chunk_bytes=(1 << 20) - 4096)
    assert ok == proof
    for chunk in (1 << 20, 16 << 20):
        code, msg = _code(lambda: client.download_proof(res.job_id, chunk_bytes=chunk))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "chunk_bytes must lie in" in msg
    assert '"event":"download_refused"' in small.log()


def test_download_has_a_minimum_chunk(small):
    """D6: 1-byte chunks (a message per byte) are refused."""
    code, msg = _code(lambda: small.client.download_proof(small.res.job_id, chunk_bytes=1))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "4096" in msg


@pytest.mark.parametrize("method", ["GetJob", "CancelJob", "WatchJob", "DownloadProof", "Prove", "Infer", "Delete"])
def test_long_ids_are_refused_with_a_short_message(small, method):
    """D2: a 20,000-character id is INVALID_ARGUMENT with the id cut short, never RESOURCE_EXHAUSTED."""
    client, long_id = small.client, "x" * 20000
    calls = {
        "GetJob": lambda: client._prover.GetJob(prover_pb2.JobRef(job_id=long_id), timeout=10),
        "CancelJob": lambda: client._prover.CancelJob(prover_pb2.JobRef(job_id=long_id), timeout=10),
        "WatchJob": lambda: list(client._prover.WatchJob(prover_pb2.JobRef(job_id=long_id), timeout=10)),
        "DownloadProof": lambda: list(client._prover.DownloadProof(
            prover_pb2.DownloadProofRequest(job_id=long_id), timeout=10)),
        "Prove": lambda: client._prover.Prove(prover_pb2.ProveRequest(request_id=long_id), timeout=10),
        "Infer": lambda: client._stub.Infer(pb.InferRequest(deployment_id=long_id), timeout=10),
        "Delete": lambda: client._stub.DeleteDeployment(pb.DeleteDeploymentRequest(deployment_id=long_id), timeout=10),
    }
    code, msg = _code(calls[method])
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, msg[:200])
    assert len(msg) < 300 and "xxxx" in msg
    if method in ("GetJob", "Prove"):  # a short unknown id is simply not found
        short_call = {"GetJob": lambda: client._prover.GetJob(prover_pb2.JobRef(job_id="y" * 100), timeout=10),
                      "Prove": lambda: client._prover.Prove(prover_pb2.ProveRequest(request_id="y" * 100),
                                                            timeout=10)}[method]
        assert _code(short_call)[0] == grpc.StatusCode.NOT_FOUND


def _raw(channel, method: str, streaming_request: bool = False, streaming_reply: bool = False):
    ident = lambda b: b  # noqa: E731
    kind = {(False, False): channel.unary_unary, (False, True): channel.unary_stream,
            (True, False): channel.stream_unary, (True, True): channel.stream_stream}[(streaming_request,
                                                                                       streaming_reply)]
    return kind(method, request_serializer=ident, response_deserializer=ident)


def test_malformed_protobuf_is_invalid_argument(small):
    """D5: bytes that are no protobuf of the method's type: INVALID_ARGUMENT, not UNKNOWN."""
    garbage = b"\xff\xff\xff\xff\x0f\x0a\xff"
    with grpc.insecure_channel(small.target) as ch:
        for method, sreq, srep in [("/blindproof.v1.Inference/Infer", False, False),
                                   ("/blindproof.v1.ProverService/GetJob", False, False),
                                   ("/blindproof.v1.ProverService/WatchJob", False, True),
                                   ("/blindproof.v1.Inference/Deploy", True, False),
                                   ("/blindproof.v1.Inference/Generate", True, True)]:
            call = _raw(ch, method, sreq, srep)
            arg = iter([garbage]) if sreq else garbage
            code, msg = _code(lambda: list(call(arg, timeout=10)) if srep else call(arg, timeout=10))
            assert code == grpc.StatusCode.INVALID_ARGUMENT and "malformed" in msg, (method, code, msg)
    assert small.alive() and "Traceback" not in small.log()


def test_store_failure_is_a_clean_status_and_a_log_line(small):
    """D3: a store that cannot take an upload: a status without the server's paths, one JSON log line."""
    uploads = small.store / "uploads"
    os.rmdir(uploads)
    uploads.write_text("not a directory")  # every new upload now fails inside the store
    try:
        blob = b"\0" * 100
        code, msg = _code(lambda: small.client.upload(blob, "blake3:" + "ab" * 32))
        assert code == grpc.StatusCode.INTERNAL and "storage" in msg
        assert str(small.store) not in msg and "Unexpected" not in msg
        lines = [json.loads(ln) for ln in small.log().splitlines() if ln.startswith("{")]
        err = [ln for ln in lines if ln["event"] == "storage_error"]
        assert err and err[-1]["method"].endswith("/Deploy") and err[-1]["status"] == "INTERNAL"
    finally:
        uploads.unlink()
        uploads.mkdir(mode=0o700)
    assert small.client.infer_verifiable(small.dep, torch.randn(1, 16), prove=False).request_id


def test_stalled_uploads_time_out_and_are_capped(small):
    """D6: a deploy stream that stops sending is dropped after --upload-idle-s with its temp file, and
    no more than --max-uploads are held at once."""
    with grpc.insecure_channel(small.target) as ch:
        deploy = ch.stream_unary("/blindproof.v1.Inference/Deploy",
                                 request_serializer=pb.DeployRequest.SerializeToString,
                                 response_deserializer=pb.DeployReply.FromString)
        feeds, calls = [], []
        for i in range(3):
            q: queue.Queue = queue.Queue()
            if i != 1:  # stream 1 sends nothing at all: it holds a slot too, and times out waiting for its header
                q.put(pb.DeployRequest(header=pb.DeployHeader(digest="blake3:" + f"{i:02x}" * 32, total_bytes=1000)))
                q.put(pb.DeployRequest(chunk=b"\1" * 10))
            feeds.append(q)
            calls.append(deploy.future(iter(q.get, None), timeout=30))
            time.sleep(0.2 if i < 2 else 0)
        results = []
        for c in calls:
            try:
                c.result()
                results.append("OK")
            except grpc.RpcError as e:
                results.append(e.code().name)
        for q in feeds:
            q.put(None)
    assert sorted(results) == ["DEADLINE_EXCEEDED", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"], results
    assert not any((small.store / "uploads").iterdir())
    assert '"reason":"stalled upload"' in small.log() and '"reason":"too many uploads"' in small.log()


def test_store_files_are_private(small):
    """D7: the store's directories are 0700, its files (models, info, jobs database) 0600."""
    root = small.store
    for d in (root, root / "models", root / "uploads"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    files = list((root / "models").iterdir()) + [p for p in root.iterdir() if p.name.startswith("jobs.sqlite")]
    assert any(p.suffix == ".json" for p in files) and any(p.name == "jobs.sqlite" for p in files)
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, (p, oct(p.stat().st_mode))


# --- limits per authenticated identity ---------------------------------------------------------------

@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shared")
    token_file = tmp / "tokens"
    token_file.write_text("".join(f"{n} {t}\n" for n, t in TOKENS.items()))
    token_file.chmod(0o600)
    srv = _serve(tmp, "--token-file", str(token_file), "--max-queued-per-client", "2", "--max-watchers", "3",
                 "--max-watchers-per-client", "2", "--max-sessions", "2", "--max-sessions-per-client", "1",
                 steps=2000, step_s=0.05)
    with srv:
        yield srv


def _as(srv, name: str, client_id: str | None = None) -> BlindClient:
    return BlindClient(srv.target, token=TOKENS[name], timeout=30, client_id=client_id)


def test_job_limit_counts_per_identity_not_per_client_id(shared):
    """D6: rotating the client-chosen id does not buy more queued jobs; another token does."""
    with _as(shared, "alice") as alice:
        alice.wait_ready()
        dep = alice.deploy(_mlp(), None, mode="integer")
        shared.dep = dep
        accepted, refused = [], 0
        for i in range(6):
            with _as(shared, "alice", client_id=f"rotating-{i}") as c:
                try:
                    accepted.append(c.infer_verifiable(dep, torch.randn(1, 16), prove=True).job_id)
                except RemoteError as e:
                    assert e.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "limit 2" in e.details
                    refused += 1
        assert len(accepted) == 2 and refused == 4
        shared.job = accepted[0]
    with _as(shared, "bob") as bob:
        assert bob.infer_verifiable(dep, torch.randn(1, 16), prove=True).job_id


def _open_watch(client: BlindClient, job_id: str):
    call = client._prover.WatchJob(prover_pb2.JobRef(job_id=job_id), timeout=60, metadata=client._metadata)
    try:
        next(call)
        return call, "OK"
    except grpc.RpcError as e:
        return None, e.code().name


def test_watchers_are_capped_per_identity_and_server_wide(shared):
    """D6: --max-watchers-per-client per identity, --max-watchers in all; closed streams free slots."""
    if not hasattr(shared, "job"):
        pytest.skip("needs the job of the job-limit test")
    clients = {n: _as(shared, n) for n in TOKENS}
    try:
        a1, s1 = _open_watch(clients["alice"], shared.job)
        a2, s2 = _open_watch(clients["alice"], shared.job)
        a3, s3 = _open_watch(clients["alice"], shared.job)
        assert (s1, s2, s3) == ("OK", "OK", "RESOURCE_EXHAUSTED")
        b1, sb = _open_watch(clients["bob"], shared.job)
        c1, sc = _open_watch(clients["carol"], shared.job)
        assert (sb, sc) == ("OK", "RESOURCE_EXHAUSTED")
        a1.cancel()
        _wait(lambda: _open_watch(clients["carol"], shared.job)[1] == "OK" or None, timeout=10,
              what="a freed watcher slot")
        for c in (a2, b1):
            c.cancel()
    finally:
        for c in clients.values():
            c.close()
    assert shared.alive()


def test_generation_sessions_are_capped_per_identity(shared):
    """D6: one client cannot take every generation session."""
    from blindproof.models.workloads import get_workload
    tiny = get_workload("tiny-llama").build(0)
    clients = {n: _as(shared, n) for n in TOKENS}
    sessions = []
    try:
        dep = clients["alice"].deploy(tiny, None)
        prompt = torch.tensor([[1, 2, 3]])

        def open_step(name):
            s = clients[name].session(dep, timeout=30)
            sessions.append(s)
            try:
                s.step(dep.codec.client_input(prompt, 0))
                return "OK"
            except RemoteError as e:
                return e.code.name + (" per-client" if "per client" in e.details else "")
        assert open_step("alice") == "OK"
        assert open_step("alice") == "RESOURCE_EXHAUSTED per-client"
        assert open_step("bob") == "OK"
        assert open_step("carol") == "RESOURCE_EXHAUSTED"
    finally:
        for s in sessions:
            s.close()
        for c in clients.values():
            c.close()


def test_unauthenticated_and_named_tokens(shared):
    with BlindClient(shared.target, token="wrong", timeout=10, retries=0) as c:
        with pytest.raises(RemoteError) as e:
            c.list_deployments()
        assert e.value.code == grpc.StatusCode.UNAUTHENTICATED


# --- in-process server: a full jobs database keeps the computed answer ------------------------------

def test_full_jobs_database_keeps_the_answer(tmp_path, monkeypatch):
    """D3: when the served inference cannot be kept (disk full), a plain integer inference still gets its
    answer; a proving one gets RESOURCE_EXHAUSTED without the database's path; both are logged."""
    import asyncio
    import sqlite3

    from blindproof.server import ServerConfig, serve
    from blindproof.server.jobs import JobStore

    def full(*_a, **_k):
        raise sqlite3.OperationalError(f"database or disk is full ({tmp_path})")
    monkeypatch.setattr(JobStore, "record_request", full)
    port_file = tmp_path / "port"
    cfg = ServerConfig(store=tmp_path / "store", port=0, port_file=port_file, prover_workers=0)
    loop = asyncio.new_event_loop()
    ready, stop = asyncio.Event(), asyncio.Event()
    t = threading.Thread(target=lambda: loop.run_until_complete(serve(cfg, ready, stop)), daemon=True)
    t.start()
    try:
        _wait(port_file.exists, timeout=30, what="in-process server")
        with BlindClient(f"127.0.0.1:{port_file.read_text()}", timeout=30) as client:
            dep = client.deploy(_mlp(), None, mode="integer")
            x = torch.randn(1, 16)
            res = client.infer_verifiable(dep, x, prove=False)
            assert res.request_id == "" and torch.allclose(
                res.output, torch.from_numpy(dep.codec.quantized.forward(x.double())))
            code, msg = _code(lambda: client.infer_verifiable(dep, x, prove=True))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and str(tmp_path) not in msg and "full" in msg
    finally:
        loop.call_soon_threadsafe(stop.set)
        t.join(30)


# --- start-up refusals ---------------------------------------------------------------------------------

def _serve_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "blindproof.cli", "serve", "--port", "0", *args],
                          capture_output=True, text=True, timeout=timeout)


def _one_json_line(stderr: str) -> dict:
    lines = [ln for ln in stderr.splitlines() if ln.strip() and "RuntimeWarning" not in ln]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return json.loads(lines[0])


def test_unusable_store_is_one_json_line(tmp_path):
    """D4: a store that cannot be created: a JSON log line and exit status 2, no traceback."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = _serve_cli("--store", str(blocker / "store"), "--prover-workers", "0")
    assert r.returncode == 2
    assert _one_json_line(r.stderr)["event"] == "startup_failed"


def test_non_loopback_without_tls_needs_insecure(tmp_path):
    r = _serve_cli("--host", "0.0.0.0", "--store", str(tmp_path / "s"), "--prover-workers", "0")
    assert r.returncode == 2 and "--insecure" in _one_json_line(r.stderr)["error"]
    srv = ServerProcess(store=tmp_path / "s2", host="0.0.0.0", extra_args=["--insecure", "--prover-workers", "0"])
    with srv:
        with BlindClient(f"127.0.0.1:{srv.port}", timeout=10) as c:
            c.wait_ready()
    from blindproof.server.app import is_loopback
    assert all(map(is_loopback, ["127.0.0.1", "127.5.0.1", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.0.0.1", "example.com"]))


def test_token_file_readable_by_others_is_refused(tmp_path):
    tok = tmp_path / "token"
    tok.write_text("secret\n")
    tok.chmod(0o644)
    r = _serve_cli("--store", str(tmp_path / "s"), "--token-file", str(tok), "--prover-workers", "0")
    assert r.returncode == 2 and "chmod 600" in _one_json_line(r.stderr)["error"]
