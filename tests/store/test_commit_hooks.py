"""``Database.on_commit``: a transaction that inserted or updated rows in a watched
table calls the table's hooks once it has committed — not before, not on rollback, not
for a no-op update, not for other tables; ORM flushes and Core statements alike; each
Database its own hooks. On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, text, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ivr.store.db import Database

pytestmark = pytest.mark.anyio

meta = MetaData()
OTHER = Table("hook_other", meta, Column("id", Integer, primary_key=True))


class _Base(DeclarativeBase):
    metadata = meta


class Watched(_Base):
    __tablename__ = "hook_watched"
    id: Mapped[int] = mapped_column(primary_key=True)
    v: Mapped[str | None] = mapped_column(String)


WATCHED = Watched.__table__


async def test_hooks_fire_after_commits_that_wrote_rows_in_their_tables(db: Database) -> None:
    async with db.engine.begin() as conn:
        for name in ("hook_watched", "hook_other"):
            await conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
        await conn.run_sync(meta.create_all)
    calls: list[str] = []
    db.on_commit(["hook_watched"], lambda: calls.append("a"))
    db.on_commit(["hook_watched", "hook_other"], lambda: calls.append("b"))

    async with db.transaction() as s:  # Core insert: after the commit, each hook once
        await s.execute(insert(WATCHED).values(id=1, v="x"))
        assert calls == []
    assert sorted(calls) == ["a", "b"]

    calls.clear()
    async with db.transaction() as s:  # ORM flush
        s.add(Watched(id=2, v="y"))
    assert sorted(calls) == ["a", "b"]

    calls.clear()
    async with db.transaction() as s:  # an update that changed nothing
        await s.execute(update(WATCHED).where(WATCHED.c.id == 99).values(v="z"))
    async with db.transaction() as s:  # reads only
        await s.execute(WATCHED.select())

    async def rolled_back() -> None:
        async with db.transaction() as s:
            await s.execute(insert(WATCHED).values(id=3))
            raise RuntimeError

    with pytest.raises(RuntimeError):
        await rolled_back()
    assert calls == []
    async with db.transaction() as s:  # the next commit does not inherit the rollback's
        await s.execute(insert(OTHER).values(id=1))
    assert calls == ["b"]

    calls.clear()
    async with db.transaction() as s:
        await s.execute(update(WATCHED).where(WATCHED.c.id == 1).values(v="w"))
    assert sorted(calls) == ["a", "b"]

    other = Database(str(db.url.render_as_string(hide_password=False)))
    try:
        calls.clear()
        async with other.transaction() as s:  # another Database: not our hooks
            await s.execute(insert(WATCHED).values(id=4))
        assert calls == []
    finally:
        await other.close()


async def test_a_failing_hook_does_not_fail_the_commit(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS hook_other"))
        await conn.run_sync(lambda c: OTHER.create(c))
    later: list[int] = []

    def broken() -> None:
        raise RuntimeError("hook bug")

    db.on_commit(["hook_other"], broken)
    db.on_commit(["hook_other"], lambda: later.append(1))
    async with db.transaction() as s:
        await s.execute(insert(OTHER).values(id=7))
    assert later == [1]
    async with db.sessions() as s:
        assert (await s.execute(text("SELECT count(*) FROM hook_other"))).scalar() == 1
