"""Mutation testing of the verifiers: delete any single rejection and some test must fail.

Each mutant is a copy of the package in which ONE ``return <reject>`` / ``raise <Reject>`` statement of
a verifier function is replaced by ``pass`` (the check still runs, it just never rejects). The tests
that cover that function then run against the copy; the mutant must make at least one of them fail.
A surviving mutant names a check no test can see fail — a check that may be deleted by accident.

Slow (every mutant runs a test subset in a child process): ``python -m pytest -m long
tests/test_zk_verifier_mutations.py``.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# (module file, functions whose rejections are mutated, the tests that must notice)
TARGETS = [
    ("blindproof/zk/iop/lookup.py", ("_verify", "_leaf_checks"),
     ("tests/test_zk_lookup.py", "tests/test_zk_lookup_masks.py", "tests/test_zk_verifier_checks.py")),
    ("blindproof/zk/proof/wellformed.py", ("_verify", "_check_aux_layout", "_without_indicators"),
     ("tests/test_zk_wellformed.py", "tests/test_zk_checks_wellformed.py")),
    ("blindproof/zk/iop/claims.py", ("fold_public",),
     ("tests/test_zk_wellformed.py", "tests/test_zk_verifier_checks.py")),
    ("blindproof/zk/proof/statement.py", ("split_claims", "_public_value"),
     ("tests/test_zk_verifier_checks.py", "tests/test_zk_statement_pinning.py")),
]

_REJECTS = ("reject", "Reject", "_reject")


_CLAIMS = ("add_claim", "add_linear")  # a claim left unsettled is a check deleted too


def _call_name(value) -> str:
    if not isinstance(value, ast.Call):
        return ""
    f = value.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def _is_check(node: ast.stmt) -> bool:
    """A rejection (``return reject(...)``, ``raise Reject(...)``, a returned reason string) or a
    claim handed to the settler."""
    if isinstance(node, ast.Return):
        v = node.value
        return _call_name(v) in _REJECTS or isinstance(v, ast.JoinedStr) or (
            isinstance(v, ast.Constant) and isinstance(v.value, str))
    if isinstance(node, ast.Raise):
        return _call_name(node.exc) in _REJECTS
    return isinstance(node, ast.Expr) and _call_name(node.value) in _CLAIMS


def rejections(path: Path, functions) -> list[tuple[int, int]]:
    """(first, last) line of every check statement inside the named functions."""
    tree = ast.parse(path.read_text())
    out = []
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef) and fn.name in functions:
            for node in ast.walk(fn):
                if isinstance(node, (ast.Return, ast.Raise, ast.Expr)) and _is_check(node):
                    out.append((node.lineno, node.end_lineno))
    return sorted(set(out))


def _mutant(tmp: Path, rel: str, span: tuple[int, int]) -> Path:
    """A copy of the package with the statement at ``span`` of ``rel`` replaced by ``pass``."""
    dst = tmp / "pkg"
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(ROOT / "blindproof", dst / "blindproof", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tests", dst / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    lines = (ROOT / rel).read_text().splitlines(keepends=True)
    first, last = span
    indent = lines[first - 1][: len(lines[first - 1]) - len(lines[first - 1].lstrip())]
    lines[first - 1:last] = [f"{indent}pass  # mutant\n"]
    (dst / rel).write_text("".join(lines))
    return dst


def _cases():
    for rel, functions, tests in TARGETS:
        for span in rejections(ROOT / rel, functions):
            yield pytest.param(rel, span, tests, id=f"{Path(rel).stem}:{span[0]}")


@pytest.mark.long
@pytest.mark.parametrize("rel, span, tests", list(_cases()))
def test_deleting_one_rejection_fails_some_test(rel, span, tests, tmp_path):
    pkg = _mutant(tmp_path, rel, span)
    env = dict(os.environ, PYTHONPATH=str(pkg), NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    # run inside the copy: ``python -m pytest`` puts its working directory first on the path
    run = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m",
                          "not gpu and not long", *tests], cwd=pkg, env=env, capture_output=True, text=True,
                         timeout=1800)
    assert "mutant" in (pkg / rel).read_text()
    assert run.returncode != 0, f"{rel}:{span[0]}: deleting this rejection fails no test\n{run.stdout[-2000:]}"


def test_the_copy_is_what_runs(tmp_path):
    """A child run inside the copy imports the copy, not this checkout (else every mutant survives)."""
    pkg = _mutant(tmp_path, TARGETS[0][0], rejections(ROOT / TARGETS[0][0], TARGETS[0][1])[0])
    out = subprocess.run([sys.executable, "-c", "import blindproof; print(blindproof.__file__)"], cwd=pkg,
                         env=dict(os.environ, PYTHONPATH=str(pkg)), capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().startswith(str(pkg)), out.stdout


def test_every_target_has_rejections():
    """The harness finds the checks it mutates (a rename must not silently empty it)."""
    for rel, functions, _ in TARGETS:
        assert rejections(ROOT / rel, functions), rel
