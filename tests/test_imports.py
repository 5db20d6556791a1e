"""jaxcim's modules form layers: no import cycles, no module reaching into another's ``_private`` names.

Read from the source (every ``import`` statement, at module level or inside functions), so the check costs no
interpreter start; `test_the_command_line_imports_first` starts one.
"""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "jaxcim"

KNOWN_CYCLES: list[set[str]] = []
"""Cycles that exist and are to be removed: the test fails if any other appears, or if one of these grows."""
KNOWN_PRIVATE: set[tuple[str, str]] = set()
"""(module, name) of private names still imported across modules, to be removed."""


def modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the jaxcim modules it imports (``from pkg import sub`` counts as importing ``pkg.sub``)."""
    mods = modules()
    graph = {}
    for name, p in mods.items():
        pkg = name if p.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in mods}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                for a in node.names:
                    if f"{base}.{a.name}" in mods:
                        deps.add(f"{base}.{a.name}")
                    elif base in mods:
                        deps.add(base)
        deps.discard(name)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    graph = import_graph()
    assert {"jaxcim.studies.mvm", "jaxcim.cli", "jaxcim.presets"} <= set(graph)
    found = cycles(graph)
    unknown = [sorted(c) for c in found if not any(c <= known for known in KNOWN_CYCLES)]
    assert not unknown, f"import cycles: {unknown}"
    assert "jaxcim.config" not in graph["jaxcim.presets"] or "jaxcim.presets" not in graph["jaxcim.config"]
    assert not any({"jaxcim.study", "jaxcim.nn.study"} & c for c in found)


def private_imports() -> set[tuple[str, str]]:
    """(module file, name) of every ``_private`` name a module takes from another jaxcim module."""
    found = set()
    for p in PACKAGE.rglob("*.py"):
        rel, aliases = str(p.relative_to(ROOT)), set()
        tree = ast.parse(p.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jaxcim"):
                for a in node.names:
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        found.add((rel, a.name))
                    aliases.add(a.asname or a.name)
            elif isinstance(node, ast.Import):
                aliases |= {a.asname or a.name.split(".")[0] for a in node.names if a.name.startswith("jaxcim")}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name) and node.value.id in aliases):
                found.add((rel, node.attr))
    return found


def test_no_module_imports_private_names_of_another():
    found = private_imports()
    assert found <= KNOWN_PRIVATE, sorted(found - KNOWN_PRIVATE)


def test_the_command_line_imports_first():
    """``python -m jaxcim.cli`` imports first in a fresh interpreter (every other module then loads through
    the package), and the back-compatible study modules after it."""
    code = "import jaxcim.cli, jaxcim.study, jaxcim.nn.study, jaxcim.studies.sweep; print(jaxcim.__version__)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0 and proc.stdout.strip(), proc.stderr[-2000:]
