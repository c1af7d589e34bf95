"""The package map holds: no import circles in blindproof/, and the client/fingerprint seam.

The import graph is read from the source (``ast``), with every import counted wherever it stands:
module level, inside a function (a lazy import that hides a circle is still a circle) and under
``if TYPE_CHECKING:``. An edge goes to the module a statement names, or to the submodule
``from pkg import sub`` names. docs/architecture.md draws the map.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = "blindproof"

# The seam between the client SDK and the fingerprint package. Fingerprints are computed on answers:
# the fingerprint package never imports the client (nor the server or the wire stubs); whoever talks
# to a server hands it a client object or a callable. The client reads fingerprints only through the
# verifier's side of them (the fingerprints it checks and the probes it sends), never through the
# modules that model a server: its substitutes, adversaries and precision classes.
FINGERPRINT_NEVER_IMPORTS = ("blindproof.client", "blindproof.server", "blindproof.proto")
FINGERPRINT_SERVER_FACING = ("blindproof.fingerprint.adversaries", "blindproof.fingerprint.substitutes",
                             "blindproof.fingerprint.precision", "blindproof.fingerprint.distinguish")


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted((ROOT / PKG).rglob("*.py")):
        if "__pycache__" in p.parts:
            continue
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = p
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> modules of blindproof it imports (anywhere in its source)."""
    mods = _modules()

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        out: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[:len(base) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in mods else module for a in node.names]
            else:
                continue
            for t in targets:
                if t == PKG or t.startswith(PKG + "."):
                    o = owner(t)
                    if o and o != mod:
                        out.add(o)
        graph[mod] = out
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module, each as one circle through it."""
    return [_circle(graph, c) for c in circle_components(graph)]


def circle_components(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module."""
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:  # Tarjan, iterative enough for this graph's depth
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [set(c) for c in comps]


def _circle(graph: dict[str, set[str]], comp: set[str]) -> list[str]:
    """A shortest circle through the component's first module (breadth-first inside it)."""
    start = min(comp)
    prev, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & comp):
                if w == start:
                    path = [v]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    return list(reversed(path)) + [start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return sorted(comp)


KNOWN: list[set[str]] = []  # circles allowed for now: none


def test_no_import_circles():
    graph = import_graph()
    cycles = [_circle(graph, c) for c in circle_components(graph) if c not in KNOWN]
    assert not cycles, "import circles (lazy and TYPE_CHECKING imports count):\n" + "\n".join(
        "  " + " -> ".join(c) for c in cycles)


def test_finds_a_circle():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(g) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def _imports_of(graph, prefix: str) -> dict[str, set[str]]:
    return {m: deps for m, deps in graph.items() if m == prefix or m.startswith(prefix + ".")}


def test_fingerprint_never_imports_client_or_server():
    bad = [f"{m} -> {d}" for m, deps in _imports_of(import_graph(), "blindproof.fingerprint").items()
           for d in sorted(deps) if d.startswith(FINGERPRINT_NEVER_IMPORTS)]
    assert not bad, "the fingerprint package reaches across the seam:\n  " + "\n  ".join(bad)


def test_client_never_imports_fingerprint_server_models():
    bad = [f"{m} -> {d}" for m, deps in _imports_of(import_graph(), "blindproof.client").items()
           for d in sorted(deps) if d.startswith(FINGERPRINT_SERVER_FACING)]
    assert not bad, "the client imports fingerprint modules that model a server:\n  " + "\n  ".join(bad)


def test_prover_never_imports_verifier():
    g = import_graph()
    assert "blindproof.zk.proof.verifier" not in g["blindproof.zk.proof.prover"]
    assert "blindproof.zk.proof.statement" in g["blindproof.zk.proof.prover"]


def test_zk_never_imports_ee():
    bad = [f"{m} -> {d}" for m, deps in _imports_of(import_graph(), "blindproof.zk").items()
           for d in sorted(deps) if d.startswith("blindproof.ee")]
    assert not bad, "\n".join(bad)
