"""The orphan sweep: vault records that no card of this engine needs are erased.

A card reaches the vault before the engine has a row for it: a registration (or a
payment by a newly keyed card) tokenizes, asks the PG for a billing key, then attaches
the card in the engine database. An engine killed in between, a PG that failed or
never answered the billing-key call, or a card deleted whose vault erase did not go
through, leaves an encrypted card in the vault that nothing refers to and nothing will
ever erase — stored card data past its need (PCI DSS 3.2.1).

:class:`OrphanSweep` lists the vault's records older than a grace period
(``vault.orphan_grace_minutes``, far beyond any call) page by page and erases each
one whose token has no card row, or only a ``deleted`` one. A record of a merchant this
engine database does not know is left alone: it is not this engine's to judge. The
grace protects a call still between tokenize and attach; :func:`check_attachable`
closes the other side: a token older than half the grace is never attached.

A call that died after the PG issued the billing key left that key at the PG too. Its
``customer_uid`` is derived from the vault token (:func:`billing_key_uid`), so the sweep
can name it: with a gateway, an orphan's key is deleted at the PG first (a key the PG
does not know is fine), and only then is the vault record erased — a PG that fails
leaves both for the next sweep. The key of a *deleted* card is the billing-key
reaper's (``ivr/cards/billing_keys.py``), which reads it from the card row.

It runs in the engine (every ``vault.sweep_interval_minutes``; several engines may
sweep at once, an erase is idempotent) and as ``arspay vault sweep-orphans``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from ivr.audit import audit
from ivr.clock import Clock
from ivr.domain.states import CardStatus
from ivr.errors import ArspayError, Conflict
from ivr.gateways.contract import Gateway
from ivr.store.db import Database
from ivr.store.tables import Card, Merchant
from vault.client import VaultClient
from vault.errors import TokenNotFound
from vault.models import CardMetadata, TokenRef

log = logging.getLogger(__name__)

ACTOR = "engine:orphan-sweep"


class StaleToken(Conflict, error_id="stale-vault-token"):
    """A vault token too old to attach: the orphan sweep may already erase it."""


def billing_key_uid(token: str, account: str | None = None) -> str:
    """The PG ``customer_uid`` of the billing key issued for a vault token: derived, so
    that a key whose card was never attached can still be found; one-way, so the PG
    does not learn the token. ``account``: the key of the same card at another PG
    account (a card migration) — a name of its own there; ``None`` or ``"default"``
    gives the default account's, unchanged."""
    material = b"arspay billing key\0" + token.encode()
    if account and account != "default":
        material += b"\0account\0" + account.encode()
    digest = hashlib.sha256(material).hexdigest()
    return f"bk_{digest[:26].upper()}"


def check_attachable(meta: CardMetadata, now: datetime, grace: timedelta) -> None:
    """Refuse to attach a card tokenized more than half the sweep's grace ago, so that
    a sweep never erases a record that a slow attach is about to refer to."""
    if now - meta.created_at > grace / 2:
        raise StaleToken("the card was stored too long ago to attach; enter it again")


@dataclass
class SweepReport:
    checked: int = 0  # vault records older than the grace
    orphans: int = 0  # of them, with no card row or only a deleted one
    erased: int = 0  # orphans erased now (0 on a dry run)
    foreign: int = 0  # records of merchants this engine database does not know
    failed: int = 0  # erases that failed (the next sweep tries again)
    keys_deleted: int = 0  # billing keys of orphans the PG still had, deleted there


class OrphanSweep:
    def __init__(
        self,
        db: Database,
        vault: VaultClient,
        clock: Clock,
        *,
        grace: timedelta,
        gateway: Gateway | None = None,
        page: int = 500,
    ) -> None:
        """``gateway``: also delete the orphans' billing keys at the PG (without one,
        only the vault records go)."""
        if grace < timedelta(minutes=10):
            raise ValueError("the orphan grace must be at least 10 minutes")
        self.db, self.vault, self.clock, self.gateway = db, vault, clock, gateway
        self.grace, self.page = grace, page

    async def sweep(self, *, dry_run: bool = False) -> SweepReport:
        report = SweepReport()
        cutoff = self.clock.now() - self.grace
        after = ""
        while refs := await self.vault.tokens(created_before=cutoff, after=after, limit=self.page):
            after = refs[-1].token
            report.checked += len(refs)
            for ref in await self._orphans(refs, report):
                report.orphans += 1
                if not dry_run:
                    await self._erase(ref, report)
        if report.orphans or report.failed:
            log.warning(
                "orphan sweep: %d vault record(s) without a card, %d erased, %d failed%s",
                report.orphans,
                report.erased,
                report.failed,
                " (dry run)" if dry_run else "",
            )
        return report

    async def _orphans(self, refs: list[TokenRef], report: SweepReport) -> list[TokenRef]:
        async with self.db.sessions() as s:
            found = await s.execute(
                select(Card.vault_token, Card.status).where(
                    Card.vault_token.in_([r.token for r in refs])
                )
            )
            cards = {token: status for token, status in found}
            ours = set(
                await s.scalars(
                    select(Merchant.id).where(
                        Merchant.id.in_(sorted({r.merchant_id for r in refs}))
                    )
                )
            )
        orphans = []
        for ref in refs:
            if ref.merchant_id not in ours:
                report.foreign += 1
            elif cards.get(ref.token, CardStatus.deleted.value) == CardStatus.deleted.value:
                orphans.append(ref)
        return orphans

    async def _erase(self, ref: TokenRef, report: SweepReport) -> None:
        async with self.db.sessions() as s:  # a card attached meanwhile keeps its record
            status = await s.scalar(select(Card.status).where(Card.vault_token == ref.token))
        if status not in (None, CardStatus.deleted.value):
            return
        why = "no card refers to it" if status is None else "its card was deleted"
        key_deleted = False
        if status is None and self.gateway is not None:  # the PG first: then the record
            try:
                key_deleted = await self.gateway.delete_billing_key(
                    billing_key_uid(ref.token), reason="card never attached"
                )
            except ArspayError as exc:
                report.failed += 1
                log.warning("orphan sweep: billing key not deleted (%s)", exc.error_id)
                return
        try:
            with contextlib.suppress(TokenNotFound):  # another sweep was first
                await self.vault.delete(ref.token, ref.merchant_id, who=ACTOR, why=why)
        except ArspayError as exc:
            report.failed += 1
            log.warning("orphan sweep: erase failed (%s)", exc.error_id)
            return
        async with self.db.transaction() as s:
            audit(
                s,
                self.clock,
                actor=ACTOR,
                action="vault.orphan_erased",
                object_type="vault_record",
                object_id=ref.token,
                merchant_id=ref.merchant_id,
                details={
                    "why": why,
                    "created_at": ref.created_at.isoformat(),
                    "billing_key_deleted": key_deleted,
                },
            )
        report.erased += 1
        report.keys_deleted += key_deleted

    async def run(self, every: timedelta) -> None:
        """Sweep now and then every ``every``, until cancelled."""
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("orphan sweep failed")
            await asyncio.sleep(every.total_seconds())
