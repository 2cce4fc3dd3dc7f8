"""The ``ivr`` package's modules import each other without a cycle.

A cycle hides a layer's direction (the runtime importing the web app that imports the
runtime...) and makes import order matter. The graph is read with :mod:`ast`, so it
sees every ``import`` statement wherever it stands: at module level, inside a function
(a lazy import is still a dependency), and under ``if TYPE_CHECKING:`` (a type-only
import still ties the two modules' designs together; mypy would follow it). Imports
made by name at run time (``importlib``) are not seen.

Only ``ivr/`` is covered: ``vault/`` is a separate package with its own direction.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.structure.source import parse

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "ivr"


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _targets(node: ast.Import | ast.ImportFrom, here: str, is_package: bool) -> list[str]:
    """The module names an import statement names (a ``from X import Y`` names X.Y when
    that is a module, else X)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: from the current package, up level - 1
        package = here.split(".") if is_package else here.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = parse(path)
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            named = [t for t in _targets(node, name, is_package) if t in modules]
            if isinstance(node, ast.ImportFrom) and len(named) > 1:
                named = named[1:]  # the submodules imported, not their package
            graph[name].update(t for t in named if t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read() -> None:
    graph = import_graph()
    assert "ivr.runtime" in graph["ivr.web.serve"]
    assert "ivr.console.access" in graph["ivr.console.app"]


def test_a_cycle_is_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_ivr_has_no_import_cycle() -> None:
    graph = import_graph()
    assert cycles(graph) == [], "\n".join(
        " ↔ ".join(c) + ": " + "; ".join(f"{m} → {sorted(graph[m] & set(c))}" for m in c)
        for c in cycles(graph)
    )


def test_api_and_console_do_not_import_each_other() -> None:
    """Siblings under the web app factory: they share only ``ivr.web``'s modules."""
    graph = import_graph()
    for module, targets in graph.items():
        for side, other in (("ivr.api", "ivr.console"), ("ivr.console", "ivr.api")):
            if module == side or module.startswith(side + "."):
                crossing = {t for t in targets if t == other or t.startswith(other + ".")}
                assert not crossing, f"{module} imports {sorted(crossing)}"


def test_the_runtime_does_not_import_the_web_layer() -> None:
    """The direction is web → runtime: the engine is handed the API worker."""
    web = ("ivr.web", "ivr.api", "ivr.console.app", "ivr.console.web", "ivr.console.pages")
    for module in ("ivr.runtime", "ivr.wiring", "ivr.engine"):
        targets = import_graph()[module]
        assert not {t for t in targets if t in web or t.startswith(tuple(w + "." for w in web))}
