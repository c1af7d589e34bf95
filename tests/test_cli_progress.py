"""Progress of long commands: a bar with ETA on a terminal, lines in a log, JSON events with --json."""

from __future__ import annotations

import io
import json
import subprocess
import sys

from blindproof.commands.progress import Reporter


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_gets_a_bar_with_eta():
    out = _Terminal()
    rep = Reporter(stream=out)
    rep("starting")
    for i in range(1, 5):
        rep.step("op proofs", i, 4, f"op {i}")
    text = out.getvalue()
    assert "starting" in text and "\r" in text and "ETA" in text and "[" + "#" * 28 + "]" in text
    assert text.endswith("\n")  # a finished bar ends its line


def test_log_gets_lines_and_json_gets_events():
    log = io.StringIO()
    rep = Reporter(stream=log)
    rep.step("op proofs", 1, 3)
    rep.step("op proofs", 3, 3)
    assert "\r" not in log.getvalue() and "op proofs: 3/3" in log.getvalue()
    ev = io.StringIO()
    rep = Reporter(json_events=True, stream=ev)
    rep("hello")
    rep.step("op proofs", 1, 2, "x")
    events = [json.loads(line) for line in ev.getvalue().splitlines()]
    assert events[0]["event"] == "message" and events[1] == {**events[1], "event": "progress", "done": 1, "total": 2}


def test_prove_json_streams_events_and_one_summary(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "blindproof.cli", *a], cwd=tmp_path,  # noqa: E731
                                    capture_output=True, text=True, timeout=240)
    c = run("commit", "--model", "mlp-784-56-10", "--json")
    assert c.returncode == 0 and json.loads(c.stdout)["digest"]
    assert all(json.loads(line)["event"] for line in c.stderr.splitlines())
    p = run("prove", "--model", "mlp-784-56-10", "--json")
    assert p.returncode == 0, p.stderr[-2000:]
    summary = json.loads(p.stdout)
    events = [json.loads(line) for line in p.stderr.splitlines()]
    assert summary["proof_bytes"] > 0
    steps = [e for e in events if e["event"] == "progress"]
    assert steps and steps[-1]["done"] == steps[-1]["total"] and any(e["event"] == "message" for e in events)
