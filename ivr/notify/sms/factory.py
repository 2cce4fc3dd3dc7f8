"""Pick the adapter named by ``sms.adapter``."""

from __future__ import annotations

from ivr.errors import ConfigError
from ivr.notify.sms.base import SmsSender
from ivr.settings import SmsSettings


def build_sender(settings: SmsSettings) -> SmsSender:
    if settings.adapter == "outbox":
        from ivr.notify.sms.outbox import OutboxSender

        return OutboxSender()
    if settings.adapter == "smpp":
        from ivr.notify.sms.smpp import SmppSender

        return SmppSender(settings)
    if settings.adapter == "http":
        from ivr.notify.sms.http import HttpSender

        return HttpSender(settings)
    raise ConfigError(f"unknown sms.adapter {settings.adapter!r}")
