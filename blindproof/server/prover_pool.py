"""Prover worker processes: they take proof jobs from the jobs database, prove, and store the proof.

The daemon starts ``n`` workers (``python -m blindproof.server.prover_pool ...``), each its own process,
so proving never blocks the inference path. A worker claims the oldest queued job (atomically, in
SQLite), rebuilds the served inference from its stored request, runs the prover with a progress
callback that writes to the database (and notices a cancelled job), and stores the proof in the
transaction that marks the job done. Workers die with the daemon (``PR_SET_PDEATHSIG`` on Linux, and
a parent check between jobs and at every progress report); the supervisor in the daemon respawns
workers that die and requeues what they were running.

The prover is injectable: any ``module:attribute`` naming a zero-argument factory that returns an
object with ``prove(job, progress) -> bytes`` (:class:`Prover`). The default, :class:`ZkProver`, makes
whole-model proofs with :mod:`blindproof.zk.proof.prover`.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import importlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Protocol

import numpy as np

from blindproof.server import logs
from blindproof.server.jobs import JobStore
from blindproof.zk import device
from blindproof.zk.device import parse_choice

DEFAULT_PROVER = "blindproof.server.prover_pool:ZkProver"
Progress = Callable[[float, str], None]


class JobCancelled(Exception):
    """The job was cancelled (or taken from this worker) while it ran."""


@dataclass(frozen=True)
class ProofJob:
    """Everything a prover needs: the deployment's integer model file and the served inference."""

    job_id: str
    deployment_id: str
    model_path: Path
    start: int
    inputs: Mapping[str, np.ndarray]
    outputs: Mapping[str, np.ndarray]


class Prover(Protocol):
    """Proves one served inference; reports progress as (fraction in [0, 1], message)."""

    def prove(self, job: ProofJob, progress: Progress) -> bytes: ...


def load_factory(spec: str) -> Callable[[], Prover]:
    """Resolve ``module:attribute`` to a prover factory; ValueError naming what is wrong."""
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"prover must be 'module:attribute', got {spec!r}")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load prover {spec!r}: {exc}") from exc
    if not callable(obj):
        raise ValueError(f"prover {spec!r} is not callable")
    return obj


class ZkProver:
    """Whole-model zero-knowledge proofs (:class:`blindproof.zk.proof.prover.ModelProver`), one cached
    commitment per deployment. The proof's output must equal the served output, or the job fails."""

    def __init__(self) -> None:
        self._provers: dict[str, object] = {}

    def _prover(self, job: ProofJob, progress: Progress):
        if job.deployment_id not in self._provers:
            from blindproof.server.integer_executor import load_integer
            from blindproof.zk.proof.keys import CommitmentKey
            from blindproof.zk.proof.prover import ModelProver
            progress(0.02, "loading the integer model")
            loaded = load_integer(job.model_path, "blake3:" + job.deployment_id)
            progress(0.05, "committing to the model")
            self._provers = {job.deployment_id: ModelProver.create(loaded.quantized, CommitmentKey(loaded.commitment_key),
                                                                   ledger=f"{job.model_path}.ledger")}
        return self._provers[job.deployment_id]

    def prove(self, job: ProofJob, progress: Progress) -> bytes:
        prover = self._prover(job, progress)
        steps = iter((0.3, 0.9))
        proof = prover.prove(dict(job.inputs), job.start, progress=lambda msg: progress(next(steps, 0.95), msg))
        for name, want in job.outputs.items():
            if not np.array_equal(proof.outputs.get(name), want):
                raise RuntimeError(f"the proved output {name!r} differs from the served one")
        progress(0.97, "serializing the proof")
        return proof.to_bytes()


# --- the worker process ----------------------------------------------------------------------------

def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def run_worker(db: Path, store: Path, prover_spec: str, parent: int, poll_s: float = 0.1,
               prover_device: str | None = None) -> None:
    """Worker main loop: claim, prove, store; until the parent process is gone.

    ``prover_device`` (auto|cpu|cuda[:N]|torch-cpu; None: ``$BLINDPROOF_PROVER_DEVICE``) is where the
    prover's heavy vector work runs (:mod:`blindproof.zk.device`)."""
    _die_with_parent()
    logs.configure("INFO")
    device.set_prover_device(prover_device, check=True)
    jobs = JobStore(db)
    prover = load_factory(prover_spec)()
    me = os.getpid()
    logs.event("prover_worker_ready", pid=me, prover_device=device.describe()["device"])
    while os.getppid() == parent:
        info = jobs.claim(me)
        if info is None:
            time.sleep(poll_s)
            continue
        t0 = time.perf_counter()
        logs.event("proof_start", job=info.job_id, attempt=info.attempts, pid=me)

        def progress(fraction: float, message: str, job_id: str = info.job_id) -> None:
            if os.getppid() != parent:
                os._exit(0)  # orphaned: the daemon is gone, the job stays running and is requeued at restart
            if not jobs.progress(job_id, me, fraction, message):
                raise JobCancelled(job_id)

        try:
            req = jobs.request(info.request_id)
            job = ProofJob(info.job_id, info.deployment_id, store / "models" / f"{info.deployment_id}.safetensors",
                           req.start, req.inputs, req.outputs)
            proof = prover.prove(job, progress)
            if not isinstance(proof, (bytes, bytearray)) or not proof:
                raise TypeError(f"the prover returned {type(proof).__name__}, not proof bytes")
            stored = jobs.finish(info.job_id, me, bytes(proof))
            logs.event("proof_done" if stored else "proof_discarded", job=info.job_id, bytes=len(proof),
                       s=round(time.perf_counter() - t0, 3))
        except JobCancelled:
            logs.event("proof_cancelled", job=info.job_id)
        except Exception as exc:  # a failed proof is reported on the job, the worker goes on
            jobs.fail(info.job_id, me, f"{type(exc).__name__}: {exc}")
            logs.event("proof_failed", logging.WARNING, job=info.job_id, error=f"{type(exc).__name__}: {exc}")


# --- the supervisor (in the daemon) ----------------------------------------------------------------

class ProverPool:
    """Keeps ``workers`` prover processes alive and stops the one running a cancelled job."""

    def __init__(self, jobs: JobStore, store: Path, workers: int, prover: str = DEFAULT_PROVER,
                 check_s: float = 0.25, prover_device: str | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        load_factory(prover)  # fail at start-up, not in every worker
        self.jobs, self.store, self.n, self.prover, self.check_s = jobs, Path(store), workers, prover, check_s
        self.prover_device = parse_choice(prover_device) if prover_device is not None else None
        self.procs: dict[int, subprocess.Popen] = {}
        self._task: asyncio.Task | None = None

    def _spawn(self) -> None:
        cmd = [sys.executable, "-m", "blindproof.server.prover_pool", "--db", str(self.jobs.path),
               "--store", str(self.store), "--prover", self.prover, "--parent", str(os.getpid())]
        if self.prover_device is not None:
            cmd += ["--prover-device", self.prover_device]
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        self.procs[p.pid] = p
        logs.event("prover_worker_start", pid=p.pid)

    def start(self) -> None:
        """Requeue what a previous daemon left running, start the workers and the supervisor."""
        again = self.jobs.recover()
        if again:
            logs.event("jobs_recovered", count=len(again))
        for _ in range(self.n):
            self._spawn()
        self._task = asyncio.ensure_future(self._supervise())

    def _reap(self) -> None:
        for pid, p in list(self.procs.items()):
            if p.poll() is not None:
                del self.procs[pid]
                back = self.jobs.requeue_worker(pid, f"prover worker {pid} exited with status {p.returncode}")
                logs.event("prover_worker_exit", logging.WARNING, pid=pid, status=p.returncode, requeued=len(back))
        while len(self.procs) < self.n:
            self._spawn()

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(self.check_s)
            await asyncio.to_thread(self._reap)

    def stop_worker(self, pid: int) -> None:
        """Stop the worker running a cancelled job (the supervisor starts a fresh one)."""
        p = self.procs.get(pid)
        if p is not None and p.poll() is None:
            p.kill()

    async def stop(self) -> None:
        """Stop the workers; jobs they were running stay 'running' and are requeued at the next start."""
        if self._task:
            self._task.cancel()
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
        for p in self.procs.values():
            await asyncio.to_thread(p.wait)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="blindproof prover worker (started by `blindproof serve`)")
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--prover", default=DEFAULT_PROVER)
    ap.add_argument("--parent", type=int, required=True)
    ap.add_argument("--prover-device", default=None, help="auto|cpu|cuda[:N]|torch-cpu (default $%s or auto)" % device.ENV)
    a = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    run_worker(a.db, a.store, a.prover, a.parent, prover_device=a.prover_device)


if __name__ == "__main__":
    main()
