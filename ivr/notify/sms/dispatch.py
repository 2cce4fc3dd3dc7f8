"""The SMS dispatcher: takes queued :class:`~ivr.store.tables.SmsMessage` rows of the
configured adapter to the provider, retries failures with backoff, records receipts.

DELIVERY machine: ``pending -> sending -> sent -> delivered``; a failed send goes
``sending -> retrying -> sending …`` and after ``sms.max_attempts`` (or at once when the
provider refused for good) ``-> failed`` with ``last_error`` (never the body). A sent
message whose request is still ``created`` moves it to ``sms_sent``.

Receipts: one received before its send was recorded (the SMSC can be quicker than our
commit) is kept and matched again on later rounds, for ``receipt_wait``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from datetime import datetime, timedelta

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.clock import Clock
from ivr.domain.states import CALL_REQUEST, DELIVERY, DeliveryStatus
from ivr.jobs.pacing import Pacer
from ivr.notify.notices.router import NoticeRouter
from ivr.notify.sms.backoff import Backoff
from ivr.notify.sms.base import Receipt, ReceiptSource, SendResult, SmsSender
from ivr.notify.sms.errors import SmsSendError, SmsTooLong
from ivr.requests.service import CallRequestService
from ivr.settings import SmsSettings
from ivr.store.db import Database, locked_in
from ivr.store.tables import CallRequest, Notice, SmsMessage

log = logging.getLogger(__name__)
D = DeliveryStatus


class SmsDispatcher:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        sender: SmsSender,
        settings: SmsSettings,
        requests: CallRequestService,
        *,
        backoff: Backoff | None = None,
        batch: int = 50,
        poll_s: float = 1.0,
        idle_poll_s: float = 5.0,
        receipt_wait: timedelta = timedelta(minutes=10),
        notices: NoticeRouter | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.sender = sender
        self.settings = settings
        self.requests = requests
        self.backoff = backoff or Backoff()
        self.batch = batch
        self.pacer = Pacer(poll_s, max(poll_s, idle_poll_s))
        db.on_commit([SmsMessage.__tablename__], lambda: self.pacer.wake())
        self.receipt_wait = receipt_wait
        self.notices = notices  # payer notices to render into messages each round
        if notices is not None:
            db.on_commit([Notice.__tablename__], lambda: self.pacer.wake())
        self._receipts: deque[tuple[Receipt, datetime]] = deque()
        if isinstance(sender, ReceiptSource):
            sender.on_receipt(self.receive)

    # ------------------------------------------------------------------ sending

    async def run_once(self) -> int:
        """Send every message due now; then match the receipts heard so far. Returns
        the number of messages tried."""
        if self.notices is not None:
            await self.notices.route_pending()
        ids = await self._claim()
        for sms_id in ids:
            await self._send_one(sms_id)
        await self.match_receipts()
        return len(ids)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        await self.recover()
        # a message queued or a receipt heard (also during the round) wakes it
        await self.pacer.run(
            self.run_once, stop, log, "sms dispatcher", pending=lambda: bool(self._receipts)
        )

    def _locked(self, *statuses: DeliveryStatus) -> Select[SmsMessage]:
        """This adapter's messages in ``statuses``, locked; rows another dispatcher
        holds are skipped, not waited for."""
        return (
            select(SmsMessage)
            .where(
                SmsMessage.adapter == self.settings.adapter,
                SmsMessage.status.in_([status.value for status in statuses]),
            )
            .with_for_update(skip_locked=True)
        )

    async def recover(self) -> int:
        """Messages left ``sending`` by a dispatcher that died mid-send go back to
        ``retrying`` (the provider may or may not have them: at-least-once)."""
        async with self.db.transaction() as s:
            rows = list(await s.scalars(self._locked(D.sending)))
            for sms in rows:
                self._failed(sms, "interrupted while sending", permanent=False)
        return len(rows)

    async def _claim(self) -> list[str]:
        now = self.clock.now()
        async with self.db.transaction() as s:
            oldest_first = self._locked(D.pending, D.retrying).order_by(
                SmsMessage.created_at, SmsMessage.id
            )
            rows = list(await s.scalars(oldest_first.limit(self.batch * 4)))
            claimed: list[str] = []
            for sms in rows:
                if len(claimed) >= self.batch:
                    break
                if sms.status == D.retrying.value and (
                    self.backoff.next_attempt_at(sms.created_at, sms.attempts) > now
                ):
                    continue
                sms.status = DELIVERY.check(sms.status, D.sending).value
                claimed.append(sms.id)
        return claimed

    async def _send_one(self, sms_id: str) -> None:
        async with self.db.sessions() as s:
            sms = await s.get(SmsMessage, sms_id)
            if sms is None:
                return
            to, sender, body = sms.to, sms.sender, sms.body
            blocked = await self._request_ended(s, sms.call_request_id)
        result: SendResult | None = None
        error: SmsSendError | None = None
        if blocked is not None:
            error = SmsSendError(f"call request already {blocked}", permanent=True)
        else:
            try:
                result = await self.sender.send(to, sender, body, ref=sms_id)
            except SmsSendError as exc:
                error = exc
            except SmsTooLong as exc:
                error = SmsSendError(exc.message, permanent=True)
            except Exception as exc:  # an adapter bug must not lose the message
                log.exception("sms adapter failed")
                error = SmsSendError(f"{self.settings.adapter}: {type(exc).__name__}")
        async with self.db.transaction() as s:
            row = await locked_in(s, SmsMessage, sms_id, D.sending.value)
            if row is None:
                return
            if error is not None:
                self._failed(row, error.message, permanent=error.permanent)
                return
            assert result is not None
            row.attempts += 1
            row.status = DELIVERY.check(row.status, D.sent).value
            row.provider_ref = result.provider_ref
            row.sent_at = self.clock.now()
            row.last_error = None
            await self.requests.sms_sent_in(s, row.call_request_id)

    async def _request_ended(self, s: AsyncSession, request_id: str | None) -> str | None:
        """The request's status if it already ended (no point texting the payer)."""
        if not request_id:
            return None
        req = await s.get(CallRequest, request_id)
        if req is not None and CALL_REQUEST.is_terminal(req.status):
            return req.status
        return None

    def _failed(self, sms: SmsMessage, why: str, *, permanent: bool) -> None:
        sms.attempts += 1
        sms.last_error = why[:500]
        if permanent or sms.attempts >= self.settings.max_attempts:
            sms.status = DELIVERY.check(sms.status, D.failed).value
        else:
            sms.status = DELIVERY.check(sms.status, D.retrying).value

    # ------------------------------------------------------------------ receipts

    def receive(self, receipt: Receipt) -> None:
        """Queue a receipt (called on the event loop by a receipt-hearing adapter)."""
        self._receipts.append((receipt, self.clock.now()))
        self.pacer.wake()

    async def match_receipts(self) -> int:
        """Record the queued receipts; keep the ones that match no sent message yet."""
        done = 0
        keep: deque[tuple[Receipt, datetime]] = deque()
        cutoff = self.clock.now() - self.receipt_wait
        while self._receipts:
            receipt, heard = self._receipts.popleft()
            if await self.record_receipt(receipt):
                done += 1
            elif heard > cutoff:
                keep.append((receipt, heard))
            else:
                log.warning("sms receipt for unknown provider ref dropped")
        self._receipts.extend(keep)
        return done

    async def record_receipt(self, receipt: Receipt) -> bool:
        """Apply a delivery receipt: ``sent -> delivered`` (``delivered_at``) or
        ``sent -> failed`` (``last_error``). True when it matched a message."""
        ref = receipt.provider_ref
        async with self.db.transaction() as s:
            sms = await s.scalar(
                select(SmsMessage)
                .where(
                    SmsMessage.status.in_([D.sent.value, D.delivered.value, D.failed.value]),
                    or_(
                        SmsMessage.provider_ref == ref,
                        SmsMessage.provider_ref.startswith(f"{ref},", autoescape=True),
                        SmsMessage.provider_ref.endswith(f",{ref}", autoescape=True),
                        SmsMessage.provider_ref.contains(f",{ref},", autoescape=True),
                    ),
                )
                .order_by(SmsMessage.created_at.desc())
                .limit(1)
                .with_for_update()
            )
            if sms is None:
                return False
            if sms.status != D.sent.value:
                return True  # already final: a later part's receipt, or a duplicate
            if receipt.delivered:
                sms.status = DELIVERY.check(sms.status, D.delivered).value
                sms.delivered_at = receipt.at or self.clock.now()
            else:
                sms.status = DELIVERY.check(sms.status, D.failed).value
                err = f" err {receipt.error}" if receipt.error else ""
                sms.last_error = f"receipt {receipt.state}{err}"[:500]
            return True
