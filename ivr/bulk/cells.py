"""One cell of a bulk file as the row checks read it: text.

A spreadsheet hands over numbers, dates and empty cells where a CSV has text; they are
made the text a CSV saved from the same sheet would hold, so the row checks
(:mod:`ivr.bulk.charge_rows`, :mod:`ivr.bulk.registrations`) stay the only judges:

- a whole number stays whole: ``30000.0`` is ``"30000"``; ``30000.5`` stays ``"30000.5"``
  and its row is refused (amounts are int KRW);
- a date is ``YYYY-MM-DD`` (with `` HH:MM:SS`` when it has a time);
- an empty cell is ``""``.

A mobile number typed into Excel without quoting becomes a number and loses its leading
0: ``01012345678`` arrives as ``1012345678``. In the ``mobile`` column a 10-digit number
starting with ``10`` gets the 0 back (see :func:`restore_mobile`); nothing else is guessed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

MOBILE_COLUMN = "mobile"


def restore_mobile(text: str) -> str:
    """``"0" + text`` for a 10-digit ``10…`` (a 010 mobile whose 0 Excel dropped)."""
    if len(text) == 10 and text.isascii() and text.isdigit() and text.startswith("10"):
        return "0" + text
    return text


def cell_text(value: Any, column: str) -> str:
    """``value`` (from a spreadsheet cell) as the text the row checks read."""
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "TRUE" if value else "FALSE"
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        whole = value.is_integer() and abs(value) < 1e18
        text = str(int(value)) if whole else repr(value)
    elif isinstance(value, dt.datetime):
        midnight = value.time() == dt.time()
        text = value.date().isoformat() if midnight else value.isoformat(sep=" ")
    elif isinstance(value, (dt.date, dt.time)):
        text = value.isoformat()
    else:
        text = str(value)
    return restore_mobile(text) if column == MOBILE_COLUMN else text
