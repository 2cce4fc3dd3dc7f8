"""The engine's worker of card migrations: every running batch (started by ``POST
/v1/card-migrations`` or a CLI run that stopped) is driven by the engines, each pass
taking the cards no other runner holds (:mod:`.migration_store`), so several engines
share the work and a card left open (PG down, an open charge) is tried again."""

from __future__ import annotations

import logging

from ivr.clock import Clock
from ivr.pg_accounts.book import GatewayBook
from ivr.pg_accounts.migration import ACTOR, CardMigrator
from ivr.store.db import Database
from vault.client import VaultClient

log = logging.getLogger(__name__)

INTERVAL_S = 5.0


def card_migrator(
    db: Database, clock: Clock, vault: VaultClient, book: GatewayBook
) -> CardMigrator:
    """The runtime's migrator: its vault (which forwards to the target account's
    route), and the accounts' gateways behind their breakers (old keys are deleted at
    their own accounts)."""
    return CardMigrator(db, clock, vault, book, known=book.accounts)


async def drive(m: CardMigrator, clock: Clock, *, interval_s: float = INTERVAL_S) -> None:
    while True:
        for batch_id in await m.store.running():
            try:
                await m.run(batch_id, actor=ACTOR)
            except Exception as exc:  # the next round tries again
                log.warning("card migration %s: pass failed (%s)", batch_id, type(exc).__name__)
        await clock.sleep(interval_s)
