"""Sandbox PG configuration: built from ``[gateway]`` settings, overridable per run."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ivr.errors import ConfigError
from ivr.gateways.sandbox.faults import PAYMENT_ENDPOINTS, Endpoint, FaultSpec, Ordering
from ivr.settings import SANDBOX_CHANNEL_KEY, GatewaySettings


@dataclass(frozen=True)
class SandboxConfig:
    imp_key: str
    imp_secret: str = field(repr=False)
    ledger_path: Path = Path("var/sandbox-pg/ledger.db")
    latency_ms: int = 30
    error_rate: float = 0.0  # share of payment calls answered HTTP 500 before anything
    timeout_rate: float = 0.0  # share of new charges dropped after they were recorded
    hang_ms: int = 0  # how long a dropped charge hangs first (0: drop at once)
    token_ttl_s: int = 1800
    seed: int | None = None  # fault injection is reproducible with a seed
    faults: tuple[FaultSpec, ...] = ()  # orderings by probability (faults.py)
    channel_key: str = SANDBOX_CHANNEL_KEY  # the one channel billing keys are issued on
    pg: str = ""  # play this PG's rules (ivr/gateways/portone/pgs.py); "": none extra
    # PortOne V2 (the /v2 mount): its API secret is imp_secret; webhooks when a URL is set
    v2_store_id: str = "store-arspay-sandbox"
    v2_webhook_url: str = ""
    v2_webhook_secret: str = field(default="", repr=False)  # whsec_…
    # the origin its receipt links (receipt_url) name; "": the origin a request came to
    receipt_base: str = ""

    def __post_init__(self) -> None:
        if not self.imp_key or not self.imp_secret:
            raise ConfigError(
                "the sandbox PG needs gateway.api_key and gateway.api_secret "
                "(ARSPAY_GATEWAY_API_KEY / ARSPAY_GATEWAY_API_SECRET)"
            )
        for name in ("error_rate", "timeout_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"sandbox {name} must be between 0 and 1")
        if not self.channel_key:
            raise ConfigError("the sandbox PG needs a channel key (gateway.channel_key)")
        if self.latency_ms < 0 or self.hang_ms < 0 or self.token_ttl_s < 1:
            raise ConfigError("sandbox latency/hang must be >= 0 and token ttl >= 1")

    def fault_specs(self) -> tuple[FaultSpec, ...]:
        """``faults``, then ``error_rate`` (HTTP 500 before anything, on charges and
        cancels) and ``timeout_rate`` (charges recorded, then dropped after ``hang_ms``)."""
        legacy = []
        if self.error_rate:
            endpoints = (*PAYMENT_ENDPOINTS, Endpoint.cancel)
            legacy.append(FaultSpec(endpoints, Ordering.error_before, self.error_rate))
        if self.timeout_rate:
            legacy.append(FaultSpec(PAYMENT_ENDPOINTS, Ordering.record_then_drop,
                                    self.timeout_rate, self.hang_ms))  # fmt: skip
        return (*self.faults, *legacy)

    @classmethod
    def from_settings(cls, gw: GatewaySettings, **overrides: Any) -> SandboxConfig:
        v2 = gw.kind == "portone_v2"  # V2 has no key, only the secret
        base = cls(
            imp_key=gw.api_key or ("arspay-sandbox" if v2 else ""),
            imp_secret=gw.api_secret.get_secret_value(),
            ledger_path=gw.sandbox_ledger,
            latency_ms=gw.sandbox_latency_ms,
            error_rate=gw.sandbox_error_rate,
            timeout_rate=gw.sandbox_timeout_rate,
            hang_ms=gw.sandbox_hang_ms,
            token_ttl_s=gw.sandbox_token_ttl_s,
            faults=parse_faults(gw.sandbox_faults),
            channel_key=gw.effective_channel_key,
            pg=gw.sandbox_pg,
            v2_store_id=gw.store_id or cls.v2_store_id,
            v2_webhook_url=gw.sandbox_webhook_url,
            v2_webhook_secret=gw.webhook_secret.get_secret_value(),
        )
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def parse_faults(text: str) -> tuple[FaultSpec, ...]:
    """Comma-separated :meth:`FaultSpec.parse` specs (``gateway.sandbox_faults``)."""
    return tuple(FaultSpec.parse(part) for part in text.split(",") if part.strip())
