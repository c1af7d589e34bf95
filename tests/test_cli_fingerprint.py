"""`blindproof fingerprint make | deploy | check` against real servers: traffic-shaped probe sessions over
gRPC, an honest server, another model, a routing server (a separate process), legacy probes only on
request, and bad input."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

from blindproof.server.process import ServerProcess

pytestmark = pytest.mark.timeout(240)
ROUTER = [sys.executable, str(Path(__file__).with_name("fp_routing_server.py"))]


def _main(capsys, *args: str) -> tuple[int, str, str]:
    from blindproof.cli import main
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _quiet(*args: str) -> int:
    from blindproof.cli import main
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return main(list(args))


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A key and a traffic fingerprint of tiny-llama (140 sessions, 200 calibration sessions), made once;
    tests work on copies, since checks record the probes they send."""
    d = tmp_path_factory.mktemp("fp")
    key, fp = d / "k.key", d / "fp.json"
    assert _quiet("keygen", "--out", str(key)) == 0
    assert _quiet("fingerprint", "make", "--model", "tiny-llama", "--key", str(key), "--sessions", "140",
                  "--probes", "200", "-o", str(fp)) == 0
    return key, fp


def _copy(made, tmp_path) -> Path:
    dst = tmp_path / "fp.json"
    shutil.copy(made[1], dst)
    os.chmod(dst, 0o600)
    return dst


def _used(path: Path) -> set[int]:
    return set(json.loads(path.read_text())["used"])


def test_make_from_a_corpus_and_shapes(tmp_path, capsys):
    from blindproof.models.default import corpus_text
    corpus, shapes, fp = tmp_path / "requests.txt", tmp_path / "shapes.json", tmp_path / "fp.json"
    corpus.write_text(corpus_text("heldout"))
    shapes.write_text(json.dumps([[10, 3], {"prompt_len": 20, "n_new": 5}]))
    code, out, err = _main(capsys, "fingerprint", "make", "--model", "tiny-llama", "--corpus", str(corpus),
                           "--shapes", str(shapes), "--sessions", "30", "--probes", "50", "--device-class", "fp32",
                           "--device-class", "fp16", "-o", str(fp), "--json")
    made = json.loads(out)
    assert code == 0 and stat.S_IMODE(os.stat(fp).st_mode) == 0o600 and "note:" not in err
    assert made["probes"] == "traffic" and made["sessions"] == 30 and made["corpus"] == str(corpus)
    assert made["device_classes"] == ["fp32", "fp16"]
    assert set(made["calibration"]) == {"fp32/logits", "fp32/labels", "fp16/logits", "fp16/labels"}
    assert made["prompt_tokens"][1] <= 20 and set(range(made["decoded_tokens"][0], made["decoded_tokens"][1] + 1)) \
        <= {3, 4, 5}
    saved = json.loads(fp.read_text())
    assert saved["used"] == [] and saved["model"] == "tiny-llama" and len(saved["prompts"]) == 30
    text = corpus.read_text().encode()
    assert all(bytes(p) in text for p in saved["prompts"])  # cut from the corpus, byte for byte
    assert len({tuple(p) for p in saved["prompts"]}) == 30  # no prompt repeats another
    code, _, err = _main(capsys, "fingerprint", "make", "--model", "tiny-llama", "-o", str(fp))
    assert code == 2 and "exists" in err and "--force" in err  # never overwrites a pool's record silently


def test_honest_server_matches_and_another_model_does_not(made, tmp_path, capsys):
    key, fp = made[0], _copy(made, tmp_path)
    with ServerProcess() as srv:
        record = tmp_path / "dep.json"
        code, out, _ = _main(capsys, "fingerprint", "deploy", "--server", srv.target, "--model", "tiny-llama",
                             "--key", str(key), "--record", str(record), "--json")
        dep = json.loads(out)
        assert code == 0 and dep["expansion"] == 16

        code, out, err = _main(capsys, "fingerprint", "check", "--record", str(record), "--fingerprint", str(fp),
                               "--json")
        v = json.loads(out)
        assert code == 0 and v["decision"] == "match" and v["failures"] == 0 and v["probes_kind"] == "traffic", err
        assert v["test"] == "sequential" and 0 < v["probes"] <= v["probe_budget"]
        assert "given an honest failure rate <= p0" in v["conditions"] and v["false_positive_unconditional"] >= 1e-3
        first = _used(fp)
        assert len(first) == v["probes"] and v["pool_remaining"] == 140 - v["probes"]
        assert stat.S_IMODE(os.stat(fp).st_mode) == 0o600

        code, out, _ = _main(capsys, "fingerprint", "check", "--server", srv.target, "--deployment",
                             dep["deployment_id"], "--key", str(key), "--fingerprint", str(fp), "--mode", "labels")
        assert code == 0 and out.startswith("MATCH")
        assert len(_used(fp)) > len(first) and first <= _used(fp)  # fresh probes, the record kept

        # ordinary commands keep working on the expanded deployment (noise on every request)
        code, out, _ = _main(capsys, "generate", "--record", str(record), "--prompt", "hello", "--tokens", "8", "--json")
        from blindproof.models import tokenizer
        from blindproof.models.workloads import get_workload
        ref = get_workload("tiny-llama").build(0).generate(tokenizer.encode("hello"), 8)
        assert code == 0 and json.loads(out)["tokens"] == ref[0].tolist()

        # another model behind the same key (same expansion, other blocks)
        code, out, _ = _main(capsys, "fingerprint", "deploy", "--server", srv.target, "--model", "tiny-llama",
                             "--seed", "1", "--key", str(key), "--record", str(tmp_path / "other.json"), "--json")
        other = json.loads(out)["deployment_id"]
        before = len(_used(fp))
        code, out, err = _main(capsys, "fingerprint", "check", "--server", srv.target, "--deployment", other,
                               "--key", str(key), "--fingerprint", str(fp), "--json")
        v = json.loads(out)
        assert code == 1 and v["decision"] == "mismatch" and "mismatch" in err
        assert v["failures"] == v["probes"] <= 11  # every probe fails: rejected after 11 (p0 0.034, p1 0.5)
        assert len(_used(fp)) == before + v["probes"]

        # a record of another client model than the fingerprint's: refused before anything is sent
        code, _, err = _main(capsys, "fingerprint", "check", "--record", str(tmp_path / "other.json"),
                             "--fingerprint", str(fp))
        assert code == 2 and "seed 1" in err and len(_used(fp)) == before + v["probes"]


def test_routing_server_is_caught_where_legacy_probes_match(made, tmp_path, capsys):
    """A separate server process answers multi-row requests with the genuine model and half of the
    sessions with an int8 copy: the legacy fixed-batch check says match, the traffic check mismatch."""
    key, fp = made[0], _copy(made, tmp_path)
    log = tmp_path / "routing.log"
    legacy = tmp_path / "legacy.json"
    code, _, err = _main(capsys, "fingerprint", "make", "--model", "tiny-llama", "--key", str(key), "--legacy-probes",
                         "--references", "24", "--probes", "300", "-o", str(legacy))
    assert code == 0 and "warning: --legacy-probes" in err and stat.S_IMODE(os.stat(legacy).st_mode) == 0o600
    with ServerProcess(program=ROUTER, env={"ROUTING_LOG": str(log), "ROUTING_SEED": "1"}) as srv:
        record = tmp_path / "dep.json"
        assert _main(capsys, "fingerprint", "deploy", "--server", srv.target, "--model", "tiny-llama",
                     "--key", str(key), "--record", str(record))[0] == 0

        code, out, err = _main(capsys, "fingerprint", "check", "--record", str(record), "--fingerprint", str(legacy),
                               "--legacy-probes", "--json")
        v = json.loads(out)
        assert code == 0 and v["decision"] == "match" and v["failures"] == 0 and "warning" in err
        legacy_lines = log.read_text().splitlines()
        assert legacy_lines and all(ln.endswith("genuine") and int(ln.split()[1]) > 1 for ln in legacy_lines)

        # the users of this server: half of their sessions go to the copy
        for prompt in ("The tide", "A small boat", "Rain fell", "She said", "Over the hill", "Bread and"):
            assert _main(capsys, "generate", "--record", str(record), "--prompt", prompt, "--tokens", "4")[0] == 0

        code, out, err = _main(capsys, "fingerprint", "check", "--record", str(record), "--fingerprint", str(fp),
                               "--json")
        v = json.loads(out)
        assert code == 1 and v["decision"] == "mismatch", (v, err)
        assert 0 < v["failures"] < v["probes"] <= v["probe_budget"] and v["probes"] <= 60
    sessions = [ln.split()[2] for ln in log.read_text().splitlines() if ln.startswith("session")]
    assert len(sessions) >= 6 + v["probes"] and 0.25 <= sessions.count("copy") / len(sessions) <= 0.75


def test_bad_input_is_refused_with_clear_errors(made, tmp_path, capsys):
    key, fp = made[0], _copy(made, tmp_path)
    out_fp = str(tmp_path / "x.json")
    code, _, err = _main(capsys, "fingerprint", "make", "--model", "no-such-model", "-o", out_fp)
    assert code == 2 and "unknown model 'no-such-model'" in err
    code, _, err = _main(capsys, "fingerprint", "make", "--model", "mlp-784-56-10", "-o", out_fp)
    assert code == 2 and "not a transformer" in err
    code, _, err = _main(capsys, "fingerprint", "make", "--model", "tiny-llama", "--corpus",
                         str(tmp_path / "missing.txt"), "-o", out_fp)
    assert code == 2 and "cannot read corpus" in err and "Traceback" not in err
    (tmp_path / "bad.json").write_text('{"shapes": 3}')
    code, _, err = _main(capsys, "fingerprint", "make", "--model", "tiny-llama", "--shapes",
                         str(tmp_path / "bad.json"), "-o", out_fp)
    assert code == 2 and "session shapes" in err
    code, _, err = _main(capsys, "fingerprint", "make", "--model", "tiny-llama", "--references", "8", "-o", out_fp)
    assert code == 2 and "--legacy-probes" in err
    with pytest.raises(SystemExit) as exc:  # argparse's usage error
        _main(capsys, "fingerprint", "make", "--model", "tiny-llama", "--device-class", "int4", "-o", out_fp)
    assert exc.value.code == 2 and "invalid choice: 'int4'" in capsys.readouterr().err
    assert not Path(out_fp).exists()

    record = tmp_path / "dep.json"
    record.write_text(json.dumps({"format": "blindproof-deployment/1"}))
    code, _, err = _main(capsys, "fingerprint", "check", "--record", str(record), "--fingerprint",
                         str(tmp_path / "missing.json"))
    assert code == 2 and "cannot read fingerprint" in err and "Traceback" not in err
    code, _, err = _main(capsys, "fingerprint", "check", "--record", str(record), "--fingerprint", str(record))
    assert code == 2 and "not a fingerprint file" in err
    code, _, err = _main(capsys, "fingerprint", "check", "--record", str(record), "--fingerprint", str(fp),
                         "--device-class", "bf16")
    assert code == 2 and "no logits calibration for device class bf16" in err and "--device-class bf16" in err
    code, _, err = _main(capsys, "fingerprint", "check", "--server", "127.0.0.1:1", "--deployment", "ab" * 32,
                         "--fingerprint", str(fp))
    assert code == 2 and "--key" in err

    # a legacy fingerprint needs --legacy-probes, and traffic ones refuse it
    legacy = tmp_path / "legacy.json"
    assert _quiet("fingerprint", "make", "--model", "tiny-llama", "--legacy-probes", "--references", "4",
                  "--probes", "20", "-o", str(legacy)) == 0
    code, _, err = _main(capsys, "fingerprint", "check", "--record", str(record), "--fingerprint", str(legacy))
    assert code == 2 and "legacy fixed-batch fingerprint" in err and "--legacy-probes" in err
    code, _, err = _main(capsys, "fingerprint", "check", "--record", str(record), "--fingerprint", str(fp),
                         "--legacy-probes")
    assert code == 2 and "is a traffic fingerprint" in err

    # a dead server: exit 3, and no probe is marked as sent
    code, _, err = _main(capsys, "fingerprint", "check", "--server", "127.0.0.1:1", "--deployment", "ab" * 32,
                         "--key", str(key), "--fingerprint", str(fp), "--timeout", "5")
    assert code == 3 and "UNAVAILABLE" in err and "Traceback" not in err and _used(fp) == set()

    # a spent pool: refused before connecting
    from blindproof.fingerprint.traffic import TrafficFingerprint
    pool = TrafficFingerprint.load(fp)
    pool.used = set(range(len(pool.prompts)))
    pool.save(fp)
    code, _, err = _main(capsys, "fingerprint", "check", "--server", "127.0.0.1:1", "--deployment", "ab" * 32,
                         "--key", str(key), "--fingerprint", str(fp))
    assert code == 2 and "has been sent" in err
    code, _, err = _main(capsys, "fingerprint", "check", "--server", "127.0.0.1:1", "--deployment", "ab" * 32,
                         "--key", str(key), "--fingerprint", str(fp), "--fixed-size")
    assert code == 2 and "unused probe sessions" in err
