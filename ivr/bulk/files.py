"""Reading a bulk file: CSV with a header, or a JSON list of objects, into raw rows.

The checks of each row are the row kind's (:mod:`ivr.bulk.charge_rows`,
:mod:`ivr.bulk.registrations`); here only the file's shape: size, encoding, syntax,
header, number of rows. A CSV row with more cells than the header keeps the extra ones
under :data:`EXTRA_FIELDS`, which every row check refuses.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from ivr.errors import InvalidInput

MAX_ROWS = 100_000
MAX_BYTES = 20 * 1024 * 1024
EXTRA_FIELDS = "\x00extra"  # DictReader's key for fields beyond the header


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):  # json.loads would keep the last value, drop the others
        raise InvalidInput("bulk JSON names a key twice in one object")
    return obj


def parse_rows(
    data: bytes, fmt: str, required: Sequence[str] = ("card_id", "amount", "order_name")
) -> list[dict[str, Any]]:
    """Raw rows from CSV (a header naming at least ``required``) or JSON (a list of
    objects)."""
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"bulk file is larger than {MAX_BYTES // (1024 * 1024)} MB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("bulk file must be UTF-8") from None
    if fmt == "json":
        rows = _json_rows(text)
    elif fmt == "csv":
        rows = _csv_rows(text, required)
    else:
        raise InvalidInput("bulk format must be csv or json")
    if not rows:
        raise InvalidInput("bulk file has no rows")
    if len(rows) > MAX_ROWS:
        raise InvalidInput(f"bulk file has more than {MAX_ROWS} rows")
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
        return [dict(r) for r in reader]
    except csv.Error as exc:
        raise InvalidInput(f"bulk CSV is malformed at line {reader.line_num}: {exc}") from None
