"""Table rows → response models. The only place that decides what a merchant sees of a
row: cards as BIN + last 4, steps without digits, numbers in dialable form."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from ivr.api import schemas as S
from ivr.api import webhook_schemas as W
from ivr.cards.verification import locked_until
from ivr.consent.evidence import Evidence, RecordEvidence
from ivr.domain.states import AttemptStatus
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

M = TypeVar("M", bound=BaseModel)


def from_row(model: type[M], row: object, **decided: Any) -> M:
    """`model` with each required field copied from the row's attribute of the same name,
    but for `decided`: the fields this module decides (renamed, masked, dialable, derived).
    A field with a default (``object``, ``currency``) keeps it unless decided; a required
    one the row lacks fails here, never silently."""
    same = {
        name: getattr(row, name)
        for name, field in model.model_fields.items()
        if field.is_required() and name not in decided
    }
    return model(**same, **decided)


def dialable(number: str) -> str:
    try:
        return normalize(number).display
    except PhoneError:
        return number


def customer(row: Customer) -> S.CustomerOut:
    return from_row(S.CustomerOut, row, mobile=dialable(row.mobile), deleted_at=row.deleted_at)


def customer_change(row: Customer, cancelled: list[str]) -> S.CustomerChangeOut:
    return from_row(
        S.CustomerChangeOut,
        row,
        mobile=dialable(row.mobile),
        deleted_at=row.deleted_at,
        cancelled_call_requests=cancelled,
    )


def call_request(row: CallRequest) -> S.CallRequestOut:
    return from_row(
        S.CallRequestOut,
        row,
        did=dialable(row.did),
        mobile=dialable(row.mobile),
        payment_id=row.payment_intent_id,
    )


def call_session(row: CallSession, steps: Sequence[CallStep]) -> S.CallSessionOut:
    return from_row(
        S.CallSessionOut,
        row,
        did=dialable(row.did),
        caller_id=dialable(row.caller_id),
        steps=[from_row(S.CallStepOut, st) for st in steps],
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
    return from_row(
        S.ConsentRecordOut,
        row,
        prompts=played,
        hash_valid=ev.hash_valid,
        canonical=ev.canonical,
        mac_valid=ev.mac_valid,
    )


def card(row: Card, now: datetime) -> S.CardOut:
    return from_row(
        S.CardOut, row, bin=row.bin6, phone_payments_locked_until=locked_until(row, now)
    )


def refund(row: Refund) -> S.RefundOut:
    return from_row(S.RefundOut, row, payment_id=row.intent_id, failure_code=row.error_code)


def receipt_of(attempts: Sequence[PaymentAttempt]) -> str | None:
    """The receipt page of a payment: its paid attempt's, when the PG gave one."""
    ok = AttemptStatus.succeeded.value
    paid = [a.receipt_url for a in attempts if a.status == ok and a.receipt_url]
    return paid[-1] if paid else None


def payment(
    row: PaymentIntent, attempts: Sequence[PaymentAttempt], refunds: Sequence[Refund]
) -> S.PaymentOut:
    paid = [
        a.receipt_url
        for a in attempts
        if a.status == AttemptStatus.succeeded.value and a.receipt_url
    ]
    return from_row(
        S.PaymentOut,
        row,
        receipt_url=paid[-1] if paid else None,
        attempts=[from_row(S.AttemptOut, a) for a in attempts],
        refunds=[refund(r) for r in refunds],
    )


def schedule(row: Schedule) -> S.ScheduleOut:
    return from_row(S.ScheduleOut, row, plan=row.rule)


def endpoint(row: WebhookEndpoint) -> W.WebhookEndpointOut:
    return from_row(W.WebhookEndpointOut, row, event_types=subscribed_types(row))


def event(row: WebhookEvent) -> W.EventOut:
    return from_row(W.EventOut, row)


def delivery(row: WebhookDelivery) -> W.DeliveryOut:
    return from_row(W.DeliveryOut, row)
