"""The prover daemon: SQLite job store, prover worker processes, ProverService over a real server.

The server tests inject a deterministic stand-in prover (``SlowProver`` below, loaded by the worker
processes through ``--prover test_prover_daemon:SlowProver``): its proof is a fixed function of the
served inference, so a test can check that the exact bytes come back after kills and restarts, and
its pace is set by environment variables, so a job can be caught mid-run. The real whole-model prover
is exercised end to end in ``test_real_prover_end_to_end`` when ``blindproof.zk.proof.prover`` can prove.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import blake3
import grpc
import numpy as np
import pytest
import torch

from blindproof.client import BlindClient, RemoteError
from blindproof.models.mlp import MLP
from blindproof.server.jobs import (CANCELLED, DONE, FAILED, QUEUED, RUNNING, JobStateError, JobStore, QueueFullError,
                                    UnknownJobError, UnknownRequestError, pack_arrays, unpack_arrays)
from blindproof.server.process import ServerProcess

TESTS = Path(__file__).resolve().parent
STANDIN = "test_prover_daemon:SlowProver"


# --- the stand-in prover (tests only) ---------------------------------------------------------------

def expected_proof(deployment_id: str, start: int, inputs: dict, outputs: dict, size: int) -> bytes:
    """What SlowProver returns: BLAKE3 XOF over the served inference."""
    h = blake3.blake3(deployment_id.encode() + start.to_bytes(8, "little"))
    h.update(pack_arrays(inputs))
    h.update(pack_arrays(outputs))
    return h.digest(length=size)


class SlowProver:
    """Deterministic stand-in: ``BP_TEST_STEPS`` progress steps of ``BP_TEST_STEP_S`` seconds each,
    then a ``BP_TEST_PROOF_BYTES``-byte proof bound to the job's deployment, input and output."""

    def __init__(self) -> None:
        self.steps = int(os.environ.get("BP_TEST_STEPS", "4"))
        self.step_s = float(os.environ.get("BP_TEST_STEP_S", "0.1"))
        self.size = int(os.environ.get("BP_TEST_PROOF_BYTES", "300000"))

    def prove(self, job, progress) -> bytes:
        for i in range(self.steps):
            progress(i / self.steps, f"step {i + 1} of {self.steps}")
            time.sleep(self.step_s)
        return expected_proof(job.deployment_id, job.start, dict(job.inputs), dict(job.outputs), self.size)


# --- JobStore units -----------------------------------------------------------------------------------

def _store(tmp_path, **kw) -> tuple[JobStore, str]:
    js = JobStore(tmp_path / "jobs.sqlite", **kw)
    rid = js.record_request("d" * 64, "alice", 0, {"x": np.arange(6).reshape(2, 3)}, {"y": np.array([[1, -2]])})
    return js, rid


def test_arrays_round_trip():
    a = {"tokens": np.array([[1, 2, 3]], dtype=np.int64), "z": np.zeros((0, 4), dtype=np.int64)}
    b = unpack_arrays(pack_arrays(a))
    assert set(b) == set(a) and all(np.array_equal(a[k], b[k]) and a[k].shape == b[k].shape for k in a)


def test_job_lifecycle_and_chunks(tmp_path):
    js, rid = _store(tmp_path)
    req = js.request(rid)
    assert np.array_equal(req.inputs["x"], np.arange(6).reshape(2, 3)) and req.client == "alice"
    job = js.submit(rid, "alice")
    assert job.state == QUEUED and job.queue_position == 0 and job.deployment_id == "d" * 64
    assert js.claim(worker_pid=111).job_id == job.job_id and js.claim(worker_pid=222) is None
    assert js.job(job.job_id).state == RUNNING and js.job(job.job_id).attempts == 1
    assert js.progress(job.job_id, 111, 0.5, "half") and not js.progress(job.job_id, 222, 0.6, "not mine")
    with pytest.raises(JobStateError):
        js.proof_size(job.job_id)
    proof = bytes(range(256)) * 40 + b"tail"
    assert not js.finish(job.job_id, 222, proof)  # only the worker that runs it may finish it
    assert js.finish(job.job_id, 111, proof)
    info = js.job(job.job_id)
    assert info.state == DONE and info.proof_bytes == len(proof) and info.progress == 1.0
    for chunk in (1, 7, 1000, 1 << 20):
        assert b"".join(js.proof_chunks(job.job_id, chunk)) == proof
    assert b"".join(js.proof_chunks(job.job_id, 100, offset=5000)) == proof[5000:]
    with pytest.raises(JobStateError):
        js.cancel(job.job_id)


def test_unknown_ids(tmp_path):
    js, _ = _store(tmp_path)
    with pytest.raises(UnknownRequestError):
        js.submit("nope", "alice")
    with pytest.raises(UnknownJobError):
        js.job("nope")
    with pytest.raises(UnknownJobError):
        js.cancel("nope")


def test_queue_limit_per_client(tmp_path):
    js, rid = _store(tmp_path, max_queued_per_client=2)
    a, b = js.submit(rid, "alice"), js.submit(rid, "alice")
    assert js.job(b.job_id).queue_position == 1
    with pytest.raises(QueueFullError, match="limit 2"):
        js.submit(rid, "alice")
    js.submit(rid, "bob")  # another client has its own allowance
    info, pid = js.cancel(a.job_id)
    assert info.state == CANCELLED and pid is None
    js.submit(rid, "alice")  # a cancelled job frees its slot
    js.claim(worker_pid=5)
    _, pid = js.cancel(b.job_id)  # b is running now: the caller learns which worker to stop
    assert pid == 5 and js.job(b.job_id).state == CANCELLED
    assert js.cancel(b.job_id)[0].state == CANCELLED  # idempotent


def test_recover_and_requeue_limits(tmp_path):
    js, rid = _store(tmp_path, max_attempts=2)
    job = js.submit(rid, "alice")
    js.claim(worker_pid=7)
    js.close()
    js = JobStore(tmp_path / "jobs.sqlite", max_attempts=2)  # a new daemon on the same database
    assert js.recover() == [job.job_id]
    assert js.job(job.job_id).state == QUEUED and "restart" in js.job(job.job_id).message
    js.claim(worker_pid=8)
    assert js.requeue_worker(8, "worker died") == [job.job_id]
    info = js.job(job.job_id)
    assert info.state == FAILED and "gave up after 2 runs" in info.message


def test_old_requests_are_pruned_unless_a_job_needs_them(tmp_path):
    js = JobStore(tmp_path / "jobs.sqlite", keep_requests=2)
    ids = [js.record_request("d" * 64, "c", 0, {"x": np.array([i])}, {"y": np.array([i])}) for i in range(2)]
    js.submit(ids[0], "c")
    more = [js.record_request("d" * 64, "c", 0, {"x": np.array([i])}, {"y": np.array([i])}) for i in range(3)]
    js.request(ids[0])  # kept: a job refers to it
    with pytest.raises(UnknownRequestError):
        js.request(ids[1])
    assert all(js.request(r) for r in more[1:])


def test_bad_limits(tmp_path):
    with pytest.raises(ValueError, match="max_queued_per_client"):
        JobStore(tmp_path / "j.sqlite", max_queued_per_client=0)


# --- against a real `blindproof serve` ----------------------------------------------------------------

def _mlp() -> MLP:
    torch.manual_seed(0)
    return MLP((16, 8, 4)).eval()


def _serve(tmp_path, *args: str, steps: int = 4, step_s: float = 0.1, proof_bytes: int = 300_000,
           prover: str = STANDIN) -> ServerProcess:
    env = {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "BP_TEST_STEPS": str(steps), "BP_TEST_STEP_S": str(step_s), "BP_TEST_PROOF_BYTES": str(proof_bytes)}
    return ServerProcess(store=tmp_path / "store", extra_args=["--prover", prover, *args], env=env)


def _wait(pred, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _expected_for(client: BlindClient, srv: ServerProcess, job_id: str, size: int) -> bytes:
    from blindproof.server.jobs import JobStore as _JS
    info = client.job(job_id)
    js = _JS(srv.store / "jobs.sqlite")  # read-only use: the served inference as the daemon recorded it
    try:
        req = js.request(info.request_id)
    finally:
        js.close()
    return expected_proof(req.deployment_id, req.start, req.inputs, req.outputs, size)


@pytest.mark.timeout(180)
def test_prove_in_request_progress_stream_and_chunked_download(tmp_path):
    with _serve(tmp_path, steps=5, step_s=0.15) as srv, BlindClient(srv.target, client_id="alice") as client:
        client.wait_ready()
        model = _mlp()
        dep = client.deploy(model, None, mode="integer")
        x = torch.randn(2, 16, generator=torch.Generator().manual_seed(3))
        res = client.infer_verifiable(dep, x, prove=True)
        assert res.request_id and res.job_id
        # the served answer is the integer program's, decoded on the client
        assert torch.allclose(res.output, torch.from_numpy(dep.codec.quantized.forward(x.double())))
        states = list(client.watch(res.job_id))
        assert states[-1].state == "done" and states[-1].progress == 1.0
        running = [s for s in states if s.state == "running"]
        assert len(running) >= 3, [(s.state, s.progress) for s in states]  # the stream shows the steps
        fractions = [s.progress for s in running]
        assert fractions == sorted(fractions) and any("step" in s.message for s in running)
        proof = client.download_proof(res.job_id, chunk_bytes=64 * 1024)  # 5 chunks for 300 kB
        assert proof == _expected_for(client, srv, res.job_id, 300_000)
        assert client.download_proof(res.job_id, chunk_bytes=1 << 20) == proof
        from blindproof.proto import prover_pb2
        tail = list(client._prover.DownloadProof(prover_pb2.DownloadProofRequest(
            job_id=res.job_id, chunk_bytes=4096, offset=len(proof) - 10000), timeout=30))
        assert b"".join(c.data for c in tail) == proof[-10000:]
        assert [c.offset for c in tail] == [len(proof) - 10000 + 4096 * i for i in range(3)]
        with pytest.raises(grpc.RpcError) as err:
            list(client._prover.DownloadProof(prover_pb2.DownloadProofRequest(job_id=res.job_id, offset=len(proof) + 1),
                                              timeout=30))
        assert err.value.code() == grpc.StatusCode.OUT_OF_RANGE
        assert states[-1].proof_digest == "blake3:" + blake3.blake3(proof).hexdigest()
        # later, by request id: a second job for the same inference proves the same statement
        again = client.prove(res.request_id)
        assert client.wait_proof(again.job_id) == proof
        # the plain infer path of an integer deployment keeps the request too (no job)
        later = client.infer_verifiable(dep, x, prove=False)
        assert later.request_id and not later.job_id
        assert torch.equal(later.output, res.output)
        with pytest.raises(RemoteError) as e:
            client.prove("no-such-request")
        assert e.value.code == grpc.StatusCode.NOT_FOUND
        with pytest.raises(RemoteError) as e:
            client.download_proof("no-such-job")
        assert e.value.code == grpc.StatusCode.NOT_FOUND


@pytest.mark.timeout(180)
def test_queue_full_and_cancellation(tmp_path):
    tokens = tmp_path / "tokens"  # one named token per client: queue limits count per authenticated identity
    tokens.write_text("alice alice-token\nbob bob-token\n")
    tokens.chmod(0o600)
    with _serve(tmp_path, "--max-queued-per-client", "2", "--token-file", str(tokens), steps=200, step_s=0.05) as srv, \
            BlindClient(srv.target, token="alice-token") as alice, BlindClient(srv.target, token="bob-token") as bob:
        alice.wait_ready()
        model = _mlp()
        dep = alice.deploy(model, None, mode="integer")
        x = torch.randn(1, 16)
        r1 = alice.infer_verifiable(dep, x, prove=True)
        r2 = alice.infer_verifiable(dep, x, prove=True)
        with pytest.raises(RemoteError) as e:  # two jobs queued or running: the third is refused
            alice.infer_verifiable(dep, x, prove=True)
        assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "limit 2" in e.value.details
        kept = e.value.details.split("kept as request ")[1].split()[0]  # the answer is lost, the request is not
        with pytest.raises(RemoteError) as e:
            alice.prove(r1.request_id)
        assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        rb = bob.infer_verifiable(dep, x, prove=True)  # bob has his own allowance
        _wait(lambda: alice.job(r1.job_id).state == "running", what="job 1 running")
        assert alice.job(r2.job_id).state == "queued" and alice.job(rb.job_id).queue_position == 1
        # cancel the running job: its worker is stopped and the next job starts
        pid = _worker_pid(srv, r1.job_id)
        assert alice.cancel(r1.job_id).state == "cancelled"
        _wait(lambda: not _alive(pid), what="the cancelled job's worker to stop")
        _wait(lambda: alice.job(r2.job_id).state == "running", what="job 2 to start")
        os.kill(_worker_pid(srv, r2.job_id), signal.SIGKILL)  # a worker crash: its job is run again
        _wait(lambda: alice.job(r2.job_id).attempts == 2 and alice.job(r2.job_id).state == "running",
              what="job 2 requeued and restarted on a fresh worker")
        assert '"event":"prover_worker_exit"' in srv.log()
        assert alice.cancel(rb.job_id).state == "cancelled"  # queued: simply removed from the queue
        assert alice.cancel(rb.job_id).state == "cancelled"  # idempotent
        assert [s.state for s in alice.watch(r1.job_id)] == ["cancelled"]
        with pytest.raises(RemoteError) as e:
            alice.download_proof(r1.job_id)
        assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION
        r3 = alice.prove(kept)  # the cancelled job freed a slot; the refused inference can be proved now
        assert r3.state == "queued" and r3.request_id == kept
        with pytest.raises(RemoteError) as e:
            alice.cancel("no-such-job")
        assert e.value.code == grpc.StatusCode.NOT_FOUND
        assert alice.health("blindproof.v1.ProverService") == "SERVING"


def _worker_pid(srv: ServerProcess, job_id: str) -> int:
    js = JobStore(srv.store / "jobs.sqlite")
    try:
        return int(js.job(job_id).worker_pid)
    finally:
        js.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.timeout(240)
def test_sigkill_mid_job_then_restart_delivers(tmp_path):
    srv = _serve(tmp_path, steps=20, step_s=0.1)
    try:
        srv.start()
        with BlindClient(srv.target, client_id="carol") as client:
            client.wait_ready()
            dep = client.deploy(_mlp(), None, mode="integer")
            x = torch.randn(3, 16, generator=torch.Generator().manual_seed(5))
            res = client.infer_verifiable(dep, x, prove=True)
            queued = client.prove(res.request_id)  # a second accepted job, still queued at the kill
            _wait(lambda: client.job(res.job_id).progress >= 0.1, what="the job to be under way")
            pid = _worker_pid(srv, res.job_id)
            srv.proc.send_signal(signal.SIGKILL)  # no graceful anything
            srv.proc.wait()
            _wait(lambda: not _alive(pid), timeout=10, what="the orphaned worker to die with the daemon")
        srv.stop()
        srv.start(port=srv.port)
        with BlindClient(srv.target, client_id="carol") as client:
            client.wait_ready()
            first = client.wait_proof(res.job_id)
            second = client.wait_proof(queued.job_id)
            assert first == second == _expected_for(client, srv, res.job_id, 300_000)
            info = client.job(res.job_id)
            assert info.state == "done" and info.attempts == 2  # started again after the restart
        assert '"event":"jobs_recovered"' in srv.log()
    finally:
        srv.close()


@pytest.mark.timeout(120)
def test_prove_needs_an_integer_deployment_and_workers(tmp_path):
    db = tmp_path / "elsewhere" / "jobs.sqlite"
    with _serve(tmp_path, "--prover-workers", "0", "--jobs-db", str(db)) as srv, BlindClient(srv.target) as client:
        client.wait_ready()
        model = _mlp()
        float_dep = client.deploy(model, None)
        with pytest.raises(grpc.RpcError) as e:
            client._stub.Infer(_infer_req(float_dep.deployment_id, torch.randn(1, 16), prove=True), timeout=30)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "integer mode" in e.value.details()
        dep = client.deploy(model, None, mode="integer")
        res = client.infer_verifiable(dep, torch.randn(1, 16), prove=False)
        assert res.request_id  # kept even without workers
        with pytest.raises(RemoteError) as e:
            client.prove(res.request_id)
        assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION and "no prover workers" in e.value.details
        assert db.exists() and not (srv.store / "jobs.sqlite").exists()  # --jobs-db is honoured
        second = ServerProcess(store=tmp_path / "other", extra_args=["--jobs-db", str(db), "--prover-workers", "0"])
        with pytest.raises(RuntimeError, match="another blindproof serve"):  # one daemon per jobs database
            second.start(timeout=60)
        second.close()


def _infer_req(dep_id: str, x: torch.Tensor, prove: bool):
    from blindproof.proto import inference_pb2 as pb
    from blindproof.proto.tensors import to_proto
    return pb.InferRequest(deployment_id=dep_id, input=to_proto(x), prove=prove)


def test_bad_prover_spec_fails_at_startup(tmp_path):
    srv = _serve(tmp_path, prover="no_such_module:Nothing")
    with pytest.raises(RuntimeError, match="cannot load prover"):
        srv.start(timeout=60)
    srv.close()


def _real_prover_available() -> bool:
    try:
        from blindproof.zk.proof import program  # noqa: F401
        from blindproof.zk.proof.prover import ModelProver  # noqa: F401
        from blindproof.zk.proof.verifier import verify_model_proof  # noqa: F401
    except Exception:
        return False
    return True


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(not _real_prover_available(), reason="the whole-model prover (blindproof.zk.proof.prover) is not here")
def test_real_prover_end_to_end(tmp_path):
    from blindproof.zk.proof.verifier import verify_model_proof
    with ServerProcess(store=tmp_path / "store") as srv, BlindClient(srv.target) as client:
        client.wait_ready()
        dep = client.deploy(_mlp(), None, mode="integer")
        x = torch.randn(1, 16, generator=torch.Generator().manual_seed(9))
        res = client.infer_verifiable(dep, x, prove=True)
        proof = client.wait_proof(res.job_id, timeout=240)
        spec = dep.codec.quantized.spec
        inputs = {spec.inputs[0]: dep.codec.client_input(x).numpy()}
        js = JobStore(srv.store / "jobs.sqlite")
        outputs = js.request(res.request_id).outputs
        js.close()
        verdict = verify_model_proof(client.model_commitment(dep), proof, inputs, outputs)
        assert verdict.ok, verdict.reason
