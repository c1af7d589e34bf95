"""Served inferences and proof jobs, persisted in SQLite (stdlib ``sqlite3``, WAL, synchronous=FULL).

Three tables: ``requests`` (what an integer deployment was asked and answered, kept so it can be
proved later), ``jobs`` (one proof job per row; states queued → running → done | failed | cancelled)
and ``proofs`` (the finished proof bytes). A job is accepted when its row is committed; from then on
nothing loses it: a job left ``running`` by a worker or daemon that died is queued again (by the
supervisor, or by :meth:`JobStore.recover` at start-up), and a proof is written in the same
transaction that marks its job done.

Every process opens its own :class:`JobStore` (the daemon and each prover worker); transactions that
read-then-write use ``BEGIN IMMEDIATE`` so claims and per-client limits are atomic across processes.
"""

from __future__ import annotations

import io
import os
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import blake3
import numpy as np

from blindproof.server.store import private

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
ACTIVE = (QUEUED, RUNNING)
FINAL = (DONE, FAILED, CANCELLED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY, deployment_id TEXT NOT NULL, client TEXT NOT NULL,
    start INTEGER NOT NULL, inputs BLOB NOT NULL, outputs BLOB NOT NULL, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS requests_created ON requests (created);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL UNIQUE, request_id TEXT NOT NULL,
    deployment_id TEXT NOT NULL, client TEXT NOT NULL, state TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0, message TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0,
    worker_pid INTEGER, created REAL NOT NULL, updated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, seq);
CREATE INDEX IF NOT EXISTS jobs_client ON jobs (client, state);
CREATE TABLE IF NOT EXISTS proofs (job_id TEXT PRIMARY KEY, data BLOB NOT NULL, digest TEXT NOT NULL);
"""


class UnknownRequestError(KeyError):
    """No served inference is kept under this request id."""


class UnknownJobError(KeyError):
    """No proof job with this id."""


class QueueFullError(RuntimeError):
    """The client already has as many queued or running jobs as the server allows."""


class JobStateError(RuntimeError):
    """The job is not in a state that allows the operation (e.g. downloading an unfinished proof)."""


@dataclass(frozen=True)
class ServedRequest:
    """One inference of an integer deployment, as served."""

    request_id: str
    deployment_id: str
    client: str
    start: int
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    created: float


@dataclass(frozen=True)
class JobInfo:
    """The public state of a proof job."""

    job_id: str
    request_id: str
    deployment_id: str
    client: str
    state: str
    progress: float
    message: str
    attempts: int
    worker_pid: int | None
    created: float
    updated: float
    queue_position: int = 0
    proof_bytes: int = 0
    proof_digest: str = ""


def pack_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    """Named int64 arrays -> bytes (numpy ``.npz``, no pickling)."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.ascontiguousarray(v, dtype=np.int64) for k, v in arrays.items()})
    return buf.getvalue()


def unpack_arrays(data: bytes) -> dict[str, np.ndarray]:
    """Inverse of :func:`pack_arrays`."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def proof_digest(data: bytes) -> str:
    """``blake3:<hex>`` of a proof's bytes."""
    return "blake3:" + blake3.blake3(data).hexdigest()


class JobStore:
    """One process's connection to the jobs database (thread-safe within the process)."""

    def __init__(self, path: str | os.PathLike, max_queued_per_client: int = 16, keep_requests: int = 10_000,
                 max_attempts: int = 3) -> None:
        if max_queued_per_client < 1:
            raise ValueError(f"max_queued_per_client must be >= 1, got {max_queued_per_client}")
        if keep_requests < 1:
            raise ValueError(f"keep_requests must be >= 1, got {keep_requests}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # owner only: the database holds every served input and output and every proof (SQLite gives
        # its -wal and -shm files the database file's mode)
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        for p in (self.path, Path(str(self.path) + "-wal"), Path(str(self.path) + "-shm")):
            private(p, 0o600)
        self.max_queued_per_client = max_queued_per_client
        self.keep_requests = keep_requests
        self.max_attempts = max_attempts
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a committed job survives power loss, not only SIGKILL
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- transactions ----------------------------------------------------------------------------
    def _tx(self):
        store = self

        class _Tx:
            def __enter__(self_inner):
                store._lock.acquire()
                store._db.execute("BEGIN IMMEDIATE")
                return store._db

            def __exit__(self_inner, exc_type, *_):
                try:
                    store._db.execute("ROLLBACK" if exc_type else "COMMIT")
                finally:
                    store._lock.release()
        return _Tx()

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # --- served requests -------------------------------------------------------------------------
    def record_request(self, deployment_id: str, client: str, start: int, inputs: dict[str, np.ndarray],
                       outputs: dict[str, np.ndarray]) -> str:
        """Keep a served inference; returns its request id. The oldest requests no job refers to are
        dropped beyond ``keep_requests``."""
        rid = uuid.uuid4().hex
        with self._tx() as db:
            db.execute("INSERT INTO requests VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (rid, deployment_id, client, int(start), pack_arrays(inputs), pack_arrays(outputs), time.time()))
            db.execute("DELETE FROM requests WHERE request_id IN (SELECT request_id FROM requests r WHERE NOT EXISTS "
                       "(SELECT 1 FROM jobs j WHERE j.request_id = r.request_id) ORDER BY created DESC LIMIT -1 OFFSET ?)",
                       (self.keep_requests,))
        return rid

    def request(self, request_id: str) -> ServedRequest:
        """A kept inference; UnknownRequestError if there is none."""
        rows = self._read("SELECT request_id, deployment_id, client, start, inputs, outputs, created FROM requests "
                          "WHERE request_id = ?", (request_id,))
        if not rows:
            raise UnknownRequestError(request_id)
        r = rows[0]
        return ServedRequest(r[0], r[1], r[2], int(r[3]), unpack_arrays(r[4]), unpack_arrays(r[5]), float(r[6]))

    # --- jobs ------------------------------------------------------------------------------------
    def submit(self, request_id: str, client: str) -> JobInfo:
        """Queue a proof job for a kept inference; QueueFullError over the client's limit."""
        with self._tx() as db:
            row = db.execute("SELECT deployment_id FROM requests WHERE request_id = ?", (request_id,)).fetchone()
            if row is None:
                raise UnknownRequestError(request_id)
            (n,) = db.execute("SELECT COUNT(*) FROM jobs WHERE client = ? AND state IN (?, ?)",
                              (client, *ACTIVE)).fetchone()
            if n >= self.max_queued_per_client:
                raise QueueFullError(f"client {client!r} already has {n} queued or running proof jobs "
                                     f"(limit {self.max_queued_per_client})")
            jid, now = uuid.uuid4().hex, time.time()
            db.execute("INSERT INTO jobs (job_id, request_id, deployment_id, client, state, created, updated) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", (jid, request_id, row[0], client, QUEUED, now, now))
        return self.job(jid)

    _JOB_COLS = ("j.job_id, j.request_id, j.deployment_id, j.client, j.state, j.progress, j.message, j.attempts, "
                 "j.worker_pid, j.created, j.updated, j.seq, length(p.data), p.digest")

    def _info(self, r: tuple) -> JobInfo:
        pos = 0
        if r[4] == QUEUED:
            pos = self._read("SELECT COUNT(*) FROM jobs WHERE state = ? AND seq < ?", (QUEUED, r[11]))[0][0]
        return JobInfo(r[0], r[1], r[2], r[3], r[4], float(r[5]), r[6], int(r[7]), r[8], float(r[9]), float(r[10]),
                       int(pos), int(r[12] or 0), r[13] or "")

    def job(self, job_id: str) -> JobInfo:
        """A job's state; UnknownJobError if there is none."""
        rows = self._read(f"SELECT {self._JOB_COLS} FROM jobs j LEFT JOIN proofs p ON p.job_id = j.job_id "
                          "WHERE j.job_id = ?", (job_id,))
        if not rows:
            raise UnknownJobError(job_id)
        return self._info(rows[0])

    def jobs(self, state: str | None = None) -> list[JobInfo]:
        """Every job (in a given state), oldest first."""
        where, args = ("WHERE j.state = ?", (state,)) if state else ("", ())
        rows = self._read(f"SELECT {self._JOB_COLS} FROM jobs j LEFT JOIN proofs p ON p.job_id = j.job_id "
                          f"{where} ORDER BY j.seq", args)
        return [self._info(r) for r in rows]

    def claim(self, worker_pid: int) -> JobInfo | None:
        """Take the oldest queued job for a worker (atomic across processes); None when none waits."""
        with self._tx() as db:
            row = db.execute("SELECT job_id FROM jobs WHERE state = ? ORDER BY seq LIMIT 1", (QUEUED,)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE jobs SET state = ?, worker_pid = ?, attempts = attempts + 1, progress = 0, "
                       "message = 'started', updated = ? WHERE job_id = ?", (RUNNING, worker_pid, time.time(), row[0]))
        return self.job(row[0])

    def progress(self, job_id: str, worker_pid: int, fraction: float, message: str) -> bool:
        """Record progress; False when the job is no longer this worker's (cancelled or requeued)."""
        with self._tx() as db:
            cur = db.execute("UPDATE jobs SET progress = ?, message = ?, updated = ? WHERE job_id = ? AND state = ? "
                             "AND worker_pid = ?", (min(max(float(fraction), 0.0), 1.0), message[:500], time.time(),
                                                   job_id, RUNNING, worker_pid))
            return cur.rowcount == 1

    def finish(self, job_id: str, worker_pid: int, proof: bytes) -> bool:
        """Store the proof and mark the job done, in one transaction; False if the job was taken away."""
        with self._tx() as db:
            cur = db.execute("UPDATE jobs SET state = ?, progress = 1, message = 'done', updated = ? WHERE job_id = ? "
                             "AND state = ? AND worker_pid = ?", (DONE, time.time(), job_id, RUNNING, worker_pid))
            if cur.rowcount != 1:
                return False
            db.execute("INSERT OR REPLACE INTO proofs VALUES (?, ?, ?)", (job_id, proof, proof_digest(proof)))
        return True

    def fail(self, job_id: str, worker_pid: int | None, message: str) -> bool:
        """Mark a running job failed (with the reason)."""
        with self._tx() as db:
            sql = "UPDATE jobs SET state = ?, message = ?, updated = ? WHERE job_id = ? AND state = ?"
            args: tuple = (FAILED, message[:2000], time.time(), job_id, RUNNING)
            if worker_pid is not None:
                sql, args = sql + " AND worker_pid = ?", args + (worker_pid,)
            return db.execute(sql, args).rowcount == 1

    def cancel(self, job_id: str) -> tuple[JobInfo, int | None]:
        """Cancel a queued or running job; returns its state and the pid of the worker that was running
        it (to be stopped). JobStateError for a job that is done or failed."""
        with self._tx() as db:
            row = db.execute("SELECT state, worker_pid FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                raise UnknownJobError(job_id)
            state, pid = row
            if state in (DONE, FAILED):
                raise JobStateError(f"job {job_id} already {state}")
            if state in ACTIVE:
                db.execute("UPDATE jobs SET state = ?, message = 'cancelled', updated = ? WHERE job_id = ?",
                           (CANCELLED, time.time(), job_id))
        return self.job(job_id), (pid if state == RUNNING else None)

    def requeue_worker(self, worker_pid: int, reason: str) -> list[str]:
        """Jobs a dead worker was running go back to the queue (or fail after ``max_attempts`` runs)."""
        return self._requeue("worker_pid = ?", (worker_pid,), reason)

    def recover(self) -> list[str]:
        """At daemon start-up: every job left running by the previous daemon goes back to the queue."""
        return self._requeue("1 = 1", (), "requeued after a daemon restart")

    def _requeue(self, where: str, args: tuple, reason: str) -> list[str]:
        with self._tx() as db:
            rows = db.execute(f"SELECT job_id, attempts FROM jobs WHERE state = ? AND {where}", (RUNNING, *args)).fetchall()
            now = time.time()
            for jid, attempts in rows:
                if attempts >= self.max_attempts:
                    db.execute("UPDATE jobs SET state = ?, message = ?, updated = ?, worker_pid = NULL WHERE job_id = ?",
                               (FAILED, f"{reason}; gave up after {attempts} runs", now, jid))
                else:
                    db.execute("UPDATE jobs SET state = ?, message = ?, progress = 0, updated = ?, worker_pid = NULL "
                               "WHERE job_id = ?", (QUEUED, reason, now, jid))
        return [r[0] for r in rows]

    # --- proofs ----------------------------------------------------------------------------------
    def proof_size(self, job_id: str) -> tuple[int, str]:
        """Size and digest of a finished proof; JobStateError unless the job is done."""
        info = self.job(job_id)
        if info.state != DONE:
            raise JobStateError(f"job {job_id} is {info.state}; its proof is not available")
        return info.proof_bytes, info.proof_digest

    def proof_chunks(self, job_id: str, chunk_bytes: int, offset: int = 0) -> Iterator[bytes]:
        """The proof's bytes from ``offset`` in chunks (read incrementally from the database)."""
        size, _ = self.proof_size(job_id)
        if offset < 0 or offset > size:
            raise ValueError(f"offset {offset} outside the proof's {size} bytes")
        pos = offset
        while pos < size:
            n = min(chunk_bytes, size - pos)
            (chunk,) = self._read("SELECT substr(data, ?, ?) FROM proofs WHERE job_id = ?", (pos + 1, n, job_id))[0]
            yield bytes(chunk)
            pos += n
