"""The webhook dispatcher: the outbox's only reader.

Each round claims due deliveries (``pending``/``retrying`` with ``next_attempt_at``
passed, on an enabled endpoint) by moving them to ``sending`` — on PostgreSQL with
``FOR UPDATE SKIP LOCKED`` so several processes share the work, on SQLite under the
single writer lock — then POSTs them, ``settings.workers`` at a time, and records the
result. A 2xx is ``sent``; anything else (status, timeout, connection error, redirect)
is retried on the :mod:`~ivr.webhooks.backoff` schedule until ``retry_hours`` have
passed, then ``failed``. A claim is a lease: a delivery left ``sending`` by a process
that died is claimed again once ``timeout_s`` plus a margin has passed
(at-least-once: the receiver may see it twice, with the same ``webhook-id``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from urllib.parse import urlsplit

import aiohttp
from sqlalchemy import select

from ivr.audit import audit_row
from ivr.clock import Clock
from ivr.domain.states import DELIVERY, ENDPOINT, DeliveryStatus, EndpointStatus
from ivr.jobs.pacing import Pacer
from ivr.settings import WebhookSettings
from ivr.store.db import Database
from ivr.store.tables import WebhookDelivery, WebhookEndpoint, WebhookEvent
from ivr.webhooks import backoff, health, keyring, targets
from ivr.webhooks.signing import headers_for

log = logging.getLogger(__name__)

D = DeliveryStatus
LEASE_MARGIN = timedelta(seconds=30)
USER_AGENT = "arspay-webhooks/1"


@dataclass(frozen=True, slots=True)
class _Job:
    delivery_id: str
    event_id: str
    url: str
    secrets: list[str]
    body: bytes


@dataclass(frozen=True, slots=True)
class _Outcome:
    ok: bool
    status_code: int | None
    error: str | None


def body_of(event: WebhookEvent) -> bytes:
    """The exact bytes sent (and signed) for an event: stable across retries."""
    return json.dumps(event.payload, ensure_ascii=False, separators=(",", ":")).encode()


class WebhookDispatcher:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: WebhookSettings,
        http: aiohttp.ClientSession | None = None,
        *,
        poll_s: float = 1.0,
        idle_poll_s: float = 5.0,
        batch: int = 50,
    ) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.pacer = Pacer(poll_s, max(poll_s, idle_poll_s))
        # a new delivery, a redelivery, an endpoint enabled again: the next round now
        db.on_commit([WebhookDelivery.__tablename__, WebhookEndpoint.__tablename__], self.wake)
        self.batch = batch
        self._http = http
        self._own_http = http is None

    async def __aenter__(self) -> WebhookDispatcher:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_http and self._http is not None:
            await self._http.close()
            self._http = None

    def wake(self) -> None:
        """Start the next round now (e.g. right after an event was emitted)."""
        self.pacer.wake()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        await self.pacer.run(self.run_once, stop or asyncio.Event(), log, "webhook dispatcher")

    async def run_once(self) -> int:
        """Claim due deliveries, POST them, record the results; how many were tried."""
        jobs = await self._claim()
        if not jobs:
            return 0
        limit = asyncio.Semaphore(self.settings.workers)

        async def one(job: _Job) -> None:
            async with limit:
                outcome = await self._post(job)
                await self._record(job, outcome)

        await asyncio.gather(*(one(j) for j in jobs))
        return len(jobs)

    # ------------------------------------------------------------------ steps

    async def _claim(self) -> list[_Job]:
        now = self.clock.now()
        lease = timedelta(seconds=self.settings.timeout_s) + LEASE_MARGIN
        query = (
            select(WebhookDelivery, WebhookEndpoint)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(
                WebhookEndpoint.status == EndpointStatus.enabled.value,
                WebhookDelivery.status.in_([D.pending.value, D.retrying.value, D.sending.value]),
                WebhookDelivery.next_attempt_at <= now,
            )
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(self.batch)
        )
        if self.db.is_postgres:
            query = query.with_for_update(skip_locked=True, of=WebhookDelivery)
        jobs: list[_Job] = []
        async with self.db.transaction() as s:
            result = await s.execute(query)
            for delivery, endpoint in result.all():
                if delivery.status == D.sending.value:  # lease expired: its sender died
                    delivery.status = DELIVERY.check(delivery.status, D.retrying).value
                delivery.status = DELIVERY.check(delivery.status, D.sending).value
                delivery.next_attempt_at = now + lease
                event = await s.get(WebhookEvent, delivery.event_id)
                assert event is not None
                jobs.append(
                    _Job(
                        delivery_id=delivery.id,
                        event_id=event.id,
                        url=endpoint.url,
                        secrets=keyring.active_secrets(endpoint.secret, now),
                        body=body_of(event),
                    )
                )
        return jobs

    async def _post(self, job: _Job) -> _Outcome:
        stamp = int(self.clock.now().timestamp())
        headers = headers_for(job.secrets, job.event_id, stamp, job.body)
        headers["content-type"] = "application/json"
        headers["user-agent"] = USER_AGENT
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        if self._http is None:
            self._http = aiohttp.ClientSession(
                connector=targets.connector(self.settings.allow_private_targets)
            )
        try:
            if not self.settings.allow_private_targets:
                targets.check_literal(urlsplit(job.url).hostname or "")
            async with self._http.post(
                job.url, data=job.body, headers=headers, timeout=timeout, allow_redirects=False
            ) as resp:
                await resp.content.read(1024)  # drain a little; the body is not used
                if 200 <= resp.status < 300:
                    return _Outcome(True, resp.status, None)
                return _Outcome(False, resp.status, f"HTTP {resp.status}")
        except TimeoutError:
            return _Outcome(False, None, f"timeout after {self.settings.timeout_s:g} s")
        except targets.TargetNotAllowed as exc:  # retried like any failure: the merchant
            return _Outcome(False, None, str(exc))  # sees why, and can fix the URL
        except aiohttp.ClientError as exc:
            refused = getattr(exc, "os_error", None)  # the guarded resolver's refusal
            if isinstance(refused, targets.TargetNotAllowed):
                return _Outcome(False, None, str(refused))
            return _Outcome(False, None, f"{type(exc).__name__}: connection failed")
        except Exception as exc:  # a bad URL etc. must not lose the delivery
            log.warning("webhook delivery %s: %s", job.delivery_id, type(exc).__name__)
            return _Outcome(False, None, type(exc).__name__)

    async def _record(self, job: _Job, outcome: _Outcome) -> None:
        now = self.clock.now()
        async with self.db.transaction() as s:
            row = await s.get(WebhookDelivery, job.delivery_id, with_for_update=True)
            if row is None or row.status != D.sending.value:
                return  # deleted with its endpoint meanwhile
            row.attempts += 1
            row.last_status_code = outcome.status_code
            if outcome.ok:
                row.status = DELIVERY.check(row.status, D.sent).value
                row.delivered_at = now
                row.next_attempt_at = None
                row.last_error = None
                return
            row.last_error = (outcome.error or "failed")[:500]
            wait = backoff.next_delay(row.attempts, self.settings.retry_hours)
            if wait is None:
                row.status = DELIVERY.check(row.status, D.failed).value
                row.next_attempt_at = None
            else:
                row.status = DELIVERY.check(row.status, D.retrying).value
                row.next_attempt_at = now + wait
            log.info(
                "webhook delivery %s attempt %d failed: %s",
                row.id, row.attempts, row.last_error,
            )  # fmt: skip
            await s.flush()
            endpoint = await s.get(WebhookEndpoint, row.endpoint_id, with_for_update=True)
            if (
                endpoint is not None
                and endpoint.status == EndpointStatus.enabled.value
                and await health.should_disable(s, endpoint, now, self.settings.disable_after_hours)
            ):
                endpoint.status = ENDPOINT.check(endpoint.status, EndpointStatus.disabled).value
                endpoint.disabled_at = now
                hours = self.settings.disable_after_hours
                audit_row(s, self.clock, "system", "webhook_endpoint.disable", endpoint,
                          {"reason": "failing", "hours": hours})  # fmt: skip
                log.warning("webhook endpoint %s disabled after persistent failure", endpoint.id)
