"""A short raw-message fuzz run against a real `blindproof serve` (the full run: ``python tests/grpc_fuzz.py``)."""

from __future__ import annotations

import pytest

from blindproof.client import BlindClient
from grpc_fuzz import fuzz
from test_prover_daemon import _serve


@pytest.mark.timeout(180)
def test_fuzzed_messages_get_deliberate_statuses(tmp_path):
    with _serve(tmp_path, "--max-message-mb", "1", "--upload-idle-s", "2", steps=2, step_s=0.01,
                proof_bytes=200_000) as srv:
        report = fuzz(srv.target, 1500, seed=7)
        assert report["unknown_count"] == 0, report["unknown"]
        assert len(report["codes"]) >= 4 and report["codes"].get("OK", 0) > 0, report  # deep paths were reached
        with BlindClient(srv.target, timeout=10) as c:
            assert c.health() == "SERVING"
        log = srv.log()
        assert srv.alive() and "Traceback" not in log and '"event":"internal_error"' not in log, log[-3000:]
