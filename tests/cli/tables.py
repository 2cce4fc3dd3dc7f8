"""Find tables in captured CLI output and report any whose cells were wrapped or cut.

A table is a run of lines that start with a box-drawing border (``ivr.cli.output.BOX``,
``box.SQUARE``). Whole, it has: every line as wide as its top border (in terminal cells),
the column borders of every line where the top border's are, no ``…`` (a cut cell), and
a first cell on every data line — a cell wrapped onto a second line leaves the other
cells of that line, the first one included, blank.
"""

from __future__ import annotations

from rich.cells import cell_len

BORDERS = "┌│├└┏┃┡"  # rich's SQUARE box, and HEAVY_HEAD (its default) for old output
JOINTS = "┬┼┴│┳┃╇"
ENDS = "┌┐├┤└┘┏┓┡┩"


def tables(output: str) -> list[list[str]]:
    found: list[list[str]] = []
    current: list[str] = []
    for line in output.splitlines():
        if line and line[0] in BORDERS:
            current.append(line)
        elif current:
            found.append(current)
            current = []
    if current:
        found.append(current)
    return found


def _columns(line: str) -> list[int]:
    """Cell offsets of the column borders on a line (both ends included)."""
    offsets, at = [], 0
    for ch in line:
        if ch in JOINTS or ch in ENDS:
            offsets.append(at)
        at += cell_len(ch)
    return offsets


def problems(output: str) -> list[str]:
    """Why any table in ``output`` is not whole (empty: every table is)."""
    out: list[str] = []
    for table in tables(output):
        top = table[0]
        width, columns = cell_len(top), _columns(top)
        for line in table[1:]:
            if cell_len(line) != width:
                out.append(f"not as wide as its table ({cell_len(line)} != {width}): {line}")
            elif _columns(line) != columns:
                out.append(f"column borders out of line: {line}")
            if "…" in line:
                out.append(f"a cut cell: {line}")
            if line[0] in "│┃" and not line[1:].split(line[0], 1)[0].strip():
                out.append(f"a continuation line (first cell blank): {line}")
    return out
