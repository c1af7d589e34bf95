"""``BlindClient``: deploy EE-transformed models and run blind inference and generation over gRPC.

The client transforms the model locally (``encrypt_model``), uploads only the parts the server runs,
and keeps the plaintext model and the key: the server never receives either. Results come back
decoded, as if the model had run locally.
"""

from __future__ import annotations

import os
import queue
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, TypeVar

import grpc
import torch
from grpc_health.v1 import health_pb2, health_pb2_grpc
from torch import nn

from blindproof.client.codecs import PlainCodec, SplitCodec, server_parts
from blindproof.client.errors import DeploymentDigestError, RemoteError
from blindproof.ee import ClientCodec, EEKey, Split, Tier, encrypt_model
from blindproof.models.serialize import to_bytes
from blindproof.models.transformer import Transformer
from blindproof.proto import inference_pb2 as pb
from blindproof.proto import inference_pb2_grpc as pb_grpc
from blindproof.proto import prover_pb2, prover_pb2_grpc
from blindproof.proto.tensors import from_proto, to_proto

if TYPE_CHECKING:
    from blindproof.client.verify import VerifiedProof
    from blindproof.zk.proof.commitment import ModelCommitment

MiB = 1 << 20
T = TypeVar("T")
_RETRYABLE = {grpc.StatusCode.UNAVAILABLE}


@dataclass
class WireStats:
    """Serialized protobuf bytes sent and received (HTTP/2 and TLS framing not included)."""

    bytes_sent: int = 0
    bytes_received: int = 0
    calls: int = 0

    def reset(self) -> None:
        self.bytes_sent = self.bytes_received = self.calls = 0


@dataclass(frozen=True)
class RemoteDeployment:
    """A deployment as the server lists it (public metadata only)."""

    deployment_id: str
    digest: str
    key_id: str
    label: str
    model_json: str
    size_bytes: int
    created_unix: float

    @classmethod
    def from_pb(cls, d: pb.Deployment) -> "RemoteDeployment":
        return cls(d.deployment_id, d.digest, d.key_id, d.label, d.model_json, d.size_bytes, d.created_unix)


@dataclass
class Deployment:
    """A model on the server together with the client-side codec that talks to it."""

    deployment_id: str
    digest: str
    key_id: str  # "" for a plaintext deployment
    codec: SplitCodec = field(repr=False)
    tier: str | None  # None for a plaintext deployment
    existed: bool = False
    mode: str = "float"  # "integer": the server runs the integer program that proofs speak about
    # integer deployments: the model commitment the client computed from its own integer model (proofs
    # are verified against this copy, never against one the server sends)
    commitment: "ModelCommitment | None" = field(default=None, repr=False)

    @property
    def model(self) -> nn.Module:
        """The client's plaintext model."""
        return self.codec.model


_JOB_STATES = {prover_pb2.JOB_QUEUED: "queued", prover_pb2.JOB_RUNNING: "running", prover_pb2.JOB_DONE: "done",
               prover_pb2.JOB_FAILED: "failed", prover_pb2.JOB_CANCELLED: "cancelled"}


@dataclass(frozen=True)
class JobStatus:
    """A proof job as the server reports it; ``state`` is queued, running, done, failed or cancelled."""

    job_id: str
    request_id: str
    deployment_id: str
    state: str
    progress: float
    message: str
    attempts: int
    queue_position: int
    proof_bytes: int
    proof_digest: str

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    @classmethod
    def from_pb(cls, j: prover_pb2.Job) -> "JobStatus":
        return cls(j.job_id, j.request_id, j.deployment_id, _JOB_STATES.get(j.state, "unknown"), j.progress,
                   j.message, j.attempts, j.queue_position, j.proof_bytes, j.proof_digest)


@dataclass(frozen=True)
class InferResult:
    """A decoded output with the server's ids for proving it (integer deployments)."""

    output: torch.Tensor
    request_id: str
    job_id: str  # "" unless a proof was requested


class ProofJobError(RuntimeError):
    """A proof job ended without a proof (failed or cancelled)."""


@dataclass(frozen=True)
class VerifiedInference:
    """A decoded output with a proof that verified against the deployment's commitment and exactly the
    encrypted request sent and response received (``sent``/``received``: the program's wire tensors)."""

    output: torch.Tensor
    proof: "VerifiedProof"
    request_id: str
    job_id: str
    sent: dict = field(repr=False)
    received: dict = field(repr=False)
    seconds: dict = field(default_factory=dict)  # infer, prove (queue + proving), download, verify


@dataclass
class VerifiedGeneration:
    """Greedily generated tokens with one proof, verified here, that they are the greedy continuation
    of the prompt under the deployment's committed model: the proof covers one forward over the prompt
    and the first ``n − 1`` new tokens, and each new token is the argmax of the proved logits before it."""

    tokens: torch.Tensor  # (1, n) new token ids
    inference: VerifiedInference  # the proved forward (its ``output``: the decoded logits of every position)


def integer_commitment(quantized, commitment_key: bytes) -> "ModelCommitment":
    """The model commitment of an integer model, with the parameters the server's prover uses."""
    from blindproof.zk.proof.commitment import commit_model
    from blindproof.zk.proof.keys import CommitmentKey
    com, _ = commit_model(quantized.spec, quantized.weights, CommitmentKey(commitment_key))
    return com


def _read(path_or_bytes: str | os.PathLike | bytes | None) -> bytes | None:
    if path_or_bytes is None or isinstance(path_or_bytes, bytes):
        return path_or_bytes
    return Path(path_or_bytes).read_bytes()


class GenerateSession:
    """One server-side KV-cache session (a bidirectional stream); use as a context manager."""

    _END = object()

    def __init__(self, client: "BlindClient", deployment_id: str, timeout: float) -> None:
        self._client = client
        self._requests: queue.Queue = queue.Queue()
        self._requests.put(pb.GenerateRequest(open=pb.GenerateOpen(deployment_id=deployment_id)))
        self._replies = client._stub.Generate(iter(self._requests.get, self._END), timeout=timeout,
                                              metadata=client._metadata)
        self.length = 0
        self._closed = False

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """Send the next positions' (encoded) inputs; returns the server's output at the last one."""
        if self._closed:
            raise RuntimeError("generation session is closed")
        msg = pb.GenerateRequest(step=pb.GenerateStep(input=to_proto(x)))
        self._client.stats.bytes_sent += msg.ByteSize()
        self._requests.put(msg)
        try:
            reply = next(self._replies)
        except grpc.RpcError as err:
            self._end()
            raise RemoteError.wrap(err, "Generate") from None
        except StopIteration:
            self._end()
            raise RemoteError(grpc.StatusCode.UNKNOWN, "server ended the session", "Generate") from None
        self._client.stats.bytes_received += reply.ByteSize()
        self.length = int(reply.length)
        return from_proto(reply.output)

    def _end(self) -> None:
        """Mark closed and release the thread that feeds the request stream."""
        self._closed = True
        self._requests.put(self._END)

    def close(self) -> None:
        """Half-close the stream; the server drops the KV cache."""
        if self._closed:
            return
        self._end()
        try:
            for _ in self._replies:
                pass
        except grpc.RpcError:
            pass

    def __enter__(self) -> "GenerateSession":
        return self

    def abort(self) -> None:
        """Cancel the stream at once (after an error or Ctrl-C, when a read may still be pending on it)."""
        self._end()
        self._replies.cancel()

    def __exit__(self, exc_type, *_) -> None:
        # Draining after an interrupted read would start a second read on the call, which gRPC refuses with
        # an internal error that would replace the caller's exception; cancel instead.
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _server_copy(model: nn.Module, key: EEKey | None, tier: Tier, split: Split
                 ) -> tuple[SplitCodec, nn.Module, str, Tier | None]:
    """The client's codec and the model the server gets: plaintext when ``key`` is None, else the
    EE transform under ``key`` (checked against the codec before anything leaves the client)."""
    if key is None:
        return PlainCodec(model, split), model, "", None
    if not isinstance(key, EEKey):
        raise TypeError(f"key must be an EEKey or None, got {type(key).__name__}")
    enc = encrypt_model(model, key, tier, split)
    codec = ClientCodec(model, key, tier, split)
    codec.check_deployment(enc)
    return codec, enc.model, key.key_id, tier

class BlindClient:
    """Client of a ``blindproof serve`` server.

    ``target`` is ``host:port``. Pass ``root_certificates`` (PEM bytes or a path) for TLS and ``token``
    for servers that require a bearer token. Every call has a deadline (``timeout`` seconds); calls that
    are idempotent (deploy, which is content-addressed, infer, list, health) are retried on UNAVAILABLE.
    """

    def __init__(self, target: str, *, root_certificates: str | os.PathLike | bytes | None = None,
                 token: str | None = None, timeout: float = 60.0, retries: int = 3,
                 max_message_bytes: int = 256 * MiB, chunk_bytes: int = MiB // 2,
                 server_name: str | None = None, client_id: str | None = None) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        if chunk_bytes < 1024:
            raise ValueError(f"chunk_bytes must be at least 1024, got {chunk_bytes}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        options = [("grpc.max_receive_message_length", max_message_bytes),
                   ("grpc.max_send_message_length", max_message_bytes)]
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        if root_certificates is not None:
            creds = grpc.ssl_channel_credentials(root_certificates=_read(root_certificates))
            self._channel = grpc.secure_channel(target, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._stub = pb_grpc.InferenceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        if client_id:  # a label only: the server counts its limits per token name (else per peer address)
            self._metadata += (("x-blindproof-client", client_id),)
        self._prover = prover_pb2_grpc.ProverServiceStub(self._channel)
        self.target = target
        self.timeout = timeout
        self.retries = retries
        self.chunk_bytes = chunk_bytes
        self.stats = WireStats()
        self._probe_schedules: dict[str, object] = {}  # deployment id -> fingerprint.traffic.ProbeSchedule

    # --- plumbing ------------------------------------------------------------------------------
    def _call(self, method: str, fn: Callable[[], T], idempotent: bool) -> T:
        attempts = self.retries + 1 if idempotent else 1
        for i in range(attempts):
            try:
                return fn()
            except grpc.RpcError as err:
                if i + 1 < attempts and err.code() in _RETRYABLE:
                    time.sleep(min(2.0, 0.1 * 2 ** i))
                    continue
                raise RemoteError.wrap(err, method) from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def __enter__(self) -> "BlindClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- service-level calls -------------------------------------------------------------------
    def health(self, service: str = "") -> str:
        """The server's health status name (``SERVING`` when ready)."""
        reply = self._call("Health", lambda: self._health.Check(
            health_pb2.HealthCheckRequest(service=service), timeout=self.timeout, metadata=self._metadata), True)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the server reports SERVING; TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.health() == "SERVING":
                    return
            except RemoteError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"server at {self.target} not ready after {timeout:g} s")
            time.sleep(0.1)

    def list_deployments(self) -> list[RemoteDeployment]:
        """Every deployment on the server."""
        reply = self._call("ListDeployments", lambda: self._stub.ListDeployments(
            pb.ListDeploymentsRequest(), timeout=self.timeout, metadata=self._metadata), True)
        return [RemoteDeployment.from_pb(d) for d in reply.deployments]

    def delete(self, deployment: Deployment | str) -> None:
        """Delete a deployment (not retried: a repeat would report NOT_FOUND)."""
        dep_id = deployment.deployment_id if isinstance(deployment, Deployment) else deployment
        self._call("DeleteDeployment", lambda: self._stub.DeleteDeployment(
            pb.DeleteDeploymentRequest(deployment_id=dep_id), timeout=self.timeout, metadata=self._metadata), False)

    # --- deployment ----------------------------------------------------------------------------
    def deploy(self, model: nn.Module, key: EEKey | None, tier: Tier = "rotate", split: Split | None = None,
               label: str = "", mode: str = "float", calibration: torch.Tensor | None = None,
               commitment_key: bytes | None = None) -> Deployment:
        """Transform ``model`` under ``key`` and ``tier`` locally and upload the server's parts.

        With ``key=None`` the model is uploaded untransformed (a plaintext baseline with the same split).
        ``mode="integer"``: the transformed model is quantized here (``calibration``, default a fixed
        seeded batch; see :func:`blindproof.client.integer.default_calibration`) and the server runs the
        integer program, whole (token ids or features in, logits out), so its answers can be proved.
        ``commitment_key`` (32 bytes, default fresh) seeds the hiding randomness of the model commitment.
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if mode not in ("float", "integer"):
            raise ValueError(f"mode must be 'float' or 'integer', got {mode!r}")
        if mode == "integer":
            return self._deploy_integer(model, key, tier, split, label, calibration, commitment_key)
        split = Split() if split is None else split
        codec, server_model, key_id, used_tier = _server_copy(model, key, tier, split)
        blob, digest = to_bytes(server_model, server_parts(model, split))
        reply = self.upload(blob, digest, key_id=key_id, label=label)
        if reply.deployment.digest != digest:
            raise DeploymentDigestError(f"server computed digest {reply.deployment.digest}, client {digest}")
        return Deployment(reply.deployment.deployment_id, digest, key_id, codec, used_tier, reply.existed)

    def _deploy_integer(self, model: nn.Module, key: EEKey | None, tier: Tier, split: Split | None, label: str,
                        calibration: torch.Tensor | None, commitment_key: bytes | None) -> Deployment:
        from blindproof.client.integer import IntegerCodec, default_calibration, integer_split, quantize_for_server
        from blindproof.server.integer_executor import integer_to_bytes
        whole = integer_split(model)
        if split is not None and split != whole:
            raise ValueError(f"an integer deployment runs the whole model on the server (split {whole})")
        inner, server_model, key_id, used_tier = _server_copy(model, key, tier, whole)
        calib = default_calibration(model) if calibration is None else calibration
        qm = quantize_for_server(server_model, inner, calib)
        ckey = os.urandom(32) if commitment_key is None else commitment_key
        blob, digest = integer_to_bytes(qm, ckey)
        reply = self.upload(blob, digest, key_id=key_id, label=label, mode="integer")
        if reply.deployment.digest != digest:
            raise DeploymentDigestError(f"server computed digest {reply.deployment.digest}, client {digest}")
        from blindproof.client.verify import check_commitment
        local = integer_commitment(qm, ckey)
        check_commitment(local, reply.model_commitment)  # CommitmentMismatchError: the deployment fails
        return Deployment(reply.deployment.deployment_id, digest, key_id, IntegerCodec(inner, qm, ckey), used_tier,
                          reply.existed, mode="integer", commitment=local)

    def upload(self, blob: bytes, digest: str, key_id: str = "", label: str = "",
               total_bytes: int | None = None, mode: str = "") -> pb.DeployReply:
        """Stream a model file (safetensors bytes with its digest) to the server; returns its reply.

        ``total_bytes`` defaults to ``len(blob)``; it exists so tests can announce a different size.
        """
        header = pb.DeployHeader(digest=digest, total_bytes=len(blob) if total_bytes is None else total_bytes,
                                 key_id=key_id, label=label, mode="" if mode == "float" else mode)

        def requests() -> Iterator[pb.DeployRequest]:
            yield pb.DeployRequest(header=header)
            view = memoryview(blob)
            for off in range(0, len(blob), self.chunk_bytes):
                yield pb.DeployRequest(chunk=bytes(view[off:off + self.chunk_bytes]))

        self.stats.bytes_sent += len(blob)
        return self._call("Deploy", lambda: self._stub.Deploy(requests(), timeout=self.timeout,
                                                              metadata=self._metadata), True)

    def attach(self, deployment_id: str, model: nn.Module, key: EEKey | None, tier: Tier = "rotate",
               split: Split = Split()) -> Deployment:
        """Reconnect to an existing deployment; raises unless it was made under ``key``."""
        found = {d.deployment_id: d for d in self.list_deployments()}
        if deployment_id not in found:
            raise RemoteError(grpc.StatusCode.NOT_FOUND, f"unknown deployment {deployment_id}", "attach")
        remote = found[deployment_id]
        if key is None:
            if remote.key_id:
                raise ValueError(f"deployment {deployment_id} is bound to key {remote.key_id}; pass that key")
            return Deployment(deployment_id, remote.digest, "", PlainCodec(model, split), None, True)
        codec = ClientCodec(model, key, tier, split)
        codec.check_deployment(remote.key_id)
        return Deployment(deployment_id, remote.digest, remote.key_id, codec, tier, True)

    def attach_integer(self, deployment_id: str, model: nn.Module, key: EEKey | None, tier: Tier = "rotate",
                       commitment_key: bytes = b"", commitment: "ModelCommitment | None" = None,
                       calibration: torch.Tensor | None = None) -> Deployment:
        """Reconnect to an integer deployment: the integer model is rebuilt here (deterministic
        quantization) and must hash to the deployment's digest; ``commitment`` is the client's own copy
        kept since deployment (recomputed from ``commitment_key`` when None)."""
        from blindproof.client.integer import IntegerCodec, default_calibration, integer_split, quantize_for_server
        from blindproof.server.integer_executor import integer_to_bytes
        found = {d.deployment_id: d for d in self.list_deployments()}
        if deployment_id not in found:
            raise RemoteError(grpc.StatusCode.NOT_FOUND, f"unknown deployment {deployment_id}", "attach")
        whole = integer_split(model)
        if key is None:
            inner: SplitCodec = PlainCodec(model, whole)
            server_model, used_tier = model, None
        else:
            inner = ClientCodec(model, key, tier, whole)
            inner.check_deployment(found[deployment_id].key_id)
            server_model, used_tier = encrypt_model(model, key, tier, whole).model, tier
        qm = quantize_for_server(server_model, inner, default_calibration(model) if calibration is None else calibration)
        _, digest = integer_to_bytes(qm, commitment_key)
        if digest != found[deployment_id].digest:
            raise DeploymentDigestError(f"the local integer model hashes to {digest}, deployment {deployment_id} "
                                        f"is {found[deployment_id].digest}: not the model that was deployed")
        com = commitment if commitment is not None else integer_commitment(qm, commitment_key)
        return Deployment(deployment_id, digest, found[deployment_id].key_id, IntegerCodec(inner, qm, commitment_key),
                          used_tier, True, mode="integer", commitment=com)

    # --- inference -----------------------------------------------------------------------------
    def infer_raw(self, deployment_id: str, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Send an already-encoded tensor and return the server's raw (still encoded) output."""
        req = pb.InferRequest(deployment_id=deployment_id, input=to_proto(x), start=start)
        reply = self._call("Infer", lambda: self._stub.Infer(req, timeout=self.timeout,
                                                             metadata=self._metadata), True)
        self.stats.bytes_sent += req.ByteSize()
        self.stats.bytes_received += reply.ByteSize()
        self.stats.calls += 1
        return from_proto(reply.output)

    def infer(self, deployment: Deployment, inputs: torch.Tensor, start: int = 0, prove: bool = False,
              proof_timeout: float | None = None, min_provable_bits: float | None = None,
              on_progress: Callable[[JobStatus], None] | None = None) -> "torch.Tensor | VerifiedInference":
        """Blind forward pass: token ids (batch, seq) or MLP features in, decoded logits/outputs out.

        ``prove=True`` (integer deployments): the server also proves the inference; the proof is
        downloaded and verified here against the deployment's own commitment with the statement pinned
        to the encrypted request sent and the response received. Returns a :class:`VerifiedInference`,
        or raises :class:`~blindproof.client.verify.ProofVerificationError` (ProofJobError if the job
        failed)."""
        if not prove:
            x = deployment.codec.client_input(inputs, start)
            return deployment.codec.client_output(self.infer_raw(deployment.deployment_id, x, start))
        return self._infer_proved(deployment, inputs, start, proof_timeout, min_provable_bits, on_progress)

    def _infer_proved(self, deployment: Deployment, inputs: torch.Tensor, start: int, proof_timeout: float | None,
                      min_provable_bits: float | None, on_progress) -> "VerifiedInference":
        from blindproof.client.verify import verify_exchange
        if deployment.mode != "integer":
            raise ValueError("proofs need an integer deployment (deploy(..., mode='integer'))")
        commitment = deployment.commitment or self.model_commitment(deployment)
        spec = deployment.codec.quantized.spec
        t0 = time.perf_counter()
        x = deployment.codec.client_input(inputs, start)
        req = pb.InferRequest(deployment_id=deployment.deployment_id, input=to_proto(x), start=start, prove=True)
        reply = self._call("Infer", lambda: self._stub.Infer(req, timeout=self.timeout, metadata=self._metadata),
                           False)  # a retried proving call could queue the job twice
        self.stats.bytes_sent += req.ByteSize()
        self.stats.bytes_received += reply.ByteSize()
        self.stats.calls += 1
        raw = from_proto(reply.output)
        out = deployment.codec.client_output(raw)
        t1 = time.perf_counter()
        if not reply.job_id:
            raise ProofJobError("the server queued no proof job for a request that asked for one")
        last = None
        for status in self.watch(reply.job_id, proof_timeout):
            last = status
            if on_progress is not None:
                on_progress(status)
        if last is None or last.state != "done":
            raise ProofJobError(f"proof job {reply.job_id} ended {last.state if last else 'without a state'}: "
                                f"{last.message if last else ''}")
        t2 = time.perf_counter()
        proof = self.download_proof(reply.job_id)
        t3 = time.perf_counter()
        sent = {spec.inputs[0]: x.detach().cpu().numpy()}
        received = {spec.outputs[0]: raw.detach().cpu().numpy()}
        verified = verify_exchange(commitment, proof, sent, received, start=start,
                                   min_provable_bits=min_provable_bits, job_id=reply.job_id,
                                   request_id=reply.request_id)
        seconds = {"infer": t1 - t0, "prove": t2 - t1, "download": t3 - t2, "verify": verified.verify_s}
        return VerifiedInference(out, verified, reply.request_id, reply.job_id, sent, received, seconds)

    def check_identity(self, deployment: Deployment, fingerprint, mode: str = "logits", p1: float = 0.5,
                       sequential: bool = False, **check_kwargs):
        """Check which model the server runs for ``deployment``.

        With a ``fingerprint.traffic.TrafficFingerprint`` each probe is a text session in the client's
        own shapes (prompt, then token-by-token decoding in one server-side session), sent once; pass
        ``device_class`` for the server's hardware class, and save the fingerprint afterwards to keep
        the record of used probes. With a ``fingerprint.blind.BlindFingerprint`` probes are fixed-batch
        random-byte sequences, which a server can recognise (docs/fingerprint.md, section 7).
        Returns the ``fingerprint.Verdict`` ("match" / "mismatch" with its error probabilities and
        their conditions). The deployment must have a harmless input expansion
        (``blindproof.client.fingerprinted.deploy``).
        """
        from blindproof.fingerprint.traffic import TrafficFingerprint, check_traffic, grpc_sessions
        if isinstance(fingerprint, TrafficFingerprint):
            return check_traffic(fingerprint, deployment.codec, grpc_sessions(self, deployment), mode=mode, p1=p1,
                                 sequential=sequential, **check_kwargs)
        from blindproof.fingerprint.blind import check_deployment
        return check_deployment(self, deployment, fingerprint, mode=mode, p1=p1, sequential=sequential, **check_kwargs)

    def infer_verifiable(self, deployment: Deployment, inputs: torch.Tensor, start: int = 0,
                         prove: bool = True) -> InferResult:
        """Blind forward on an integer deployment; the server keeps the inference under the returned
        ``request_id`` and, with ``prove``, queues a proof job (``job_id``)."""
        if deployment.mode != "integer":
            raise ValueError("proofs need an integer deployment (deploy(..., mode='integer'))")
        x = deployment.codec.client_input(inputs, start)
        req = pb.InferRequest(deployment_id=deployment.deployment_id, input=to_proto(x), start=start, prove=prove)
        reply = self._call("Infer", lambda: self._stub.Infer(req, timeout=self.timeout, metadata=self._metadata),
                           not prove)  # a retried proving call could queue the job twice
        self.stats.bytes_sent += req.ByteSize()
        self.stats.bytes_received += reply.ByteSize()
        self.stats.calls += 1
        out = deployment.codec.client_output(from_proto(reply.output))
        return InferResult(out, reply.request_id, reply.job_id)

    # --- proofs --------------------------------------------------------------------------------
    def prove(self, request_id: str) -> JobStatus:
        """Queue a proof of an earlier inference (RemoteError RESOURCE_EXHAUSTED when the queue is full)."""
        return JobStatus.from_pb(self._call("Prove", lambda: self._prover.Prove(
            prover_pb2.ProveRequest(request_id=request_id), timeout=self.timeout, metadata=self._metadata), False))

    def job(self, job_id: str) -> JobStatus:
        """A proof job's current state."""
        return JobStatus.from_pb(self._call("GetJob", lambda: self._prover.GetJob(
            prover_pb2.JobRef(job_id=job_id), timeout=self.timeout, metadata=self._metadata), True))

    def watch(self, job_id: str, timeout: float | None = None) -> Iterator[JobStatus]:
        """The job's state now and at every change, until it finishes (server-streaming)."""
        stream = self._prover.WatchJob(prover_pb2.JobRef(job_id=job_id), timeout=timeout or max(self.timeout, 3600.0),
                                       metadata=self._metadata)
        try:
            for j in stream:
                yield JobStatus.from_pb(j)
        except grpc.RpcError as err:
            raise RemoteError.wrap(err, "WatchJob") from None

    def cancel(self, job_id: str) -> JobStatus:
        """Cancel a queued or running job."""
        return JobStatus.from_pb(self._call("CancelJob", lambda: self._prover.CancelJob(
            prover_pb2.JobRef(job_id=job_id), timeout=self.timeout, metadata=self._metadata), True))

    def download_proof(self, job_id: str, chunk_bytes: int = 0) -> bytes:
        """A finished proof, downloaded in chunks (resumed from the last byte on UNAVAILABLE) and checked
        against the size and BLAKE3 digest the server states. ``chunk_bytes`` 0 lets the server pick a
        size that fits its message limit."""
        import blake3
        buf, total, digest = bytearray(), None, ""
        for attempt in range(self.retries + 1):
            try:
                for c in self._prover.DownloadProof(prover_pb2.DownloadProofRequest(
                        job_id=job_id, chunk_bytes=chunk_bytes, offset=len(buf)), timeout=self.timeout,
                        metadata=self._metadata):
                    if c.offset != len(buf):
                        raise RemoteError(grpc.StatusCode.DATA_LOSS, f"chunk at {c.offset}, expected {len(buf)}",
                                          "DownloadProof")
                    buf += c.data
                    total, digest = c.total_bytes, c.digest
                break
            except grpc.RpcError as err:
                if attempt < self.retries and err.code() in _RETRYABLE:
                    time.sleep(min(2.0, 0.1 * 2 ** attempt))
                    continue
                raise RemoteError.wrap(err, "DownloadProof") from None
        data = bytes(buf)
        if total is None or len(data) != total or "blake3:" + blake3.blake3(data).hexdigest() != digest:
            raise RemoteError(grpc.StatusCode.DATA_LOSS, f"downloaded {len(data)} bytes that do not match the "
                                                         f"stated size {total} and digest", "DownloadProof")
        self.stats.bytes_received += len(data)
        return data

    def wait_proof(self, job_id: str, timeout: float | None = None,
                   on_progress: Callable[[JobStatus], None] | None = None) -> bytes:
        """Watch a job until it finishes and download its proof; ProofJobError if it failed or was cancelled."""
        last = None
        for status in self.watch(job_id, timeout):
            last = status
            if on_progress is not None:
                on_progress(status)
        if last is None or last.state != "done":
            raise ProofJobError(f"proof job {job_id} ended {last.state if last else 'without a state'}: "
                                f"{last.message if last else ''}")
        return self.download_proof(job_id)

    def model_commitment(self, deployment: Deployment):
        """The model commitment of an integer deployment, computed here from the client's own integer
        model and commitment key (a verifier checks the server's proofs against it)."""
        if deployment.mode != "integer":
            raise ValueError("only integer deployments have a model commitment")
        if deployment.commitment is not None:
            return deployment.commitment
        codec = deployment.codec
        return integer_commitment(codec.quantized, codec.commitment_key)

    def session(self, deployment: Deployment | str, timeout: float | None = None) -> GenerateSession:
        """Open a generation session (server-side KV cache) on a deployment."""
        dep_id = deployment.deployment_id if isinstance(deployment, Deployment) else deployment
        return GenerateSession(self, dep_id, timeout or max(self.timeout, 600.0))

    def schedule_probes(self, deployment: Deployment, fingerprint, rate: float = 0.05, device_class: str = "fp32",
                        mode: str = "logits", p1: float = 0.5, **schedule_kwargs):
        """Mix identity probes into this client's own sessions on ``deployment``: before each
        ``generate`` call, with probability ``rate``, one probe session (a never-used reference of the
        ``fingerprint.traffic.TrafficFingerprint``) runs on the same connection. Returns the
        ``ProbeSchedule``; its ``verdict`` decides once Wald's test does (save the fingerprint to keep
        the record of used probes)."""
        from blindproof.fingerprint.traffic import ProbeSchedule, grpc_sessions
        sched = ProbeSchedule(fingerprint, deployment.codec, grpc_sessions(self, deployment), mode=mode,
                              device_class=device_class, rate=rate, p1=p1, **schedule_kwargs)
        self._probe_schedules[deployment.deployment_id] = sched
        return sched

    @torch.no_grad()
    def generate(self, deployment: Deployment, prompt: torch.Tensor, n_new: int,
                 stop_token: int | None = None,
                 on_token: Callable[[int, torch.Tensor], None] | None = None, *, prove: bool = False,
                 proof_timeout: float | None = None,
                 min_provable_bits: float | None = None) -> "torch.Tensor | VerifiedGeneration":
        """Greedy decoding with every forward on the server; returns the new tokens (batch, <= n_new).

        Stops early once every row has produced ``stop_token``. ``on_token(i, tokens)`` is called after
        each new token (progress display).

        ``prove=True`` (integer deployments, one prompt): each token comes from a full forward (integer
        deployments keep no KV cache), then the server proves one forward over the prompt and the first
        ``n − 1`` new tokens; the proof is verified here against the deployment's commitment, and every
        new token must be the argmax of the proved logits before it. Returns a
        :class:`VerifiedGeneration`, or raises ``ProofVerificationError``.
        """
        if prove:
            return self._generate_proved(deployment, prompt, n_new, stop_token, on_token, proof_timeout,
                                         min_provable_bits)
        model = deployment.model
        if not isinstance(model, Transformer) or model.cfg.output != "logits" or not model.cfg.causal:
            raise ValueError("generate needs a causal transformer with a language-model head")
        if not isinstance(prompt, torch.Tensor) or prompt.dim() != 2 or prompt.shape[1] < 1:
            raise ValueError(f"prompt must be token ids of shape (batch, seq>=1), got {getattr(prompt, 'shape', prompt)}")
        if n_new < 1:
            raise ValueError(f"n_new must be positive, got {n_new}")
        if prompt.shape[1] + n_new > model.cfg.max_seq + 1:
            raise ValueError(f"prompt of {prompt.shape[1]} tokens plus {n_new} new exceeds max_seq "
                             f"{model.cfg.max_seq}")
        codec = deployment.codec
        sched = self._probe_schedules.get(deployment.deployment_id)
        if sched is not None:
            sched.tick()  # maybe one probe session first, on the same connection
        out: list[torch.Tensor] = []
        done = torch.zeros(prompt.shape[0], dtype=torch.bool)
        with self.session(deployment) as sess:
            x, start = prompt, 0
            while True:
                logits = codec.client_output(sess.step(codec.client_input(x, start)))
                start += x.shape[1]
                nxt = logits[:, -1].argmax(-1, keepdim=True)
                out.append(nxt)
                if on_token is not None:
                    on_token(len(out), nxt)
                if stop_token is not None:
                    done |= nxt[:, 0] == stop_token
                if len(out) == n_new or bool(done.all()):
                    break
                x = nxt
        return torch.cat(out, dim=1)

    def _generate_proved(self, deployment: Deployment, prompt: torch.Tensor, n_new: int, stop_token: int | None,
                         on_token, proof_timeout: float | None, min_provable_bits: float | None) -> VerifiedGeneration:
        from blindproof.client.verify import ProofVerificationError
        from blindproof.zk.proof.generation import GenerationError, check_causal_program
        if deployment.mode != "integer":
            raise ValueError("proved generation needs an integer deployment (deploy(..., mode='integer'))")
        model = deployment.model
        if not isinstance(model, Transformer) or model.cfg.output != "logits" or not model.cfg.causal:
            raise ValueError("generate needs a causal transformer with a language-model head")
        try:  # the proved program itself must not mix positions: else one forward proves no generation
            check_causal_program(deployment.codec.quantized.spec)
        except GenerationError as exc:
            raise ValueError(f"proved generation needs a causal program: {exc}") from None
        if not isinstance(prompt, torch.Tensor) or prompt.dim() != 2 or prompt.shape[0] != 1 or prompt.shape[1] < 1:
            raise ValueError(f"proved generation takes one prompt of token ids, shape (1, seq>=1), got "
                             f"{getattr(prompt, 'shape', prompt)}")
        if isinstance(n_new, bool) or not isinstance(n_new, int) or n_new < 1:
            raise ValueError(f"n_new must be a positive integer, got {n_new!r}")
        seq, new = prompt.to(torch.int64), []
        while len(new) < n_new:
            logits = self.infer(deployment, seq)
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            new.append(int(nxt))
            if on_token is not None:
                on_token(len(new), nxt)
            if stop_token is not None and new[-1] == stop_token:
                break
            if len(new) < n_new:  # the last token is read from the proved logits, never fed back
                seq = torch.cat([seq, nxt], dim=1)
        tokens = torch.tensor([new], dtype=torch.int64)
        proved = self._infer_proved(deployment, seq, 0, proof_timeout, min_provable_bits, None)  # prompt + new[:-1]
        best = proved.output[0].argmax(-1)
        p = prompt.shape[1]
        if proved.output.shape[1] != p + len(new) - 1 or not torch.equal(best[p - 1:], tokens[0]):
            raise ProofVerificationError("the proved logits do not give the generated tokens", proved.job_id)
        return VerifiedGeneration(tokens, proved)
