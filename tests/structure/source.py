"""Parsing the project's sources for the structure tests.

``ast.parse`` runs in a worker thread, which starts at recursion depth 0: CPython 3.11's
AST validator counts the caller's recursion depth and, deep inside a long test session's
stack, can fail a correct file with ``SystemError: AST constructor recursion depth
mismatch`` (CPython gh-106905, fixed in 3.12)."""

from __future__ import annotations

import ast
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ast-parse")


def parse(path: Path) -> ast.Module:
    source = path.read_text(encoding="utf-8")
    return _POOL.submit(ast.parse, source, str(path)).result()
