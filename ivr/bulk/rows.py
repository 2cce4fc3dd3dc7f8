"""What every bulk row kind checks the same way: its columns and its ``ref``.

A row's ``ref`` is the merchant's own key for it, echoed in the result file — and, for
a row refused at submission, kept with the refusal. Like every free-text cell it
passes the text guard (:mod:`ivr.domain.text`); a refused row whose ``ref`` does not
pass is kept with an empty one, so no card number is stored through a bad row either.
Column names are echoed in errors only when they pass the guard too.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from ivr.domain.text import text_problem
from ivr.errors import InvalidInput

MAX_REF = 100


def unknown_columns(raw: dict[str, Any], known: Collection[str]) -> None:
    """InvalidInput if the row has columns other than ``known`` (named if printable)."""
    extra = sorted({str(k) for k in raw} - set(known))
    if not extra:
        return
    if any(text_problem(name, "column") or len(name) > 40 for name in extra):
        raise InvalidInput("unknown column(s)")  # a name not fit to echo
    raise InvalidInput(f"unknown column(s): {', '.join(extra)}")


def row_ref(raw: dict[str, Any]) -> str:
    """The row's ``ref`` (its first 100 characters, as ever), or InvalidInput naming
    the column: the whole cell is checked, so no card number is cut in two."""
    ref = str(raw.get("ref") or "")
    problem = text_problem(ref, "ref")
    if problem is not None:
        raise InvalidInput(problem)
    return ref[:MAX_REF]


def safe_ref(raw: dict[str, Any]) -> str:
    """The ``ref`` to keep with a refused row: the row's own when it passes, else ``""``."""
    try:
        return row_ref(raw)
    except InvalidInput:
        return ""
