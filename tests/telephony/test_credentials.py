"""The telephony link credentials: where the ARI password and the FastAGI secret come
from, and the engine refusing development or missing ones outside ``engine.dev_mode``."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ivr.clock import FakeClock
from ivr.engine import Engine
from ivr.errors import ConfigError
from ivr.runtime import build
from ivr.settings import Settings, load_settings
from ivr.store.db import Database
from ivr.telephony import credentials
from ivr.telephony.credentials import DEV_AGI_SECRET, DEV_ARI_PASSWORD, checked, resolve
from ivr.telephony.session_log import LoggedCall

STRONG = "k3-Xq9_long-enough-password"
SECRET = "S3cret_agi-value-of-decent-length"


def settings(tmp_path: Path, **env: str) -> Settings:
    base = {
        "ARSPAY_CONFIG": str(tmp_path / "absent.toml"),
        "ARSPAY_PATHS_VAR_DIR": str(tmp_path / "var"),
    }
    return load_settings(env={**base, **env})


def test_nothing_configured_is_refused_outside_dev_mode(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        checked(settings(tmp_path))
    message = err.value.message
    assert "no asterisk.ari_password" in message
    assert "no asterisk.agi_secret" in message
    assert "arspay asterisk credentials" in message  # says how to fix it
    assert str(tmp_path / "var" / "asterisk" / "credentials.toml") in message


def test_the_development_ari_password_is_refused_outside_dev_mode(tmp_path: Path) -> None:
    s = settings(
        tmp_path, ARSPAY_ASTERISK_ARI_PASSWORD=DEV_ARI_PASSWORD, ARSPAY_ASTERISK_AGI_SECRET=SECRET
    )
    with pytest.raises(ConfigError, match="ari_password is the published development value"):
        checked(s)
    with pytest.raises(ConfigError):
        checked(s, agi=False)  # ARI alone still needs a real password
    assert checked(s, ari=False).agi_secret.get_secret_value() == SECRET  # FastAGI only


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        (DEV_AGI_SECRET, "agi_secret is the published development value"),
        ("short_secret", "agi_secret is shorter than 16 characters"),
    ],
)
def test_a_development_or_short_agi_secret_is_refused(
    tmp_path: Path, secret: str, problem: str
) -> None:
    s = settings(tmp_path, ARSPAY_ASTERISK_ARI_PASSWORD=STRONG, ARSPAY_ASTERISK_AGI_SECRET=secret)
    with pytest.raises(ConfigError, match=problem):
        checked(s)
    assert checked(s, agi=False).ari_password.get_secret_value() == STRONG


@pytest.mark.parametrize("secret", ["has,comma-and-more-chars", "has space inside it", "x" * 129])
def test_an_agi_secret_asterisk_would_misread_is_refused(tmp_path: Path, secret: str) -> None:
    s = settings(tmp_path, ARSPAY_ASTERISK_AGI_SECRET=secret, ARSPAY_ENGINE_DEV_MODE="true")
    with pytest.raises(ConfigError, match="agi_secret"):
        resolve(s)


def test_dev_mode_accepts_the_development_values_explicitly_asked_for(tmp_path: Path) -> None:
    s = settings(tmp_path, ARSPAY_ENGINE_DEV_MODE="true")
    creds = checked(s)
    assert creds.ari_password.get_secret_value() == DEV_ARI_PASSWORD
    assert creds.agi_secret.get_secret_value() == DEV_AGI_SECRET
    assert DEV_ARI_PASSWORD not in repr(creds)
    assert DEV_AGI_SECRET not in repr(creds)
    assert load_settings(env={"ARSPAY_CONFIG": "/none.toml"}).engine.dev_mode is False


def test_generated_credentials_are_random_private_and_kept(tmp_path: Path) -> None:
    s = settings(tmp_path)
    path = credentials.credentials_path(s)
    assert credentials.generate(path) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    first = checked(s)  # real values: accepted outside dev mode
    ari, agi = first.ari_password.get_secret_value(), first.agi_secret.get_secret_value()
    assert min(len(ari), len(agi)) >= 40
    assert ari != agi
    assert credentials.generate(path) is False  # kept: Asterisk's config still matches
    assert checked(s) == first
    assert credentials.generate(path, rotate=True) is True
    rotated = checked(s)
    assert rotated.ari_password != first.ari_password
    assert rotated.agi_secret != first.agi_secret
    other = tmp_path / "other.toml"
    credentials.generate(other)
    assert credentials.read_file(other) != credentials.read_file(path)  # per deployment


def test_configured_values_win_over_the_generated_file(tmp_path: Path) -> None:
    s = settings(tmp_path)
    credentials.generate(credentials.credentials_path(s))
    stored = credentials.read_file(credentials.credentials_path(s))
    mixed = checked(settings(tmp_path, ARSPAY_ASTERISK_ARI_PASSWORD=STRONG))
    assert mixed.ari_password.get_secret_value() == STRONG
    assert mixed.agi_secret.get_secret_value() == stored["agi_secret"]


def test_a_credentials_file_others_can_read_is_refused(tmp_path: Path) -> None:
    s = settings(tmp_path)
    path = credentials.credentials_path(s)
    credentials.generate(path)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        resolve(s)
    with pytest.raises(ConfigError, match="chmod 600"):
        credentials.generate(path)  # an existing unusable file is reported, not trusted
    path.write_text("not = [toml")
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError, match="not a credentials file"):
        resolve(s)


async def _no_flow(call: LoggedCall) -> str:
    return "none"


@pytest.mark.anyio
async def test_the_engine_refuses_to_start_its_links_on_development_credentials(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'e.db'}")
    try:
        dev = settings(tmp_path, ARSPAY_ASTERISK_ARI_PASSWORD=DEV_ARI_PASSWORD)
        with pytest.raises(ConfigError, match="is the published development value"):
            Engine(build(dev, clock=FakeClock(), db=db), _no_flow)
        with pytest.raises(ConfigError, match=r"no asterisk\.agi_secret"):
            Engine(build(settings(tmp_path, ARSPAY_ASTERISK_ARI_PASSWORD=STRONG), db=db),
                   _no_flow)  # fmt: skip
        # no link, no credential needed (tests and tools that run the engine's workers)
        Engine(build(dev, db=db), _no_flow, ari=False, agi=False)
        real = settings(
            tmp_path, ARSPAY_ASTERISK_ARI_PASSWORD=STRONG, ARSPAY_ASTERISK_AGI_SECRET=SECRET
        )
        engine = Engine(build(real, db=db), _no_flow)
        assert engine.agi_server is not None
        assert engine.agi_server._secret == SECRET.encode()
        devmode = Engine(build(settings(tmp_path, ARSPAY_ENGINE_DEV_MODE="true"), db=db),
                         _no_flow)  # fmt: skip
        assert devmode.agi_server is not None
        assert devmode.agi_server._secret == DEV_AGI_SECRET.encode()
    finally:
        await db.close()
