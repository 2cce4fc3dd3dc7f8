"""The outbox read models (SMS/LMS, KakaoTalk 알림톡), through a
:class:`~ivr.store.scope.Scope`."""

from __future__ import annotations

from sqlalchemy import Select, select

from ivr.store.scope import Scope
from ivr.store.tables import AlimtalkMessage, SmsMessage


def sms_messages(
    scope: Scope, *, status: str | None = None, kind: str | None = None
) -> Select[SmsMessage]:
    """The SMS messages in ``scope`` (to page), optionally of one status or kind."""
    return scope.select(SmsMessage, status=status or None, kind=kind or None)


def alimtalk_messages(scope: Scope, *, status: str | None = None) -> Select[AlimtalkMessage]:
    """The 알림톡 messages in ``scope`` (to page), optionally of one status."""
    return scope.select(AlimtalkMessage, status=status or None)


def fallbacks_of(scope: Scope, sms_ids: list[str]) -> Select[AlimtalkMessage]:
    """The 알림톡 messages in ``scope`` whose fallback (대체 발송) is one of ``sms_ids``."""
    return scope.where(
        select(AlimtalkMessage).where(AlimtalkMessage.fallback_sms_id.in_(sms_ids)),
        AlimtalkMessage,
    )
