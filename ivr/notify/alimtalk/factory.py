"""Pick the provider named by ``alimtalk.provider`` (None: notices go by SMS only)."""

from __future__ import annotations

from ivr.errors import ConfigError
from ivr.notify.alimtalk.contract import AlimtalkProvider
from ivr.settings import AlimtalkSettings


def build_provider(settings: AlimtalkSettings) -> AlimtalkProvider | None:
    if settings.provider == "none":
        return None
    if settings.provider == "nhn":
        from ivr.notify.alimtalk.nhn import NhnAlimtalk

        return NhnAlimtalk(settings)
    raise ConfigError(f"unknown alimtalk.provider {settings.provider!r}")
