"""Parsing the project's sources for the structure tests.

``ast.parse`` runs with the garbage collector paused. CPython 3.11 keeps the AST
converter's recursion count in one per-interpreter slot: a collection inside the
conversion can run a finaliser (an asyncio task's "exception was never retrieved" log,
whose traceback formatting itself calls ``ast.parse``), which resets that slot, and the
outer parse then fails a correct file with ``SystemError: AST constructor recursion depth
mismatch`` (CPython gh-106905, fixed in 3.12)."""

from __future__ import annotations

import ast
import gc
from pathlib import Path


def parse(path: Path) -> ast.Module:
    source = path.read_text(encoding="utf-8")
    was_enabled = gc.isenabled()
    gc.disable()  # no collection, so no finaliser, between the conversion's start and end
    try:
        return ast.parse(source, str(path))
    finally:
        if was_enabled:
            gc.enable()
