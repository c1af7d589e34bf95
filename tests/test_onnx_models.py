"""ONNX files as models through the command line, in two commands (real subprocesses, real files):
``blindproof commit --model m.onnx --calibration x.npy`` and ``blindproof prove --model m.onnx ...``, then
``blindproof verify``; a tampered proof, an unsupported node and a corrupt file are refused (these and the
other files through ``blindproof.cli.main`` in this process)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import blindproof
from blindproof.quant.files import load_qspec
from blindproof.quant.onnx_eval import evaluate
from blindproof.quant.onnx_model import load_onnx

from onnx_graphs import mlp, residual, save, with_conv
from cli_runs import cli  # the real CLI in a subprocess, this tree first on the path

pytestmark = [pytest.mark.timeout(600), pytest.mark.filterwarnings("ignore::UserWarning")]

def _error_line(proc) -> str:
    """The one error line of a refused command (progress lines aside)."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("[")]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    save(mlp(), d / "m.onnx")
    save(residual(), d / "res.onnx")
    save(with_conv(), d / "conv.onnx")
    rng = np.random.default_rng(0)
    np.save(d / "x.npy", rng.standard_normal((64, 16)).astype(np.float32))
    np.save(d / "x1.npy", rng.standard_normal((1, 16)).astype(np.float32))
    np.save(d / "r.npy", rng.standard_normal((64, 12)).astype(np.float32))
    np.save(d / "r1.npy", rng.standard_normal((1, 12)).astype(np.float32))
    np.save(d / "img.npy", rng.standard_normal((8, 2, 4, 4)).astype(np.float32))
    return d


def test_mlp_onnx_file_commits_proves_and_verifies_in_two_commands(files, tmp_path, run_cli):
    # exactly the README's commands, run in a folder holding the files
    for name in ("m.onnx", "x.npy", "x1.npy"):
        (tmp_path / name).write_bytes((files / name).read_bytes())
    cli("commit", "--model", "m.onnx", "--calibration", "x.npy", "-o", "m.commit", cwd=tmp_path)
    cli("prove", "--model", "m.onnx", "--calibration", "x.npy", "--commitment", "m.commit", "--input", "x1.npy",
        "-o", "p.bin", cwd=tmp_path)
    out = cli("verify", "p.bin", "--commitment", "m.commit", cwd=tmp_path)
    assert out.stdout.startswith("VALID")
    # the same proof, checked further through blindproof.cli.main in this process
    res = json.loads(run_cli("verify", "p.bin", "--commitment", "m.commit", "--input", "x1.npy", "--json",
                             cwd=tmp_path).stdout)
    assert res["valid"]
    # the label the proof carries is the ONNX graph's own (evaluated in float)
    x1 = np.load(files / "x1.npy")
    assert res["output_argmax"]["output"] == int(np.argmax(evaluate(load_onnx(files / "m.onnx"), x1)))
    # a tampered proof is rejected
    data = bytearray((tmp_path / "p.bin").read_bytes())
    data[-100] ^= 0x20
    (tmp_path / "bad.bin").write_bytes(bytes(data))
    bad = run_cli("verify", "bad.bin", "--commitment", "m.commit", check=False, cwd=tmp_path)
    assert bad.returncode == 1 and not bad.stdout.startswith("VALID")
    # another input than the proof's is rejected too
    np.save(tmp_path / "x2.npy", x1 + 0.5)
    assert run_cli("verify", "p.bin", "--commitment", "m.commit", "--input", "x2.npy", check=False,
                   cwd=tmp_path).returncode == 1


def test_residual_block_with_layernorm_proves_and_verifies(files, tmp_path, run_cli):
    com, proof = tmp_path / "r.commit", tmp_path / "p.bin"
    run_cli("commit", "--model", str(files / "res.onnx"), "--calibration", str(files / "r.npy"), "-o", str(com))
    run_cli("prove", "--model", str(files / "res.onnx"), "--calibration", str(files / "r.npy"),
            "--commitment", str(com), "--input", str(files / "r1.npy"), "-o", str(proof))
    res = json.loads(run_cli("verify", str(proof), "--commitment", str(com), "--json").stdout)
    assert res["valid"]
    kinds = {op.kind for op in blindproof.commit(str(files / "res.onnx"), np.load(files / "r.npy")).commitment.spec.ops}
    assert {"linear", "lookup", "add", "norm"} <= kinds
    data = bytearray(proof.read_bytes())
    data[len(data) // 2] ^= 0x01
    (tmp_path / "bad.bin").write_bytes(bytes(data))
    assert run_cli("verify", str(tmp_path / "bad.bin"), "--commitment", str(com), check=False).returncode == 1


def test_other_calibration_is_another_model_and_calibration_is_needed(files, tmp_path, run_cli):
    com = tmp_path / "m.commit"
    run_cli("commit", "--model", str(files / "m.onnx"), "--calibration", str(files / "x.npy"), "-o", str(com))
    np.save(tmp_path / "wide.npy", 8 * np.load(files / "x.npy"))
    out = run_cli("prove", "--model", str(files / "m.onnx"), "--calibration", str(tmp_path / "wide.npy"),
                  "--commitment", str(com), "--input", str(files / "x1.npy"), "-o", str(tmp_path / "p.bin"),
                  check=False)
    assert out.returncode == 2 and "do not match" in _error_line(out)
    out = run_cli("commit", "--model", str(files / "m.onnx"), "-o", str(tmp_path / "n.commit"), check=False)
    assert out.returncode == 2 and "pass calibration data" in _error_line(out)
    out = run_cli("commit", "--model", str(files / "m.onnx"), "--calibration", str(files / "img.npy"),
                  "-o", str(tmp_path / "n.commit"), check=False)
    assert out.returncode == 2 and "has shape ('batch', 16), the data (8, 2, 4, 4)" in _error_line(out)


def test_an_unsupported_node_is_named_with_exit_2(files, tmp_path, run_cli):
    out = run_cli("commit", "--model", str(files / "conv.onnx"), "--calibration", str(files / "img.npy"),
                  "-o", str(tmp_path / "c.commit"), check=False)
    line = _error_line(out)
    assert out.returncode == 2
    assert "unsupported ONNX node 'conv1' (Conv): group = 2" in line and "supported: Gemm, MatMul" in line
    assert not (tmp_path / "c.commit").exists()
    out = run_cli("quantize", str(files / "conv.onnx"), "--calibration", str(files / "img.npy"), "-o",
                  str(tmp_path / "c.qspec"), check=False)
    assert out.returncode == 2 and "unsupported ONNX node 'conv1' (Conv)" in _error_line(out)


@pytest.mark.parametrize("content, message", [
    (b"\x08\x07\x12\xff\xff\xff\xff\x0f garbage", "not a readable ONNX model"),
    (b"hello, this is a text file\n" * 20, "not a readable ONNX model"),
    (b"", "not an ONNX model"),
])
def test_a_corrupt_file_is_one_line(files, tmp_path, content, message, run_cli):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    out = run_cli("commit", "--model", str(bad), "--calibration", str(files / "x.npy"), "-o", str(tmp_path / "c"),
                  check=False)
    assert out.returncode == 2 and message in _error_line(out) and "bad.onnx" in _error_line(out)


def test_a_truncated_file_and_a_missing_file_are_one_line(files, tmp_path, run_cli):
    cut = tmp_path / "cut.onnx"
    cut.write_bytes((files / "m.onnx").read_bytes()[:300])
    out = run_cli("commit", "--model", str(cut), "--calibration", str(files / "x.npy"), "-o", str(tmp_path / "c"),
                  check=False)
    assert out.returncode == 2 and "cut.onnx: not a readable ONNX model" in _error_line(out)
    out = run_cli("commit", "--model", str(tmp_path / "none.onnx"), "--calibration", str(files / "x.npy"),
                  "-o", str(tmp_path / "c"), check=False)
    assert out.returncode == 2 and "no ONNX file" in _error_line(out)


def test_quantize_an_onnx_file_reports_and_the_qspec_is_reused(files, tmp_path, run_cli):
    q = tmp_path / "m.qspec"
    out = run_cli("quantize", str(files / "m.onnx"), "--calibration", str(files / "x.npy"), "-o", str(q), "--json")
    summary = json.loads(out.stdout)
    assert summary["top1"] >= 0.95 and summary["cosine_min"] > 0.99
    qm, info = load_qspec(q)
    assert qm.spec.arch["family"] == "onnx" and info["calibration_shape"] == [64, 16]
    # the same integer model as quantizing the file in commit
    c = blindproof.commit(str(files / "m.onnx"), np.load(files / "x.npy"))
    assert c.commitment.spec.digest() == qm.spec.digest()
    p = blindproof.prove(c, np.load(files / "x1.npy"))
    assert blindproof.verify(p, c.commitment)
    assert not blindproof.verify(p, blindproof.commit(q).commitment)  # another key: another commitment


def test_the_one_call_api_takes_an_onnx_path(files, tmp_path):
    x, x1 = np.load(files / "r.npy"), np.load(files / "r1.npy")
    c = blindproof.commit(str(files / "res.onnx"), x, out=tmp_path / "r.commit")
    assert c.commitment.spec.arch["family"] == "onnx"
    # later, in another session: the path, its calibration and the commitment file (its key beside it)
    p = blindproof.prove(str(files / "res.onnx"), x1, commitment=tmp_path / "r.commit", calibration=x)
    v = blindproof.verify(p, tmp_path / "r.commit", inputs=x1)
    assert v, v.reason
    ref = evaluate(load_onnx(files / "res.onnx"), x1)
    cos = float((v.output * ref).sum() / np.linalg.norm(v.output) / np.linalg.norm(ref))
    assert v.output.shape == ref.shape and cos > 0.99
    with pytest.raises(ValueError, match="do not match"):
        blindproof.prove(str(files / "res.onnx"), x1, commitment=tmp_path / "r.commit", calibration=2 * x)
