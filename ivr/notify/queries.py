"""The SMS outbox read model, through a :class:`~ivr.store.scope.Scope`."""

from __future__ import annotations

from sqlalchemy import Select

from ivr.store.scope import Scope
from ivr.store.tables import SmsMessage


def sms_messages(
    scope: Scope, *, status: str | None = None, kind: str | None = None
) -> Select[SmsMessage]:
    """The SMS messages in ``scope`` (to page), optionally of one status or kind."""
    return scope.select(SmsMessage, status=status or None, kind=kind or None)
