"""Every status in the engine and the one table of transitions allowed for each.

A status column is changed only through :meth:`StateMachine.check`, which raises
:class:`~ivr.errors.InvalidTransition` for anything not in the table. Terminal states
are the ones with no way out. ``MACHINES`` lists every machine so one test can walk
every (state, state) pair of every machine.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def machine(name: str, states: type[S], table: str) -> StateMachine[S]:
    """A machine from its table, one line per state with a way out:
    ``source -> target target ...``, or ``one <-> other`` for two states that go to
    each other. The first line's first state is the initial one; a state with no way
    out is terminal; ``#`` starts a comment. Written as text so each machine reads like
    its diagram; every name is checked against ``states`` when the module loads."""
    transitions: dict[S, set[S]] = {}
    for line in table.splitlines():
        row = line.partition("#")[0]
        if "<->" in row:
            one, other = (states(side.strip()) for side in row.split("<->"))
            transitions.setdefault(one, set()).add(other)
            transitions.setdefault(other, set()).add(one)
        elif "->" in row:
            source, targets = row.split("->")
            transitions.setdefault(states(source.strip()), set()).update(
                states(target) for target in targets.split()
            )
        elif row.strip():
            raise ValueError(f"{name}: no arrow in {line!r}")
    frozen = {source: frozenset(targets) for source, targets in transitions.items()}
    return StateMachine(name, states, next(iter(frozen)), frozen)


# Each status is a StrEnum whose values are its member names, the words stored in the
# status columns; each machine is a table, one line per state as in a diagram (kept as
# written: not reformatted).
# fmt: off
CallRequestKind = StrEnum("CallRequestKind", "registration payment")
CardType = StrEnum("CardType", "credit check unknown")  # unknown: the PG did not say
CardOwner = StrEnum("CardOwner", "personal corporate")

MerchantStatus = StrEnum("MerchantStatus", "active suspended")
MERCHANT = machine("merchant", MerchantStatus, "active <-> suspended")

ApiKeyStatus = StrEnum("ApiKeyStatus", "active revoked")
API_KEY = machine("api_key", ApiKeyStatus, "active -> revoked")

DidStatus = StrEnum("DidStatus", "active disabled")
DID = machine("did", DidStatus, "active <-> disabled")

LeaseStatus = StrEnum("LeaseStatus", "active released expired")
LEASE = machine("lease", LeaseStatus, "active -> released expired")

CallRequestStatus = StrEnum(
    "CallRequestStatus", "created sms_sent in_call completed declined failed expired cancelled"
)
CALL_REQUEST = machine("call_request", CallRequestStatus, """
    created  -> sms_sent in_call failed expired cancelled
    # completed: a charge begun in a call ("pay.pending") settled after the call
    sms_sent -> in_call completed failed expired cancelled
    # A call that ends without an outcome puts the request back to waiting for the
    # next call (docs/product.md §3: the payer may call again).
    in_call  -> sms_sent completed declined failed expired
""")

CallSessionStatus = StrEnum("CallSessionStatus", "ringing active rejected ended")
CALL_SESSION = machine("call_session", CallSessionStatus, """
    ringing -> active rejected ended
    # Rejected after answering: the caller hears auth.rejected (docs/product.md §4.1).
    active  -> rejected ended
""")

CardStatus = StrEnum("CardStatus", "active deleted")
CARD = machine("card", CardStatus, "active -> deleted")

PaymentIntentStatus = StrEnum(
    "PaymentIntentStatus",
    "created processing retry_scheduled succeeded failed cancelled partially_refunded refunded",
)
PAYMENT_INTENT = machine("payment_intent", PaymentIntentStatus, """
    created            -> processing cancelled
    processing         -> succeeded failed retry_scheduled
    retry_scheduled    -> processing failed cancelled
    succeeded          -> partially_refunded refunded
    partially_refunded -> partially_refunded refunded
""")


class AttemptStatus(StrEnum):
    """One request to the PG (a charge or a refund). ``unknown``: sent, no answer."""

    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"
    unknown = "unknown"


ATTEMPT = machine("attempt", AttemptStatus, """
    pending -> succeeded failed unknown
    unknown -> succeeded failed
""")


class BillingKeyRequestStatus(StrEnum):
    """A billing key asked of the PG for a card keyed in a call (its ``customer_uid``)."""

    pending = "pending"  # about to be asked, or asked with no answer yet
    issued = "issued"  # the PG issued it; the call is attaching the card
    attached = "attached"  # a card row holds it: the card's own life cycle owns it
    declined = "declined"  # the PG refused the card: no key exists
    deleted = "deleted"  # deleted at the PG (or the PG never had it)


BILLING_KEY_REQUEST = machine("billing_key_request", BillingKeyRequestStatus, """
    pending -> issued attached declined deleted
    issued  -> attached deleted
""")

ScheduleStatus = StrEnum("ScheduleStatus", "active paused cancelled completed")
SCHEDULE = machine("schedule", ScheduleStatus, """
    active -> paused cancelled completed
    paused -> active cancelled
""")

JobStatus = StrEnum("JobStatus", "queued running done dead cancelled")
JOB = machine("job", JobStatus, """
    queued  -> running cancelled
    # running -> queued: failed with retries left, or its worker died (lock expired)
    running -> done queued dead
""")


class DeliveryStatus(StrEnum):
    """A webhook delivery or an SMS message on its way out of the outbox."""

    pending = "pending"
    sending = "sending"
    retrying = "retrying"
    sent = "sent"
    delivered = "delivered"
    failed = "failed"


DELIVERY = machine("delivery", DeliveryStatus, """
    pending  -> sending failed
    sending  -> sent retrying failed
    retrying -> sending failed
    sent     -> delivered failed
    # manual redelivery of a failed one starts again
    failed   -> pending
""")

class AlimtalkStatus(StrEnum):
    """A KakaoTalk 알림톡 message of a payer notice (ivr/notify/alimtalk/)."""

    pending = "pending"
    sending = "sending"  # claimed; the request may be on the wire
    retrying = "retrying"  # provider down before it accepted: send again later
    unknown = "unknown"  # the send's answer was lost: look it up before anything else
    sent = "sent"  # the provider accepted it (request id kept): waiting for the result
    delivered = "delivered"
    fallback = "fallback"  # refused or failed for good: the SMS/LMS (대체 발송) queued
    unconfirmed = "unconfirmed"  # accepted, no result within the wait: no fallback


ALIMTALK = machine("alimtalk", AlimtalkStatus, """
    pending  -> sending fallback
    sending  -> sent retrying unknown fallback
    retrying -> sending fallback
    # unknown: the provider is asked by our message id (its recipientGroupingKey)
    unknown  -> sent retrying fallback
    sent     -> delivered fallback unconfirmed
""")

# A card moving to another PG account (ivr/pg_accounts/migration.py): the key issued
# there, the card switched to it, the old key deleted; or failed, or the payer needed
# (the new PG wants the card password, never stored).
CardMigrationStatus = StrEnum(
    "CardMigrationStatus", "pending issued switched done failed needs_payer"
)
CARD_MIGRATION = machine("card_migration", CardMigrationStatus, """
    pending  -> issued failed needs_payer
    issued   -> switched failed
    switched -> done
""")
OPEN_MIGRATION = ("pending", "issued", "switched")  # uq_card_migrations_open_card

CardMigrationBatchStatus = StrEnum("CardMigrationBatchStatus", "running finished")
CARD_MIGRATION_BATCH = machine("card_migration_batch", CardMigrationBatchStatus,
                               "running -> finished")  # fmt: skip

EndpointStatus = StrEnum("EndpointStatus", "enabled disabled")
ENDPOINT = machine("webhook_endpoint", EndpointStatus, "enabled <-> disabled")
# fmt: on

MACHINES: tuple[StateMachine, ...] = (  # type: ignore[type-arg]
    MERCHANT, API_KEY, DID, LEASE, CALL_REQUEST, CALL_SESSION, CARD,
    PAYMENT_INTENT, ATTEMPT, SCHEDULE, JOB, DELIVERY, ENDPOINT, BILLING_KEY_REQUEST,
    CARD_MIGRATION, CARD_MIGRATION_BATCH, ALIMTALK,
)  # fmt: skip
