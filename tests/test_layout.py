"""The package's layout: every module imports alone, and imports point one way (docs/architecture.md).

``lint-imports`` (import-linter, contracts in pyproject.toml) enforces the dependency order in CI.
These tests check the same two promises without it, from the source: no import cycle among
``scratch_rnn`` modules (imports inside functions count) and no module importing the facade.
NumPy only: they run in the fast lane.
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import scratch_rnn

PACKAGE = Path(scratch_rnn.__file__).parent
MODULES = sorted(m.name for m in pkgutil.walk_packages([str(PACKAGE)], prefix="scratch_rnn."))

#: Modules that make up the engine: importing one must not import TensorFlow, Keras or Hypothesis.
ENGINE = {
    "scratch_rnn",
    "scratch_rnn.checks",
    "scratch_rnn.activations",
    "scratch_rnn.initializers",
    "scratch_rnn.teaching",
    "scratch_rnn.version",
    "scratch_rnn.keras_layout",
    "scratch_rnn.layer",
    "scratch_rnn.rnn",
    "scratch_rnn.kernels",
    "scratch_rnn.simple_rnn",
    "scratch_rnn.lstm",
    "scratch_rnn.gru",
    "scratch_rnn.core_layers",
    "scratch_rnn.wrappers",
    "scratch_rnn.models",
    "scratch_rnn.keras_convert",
    "scratch_rnn.symbolic",
    "scratch_rnn.cells",
    "scratch_rnn.merging",
    "scratch_rnn.reshaping",
    "scratch_rnn.pooling",
    "scratch_rnn.regularization",
    "scratch_rnn.normalization",
    "scratch_rnn.convolutional",
    "scratch_rnn.attention",
    "scratch_rnn.saving",
}


def module_path(name: str, package: Path = PACKAGE) -> Path:
    parts = name.split(".")[1:]
    path = package.joinpath(*parts)
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def imports_of(source: str, name: str, is_package: bool, known: set[str]) -> set[tuple[str, str]]:
    """``(imported module, spelling)`` for every import in ``source``, top level or inside a function,
    resolved to the known ``scratch_rnn`` modules (``from scratch_rnn import lstm`` is ``scratch_rnn.lstm``;
    ``from scratch_rnn import SimpleRNN`` is the facade, ``scratch_rnn``)."""
    here = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add((alias.name, f"import {alias.name}"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add((target if target in known else base, f"from {base} import {alias.name}"))
    return {(module, spelling) for module, spelling in found if module in known}


def import_graph(package: Path = PACKAGE, modules=None) -> dict[str, set[tuple[str, str]]]:
    modules = MODULES if modules is None else modules
    known = {"scratch_rnn", *modules}
    graph = {}
    for name in known:
        path = module_path(name, package)
        found = imports_of(path.read_text(), name, path.name == "__init__.py", known)
        graph[name] = {(module, spelling) for module, spelling in found if module != name}
    return graph


def find_cycle(graph: dict[str, set[tuple[str, str]]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None. The facade is left out:
    every submodule imports it implicitly, and no module may import it explicitly (tested below)."""
    edges = {m: sorted(t for t, _ in ts if t != "scratch_rnn") for m, ts in graph.items() if m != "scratch_rnn"}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for nxt in edges.get(node, ()):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt, path + [nxt])
                if cycle:
                    return cycle
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state:
            cycle = visit(start, [start])
            if cycle:
                return cycle
    return None


def facade_imports(graph) -> list[str]:
    return sorted(f"{m}: {s}" for m, ts in graph.items() if m != "scratch_rnn" for t, s in ts if t == "scratch_rnn")


def test_no_import_cycle_counting_imports_inside_functions():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_module_of_the_package_imports_the_facade():
    assert facade_imports(import_graph()) == []


def test_the_checks_find_a_planted_cycle_and_a_facade_import(tmp_path):
    """The two checks above fail where they should: a lazy import that closes a cycle, and a facade import."""
    package = tmp_path / "scratch_rnn"
    package.mkdir()
    (package / "__init__.py").write_text("from scratch_rnn.low import f\n")
    (package / "low.py").write_text("def f():\n    from scratch_rnn import high  # lazy, upwards\n")
    (package / "high.py").write_text("from scratch_rnn.low import f\nfrom scratch_rnn import f as g\n")
    graph = import_graph(package, ["scratch_rnn.low", "scratch_rnn.high"])
    assert find_cycle(graph) in (
        ["scratch_rnn.high", "scratch_rnn.low", "scratch_rnn.high"],
        ["scratch_rnn.low", "scratch_rnn.high", "scratch_rnn.low"],
    )
    assert facade_imports(graph) == ["scratch_rnn.high: from scratch_rnn import f"]


def test_the_module_list_is_the_package():
    """A guard on the walk above: the layers, the harness and the command line are all seen."""
    for name in ("scratch_rnn.lstm", "scratch_rnn.kernels", "scratch_rnn.testing.verify", "scratch_rnn.cli"):
        assert name in MODULES


@pytest.mark.parametrize("module", ["scratch_rnn", *MODULES])
def test_every_module_imports_alone_in_a_fresh_interpreter(module):
    """Imported first and alone, each module works (no import-order dependence); an engine module
    brings in neither TensorFlow nor Keras nor Hypothesis."""
    heavy = ("tensorflow", "keras", "tf_keras", "hypothesis", "torch")
    code = f"import sys, {module}; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"import {module} failed:\n{done.stderr[-2000:]}"
    if module in ENGINE:
        assert done.stdout.strip() == "[]", f"import {module} imported {done.stdout.strip()}"
