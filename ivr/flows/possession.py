"""The possession check (docs/product.md §2): a call is admitted only when its (called DID,
caller ID) matches an active lease whose call request is still open.

Admission moves the request to ``in_call`` (counting the call) in the same transaction
that checks the lease, under the request's row lock, so two calls cannot both take it.
A rejection changes nothing. :func:`release` puts the request back to waiting when a
call ends without an outcome — or ends it ``failed`` once the request has used its
allowed calls.
"""

from __future__ import annotations

from dataclasses import dataclass

from ivr.domain.states import CallRequestKind, CallRequestStatus
from ivr.merchants.policy import MerchantPolicy
from ivr.phone import PhoneError, normalize, normalize_mobile
from ivr.requests.service import CallRequestService
from ivr.store.db import Database
from ivr.store.tables import CallRequest, Customer, Merchant

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
    reason: str  # caller_id_missing | caller_id_invalid | unknown_did | no_lease | busy | ...


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
            return Rejection("no_lease")
        req = await s.get(CallRequest, lease.call_request_id, with_for_update=True)
        if req is None or req.lease_id != lease.id:
            return Rejection("no_lease")
        if req.status == CallRequestStatus.in_call.value:
            return Rejection("busy")  # another call of this payer is on this request now
        if req.status not in OPEN:
            return Rejection("request_closed")
        if req.calls >= max_calls:
            return Rejection("too_many_calls")
        merchant = await s.get(Merchant, req.merchant_id)
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


async def release(
    requests: CallRequestService, request_id: str, *, max_calls: int
) -> CallRequestStatus | None:
    """After a call: see :meth:`CallRequestService.release_call`."""
    return await requests.release_call(request_id, max_calls=max_calls)
