"""The ``blindproof.v1.ProverService`` gRPC service: queue, watch, cancel proof jobs; download proofs."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc

from blindproof.proto import prover_pb2 as pb
from blindproof.proto import prover_pb2_grpc as pb_grpc
from blindproof.server import logs
from blindproof.server.guard import check_ref, short
from blindproof.server.jobs import (CANCELLED, DONE, FAILED, FINAL, QUEUED, RUNNING, JobInfo, JobStateError, JobStore,
                                    QueueFullError, UnknownJobError, UnknownRequestError)
from blindproof.server.prover_pool import ProverPool

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ProverService"].full_name
CLIENT_METADATA = "x-blindproof-client"  # accepted for compatibility; limits count per authenticated identity
DEFAULT_CHUNK = 1 << 20
MAX_CHUNK = 16 << 20
MIN_CHUNK = 4 << 10  # smaller chunks would make a download cost the server a message per few bytes
CHUNK_FRAMING = 4 << 10  # room a ProofChunk needs beside its data (offset, total, digest, tags)
_STATES = {QUEUED: pb.JOB_QUEUED, RUNNING: pb.JOB_RUNNING, DONE: pb.JOB_DONE, FAILED: pb.JOB_FAILED,
           CANCELLED: pb.JOB_CANCELLED}


def job_pb(info: JobInfo) -> pb.Job:
    """The wire form of a job's state."""
    return pb.Job(job_id=info.job_id, request_id=info.request_id, deployment_id=info.deployment_id,
                  state=_STATES[info.state], progress=info.progress, message=info.message, attempts=info.attempts,
                  queue_position=info.queue_position, proof_bytes=info.proof_bytes, proof_digest=info.proof_digest,
                  created_unix=info.created, updated_unix=info.updated)


def chunk_limits(max_message_bytes: int) -> tuple[int, int]:
    """(default, largest) proof chunk that fits a message of ``max_message_bytes``."""
    largest = min(MAX_CHUNK, max_message_bytes - CHUNK_FRAMING)
    return min(DEFAULT_CHUNK, largest), largest


class ProverServicer(pb_grpc.ProverServiceServicer):
    """Jobs live in SQLite (:class:`JobStore`); proving happens in :class:`ProverPool` workers.

    ``authorize(context)`` checks the caller and returns its identity, which queue and watcher limits
    count against."""

    def __init__(self, jobs: JobStore, pool: ProverPool | None, authorize, poll_s: float = 0.1,
                 max_message_bytes: int = 64 << 20, max_watchers: int = 64, max_watchers_per_client: int = 8) -> None:
        self.jobs, self.pool, self._authorize, self.poll_s = jobs, pool, authorize, poll_s
        self.default_chunk, self.max_chunk = chunk_limits(max_message_bytes)
        self.max_watchers, self.max_watchers_per_client = max_watchers, max_watchers_per_client
        self.watchers = 0
        self.watchers_by_client: dict[str, int] = {}

    async def _ref(self, kind: str, value: str, context) -> None:
        problem = check_ref(kind, value)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)

    async def submit(self, request_id: str, client: str, context, note: str = "") -> JobInfo:
        """Queue a job (shared with ``Infer(prove=true)``); aborts with the matching status (``note`` is
        appended to a queue-full message)."""
        if self.pool is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "this server runs no prover workers "
                                                                     "(--prover-workers 0)")
        await self._ref("request", request_id, context)
        try:
            info = await asyncio.to_thread(self.jobs.submit, request_id, client)
        except UnknownRequestError:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no served inference is kept under request id "
                                                           f"{short(request_id)}")
        except QueueFullError as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc) + note)
        logs.event("job_queued", job=info.job_id, request=request_id, deployment=info.deployment_id)
        return info

    async def _job(self, job_id: str, context) -> JobInfo:
        await self._ref("job", job_id, context)
        try:
            return await asyncio.to_thread(self.jobs.job, job_id)
        except UnknownJobError:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown job {short(job_id)}")

    async def Prove(self, request: pb.ProveRequest, context) -> pb.Job:
        client = await self._authorize(context)
        return job_pb(await self.submit(request.request_id, client, context))

    async def GetJob(self, request: pb.JobRef, context) -> pb.Job:
        await self._authorize(context)
        return job_pb(await self._job(request.job_id, context))

    async def WatchJob(self, request: pb.JobRef, context):
        client = await self._authorize(context)
        if self.watchers >= self.max_watchers:
            logs.event("watch_refused", logging.WARNING, reason="server-wide limit", watchers=self.watchers)
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"too many job watchers on this server (limit {self.max_watchers}); poll GetJob instead")
        if self.watchers_by_client.get(client, 0) >= self.max_watchers_per_client:
            logs.event("watch_refused", logging.WARNING, reason="per-client limit")
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"this client watches too many jobs at once (limit {self.max_watchers_per_client} "
                                f"per client); poll GetJob instead")
        self.watchers += 1
        self.watchers_by_client[client] = self.watchers_by_client.get(client, 0) + 1
        try:
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
        finally:
            self.watchers -= 1
            left = self.watchers_by_client.pop(client) - 1
            if left:
                self.watchers_by_client[client] = left

    async def CancelJob(self, request: pb.JobRef, context) -> pb.Job:
        await self._authorize(context)
        await self._ref("job", request.job_id, context)
        try:
            info, pid = await asyncio.to_thread(self.jobs.cancel, request.job_id)
        except UnknownJobError:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown job {short(request.job_id)}")
        except JobStateError as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        if pid is not None and self.pool is not None:
            self.pool.stop_worker(pid)
        logs.event("job_cancelled", job=request.job_id, was_running=pid is not None)
        return job_pb(info)

    async def DownloadProof(self, request: pb.DownloadProofRequest, context):
        await self._authorize(context)
        chunk = request.chunk_bytes or self.default_chunk
        if not MIN_CHUNK <= chunk <= self.max_chunk:
            logs.event("download_refused", logging.WARNING, chunk_bytes=int(request.chunk_bytes),
                       min_chunk=MIN_CHUNK, max_chunk=self.max_chunk)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"chunk_bytes must lie in [{MIN_CHUNK}, {self.max_chunk}] on this server (its "
                                f"message limit is {self.max_chunk + CHUNK_FRAMING} bytes); 0 picks {self.default_chunk}")
        await self._ref("job", request.job_id, context)
        try:
            size, digest = await asyncio.to_thread(self.jobs.proof_size, request.job_id)
        except UnknownJobError:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown job {short(request.job_id)}")
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
