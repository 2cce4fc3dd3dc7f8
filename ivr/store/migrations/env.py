"""Alembic environment: one chain for SQLite and PostgreSQL (batch mode on SQLite)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from ivr.store.tables import Base

config = context.config
target_metadata = Base.metadata


def _not_the_vaults(obj: object, name: str | None, type_: str, reflected: bool, _: object) -> bool:
    """The vault's tables (``vault_*``, created by the vault itself, vault/schema.py) may
    share the engine's database; they are not this chain's to compare or drop."""
    return not (type_ == "table" and reflected and (name or "").startswith("vault_"))


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=_not_the_vaults,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_standalone() -> None:
    from ivr.settings import load_settings
    from ivr.store.db import Database

    db = Database.from_settings(load_settings())
    try:
        async with db.engine.connect() as conn:
            await conn.run_sync(_run)
            await conn.commit()
    finally:
        await db.close()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_standalone())
