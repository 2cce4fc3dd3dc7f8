"""Build the configured gateway. ``sandbox`` and ``portone`` use the PortOne v1
connector (the sandbox PG speaks the same API, only ``gateway.base_url`` and the keys
differ); ``portone_v2`` the V2 connector (the sandbox answers it under ``/v2``)."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from ivr.errors import ConfigError
from ivr.gateways.contract import Gateway
from ivr.gateways.portone import PortOneConfig, PortOneGateway
from ivr.gateways.portone_v2 import PortOneV2Config, PortOneV2Gateway
from ivr.settings import GatewaySettings


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
