"""Local Hugging Face folders wherever a model is accepted: the command line (commit, prove, verify in real
subprocesses once; keygen, deploy, generate, fingerprint make and the error paths through
``blindproof.cli.main`` in this process), the one-call API, and one-line errors for unusable folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

import blindproof  # noqa: E402
from blindproof.models.hf_folder import HfFolderError, load_hf_folder  # noqa: E402
from cli_runs import ROOT, cli  # noqa: E402
from hf_folders import hf_folder  # noqa: E402

pytestmark = pytest.mark.timeout(600)
TEXT = "the tide comes in twice"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("hf")
    out = {}
    for kind, shards in (("gpt2", False), ("llama", True), ("bert", False)):
        module = hf_folder(base / kind, kind, shards=shards)
        out[kind] = (base / kind, module)
    return out


def _cosine(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_folders_are_what_save_pretrained_writes(folders):
    llama = folders["llama"][0]
    assert (llama / "model.safetensors.index.json").is_file() and not (llama / "model.safetensors").exists()
    assert len(list(llama.glob("model-*-of-*.safetensors"))) >= 2
    assert (folders["gpt2"][0] / "model.safetensors").is_file()


@pytest.mark.parametrize("kind", ["gpt2", "llama", "bert"])
def test_folder_loads_the_same_function(folders, kind):
    folder, hf = folders[kind]
    ours = load_hf_folder(folder)
    ids = torch.tensor([[5, 17, 260, 99, 3, 42]])
    with torch.no_grad():
        ref = hf(ids)
        ref = ref.logits if kind != "bert" else ref.last_hidden_state.mean(1)
        np.testing.assert_allclose(ours(ids).numpy(), ref.numpy(), rtol=1e-4, atol=1e-4)


def test_commit_prove_verify_a_folder_with_text(folders, tmp_path, run_cli):
    folder, hf = folders["gpt2"]
    com, proof = tmp_path / "m.commit", tmp_path / "proof.bin"
    cli("commit", "--model", str(folder), "-o", str(com))
    out = cli("prove", "--model", str(folder), "--commitment", str(com), "--text", TEXT, "-o", str(proof), "--json")
    summary = json.loads(out.stdout)
    assert summary["provable_bits"] >= 100 and "next_token" in summary
    res = cli("verify", str(proof), "--commitment", str(com), "--tokenizer", str(folder / "tokenizer.json"),
              "--text", TEXT, "--json")
    verdict = json.loads(res.stdout)
    assert verdict["valid"] and verdict["pinned"] == ["text"] and verdict["next_token"] == summary["next_token"]
    # the proved logits are the folder's model's, up to the integer model's rounding
    from blindproof.models.hf_folder import load_tokenizer
    ids = torch.tensor([load_tokenizer(folder).encode(TEXT).ids])
    res = run_cli("verify", str(proof), "--commitment", str(com), "--save-output", str(tmp_path / "y.npy"), "--json")
    logits = np.load(tmp_path / "y.npy")
    assert logits.shape == (1, ids.shape[1], 300)
    with torch.no_grad():
        ref = hf(ids).logits.numpy()
    from blindproof.zk.proof.commitment import ModelCommitment
    from blindproof.quant.spec import decode_output
    spec = ModelCommitment.load(com).spec
    assert _cosine(decode_output(spec, "logits", logits), ref) > 0.99
    # another text pinned: invalid (exit 1)
    bad = run_cli("verify", str(proof), "--commitment", str(com), "--tokenizer", str(folder), "--text", "bread is",
                  check=False)
    assert bad.returncode == 1 and "INVALID" in bad.stdout


def test_sharded_llama_folder_end_to_end_and_a_tampered_proof(folders, tmp_path, run_cli):
    folder, _ = folders["llama"]
    com, proof = tmp_path / "m.commit", tmp_path / "proof.bin"
    run_cli("commit", "--model", str(folder), "-o", str(com), "--max-seq", "32")
    out = run_cli("prove", "--model", str(folder), "--max-seq", "32", "--commitment", str(com), "-o", str(proof))
    assert "proved next token" in out.stdout
    assert "VALID" in run_cli("verify", str(proof), "--commitment", str(com)).stdout
    data = bytearray(proof.read_bytes())
    data[len(data) // 2] ^= 0x01
    (tmp_path / "bad.bin").write_bytes(bytes(data))
    bad = run_cli("verify", str(tmp_path / "bad.bin"), "--commitment", str(com), check=False)
    assert bad.returncode == 1 and bad.stdout.startswith("INVALID")
    # a different --max-seq is a different integer model: prove refuses it against this commitment
    other = run_cli("prove", "--model", str(folder), "--commitment", str(com), "-o", str(proof), check=False)
    assert other.returncode == 2 and "do not match" in other.stderr


def test_bert_folder_through_the_command_line(folders, tmp_path, run_cli):
    folder, _ = folders["bert"]
    com, proof = tmp_path / "m.commit", tmp_path / "p.bin"
    run_cli("commit", "--model", str(folder), "-o", str(com))
    run_cli("prove", "--model", str(folder), "--commitment", str(com), "--text", TEXT, "-o", str(proof))
    res = json.loads(run_cli("verify", str(proof), "--commitment", str(com), "--tokenizer", str(folder), "--text", TEXT,
                             "--json").stdout)
    assert res["valid"] and res["outputs"] == {"pooled": [1, 32]} and "next_token" not in res


def test_bert_folder_through_the_api(folders):
    folder, hf = folders["bert"]
    c = blindproof.commit(folder)
    assert c.source.tokenizer is not None
    p = blindproof.prove(c, TEXT)
    v = blindproof.verify(p, c.commitment, inputs=np.array([c.source.tokenizer.encode(TEXT).ids]))
    assert v, v.reason
    ids = torch.tensor([c.source.tokenizer.encode(TEXT).ids])
    with torch.no_grad():
        ref = hf(ids).last_hidden_state.mean(1).numpy()
    assert _cosine(v.output, ref) > 0.99


def _break(folder: Path, tmp_path: Path, how: str) -> Path:
    bad = tmp_path / how
    shutil.copytree(folder, bad)
    if how == "no-config":
        (bad / "config.json").unlink()
    elif how == "no-weights":
        for f in bad.glob("model*.safetensors*"):
            f.unlink()
    elif how == "missing-shard":
        sorted(bad.glob("model-*-of-*.safetensors"))[1].unlink()
    elif how == "truncated":
        shard = sorted(bad.glob("model-*-of-*.safetensors"))[0]
        shard.write_bytes(shard.read_bytes()[:100])
    elif how == "wrong-shapes":
        cfg = json.loads((bad / "config.json").read_text())
        cfg["hidden_size"] = 48
        (bad / "config.json").write_text(json.dumps(cfg))
    elif how == "unknown-class":
        cfg = json.loads((bad / "config.json").read_text())
        cfg["architectures"] = ["FancyNetForCausalLM"]
        (bad / "config.json").write_text(json.dumps(cfg))
    return bad


@pytest.mark.parametrize("how, message", [
    ("no-config", "no config.json"),
    ("no-weights", "no weights: neither model.safetensors nor model.safetensors.index.json"),
    ("missing-shard", "names 1 missing shard file(s): model-00002-of-"),
    ("unknown-class", "unsupported architecture 'FancyNetForCausalLM'"),
    ("truncated", "not a readable safetensors file"),
    ("wrong-shapes", "weight shapes differ from those config.json gives"),
])
def test_unusable_folders_give_one_line(folders, tmp_path, how, message, run_cli):
    bad = _break(folders["llama"][0], tmp_path, how)
    out = run_cli("commit", "--model", str(bad), "-o", str(tmp_path / "x.commit"), check=False)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert out.returncode == 2 and len(errors) == 1 and message in errors[0], out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "x.commit").exists() and not (tmp_path / "x.commit.key").exists()  # nothing written
    with pytest.raises(HfFolderError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_hf_folder(bad)


def test_unsupported_architecture_is_named(tmp_path, run_cli):
    import transformers as T

    T.utils.logging.set_verbosity_error()
    T.T5ForConditionalGeneration(T.T5Config(vocab_size=64, d_model=16, d_kv=4, d_ff=32, num_layers=1,
                                            num_heads=2)).save_pretrained(str(tmp_path / "t5"))
    out = run_cli("prove", "--model", str(tmp_path / "t5"), "--commitment", str(tmp_path / "x.commit"), check=False)
    assert out.returncode == 2  # no key yet: the key check comes first
    out = run_cli("commit", "--model", str(tmp_path / "t5"), "-o", str(tmp_path / "x.commit"), check=False)
    assert out.returncode == 2 and "error: unsupported architecture 'T5ForConditionalGeneration'" in out.stderr
    assert "Traceback" not in out.stderr


def test_weights_option_is_for_workloads_only(folders, tmp_path, run_cli):
    out = run_cli("commit", "--model", str(folders["gpt2"][0]), "--weights", str(tmp_path / "w.safetensors"), "-o",
                  str(tmp_path / "x.commit"), check=False)
    assert out.returncode == 2 and "--weights applies to workloads only" in out.stderr
    assert not (tmp_path / "x.commit").exists()


def test_builtin_names_still_work_and_unknown_names_say_so(tmp_path, run_cli):
    out = run_cli("commit", "--model", "no-such-model", "-o", str(tmp_path / "x.commit"), check=False)
    assert out.returncode == 2 and "unknown model 'no-such-model'" in out.stderr and "tiny-llama" in out.stderr
    run_cli("commit", "--model", "mlp-784-56-10", "-o", str(tmp_path / "m.commit"))


def test_deploy_and_generate_a_folder(folders, tmp_path, run_cli):
    from blindproof.server.process import ServerProcess
    from blindproof.models.hf_folder import load_tokenizer

    folder, _ = folders["llama"]
    key, record = tmp_path / "k.key", tmp_path / "dep.json"
    run_cli("keygen", "--out", str(key))
    with ServerProcess() as srv:
        run_cli("deploy", "--server", srv.target, "--model", str(folder), "--key", str(key), "--tier", "permute",
                "--record", str(record), cwd=tmp_path)
        out = run_cli("generate", "--record", str(record), "--prompt", TEXT, "--tokens", "6", "--json", cwd=ROOT)
        inf = json.loads(run_cli("infer", "--record", str(record), "--text", TEXT, "--json", cwd=ROOT).stdout)
    got = json.loads(out.stdout)
    tok = load_tokenizer(folder)
    ids = torch.tensor([tok.encode(TEXT).ids])
    assert inf["output_shape"] == [1, ids.shape[1], 300]
    with torch.no_grad():
        best = int(load_hf_folder(folder)(ids)[0, -1].argmax())
    assert inf["next_tokens"][0]["id"] == best and inf["next_tokens"][0]["text"] == tok.decode([best])
    ref = load_hf_folder(folder).generate(ids, 6)
    assert got["tokens"] == ref[0].tolist()
    assert got["text"] == tok.decode(ref[0].tolist(), skip_special_tokens=False)


def test_fingerprint_make_takes_a_folder(folders, tmp_path, run_cli):
    folder, _ = folders["gpt2"]
    out = run_cli("fingerprint", "make", "--model", str(folder), "-o", str(tmp_path / "fp.json"), check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "fp.json").is_file()


def test_deploy_integer_calibrated_on_text_then_a_proved_inference(folders, tmp_path, run_cli):
    from blindproof.server.process import ServerProcess
    from hf_folders import CORPUS

    folder, _ = folders["llama"]
    (tmp_path / "texts.txt").write_text("\n".join(CORPUS))
    run_cli("keygen", "--out", str(tmp_path / "k.key"))
    bad = run_cli("deploy", "--server", "localhost:1", "--model", str(folder), "--key", str(tmp_path / "k.key"),
                  "--calibration", str(tmp_path / "texts.txt"), "--record", str(tmp_path / "x.json"), check=False)
    assert bad.returncode == 2 and "applies to --integer" in bad.stderr and not (tmp_path / "x.json").exists()
    with ServerProcess(store=tmp_path / "store") as srv:
        run_cli("deploy", "--server", srv.target, "--model", str(folder), "--key", "k.key", "--integer",
                "--calibration", "texts.txt", cwd=tmp_path)
        record = json.loads((tmp_path / "deployment.json").read_text())
        calib = np.load(record["calibration_file"])
        assert calib.ndim == 2 and calib.shape[1] == 32 and calib.max() < 300
        # attaches: same calibration, same digest
        inf = run_cli("infer", "--text", TEXT, "--prove", "--json", cwd=tmp_path)
    proof = json.loads(inf.stdout)["proof"]
    assert proof["verified"] is True
    assert run_cli("verify", "proof.bin", "--commitment", "model.commit", cwd=tmp_path).returncode == 0


def test_a_folder_calibrated_on_texts_through_the_api(folders):
    from hf_folders import CORPUS

    folder, _ = folders["gpt2"]
    default = blindproof.commit(folder)
    on_text = blindproof.commit(folder, CORPUS)
    assert on_text.quantized.spec.digest() != default.quantized.spec.digest()  # the scales come from the texts
    p = blindproof.prove(on_text, TEXT)
    assert blindproof.verify(p, on_text.commitment)
    with pytest.raises(blindproof.ModelSourceError, match="fewer than one row"):
        blindproof.commit(folder, ["the"])
