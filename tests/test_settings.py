"""Settings: defaults -> arspay.toml -> ARSPAY_* env, frozen, secrets masked."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from ivr.errors import ConfigError
from ivr.settings import load_settings, render

SECRET = "s3cr3t-Pa55"


def test_defaults_without_file_or_env(tmp_path: Path) -> None:
    s = load_settings(env={"ARSPAY_CONFIG": str(tmp_path / "none.toml")})
    assert s.dids.lease_minutes == 30
    assert s.dids.cooldown_minutes == 10
    assert s.calls.first_digit_timeout_s == 8.0
    assert s.database_url == "sqlite+aiosqlite:///var/arspay.db"


def test_file_then_env_precedence(tmp_path: Path) -> None:
    cfg = tmp_path / "arspay.toml"
    cfg.write_text('[dids]\nlease_minutes = 45\ncooldown_minutes = 3\n[sms]\nsender = "02-000"\n')
    s = load_settings(cfg, env={"ARSPAY_DIDS_LEASE_MINUTES": "60"})
    assert s.dids.lease_minutes == 60  # env wins over the file
    assert s.dids.cooldown_minutes == 3  # file wins over defaults
    assert s.sms.sender == "02-000"


def test_database_url_from_env() -> None:
    url = f"postgresql+asyncpg://arspay:{SECRET}@db/arspay"
    s = load_settings(env={"ARSPAY_DATABASE_URL": url, "ARSPAY_CONFIG": "/nonexistent.toml"})
    assert s.database_url == url


def test_secrets_are_masked_everywhere(tmp_path: Path) -> None:
    env = {
        "ARSPAY_CONFIG": str(tmp_path / "none.toml"),
        "ARSPAY_DATABASE_URL": f"postgresql+asyncpg://u:{SECRET}@h/d",
        "ARSPAY_ASTERISK_ARI_PASSWORD": SECRET,
        "ARSPAY_GATEWAY_API_SECRET": SECRET,
        "ARSPAY_VAULT_PKCS11_PIN": SECRET,
    }
    s = load_settings(env=env)
    for text in (repr(s), str(s), render(s), repr(s.asterisk), str(s.database)):
        assert SECRET not in text
    assert s.asterisk.ari_password.get_secret_value() == SECRET
    assert '"**********"' in render(s)


def test_settings_are_frozen() -> None:
    s = load_settings(env={"ARSPAY_CONFIG": "/nonexistent.toml"})
    with pytest.raises(pydantic.ValidationError):
        s.dids.lease_minutes = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ("[dids]\nlease_minutes = 'soon'\n", {}, "dids.lease_minutes"),
        ("[dids]\nlease_minute = 5\n", {}, "dids.lease_minute"),
        ("[nosuch]\nx = 1\n", {}, "nosuch"),
        ("[dids\n", {}, "not valid TOML"),
        ("", {"ARSPAY_DIDS_LEASE_MINUTES": "-1"}, "dids.lease_minutes"),
        ("", {"ARSPAY_DIDS_LEASEMINUTES": "5"}, "ARSPAY_DIDS_LEASEMINUTES"),
        ("", {"ARSPAY_VAULT_KEK_PROVIDER": "hsm"}, "vault.kek_provider"),
    ],
)
def test_bad_configuration_is_a_clear_error(
    tmp_path: Path, toml: str, env: dict[str, str], message: str
) -> None:
    cfg = tmp_path / "arspay.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_settings(cfg, env=env)


def test_named_config_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_settings(tmp_path / "missing.toml", env={})


def test_non_setting_arspay_variables_are_ignored() -> None:
    env = {"ARSPAY_CONFIG": "/nonexistent.toml", "ARSPAY_PYTHON": "python3", "ARSPAY_TEST_X": "1"}
    assert load_settings(env=env).dids.lease_minutes == 30


PORTONE = {"ARSPAY_CONFIG": "/nonexistent.toml", "ARSPAY_GATEWAY_KIND": "portone",
           "ARSPAY_GATEWAY_API_KEY": "imp-key", "ARSPAY_GATEWAY_API_SECRET": "imp-secret",
           "ARSPAY_GATEWAY_CHANNEL_KEY": "channel-key-1"}  # fmt: skip


def test_portone_defaults_to_the_real_api() -> None:
    gw = load_settings(env=PORTONE).gateway
    assert gw.base_url == "https://api.iamport.kr"
    assert gw.effective_channel_key == "channel-key-1"
    sandbox = load_settings(env={"ARSPAY_CONFIG": "/nonexistent.toml"}).gateway
    assert sandbox.base_url == "http://127.0.0.1:8090"
    assert sandbox.effective_channel_key == "channel-key-sandbox"


@pytest.mark.parametrize(
    ("drop", "extra", "message"),
    [
        ("ARSPAY_GATEWAY_CHANNEL_KEY", {}, "gateway.kind = portone needs gateway.channel_key"),
        ("ARSPAY_GATEWAY_API_KEY", {}, "needs gateway.api_key"),
        ("ARSPAY_GATEWAY_API_SECRET", {}, "needs gateway.api_secret"),
        ("", {"ARSPAY_GATEWAY_BASE_URL": "http://127.0.0.1:8090/"}, "gateway.base_url is the"),
        ("", {"ARSPAY_GATEWAY_PG": "KSNET!"}, "gateway.pg"),
        ("", {"ARSPAY_GATEWAY_PRODUCT_TYPE": "both"}, "gateway.product_type"),
    ],
)
def test_portone_refuses_what_it_cannot_work_without(
    drop: str, extra: dict[str, str], message: str
) -> None:
    env = {k: v for k, v in PORTONE.items() if k != drop} | extra
    with pytest.raises(ConfigError, match=message):
        load_settings(env=env)


V2 = {
    "ARSPAY_CONFIG": "/nonexistent.toml",
    "ARSPAY_GATEWAY_KIND": "portone_v2",
    "ARSPAY_GATEWAY_API_SECRET": SECRET,
    "ARSPAY_GATEWAY_STORE_ID": "store-1",
    "ARSPAY_GATEWAY_CHANNEL_KEY": "channel-key-1",
}


@pytest.mark.parametrize("missing", ["API_SECRET", "STORE_ID", "CHANNEL_KEY"])
def test_portone_v2_refuses_to_start_without_its_account(missing: str) -> None:
    env = {k: v for k, v in V2.items() if k != f"ARSPAY_GATEWAY_{missing}"}
    with pytest.raises(ConfigError, match=f"gateway.{missing.lower()}"):
        load_settings(env=env)


def test_portone_v2_defaults_to_portones_api_and_builds_the_v2_connector() -> None:
    from ivr.gateways.factory import build_gateway, gateway_configured
    from ivr.gateways.portone_v2 import PortOneV2Gateway

    s = load_settings(env={**V2, "ARSPAY_GATEWAY_WEBHOOK_SECRET": "whsec_" + SECRET})
    assert s.gateway.base_url == "https://api.portone.io"
    assert isinstance(build_gateway(s.gateway), PortOneV2Gateway)
    assert gateway_configured(s.gateway)  # no api_key: V2 has only the secret
    assert SECRET not in render(s)  # the webhook secret is masked too
    pointed = load_settings(env={**V2, "ARSPAY_GATEWAY_BASE_URL": "http://127.0.0.1:8090/v2"})
    assert pointed.gateway.base_url == "http://127.0.0.1:8090/v2"  # e.g. the sandbox's /v2
    assert load_settings(env={"ARSPAY_CONFIG": "/nonexistent.toml"}).gateway.base_url == (
        "http://127.0.0.1:8090"  # the other kinds keep theirs
    )
