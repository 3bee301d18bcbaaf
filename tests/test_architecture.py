"""The shape of the code: no import cycle, one module for driver authors.

The import graph is read from the source (every ``import`` the modules
run, at their top or inside functions; not those under TYPE_CHECKING,
which never run), with the folders mapped to their installed names as
pyproject.toml maps them.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from conftest import REPO

FOLDERS = {"suite": "run_testsuite", "drivers": "run_testsuite.drivers", "schemas": "run_testsuite.schemas"}


def project_modules() -> dict[str, Path]:
    """Installed module name -> source file."""
    found = {}
    for folder, prefix in FOLDERS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([prefix, *parts])] = path
    return found


def _under_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def imported_by(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules that module ``name`` imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _under_type_checking(child):
                continue
            if isinstance(child, ast.Import):
                targets.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join([*parts, base] if base else parts)
                targets.add(base)
                targets.update(f"{base}.{alias.name}" for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {target for target in targets if target in known and target != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as a list of modules, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for succ in sorted(graph[node]):
            if state.get(succ) == 1:
                return path[path.index(succ):] + [succ]
            if succ not in state:
                found = visit(succ)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_modules_import_each_other_without_a_cycle():
    modules = project_modules()
    graph = {name: imported_by(name, path, set(modules)) for name, path in modules.items()}
    assert len(graph) > 40  # the walk found the code
    assert graph["run_testsuite.session"] >= {"run_testsuite.scheduler.dispatch", "run_testsuite.index"}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_scheduler_does_not_import_the_loader():
    modules = project_modules()
    for name in ("run_testsuite.scheduler.dispatch", "run_testsuite.scheduler.verdicts"):
        assert "run_testsuite.loader" not in imported_by(name, modules[name], set(modules))


def test_the_api_offers_what_a_driver_needs():
    import run_testsuite.api as api

    for name in ("Driver", "Testcase", "Fragment", "Command", "RunContext", "Outcome", "Status", "Reason"):
        assert name in api.__all__ and getattr(api, name) is not None


def _project_imports(text: str) -> set[str]:
    # The project's names, and the generic ones it no longer installs.
    pattern = r"^\s*(?:from|import)\s+((?:run_testsuite|suite|drivers|schemas)\b[\w.]*)"
    return set(re.findall(pattern, text, re.MULTILINE))


@pytest.mark.parametrize("source", ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "testcases").rglob("*.py"))])
def test_examples_import_only_the_api(source):
    imports = _project_imports((REPO / source).read_text(encoding="utf-8"))
    assert imports <= {"run_testsuite.api"}, imports
