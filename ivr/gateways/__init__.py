"""Payment gateways: the connector contract, the PortOne v1 connector, the sandbox PG.

    contract.py        dataclasses in/out and the ``Gateway`` protocol (amounts: int KRW)
    declines.py        soft/hard decline reasons and their prompt ids
    errors.py          the package's error tree
    breaker.py         a circuit breaker per PG account; GuardedGateway (failover)
    portone/           the PortOne REST v1 connector (client, auth, wire, errors, results)
    factory.py         a gateway from settings
    fake.py            FakeGateway: the in-memory, scriptable PG of the unit tests
    sandbox/           the sandbox PG server (``arspay sandbox-pg``)

The charging engine (``ivr.payments``) builds on :class:`Gateway`; see docs/portone.md.
"""

from ivr.gateways.breaker import (
    BreakerPolicy,
    BreakerSnapshot,
    BreakerState,
    CircuitBreaker,
    GuardedGateway,
)
from ivr.gateways.contract import (
    BillingKey,
    BillingKeyRequest,
    Buyer,
    CancelRequest,
    CancelResult,
    ChargeRequest,
    ChargeStatus,
    Gateway,
    GatewayCharge,
    KeyedCard,
    KeyedChargeRequest,
    OrderStatus,
    PgState,
)
from ivr.gateways.declines import Decline, DeclineKind, DeclineReason, Stage
from ivr.gateways.errors import (
    AuthenticationFailed,
    CancelRefusal,
    CancelRefused,
    CardDeclined,
    CircuitOpen,
    GatewayError,
    GatewayRejected,
    GatewayUnavailable,
    OutcomeUnknown,
)

__all__ = [
    "AuthenticationFailed",
    "BillingKey",
    "BillingKeyRequest",
    "BreakerPolicy",
    "BreakerSnapshot",
    "BreakerState",
    "Buyer",
    "CancelRefusal",
    "CancelRefused",
    "CancelRequest",
    "CancelResult",
    "CardDeclined",
    "ChargeRequest",
    "ChargeStatus",
    "CircuitBreaker",
    "CircuitOpen",
    "Decline",
    "DeclineKind",
    "DeclineReason",
    "Gateway",
    "GatewayCharge",
    "GatewayError",
    "GatewayRejected",
    "GatewayUnavailable",
    "GuardedGateway",
    "KeyedCard",
    "KeyedChargeRequest",
    "OrderStatus",
    "OutcomeUnknown",
    "PgState",
    "Stage",
]
