"""Running the command line in tests: ``cli`` starts the real ``python -m blindproof.cli`` in a subprocess
(this tree first on the path), ``cli_here`` calls ``blindproof.cli.main`` in this process and returns the
same fields (returncode, stdout, stderr), without the seconds a new interpreter spends importing torch."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "blindproof.cli", *args], capture_output=True, text=True,
                          timeout=400, env=env, cwd=cwd)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def cli_here(capsys, *args: str, check: bool = True, cwd: Path | None = None) -> Ran:
    """``blindproof.cli.main(args)`` in this process, its output read through ``capsys``. An exception the
    command line does not turn into an exit status propagates (a subprocess would print a traceback)."""
    from blindproof.cli import main

    capsys.readouterr()  # whatever was printed before is not this command's
    with contextlib.chdir(cwd) if cwd is not None else contextlib.nullcontext():
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse's usage errors exit with a number
            code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    ran = Ran(int(code or 0), out.out, out.err)
    if check:
        assert ran.returncode == 0, ran.stderr[-3000:]
    return ran
