"""Call requests (registration and payment-consent calls), their call sessions with the
step timeline, and the consent evidence they produced."""

from __future__ import annotations

from typing import Literal

from fastapi import Request

from ivr.api import schemas as S
from ivr.api.route import actor
from ivr.api.routes.common import WRITE_ERRORS, ByCustomer, Deps, Me, Paging, owned, retried, value
from ivr.api.routes.common import router as make_router
from ivr.api.routes.listing import listed
from ivr.consent.evidence import export_evidence
from ivr.domain.states import CallRequestKind, CallRequestStatus
from ivr.requests.queries import call_requests, calls_of_in
from ivr.store.scope import Scope
from ivr.store.tables import CallRequest
from ivr.web import views

router = make_router("call requests")


async def _create(
    request: Request,
    d: Deps,
    me: Me,
    kind: CallRequestKind,
    body: S.RegistrationRequestIn | S.PaymentRequestIn,
) -> S.CallRequestOut:
    rid, done = await retried(request, d, me, CallRequest, "creq")
    if done is not None:
        return views.call_request(done)
    new = await d.requests.create(
        me.merchant_id,
        body.customer_id,
        kind,
        product_name=body.product_name,
        amount=body.amount if isinstance(body, S.PaymentRequestIn) else None,
        lease_minutes=body.lease_minutes,
        actor=actor(me),
        request_id=rid,
    )
    return views.call_request(new.request)


@router.post(
    "/registration-requests",
    status_code=201,
    responses=WRITE_ERRORS,
    summary="Ask a payer to register a card by phone (leases a number, sends the SMS)",
)
async def create_registration_request(
    body: S.RegistrationRequestIn, request: Request, d: Deps, me: Me
) -> S.CallRequestOut:
    return await _create(request, d, me, CallRequestKind.registration, body)


@router.post(
    "/payment-requests",
    status_code=201,
    responses=WRITE_ERRORS,
    summary="Ask a payer to confirm one payment in a short call",
)
async def create_payment_request(
    body: S.PaymentRequestIn, request: Request, d: Deps, me: Me
) -> S.CallRequestOut:
    return await _create(request, d, me, CallRequestKind.payment, body)


@router.get("/call-requests")
async def list_call_requests(
    d: Deps,
    me: Me,
    page: Paging,
    status: CallRequestStatus | None = None,
    kind: Literal["registration", "payment"] | None = None,
    customer_id: ByCustomer = None,
) -> S.Page[S.CallRequestOut]:
    scope = Scope.of(me.merchant_id)
    q = call_requests(scope, status=value(status), kind=kind, customer_id=customer_id)
    return await listed(d, page, S.Page[S.CallRequestOut], q, CallRequest.id, views.call_request)


@router.get("/call-requests/{request_id}")
async def get_call_request(request_id: str, d: Deps, me: Me) -> S.CallRequestOut:
    async with d.db.sessions() as s:
        row = await owned(s, CallRequest, request_id, me.merchant_id, "call request")
    return views.call_request(row)


@router.post(
    "/call-requests/{request_id}/cancel",
    responses=WRITE_ERRORS,
    summary="Cancel an open request (its number stops answering for this payer)",
)
async def cancel_call_request(request_id: str, d: Deps, me: Me) -> S.CallRequestOut:
    async with d.db.sessions() as s:
        row = await owned(s, CallRequest, request_id, me.merchant_id, "call request")
    if row.status == CallRequestStatus.cancelled.value:
        return views.call_request(row)  # cancelling twice is not an error
    row = await d.requests.transition(request_id, CallRequestStatus.cancelled, actor=actor(me))
    return views.call_request(row)


@router.get(
    "/call-requests/{request_id}/sessions",
    summary="Each call made for the request, with its step timeline (never digits)",
)
async def list_call_sessions(request_id: str, d: Deps, me: Me) -> list[S.CallSessionOut]:
    async with d.db.sessions() as s:
        await owned(s, CallRequest, request_id, me.merchant_id, "call request")
        calls = await calls_of_in(s, request_id)
    return [views.call_session(x, steps) for x, steps in calls]


@router.get(
    "/call-requests/{request_id}/consent",
    summary="Consent evidence: the MAC-chained records written in the calls, a signed "
    "checkpoint and an attestation to check offline (docs/consent.md)",
)
async def export_consent(request_id: str, d: Deps, me: Me) -> S.ConsentExportOut:
    async with d.db.sessions() as s:
        await owned(s, CallRequest, request_id, me.merchant_id, "call request")
    evidence = await export_evidence(d.consent, me.merchant_id, request_id)
    return views.consent_export(request_id, d.clock.now(), evidence)
