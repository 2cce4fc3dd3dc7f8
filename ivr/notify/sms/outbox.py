"""The development outbox: the message stays in the database (``arspay sms outbox``
shows it); nothing leaves the machine."""

from __future__ import annotations

from ivr.notify.sms.base import SendResult
from ivr.notify.sms.segments import part_count


class OutboxSender:
    def __init__(self) -> None:
        self.kept: list[str] = []  # refs "sent", for tests

    async def send(self, to: str, sender: str, body: str, *, ref: str) -> SendResult:
        self.kept.append(ref)
        return SendResult(provider_ref="outbox", parts=part_count(body))

    async def close(self) -> None:
        return None
