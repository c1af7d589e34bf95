"""The ``blindproof.v1.Inference`` gRPC service (asyncio)."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from typing import AsyncIterator

import grpc

from blindproof.models.serialize import DigestMismatchError, LoadedModel, ModelFormatError
from blindproof.models.transformer import KVCache
from blindproof.proto import inference_pb2 as pb
from blindproof.proto import inference_pb2_grpc as pb_grpc
from blindproof.proto.tensors import WireTensorError, from_proto, to_proto
from blindproof.server import logs
from blindproof.server.guard import short, storage_status
from blindproof.server.commitments import CommitmentCache
from blindproof.server.executor import BadInputError, Executor, check_input, forward
from blindproof.server.integer_executor import (IntegerInputError, check_integer_input, integer_forward,
                                                integer_inputs, is_integer, load_deployment)
from blindproof.server.store import DeploymentInfo, ModelStore, UnknownDeploymentError, check_id, deployment_id

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Inference"].full_name
DEPLOY_MODES = ("", "integer")  # "": a float model file; "integer": the integer program proofs speak about


def _info_pb(info: DeploymentInfo) -> pb.Deployment:
    return pb.Deployment(deployment_id=info.deployment_id, digest=info.digest, key_id=info.key_id,
                         label=info.label, model_json=info.model_json, size_bytes=info.size_bytes,
                         created_unix=info.created_unix)


class InferenceService(pb_grpc.InferenceServicer):
    """Deploy, list, delete, infer and generate; every failure maps to a gRPC status with a clear message."""

    def __init__(self, store: ModelStore, executor: Executor, token: str | dict[str, str] | None = None,
                 max_model_bytes: int = 4 << 30, session_idle_s: float = 300.0, max_sessions: int = 64,
                 jobs=None, prover=None, max_sessions_per_client: int | None = None, upload_idle_s: float = 60.0,
                 max_uploads: int = 8) -> None:
        self.jobs = jobs  # blindproof.server.jobs.JobStore: keeps integer inferences so they can be proved
        self.prover = prover  # blindproof.server.prover_service.ProverServicer: queues proof jobs
        self.store = store
        self.executor = executor
        # named bearer tokens: the name is the caller's identity (queue and session limits count per identity)
        if isinstance(token, str):
            token = {"token": token}
        self._tokens = [(name, t.encode()) for name, t in token.items()] if token else None
        self.max_model_bytes = max_model_bytes
        self.session_idle_s = session_idle_s
        self.max_sessions = max_sessions
        self.max_sessions_per_client = max_sessions_per_client or max_sessions
        self.upload_idle_s = upload_idle_s
        self.max_uploads = max_uploads
        self.sessions = 0
        self.sessions_by_client: dict[str, int] = {}
        self.uploads = 0
        self.commitments = CommitmentCache()  # integer deployments: the model commitment, returned on deploy

    # --- helpers ------------------------------------------------------------------------------
    async def _authorize(self, context: grpc.aio.ServicerContext) -> str:
        """Check the bearer token; returns the caller's identity: the token's name, or (no token
        configured) the peer's address without its port. Never a value the client picks freely."""
        if self._tokens is None:
            return peer_host(context)
        meta = dict(context.invocation_metadata() or ())
        value = meta.get("authorization", "")
        if not value.startswith("Bearer "):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing bearer token (metadata 'authorization')")
        given = value[len("Bearer "):].encode()
        found = None
        for name, token in self._tokens:  # compare with every token: the time taken does not tell which matched
            if hmac.compare_digest(given, token):
                found = name
        if found is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid bearer token")
        return "token:" + found

    async def _deployment(self, dep_id: str, context) -> LoadedModel:
        try:
            check_id(dep_id)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            return await asyncio.to_thread(self.store.load, dep_id)
        except UnknownDeploymentError:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown deployment {dep_id}")
        except ModelFormatError as exc:  # the stored file was damaged on disk
            logs.event("store_corrupt", logging.ERROR, deployment=dep_id, error=str(exc))
            await context.abort(grpc.StatusCode.DATA_LOSS, f"stored deployment {dep_id} is damaged")

    @staticmethod
    async def _tensor(msg, context):
        try:
            return from_proto(msg)
        except WireTensorError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad input tensor: {exc}")

    @staticmethod
    async def _check_deadline(context) -> None:
        left = context.time_remaining()
        if left is not None and left <= 0:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before the work started")

    # --- deploy -------------------------------------------------------------------------------
    async def Deploy(self, request_iterator: AsyncIterator[pb.DeployRequest], context) -> pb.DeployReply:
        await self._authorize(context)
        # a stream holds an upload slot from its start: one that never sends its header counts too
        if self.uploads >= self.max_uploads:
            logs.event("deploy_refused", logging.WARNING, reason="too many uploads", uploads=self.uploads)
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"too many uploads in progress (limit {self.max_uploads}); try again later")
        self.uploads += 1
        try:
            return await self._deploy(aiter(request_iterator), context)
        finally:
            self.uploads -= 1

    async def _deploy(self, it, context) -> pb.DeployReply:
        t0 = time.perf_counter()
        try:
            first = await asyncio.wait_for(anext(it, None), self.upload_idle_s)
        except asyncio.TimeoutError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"no deploy header within {self.upload_idle_s:g} s")
        if first is None or first.WhichOneof("part") != "header":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first deploy message must be the header")
        header = first.header
        try:
            dep_id = deployment_id(header.digest)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if header.total_bytes == 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "total_bytes must be positive")
        if header.total_bytes > self.max_model_bytes:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"model of {header.total_bytes} bytes exceeds the server's limit of "
                                f"{self.max_model_bytes} bytes")
        if header.mode not in DEPLOY_MODES:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"unknown deploy mode {short(header.mode, 40)}; expected one of {list(DEPLOY_MODES)}")
        if self.store.exists(dep_id):  # content-addressed: the same digest is the same model
            existing = self.store.info(dep_id)
            if (header.mode == "integer") != ('"kind":"integer"' in existing.model_json):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"deployment {dep_id} exists in another mode than {header.mode or 'float'!r}")
            logs.event("deploy", deployment=dep_id, existed=True)
            reply = pb.DeployReply(deployment=_info_pb(self.store.info(dep_id)), existed=True)
            if header.mode == "integer":
                loaded = await self._deployment(dep_id, context)
                reply.model_commitment = await asyncio.to_thread(self.commitments.get, dep_id, loaded)
            return reply
        upload = None
        try:
            upload = await asyncio.to_thread(self.store.new_upload)
            received = 0
            with open(upload, "wb") as f:
                while True:
                    try:
                        msg = await asyncio.wait_for(anext(it), self.upload_idle_s)
                    except StopAsyncIteration:
                        break
                    except asyncio.TimeoutError:
                        logs.event("deploy_refused", logging.WARNING, reason="stalled upload", deployment=dep_id,
                                   received=received)
                        await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                                            f"upload stalled: nothing received for {self.upload_idle_s:g} s "
                                            f"({received} of {header.total_bytes} bytes); nothing was stored")
                    if msg.WhichOneof("part") != "chunk":
                        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "only one deploy header is allowed")
                    received += len(msg.chunk)
                    if received > header.total_bytes:
                        await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                            f"upload longer than the announced {header.total_bytes} bytes")
                    f.write(msg.chunk)
            if received < header.total_bytes:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"upload truncated: received {received} of {header.total_bytes} bytes")
            try:
                loaded = await asyncio.to_thread(load_deployment, upload, header.digest)
            except DigestMismatchError as exc:
                await context.abort(grpc.StatusCode.DATA_LOSS, str(exc))
            except ModelFormatError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid model file: {exc}")
            if is_integer(loaded) != (header.mode == "integer"):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"the file holds {'an integer' if is_integer(loaded) else 'a float'} model but "
                                    f"the deploy mode is {header.mode or 'float'!r}")
            info = await asyncio.to_thread(self.store.commit, upload, loaded, header.key_id, header.label)
        finally:
            if upload is not None:
                upload.unlink(missing_ok=True)  # no-op after a commit; removes any partial upload
        reply = pb.DeployReply(deployment=_info_pb(info), existed=False)
        if is_integer(loaded):  # commit as the prover will, so the client can compare with its own
            reply.model_commitment = await asyncio.to_thread(self.commitments.get, dep_id, loaded)
        logs.event("deploy", deployment=dep_id, existed=False, size_bytes=received,
                   ms=round(1e3 * (time.perf_counter() - t0), 2))
        return reply

    async def ListDeployments(self, request, context) -> pb.ListDeploymentsReply:
        await self._authorize(context)
        infos = await asyncio.to_thread(self.store.list)
        return pb.ListDeploymentsReply(deployments=[_info_pb(i) for i in infos])

    async def DeleteDeployment(self, request, context) -> pb.DeleteDeploymentReply:
        await self._authorize(context)
        try:
            check_id(request.deployment_id)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            await asyncio.to_thread(self.store.delete, request.deployment_id)
            self.commitments.drop(request.deployment_id)
        except UnknownDeploymentError:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown deployment {request.deployment_id}")
        logs.event("delete", deployment=request.deployment_id)
        return pb.DeleteDeploymentReply()

    # --- inference ----------------------------------------------------------------------------
    async def Infer(self, request: pb.InferRequest, context) -> pb.InferReply:
        client = await self._authorize(context)
        t0 = time.perf_counter()
        loaded = await self._deployment(request.deployment_id, context)
        x = await self._tensor(request.input, context)
        if is_integer(loaded):
            return await self._infer_integer(request, loaded, x, context, t0, client)
        if request.prove:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                "proofs speak about integer models; deploy this model in integer mode to prove it")
        try:
            check_input(loaded, x, int(request.start))
        except BadInputError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        await self._check_deadline(context)
        try:
            out = await self.executor.infer(request.deployment_id, loaded, x, int(request.start))
        except (ValueError, TypeError) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"model rejected the input: {exc}")
        logs.event("infer", logging.DEBUG, deployment=request.deployment_id, shape=tuple(x.shape), dtype=str(x.dtype),
                   ms=round(1e3 * (time.perf_counter() - t0), 3))
        return pb.InferReply(output=to_proto(out))

    async def _infer_integer(self, request: pb.InferRequest, loaded, x, context, t0: float,
                             client: str) -> pb.InferReply:
        """Run the integer program, keep the inference for proving, queue a proof when asked."""
        start = int(request.start)
        try:
            check_integer_input(loaded, x, start)
        except IntegerInputError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        await self._check_deadline(context)
        try:
            out = await self.executor.run(integer_forward, loaded, x, start)
        except (ValueError, TypeError) as exc:  # BoundError included: an input far outside calibration
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"integer model rejected the input: {exc}")
        request_id = job_id = ""
        if self.jobs is not None:
            outputs = {loaded.quantized.spec.outputs[0]: out.numpy()}
            try:
                request_id = await asyncio.to_thread(self.jobs.record_request, request.deployment_id, client, start,
                                                     integer_inputs(loaded, x), outputs)
            except Exception as exc:
                mapped = storage_status(exc)
                if mapped is None:
                    raise
                # the answer is computed: without a proof asked for, it is returned (just not kept for proving)
                logs.event("request_not_kept", logging.ERROR, deployment=request.deployment_id,
                           error_type=type(exc).__name__, error=str(exc)[:1000], prove=bool(request.prove))
                if request.prove:
                    await context.abort(mapped[0], mapped[1].replace("nothing was stored",
                                                                     "the inference cannot be kept for proving"))
                request_id = ""
            if request.prove and self.prover is not None:
                note = f"; the inference is kept as request {request_id} (prove it later with Prove)"
                job_id = (await self.prover.submit(request_id, client, context, note)).job_id
        if request.prove and not job_id:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "this server does not prove inferences")
        logs.event("infer", logging.DEBUG, deployment=request.deployment_id, shape=tuple(x.shape), integer=True,
                   prove=bool(request.prove), ms=round(1e3 * (time.perf_counter() - t0), 3))
        return pb.InferReply(output=to_proto(out), request_id=request_id, job_id=job_id)

    async def Generate(self, request_iterator, context):
        client = await self._authorize(context)
        # a stream holds its slot from the start: one that never opens a session counts too
        if self.sessions >= self.max_sessions:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"too many open generation sessions (limit {self.max_sessions})")
        if self.sessions_by_client.get(client, 0) >= self.max_sessions_per_client:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"this client has too many open generation sessions "
                                f"(limit {self.max_sessions_per_client} per client)")
        self.sessions += 1
        self.sessions_by_client[client] = self.sessions_by_client.get(client, 0) + 1
        try:
            async for reply in self._session(aiter(request_iterator), context):
                yield reply
        finally:
            self.sessions -= 1
            left = self.sessions_by_client.pop(client) - 1
            if left:
                self.sessions_by_client[client] = left

    async def _session(self, it, context):
        """One generation session on an open stream (see Generate)."""
        try:
            first = await self._next(it, context)
        except asyncio.TimeoutError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                                f"no session opened within {self.session_idle_s:g} s")
        if first is None:
            return
        if first.WhichOneof("msg") != "open":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first generate message must open the session")
        dep_id = first.open.deployment_id
        loaded = await self._deployment(dep_id, context)
        desc = loaded.description
        if desc["kind"] != "transformer":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "generation needs a transformer deployment")
        if not desc["config"].get("causal", True):
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "generation needs a causal transformer")
        session = uuid.uuid4().hex[:12]
        cache = KVCache(desc["config"]["n_layers"])
        steps, batch, end = 0, None, "ended"
        logs.event("session_open", session=session, deployment=dep_id)
        try:
            while True:
                msg = await self._next(it, context)
                if msg is None:  # the client half-closed or went away; either way the cache goes
                    break
                if msg.WhichOneof("msg") != "step":
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "session already open; send steps")
                x = await self._tensor(msg.step.input, context)
                try:
                    check_input(loaded, x, cache.length, cache.length)
                    if batch is not None and x.shape[0] != batch:
                        raise BadInputError(f"batch size {x.shape[0]} differs from the session's {batch}")
                except BadInputError as exc:
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
                batch = x.shape[0]
                start = cache.length
                try:
                    out = await self.executor.run(forward, loaded, x, start, cache)
                except (ValueError, TypeError) as exc:
                    end = "error"
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"model rejected the input: {exc}")
                steps += 1
                yield pb.GenerateReply(output=to_proto(out[:, -1:]), length=cache.length)
        except (asyncio.CancelledError, GeneratorExit):  # client went away mid-stream
            end = "cancelled"
            raise
        except asyncio.TimeoutError:
            end = "idle"
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                                f"session idle for more than {self.session_idle_s:g} s; its cache was dropped")
        finally:
            logs.event("session_end", session=session, deployment=dep_id, steps=steps, reason=end)

    async def _next(self, it, context):
        """The next request of a stream, or None at its end; TimeoutError after the idle timeout."""
        try:
            return await asyncio.wait_for(anext(it), self.session_idle_s)
        except StopAsyncIteration:
            return None


def peer_host(context) -> str:
    """The caller's address without its port (``ipv4:127.0.0.1:54321`` -> ``ipv4:127.0.0.1``)."""
    peer = context.peer() or "unknown"
    return peer.rsplit(":", 1)[0] if peer.count(":") >= 2 else peer
