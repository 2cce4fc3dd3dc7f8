"""The database reads behind the scrape-time gauges: queue depths and ages, the DID
pool. Counts and ages only — no row's content leaves these functions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from ivr.domain.states import AlimtalkStatus, DeliveryStatus, DidStatus, JobStatus, LeaseStatus
from ivr.notify.notices.record import PENDING as NOTICE_PENDING
from ivr.store.tables import (
    AlimtalkMessage,
    Did,
    Job,
    Lease,
    Notice,
    SmsMessage,
    WebhookDelivery,
)

D = DeliveryStatus
OPEN_DELIVERY = (D.pending.value, D.sending.value, D.retrying.value)


@dataclass(frozen=True, slots=True)
class QueueSample:
    depth: int  # waiting or in progress
    oldest_age_s: float  # the oldest due item's age (0: none)
    dead: int  # given up on


@dataclass(frozen=True, slots=True)
class PoolSample:
    numbers: dict[str, int]  # by DID status
    active_leases: int
    mobiles: int
    max_mobile_utilisation: float  # the busiest mobile's blocked DIDs / active DIDs


def _age(now: datetime, oldest: datetime | None) -> float:
    if oldest is None:
        return 0.0
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return max(0.0, (now - oldest).total_seconds())


async def _count(s: AsyncSession, q: Select[Any]) -> int:
    return int(await s.scalar(q) or 0)


async def _queue(
    s: AsyncSession,
    now: datetime,
    table: type[Job]
    | type[SmsMessage]
    | type[WebhookDelivery]
    | type[Notice]
    | type[AlimtalkMessage],
    open_: ColumnElement[bool],
    due: ColumnElement[bool],
    since: QueryableAttribute[datetime],
    dead: ColumnElement[bool] | None,
) -> QueueSample:
    depth = await _count(s, select(func.count()).select_from(table).where(open_))
    oldest = await s.scalar(select(func.min(since)).where(due))
    gone = (
        0 if dead is None else await _count(s, select(func.count()).select_from(table).where(dead))
    )
    return QueueSample(depth, _age(now, oldest), gone)


async def queues(s: AsyncSession, now: datetime) -> dict[str, QueueSample]:
    """Jobs (due: queued with ``run_at`` passed, aged from ``run_at``), SMS and webhook
    deliveries (pending, sending or retrying, aged from creation) and payer notices
    (pending, not yet rendered into a message), and KakaoTalk 알림톡 messages not yet
    ended (pending, sending, retrying, unknown, sent: due once ``next_try_at`` has
    passed, aged from creation; none is ever given up: a refused one becomes an SMS)."""
    job_open = Job.status.in_([JobStatus.queued.value, JobStatus.running.value])
    job_due = (Job.status == JobStatus.queued.value) & (Job.run_at <= now)
    sms_open = SmsMessage.status.in_(OPEN_DELIVERY)
    hook_open = WebhookDelivery.status.in_(OPEN_DELIVERY)
    hook_due = hook_open & or_(
        WebhookDelivery.next_attempt_at.is_(None), WebhookDelivery.next_attempt_at <= now
    )
    notice_open = Notice.status == NOTICE_PENDING
    talk_open = AlimtalkMessage.status.in_(
        [AlimtalkStatus.pending.value, AlimtalkStatus.sending.value,
         AlimtalkStatus.retrying.value, AlimtalkStatus.unknown.value, AlimtalkStatus.sent.value]
    )  # fmt: skip
    talk_due = talk_open & (AlimtalkMessage.next_try_at <= now)
    return {
        "jobs": await _queue(s, now, Job, job_open, job_due, Job.run_at,
                             Job.status == JobStatus.dead.value),
        "sms": await _queue(s, now, SmsMessage, sms_open, sms_open, SmsMessage.created_at,
                            SmsMessage.status == D.failed.value),
        "webhooks": await _queue(s, now, WebhookDelivery, hook_open, hook_due,
                                 WebhookDelivery.created_at,
                                 WebhookDelivery.status == D.failed.value),
        "notices": await _queue(s, now, Notice, notice_open, notice_open, Notice.created_at,
                                None),
        "alimtalk": await _queue(s, now, AlimtalkMessage, talk_open, talk_due,
                                 AlimtalkMessage.created_at, None),
    }  # fmt: skip


async def did_pool(s: AsyncSession, now: datetime, cooldown: timedelta) -> PoolSample:
    """``cooldown``: the pool's; an ended lease cools down at most that long after its
    ``expires_at``, which bounds the scan on the (status, expires_at) index."""
    numbers = {status.value: 0 for status in DidStatus}
    for status, n in await s.execute(select(Did.status, func.count()).group_by(Did.status)):
        numbers[str(status)] = int(n)
    live = (Lease.status == LeaseStatus.active.value) & (Lease.expires_at > now)
    leases = await _count(s, select(func.count()).select_from(Lease).where(live))
    mobiles = await _count(s, select(func.count(func.distinct(Lease.mobile))).where(live))
    cooling = (
        Lease.status.in_([LeaseStatus.released.value, LeaseStatus.expired.value])
        & (Lease.expires_at > now - cooldown)
        & (Lease.cooldown_until > now)
    )
    blocking = or_(live, cooling)
    per_mobile = (
        select(Lease.mobile, func.count(func.distinct(Lease.did)).label("n"))
        .where(blocking)
        .group_by(Lease.mobile)
        .subquery()
    )
    busiest = await _count(s, select(func.max(per_mobile.c.n)))
    active = numbers.get(DidStatus.active.value, 0)
    utilisation = min(1.0, busiest / active) if active else 1.0  # no DID: none to lease
    return PoolSample(numbers, leases, mobiles, utilisation)
