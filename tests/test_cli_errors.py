"""Every expected CLI failure is one line on stderr with the documented exit status (docs/cli.md):
0 ok, 1 a check said no, 2 usage or input error, 3 server or transport error, 130 Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from blindproof.cli import main
from blindproof.client.cli_args import EXIT_INTERRUPTED, EXIT_SERVER, EXIT_USAGE
from blindproof.server.process import ServerProcess

pytestmark = pytest.mark.timeout(180)


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("[")]  # demo progress: "[  1.2s] ..."
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(store=tmp_path_factory.mktemp("cli") / "store", extra_args=["--prover-workers", "0"]) as srv:
        yield srv


def _serve(capsys, *args: str) -> tuple[int, dict]:
    code, _, err = _run(capsys, "serve", "--prover-workers", "0", *args)
    return code, json.loads(_one_line(err))


def test_port_in_use(capsys, server, tmp_path):
    code, line = _serve(capsys, "--port", str(server.port), "--store", str(tmp_path / "s"))
    assert code == EXIT_SERVER and line["event"] == "startup_failed" and "cannot bind" in line["error"]


def test_second_server_on_the_same_store(capsys, server):
    code, line = _serve(capsys, "--port", "0", "--store", str(server.store))
    assert code == EXIT_SERVER and "another blindproof serve" in line["error"]


@pytest.mark.parametrize("args, needle", [
    (["--tls-cert", "/no/such/cert.pem", "--tls-key", "/no/such/key.pem"], "--tls-cert"),
    (["--tls-cert", __file__], "both a certificate file and a key file"),
    (["--token-file", "/no/such/token"], "--token-file"),
    (["--port", "99999"], "port must be in [0, 65535]"),
    (["--host", "0.0.0.0"], "--insecure"),
])
def test_bad_serve_options(capsys, tmp_path, args, needle):
    code, line = _serve(capsys, "--port", "0", "--store", str(tmp_path / "s"), *args)
    assert code == EXIT_USAGE and needle in line["error"], line


def test_unwritable_store(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, line = _serve(capsys, "--port", "0", "--store", str(blocker / "store"))
    assert code == EXIT_USAGE and line["reason"] in ("store or file not accessible", "file or store error")


def test_token_file_readable_by_others(capsys, server, tmp_path):
    tok = tmp_path / "token"
    tok.write_text("secret\n")
    tok.chmod(0o644)
    code, line = _serve(capsys, "--port", "0", "--store", str(tmp_path / "s"), "--token-file", str(tok))
    assert code == EXIT_USAGE and "chmod 600" in line["error"]
    code, _, err = _run(capsys, "deployments", "--server", server.target, "--token-file", str(tok))
    assert code == EXIT_USAGE and "chmod 600" in _one_line(err)


def test_demo_unknown_model_and_unreachable_server(capsys):
    code, _, err = _run(capsys, "demo", "--model", "foo")
    assert code == EXIT_USAGE and "unknown model 'foo'" in _one_line(err)
    code, _, err = _run(capsys, "demo", "--server", "127.0.0.1:1", "--no-proof", "--tokens", "2")
    assert code == EXIT_SERVER and "not ready" in _one_line(err)


def test_client_errors_and_json_only_with_json(capsys, server, tmp_path):
    code, out, _ = _run(capsys, "deployments", "--server", server.target)
    assert code == 0 and out.strip() == "no deployments"
    code, out, _ = _run(capsys, "deploy", "--server", server.target, "--model", "tiny-llama", "--plaintext",
                        "--record", str(tmp_path / "d.json"))
    assert code == 0 and not out.startswith("{")
    code, out, _ = _run(capsys, "deployments", "--server", server.target)
    assert code == 0 and "plaintext" in out and not out.startswith("{")
    code, out, _ = _run(capsys, "deployments", "--server", server.target, "--json")
    assert code == 0 and json.loads(out.splitlines()[0])["deployment_id"]
    code, out, _ = _run(capsys, "infer", "--record", str(tmp_path / "d.json"), "--text", "hi")
    assert code == 0 and out.startswith("deployment ") and "next token" in out
    code, out, _ = _run(capsys, "infer", "--record", str(tmp_path / "d.json"), "--text", "hi", "--json")
    assert code == 0 and json.loads(out)["output_shape"] == [1, 2, 256]
    code, _, err = _run(capsys, "deployments", "--server", server.target, "--delete", "0" * 64)
    assert code == EXIT_SERVER and "NOT_FOUND" in _one_line(err)
    code, _, err = _run(capsys, "infer", "--record", str(tmp_path / "missing.json"), "--text", "hi")
    assert code == EXIT_USAGE and _one_line(err).startswith("error:")
    code, _, err = _run(capsys, "keygen", "--out", str(tmp_path / "d.json"))
    assert code == EXIT_USAGE and "--force" in _one_line(err)
    before = (tmp_path / "d.json").read_text()  # deploy refuses to overwrite a record, as keygen a key
    code, _, err = _run(capsys, "deploy", "--server", server.target, "--model", "tiny-llama", "--plaintext",
                        "--record", str(tmp_path / "d.json"))
    assert code == EXIT_USAGE and "--force" in _one_line(err) and (tmp_path / "d.json").read_text() == before
    code, _, _ = _run(capsys, "deploy", "--server", server.target, "--model", "tiny-llama", "--plaintext",
                      "--record", str(tmp_path / "d.json"), "--force")
    assert code == 0


def _interrupt_demo(tmp_path, wait_for: str, delay: float) -> tuple[subprocess.Popen, str, bool]:
    """Start `blindproof demo`, send SIGINT ``delay`` s after ``wait_for`` shows on stderr; (process, stderr,
    signalled)."""
    # A shell that starts a job in the background ignores SIGINT for it, and Python keeps an ignored SIGINT
    # ignored; restore the default so the command sees Ctrl-C as it would in a terminal.
    proc = subprocess.Popen([sys.executable, "-m", "blindproof.cli", "demo", "--no-proof", "--tokens", "200"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    err = ""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        err += line
        if wait_for in line or not line:
            break
    time.sleep(delay)
    signalled = proc.poll() is None  # on a loaded machine the demo may have finished before we got here
    if signalled:
        proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    return proc, err + rest, signalled


def test_ctrl_c_is_one_line_and_130(tmp_path):
    """SIGINT while a command runs (here: demo starting its server and deploying; a read interrupted inside
    a generation stream is tests/test_grpc_faults.py's)."""
    for _ in range(3):  # a starved test process can send the signal only after the demo's work is done: retry
        proc, err, signalled = _interrupt_demo(tmp_path, "server ready", 0.0)
        if signalled and proc.returncode != 0:
            break
    assert signalled, "the demo finished each time before the signal could be sent"
    assert proc.returncode == EXIT_INTERRUPTED, err[-2000:]
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "error: interrupted", err[-2000:]
    assert os.listdir(tmp_path) == []  # nothing left behind in the working directory


def test_first_run_notice_follows_the_kernel_cache(tmp_path, monkeypatch):
    from blindproof.commands.warmup import first_run_notice, kernels_cached
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert not kernels_cached() and "blindproof warmup" in first_run_notice()
    (tmp_path / "zk_x").mkdir()
    (tmp_path / "zk_x" / "_kernels.mul_flat-106.py311.nbi").write_bytes(b"")
    assert kernels_cached() and first_run_notice() is None
    assert "warmup" in main.__globals__["build_parser"]().format_help()


def test_verified_proof_prints_short():
    from blindproof.client.verify import VerifiedProof
    v = VerifiedProof(b"x" * 3_000_000, b"\x01" * 32, 100.0, 120.0, 0.5, "j", "r")
    assert len(repr(v)) < 300 and "3000000 bytes" in str(v)
