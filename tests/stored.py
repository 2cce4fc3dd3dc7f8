"""What the engine's database holds: one row by its key, and — is a value stored
anywhere? — every row of every engine table, as text, and on SQLite the database file
and its write-ahead log as bytes (UTF-8 and UTF-16)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.engine import make_url

from ivr.store.db import Database
from ivr.store.tables import Base

M = TypeVar("M")


async def row_of(db: Database, model: type[M], key: Any) -> M:
    """The row of ``model`` with primary key ``key``, which must exist."""
    async with db.sessions() as s:
        row = await s.get(model, key)
    assert row is not None, f"no {model.__name__} {key!r}"
    return row


async def rows_text(db: Database) -> str:
    """Every row of every table, one ``repr`` per row."""
    out: list[str] = []
    async with db.sessions() as s:
        for table in Base.metadata.sorted_tables:
            for row in (await s.execute(select(table))).all():
                out.append(f"{table.name}: {tuple(row)!r}")
    return "\n".join(out)


def sqlite_bytes(url: str) -> bytes:
    """The SQLite database file and its WAL (empty for PostgreSQL)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database:
        return b""
    data = b""
    for suffix in ("", "-wal"):
        path = Path(u.database + suffix)
        if path.exists():
            data += path.read_bytes()
    return data


async def stored(db: Database, needles: list[str]) -> list[str]:
    """The needles found in the rows or (SQLite) the database's files."""
    text = await rows_text(db)
    raw = sqlite_bytes(db.url.render_as_string(hide_password=False))
    found = []
    for needle in needles:
        forms = (needle.encode(), needle.encode("utf-16-le"))
        if needle in text or any(f in raw for f in forms):
            found.append(needle)
    return found
