"""No class name is defined both in the engine (``ivr/``) and in the vault (``vault/``):
a reader who meets ``CardData`` or ``ChargeResult`` must know which one it is (#33)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from tests.structure.source import parse

ROOT = Path(__file__).resolve().parents[2]
ALLOWED: set[str] = set()  # a name both packages must share, with the reason


def class_names(package: str) -> dict[str, list[str]]:
    names: dict[str, list[str]] = defaultdict(list)
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.ClassDef):
                names[node.name].append(str(path.relative_to(ROOT)))
    return names


def test_no_class_name_is_shared_by_the_engine_and_the_vault() -> None:
    engine, vault = class_names("ivr"), class_names("vault")
    shared = {name: engine[name] + vault[name] for name in engine.keys() & vault.keys()}
    assert {n: w for n, w in shared.items() if n not in ALLOWED} == {}
