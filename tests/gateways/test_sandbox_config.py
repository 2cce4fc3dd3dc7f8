"""Sandbox configuration: from ``[gateway]`` settings, per-run overrides, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.errors import ConfigError
from ivr.gateways.sandbox import SandboxConfig
from ivr.settings import load_settings

ENV = {
    "ARSPAY_CONFIG": "/nonexistent/arspay.toml",
    "ARSPAY_GATEWAY_API_KEY": "k",
    "ARSPAY_GATEWAY_API_SECRET": "s3cret-value",
    "ARSPAY_GATEWAY_SANDBOX_ERROR_RATE": "0.02",
    "ARSPAY_GATEWAY_SANDBOX_TIMEOUT_RATE": "0.05",
    "ARSPAY_GATEWAY_SANDBOX_LATENCY_MS": "12",
}


def test_settings_then_overrides(tmp_path: Path) -> None:
    gw = load_settings(env=ENV).gateway
    config = SandboxConfig.from_settings(gw)
    assert (config.error_rate, config.timeout_rate, config.latency_ms) == (0.02, 0.05, 12)
    assert config.ledger_path == Path("var/sandbox-pg/ledger.db")
    other = SandboxConfig.from_settings(gw, latency_ms=0, ledger_path=tmp_path / "l.db",
                                        error_rate=None)  # fmt: skip
    assert other.latency_ms == 0
    assert other.ledger_path == tmp_path / "l.db"
    assert other.error_rate == 0.02  # None = keep the setting
    assert "s3cret-value" not in repr(other)


def test_defaults_match_product(tmp_path: Path) -> None:
    gw = load_settings(env={**ENV, "ARSPAY_GATEWAY_SANDBOX_LATENCY_MS": "30"}).gateway
    assert gw.sandbox_latency_ms == 30  # docs/product.md §7: default 30 ms
    assert gw.base_url.endswith(f":{gw.sandbox_port}")


@pytest.mark.parametrize(
    "overrides",
    [{"imp_key": ""}, {"imp_secret": ""}, {"error_rate": 1.5}, {"timeout_rate": -0.1},
     {"latency_ms": -1}, {"token_ttl_s": 0}],
)  # fmt: skip
def test_bad_configurations_are_refused(overrides: dict[str, object]) -> None:
    base: dict[str, object] = {"imp_key": "k", "imp_secret": "s"}
    with pytest.raises(ConfigError):
        SandboxConfig(**{**base, **overrides})  # type: ignore[arg-type]


def test_portone_v2_settings_run_the_sandbox_with_the_v2_secret_and_webhooks() -> None:
    env = {
        "ARSPAY_CONFIG": "/nonexistent/arspay.toml",
        "ARSPAY_GATEWAY_KIND": "portone_v2",
        "ARSPAY_GATEWAY_API_SECRET": "v2-secret",
        "ARSPAY_GATEWAY_STORE_ID": "store-1",
        "ARSPAY_GATEWAY_CHANNEL_KEY": "channel-key-1",
        "ARSPAY_GATEWAY_WEBHOOK_SECRET": "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=",
        "ARSPAY_GATEWAY_SANDBOX_WEBHOOK_URL": "http://127.0.0.1:8000/v1/pg/portone-v2/webhooks",
    }
    config = SandboxConfig.from_settings(load_settings(env=env).gateway)
    assert config.imp_secret == "v2-secret"  # what `Authorization: PortOne …` must carry
    assert config.v2_store_id == "store-1"
    assert config.v2_webhook_url.endswith("/v1/pg/portone-v2/webhooks")
    assert config.v2_webhook_secret.startswith("whsec_")
    assert "whsec_" not in repr(config)
