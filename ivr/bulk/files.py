"""Reading a bulk file: CSV with a header, an Excel workbook (.xlsx, its first sheet,
see :mod:`ivr.bulk.xlsx`) or a JSON list of objects, into raw rows.

The checks of each row are the row kind's (:mod:`ivr.bulk.charge_rows`,
:mod:`ivr.bulk.registrations`); here only the file's shape: size, encoding, syntax,
header, number of rows. A row with more cells than the header keeps the extra ones
under :data:`EXTRA_FIELDS`, which every row check refuses.

A CSV is UTF-8 (with or without the BOM Excel writes) or else CP949, the Korean
Windows code page Excel saves CSV in (a superset of EUC-KR); bytes that are neither
refuse the whole file. JSON is UTF-8. The :class:`Source` (format and encoding) is kept
with the job, so the result file comes back in the format the merchant uploaded.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ivr.bulk.cells import MOBILE_COLUMN, restore_mobile
from ivr.bulk.xlsx import read_sheet
from ivr.errors import InvalidInput

MAX_ROWS = 100_000
MAX_BYTES = 20 * 1024 * 1024
EXTRA_FIELDS = "\x00extra"  # DictReader's key for fields beyond the header
FORMATS = ("csv", "json", "xlsx")
ENCODINGS = ("utf-8", "cp949")


@dataclass(frozen=True, slots=True)
class Source:
    """What the uploaded file was: ``csv`` (``utf-8`` or ``cp949``), ``json`` or ``xlsx``."""

    format: str = "csv"
    encoding: str = "utf-8"

    def as_dict(self) -> dict[str, str]:
        return {"format": self.format, "encoding": self.encoding}

    @classmethod
    def of(cls, stored: Any) -> Source:
        """The source kept with a job (a job from before sources were kept: UTF-8 CSV)."""
        if not isinstance(stored, dict):
            return cls()
        fmt, enc = stored.get("format"), stored.get("encoding")
        return cls(fmt if fmt in FORMATS else "csv", enc if enc in ENCODINGS else "utf-8")


@dataclass(frozen=True, slots=True)
class BulkFile:
    rows: list[dict[str, Any]]
    source: Source


def format_of(filename: str, default: str = "csv") -> str:
    """``csv``, ``json`` or ``xlsx`` from a file name's extension, else ``default``."""
    name = filename.lower()
    for ext, fmt in ((".xlsx", "xlsx"), (".json", "json"), (".csv", "csv"), (".txt", "csv")):
        if name.endswith(ext):
            return fmt
    return default


def decode_csv(data: bytes) -> tuple[str, str]:
    """The text of a CSV and its encoding: UTF-8 (a BOM is dropped), else CP949."""
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp949"), "cp949"
    except UnicodeDecodeError:
        raise InvalidInput("bulk CSV must be UTF-8 or CP949 (EUC-KR) text") from None


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):  # json.loads would keep the last value, drop the others
        raise InvalidInput("bulk JSON names a key twice in one object")
    return obj


def parse_rows(
    data: bytes, fmt: str, required: Sequence[str] = ("card_id", "amount", "order_name")
) -> list[dict[str, Any]]:
    """Raw rows from CSV or .xlsx (a header naming at least ``required``) or JSON (a
    list of objects)."""
    return read_file(data, fmt, required).rows


def read_file(
    data: bytes, fmt: str, required: Sequence[str] = ("card_id", "amount", "order_name")
) -> BulkFile:
    """:func:`parse_rows`, with the file's :class:`Source`."""
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"bulk file is larger than {MAX_BYTES // (1024 * 1024)} MB")
    encoding = "utf-8"
    if fmt == "json":
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInput("bulk JSON must be UTF-8") from None
        rows = _json_rows(text)
    elif fmt == "csv":
        text, encoding = decode_csv(data)
        rows = _csv_rows(text, required)
    elif fmt == "xlsx":
        rows = _xlsx_rows(data, required)
    else:
        raise InvalidInput("bulk format must be csv, xlsx or json")
    if not rows:
        raise InvalidInput("bulk file has no rows")
    if len(rows) > MAX_ROWS:
        raise InvalidInput(f"bulk file has more than {MAX_ROWS} rows")
    return BulkFile(rows, Source(fmt, encoding))


def _xlsx_rows(data: bytes, required: Sequence[str]) -> list[dict[str, Any]]:
    header, rows = read_sheet(data, MAX_ROWS, EXTRA_FIELDS)
    if not set(required) <= set(header):
        raise InvalidInput(f"bulk .xlsx needs a header row with {', '.join(required)}")
    named = [h for h in header if h]
    if len(set(named)) != len(named):
        raise InvalidInput("bulk .xlsx header names a column twice")
    return rows


def _json_rows(text: str) -> list[dict[str, Any]]:
    try:
        rows = json.loads(text, object_pairs_hook=_json_object)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"bulk JSON is malformed at line {exc.lineno}") from None
    except (ValueError, RecursionError):  # an int of > 4300 digits; deep nesting
        raise InvalidInput("bulk JSON is malformed") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InvalidInput("bulk JSON must be a list of objects")
    return rows


def _csv_rows(text: str, required: Sequence[str]) -> list[dict[str, Any]]:
    # newline="" semantics: quoted fields may hold line breaks; a stray CR is an error
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey=EXTRA_FIELDS)
    try:
        if reader.fieldnames is None or not set(required) <= set(reader.fieldnames):
            raise InvalidInput(f"bulk CSV needs a header with {', '.join(required)}")
        if len(set(reader.fieldnames)) != len(reader.fieldnames):  # DictReader keeps one
            raise InvalidInput("bulk CSV header names a column twice")
        rows = [dict(r) for r in reader]
    except csv.Error as exc:
        raise InvalidInput(f"bulk CSV is malformed at line {reader.line_num}: {exc}") from None
    for r in rows:  # a CSV saved by Excel: the mobile it turned into a number
        if isinstance(r.get(MOBILE_COLUMN), str):
            r[MOBILE_COLUMN] = restore_mobile(r[MOBILE_COLUMN].strip())
    return rows
