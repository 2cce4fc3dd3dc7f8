"""Build the configured gateway. ``sandbox`` and ``portone`` use the PortOne v1
connector (the sandbox PG speaks the same API, only ``gateway.base_url`` and the keys
differ); ``portone_v2`` the V2 connector (the sandbox answers it under ``/v2``)."""

from __future__ import annotations

from ivr.errors import ConfigError
from ivr.gateways.portone import PortOneConfig, PortOneGateway
from ivr.gateways.portone_v2 import PortOneV2Config, PortOneV2Gateway
from ivr.settings import GatewaySettings


def build_gateway(gw: GatewaySettings) -> PortOneGateway | PortOneV2Gateway:
    if gw.kind == "portone_v2":  # the settings refuse it without secret, store, channel
        return PortOneV2Gateway(PortOneV2Config.from_settings(gw))
    if not gw.api_key or not gw.api_secret.get_secret_value():
        raise ConfigError(
            f"gateway.kind = {gw.kind!r} needs gateway.api_key and gateway.api_secret "
            "(ARSPAY_GATEWAY_API_KEY / ARSPAY_GATEWAY_API_SECRET)"
        )
    return PortOneGateway(PortOneConfig.from_settings(gw))
