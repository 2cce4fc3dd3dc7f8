"""Which gateway serves a PG account: the seam between the roles that send to the PG
(charger, refunder, key sweeps) and the merchant's PG accounts (:mod:`ivr.pg_accounts`).

Every row that went to a PG names its account (``pg_account_id``; ``None`` is the
``default`` account, the ``[gateway]`` settings): a charge, a lookup, a cancel or a key
deletion goes to the account the row names, never to wherever the card is now.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ivr.gateways.contract import Gateway


@runtime_checkable
class Gateways(Protocol):
    async def of(self, account_id: str | None) -> Gateway:
        """The gateway of ``account_id`` (``None``: default); NotFound for no such account."""
        ...


class OneGateway:
    """Every account is this one gateway: single-account setups and tests."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def of(self, account_id: str | None) -> Gateway:
        return self.gateway


def as_gateways(gateway: Gateway | Gateways) -> Gateways:
    return gateway if isinstance(gateway, Gateways) else OneGateway(gateway)
