"""Request and response models. The OpenAPI document (``docs/openapi.json``) is built
from these; a test fails when the checked-in copy drifts from the code.

Amounts are integers in KRW. Times are RFC 3339 in UTC. Cards are shown as BIN (first
6) and last 4 only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from ivr.domain import terms
from ivr.domain.text import GuardedStr
from ivr.webhooks.events import EVENT_TYPES

T = TypeVar("T")

# Every string a request body carries: no card-like digit run, no control, bidirectional
# or invisible character (ivr/domain/text.py); refused as 422 validation-failed, the
# field named, the value never echoed.
Text = GuardedStr

EventType = Annotated[
    Text, Field(json_schema_extra={"enum": sorted(EVENT_TYPES)}, description="a webhook event type")
]
"""A webhook event type: the list in the OpenAPI document is :data:`EVENT_TYPES` (the
check itself is :func:`ivr.webhooks.events.check_event_types`, which names unknown ones)."""


def _amount() -> Any:
    return Field(
        ge=terms.MIN_AMOUNT,
        le=terms.MAX_API_AMOUNT,
        description=f"KRW, integer won (minimum card charge {terms.MIN_AMOUNT})",
    )


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(_Out, Generic[T]):
    data: list[T]
    has_more: bool
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page")

    @classmethod
    def of(cls, data: list[T], next_cursor: str | None) -> Page[T]:
        return cls(data=data, has_more=next_cursor is not None, next_cursor=next_cursor)


class ProblemOut(_Out):
    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    code: str = Field(description="stable error id; branch on this, not on detail")
    instance: str | None = None


# ------------------------------------------------------------------ customers


class CustomerIn(_In):
    mobile: Text = Field(min_length=1, max_length=20, description="Korean mobile, 010-1234-5678")
    name: Text = Field("", max_length=100)
    external_ref: Text | None = Field(
        None, min_length=1, max_length=100, description="your own id, unique per merchant"
    )


class CustomerPatch(_In):
    """Only the fields given change (``external_ref: null`` removes it); a new mobile
    cancels the customer's open call requests (docs/api.md#customers)."""

    mobile: Text | None = Field(None, min_length=1, max_length=20)
    name: Text | None = Field(None, max_length=100)
    external_ref: Text | None = Field(
        None, min_length=1, max_length=100, description="your own id, unique per merchant"
    )


class CustomerOut(_Out):
    id: str
    object: Literal["customer"] = "customer"
    mobile: str
    name: str
    external_ref: str | None
    created_at: datetime
    deleted_at: datetime | None = Field(
        None, description="set once deleted: name, mobile and external_ref are removed"
    )


class CustomerChangeOut(CustomerOut):
    # the open call requests the change cancelled (their numbers stop answering)
    cancelled_call_requests: list[str] = Field(default_factory=list)


# ------------------------------------------------------------------ call requests


class RegistrationRequestIn(_In):
    customer_id: Text = Field(min_length=1, max_length=40)
    product_name: Text = Field(
        "자동결제", min_length=1, max_length=100, description="what the card is registered for"
    )
    lease_minutes: int | None = Field(
        None, ge=5, le=1440, description="how long the number stays valid (default: merchant's)"
    )


class PaymentRequestIn(_In):
    customer_id: Text = Field(min_length=1, max_length=40)
    product_name: Text = Field(min_length=1, max_length=100)
    amount: int = _amount()
    lease_minutes: int | None = Field(None, ge=5, le=1440)


class CallRequestOut(_Out):
    id: str
    object: Literal["call_request"] = "call_request"
    kind: Literal["registration", "payment"]
    status: str
    customer_id: str
    did: str = Field(description="the virtual number the payer calls, 0505-123-4567")
    mobile: str
    product_name: str
    amount: int | None
    calls: int
    card_id: str | None
    payment_id: str | None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    ended_at: datetime | None


class CallStepOut(_Out):
    seq: int
    step: str
    prompt_id: str | None
    outcome: str | None = Field(description="ok, invalid, timeout, hangup, repeat… never digits")
    started_at: datetime
    ended_at: datetime | None


class CallSessionOut(_Out):
    id: str
    object: Literal["call_session"] = "call_session"
    did: str
    caller_id: str
    status: str
    outcome: str | None
    started_at: datetime
    ended_at: datetime | None
    steps: list[CallStepOut]


class ConsentRecordOut(_Out):
    id: str
    seq: int
    kind: str
    call_request_id: str
    did: str
    caller_id: str
    call_id: str
    call_started_at: datetime
    decided_at: datetime
    prompts: list[dict[str, Any]] = Field(description="prompt id and sha256 of each audio played")
    key_pressed: str
    details: dict[str, Any]
    prev_hash: str
    hash: str
    hash_valid: bool = Field(description="the record's hash recomputed from its fields matches")
    created_at: datetime
    canonical: str = Field(
        description="the exact JSON text whose SHA-256 is `hash` (every field above, as "
        "recorded): recompute it offline"
    )
    mac: str | None = Field(
        description="HMAC-SHA-256 chain MAC under the operator's evidence key (null: "
        "recorded before keyed MACs; the seal covers it)"
    )
    mac_valid: bool | None = Field(
        description="the MAC verified at export time, against the previous record's"
    )


class CheckpointOut(_Out):
    """A signed checkpoint of the consent chain head (docs/consent.md). Every field but
    `signature` is signed (Ed25519, canonical JSON); `at` is the signed text as is."""

    format: str
    ledger: str
    seq: int
    count: int
    head_mac: str
    at: str
    key_id: str
    public_key: str = Field(description="base64 of the raw 32-byte Ed25519 public key")
    signature: str = Field(description="base64 Ed25519 signature")


class AttestedRecordOut(_Out):
    seq: int
    id: str
    hash: str
    mac: str | None


class AttestedHeadOut(_Out):
    seq: int
    head_mac: str


class AttestationOut(_Out):
    """The operator's signature over this export's records (their hashes and MACs) and
    the checkpoint they are covered by."""

    format: str
    merchant_id: str
    call_request_id: str
    records: list[AttestedRecordOut]
    checkpoint: AttestedHeadOut
    issued_at: str
    key_id: str
    public_key: str
    signature: str


class ConsentExportOut(_Out):
    object: Literal["consent_export"] = "consent_export"
    call_request_id: str
    exported_at: datetime
    records: list[ConsentRecordOut]
    checkpoint: CheckpointOut | None = Field(
        description="a checkpoint of the chain head at export time (null if the head does "
        "not verify)"
    )
    attestation: AttestationOut | None = Field(
        description="signed binding of these records to the checkpoint (null unless every "
        "record's hash and MAC verified)"
    )


# ------------------------------------------------------------------ cards


class CardOut(_Out):
    id: str
    object: Literal["card"] = "card"
    customer_id: str
    bin: str = Field(description="first 6 digits")
    last4: str
    issuer: str
    card_type: str = Field(description="credit | check | unknown (the PG did not say)")
    owner_type: str = Field(description="personal | corporate")
    status: str
    created_at: datetime
    deleted_at: datetime | None
    phone_payments_locked_until: datetime | None = Field(
        description="set while too many wrong birth dates keyed in payment calls keep the "
        "card from paying by phone (automatic charges go on); POST /v1/cards/{id}/unlock "
        "lifts it sooner"
    )


# ------------------------------------------------------------------ payments


class ChargeIn(_In):
    card_id: Text = Field(min_length=1, max_length=40)
    amount: int = _amount()
    order_name: Text = Field(min_length=1, max_length=100)
    installment_months: int = Field(
        terms.LUMP_SUM,
        ge=terms.LUMP_SUM,
        le=terms.MAX_INSTALLMENT_MONTHS,
        description=f"{terms.LUMP_SUM} = 일시불, "
        f"else {terms.MIN_INSTALLMENT_MONTHS}-{terms.MAX_INSTALLMENT_MONTHS}",
    )


class AttemptOut(_Out):
    id: str
    order_id: str = Field(description="the order id sent to the PG (merchant_uid)")
    amount: int
    status: str
    approval_no: str | None
    receipt_url: str | None = Field(
        description="the PG's receipt (매출전표) page of a paid attempt, when it gave one"
    )
    decline_code: str | None
    decline_class: str | None = Field(description="soft (retry later) | hard (another card)")
    created_at: datetime
    finished_at: datetime | None


class RefundIn(_In):
    amount: int | None = Field(
        None, ge=1, le=terms.MAX_API_AMOUNT, description="KRW; omitted = all that is left"
    )
    reason: Text = Field("merchant request", min_length=1, max_length=200)


class RefundOut(_Out):
    id: str
    object: Literal["refund"] = "refund"
    payment_id: str
    amount: int
    reason: str
    status: str = Field(
        description="pending | unknown (the PG's answer is awaited: it settles on its own, "
        "with a payment.refunded event when it applied) | succeeded | failed"
    )
    failure_code: str | None = Field(
        None,
        description="why a failed refund failed: the PG's refusal (checksum_mismatch, "
        "exceeds_refundable, ...), not_at_pg (the PG never took it: nothing refunded) or "
        "pg_balance_mismatch (the PG's cancelled amount matches no refund of ours: look)",
    )
    created_at: datetime
    finished_at: datetime | None


class PaymentOut(_Out):
    id: str
    object: Literal["payment"] = "payment"
    status: str
    amount: int
    refunded_amount: int
    currency: Literal["KRW"] = "KRW"
    order_name: str
    installment_months: int
    interest_free: bool
    customer_id: str
    card_id: str | None
    source: str
    schedule_id: str | None
    receipt_url: str | None = Field(
        description="the PG's receipt (매출전표) page of the paid attempt, when the PG gave "
        'one on a known receipt host (docs/portone.md "Receipts")',
    )
    created_at: datetime
    updated_at: datetime
    attempts: list[AttemptOut]
    refunds: list[RefundOut]


# ------------------------------------------------------------------ schedules


class ScheduleIn(_In):
    customer_id: Text = Field(min_length=1, max_length=40)
    card_id: Text | None = Field(None, min_length=1, max_length=40)
    amount: int = _amount()
    order_name: Text = Field(min_length=1, max_length=100)
    mode: Literal["auto", "consent", "consent_then_auto"] = "auto"
    plan: dict[str, Any] = Field(
        description='e.g. {"rule": {"every": "month", "day": 31}, "start": "2027-01-31", '
        '"count": 12} (docs/billing.md)'
    )


class ScheduleOut(_Out):
    id: str
    object: Literal["schedule"] = "schedule"
    customer_id: str
    card_id: str | None
    amount: int
    order_name: str
    mode: str
    plan: dict[str, Any]
    status: str
    next_run_at: datetime | None
    runs: int
    created_at: datetime
    updated_at: datetime


class TimelineOut(_Out):
    object: Literal["schedule_timeline"] = "schedule_timeline"
    schedule_id: str
    timeline: dict[str, Any]


# ------------------------------------------------------------------ bulk jobs


class BulkJobIn(_In):
    kind: Literal["charges", "registrations"] = "charges"
    rows: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=100_000,
        description='charges: each {"ref", "card_id", "amount", "order_name", '
        '"installment_months"}; registrations: each {"ref", "customer_id"} or {"ref", '
        '"mobile", "name", "external_ref"}, optionally "product_name", "lease_minutes"',
    )


class BulkJobOut(_Out):
    id: str
    object: Literal["bulk_job"] = "bulk_job"
    kind: Literal["charges", "registrations"]
    status: str
    progress: dict[str, Any]
    invalid_rows: list[dict[str, Any]]
