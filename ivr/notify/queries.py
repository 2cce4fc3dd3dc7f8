"""The SMS outbox read model, through a :class:`~ivr.store.scope.Scope`."""

from __future__ import annotations

from sqlalchemy import Select, select

from ivr.store.scope import Scope
from ivr.store.tables import SmsMessage


def sms_messages(
    scope: Scope, *, status: str | None = None, kind: str | None = None
) -> Select[SmsMessage]:
    """The SMS messages in ``scope`` (to page), optionally of one status or kind."""
    q = scope.where(select(SmsMessage), SmsMessage)
    if status:
        q = q.where(SmsMessage.status == status)
    if kind:
        q = q.where(SmsMessage.kind == kind)
    return q
