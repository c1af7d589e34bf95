"""`blindproof quantize MODEL --calibration DATA -o model.qspec`: the integer model as one file with its
accuracy report, reused by commit and prove (real files; one quantize/commit/prove/verify chain and one
commit/prove/verify chain of a module file in real subprocesses, the other runs and the error paths
through ``blindproof.cli.main`` in this process)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import blindproof
from blindproof.quant.files import load_qspec, save_qspec
from cli_runs import cli  # the real CLI in a subprocess, this tree first on the path

pytestmark = pytest.mark.timeout(600)

MODULE_FILE = """
import torch
from torch import nn

torch.manual_seed(0)
model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10)).eval()


def tied():
    # ten logits that differ by about 1e-4: int8 weights cannot keep their order
    torch.manual_seed(1)
    m = nn.Linear(16, 10)
    with torch.no_grad():
        m.weight.copy_(torch.randn(1, 16).repeat(10, 1) + 1e-4 * torch.randn(10, 16))
        m.bias.zero_()
    return m.eval()


class WithConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 2, 3)

    def forward(self, x):
        return self.conv(x)


conv = WithConv()
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("q")
    (d / "mymodel.py").write_text(MODULE_FILE)
    rng = np.random.default_rng(0)
    np.save(d / "calib.npy", rng.standard_normal((64, 1, 4, 4)).astype(np.float32))
    np.save(d / "x.npy", rng.standard_normal((1, 1, 4, 4)).astype(np.float32))
    np.save(d / "flat.npy", rng.standard_normal((64, 16)).astype(np.float32))
    return d


def test_torch_module_file_quantize_commit_prove_verify(files, tmp_path, run_cli):
    q, com, proof = tmp_path / "model.qspec", tmp_path / "model.commit", tmp_path / "proof.bin"
    out = cli("quantize", f"{files / 'mymodel.py'}:model", "--calibration", str(files / "calib.npy"), "-o", str(q))
    assert "top-1 agreement" in out.stdout and "warning" not in out.stderr
    qm, info = load_qspec(q)
    assert info["report"]["top1"] >= 0.95 and info["calibration_shape"] == [64, 1, 4, 4]
    assert qm.spec.arch["family"] == "torch" and qm.spec.arch["flatten_input"]
    cli("commit", "--model", str(q), "-o", str(com))
    cli("prove", "--model", str(q), "--commitment", str(com), "--input", str(files / "x.npy"), "-o", str(proof))
    res = cli("verify", str(proof), "--commitment", str(com), "--input", str(files / "x.npy"), "--json")
    assert json.loads(res.stdout)["valid"]
    # the label the proof carries is the torch module's
    import importlib.util

    import torch
    spec = importlib.util.spec_from_file_location("mymodel_t", files / "mymodel.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with torch.no_grad():
        label = int(mod.model(torch.from_numpy(np.load(files / "x.npy"))).argmax())
    assert json.loads(res.stdout)["output_argmax"]["output"] == label
    data = bytearray(proof.read_bytes())
    data[-100] ^= 0x20
    (tmp_path / "bad.bin").write_bytes(bytes(data))
    assert run_cli("verify", str(tmp_path / "bad.bin"), "--commitment", str(com), check=False).returncode == 1
    # the same file through the one-call API
    c = blindproof.commit(q)
    assert blindproof.verify(blindproof.prove(c, np.load(files / "x.npy")), c.commitment)


def test_commit_and_prove_a_module_file_with_calibration(files, tmp_path, run_cli):
    com, proof = tmp_path / "m.commit", tmp_path / "p.bin"
    ref = f"{files / 'mymodel.py'}:model"  # seeded in the file: every process builds the same weights
    cli("commit", "--model", ref, "--calibration", str(files / "calib.npy"), "-o", str(com))
    cli("prove", "--model", ref, "--calibration", str(files / "calib.npy"), "--commitment", str(com),
        "--input", str(files / "x.npy"), "-o", str(proof))
    assert cli("verify", str(proof), "--commitment", str(com), "--input", str(files / "x.npy")).returncode == 0
    # other calibration data is another integer model: prove refuses it against this commitment
    np.save(tmp_path / "wide.npy", 8 * np.load(files / "calib.npy"))
    out = run_cli("prove", "--model", ref, "--calibration", str(tmp_path / "wide.npy"), "--commitment",
                  str(com), "--input", str(files / "x.npy"), "-o", str(proof), check=False)
    assert out.returncode == 2 and "do not match" in out.stderr
    out = run_cli("commit", "--model", ref, "-o", str(tmp_path / "n.commit"), check=False)
    assert out.returncode == 2 and "pass calibration data" in out.stderr


def test_a_qspec_takes_no_calibration(files, tmp_path, run_cli):
    q = tmp_path / "m.qspec"
    run_cli("quantize", f"{files / 'mymodel.py'}:model", "--calibration", str(files / "calib.npy"), "-o", str(q))
    out = run_cli("commit", "--model", str(q), "--calibration", str(files / "calib.npy"), "-o", str(tmp_path / "c"),
                  check=False)
    assert out.returncode == 2 and "quantized already" in out.stderr


def test_a_low_agreement_warns(files, tmp_path, run_cli):
    q = tmp_path / "tied.qspec"
    out = run_cli("quantize", f"{files / 'mymodel.py'}:tied", "--calibration", str(files / "flat.npy"), "-o", str(q),
                  "--json")
    summary = json.loads(out.stdout)
    assert summary["top1"] < 0.95 and summary["warning"].startswith("warning: top-1 agreement")
    assert "warning: top-1 agreement" in out.stderr and "under 95%" in out.stderr
    assert q.is_file()  # still written: the report says how good it is, the user decides


def test_text_calibration_for_a_folder_and_its_tokenizer_is_reused(tmp_path, run_cli):
    pytest.importorskip("transformers")
    from hf_folders import CORPUS, hf_folder

    folder = tmp_path / "gpt2"
    hf_folder(folder, "gpt2")
    (tmp_path / "calib.txt").write_text("\n".join(CORPUS))
    q, com = tmp_path / "g.qspec", tmp_path / "g.commit"
    out = run_cli("quantize", str(folder), "--calibration", str(tmp_path / "calib.txt"), "--seq", "16", "-o", str(q))
    assert "top-1 agreement" in out.stdout
    _, info = load_qspec(q)
    assert info["tokenizer"] == str((folder / "tokenizer.json").resolve()) and info["calibration_shape"][1] == 16
    run_cli("commit", "--model", str(q), "-o", str(com))
    out = run_cli("prove", "--model", str(q), "--commitment", str(com), "--text", "the sea", "-o",
                  str(tmp_path / "p.bin"))
    assert "proved next token" in out.stdout
    assert run_cli("verify", str(tmp_path / "p.bin"), "--commitment", str(com), "--tokenizer", str(folder),
                   "--text", "the sea").returncode == 0


def test_errors_are_one_line_and_nothing_is_overwritten(files, tmp_path, run_cli):
    q = tmp_path / "m.qspec"
    q.write_bytes(b"keep me")
    out = run_cli("quantize", f"{files / 'mymodel.py'}:model", "--calibration", str(files / "calib.npy"), "-o", str(q),
                  check=False)
    assert out.returncode == 2 and "exists" in out.stderr and q.read_bytes() == b"keep me"
    cases = [
        ((f"{files / 'mymodel.py'}:conv", "--calibration", str(files / "calib.npy")[:-4] + ".npy"),
         "unsupported node 'conv' (Conv1d)"),
        ((f"{files / 'nothere.py'}:model",), "no file"),
        ((f"{files / 'mymodel.py'}:absent", "--calibration", str(files / "calib.npy")), "has no 'absent'"),
        (("mlp-784-56-10", "--calibration", str(tmp_path / "none.npy")), "does not exist"),
        ((f"{files / 'mymodel.py'}:model",), "pass calibration data"),
    ]
    np.save(files / "calib1d.npy", np.zeros((8, 1, 5), dtype=np.float32))
    cases[0] = ((f"{files / 'mymodel.py'}:conv", "--calibration", str(files / "calib1d.npy")),
                "unsupported node 'conv' (Conv1d)")
    for args, message in cases:
        out = run_cli("quantize", *args, "-o", str(tmp_path / "new.qspec"), check=False)
        errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
        assert out.returncode == 2 and len(errors) == 1 and message in errors[0], (args, out.stderr)
        assert "Traceback" not in out.stderr and not (tmp_path / "new.qspec").exists()
    out = run_cli("commit", "--model", str(tmp_path / "none.qspec"), "-o", str(tmp_path / "c.commit"), check=False)
    assert out.returncode == 2 and "blindproof quantize" in out.stderr


def test_qspec_file_round_trip_and_tampering(tmp_path):
    from blindproof.zk.proof.prover import quantized_workload

    qm = quantized_workload("mlp-784-56-10")
    path = save_qspec(qm, tmp_path / "m.qspec", {"source": "mlp-784-56-10"})
    back, info = load_qspec(path)
    assert back.spec.digest() == qm.spec.digest() and info == {"source": "mlp-784-56-10"}
    assert all(np.array_equal(back.weights[k], qm.weights[k]) for k in qm.weights)
    raw = path.read_bytes()
    i = raw.index(b'\\"shift\\":') + 10  # a rescale's shift inside the header's spec JSON
    i += raw[i:i + 1] == b"["  # per-row shifts: the first one
    assert raw[i:i + 1].isdigit(), raw[i - 12:i + 4]
    bad = raw[:i] + (b"7" if raw[i:i + 1] != b"7" else b"6") + raw[i + 1:]
    (tmp_path / "bad.qspec").write_bytes(bad)
    with pytest.raises(ValueError, match="does not match its recorded digest"):
        load_qspec(tmp_path / "bad.qspec")
    (tmp_path / "other.qspec").write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValueError, match="not a .qspec file"):
        load_qspec(tmp_path / "other.qspec")
