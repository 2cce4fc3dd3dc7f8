"""Excel workbooks (.xlsx) for bulk files: reading an uploaded one, writing a result
file or a template.

Reading takes the first sheet, values only (a formula gives its last computed value,
never its text; one never computed is an empty cell), with the first non-empty row as
the header and empty rows skipped — as the CSV reader skips blank lines. An .xlsx is a
zip of XML: before openpyxl opens it the zip's directory is checked (at most
:data:`MAX_MEMBERS` members, :data:`MAX_UNCOMPRESSED` bytes unpacked), and a sheet
longer than the row limit or wider than :data:`MAX_COLUMNS` is refused whole; nothing
of a refused file is submitted.

Writing never puts a formula in a cell: text is written as text, and text that a
spreadsheet would take for a formula is escaped by the caller (:mod:`ivr.bulk.results`).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Sequence
from typing import Any

from ivr.bulk.cells import cell_text
from ivr.errors import InvalidInput

MAX_MEMBERS = 1_000
MAX_UNCOMPRESSED = 100 * 1024 * 1024
MAX_COLUMNS = 200
ZIP_MAGIC = b"PK\x03\x04"
MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_NOT_XLSX = "bulk file is not a readable .xlsx workbook"


def _check_zip(data: bytes) -> None:
    if not data.startswith(ZIP_MAGIC):
        raise InvalidInput(_NOT_XLSX)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            members = z.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):  # OSError: a bad offset, say
        raise InvalidInput(_NOT_XLSX) from None
    if len(members) > MAX_MEMBERS:
        raise InvalidInput(f"bulk .xlsx has more than {MAX_MEMBERS} parts")
    # zipfile never inflates a member past the size its directory gives
    if sum(m.file_size for m in members) > MAX_UNCOMPRESSED:
        raise InvalidInput(
            f"bulk .xlsx unpacks to more than {MAX_UNCOMPRESSED // (1024 * 1024)} MB"
        )


def _trimmed(values: Sequence[Any]) -> list[Any]:
    out = list(values)
    while out and (out[-1] is None or out[-1] == ""):
        out.pop()
    return out


def read_sheet(
    data: bytes, max_rows: int, extra_key: str
) -> tuple[list[str], list[dict[str, Any]]]:
    """The first sheet's header and rows (cells as text, :func:`~ivr.bulk.cells.cell_text`);
    cells beyond the header, when not empty, are kept under ``extra_key``."""
    _check_zip(data)
    from openpyxl import load_workbook  # imported on first use: only .xlsx needs it

    header: list[str] | None = None
    rows: list[dict[str, Any]] = []
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # an untrusted file: any parser failure is a refusal
        raise InvalidInput(_NOT_XLSX) from None
    try:
        if not book.worksheets:
            raise InvalidInput(_NOT_XLSX)
        sheet = book.worksheets[0]
        sheet.reset_dimensions()  # a forged <dimension> would pad every row with cells
        for seen, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            if seen > max_rows + 1:  # empty rows count too: they cost as much to read
                raise InvalidInput(f"bulk file has more than {max_rows} rows")
            cells = _trimmed(values)
            if len(cells) > MAX_COLUMNS:
                raise InvalidInput(f"bulk .xlsx has more than {MAX_COLUMNS} columns")
            if not cells:
                continue
            if header is None:
                header = [cell_text(c, "").strip() for c in cells]
                continue
            rows.append(_row(header, cells, extra_key))
    except InvalidInput:
        raise
    except Exception:  # malformed XML inside: a refusal, not a crash
        raise InvalidInput(_NOT_XLSX) from None
    finally:
        book.close()
    return header or [], rows


def _row(header: Sequence[str], cells: Sequence[Any], extra_key: str) -> dict[str, Any]:
    row: dict[str, Any] = {name: "" for name in header if name}
    extra: list[str] = []
    for i, value in enumerate(cells):
        name = header[i] if i < len(header) else ""
        if name:
            row[name] = cell_text(value, name)
        elif value is not None and value != "":
            extra.append(cell_text(value, ""))
    if extra:
        row[extra_key] = extra
    return row


def write_sheet(columns: Sequence[str], rows: Iterable[Sequence[Any]],
                text_columns: Sequence[str] = ()) -> bytes:  # fmt: skip
    """A one-sheet workbook (written streaming: 100,000 rows take seconds): a bold
    header, then ``rows``; a column in ``text_columns`` is formatted as text, so Excel
    keeps a mobile number's leading 0."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    for i, name in enumerate(columns, start=1):
        dim = sheet.column_dimensions[get_column_letter(i)]
        dim.width = max(12, len(name) + 4)
        if name in text_columns:
            dim.number_format = "@"
    header = []
    for name in columns:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = Font(bold=True)
        header.append(cell)
    sheet.append(header)
    for r in rows:
        sheet.append([_cell(sheet, v) for v in r])
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def _cell(sheet: Any, value: Any) -> Any:
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    if isinstance(value, (int, float)) or value is None:
        return value
    cell = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("", str(value)))
    cell.data_type = "s"  # text, even one starting with "=": never a formula
    return cell
