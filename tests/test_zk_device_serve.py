"""`blindproof serve --prover-device`: the option reaches the prover workers; cuda without a GPU is a
clear start-up error (no silent fallback: `auto` is the fallback)."""

from __future__ import annotations

import json
import time

import pytest
import torch

from blindproof.server import ServerConfig
from blindproof.server.process import ServerProcess


def _events(srv: ServerProcess, name: str) -> list[dict]:
    out = []
    for line in srv.log().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("event") == name:
            out.append(rec)
    return out


def _wait_event(srv: ServerProcess, name: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _events(srv, name)
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no {name!r} event in the server log:\n{srv.log()[-2000:]}")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("choice, worker_device", [("cpu", "cpu (numba/numpy)"), ("torch-cpu", "cpu")])
def test_serve_accepts_prover_device_and_passes_it_to_workers(tmp_path, choice, worker_device):
    with ServerProcess(store=tmp_path / "store", extra_args=["--prover-device", choice]) as srv:
        assert _wait_event(srv, "listening")["prover_device"] == choice
        assert _wait_event(srv, "prover_worker_ready")["prover_device"] == worker_device


@pytest.mark.timeout(120)
def test_serve_prover_device_cuda_without_a_gpu_fails_at_startup(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    srv = ServerProcess(store=tmp_path / "store", extra_args=["--prover-device", "cuda"])
    with pytest.raises(RuntimeError, match="status 2") as err:
        srv.start(timeout=60)
    assert "no CUDA device" in str(err.value) and "Traceback" not in srv.log()
    srv.close()


def test_serve_rejects_an_unknown_prover_device(tmp_path):
    with pytest.raises(ValueError, match="prover device must be one of"):
        ServerConfig(store=tmp_path, prover_device="tpu")
    assert ServerConfig(store=tmp_path, prover_device=" CUDA:0 ").prover_device == "cuda:0"


def test_env_variable_sets_the_daemon_default(tmp_path):
    with ServerProcess(store=tmp_path / "store", env={"BLINDPROOF_PROVER_DEVICE": "cpu"}) as srv:
        assert _wait_event(srv, "listening")["prover_device"] == "cpu"
