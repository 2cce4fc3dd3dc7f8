"""Rendering recorded notices into channel messages: today every notice becomes one
``sms_messages`` row (kind ``notice``; SMS or LMS by its EUC-KR length, decided by the
provider from the body — :func:`~ivr.notify.sms.segments.sms_format`). A second channel
(KakaoTalk 알림톡) slots in here: render its template from the same variables, and
fall back to this SMS when it is refused.

``pending -> routed`` under the notice's row lock (``FOR UPDATE SKIP LOCKED``), in the
transaction that adds the message, so a notice becomes exactly one message however many
dispatchers route at once."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from ivr.clock import Clock
from ivr.domain.ids import new_id
from ivr.domain.states import DeliveryStatus
from ivr.notify.notices.kinds import NoticeKind
from ivr.notify.notices.record import PENDING, ROUTED
from ivr.notify.notices.texts import sms_text
from ivr.store.db import Database
from ivr.store.tables import Notice, SmsMessage

SMS_CHANNEL = "sms"


@dataclass(eq=False)
class NoticeRouter:
    db: Database
    clock: Clock
    sms_sender: str
    sms_adapter: str
    batch: int = 100

    async def route_pending(self) -> int:
        """Turn pending notices into messages, oldest first; returns how many."""
        done = 0
        while True:
            async with self.db.transaction() as s:
                rows = list(
                    await s.scalars(
                        select(Notice)
                        .where(Notice.status == PENDING)
                        .order_by(Notice.created_at, Notice.id)
                        .limit(self.batch)
                        .with_for_update(skip_locked=True)
                    )
                )
                now = self.clock.now()
                for notice in rows:
                    s.add(
                        SmsMessage(
                            id=new_id("sms"),
                            merchant_id=notice.merchant_id,
                            call_request_id=None,
                            notice_id=notice.id,
                            kind="notice",
                            to=notice.mobile,
                            sender=self.sms_sender,
                            body=sms_text(NoticeKind(notice.kind), notice.variables),
                            adapter=self.sms_adapter,
                            status=DeliveryStatus.pending.value,
                            attempts=0,
                            created_at=now,
                        )
                    )
                    notice.status, notice.channel, notice.routed_at = ROUTED, SMS_CHANNEL, now
            done += len(rows)
            if len(rows) < self.batch:
                return done
