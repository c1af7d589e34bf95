"""Run `blindproof serve` as a child process on a free localhost port (demo, tests, benchmarks)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class ServerProcess:
    """A `blindproof serve` subprocess; use as a context manager or call start()/stop()."""

    def __init__(self, store: str | os.PathLike | None = None, extra_args: list[str] | None = None,
                 host: str = "127.0.0.1", env: dict[str, str] | None = None,
                 log_path: str | os.PathLike | None = None, program: list[str] | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="blindproof-serve-")
        self.store = Path(store) if store else Path(self._tmp.name) / "store"
        self.host = host
        self.extra_args = list(extra_args or [])
        self.env = {**os.environ, **(env or {})}
        self.log_path = Path(log_path) if log_path else Path(self._tmp.name) / "server.log"
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        # the command that takes `serve`'s arguments (tests start modified servers through it)
        self.program = list(program or [sys.executable, "-m", "blindproof.cli"])

    @property
    def target(self) -> str:
        if self.port is None:
            raise RuntimeError("server not started")
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 60.0, port: int = 0) -> "ServerProcess":
        """Start the server (on ``port``, 0 for a free one) and wait until it has bound its port."""
        port_file = Path(self._tmp.name) / f"port-{time.monotonic_ns()}"
        cmd = [*self.program, "serve", "--host", self.host, "--port", str(port),
               "--port-file", str(port_file), "--store", str(self.store), *self.extra_args]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + timeout
        while not port_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with status {self.proc.returncode}:\n{self.log()[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"server did not start within {timeout:g} s:\n{self.log()[-2000:]}")
            time.sleep(0.05)
        self.port = int(port_file.read_text())
        return self

    def log(self) -> str:
        """Everything the server wrote so far (JSON lines)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (graceful drain), then SIGKILL after ``timeout``; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def restart(self, timeout: float = 60.0) -> "ServerProcess":
        """Stop gracefully and start again on the same port and store (clients reconnect by themselves)."""
        port = self.port
        self.stop()
        return self.start(timeout, port=port or 0)

    def close(self) -> None:
        self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> "ServerProcess":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.close()
