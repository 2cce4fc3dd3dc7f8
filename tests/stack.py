"""The settings every test stack of the engine starts from: no config file, its var
directory and vault keys in a work directory, and the sandbox PG as its gateway."""

from __future__ import annotations

from pathlib import Path

from ivr.settings import SANDBOX_CHANNEL_KEY
from tests.gateways.support import KEY, SECRET


def engine_env(workdir: Path, gateway_url: str, **extra: str) -> dict[str, str]:
    """``ARSPAY_*`` variables of an engine in ``workdir`` (``var/`` below it) whose PG is
    the sandbox at ``gateway_url``; ``extra`` adds to them or overrides them."""
    var = workdir / "var"
    return {
        "ARSPAY_CONFIG": "/nonexistent.toml",
        "ARSPAY_PATHS_VAR_DIR": str(var),
        "ARSPAY_VAULT_KEY_FILE": str(var / "vault" / "kek.key"),
        "ARSPAY_VAULT_FINGERPRINT_KEY_FILE": str(var / "vault" / "fp.key"),
        "ARSPAY_GATEWAY_BASE_URL": gateway_url,
        "ARSPAY_GATEWAY_API_KEY": KEY,
        "ARSPAY_GATEWAY_API_SECRET": SECRET,
        "ARSPAY_GATEWAY_CHANNEL_KEY": SANDBOX_CHANNEL_KEY,
        **extra,
    }
