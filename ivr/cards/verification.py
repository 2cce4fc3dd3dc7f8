"""The durable limit on knowledge-factor failures of one card (docs/product.md §2 item 3).

A payment call with the registered card asks the payer for the card's birth date (or
business number); the vault compares it (``verify_birth``). A caller who spoofs the
payer's number could otherwise guess by calling again and again, so failures are
counted on the card row, across calls, and ``max_failures`` of them within ``window``
lock the card for phone payments for ``window`` — until the time passes or the merchant
unlocks it (:meth:`CardVerification.unlock`: API, console, CLI). Automatic charges of
the card are not affected: they need no call.

Every check is **reserved before the vault is asked**: under the card's row lock a
locked card is refused, otherwise the failure count goes up by one and commits. A match
gives its own reservation back (:meth:`give_back`); a mismatch keeps it and locks the card
when the count reaches the limit (:meth:`failed`). So calls racing each other get no
more tries than the limit between them, and a success at the end of a burst does not
wipe the burst's failures: they age out with the window.

Nothing here ever sees the digits: the count, the times and the audit rows only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from ivr.audit import audit_row
from ivr.clock import Clock
from ivr.errors import NotFound
from ivr.merchants.policy import MerchantPolicy
from ivr.store.db import Database
from ivr.store.scope import Scope
from ivr.store.tables import Card
from ivr.webhooks.notices import card_verify_locked_in


@dataclass(frozen=True, slots=True)
class VerifyLimits:
    max_failures: int
    window: timedelta  # failures count within it; a lock lasts as long

    @classmethod
    def of(cls, policy: MerchantPolicy) -> VerifyLimits:
        return cls(policy.verify_max_failures, timedelta(hours=policy.verify_lock_hours))


def locked_until(card: Card, now: datetime) -> datetime | None:
    """When the card's lock for phone payments ends, or None if it is not locked."""
    until = card.verify_locked_until
    return until if until is not None and until > now else None


@dataclass(eq=False)
class CardVerification:
    db: Database
    clock: Clock

    async def _card(self, s: AsyncSession, card_id: str) -> Card:
        card = await s.get(Card, card_id, with_for_update=True)
        if card is None:
            raise NotFound(f"card {card_id} not found")
        return card

    def _age(self, card: Card, limits: VerifyLimits, now: datetime) -> None:
        """Forget a lock that has run out and failures older than the window."""
        if card.verify_locked_until is not None and card.verify_locked_until <= now:
            card.verify_locked_until = None
            card.verify_failures = 0
            card.verify_failed_since = None
        since = card.verify_failed_since
        if since is None or since <= now - limits.window:
            card.verify_failures = 0
            card.verify_failed_since = None

    async def is_locked(self, card_id: str) -> datetime | None:
        async with self.db.sessions() as s:
            card = await s.get(Card, card_id)
        if card is None:
            raise NotFound(f"card {card_id} not found")
        return locked_until(card, self.clock.now())

    async def reserve(self, card_id: str, limits: VerifyLimits) -> bool:
        """Count one check as failed before it is made; False (nothing counted) when the
        card is locked, or when checks in flight already use up what is left."""
        now = self.clock.now()
        async with self.db.transaction() as s:
            card = await self._card(s, card_id)
            if locked_until(card, now) is not None:
                return False
            self._age(card, limits, now)
            if card.verify_failures >= limits.max_failures:
                return False
            if card.verify_failed_since is None:
                card.verify_failed_since = now
            card.verify_failures += 1
            return True

    async def give_back(self, card_id: str) -> None:
        """The check matched, or never reached the vault: give its reservation back
        (other failures stay)."""
        async with self.db.transaction() as s:
            card = await self._card(s, card_id)
            card.verify_failures = max(0, card.verify_failures - 1)

    async def failed(self, card_id: str, limits: VerifyLimits, *, actor: str) -> bool:
        """The check did not match (its reservation stays counted); True when the card
        is now locked for phone payments — audited and told to the merchant
        (``card.verify_locked``)."""
        now = self.clock.now()
        async with self.db.transaction() as s:
            card = await self._card(s, card_id)
            audit_row(s, self.clock, actor, "card.verify_failed", card,
                      {"failures": card.verify_failures})  # fmt: skip
            if locked_until(card, now) is not None:
                return True
            if card.verify_failures < limits.max_failures:
                return False
            card.verify_locked_until = now + limits.window
            await self._locked_in(s, card, actor=actor)
            return True

    async def lock(self, card_id: str, limits: VerifyLimits, *, actor: str) -> None:
        """Lock the card now (the vault refused to answer: its own ceiling was hit)."""
        now = self.clock.now()
        async with self.db.transaction() as s:
            card = await self._card(s, card_id)
            if locked_until(card, now) is None:
                card.verify_locked_until = now + limits.window
                await self._locked_in(s, card, actor=actor)

    async def _locked_in(self, s: AsyncSession, card: Card, *, actor: str) -> None:
        assert card.verify_locked_until is not None
        audit_row(s, self.clock, actor, "card.verify_locked", card,
                  {"failures": card.verify_failures,
                   "until": card.verify_locked_until.isoformat()})  # fmt: skip
        await card_verify_locked_in(s, self.clock, card)

    async def unlock(self, merchant_id: str, card_id: str, *, actor: str) -> Card:
        """The merchant lifts the lock and clears the failures (audited; idempotent)."""
        async with self.db.transaction() as s:
            card = await Scope.of(merchant_id).one(s, Card, card_id, "card", lock=True)
            was = card.verify_locked_until
            card.verify_locked_until = None
            card.verify_failures = 0
            card.verify_failed_since = None
            audit_row(s, self.clock, actor, "card.verify_unlock", card,
                      {"was_locked_until": was.isoformat() if was else None})  # fmt: skip
            return card
