"""Customer changes: a new name, mobile or ``external_ref``, and deletion (#31 item 4).

**A mobile change** cancels the customer's open call requests (``created``,
``sms_sent``) in the same transaction: each request's lease binds its DID to the *old*
mobile, and a lease is what lets a phone pay, so keeping them open would let the old
phone (perhaps someone else's by now) pay or register a card. Moving the requests to
the new mobile is not done: the SMS with the number to call went to the old phone, and
the new phone never got it. The merchant sends a new request (its SMS goes to the new
mobile). A request in a call refuses the change (409 ``customer-in-call``).

**Deletion** (personal data removed, records kept): in one transaction the open
requests are cancelled (their leases released), active and paused schedules cancelled,
active cards marked ``deleted`` and the row's ``name``, ``mobile`` and
``external_ref`` blanked, ``deleted_at`` set, a ``customer.deleted`` webhook event
written. Then every card's vault record is erased (:meth:`CardService.erase`; a
repeated delete erases again, idempotently); the billing keys are deleted at the PG by
the :class:`~ivr.cards.billing_keys.BillingKeyReaper` like any deleted card's. The row
id stays: payments, cards, audit rows and the consent ledger name it. The consent
records are not touched: they are MAC-chained evidence of what the payer agreed to
(the caller id among it) that the merchant must keep, and ``arspay consent verify``
still passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.audit import audit_row
from ivr.cards.service import CardService
from ivr.clock import Clock
from ivr.domain.states import CARD, SCHEDULE, CallRequestStatus, CardStatus, ScheduleStatus
from ivr.domain.text import check_text, clean_text
from ivr.errors import Conflict, CustomerDeleted, CustomerInCall, InvalidInput
from ivr.phone import PhoneError, normalize_mobile
from ivr.requests.service import CallRequestService
from ivr.store.db import Database
from ivr.store.scope import Scope
from ivr.store.tables import CallRequest, Card, Customer, Schedule
from ivr.webhooks.events import emit_in

OPEN = (CallRequestStatus.created.value, CallRequestStatus.sms_sent.value)
LIVE_SCHEDULES = (ScheduleStatus.active.value, ScheduleStatus.paused.value)


@dataclass(frozen=True, slots=True)
class Changed:
    customer: Customer
    cancelled: list[str] = field(default_factory=list)  # call request ids


@dataclass(eq=False)
class CustomerChanges:
    db: Database
    clock: Clock
    requests: CallRequestService
    cards: CardService

    async def update(
        self,
        merchant_id: str,
        customer_id: str,
        *,
        fields: dict[str, str | None],
        actor: str,
    ) -> Changed:
        """Change ``name``, ``mobile`` and/or ``external_ref`` (the keys present in
        ``fields``; ``external_ref`` None removes it)."""
        new = _checked(fields)
        async with self.db.transaction() as s:
            row = await _live(s, merchant_id, customer_id)
            before = {k: getattr(row, k) for k in new}
            changed = {k: v for k, v in new.items() if before[k] != v}
            cancelled: list[str] = []
            if "mobile" in changed:
                cancelled = await self._end_requests_in(s, row, actor=actor, why="mobile_changed")
            for key, value in changed.items():
                setattr(row, key, value)
            if changed:
                try:
                    await s.flush()
                except IntegrityError:  # the (merchant_id, external_ref) unique index
                    ref = changed.get("external_ref")
                    raise Conflict(f"a customer with external_ref {ref!r} exists") from None
                # which fields changed, never their values (personal data stays out)
                audit_row(s, self.clock, actor, "customer.update", row,
                          {"fields": sorted(changed), "cancelled_requests": cancelled})  # fmt: skip
        return Changed(row, cancelled)

    async def delete(self, merchant_id: str, customer_id: str, *, actor: str) -> Changed:
        """Delete the customer (see the module doc); deleting twice only erases the
        cards' vault records again."""
        async with self.db.transaction() as s:
            row = await Scope.of(merchant_id).one(s, Customer, customer_id, "customer", lock=True)
            cancelled: list[str] = []
            if row.deleted_at is None:
                cancelled = await self._end_requests_in(s, row, actor=actor, why="customer_deleted")
                schedules = await self._cancel_schedules_in(s, row, actor=actor)
                cards = await self._delete_cards_in(s, row, actor=actor)
                row.name = ""
                row.mobile = ""
                row.external_ref = None
                row.deleted_at = self.clock.now()
                audit_row(s, self.clock, actor, "customer.delete", row,
                          {"cancelled_requests": cancelled, "cancelled_schedules": schedules,
                           "deleted_cards": cards})  # fmt: skip
                await emit_in(s, self.clock, merchant_id, "customer.deleted",
                              {"customer_id": row.id, "cards": cards,
                               "call_requests_cancelled": cancelled,
                               "schedules_cancelled": schedules})  # fmt: skip
            every = list(await s.scalars(Scope.of(merchant_id).select(Card, customer_id=row.id)))
        for card in every:  # after the commit: a vault that fails leaves a retry
            await self.cards.erase(card, actor=actor, why="customer deleted")
        return Changed(row, cancelled)

    async def _end_requests_in(
        self, s: AsyncSession, row: Customer, *, actor: str, why: str
    ) -> list[str]:
        """Cancel the customer's open requests (their leases released); refuse while one
        is in a call."""
        open_or_in_call = (*OPEN, CallRequestStatus.in_call.value)
        q = select(CallRequest.id, CallRequest.status).where(
            CallRequest.customer_id == row.id, CallRequest.status.in_(open_or_in_call)
        )
        q = Scope.of(row.merchant_id).where(q, CallRequest)
        found = [(rid, status) for rid, status in await s.execute(q)]
        if any(status == CallRequestStatus.in_call.value for _, status in found):
            raise CustomerInCall(
                f"customer {row.id} is in a call now: try again when the call has ended"
            )
        ids = sorted(rid for rid, _ in found)
        for rid in ids:
            await self.requests.transition_in(s, rid, CallRequestStatus.cancelled, actor=actor)
        if ids:
            audit_row(s, self.clock, actor, "customer.requests_cancelled", row,
                      {"why": why, "call_requests": ids})  # fmt: skip
        return ids

    async def _cancel_schedules_in(
        self, s: AsyncSession, row: Customer, *, actor: str
    ) -> list[str]:
        scope = Scope.of(row.merchant_id)
        q = scope.select(Schedule, customer_id=row.id).where(Schedule.status.in_(LIVE_SCHEDULES))
        done = []
        for sch in await s.scalars(q.with_for_update()):
            sch.status = SCHEDULE.check(sch.status, ScheduleStatus.cancelled).value
            sch.updated_at = self.clock.now()
            sch.next_run_at = None
            audit_row(s, self.clock, actor, "schedule.cancelled", sch, {"why": "customer deleted"})
            done.append(sch.id)
        return sorted(done)

    async def _delete_cards_in(self, s: AsyncSession, row: Customer, *, actor: str) -> list[str]:
        active = CardStatus.active.value
        q = Scope.of(row.merchant_id).select(Card, customer_id=row.id, status=active)
        done = []
        for card in await s.scalars(q.with_for_update()):
            card.status = CARD.check(card.status, CardStatus.deleted).value
            card.deleted_at = self.clock.now()
            audit_row(s, self.clock, actor, "card.delete", card, {"why": "customer deleted"})
            done.append(card.id)
        return sorted(done)


async def _live(s: AsyncSession, merchant_id: str, customer_id: str) -> Customer:
    row = await Scope.of(merchant_id).one(s, Customer, customer_id, "customer", lock=True)
    if row.deleted_at is not None:
        raise CustomerDeleted(f"customer {customer_id} was deleted")
    return row


def _checked(fields: dict[str, str | None]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    if "name" in fields:
        out["name"] = clean_text(fields["name"] or "", "name", required=False)
    if "mobile" in fields:
        try:
            out["mobile"] = normalize_mobile(fields["mobile"] or "").digits
        except PhoneError as exc:
            raise InvalidInput(f"mobile: {exc}") from None
    if "external_ref" in fields:
        ref = fields["external_ref"] or None
        check_text(ref or "", "external_ref")
        out["external_ref"] = ref
    if not out:
        raise InvalidInput("nothing to change: give name, mobile or external_ref")
    return out
