"""The package's layers (ARCHITECTURE.md): imports point down only, no cycles, one executor.

Read from the source with ``ast`` (every import, including those inside functions), so the
contract holds for lazy imports too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "speakergmm"

# Layer of each top-level module or subpackage, highest first. Modules of one layer may
# import each other (without cycles); ``eval`` and ``backend`` share a layer but are
# independent of each other.
LAYERS = {
    "cli": 6, "serve": 6,
    "recognizer": 5, "diarization": 5, "store": 5, "batch": 5, "pretrained": 5,
    "corpora": 5, "system": 5,
    "sources": 4.5,
    "eval": 4, "backend": 4,
    "gmm": 3,
    "frontend": 2,
    "data": 1,
    "exec": 0, "errors": 0, "_io": 0, "_version": 0, "constants": 0, "_lazy": 0,
}
INDEPENDENT = [("eval", "backend"), ("backend", "eval")]


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(["speakergmm", *parts])] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """speakergmm modules imported by module ``name`` (resolved to the longest known name)."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" for a in node.names] + [mod]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _unit(module: str) -> str:
    """The top-level module or subpackage a module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


GRAPH = {name: _imports(name, path, set(_modules())) for name, path in _modules().items()}


def test_every_unit_has_a_layer():
    units = {_unit(m) for m in GRAPH} - {"", "models", "__main__"}
    assert units <= set(LAYERS), f"give these a layer: {sorted(units - set(LAYERS))}"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _unit(m) in LAYERS))
def test_imports_point_down(module):
    unit = _unit(module)
    for target in GRAPH[module]:
        other = _unit(target)
        if other in ("", unit):
            continue
        assert LAYERS[other] <= LAYERS[unit], f"{module} imports {target}, a higher layer"
        assert (unit, other) not in INDEPENDENT, f"{module} imports {target}"


def test_the_top_level_package_imports_nothing_eagerly_but_errors():
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    eager = {node.module for node in tree.body
             if isinstance(node, ast.ImportFrom) and node.level}
    assert eager <= {"_version", "errors"}, eager


def test_no_cycles():
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH.get(node, ())):
            if nxt == "speakergmm":  # the lazy facade is never imported from inside
                continue
            if state.get(nxt) == 1:
                raise AssertionError(f"import cycle: {' -> '.join(path + [nxt])}")
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


@pytest.mark.parametrize("module", ["speakergmm.store.database", "speakergmm.store.records"])
def test_the_store_keeps_records_without_scoring(module):
    """Issue 21: storage (SQLite, schema, records) imports no scoring, calibration or
    application code; self-calibration and model building sit beside it."""
    wrong = sorted(t for t in GRAPH[module] if _unit(t) in ("backend", "eval", "recognizer",
                                                             "system", "batch", "cli"))
    assert not wrong, f"{module} imports {wrong}"


def test_only_the_executor_starts_processes():
    users = sorted(name for name, path in _modules().items()
                   if "multiprocessing" in path.read_text(encoding="utf-8")
                   or "concurrent.futures" in path.read_text(encoding="utf-8"))
    assert users == ["speakergmm.exec"], users


def test_cli_import_is_light():
    """``speakergmm --help`` must not pay for numpy-heavy modules it does not run."""
    import subprocess
    import sys

    code = ("import sys, speakergmm.cli; "
            "print(sorted(m for m in sys.modules if m.startswith('speakergmm')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    loaded = ast.literal_eval(out)
    heavy = [m for m in loaded if _unit(m) in ("gmm", "backend", "frontend", "eval")]
    assert not heavy, heavy
