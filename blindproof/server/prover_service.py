"""The ``blindproof.v1.ProverService`` gRPC service: queue, watch, cancel proof jobs; download proofs."""

from __future__ import annotations

import asyncio
import time

import grpc

from blindproof.proto import prover_pb2 as pb
from blindproof.proto import prover_pb2_grpc as pb_grpc
from blindproof.server import logs
from blindproof.server.jobs import (CANCELLED, DONE, FAILED, FINAL, QUEUED, RUNNING, JobInfo, JobStateError, JobStore,
                                    QueueFullError, UnknownJobError, UnknownRequestError)
from blindproof.server.prover_pool import ProverPool

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ProverService"].full_name
CLIENT_METADATA = "x-blindproof-client"
DEFAULT_CHUNK = 1 << 20
MAX_CHUNK = 16 << 20
_STATES = {QUEUED: pb.JOB_QUEUED, RUNNING: pb.JOB_RUNNING, DONE: pb.JOB_DONE, FAILED: pb.JOB_FAILED,
           CANCELLED: pb.JOB_CANCELLED}


def job_pb(info: JobInfo) -> pb.Job:
    """The wire form of a job's state."""
    return pb.Job(job_id=info.job_id, request_id=info.request_id, deployment_id=info.deployment_id,
                  state=_STATES[info.state], progress=info.progress, message=info.message, attempts=info.attempts,
                  queue_position=info.queue_position, proof_bytes=info.proof_bytes, proof_digest=info.proof_digest,
                  created_unix=info.created, updated_unix=info.updated)


def client_of(context: grpc.aio.ServicerContext) -> str:
    """Who a call counts against for queue limits: the client id it sends, else its peer's address."""
    meta = dict(context.invocation_metadata() or ())
    given = meta.get(CLIENT_METADATA, "")
    if given:
        return given[:128]
    peer = context.peer() or "unknown"  # e.g. ipv4:127.0.0.1:54321 -> ipv4:127.0.0.1
    return peer.rsplit(":", 1)[0] if peer.count(":") >= 2 else peer


class ProverServicer(pb_grpc.ProverServiceServicer):
    """Jobs live in SQLite (:class:`JobStore`); proving happens in :class:`ProverPool` workers."""

    def __init__(self, jobs: JobStore, pool: ProverPool | None, authorize, poll_s: float = 0.1) -> None:
        self.jobs, self.pool, self._authorize, self.poll_s = jobs, pool, authorize, poll_s

    async def submit(self, request_id: str, client: str, context, note: str = "") -> JobInfo:
        """Queue a job (shared with ``Infer(prove=true)``); aborts with the matching status (``note`` is
        appended to a queue-full message)."""
        if self.pool is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "this server runs no prover workers "
                                                                     "(--prover-workers 0)")
        try:
            info = await asyncio.to_thread(self.jobs.submit, request_id, client)
        except UnknownRequestError:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no served inference is kept under request id "
                                                           f"{request_id!r}")
        except QueueFullError as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc) + note)
        logs.event("job_queued", job=info.job_id, request=request_id, deployment=info.deployment_id)
        return info

    async def _job(self, job_id: str, context) -> JobInfo:
        try:
            return await asyncio.to_thread(self.jobs.job, job_id)
        except UnknownJobError:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown job {job_id!r}")

    async def Prove(self, request: pb.ProveRequest, context) -> pb.Job:
        await self._authorize(context)
        return job_pb(await self.submit(request.request_id, client_of(context), context))

    async def GetJob(self, request: pb.JobRef, context) -> pb.Job:
        await self._authorize(context)
        return job_pb(await self._job(request.job_id, context))

    async def WatchJob(self, request: pb.JobRef, context):
        await self._authorize(context)
        last = None
        while True:
            info = await self._job(request.job_id, context)
            key = (info.state, info.progress, info.message, info.queue_position, info.attempts)
            if key != last:
                last = key
                yield job_pb(info)
            if info.state in FINAL:
                return
            await asyncio.sleep(self.poll_s)

    async def CancelJob(self, request: pb.JobRef, context) -> pb.Job:
        await self._authorize(context)
        try:
            info, pid = await asyncio.to_thread(self.jobs.cancel, request.job_id)
        except UnknownJobError:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown job {request.job_id!r}")
        except JobStateError as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        if pid is not None and self.pool is not None:
            self.pool.stop_worker(pid)
        logs.event("job_cancelled", job=request.job_id, was_running=pid is not None)
        return job_pb(info)

    async def DownloadProof(self, request: pb.DownloadProofRequest, context):
        await self._authorize(context)
        chunk = request.chunk_bytes or DEFAULT_CHUNK
        if chunk > MAX_CHUNK:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"chunk_bytes must be at most {MAX_CHUNK}")
        try:
            size, digest = await asyncio.to_thread(self.jobs.proof_size, request.job_id)
        except UnknownJobError:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown job {request.job_id!r}")
        except JobStateError as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        if request.offset > size:
            await context.abort(grpc.StatusCode.OUT_OF_RANGE, f"offset {request.offset} is past the proof's {size} bytes")
        t0, pos = time.perf_counter(), int(request.offset)
        it = self.jobs.proof_chunks(request.job_id, chunk, pos)
        while True:
            data = await asyncio.to_thread(next, it, None)
            if data is None:
                break
            yield pb.ProofChunk(offset=pos, data=data, total_bytes=size, digest=digest)
            pos += len(data)
        logs.event("proof_download", job=request.job_id, bytes=pos - int(request.offset),
                   ms=round(1e3 * (time.perf_counter() - t0), 2))
