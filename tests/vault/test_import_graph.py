"""The vault stands alone: no module under ``vault/`` imports the engine (``ivr``).

The dependency runs one way, engine -> vault (#33). The check reads the source (ast),
so it sees every import: at module level, inside functions, under ``TYPE_CHECKING``,
and relative ones that climb out of the package.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import vault

VAULT_DIR = Path(vault.__file__).parent
FORBIDDEN = "ivr"


def _modules() -> list[Path]:
    return sorted(VAULT_DIR.rglob("*.py"))


def _package_of(path: Path) -> list[str]:
    """``vault/kek/file.py`` -> ``["vault", "kek"]``: what a relative import starts from."""
    return ["vault", *path.parent.relative_to(VAULT_DIR).parts]


def _dotted(*parts: str | None) -> str:
    return ".".join(p for p in parts if p)


def imported_names(source: str, package: list[str]) -> list[tuple[int, str]]:
    """Every module ``source`` (a module of ``package``) imports, absolute, with its line;
    ``from x import y`` counts as both ``x`` and ``x.y`` (``y`` may be a module)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            # level 1 is the package itself, each further dot one package up; above the
            # top the names are outside the vault (a script next to it, or ``ivr``)
            base = package[: max(len(package) - (node.level - 1), 0)] if node.level else []
            module = _dotted(*base, node.module)
            found.append((node.lineno, module))
            found.extend((node.lineno, _dotted(module, alias.name)) for alias in node.names)
        elif isinstance(node, ast.Call) and _is_dynamic_import(node):
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((node.lineno, arg.value))
    return found


def _is_dynamic_import(node: ast.Call) -> bool:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in ("import_module", "__import__") and bool(node.args)


def _is_engine(module: str) -> bool:
    return module == FORBIDDEN or module.startswith(FORBIDDEN + ".")


def test_the_vault_has_modules_to_check() -> None:
    assert len(_modules()) > 20


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(VAULT_DIR)))
def test_no_vault_module_imports_the_engine(path: Path) -> None:
    names = imported_names(path.read_text(encoding="utf-8"), _package_of(path))
    offending = [f"line {line}: {name}" for line, name in names if _is_engine(name)]
    assert not offending, f"{path.relative_to(VAULT_DIR.parent)} imports the engine: {offending}"


@pytest.mark.parametrize(
    "source",
    [
        "import ivr",
        "import os, ivr.clock as c",
        "from ivr.errors import ArspayError",
        "from ivr import settings",
        "def f():\n    from ivr.settings import Settings",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ivr.clock import Clock",
        "import importlib\nimportlib.import_module('ivr.runtime')",
        "__import__('ivr')",
        "from ...ivr import errors",
        "from ... import ivr",
    ],
)
def test_the_check_sees_every_form(source: str) -> None:
    """Each way of reaching the engine is caught (relative ones as if in ``vault/kek/``)."""
    names = [name for _, name in imported_names(source, ["vault", "kek"])]
    assert any(_is_engine(n) for n in names), names


@pytest.mark.parametrize("source", ["from .. import errors", "from . import file", "import ivrx"])
def test_the_check_lets_the_vault_import_itself(source: str) -> None:
    names = [name for _, name in imported_names(source, ["vault", "kek"])]
    assert not any(_is_engine(n) for n in names), names


def test_importing_the_whole_vault_loads_no_engine_module() -> None:
    """What the ast check proves, seen at run time: a fresh interpreter imports every
    vault module (PKCS#11 included) and ends with no ``ivr`` module loaded."""
    names = [_dotted(*_package_of(p), p.stem if p.stem != "__init__" else None) for p in _modules()]
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'ivr' or m.startswith('ivr.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout
