"""Sandbox PG configuration: built from ``[gateway]`` settings, overridable per run."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ivr.errors import ConfigError
from ivr.settings import GatewaySettings


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

    def __post_init__(self) -> None:
        if not self.imp_key or not self.imp_secret:
            raise ConfigError(
                "the sandbox PG needs gateway.api_key and gateway.api_secret "
                "(ARSPAY_GATEWAY_API_KEY / ARSPAY_GATEWAY_API_SECRET)"
            )
        for name in ("error_rate", "timeout_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"sandbox {name} must be between 0 and 1")
        if self.latency_ms < 0 or self.hang_ms < 0 or self.token_ttl_s < 1:
            raise ConfigError("sandbox latency/hang must be >= 0 and token ttl >= 1")

    @classmethod
    def from_settings(cls, gw: GatewaySettings, **overrides: Any) -> SandboxConfig:
        base = cls(
            imp_key=gw.api_key,
            imp_secret=gw.api_secret.get_secret_value(),
            ledger_path=gw.sandbox_ledger,
            latency_ms=gw.sandbox_latency_ms,
            error_rate=gw.sandbox_error_rate,
            timeout_rate=gw.sandbox_timeout_rate,
            hang_ms=gw.sandbox_hang_ms,
            token_ttl_s=gw.sandbox_token_ttl_s,
        )
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})
