"""The possession check (docs/product.md §2): a call is admitted only when its (called DID,
caller ID) matches an active lease whose call request is still open.

Admission moves the request to ``in_call`` (counting the call) in the same transaction
that checks the lease, under the request's row lock, so two calls cannot both take it.
A rejection changes nothing. :func:`release` puts the request back to waiting when a
call ends without an outcome — or ends it ``failed`` once the request has used its
allowed calls.

A rejection says why (docs/product.md §4.1, issue #28), one prompt per reason
(:data:`REJECTION_PROMPTS`): withheld caller ID, another call on the request now, the
request's calls used up, a completed / declined or cancelled request, and for
everything else "not leased to this phone or expired". What a request became is told
only to the caller its lease names, and only while that lease's lifetime or cool-down
lasts (:func:`_closed`): the lookup is keyed by (called DID, caller ID), so a caller
whose number holds no lease on this DID learns nothing about anyone's request — they
hear ``auth.rejected`` as for a number nobody leased (THREAT_MODEL.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.clock import Clock
from ivr.domain.states import CallRequestKind, CallRequestStatus, LeaseStatus
from ivr.merchants.policy import MerchantPolicy
from ivr.phone import PhoneError, normalize, normalize_mobile
from ivr.requests.service import CallRequestService
from ivr.store.db import Database
from ivr.store.tables import CallRequest, Customer, Lease, Merchant

OPEN = (CallRequestStatus.created.value, CallRequestStatus.sms_sent.value)


@dataclass(frozen=True, slots=True)
class Admission:
    request_id: str
    kind: CallRequestKind
    merchant_id: str
    merchant_name: str
    policy: MerchantPolicy
    customer_id: str
    product_name: str
    amount: int | None
    payment_intent_id: str | None
    call_number: int  # 1 for the first call of this request
    did: str  # the called DID, national digits (as leased)
    caller: str  # the caller ID, normalized mobile digits (as leased)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a call was not admitted. ``reason`` goes to the session log
    (``rejected:<reason>``); ``merchant_name`` is set only for a caller the lease names
    (the payer hears whom to ask)."""

    reason: str  # caller_id_withheld | no_lease | busy | request_completed | ...
    merchant_name: str | None = None

    @property
    def prompt_id(self) -> str:
        return REJECTION_PROMPTS.get(self.reason, "auth.rejected")


# reason -> the prompt that says why and what to do; any other reason -> auth.rejected
REJECTION_PROMPTS: dict[str, str] = {
    "caller_id_missing": "auth.withheld",
    "caller_id_withheld": "auth.withheld",
    "busy": "auth.busy",
    "too_many_calls": "auth.limit",
    "request_completed": "auth.completed",
    "request_declined": "auth.completed",
    "request_cancelled": "auth.cancelled",
}
# prompts that name the merchant ({merchant}); said only to the lease's own caller
NAMES_MERCHANT = frozenset({"auth.completed", "auth.cancelled", "auth.limit"})


def _did_digits(raw: str) -> str | None:
    try:
        return normalize(raw).digits
    except PhoneError:
        digits = "".join(c for c in raw if c.isdigit())
        return digits or None


async def admit(
    db: Database,
    requests: CallRequestService,
    *,
    did: str,
    caller_id: str,
    max_calls: int,
) -> Admission | Rejection:
    try:
        mobile = normalize_mobile(caller_id).digits
    except PhoneError as exc:
        return Rejection(f"caller_id_{exc.reason.value}")
    number = _did_digits(did)
    if number is None:
        return Rejection("unknown_did")
    async with db.transaction() as s:
        lease = await requests.pool.match_in(s, number, mobile)
        if lease is None or lease.call_request_id is None:
            return await _closed(s, requests.clock, number, mobile, max_calls)
        req = await s.get(CallRequest, lease.call_request_id, with_for_update=True)
        if req is None or req.lease_id != lease.id:
            return Rejection("no_lease")
        merchant = await s.get(Merchant, req.merchant_id)
        if req.status == CallRequestStatus.in_call.value:
            # another call of this payer is on this request now
            return Rejection("busy", merchant.name if merchant else None)
        if req.status not in OPEN:
            return _closed_request(req, merchant, max_calls)
        if req.calls >= max_calls:
            return Rejection("too_many_calls", merchant.name if merchant else None)
        customer = await s.get(Customer, req.customer_id)
        if merchant is None or customer is None or merchant.status != "active":
            return Rejection("merchant_inactive")
        policy = MerchantPolicy.parse(merchant.settings)
        await requests.transition_in(s, req.id, CallRequestStatus.in_call, actor="call")
        return Admission(
            request_id=req.id,
            kind=CallRequestKind(req.kind),
            merchant_id=req.merchant_id,
            merchant_name=merchant.name,
            policy=policy,
            customer_id=req.customer_id,
            product_name=req.product_name,
            amount=req.amount,
            payment_intent_id=req.payment_intent_id,
            call_number=req.calls,
            did=number,
            caller=mobile,
        )


async def _closed(
    s: AsyncSession, clock: Clock, did: str, mobile: str, max_calls: int
) -> Rejection:
    """No active lease matches: if this caller's latest lease on this DID ended with its
    request (completed, declined, cancelled, calls used up) and its lifetime or
    cool-down has not run out, say what became of the request; else ``no_lease`` (never
    leased to this caller, or expired)."""
    lease = await s.scalar(
        select(Lease)
        .where(Lease.did == did, Lease.mobile == mobile)
        .order_by(Lease.created_at.desc(), Lease.id.desc())
        .limit(1)
    )
    if lease is None or lease.call_request_id is None:
        return Rejection("no_lease")
    now = clock.now()
    if lease.status == LeaseStatus.active.value or lease.status == LeaseStatus.expired.value:
        return Rejection("lease_expired")  # active here means past its expires_at
    told_until = max(lease.expires_at, lease.cooldown_until or lease.expires_at)
    if told_until <= now:
        return Rejection("no_lease")
    req = await s.get(CallRequest, lease.call_request_id)
    if req is None or req.lease_id != lease.id:
        return Rejection("no_lease")
    return _closed_request(req, await s.get(Merchant, req.merchant_id), max_calls)


def _closed_request(req: CallRequest, merchant: Merchant | None, max_calls: int) -> Rejection:
    name = merchant.name if merchant is not None else None
    status = req.status
    if status == CallRequestStatus.completed.value:
        return Rejection("request_completed", name)
    if status == CallRequestStatus.declined.value:
        return Rejection("request_declined", name)
    if status == CallRequestStatus.cancelled.value:
        return Rejection("request_cancelled", name)
    if status == CallRequestStatus.failed.value and req.calls >= max_calls:
        return Rejection("too_many_calls", name)
    if status == CallRequestStatus.expired.value:
        return Rejection("request_expired")
    return Rejection("request_closed")


async def release(
    requests: CallRequestService, request_id: str, *, max_calls: int
) -> CallRequestStatus | None:
    """After a call: see :meth:`CallRequestService.release_call`."""
    return await requests.release_call(request_id, max_calls=max_calls)
