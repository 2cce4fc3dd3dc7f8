"""Rendering recorded notices into channel messages. A notice whose kind has a
KakaoTalk 알림톡 template (``alimtalk.templates``, provider configured), and whose
merchant keeps its switch ``notices.alimtalk`` on (the default), becomes one
``alimtalk_messages`` row: its template parameters from the notice's variables
(:mod:`ivr.notify.alimtalk.params`) and the SMS text kept for the fallback, which
:mod:`ivr.notify.alimtalk.dispatch` queues when 알림톡 is refused. Any other notice
becomes one ``sms_messages`` row (kind ``notice``; SMS or LMS by its EUC-KR length,
decided by the provider from the body — :func:`~ivr.notify.sms.segments.sms_format`).

``pending -> routed`` under the notice's row lock (``FOR UPDATE SKIP LOCKED``), in the
transaction that adds the message, so a notice becomes exactly one message however many
dispatchers route at once."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.clock import Clock
from ivr.domain.ids import new_id
from ivr.domain.states import AlimtalkStatus, DeliveryStatus
from ivr.notify.alimtalk.params import parameters, receipt_url
from ivr.notify.notices.kinds import NoticeKind
from ivr.notify.notices.record import PENDING, ROUTED, notice_settings
from ivr.notify.notices.texts import sms_text
from ivr.settings import AlimtalkSettings
from ivr.store.db import Database
from ivr.store.tables import AlimtalkMessage, Merchant, Notice, SmsMessage

SMS_CHANNEL = "sms"
ALIMTALK_CHANNEL = "alimtalk"


@dataclass(eq=False)
class NoticeRouter:
    db: Database
    clock: Clock
    sms_sender: str
    sms_adapter: str
    alimtalk: AlimtalkSettings | None = None
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
                kakao = await self._alimtalk_merchants(s, {n.merchant_id for n in rows})
                for notice in rows:
                    kind = NoticeKind(notice.kind)
                    text = sms_text(kind, notice.variables)
                    code = (
                        self.alimtalk.template_for(kind.value)
                        if self.alimtalk is not None and notice.merchant_id in kakao
                        else None
                    )
                    if code:
                        s.add(
                            AlimtalkMessage(
                                id=new_id("atk"),
                                merchant_id=notice.merchant_id,
                                notice_id=notice.id,
                                to=notice.mobile,
                                template_code=code,
                                parameters=parameters(kind, notice.variables),
                                button_url=receipt_url(notice.variables),
                                fallback_text=text,
                                status=AlimtalkStatus.pending.value,
                                attempts=0,
                                created_at=now,
                                next_try_at=now,
                            )
                        )
                        notice.status, notice.channel = ROUTED, ALIMTALK_CHANNEL
                        notice.routed_at = now
                        continue
                    s.add(
                        SmsMessage(
                            id=new_id("sms"),
                            merchant_id=notice.merchant_id,
                            call_request_id=None,
                            notice_id=notice.id,
                            kind="notice",
                            to=notice.mobile,
                            sender=self.sms_sender,
                            body=text,
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

    async def _alimtalk_merchants(self, s: AsyncSession, merchant_ids: set[str]) -> set[str]:
        """Those of ``merchant_ids`` whose notices go by 알림톡 first (their switch
        ``notices.alimtalk``, on by default), when the deployment has it set up."""
        if self.alimtalk is None or not merchant_ids:
            return set()
        found = await s.execute(
            select(Merchant.id, Merchant.settings).where(Merchant.id.in_(merchant_ids))
        )
        return {mid for mid, settings in found if notice_settings(settings).alimtalk}
