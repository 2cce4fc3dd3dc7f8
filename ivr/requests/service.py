"""Call request service: create (lease a DID + queue the SMS, in one transaction),
move through the ``CALL_REQUEST`` state machine, expire, cancel."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.audit import audit_row
from ivr.clock import Clock
from ivr.dids.pool import DidPool
from ivr.domain.ids import new_id
from ivr.domain.states import (
    CALL_REQUEST,
    DELIVERY,
    CallRequestKind,
    CallRequestStatus,
    DeliveryStatus,
    LeaseStatus,
    PaymentIntentStatus,
)
from ivr.domain.terms import check_amount
from ivr.domain.text import clean_text
from ivr.errors import CustomerDeleted, InvalidInput, NotFound
from ivr.merchants.policy import MerchantPolicy
from ivr.notify.notices.router import NoticeRouter
from ivr.notify.templates import payment_sms, registration_sms
from ivr.store.db import Database, locked_in
from ivr.store.scope import Scope
from ivr.store.tables import CallRequest, Customer, Lease, Merchant, PaymentIntent, SmsMessage
from ivr.webhooks.notices import request_ended_in

PAID = frozenset(
    status.value
    for status in (
        PaymentIntentStatus.succeeded,
        PaymentIntentStatus.partially_refunded,
        PaymentIntentStatus.refunded,
    )
)


@dataclass(frozen=True, slots=True)
class NewRequest:
    request: CallRequest
    sms: SmsMessage


@dataclass(eq=False)
class CallRequestService:
    db: Database
    clock: Clock
    pool: DidPool
    _: KW_ONLY
    sms_sender: str
    sms_adapter: str

    async def create(
        self,
        merchant_id: str,
        customer_id: str,
        kind: CallRequestKind,
        *,
        product_name: str,
        amount: int | None = None,
        lease_minutes: int | None = None,
        actor: str = "cli",
        request_id: str | None = None,
    ) -> NewRequest:
        # it would be stored, texted and read out
        product_name = clean_text(product_name, "product_name")
        if kind is CallRequestKind.payment:
            if amount is None:
                raise InvalidInput("a payment request needs an integer amount in KRW")
            check_amount(amount)
        elif amount is not None:
            raise InvalidInput("a registration request takes no amount")
        now = self.clock.now()
        async with self.db.transaction() as s:
            scope = Scope.of(merchant_id)
            merchant = await scope.one(s, Merchant, merchant_id, "merchant")
            customer = await scope.one(s, Customer, customer_id, "customer")
            if customer.deleted_at is not None:
                raise CustomerDeleted(f"customer {customer_id} was deleted")
            if lease_minutes is None:  # the merchant's default, else the operator's
                lease_minutes = MerchantPolicy.parse(merchant.settings).lease_minutes
            request_id = request_id or new_id("creq")
            lease = await self.pool.lease_in(
                s, customer.mobile, kind.value, call_request_id=request_id, minutes=lease_minutes
            )
            req = CallRequest(
                id=request_id,
                merchant_id=merchant_id,
                customer_id=customer_id,
                kind=kind.value,
                status=CALL_REQUEST.initial.value,
                did=lease.did,
                mobile=lease.mobile,
                lease_id=lease.id,
                product_name=product_name,
                amount=amount,
                calls=0,
                created_at=now,
                updated_at=now,
                expires_at=lease.expires_at,
            )
            if kind is CallRequestKind.registration:
                body = registration_sms(merchant.name, lease.did, lease.expires_at)
            else:
                assert amount is not None
                body = payment_sms(merchant.name, product_name, amount, lease.did, lease.expires_at)
            sms = SmsMessage(
                id=new_id("sms"),
                merchant_id=merchant_id,
                call_request_id=request_id,
                kind=kind.value,
                to=lease.mobile,
                sender=self.sms_sender,
                body=body,
                adapter=self.sms_adapter,
                status=DeliveryStatus.pending.value,
                attempts=0,
                created_at=now,
            )
            s.add_all([req, sms])
            audit_row(s, self.clock, actor, "call_request.create", req,
                      {"kind": kind.value, "did": lease.did})  # fmt: skip
        return NewRequest(req, sms)

    async def get(self, merchant_id: str | None, request_id: str) -> CallRequest:
        async with self.db.sessions() as s:
            return await Scope(merchant_id).one(s, CallRequest, request_id, "call request")

    async def transition(
        self, request_id: str, target: CallRequestStatus, *, actor: str
    ) -> CallRequest:
        async with self.db.transaction() as s:
            return await self.transition_in(s, request_id, target, actor=actor)

    async def sms_sent_in(self, s: AsyncSession, request_id: str | None) -> None:
        """The request's SMS went out: ``created`` -> ``sms_sent`` (a request further
        along, or none, stays as it is)."""
        created = CallRequestStatus.created.value
        if request_id and await locked_in(s, CallRequest, request_id, created) is not None:
            await self.transition_in(s, request_id, CallRequestStatus.sms_sent, actor="system")

    async def transition_in(
        self, s: AsyncSession, request_id: str, target: CallRequestStatus, *, actor: str
    ) -> CallRequest:
        """Lock the request row, check the transition, apply it; end the lease when the
        request ends (released on an outcome, expired on expiry)."""
        req = await s.get(CallRequest, request_id, with_for_update=True)
        if req is None:
            raise NotFound(f"call request {request_id} not found")
        previous = req.status
        req.status = CALL_REQUEST.check(req.status, target).value
        now = self.clock.now()
        req.updated_at = now
        if target is CallRequestStatus.in_call:
            req.calls += 1
        if CALL_REQUEST.is_terminal(target):
            req.ended_at = now
            lease = await s.get(Lease, req.lease_id)
            if lease is not None and lease.status == LeaseStatus.active.value:
                end = (
                    LeaseStatus.expired
                    if target is CallRequestStatus.expired
                    else LeaseStatus.released
                )
                await self.pool.end_in(s, lease.id, end)
        audit_row(s, self.clock, actor, f"call_request.{target.value}", req, {"from": previous})
        if CALL_REQUEST.is_terminal(target):  # registration.*, call_request.expired
            await request_ended_in(s, self.clock, req)
        return req

    async def payment_settled_in(self, s: AsyncSession, intent_id: str) -> None:
        """A charge that was still unknown when its call ended ("pay.pending") succeeded
        later (the sweeper, a PG webhook): its request, waiting for the next call, is
        ``completed`` now instead of staying open until it expires."""
        waiting = CallRequestStatus.sms_sent.value
        rid = await s.scalar(
            select(CallRequest.id).where(
                CallRequest.payment_intent_id == intent_id, CallRequest.status == waiting
            )
        )
        if rid is not None and await locked_in(s, CallRequest, rid, waiting) is not None:
            await self.transition_in(s, rid, CallRequestStatus.completed, actor="system")

    def after_call(self, req: CallRequest, max_calls: int) -> CallRequestStatus:
        """Where a request goes when a call ends without an outcome: back to waiting for
        the next call, or ``failed`` after ``max_calls`` calls, or ``expired``."""
        if req.expires_at <= self.clock.now():
            return CallRequestStatus.expired
        if req.calls >= max_calls:
            return CallRequestStatus.failed
        return CallRequestStatus.sms_sent

    async def _after_call_in(
        self, s: AsyncSession, req: CallRequest, max_calls: int
    ) -> CallRequestStatus:
        """:meth:`after_call`, except that a request whose charge succeeded while the
        call was still on (it ended on "pay.pending", and the sweeper settled the charge
        before the hang-up) is ``completed``."""
        if req.payment_intent_id:
            intent = await s.get(PaymentIntent, req.payment_intent_id)
            if intent is not None and intent.status in PAID:
                return CallRequestStatus.completed
        return self.after_call(req, max_calls)

    async def release_call(self, request_id: str, *, max_calls: int) -> CallRequestStatus | None:
        """After a call: a request still ``in_call`` moves on (:meth:`after_call`).
        Returns the new status, or None when the call's flow already ended it."""
        async with self.db.transaction() as s:
            req = await s.get(CallRequest, request_id, with_for_update=True)
            if req is None or req.status != CallRequestStatus.in_call.value:
                return None
            target = await self._after_call_in(s, req, max_calls)
            await self.transition_in(s, request_id, target, actor="call")
            return target

    async def release_stale_calls(self, *, older_than: timedelta, max_calls: int) -> int:
        """Requests left ``in_call`` by an engine that died mid-call (no call lasts this
        long): release them as if the call had ended."""
        cutoff = self.clock.now() - older_than
        in_call = CallRequestStatus.in_call.value
        ids = await self.db.all(
            select(CallRequest.id).where(
                CallRequest.status == in_call, CallRequest.updated_at <= cutoff
            )
        )
        done = 0
        for rid in ids:
            async with self.db.transaction() as s:
                req = await locked_in(s, CallRequest, rid, in_call)
                if req is None:
                    continue
                if req.updated_at > cutoff:
                    continue  # a new call took it meanwhile
                target = await self._after_call_in(s, req, max_calls)
                await self.transition_in(s, rid, target, actor="system")
                done += 1
        return done

    async def expire_due(self) -> int:
        """Expire every open request past its lifetime that is not in a call now, nor
        waiting for a charge its call began (it ends with that charge's result)."""
        now = self.clock.now()
        open_states = [CallRequestStatus.created.value, CallRequestStatus.sms_sent.value]
        charging = select(PaymentIntent.id).where(
            PaymentIntent.status.in_(
                [PaymentIntentStatus.created.value, PaymentIntentStatus.processing.value]
            )
        )
        ids = await self.db.all(
            select(CallRequest.id).where(
                CallRequest.status.in_(open_states),
                CallRequest.expires_at <= now,
                CallRequest.payment_intent_id.is_(None)
                | CallRequest.payment_intent_id.not_in(charging),
            )
        )
        done = 0
        for rid in ids:
            async with self.db.transaction() as s:
                if await locked_in(s, CallRequest, rid, *open_states) is None:
                    continue  # someone else moved it meanwhile
                await self.transition_in(s, rid, CallRequestStatus.expired, actor="system")
                done += 1
        return done


@dataclass(eq=False)
class DevOutbox:
    """The development SMS outbox: messages are stored and shown, never sent. Marks
    pending outbox messages ``sent`` and their requests ``sms_sent``."""

    db: Database
    clock: Clock
    requests: CallRequestService
    notices: NoticeRouter | None = None

    async def deliver_pending(self) -> int:
        if self.notices is not None:  # payer notices become outbox messages first
            await self.notices.route_pending()
        pending = DeliveryStatus.pending.value
        ids = await self.db.all(
            select(SmsMessage.id).where(
                SmsMessage.adapter == "outbox", SmsMessage.status == pending
            )
        )
        for sms_id in ids:
            async with self.db.transaction() as s:
                sms = await locked_in(s, SmsMessage, sms_id, pending)
                if sms is None:
                    continue
                # The outbox "sends" by keeping the message: pending -> sending -> sent.
                DELIVERY.check(sms.status, DeliveryStatus.sending)
                sms.status = DELIVERY.check(DeliveryStatus.sending, DeliveryStatus.sent).value
                sms.attempts += 1
                sms.sent_at = self.clock.now()
                await self.requests.sms_sent_in(s, sms.call_request_id)
        return len(ids)
