"""Assemble and run the gRPC server: service, health, limits, TLS, bearer token, graceful stop."""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from blindproof.proto import inference_pb2_grpc as pb_grpc
from blindproof.proto import prover_pb2_grpc
from blindproof.server import logs
from blindproof.server.executor import Executor, pick_device
from blindproof.server.guard import GuardInterceptor
from blindproof.server.service import SERVICE_NAME, InferenceService
from blindproof.server.jobs import JobStore
from blindproof.server.prover_pool import DEFAULT_PROVER, ProverPool
from blindproof.server.prover_service import SERVICE_NAME as PROVER_SERVICE_NAME
from blindproof.server.prover_service import ProverServicer
from blindproof.server.store import ModelStore
from blindproof.zk.device import choice_from_env, parse_choice, torch_device_for

MiB = 1 << 20


@dataclass
class ServerConfig:
    """Everything `blindproof serve` can set."""

    store: Path
    host: str = "127.0.0.1"
    port: int = 50051  # 0 picks a free port
    device: str | None = None  # None: cuda when present, else cpu
    tls_cert: Path | None = None
    tls_key: Path | None = None
    token: str | dict[str, str] | None = None  # one token, or named tokens (the name is the caller's identity)
    insecure: bool = False  # allow a non-loopback address without TLS
    max_message_bytes: int = 64 * MiB
    max_model_bytes: int = 4096 * MiB
    session_idle_s: float = 300.0
    max_sessions: int = 64
    max_sessions_per_client: int = 8
    upload_idle_s: float = 60.0  # a deploy stream silent this long is dropped with its partial upload
    max_uploads: int = 8  # deploy uploads in progress at once
    max_watchers: int = 64  # WatchJob streams open at once
    max_watchers_per_client: int = 8
    batch_wait_ms: float = 0.0  # 0: batch only what queues while the torch thread is busy
    max_batch_rows: int = 64
    port_file: Path | None = None  # the bound port is written here once serving
    log_level: str = "INFO"
    jobs_db: Path | None = None  # None: <store>/jobs.sqlite
    prover_workers: int = 1  # 0: keep inferences but prove nothing
    max_queued_per_client: int = 16
    keep_requests: int = 10_000  # served integer inferences kept for later proving
    prover: str = DEFAULT_PROVER  # module:attribute of the prover factory the workers use
    prover_device: str | None = None  # auto|cpu|cuda[:N]|torch-cpu; None: $BLINDPROOF_PROVER_DEVICE or auto

    def __post_init__(self) -> None:
        if self.prover_workers < 0:
            raise ValueError(f"prover_workers must be >= 0, got {self.prover_workers}")
        if self.max_queued_per_client < 1:
            raise ValueError(f"max_queued_per_client must be >= 1, got {self.max_queued_per_client}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both a certificate file and a key file")
        if self.max_message_bytes < MiB:
            raise ValueError("max_message_bytes must be at least 1 MiB")
        if not 0 <= self.port < 65536:
            raise ValueError(f"port must be in [0, 65535], got {self.port}")
        for name in ("max_sessions", "max_sessions_per_client", "max_uploads", "max_watchers",
                     "max_watchers_per_client"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.upload_idle_s <= 0 or self.session_idle_s <= 0:
            raise ValueError("upload_idle_s and session_idle_s must be positive")
        if not self.tls_cert and not self.insecure and not is_loopback(self.host):
            raise ValueError(f"refusing to serve on {self.host} without TLS: the EE-encoded tensors and the bearer "
                             f"token would cross the network in the clear; pass --tls-cert/--tls-key, or "
                             f"--insecure if the network is trusted")
        if self.prover_device is not None:
            self.prover_device = parse_choice(self.prover_device)


async def serve(cfg: ServerConfig, ready: asyncio.Event | None = None, stop: asyncio.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM (or ``stop`` is set); then drain in-flight calls and return."""
    logs.configure(cfg.log_level)
    prover_device = cfg.prover_device or choice_from_env()
    if cfg.prover_workers:
        torch_device_for(prover_device)  # DeviceError now, not in every worker, for cuda without a GPU
    device = pick_device(cfg.device)
    store = ModelStore(cfg.store, device=device)
    executor = Executor(max_batch_rows=cfg.max_batch_rows, max_wait_s=cfg.batch_wait_ms / 1e3)
    jobs_db = Path(cfg.jobs_db) if cfg.jobs_db else Path(cfg.store) / "jobs.sqlite"
    lock = _lock_jobs_db(jobs_db)
    jobs = JobStore(jobs_db, max_queued_per_client=cfg.max_queued_per_client, keep_requests=cfg.keep_requests)
    pool = (ProverPool(jobs, Path(cfg.store), cfg.prover_workers, cfg.prover, prover_device=prover_device)
            if cfg.prover_workers else None)
    service = InferenceService(store, executor, token=cfg.token, max_model_bytes=cfg.max_model_bytes,
                               session_idle_s=cfg.session_idle_s, max_sessions=cfg.max_sessions, jobs=jobs,
                               max_sessions_per_client=cfg.max_sessions_per_client,
                               upload_idle_s=cfg.upload_idle_s, max_uploads=cfg.max_uploads)
    prover_service = ProverServicer(jobs, pool, service._authorize, max_message_bytes=cfg.max_message_bytes,
                                    max_watchers=cfg.max_watchers, max_watchers_per_client=cfg.max_watchers_per_client)
    service.prover = prover_service
    options = [("grpc.max_receive_message_length", cfg.max_message_bytes),
               ("grpc.max_send_message_length", cfg.max_message_bytes),
               ("grpc.so_reuseport", 0)]
    server = grpc.aio.server(options=options, interceptors=[GuardInterceptor()])
    pb_grpc.add_InferenceServicer_to_server(service, server)
    prover_pb2_grpc.add_ProverServiceServicer_to_server(prover_service, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    address = f"{cfg.host}:{cfg.port}"
    try:
        if cfg.tls_cert:
            creds = grpc.ssl_server_credentials([(Path(cfg.tls_key).read_bytes(), Path(cfg.tls_cert).read_bytes())])
            port = server.add_secure_port(address, creds)
        else:
            port = server.add_insecure_port(address)
    except RuntimeError:  # grpc: "Failed to bind to address ..."
        port = 0
    if port == 0:
        if pool is not None:
            await pool.stop()
        jobs.close()
        lock.close()
        executor.shutdown()
        raise PortInUseError(f"cannot bind {address}: the port is in use or the address is not this machine's")
    await server.start()
    if pool is not None:
        pool.start()
    for name in ("", SERVICE_NAME, PROVER_SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    logs.event("listening", host=cfg.host, port=port, device=device, tls=bool(cfg.tls_cert),
               token=cfg.token is not None, store=str(cfg.store), deployments=len(store.list()),
               jobs_db=str(jobs_db), prover_workers=cfg.prover_workers, prover_device=prover_device)
    if cfg.port_file:
        tmp = Path(str(cfg.port_file) + ".tmp")
        tmp.write_text(str(port))
        os.replace(tmp, cfg.port_file)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    if ready is not None:
        ready.set()
    await stop.wait()
    logs.event("stopping", port=port)
    await health_servicer.enter_graceful_shutdown()
    await server.stop(grace=5)
    if pool is not None:
        await pool.stop()  # running jobs stay accepted: the next start requeues them
    jobs.close()
    lock.close()
    executor.shutdown()
    logs.event("stopped", port=port)


class PortInUseError(OSError):
    """The server could not bind its address."""


class StoreInUseError(RuntimeError):
    """Another `blindproof serve` holds the jobs database."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    import ipaddress
    h = host.strip("[]")
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def _lock_jobs_db(path: Path):
    """Hold an exclusive lock on the jobs database: a second daemon would requeue this one's jobs."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    f = os.fdopen(os.open(str(path) + ".lock", os.O_WRONLY | os.O_CREAT, 0o600), "w")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise StoreInUseError(f"another blindproof serve is using the jobs database {path}") from None
    return f


def run(cfg: ServerConfig) -> None:
    """Blocking entry point of `blindproof serve`."""
    asyncio.run(serve(cfg))
