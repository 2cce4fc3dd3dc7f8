"""Metrics live in a registry per runtime (ivr/observability/registry.py), never in the
library's global one: no module of ``ivr`` or ``vault`` imports ``prometheus_client``'s
``REGISTRY`` or its default-registry helpers, and every metric is built in the one
module that defines them all, with ``registry=`` passed."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.structure.source import parse

ROOT = Path(__file__).resolve().parents[2]
HOME = ROOT / "ivr" / "observability" / "registry.py"
METRIC_TYPES = {"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum"}
GLOBAL = {"REGISTRY", "start_http_server", "start_wsgi_server", "make_asgi_app", "push_to_gateway"}


def _prometheus_names(tree: ast.Module) -> dict[str, str]:
    """Local name -> the prometheus_client name it was imported as."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prometheus_client"):
            for alias in node.names:
                names[alias.asname or alias.name] = alias.name
    return names


def test_no_global_registry_and_metrics_only_in_the_registry_module() -> None:
    found: list[str] = []
    built_in_home = 0
    for path in sorted([*(ROOT / "ivr").rglob("*.py"), *(ROOT / "vault").rglob("*.py")]):
        tree = parse(path)
        names = _prometheus_names(tree)
        where = str(path.relative_to(ROOT))
        found += [f"{where}: imports {n}" for n in names.values() if n in GLOBAL]
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            if names.get(node.func.id) not in METRIC_TYPES:
                continue
            if path != HOME:
                found.append(f"{where}:{node.lineno}: a metric outside {HOME.name}")
            elif not any(k.arg == "registry" for k in node.keywords):
                found.append(f"{where}:{node.lineno}: a metric without registry=")
            else:
                built_in_home += 1
    assert built_in_home > 10  # the scan saw the metrics
    assert not found, found
