"""Billing keys of deleted cards are deleted at the PG too.

Deleting a card erases its vault record at once (:meth:`CardService.delete`), but the
PG still holds the billing key the card was registered under, and anyone with the
merchant's PG credentials could charge it. The same goes for a one-off card (a payment
by a card the payer did not save): its row is ``deleted`` from the start and its key is
needed only for that payment.

:class:`BillingKeyReaper` — run by the engine's sweeper — deletes the key of every
``deleted`` card that has one and no payment still under way (``created``,
``processing`` or ``retry_scheduled``: a retry or an unknown outcome may still need
it) once the card has been deleted for ``gateway.billing_key_delete_after_minutes``
(a one-off card is ``deleted`` before its payment is created), then stamps
``cards.billing_key_deleted_at``. A PG that fails leaves the card for the next round;
a key the PG no longer knows counts as deleted. Several engines may reap at once: a
repeated delete is harmless and the stamp is written once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import exists, select, update

from ivr.audit import audit
from ivr.clock import Clock
from ivr.domain.states import CardStatus, PaymentIntentStatus
from ivr.gateways.accounts import Gateways, as_gateways
from ivr.gateways.contract import Gateway
from ivr.gateways.errors import GatewayError
from ivr.store.db import Database
from ivr.store.tables import Card, PaymentIntent

log = logging.getLogger(__name__)

ACTOR = "engine:billing-key-reaper"
IN_FLIGHT = (
    PaymentIntentStatus.created.value,
    PaymentIntentStatus.processing.value,
    PaymentIntentStatus.retry_scheduled.value,
)


@dataclass
class ReapReport:
    deleted: int = 0  # keys the PG deleted now
    unknown: int = 0  # keys the PG did not know (already gone): stamped too
    failed: int = 0  # the PG failed; tried again next round


class BillingKeyReaper:
    def __init__(
        self,
        db: Database,
        gateway: Gateway | Gateways,
        clock: Clock,
        *,
        after: timedelta,
        batch: int = 50,
    ) -> None:
        """``after``: how long after its deletion a card's key goes — longer than any
        call, since a one-off card is ``deleted`` before its payment is even created."""
        self.db, self.gateways, self.clock = db, as_gateways(gateway), clock
        self.after, self.batch = after, batch

    async def reap(self) -> ReapReport:
        report = ReapReport()
        async with self.db.sessions() as s:
            rows = (
                await s.execute(
                    select(Card.id, Card.merchant_id, Card.billing_key_ref, Card.pg_account_id)
                    .where(
                        Card.status == CardStatus.deleted.value,
                        Card.deleted_at < self.clock.now() - self.after,
                        Card.billing_key_ref.is_not(None),
                        Card.billing_key_deleted_at.is_(None),
                        ~exists().where(
                            PaymentIntent.card_id == Card.id, PaymentIntent.status.in_(IN_FLIGHT)
                        ),
                    )
                    .order_by(Card.deleted_at, Card.id)
                    .limit(self.batch)
                )
            ).all()
        for card_id, merchant_id, ref, account_id in rows:
            assert ref is not None
            await self._reap_one(card_id, merchant_id, ref, account_id, report)
        if report.deleted or report.failed:
            log.info(
                "billing keys of deleted cards: %d deleted at the PG, %d already gone, %d failed",
                report.deleted,
                report.unknown,
                report.failed,
            )
        return report

    async def _reap_one(
        self, card_id: str, merchant_id: str, ref: str, account_id: str | None, report: ReapReport
    ) -> None:
        # No lock is held across the PG call (on SQLite a write transaction would stop
        # every writer meanwhile): a key deleted twice by two engines is harmless, and
        # the stamp is written once.
        try:  # at the account holding the key
            gateway = await self.gateways.of(account_id)
            known = await gateway.delete_billing_key(ref, reason="card deleted")
        except GatewayError as exc:
            report.failed += 1
            log.warning("billing key of card %s not deleted (%s)", card_id, exc.error_id)
            return
        async with self.db.transaction() as s:
            stamped = await s.execute(
                update(Card)
                .where(Card.id == card_id, Card.billing_key_deleted_at.is_(None))
                .values(billing_key_deleted_at=self.clock.now())
            )
            if not stamped.rowcount:  # type: ignore[attr-defined]
                return  # another engine stamped it first
            audit(
                s,
                self.clock,
                actor=ACTOR,
                action="card.billing_key_deleted",
                object_type="card",
                object_id=card_id,
                merchant_id=merchant_id,
                details={"pg_knew_it": known},
            )
        if known:
            report.deleted += 1
        else:
            report.unknown += 1
