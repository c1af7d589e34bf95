"""`blindproof commit / prove / verify` end to end on the MLP workload, and their exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(300)


def _run(*args: str, cwd) -> subprocess.CompletedProcess:
    """A real process (console entry point, exit status)."""
    return subprocess.run([sys.executable, "-m", "blindproof.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=240)


@pytest.fixture
def _cli(capsys, monkeypatch):
    """In-process runs (fast): returns a CompletedProcess-like result."""
    from blindproof.cli import main

    def call(*args: str, cwd) -> subprocess.CompletedProcess:
        monkeypatch.chdir(cwd)
        try:
            rc = main(list(args))
        except SystemExit as exc:  # argparse and option errors
            rc = exc.code if isinstance(exc.code, int) else 2
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, rc, out.out, out.err)

    return call


def test_commit_writes_a_reproducible_commitment(tmp_path, _cli):
    a = _cli("commit", "--model", "mlp-784-56-10", "-o", "a.commit", "--json", cwd=tmp_path)
    assert a.returncode == 0, a.stderr
    info = json.loads(a.stdout)
    assert (tmp_path / "a.commit").stat().st_size == info["file_bytes"] and (tmp_path / "a.commit.key").exists()
    # the same key gives the same commitment; a fresh key another one
    b = _cli("commit", "--model", "mlp-784-56-10", "-o", "b.commit", "--key", "a.commit.key", "--json", cwd=tmp_path)
    c = _cli("commit", "--model", "mlp-784-56-10", "-o", "c.commit", "--json", cwd=tmp_path)
    assert json.loads(b.stdout)["digest"] == info["digest"] != json.loads(c.stdout)["digest"]


def test_commit_prove_verify(tmp_path, _cli):
    pytest.importorskip("blindproof.zk.proof.program")
    assert _cli("commit", "--model", "mlp-784-56-10", cwd=tmp_path).returncode == 0
    p = _cli("prove", "--model", "mlp-784-56-10", "-o", "proof.bin", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "provable" in p.stdout and "trace" in p.stderr  # progress goes to stderr
    v = _cli("verify", "proof.bin", "--commitment", "model.commit", cwd=tmp_path)
    assert v.returncode == 0, v.stdout + v.stderr
    assert "VALID" in v.stdout and "provable bits" in v.stdout and "conjectured bits" in v.stdout
    j = _run("verify", "proof.bin", "--commitment", "model.commit", "--json", cwd=tmp_path)
    out = json.loads(j.stdout)
    assert j.returncode == 0 and out["valid"] and out["provable_bits"] >= 100 and out["conjectured_bits"] > 0
    assert {t["term"].split(" (")[0] for t in out["soundness_terms"]} >= {"trace opening", "weight opening"}

    # the statement pinned: the input given to prove, the output saved by a first verify
    import numpy as np
    from blindproof.zk.proof.prover import example_input
    x = np.asarray(example_input("mlp-784-56-10"))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "other.npy", x + 0.25)
    s = _cli("verify", "proof.bin", "--commitment", "model.commit", "--input", "x.npy", "--save-output", "y.npy",
             cwd=tmp_path)
    assert s.returncode == 0 and "pinned: input" in s.stdout and "largest entry" in s.stdout, s.stdout + s.stderr
    y = np.load(tmp_path / "y.npy")
    pinned = _cli("verify", "proof.bin", "--commitment", "model.commit", "--input", "x.npy", "--output", "y.npy",
                  "--json", cwd=tmp_path)
    info = json.loads(pinned.stdout)
    assert pinned.returncode == 0 and info["pinned"] == ["input", "output"]
    assert info["output_argmax"]["logits"] == int(np.argmax(y.reshape(-1, y.shape[-1])[-1]))
    assert _cli("verify", "proof.bin", "--commitment", "model.commit", "--input", "other.npy",
                cwd=tmp_path).returncode == 1
    y2 = y.copy()
    y2.flat[0] += 1
    np.save(tmp_path / "y2.npy", y2)
    wrong = _cli("verify", "proof.bin", "--commitment", "model.commit", "--output", "y2.npy", cwd=tmp_path)
    assert wrong.returncode == 1 and "INVALID" in wrong.stdout
    np.save(tmp_path / "yf.npy", y.astype(np.float64))
    for bad_args in (("--output", "yf.npy"), ("--input", "missing.npy"), ("--output", "x.npy")):
        r = _cli("verify", "proof.bin", "--commitment", "model.commit", *bad_args, cwd=tmp_path)
        assert r.returncode == 2 and r.stderr.strip().startswith("error:"), (bad_args, r.stdout, r.stderr)

    # invalid: a flipped byte, and another model's commitment -> exit 1 with a reason
    data = bytearray((tmp_path / "proof.bin").read_bytes())
    data[len(data) // 2] ^= 0x10
    (tmp_path / "bad.bin").write_bytes(bytes(data))
    bad = _cli("verify", "bad.bin", "--commitment", "model.commit", cwd=tmp_path)
    assert bad.returncode == 1 and "INVALID" in bad.stdout
    assert _cli("commit", "--model", "mlp-784-56-10", "--seed", "5", "-o", "other.commit", cwd=tmp_path).returncode == 0
    other = _cli("verify", "proof.bin", "--commitment", "other.commit", "--json", cwd=tmp_path)
    assert other.returncode == 1 and "another model" in json.loads(other.stdout)["reason"]
    low = _cli("verify", "proof.bin", "--commitment", "model.commit", "--min-bits", "300", cwd=tmp_path)
    assert low.returncode == 1


def test_unusable_inputs_exit_2(tmp_path, _cli):
    (tmp_path / "junk.commit").write_bytes(b"junk")
    (tmp_path / "p.bin").write_bytes(b"junk")
    assert _cli("verify", "p.bin", "--commitment", "missing.commit", cwd=tmp_path).returncode == 2
    r = _cli("verify", "p.bin", "--commitment", "junk.commit", cwd=tmp_path)
    assert r.returncode == 2 and "not a usable model commitment" in r.stderr
    r = _cli("prove", "--model", "mlp-784-56-10", cwd=tmp_path)  # no key: commit first
    assert r.returncode == 2 and "blindproof commit" in r.stderr
    r = _cli("commit", "--model", "no-such-model", cwd=tmp_path)
    assert r.returncode != 0 and "unknown model" in r.stderr


def test_prove_refuses_a_mismatched_commitment(tmp_path, _cli):
    assert _cli("commit", "--model", "mlp-784-56-10", cwd=tmp_path).returncode == 0
    r = _cli("prove", "--model", "mlp-784-56-10", "--seed", "3", cwd=tmp_path)
    assert r.returncode == 2 and "do not match" in r.stderr
    (tmp_path / "model.commit.key.ledger").unlink()  # a lost ledger must not restart the budget silently
    r = _cli("prove", "--model", "mlp-784-56-10", cwd=tmp_path)
    assert r.returncode == 2 and "no opening ledger" in r.stderr
