"""How the CLI prints records for a person: a table when every row fits on one line of
the output's width, vertical key–value blocks otherwise (and always for one record).

A table cell is never wrapped: :func:`layout` picks the table only when its natural
width (every cell on one line, measured in terminal cells, so Hangul counts double)
fits. The width is ``$COLUMNS``, else the terminal's, else :data:`DEFAULT_WIDTH`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Table

DEFAULT_WIDTH = 100
BOX = box.SQUARE  # every line of the table starts and ends with a border character
Layout = Literal["none", "blocks", "table"]


def output_width() -> int:
    """``$COLUMNS`` when set, else the terminal's width, else :data:`DEFAULT_WIDTH`."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
    return DEFAULT_WIDTH


def text(value: Any) -> str:
    """A value as a person reads it: none is blank, times in ISO 8601, nested as JSON."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    keys: dict[str, None] = {}
    for r in rows:
        keys.update(dict.fromkeys(r))
    return list(keys)


def table_width(rows: Sequence[Mapping[str, Any]]) -> int:
    """Cells the table takes with every cell on one line: per column its widest cell
    plus one space each side, a border between columns and at both ends."""
    columns = _columns(rows)
    widths = [max([cell_len(c), *(cell_len(text(r.get(c))) for r in rows)]) for c in columns]
    return sum(widths) + 3 * len(columns) + 1


def layout(rows: Sequence[Mapping[str, Any]], width: int) -> Layout:
    if not rows:
        return "none"
    if len(rows) == 1:
        return "blocks"
    one_line = all("\n" not in text(v) for r in rows for v in r.values())
    return "table" if one_line and table_width(rows) <= width else "blocks"


def block(row: Mapping[str, Any], indent: str = "  ") -> list[str]:
    """``key  value`` lines, values aligned; a value's further lines under its first."""
    pad = max((cell_len(k) for k in row), default=0) + 2
    lines: list[str] = []
    for key, value in row.items():
        first, *rest = text(value).split("\n")
        lines.append((indent + key + " " * (pad - cell_len(key)) + first).rstrip())
        lines += [(indent + " " * pad + more).rstrip() for more in rest]
    return lines


def render(title: str, rows: Sequence[Mapping[str, Any]], width: int) -> str:
    """The text to print for ``rows`` at ``width`` cells (ends with a newline)."""
    kind = layout(rows, width)
    if kind == "none":
        return f"{title or 'records'}: none\n"
    if kind == "blocks":
        if len(rows) == 1:
            lines = ([title] if title else []) + block(rows[0])
        else:
            lines = [f"{title or 'records'}: {len(rows)}"]
            for n, row in enumerate(rows, 1):
                lines += ["", f"  [{n}]", *block(row, indent="    ")]
        return "\n".join(lines) + "\n"
    table = Table(title=escape(title) or None, box=BOX, title_justify="left")
    for column in _columns(rows):
        table.add_column(escape(column), no_wrap=True)
    for r in rows:  # values are text, not rich markup ("[gateway] settings")
        table.add_row(*(escape(text(r.get(c))) for c in _columns(rows)))
    console = Console(width=width, highlight=False, color_system=None)
    with console.capture() as captured:
        console.print(table)
    return "".join(line.rstrip() + "\n" for line in captured.get().splitlines())


def emit_rows(title: str, rows: Sequence[Mapping[str, Any]]) -> None:
    sys.stdout.write(render(title, rows, output_width()))
