"""Build the configured gateway. Both kinds use the PortOne connector: the sandbox PG
speaks the same API, only ``gateway.base_url`` and the keys differ."""

from __future__ import annotations

from ivr.errors import ConfigError
from ivr.gateways.portone import PortOneConfig, PortOneGateway
from ivr.settings import GatewaySettings


def build_gateway(gw: GatewaySettings) -> PortOneGateway:
    if not gw.api_key or not gw.api_secret.get_secret_value():
        raise ConfigError(
            f"gateway.kind = {gw.kind!r} needs gateway.api_key and gateway.api_secret "
            "(ARSPAY_GATEWAY_API_KEY / ARSPAY_GATEWAY_API_SECRET)"
        )
    return PortOneGateway(PortOneConfig.from_settings(gw))
