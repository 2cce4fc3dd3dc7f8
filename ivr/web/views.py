"""Table rows → response models. The only place that decides what a merchant sees of a
row: cards as BIN + last 4, steps without digits, numbers in dialable form."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ivr.api import schemas as S
from ivr.cards.verification import locked_until
from ivr.consent.evidence import Evidence, RecordEvidence
from ivr.phone import PhoneError, normalize
from ivr.store.tables import (
    CallRequest,
    CallSession,
    CallStep,
    Card,
    Customer,
    PaymentAttempt,
    PaymentIntent,
    Refund,
    Schedule,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from ivr.webhooks.events import subscribed_types


def dialable(number: str) -> str:
    try:
        return normalize(number).display
    except PhoneError:
        return number


def customer(row: Customer) -> S.CustomerOut:
    return S.CustomerOut(
        id=row.id,
        mobile=dialable(row.mobile),
        name=row.name,
        external_ref=row.external_ref,
        created_at=row.created_at,
    )


def call_request(row: CallRequest) -> S.CallRequestOut:
    return S.CallRequestOut(
        id=row.id,
        kind=row.kind,
        status=row.status,
        customer_id=row.customer_id,
        did=dialable(row.did),
        mobile=dialable(row.mobile),
        product_name=row.product_name,
        amount=row.amount,
        calls=row.calls,
        card_id=row.card_id,
        payment_id=row.payment_intent_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        expires_at=row.expires_at,
        ended_at=row.ended_at,
    )


def call_session(row: CallSession, steps: Sequence[CallStep]) -> S.CallSessionOut:
    return S.CallSessionOut(
        id=row.id,
        did=dialable(row.did),
        caller_id=dialable(row.caller_id),
        status=row.status,
        outcome=row.outcome,
        started_at=row.started_at,
        ended_at=row.ended_at,
        steps=[
            S.CallStepOut(
                seq=st.seq,
                step=st.step,
                prompt_id=st.prompt_id,
                outcome=st.outcome,
                started_at=st.started_at,
                ended_at=st.ended_at,
            )
            for st in steps
        ],
    )


def consent_export(call_request_id: str, exported_at: datetime, ev: Evidence) -> S.ConsentExportOut:
    """What the API and the console export for a call request."""
    cp = ev.checkpoint
    return S.ConsentExportOut(
        call_request_id=call_request_id,
        exported_at=exported_at,
        records=[consent_record(r) for r in ev.records],
        checkpoint=S.CheckpointOut(**cp.document()) if cp is not None else None,
        attestation=S.AttestationOut(**ev.attestation) if ev.attestation is not None else None,
    )


def consent_record(ev: RecordEvidence) -> S.ConsentRecordOut:
    row = ev.row
    played: list[dict[str, Any]] = list((row.prompts or {}).get("played") or [])
    return S.ConsentRecordOut(
        id=row.id,
        seq=row.seq,
        kind=row.kind,
        call_request_id=row.call_request_id,
        did=row.did,
        caller_id=row.caller_id,
        call_id=row.call_id,
        call_started_at=row.call_started_at,
        decided_at=row.decided_at,
        prompts=played,
        key_pressed=row.key_pressed,
        details=row.details,
        prev_hash=row.prev_hash,
        hash=row.hash,
        hash_valid=ev.hash_valid,
        created_at=row.created_at,
        canonical=ev.canonical,
        mac=row.mac,
        mac_valid=ev.mac_valid,
    )


def card(row: Card, now: datetime) -> S.CardOut:
    return S.CardOut(
        id=row.id,
        customer_id=row.customer_id,
        bin=row.bin6,
        last4=row.last4,
        issuer=row.issuer,
        card_type=row.card_type,
        owner_type=row.owner_type,
        status=row.status,
        created_at=row.created_at,
        deleted_at=row.deleted_at,
        phone_payments_locked_until=locked_until(row, now),
    )


def refund(row: Refund) -> S.RefundOut:
    return S.RefundOut(
        id=row.id,
        payment_id=row.intent_id,
        amount=row.amount,
        reason=row.reason,
        status=row.status,
        failure_code=row.error_code,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


def payment(
    row: PaymentIntent, attempts: Sequence[PaymentAttempt], refunds: Sequence[Refund]
) -> S.PaymentOut:
    return S.PaymentOut(
        id=row.id,
        status=row.status,
        amount=row.amount,
        refunded_amount=row.refunded_amount,
        order_name=row.order_name,
        installment_months=row.installment_months,
        interest_free=row.interest_free,
        customer_id=row.customer_id,
        card_id=row.card_id,
        source=row.source,
        schedule_id=row.schedule_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        attempts=[
            S.AttemptOut(
                id=a.id,
                order_id=a.order_id,
                amount=a.amount,
                status=a.status,
                approval_no=a.approval_no,
                decline_code=a.decline_code,
                decline_class=a.decline_class,
                created_at=a.created_at,
                finished_at=a.finished_at,
            )
            for a in attempts
        ],
        refunds=[refund(r) for r in refunds],
    )


def schedule(row: Schedule) -> S.ScheduleOut:
    return S.ScheduleOut(
        id=row.id,
        customer_id=row.customer_id,
        card_id=row.card_id,
        amount=row.amount,
        order_name=row.order_name,
        mode=row.mode,
        plan=row.rule,
        status=row.status,
        next_run_at=row.next_run_at,
        runs=row.runs,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def endpoint(row: WebhookEndpoint) -> S.WebhookEndpointOut:
    return S.WebhookEndpointOut(
        id=row.id,
        url=row.url,
        status=row.status,
        event_types=subscribed_types(row),
        created_at=row.created_at,
        disabled_at=row.disabled_at,
    )


def event(row: WebhookEvent) -> S.EventOut:
    return S.EventOut(id=row.id, type=row.type, created_at=row.created_at, payload=row.payload)


def delivery(row: WebhookDelivery) -> S.DeliveryOut:
    return S.DeliveryOut(
        id=row.id,
        endpoint_id=row.endpoint_id,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
    )
