"""Every status in the engine and the one table of transitions allowed for each.

A status column is changed only through :meth:`StateMachine.check`, which raises
:class:`~ivr.errors.InvalidTransition` for anything not in the table. Terminal states
are the ones with no way out. ``MACHINES`` lists every machine so one test can walk
every (state, state) pair of every machine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

from ivr.errors import InvalidTransition

S = TypeVar("S", bound=StrEnum)


@dataclass(frozen=True)
class StateMachine(Generic[S]):
    name: str
    states: type[S]
    initial: S
    transitions: Mapping[S, frozenset[S]] = field(repr=False)

    def __post_init__(self) -> None:
        for source, targets in self.transitions.items():
            for target in (source, *targets):
                if not isinstance(target, self.states):
                    raise TypeError(f"{self.name}: {target!r} is not a {self.states.__name__}")

    def can(self, current: S, target: S) -> bool:
        return target in self.transitions.get(current, frozenset())

    def check(self, current: S | str, target: S | str) -> S:
        """Return ``target`` as a status if ``current -> target`` is allowed, else raise."""
        cur, tgt = self.states(current), self.states(target)
        if not self.can(cur, tgt):
            raise InvalidTransition(self.name, cur.value, tgt.value)
        return tgt

    def is_terminal(self, state: S | str) -> bool:
        return not self.transitions.get(self.states(state))

    def sources_of(self, target: S) -> frozenset[S]:
        """States from which ``target`` can be reached in one step (for guarded UPDATEs)."""
        return frozenset(s for s, ts in self.transitions.items() if target in ts)


def _t(pairs: Iterable[tuple[S, Iterable[S]]]) -> dict[S, frozenset[S]]:
    return {source: frozenset(targets) for source, targets in pairs}


class MerchantStatus(StrEnum):
    active = "active"
    suspended = "suspended"


class ApiKeyStatus(StrEnum):
    active = "active"
    revoked = "revoked"


class DidStatus(StrEnum):
    active = "active"
    disabled = "disabled"


class LeaseStatus(StrEnum):
    active = "active"
    released = "released"
    expired = "expired"


class CallRequestKind(StrEnum):
    registration = "registration"
    payment = "payment"


class CallRequestStatus(StrEnum):
    created = "created"
    sms_sent = "sms_sent"
    in_call = "in_call"
    completed = "completed"
    declined = "declined"
    failed = "failed"
    expired = "expired"
    cancelled = "cancelled"


class CallSessionStatus(StrEnum):
    ringing = "ringing"
    active = "active"
    rejected = "rejected"
    ended = "ended"


class CardStatus(StrEnum):
    active = "active"
    deleted = "deleted"


class CardType(StrEnum):
    credit = "credit"
    check = "check"


class CardOwner(StrEnum):
    personal = "personal"
    corporate = "corporate"


class PaymentIntentStatus(StrEnum):
    created = "created"
    processing = "processing"
    retry_scheduled = "retry_scheduled"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    partially_refunded = "partially_refunded"
    refunded = "refunded"


class AttemptStatus(StrEnum):
    """One request to the PG (a charge or a refund). ``unknown``: sent, no answer."""

    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"
    unknown = "unknown"


class BillingKeyRequestStatus(StrEnum):
    """A billing key asked of the PG for a card keyed in a call (its ``customer_uid``)."""

    pending = "pending"  # about to be asked, or asked with no answer yet
    issued = "issued"  # the PG issued it; the call is attaching the card
    attached = "attached"  # a card row holds it: the card's own life cycle owns it
    declined = "declined"  # the PG refused the card: no key exists
    deleted = "deleted"  # deleted at the PG (or the PG never had it)


class ScheduleStatus(StrEnum):
    active = "active"
    paused = "paused"
    cancelled = "cancelled"
    completed = "completed"


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    dead = "dead"
    cancelled = "cancelled"


class DeliveryStatus(StrEnum):
    """A webhook delivery or an SMS message on its way out of the outbox."""

    pending = "pending"
    sending = "sending"
    retrying = "retrying"
    sent = "sent"
    delivered = "delivered"
    failed = "failed"


class EndpointStatus(StrEnum):
    enabled = "enabled"
    disabled = "disabled"


R_ = CallRequestStatus
P_ = PaymentIntentStatus
A_ = AttemptStatus
D_ = DeliveryStatus

MERCHANT = StateMachine(
    "merchant",
    MerchantStatus,
    MerchantStatus.active,
    _t(
        [
            (MerchantStatus.active, [MerchantStatus.suspended]),
            (MerchantStatus.suspended, [MerchantStatus.active]),
        ]
    ),
)
API_KEY = StateMachine(
    "api_key",
    ApiKeyStatus,
    ApiKeyStatus.active,
    _t([(ApiKeyStatus.active, [ApiKeyStatus.revoked])]),
)
DID = StateMachine(
    "did",
    DidStatus,
    DidStatus.active,
    _t([(DidStatus.active, [DidStatus.disabled]), (DidStatus.disabled, [DidStatus.active])]),
)
LEASE = StateMachine(
    "lease",
    LeaseStatus,
    LeaseStatus.active,
    _t([(LeaseStatus.active, [LeaseStatus.released, LeaseStatus.expired])]),
)
CALL_REQUEST = StateMachine(
    "call_request",
    CallRequestStatus,
    CallRequestStatus.created,
    _t(
        [
            (R_.created, [R_.sms_sent, R_.in_call, R_.failed, R_.expired, R_.cancelled]),
            (R_.sms_sent, [R_.in_call, R_.failed, R_.expired, R_.cancelled]),
            # A call that ends without an outcome puts the request back to waiting for
            # the next call (PRODUCT section 3: the payer may call again).
            (R_.in_call, [R_.sms_sent, R_.completed, R_.declined, R_.failed, R_.expired]),
        ]
    ),
)
CALL_SESSION = StateMachine(
    "call_session",
    CallSessionStatus,
    CallSessionStatus.ringing,
    _t(
        [
            (
                CallSessionStatus.ringing,
                [CallSessionStatus.active, CallSessionStatus.rejected, CallSessionStatus.ended],
            ),
            # Rejected after answering: the caller hears auth.rejected (PRODUCT §4.1).
            (CallSessionStatus.active, [CallSessionStatus.rejected, CallSessionStatus.ended]),
        ]
    ),
)
CARD = StateMachine(
    "card", CardStatus, CardStatus.active, _t([(CardStatus.active, [CardStatus.deleted])])
)
PAYMENT_INTENT = StateMachine(
    "payment_intent",
    PaymentIntentStatus,
    PaymentIntentStatus.created,
    _t(
        [
            (P_.created, [P_.processing, P_.cancelled]),
            (P_.processing, [P_.succeeded, P_.failed, P_.retry_scheduled]),
            (P_.retry_scheduled, [P_.processing, P_.failed, P_.cancelled]),
            (P_.succeeded, [P_.partially_refunded, P_.refunded]),
            (P_.partially_refunded, [P_.partially_refunded, P_.refunded]),
        ]
    ),
)
ATTEMPT = StateMachine(
    "attempt",
    AttemptStatus,
    AttemptStatus.pending,
    _t(
        [
            (A_.pending, [A_.succeeded, A_.failed, A_.unknown]),
            (A_.unknown, [A_.succeeded, A_.failed]),
        ]
    ),
)
BILLING_KEY_REQUEST = StateMachine(
    "billing_key_request",
    BillingKeyRequestStatus,
    BillingKeyRequestStatus.pending,
    _t(
        [
            (
                BillingKeyRequestStatus.pending,
                [
                    BillingKeyRequestStatus.issued,
                    BillingKeyRequestStatus.attached,
                    BillingKeyRequestStatus.declined,
                    BillingKeyRequestStatus.deleted,
                ],
            ),
            (
                BillingKeyRequestStatus.issued,
                [BillingKeyRequestStatus.attached, BillingKeyRequestStatus.deleted],
            ),
        ]
    ),
)
SCHEDULE = StateMachine(
    "schedule",
    ScheduleStatus,
    ScheduleStatus.active,
    _t(
        [
            (
                ScheduleStatus.active,
                [ScheduleStatus.paused, ScheduleStatus.cancelled, ScheduleStatus.completed],
            ),
            (ScheduleStatus.paused, [ScheduleStatus.active, ScheduleStatus.cancelled]),
        ]
    ),
)
JOB = StateMachine(
    "job",
    JobStatus,
    JobStatus.queued,
    _t(
        [
            (JobStatus.queued, [JobStatus.running, JobStatus.cancelled]),
            # running -> queued: failed with retries left, or its worker died (lock expired)
            (JobStatus.running, [JobStatus.done, JobStatus.queued, JobStatus.dead]),
        ]
    ),
)
DELIVERY = StateMachine(
    "delivery",
    DeliveryStatus,
    DeliveryStatus.pending,
    _t(
        [
            (D_.pending, [D_.sending, D_.failed]),
            (D_.sending, [D_.sent, D_.retrying, D_.failed]),
            (D_.retrying, [D_.sending, D_.failed]),
            (D_.sent, [D_.delivered, D_.failed]),
            # manual redelivery of a failed one starts again
            (D_.failed, [D_.pending]),
        ]
    ),
)
ENDPOINT = StateMachine(
    "webhook_endpoint",
    EndpointStatus,
    EndpointStatus.enabled,
    _t(
        [
            (EndpointStatus.enabled, [EndpointStatus.disabled]),
            (EndpointStatus.disabled, [EndpointStatus.enabled]),
        ]
    ),
)

MACHINES: tuple[StateMachine, ...] = (  # type: ignore[type-arg]
    MERCHANT, API_KEY, DID, LEASE, CALL_REQUEST, CALL_SESSION, CARD,
    PAYMENT_INTENT, ATTEMPT, SCHEDULE, JOB, DELIVERY, ENDPOINT, BILLING_KEY_REQUEST,
)  # fmt: skip
