"""Errors of the payment-gateway package. One tree; what the caller must do is in the name.

    ArspayError
    └── GatewayError                   anything the gateway raises on purpose
        ├── GatewayUnavailable         the PG did not process the request; nothing moved.
        │   │                          ``retry_safe``: a blind retry is harmless *and*
        │   │                          useful (connect refused/timed out before sending,
        │   │                          a read-only call, HTTP 429). False: the request never
        │   │                          left but retrying will not help (bad URL, TLS).
        │   └── CircuitOpen            not sent: the PG account's circuit breaker is open
        │                              (:mod:`ivr.gateways.breaker`). Always retry_safe —
        │                              the same order id later is harmless — but a blind
        │                              retry at once is refused again: wait for
        │                              ``retry_at``, or use another account
        ├── OutcomeUnknown             the request may have reached the PG (read timeout,
        │   │                          connection reset after sending, HTTP 5xx, garbled
        │   │                          answer). Resolve with ``find(order_id)`` before
        │   │                          anything is retried.
        │   └── DuplicateOrder         the PG refused the order id as already used (paid or
        │                              in progress): the order may well be paid — look it up
        ├── GatewayRejected            the PG refused the request itself (HTTP 4xx, a
        │   │                          malformed or inconsistent answer). Fix, don't retry.
        │   └── AuthenticationFailed   imp_key/imp_secret refused, or 401 after a refresh
        ├── CardDeclined               register_billing_key only: the issuer refused the card;
        │                              carries the normalized :class:`Decline`
        └── CancelRefused              the PG refused a cancel: checksum mismatch, amount
                                       over the refundable balance, already cancelled…

Charges do not raise on a decline: a declined charge is a ``GatewayCharge`` with status
``failed`` and a :class:`Decline`. Messages name operations and order ids, never card
data or PG response bodies.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from ivr.errors import ArspayError
from ivr.gateways.declines import Decline


class GatewayError(ArspayError, error_id="gateway-error", http_status=502): ...


class GatewayUnavailable(GatewayError, error_id="gateway-unavailable", http_status=503):
    def __init__(self, message: str, *, retry_safe: bool) -> None:
        super().__init__(message)
        self.retry_safe = retry_safe


class CircuitOpen(GatewayUnavailable, error_id="pg-circuit-open", http_status=503):
    """Not sent: the circuit breaker of PG account ``account`` is open (it failed
    repeatedly; :class:`~ivr.gateways.breaker.CircuitBreaker`). Nothing reached the PG,
    so the same order id may be sent later; ``retry_at`` (UTC) is when the breaker lets
    one probe through, ``None`` when a probe is already in flight."""

    def __init__(self, account: str, *, retry_at: datetime | None = None) -> None:
        when = f"; next probe at {retry_at:%Y-%m-%dT%H:%M:%SZ}" if retry_at else ""
        super().__init__(
            f"PG account {account}: not sent, its circuit breaker is open{when}",
            retry_safe=True,
        )
        self.account = account
        self.retry_at = retry_at


class OutcomeUnknown(GatewayError, error_id="gateway-outcome-unknown", http_status=504):
    def __init__(self, message: str, *, order_id: str | None = None) -> None:
        super().__init__(message)
        self.order_id = order_id


class DuplicateOrder(OutcomeUnknown, error_id="gateway-duplicate-order"):
    """The PG refused a charge because its order id was paid or is being processed
    already (PortOne: "이미 결제가 이뤄진 적이 있는 merchant_uid로는 결제요청이
    불가능합니다"). Not a decline: the earlier request for this order id may have
    charged the payer, so only :meth:`Gateway.find` can say what happened."""


class GatewayRejected(GatewayError, error_id="gateway-rejected", http_status=502):
    def __init__(
        self, message: str, *, pg_status: int | None = None, pg_code: str | None = None
    ) -> None:
        super().__init__(message)
        self.pg_status = pg_status
        self.pg_code = pg_code


class AuthenticationFailed(GatewayRejected, error_id="gateway-auth-failed"): ...


class CardDeclined(GatewayError, error_id="card-declined", http_status=422):
    def __init__(self, message: str, *, decline: Decline) -> None:
        super().__init__(message)
        self.decline = decline


class CancelRefusal(StrEnum):
    checksum_mismatch = "checksum_mismatch"  # the caller's refundable balance is stale
    exceeds_refundable = "exceeds_refundable"
    already_cancelled = "already_cancelled"
    not_paid = "not_paid"
    not_found = "not_found"
    refused = "refused"  # any other refusal


class CancelRefused(GatewayError, error_id="cancel-refused", http_status=409):
    def __init__(self, message: str, *, reason: CancelRefusal, pg_code: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.pg_code = pg_code
