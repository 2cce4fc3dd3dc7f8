"""Build the configured gateway. ``sandbox`` and ``portone`` use the PortOne v1
connector (the sandbox PG speaks the same API, only ``gateway.base_url`` and the keys
differ); ``portone_v2`` the V2 connector (the sandbox answers it under ``/v2``).

:func:`gateway_for_route` builds the gateway of one PG account the vault was asked to
forward to (a :class:`~vault.forwarding.Route`): the ``[gateway]`` settings' deadlines
and sandbox knobs, with the account's kind, base URL and connection fields instead of
the configured account's."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Final, Protocol, Self

from pydantic import ValidationError

from ivr.errors import ConfigError
from ivr.gateways.contract import Gateway
from ivr.gateways.portone import PortOneConfig, PortOneGateway
from ivr.gateways.portone_v2 import PortOneV2Config, PortOneV2Gateway
from ivr.settings import GatewaySettings
from vault.forwarding import Route

ROUTE_FIELDS: Final = frozenset(
    {"api_key", "api_secret", "channel_key", "pg", "product_type", "buyer_email", "store_id"}
)
"""What a route's ``connection`` may set: the PG account's own fields. None of the
configured account's are kept (a secondary account never borrows the primary's key)."""


class ConnectedGateway(Gateway, Protocol):
    """A :class:`Gateway` that holds connections: ``async with`` it, or ``aclose()``."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def aclose(self) -> None: ...


def gateway_configured(gw: GatewaySettings) -> bool:
    """Whether the settings name a PG account: the V2 API secret (``portone_v2``, which
    the settings also require store and channel for), else the v1 ``api_key``."""
    if gw.kind == "portone_v2":
        return bool(gw.api_secret.get_secret_value())
    return bool(gw.api_key)


def build_gateway(gw: GatewaySettings) -> ConnectedGateway:
    if gw.kind == "portone_v2":  # the settings refuse it without secret, store, channel
        return PortOneV2Gateway(PortOneV2Config.from_settings(gw))
    if not gw.api_key or not gw.api_secret.get_secret_value():
        raise ConfigError(
            f"gateway.kind = {gw.kind!r} needs gateway.api_key and gateway.api_secret "
            "(ARSPAY_GATEWAY_API_KEY / ARSPAY_GATEWAY_API_SECRET)"
        )
    return PortOneGateway(PortOneConfig.from_settings(gw))


def route_settings(route: Route, base: GatewaySettings) -> GatewaySettings:
    """``base`` (deadlines, retry policy, sandbox knobs) with the PG account of
    ``route``, validated as ``[gateway]`` is. :class:`ConfigError` names the account and
    the fields, never a value."""
    unknown = sorted(set(route.connection) - ROUTE_FIELDS)
    if unknown:
        raise ConfigError(
            f"PG account {route.account_id}: unknown connection field(s) {', '.join(unknown)}"
        )
    data: dict[str, Any] = {
        name: value
        for name, value in base.model_dump().items()
        if name not in ROUTE_FIELDS and name != "webhook_secret"
    }
    data.update(route.connection, kind=route.kind, base_url=route.base_url)
    try:
        return GatewaySettings.model_validate(data)
    except ValidationError as exc:
        # loc and msg only: pydantic's str() would quote the input (a secret, maybe).
        problems = sorted(
            f"{'.'.join(str(p) for p in e['loc']) or 'account'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        raise ConfigError(f"PG account {route.account_id}: {'; '.join(problems)}") from None


def gateway_for_route(route: Route, base: GatewaySettings) -> ConnectedGateway:
    """The gateway of ``route``'s PG account (see :func:`route_settings`)."""
    return build_gateway(route_settings(route, base))
