"""Payment gateways: the connector contract, the PortOne v1 connector, the sandbox PG.

    contract.py        dataclasses in/out and the ``Gateway`` protocol (amounts: int KRW)
    declines.py        soft/hard decline reasons and their prompt ids
    errors.py          the package's error tree
    portone.py         PortOne REST v1 over aiohttp (HTTP, token, the five operations)
    portone_auth.py    access-token cache
    portone_wire.py    PortOne request bodies and response fields
    portone_results.py PortOne answers -> contract values
    portone_errors.py  the mapping tables (transport, HTTP, decline and cancel messages)
    factory.py         a gateway from settings
    sandbox/           the sandbox PG server (``arspay sandbox-pg``)

The charging engine (``ivr.payments``) builds on :class:`Gateway`; see docs/portone.md.
"""

from ivr.gateways.contract import (
    BillingKey,
    BillingKeyRequest,
    CancelRequest,
    CancelResult,
    CardData,
    CardType,
    ChargeRequest,
    ChargeResult,
    ChargeStatus,
    Gateway,
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
    GatewayError,
    GatewayRejected,
    GatewayUnavailable,
    OutcomeUnknown,
)

__all__ = [
    "AuthenticationFailed",
    "BillingKey",
    "BillingKeyRequest",
    "CancelRefusal",
    "CancelRefused",
    "CancelRequest",
    "CancelResult",
    "CardData",
    "CardDeclined",
    "CardType",
    "ChargeRequest",
    "ChargeResult",
    "ChargeStatus",
    "Decline",
    "DeclineKind",
    "DeclineReason",
    "Gateway",
    "GatewayError",
    "GatewayRejected",
    "GatewayUnavailable",
    "KeyedChargeRequest",
    "OrderStatus",
    "OutcomeUnknown",
    "PgState",
    "Stage",
]
