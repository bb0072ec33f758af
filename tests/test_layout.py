"""The package layout the README describes: small modules, no import cycle between them."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [ROOT / "fedsearch", ROOT / "plugins" / "fedsearch_builtins"]
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted(package.rglob("*.py")):
            parts = list(path.relative_to(package.parent).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _runtime_imports(path: Path, module: str, is_package: bool) -> set[str]:
    """Modules imported when ``module`` is imported (``if TYPE_CHECKING`` blocks excluded)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    base = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                target = child.module or ""
                if child.level:
                    anchor = base.split(".")[: len(base.split(".")) - child.level + 1]
                    target = ".".join([*anchor, target] if target else anchor)
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in child.names)
            if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child)

    visit(tree)
    return found


def _import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        own_ancestors = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        edges = set()
        for imported in _runtime_imports(path, module, path.name == "__init__.py"):
            parts = imported.split(".")
            # Importing a.b.c runs a and a.b first; the importer's own ancestors are
            # already being imported, so they are no edge.
            for end in range(1, len(parts) + 1):
                name = ".".join(parts[:end])
                if name in modules and name != module and name not in own_ancestors:
                    edges.add(name)
        graph[module] = edges
    return graph


def test_every_module_is_at_most_400_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in _modules().values()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_import_cycle_between_modules() -> None:
    graph = _import_graph()
    assert graph["fedsearch.study._run"] >= {"fedsearch.trial._objective"}
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")
    assert set(order) == set(graph)


@pytest.mark.parametrize(
    ("lower", "upper"),
    [("fedsearch.search", "fedsearch.trial"), ("fedsearch.trial", "fedsearch.study")],
)
def test_search_trial_study_are_layered(lower: str, upper: str) -> None:
    """``search`` never imports ``trial`` or ``study``; ``trial`` never imports ``study``."""
    graph = _import_graph()
    offenders = {
        module: sorted(edge for edge in edges if edge.startswith(upper))
        for module, edges in graph.items()
        if module.startswith(lower) and any(edge.startswith(upper) for edge in edges)
    }
    assert not offenders, f"{lower} imports {upper}: {offenders}"
