"""The Alimtalk dispatcher: takes ``alimtalk_messages`` rows to the provider, polls
their results, and queues the SMS/LMS fallback (대체 발송) when 알림톡 cannot carry
the notice — exactly one payer message per notice.

The ALIMTALK machine (ivr/domain/states.py)::

    pending ─claim─> sending ─Accepted──> sent ─COMPLETED─> delivered
                        │  ├─Refused───────────────────────> fallback
                        │  ├─RetryLater─> retrying ─claim─> sending …
                        │  │              (max_attempts reached -> fallback)
                        │  └─Unknown───> unknown ─lookup by our id─┬─ found ──> sent
                        │                                          ├─ absent ─> retrying
                        │                                          └─ no answer: ask again
                        └ (dispatcher died mid-send: recover() -> unknown)
    sent ─FAILED/CANCEL─> fallback;  sent ─no result in result_wait─> unconfirmed

Rules kept:

- Our message id travels with the send as the provider's idempotency key and the
  recipient grouping key, and is saved (the row) before the request goes out. A send
  whose answer was lost is *looked up*, never repeated blind, and never falls back
  blind: a fallback follows only a refusal, a failed result, or the provider saying it
  has no such message.
- Every transition happens under the row's lock, from the status the worker claimed
  it in (``locked_in``); a worker that finds the row moved on drops its outcome. The
  fallback SMS is added in the transaction that sets ``fallback`` and links it
  (``fallback_sms_id``), so two dispatchers can never queue two.
- An accepted message whose result never comes within ``result_wait_s`` ends
  ``unconfirmed`` with no fallback: it may well have been read.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.clock import Clock
from ivr.domain.ids import new_id
from ivr.domain.states import ALIMTALK, AlimtalkStatus, DeliveryStatus
from ivr.jobs.pacing import Pacer
from ivr.notify.alimtalk.contract import (
    Accepted,
    AlimtalkProvider,
    AlimtalkRequest,
    Refused,
    RetryLater,
    SendOutcome,
    Unknown,
)
from ivr.notify.notices.router import NoticeRouter
from ivr.notify.sms.backoff import Backoff
from ivr.settings import AlimtalkSettings, SmsSettings
from ivr.store.db import Database, locked_in
from ivr.store.tables import AlimtalkMessage, Notice, SmsMessage

log = logging.getLogger(__name__)
A = AlimtalkStatus
RESULT_POLL = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class _Job:
    id: str
    status: AlimtalkStatus  # the status the row was claimed in (sending, unknown, sent)


class AlimtalkDispatcher:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        provider: AlimtalkProvider,
        settings: AlimtalkSettings,
        sms: SmsSettings,
        *,
        notices: NoticeRouter | None = None,
        batch: int = 50,
        poll_s: float = 1.0,
        idle_poll_s: float = 5.0,
    ) -> None:
        self.db = db
        self.clock = clock
        self.provider = provider
        self.settings = settings
        self.sms = sms
        self.notices = notices
        self.batch = batch
        self.backoff = Backoff(base_s=settings.retry_base_s, cap_s=settings.retry_base_s * 16)
        self.lease = timedelta(seconds=settings.timeout_s * 2 + 5)
        self.pacer = Pacer(poll_s, max(poll_s, idle_poll_s))
        db.on_commit([AlimtalkMessage.__tablename__], lambda: self.pacer.wake())
        if notices is not None:
            db.on_commit([Notice.__tablename__], lambda: self.pacer.wake())

    # ------------------------------------------------------------------ rounds

    async def run_once(self) -> int:
        """Route pending notices, then act on every message due now. Returns how many."""
        if self.notices is not None:
            await self.notices.route_pending()
        jobs = await self._claim()
        for job in jobs:
            try:
                if job.status is A.sending:
                    await self._send(job.id)
                elif job.status is A.unknown:
                    await self._lookup(job.id)
                else:
                    await self._poll(job.id)
            except Exception:  # one message's bug must not stop the others
                log.exception("alimtalk message %s failed in %s", job.id, job.status)
        return len(jobs)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        await self.recover()
        await self.pacer.run(self.run_once, stop, log, "alimtalk dispatcher")

    async def recover(self) -> int:
        """Messages left ``sending`` by a dispatcher that died mid-send: the provider
        may have them, so they are looked up (``unknown``), not sent again."""
        now = self.clock.now()
        async with self.db.transaction() as s:
            rows = list(
                await s.scalars(
                    select(AlimtalkMessage)
                    .where(AlimtalkMessage.status == A.sending.value)
                    .with_for_update(skip_locked=True)
                )
            )
            for row in rows:
                row.status = ALIMTALK.check(row.status, A.unknown).value
                row.last_error = "interrupted while sending"
                row.next_try_at = now
        return len(rows)

    async def _claim(self) -> list[_Job]:
        now = self.clock.now()
        due = (A.pending, A.retrying, A.unknown, A.sent)
        jobs: list[_Job] = []
        async with self.db.transaction() as s:
            rows = await s.scalars(
                select(AlimtalkMessage)
                .where(
                    AlimtalkMessage.status.in_([st.value for st in due]),
                    AlimtalkMessage.next_try_at <= now,
                )
                .order_by(AlimtalkMessage.next_try_at, AlimtalkMessage.id)
                .limit(self.batch)
                .with_for_update(skip_locked=True)
            )
            for row in rows:
                status = A(row.status)
                if status in (A.pending, A.retrying):
                    row.status = ALIMTALK.check(status, A.sending).value
                    jobs.append(_Job(row.id, A.sending))
                else:  # a lookup or a poll: the row keeps its status, leased a while
                    row.next_try_at = now + self.lease
                    jobs.append(_Job(row.id, status))
        return jobs

    # ------------------------------------------------------------------ steps

    async def _send(self, msg_id: str) -> None:
        async with self.db.sessions() as s:
            row = await s.get(AlimtalkMessage, msg_id)
            if row is None:
                return
            req = AlimtalkRequest(
                ref=row.id, to=row.to, template_code=row.template_code,
                parameters=dict(row.parameters), button_url=row.button_url,
            )  # fmt: skip
        try:
            outcome: SendOutcome = await self.provider.send(req)
        except Exception as exc:  # an adapter bug: the request may have gone out
            log.exception("alimtalk provider send failed")
            outcome = Unknown(f"adapter: {type(exc).__name__}")
        async with self.db.transaction() as s:
            row = await locked_in(s, AlimtalkMessage, msg_id, A.sending.value)
            if row is None:
                return
            row.attempts += 1
            self._apply(s, row, outcome)

    async def _lookup(self, msg_id: str) -> None:
        async with self.db.sessions() as s:
            row = await s.get(AlimtalkMessage, msg_id)
            if row is None:
                return
            since = row.created_at
        found = await self.provider.find(msg_id, since, self.clock.now())
        async with self.db.transaction() as s:
            row = await locked_in(s, AlimtalkMessage, msg_id, A.unknown.value)
            if row is None:
                return
            if isinstance(found, RetryLater):  # could not ask: ask again later
                row.next_try_at = self.clock.now() + self.backoff.delay(1)
                row.last_error = found.why[:500]
            elif found is None:  # the provider never took it: sending again is safe
                self._retry_or_fall_back(s, row, "not found at the provider")
            else:
                self._apply(s, row, found)

    async def _poll(self, msg_id: str) -> None:
        async with self.db.sessions() as s:
            row = await s.get(AlimtalkMessage, msg_id)
            if row is None or row.request_id is None or row.recipient_seq is None:
                return
            request_id, seq = row.request_id, row.recipient_seq
        result = await self.provider.result(request_id, seq)
        now = self.clock.now()
        async with self.db.transaction() as s:
            row = await locked_in(s, AlimtalkMessage, msg_id, A.sent.value)
            if row is None:
                return
            if result is not None and result.code is not None:
                row.result_code = result.code[:40]
            if result is not None and result.final:
                if result.delivered:
                    row.status = ALIMTALK.check(row.status, A.delivered).value
                    row.done_at = now
                else:
                    row.last_error = f"result {result.code}"
                    self._fall_back(s, row)
            elif now - (row.sent_at or row.created_at) >= timedelta(
                seconds=self.settings.result_wait_s
            ):
                row.status = ALIMTALK.check(row.status, A.unconfirmed).value
                row.done_at = now
            else:
                row.next_try_at = now + RESULT_POLL

    # ------------------------------------------------------------------ transitions

    def _apply(self, s: AsyncSession, row: AlimtalkMessage, outcome: SendOutcome) -> None:
        now = self.clock.now()
        if isinstance(outcome, Accepted):
            row.status = ALIMTALK.check(row.status, A.sent).value
            row.request_id, row.recipient_seq = outcome.request_id, outcome.recipient_seq
            row.sent_at = now
            row.next_try_at = now
            row.last_error = None
        elif isinstance(outcome, Refused):
            row.result_code = outcome.code[:40]
            row.last_error = outcome.why[:500]
            self._fall_back(s, row)
        elif isinstance(outcome, RetryLater):
            self._retry_or_fall_back(s, row, outcome.why)
        else:
            row.status = ALIMTALK.check(row.status, A.unknown).value
            row.last_error = outcome.why[:500]
            # give the provider time to list it before asking
            row.next_try_at = now + self.backoff.delay(1)

    def _retry_or_fall_back(self, s: AsyncSession, row: AlimtalkMessage, why: str) -> None:
        row.last_error = why[:500]
        if row.attempts >= self.settings.max_attempts:
            self._fall_back(s, row)
        else:
            row.status = ALIMTALK.check(row.status, A.retrying).value
            row.next_try_at = self.clock.now() + self.backoff.delay(max(row.attempts, 1))

    def _fall_back(self, s: AsyncSession, row: AlimtalkMessage) -> None:
        """``-> fallback`` and the SMS/LMS with the notice's text, in this transaction."""
        now = self.clock.now()
        row.status = ALIMTALK.check(row.status, A.fallback).value
        sms_id = new_id("sms")
        s.add(
            SmsMessage(
                id=sms_id,
                merchant_id=row.merchant_id,
                call_request_id=None,
                notice_id=row.notice_id,
                kind="notice",
                to=row.to,
                sender=self.sms.sender,
                body=row.fallback_text,
                adapter=self.sms.adapter,
                status=DeliveryStatus.pending.value,
                attempts=0,
                created_at=now,
            )
        )
        row.fallback_sms_id = sms_id
        row.done_at = now
