"""Cursor pagination over ULID ids, newest first.

A cursor is opaque to clients (base64url of the last id of the page); the next page is
every row with a smaller id. Rows created while a client pages do not shift pages, as
offsets would.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from ivr.web.problems import Problem

T = TypeVar("T")
_ID = re.compile(r"^[a-z]{1,6}_[0-9A-HJKMNP-TV-Z]{26}$")


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Problem(422, "invalid-cursor") from None
    if not _ID.match(raw):
        raise Problem(422, "invalid-cursor")
    return raw


def page_query(
    query: Select[Any], id_column: InstrumentedAttribute[str], cursor: str | None, limit: int
) -> Select[Any]:
    """``query`` restricted to the page after ``cursor``, one extra row to see if more."""
    if cursor:
        query = query.where(id_column < decode_cursor(cursor))
    return query.order_by(id_column.desc()).limit(limit + 1)


def split_page(rows: list[T], limit: int, id_of: Any) -> tuple[list[T], str | None]:
    """The page and the next cursor (None on the last page)."""
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(id_of(rows[-1]))
    return rows, None


async def fetch_page(
    s: AsyncSession,
    query: Select[Any],
    id_column: InstrumentedAttribute[str],
    cursor: str | None,
    limit: int,
) -> tuple[list[Any], str | None]:
    """The rows of one page of ``query`` (newest first) and the next cursor."""
    rows = list(await s.scalars(page_query(query, id_column, cursor, limit)))
    return split_page(rows, limit, lambda r: r.id)
