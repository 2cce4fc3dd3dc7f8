"""A template per bulk kind: the header row of its columns, as CSV (UTF-8 with the BOM
Excel needs to show Korean) or as .xlsx (the ``mobile`` column formatted as text, so
Excel keeps its leading 0). No example row: a row left in by mistake would be charged
or called."""

from __future__ import annotations

import csv
import io

from ivr.bulk import charge_rows, registrations, xlsx
from ivr.bulk.cells import MOBILE_COLUMN
from ivr.bulk.results import CSV_MEDIA, ResultFile
from ivr.errors import InvalidInput

COLUMNS: dict[str, tuple[str, ...]] = {
    "charges": charge_rows.FIELDS,
    "registrations": registrations.FIELDS,
}


def template(kind: str, fmt: str) -> ResultFile:
    """The template of ``kind`` (charges, registrations) in ``fmt`` (csv, xlsx)."""
    if kind not in COLUMNS:
        raise InvalidInput(f"bulk kind must be one of {', '.join(COLUMNS)}")
    columns = COLUMNS[kind]
    if fmt == "xlsx":
        return ResultFile(xlsx.write_sheet(columns, (), (MOBILE_COLUMN,)), xlsx.MEDIA_TYPE, "xlsx")
    if fmt != "csv":
        raise InvalidInput("template format must be csv or xlsx")
    buf = io.StringIO()
    csv.writer(buf).writerow(columns)
    return ResultFile(buf.getvalue().encode("utf-8-sig"), CSV_MEDIA, "csv")
