"""Card migrations: a merchant's stored cards moved to another PG account without the
payers (ivr/pg_accounts/migration.py). ``POST`` starts a batch — or resumes the running
one to the same account — and the engine's workers move the cards in the background
(ivr/pg_accounts/worker.py); ``GET`` shows its cards by step."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from ivr.api.route import actor
from ivr.api.routes.common import WRITE_ERRORS, Deps, Me
from ivr.api.routes.common import router as make_router
from ivr.api.schemas import _In, _Out
from ivr.errors import Conflict
from ivr.pg_accounts.migration_store import BatchView

router = make_router("card migrations")


class CardMigrationIn(_In):
    to_account: str = Field(
        min_length=1, max_length=40, description="the PG account the cards move to ('default')"
    )


class CardMigrationOut(_Out):
    id: str
    object: Literal["card_migration"] = "card_migration"
    to_account: str
    status: Literal["running", "finished"]
    total: int
    counts: dict[str, int] = Field(
        description="cards by step: pending, issued, switched, done, failed, needs_payer"
    )
    created_at: datetime
    finished_at: datetime | None


def _out(b: BatchView) -> CardMigrationOut:
    return CardMigrationOut(id=b.id, to_account=b.to_account,
                            status="finished" if b.status == "finished" else "running",
                            total=b.total, counts=b.counts, created_at=b.created_at,
                            finished_at=b.finished_at)  # fmt: skip


@router.post(
    "/card-migrations",
    status_code=201,
    responses=WRITE_ERRORS,
    summary="Move your stored cards to another PG account (or resume the running move)",
)
async def start_card_migration(body: CardMigrationIn, d: Deps, me: Me) -> CardMigrationOut:
    if d.card_migrations is None:
        raise Conflict("card migrations are not available in this process")
    batch = await d.card_migrations.start(me.merchant_id, body.to_account, actor=actor(me))
    return _out(batch)


@router.get("/card-migrations/{migration_id}", summary="A card migration and its cards by step")
async def get_card_migration(migration_id: str, d: Deps, me: Me) -> CardMigrationOut:
    if d.card_migrations is None:
        raise Conflict("card migrations are not available in this process")
    return _out(await d.card_migrations.store.batch(migration_id, me.merchant_id))
