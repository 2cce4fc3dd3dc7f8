"""Upgrades keep data: a database built at the first migration, with rows in every table
that exists there, upgraded to head, still holds every row with its values (in every
column that survived); then down to base and up again. On SQLite and PostgreSQL.

The rows are generated from the schema as reflected at the first revision — never from
today's models — so a table or column added later changes nothing here, and a migration
that loses, rewrites or refuses existing rows fails this test.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Column, MetaData, Table, inspect, select, types
from sqlalchemy.engine import Connection

from ivr.store import migrate
from ivr.store.db import Database
from ivr.store.tables import Base

pytestmark = pytest.mark.anyio

ROWS_PER_TABLE = 2
Row = dict[str, Any]


# Values a migration's data step looks for (0007 re-sends open refunds: 'pending').
DOMAIN = {"status": "pending"}


def plausible(table: Table, column: Column[Any], i: int) -> Any:
    """A value of the column's type that no other row of the table has (bar the few
    in DOMAIN, where a migration's UPDATE should find rows)."""
    t = column.type
    if column.name in DOMAIN and not column.unique and not column.primary_key:
        return DOMAIN[column.name]
    if isinstance(t, types.Boolean):
        return i % 2 == 0
    if isinstance(t, types.Integer):
        return 1000 + i
    if isinstance(t, types.DateTime):
        moment = datetime(2026, 1, 2, 3, 4, 5 + i, 123000, tzinfo=UTC)
        return moment if t.timezone else moment.replace(tzinfo=None)
    if isinstance(t, types.Date):
        return date(2026, 1, 2 + i)
    if isinstance(t, types.JSON):
        return {"table": table.name, "row": i, "list": [1, "둘", None]}
    if isinstance(t, types.LargeBinary):
        return bytes([i, 0, 255])
    if isinstance(t, types.Float):
        return 1.25 + i
    if isinstance(t, types.Numeric):
        return Decimal(f"12.{i}")
    if isinstance(t, types.String):  # VARCHAR(n) and TEXT
        value = f"{column.name}-{i}"
        return value[-t.length :] if t.length else value
    raise AssertionError(f"{table.name}.{column.name}: no plausible value for {t!r}")


def generate(metadata: MetaData) -> dict[str, list[Row]]:
    """``ROWS_PER_TABLE`` rows per table, parents first; row i of a child refers to row
    i of its parent."""
    rows: dict[str, list[Row]] = {}
    for table in metadata.sorted_tables:
        made: list[Row] = []
        for i in range(ROWS_PER_TABLE):
            row = {c.name: plausible(table, c, i) for c in table.columns}
            for fk in table.foreign_keys:
                parent = fk.column.table.name
                if parent == table.name:
                    row[fk.parent.name] = None if fk.parent.nullable else row[fk.column.name]
                else:
                    row[fk.parent.name] = rows[parent][i][fk.column.name]
            made.append(row)
        rows[table.name] = made
    return rows


def _reflect(conn: Connection) -> MetaData:
    metadata = MetaData()
    metadata.reflect(conn)
    metadata.remove(metadata.tables["alembic_version"])
    return metadata


def _snapshot(conn: Connection) -> dict[str, dict[tuple[Any, ...], Row]]:
    """Every row of every table, by primary key, as the reflected schema reads it."""
    out: dict[str, dict[tuple[Any, ...], Row]] = {}
    for table in _reflect(conn).sorted_tables:
        pk = [c.name for c in table.primary_key.columns]
        out[table.name] = {
            tuple(r[k] for k in pk): dict(r) for r in conn.execute(select(table)).mappings()
        }
    return out


def _fill(conn: Connection) -> int:
    metadata = _reflect(conn)
    rows = generate(metadata)
    for table in metadata.sorted_tables:
        conn.execute(table.insert(), rows[table.name])
    return len(metadata.tables)


async def test_rows_from_the_first_migration_survive_the_upgrade(empty_db_url: str) -> None:
    first = ScriptDirectory.from_config(migrate.alembic_config()).get_base()
    assert first is not None
    db = Database(empty_db_url)
    try:
        assert await migrate.upgrade(db, first) == first
        async with db.engine.begin() as conn:
            tables = await conn.run_sync(_fill)
        assert tables >= 10  # the first revision's schema, reflected
        async with db.engine.connect() as conn:
            before = await conn.run_sync(_snapshot)
        assert all(len(rows) == ROWS_PER_TABLE for rows in before.values())

        assert await migrate.upgrade(db) == migrate.head()
        async with db.engine.connect() as conn:
            after = await conn.run_sync(_snapshot)
        for name, rows in before.items():
            assert name in after, f"{name}: dropped by an upgrade"
            assert after[name].keys() == rows.keys(), f"{name}: rows lost or added"
            for key, row in rows.items():
                kept = {c: v for c, v in after[name][key].items() if c in row}
                survived = {c: v for c, v in row.items() if c in kept}
                assert kept == survived, f"{name} {key}: values changed"
        # 0007's data step found the open refunds: sent once, from their creation.
        assert [r["sends"] for r in after["refunds"].values()] == [1] * ROWS_PER_TABLE
        assert all(r["sent_at"] == r["created_at"] for r in after["refunds"].values())
        await migrate.check(db)  # and the schema is the models'

        # Down to base (the first revision's tables are dropped with their rows), up again.
        assert await migrate.downgrade(db, "base") is None
        async with db.engine.connect() as conn:
            left = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert not (set(Base.metadata.tables) & left)
        assert await migrate.upgrade(db) == migrate.head()
    finally:
        await db.close()


async def test_a_sqlite_migration_leaving_dangling_references_is_rolled_back(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'fk.db'}")
    try:

        def schema(conn: Connection) -> None:
            conn.exec_driver_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
            conn.exec_driver_sql(
                "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent)"
            )

        def dangling(conn: Connection) -> None:
            conn.exec_driver_sql("INSERT INTO child VALUES (1, 42)")  # accepted: keys are off

        await migrate._run(db, schema)
        with pytest.raises(migrate.ForeignKeyViolation, match="child"):
            await migrate._run(db, dangling)
        async with db.engine.connect() as conn:
            assert (await conn.exec_driver_sql("SELECT count(*) FROM child")).scalar() == 0
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
    finally:
        await db.close()
