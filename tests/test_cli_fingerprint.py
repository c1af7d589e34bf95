"""`blindproof fingerprint make | deploy | check` against a real server, and the demo's identity check."""

from __future__ import annotations

import json
import os
import stat

import pytest

from blindproof.server.process import ServerProcess

pytestmark = pytest.mark.timeout(240)


def _main(capsys, *args: str) -> tuple[int, str, str]:
    from blindproof.cli import main
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_make_deploy_check(tmp_path, capsys):
    key, fp = tmp_path / "k.key", tmp_path / "fp.json"
    assert _main(capsys, "keygen", "--out", str(key))[0] == 0
    code, out, _ = _main(capsys, "fingerprint", "make", "--model", "tiny-llama", "--key", str(key), "--references", "24",
                         "--probes", "300", "-o", str(fp), "--json")
    made = json.loads(out)
    assert code == 0 and stat.S_IMODE(os.stat(fp).st_mode) == 0o600
    assert made["references"] == 24 and made["extra"] == 16 and set(made["calibration"]) == {"logits", "labels"}
    with ServerProcess() as srv:
        record = tmp_path / "dep.json"
        code, out, _ = _main(capsys, "fingerprint", "deploy", "--server", srv.target, "--model", "tiny-llama",
                             "--key", str(key), "--record", str(record), "--json")
        dep = json.loads(out)
        assert code == 0 and dep["expansion"] == 16

        code, out, _ = _main(capsys, "fingerprint", "check", "--record", str(record), "--fingerprint", str(fp),
                             "--json")
        verdict = json.loads(out)
        assert code == 0 and verdict["decision"] == "match" and verdict["failures"] == 0
        code, out, _ = _main(capsys, "fingerprint", "check", "--server", srv.target, "--deployment",
                             dep["deployment_id"], "--key", str(key), "--fingerprint", str(fp), "--mode", "labels")
        assert code == 0 and out.startswith("MATCH")

        # ordinary commands keep working on the expanded deployment (noise on every request)
        code, out, _ = _main(capsys, "generate", "--record", str(record), "--prompt", "hello", "--tokens", "8", "--json")
        from blindproof.models import tokenizer
        from blindproof.models.workloads import get_workload
        ref = get_workload("tiny-llama").build(0).generate(tokenizer.encode("hello"), 8)
        assert code == 0 and json.loads(out)["tokens"] == ref[0].tolist()

        # another model behind the same key (same expansion, other blocks): the server answers for it
        code, out, _ = _main(capsys, "fingerprint", "deploy", "--server", srv.target, "--model", "tiny-llama",
                             "--seed", "1", "--key", str(key), "--record", str(tmp_path / "other.json"), "--json")
        other = json.loads(out)["deployment_id"]
        code, out, err = _main(capsys, "fingerprint", "check", "--server", srv.target, "--deployment", other,
                               "--key", str(key), "--fingerprint", str(fp), "--json")
        assert code == 1 and json.loads(out)["decision"] == "mismatch" and "mismatch" in err  # a check said no

        code, _, err = _main(capsys, "fingerprint", "check", "--server", srv.target, "--deployment", other,
                             "--fingerprint", str(fp))
        assert code == 2 and "--key" in err  # usage error
        code, _, err = _main(capsys, "fingerprint", "check", "--deployment", str(record), "--fingerprint",
                             str(tmp_path / "missing.json"))
        assert code == 2 and "cannot read fingerprint" in err and "Traceback" not in err


def test_make_rejects_a_non_transformer(tmp_path, capsys):
    code, _, err = _main(capsys, "fingerprint", "make", "--model", "mlp-784-56-10", "-o", str(tmp_path / "x.json"))
    assert code == 2 and "not a transformer" in err


@pytest.mark.slow  # the demo also proves an inference; tests/test_cli_demo.py runs it as well
def test_demo_reports_identity_check(capsys):
    code, out, _ = _main(capsys, "demo", "--json", "--tokens", "8")
    summary = json.loads(out)
    assert code == 0 and summary["identity_check"] == "match" and summary["blind_equals_plaintext"] is True
