"""The scheduler: turns due schedule cycles into jobs and runs them, exactly once.

:meth:`Scheduler.tick` starts every due cycle: under the schedule's row lock it enqueues
one ``schedule.cycle`` job (dedupe key ``sched:<id>:<cycle>``) and advances ``runs`` and
``next_run_at`` in the same transaction, so a cycle is started once however many engine
processes tick. :meth:`Scheduler.run_jobs` claims cycle jobs (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL) and runs them; the job's payload is the cycle's memory:

- ``intents``: the payment intents of this cycle (the first try and each retry). A new
  intent is created in the same transaction that records it in the payload, so a worker
  that dies and is replaced never creates a second one; an intent left open is driven
  (looked up at the PG) before anything else — never charged blindly again.
- ``request_id``: the consent call request (modes ``consent``, ``consent_then_auto``).
- ``dunning_request_id``: the payment call request sent after the last retry or a hard
  decline (one per cycle, so a payer gets at most one failure notice per cycle).

Modes (docs/product.md §8): ``auto`` charges the registered card and queues an SMS receipt;
``consent`` sends a payment call request; ``consent_then_auto`` sends the request and
charges automatically once if the payer has not paid by call by its deadline. Both
consent modes wait for the request's deadline and then read its end state:

==========================  ==============================  ==============================
request at the deadline      ``consent``                     ``consent_then_auto``
==========================  ==============================  ==============================
created, sms_sent            nothing (it expires)            request cancelled, then charged
in_call                      look again in 10 minutes        look again in 10 minutes
completed                    nothing: paid in the call       nothing: paid in the call
declined (the payer's no)    ``schedule.cycle_declined``     ``schedule.cycle_declined``
cancelled (not by us)        ``schedule.cycle_declined``     ``schedule.cycle_declined``
failed, expired              nothing                         charged
==========================  ==============================  ==============================

A request the scheduler itself cancels at the deadline is cancelled in the transaction
that notes ``auto`` in the job, so a worker that dies in between never mistakes its
own cancellation for the merchant's (which would skip a charge the payer agreed to).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import KW_ONLY, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from ivr.audit import audit_row
from ivr.billing.retry import Attempt, Decision, Next, after_failure
from ivr.billing.schedules import SchedulePlan
from ivr.clock import Clock
from ivr.domain.ids import new_id
from ivr.domain.states import (
    SCHEDULE,
    CallRequestKind,
    CallRequestStatus,
    PaymentIntentStatus,
    ScheduleStatus,
)
from ivr.errors import ArspayError, Conflict, NotFound
from ivr.jobs.queue import JobQueue
from ivr.notify.notices.kinds import MAX_PRENOTICE_DAYS
from ivr.notify.notices.record import notice_settings, prenotice_in
from ivr.payments.charger import Charger
from ivr.payments.queries import last_attempt
from ivr.payments.service import PaymentService
from ivr.requests.service import CallRequestService
from ivr.store.db import Database, locked_in
from ivr.store.tables import (
    CallRequest,
    Card,
    Job,
    Merchant,
    Notice,
    PaymentAttempt,
    PaymentIntent,
    Schedule,
)
from ivr.webhooks.notices import schedule_charge_failed_in, schedule_cycle_declined_in
from vault.bins import lookup

log = logging.getLogger(__name__)

CYCLE = "schedule.cycle"
MAX_LEASE_MINUTES = 7 * 24 * 60  # the DID pool's longest lease
IN_CALL_RECHECK = timedelta(minutes=10)  # a cycle whose request is in a call looks again
CONSENT_MODES = ("consent", "consent_then_auto")
OPEN = (CallRequestStatus.created, CallRequestStatus.sms_sent)


class LostClaim(Conflict, error_id="job-claim-lost"): ...


@dataclass(eq=False)
class Scheduler:
    db: Database
    clock: Clock
    queue: JobQueue
    payments: PaymentService
    charger: Charger
    requests: CallRequestService
    _: KW_ONLY
    # how long a claimed cycle job is this worker's before another takes it over (its
    # worker died)
    lease_s: float = 300.0

    # ------------------------------------------------------------------ starting cycles

    async def tick(self, limit: int = 200) -> int:
        """Start every cycle that is due; returns how many were started."""
        now = self.clock.now()
        active = ScheduleStatus.active.value
        ids = await self.db.all(
            select(Schedule.id)
            .where(Schedule.status == active, Schedule.next_run_at <= now)
            .order_by(Schedule.next_run_at)
            .limit(limit)
        )
        started = 0
        for sid in ids:
            async with self.db.transaction() as s:
                row = await locked_in(s, Schedule, sid, active)
                if row is None:
                    continue
                if row.next_run_at is None or row.next_run_at > now:
                    continue  # another process started it meanwhile
                cycle = row.runs
                await self.queue.enqueue_in(
                    s,
                    CYCLE,
                    {"schedule_id": sid, "cycle": cycle, "intents": []},
                    dedupe_key=f"sched:{sid}:{cycle}",
                )
                row.runs += 1
                row.next_run_at = SchedulePlan.of(row).plan.next_due(row.runs)
                row.updated_at = now
                if row.next_run_at is None:
                    row.status = SCHEDULE.check(row.status, ScheduleStatus.completed).value
                started += 1
        await self.prenotify()
        return started

    async def prenotify(self, limit: int = 500) -> int:
        """Record the pre-notice of each automatic (``auto``) charge due within its
        merchant's ``notices.prenotice_days`` (default 3): once per cycle (the notice's
        dedupe key), none when the merchant switched it off. Returns how many."""
        now = self.clock.now()
        horizon = now + timedelta(days=MAX_PRENOTICE_DAYS)
        async with self.db.sessions() as s:
            due = [
                (sid, runs, at, merchant_settings)
                for sid, runs, at, merchant_settings in await s.execute(
                    select(Schedule.id, Schedule.runs, Schedule.next_run_at, Merchant.settings)
                    .join(Merchant, Merchant.id == Schedule.merchant_id)
                    .where(
                        Schedule.status == ScheduleStatus.active.value,
                        Schedule.mode == "auto",
                        Schedule.next_run_at > now,
                        Schedule.next_run_at <= horizon,
                    )
                    .limit(limit)
                )
                if (wanted := notice_settings(merchant_settings)).schedule_prenotice
                and at - timedelta(days=wanted.prenotice_days) <= now
            ]
            keys = [f"schedule_prenotice:{sid}:{runs + 1}" for sid, runs, _, _ in due]
            done_keys = set(
                await s.scalars(select(Notice.dedupe_key).where(Notice.dedupe_key.in_(keys)))
            )
        told = 0
        for (sid, runs, _, _), key in zip(due, keys, strict=True):
            if key in done_keys:
                continue
            async with self.db.transaction() as s:
                row = await s.get(Schedule, sid, with_for_update=True)
                active = ScheduleStatus.active.value
                if row is not None and row.runs == runs and row.status == active:
                    told += await prenotice_in(s, self.clock, row)
        return told

    async def run(self, *, poll_s: float = 5.0) -> None:
        """Start due cycles and run cycle jobs until cancelled (one per engine process;
        several processes share the work through the jobs table)."""
        while True:
            try:
                await self.tick()
                while await self.run_jobs():
                    pass
            except Exception:
                log.exception("scheduler pass failed")
            await asyncio.sleep(poll_s)

    # ------------------------------------------------------------------ running cycles

    async def run_jobs(self, limit: int = 20) -> int:
        """Claim up to ``limit`` due cycle jobs and run them side by side (each its own
        schedule's cycle: a slow PG answer for one does not hold up the others)."""
        jobs = await self.queue.claim([CYCLE], limit=limit, lease_s=self.lease_s)
        await asyncio.gather(*(self._run_job(job) for job in jobs))
        return len(jobs)

    async def _run_job(self, job: Job) -> None:
        try:
            await self.handle(job)
        except LostClaim:
            return  # another worker owns it now
        except ArspayError as exc:
            await self.queue.fail(job, exc.error_id, retry_in_s=300)
        except Exception as exc:
            log.exception("schedule job %s failed", job.id)
            await self.queue.fail(job, type(exc).__name__, retry_in_s=300)

    async def handle(self, job: Job) -> None:
        payload: dict[str, Any] = dict(job.payload)
        async with self.db.sessions() as s:
            row = await s.get(Schedule, payload["schedule_id"])
        if row is None or row.status == ScheduleStatus.cancelled.value:
            await self.queue.complete(job)
            return
        waits = row.mode in CONSENT_MODES and not payload.get("auto")
        if waits and not await self._consent_turn(job, row, payload):
            return  # the cycle waits for the payer, or ended without a charge
        # auto, or consent_then_auto whose payer did not pay by call: charge, once
        await self._auto(job, row, payload)

    async def _consent_turn(self, job: Job, row: Schedule, payload: dict[str, Any]) -> bool:
        """The payer's turn in a consent cycle (the table in the module docstring).
        True when the cycle goes on to the automatic charge — ``auto`` is then noted in
        the job (and committed) — False when the job was deferred or completed."""
        req = await self._consent_request(job, row, payload)
        status = CallRequestStatus(req.status)
        now = self.clock.now()
        if status in OPEN and now < req.expires_at:
            await self.queue.defer(job, req.expires_at, payload)  # the payer's deadline
            return False
        if status is CallRequestStatus.in_call:
            await self.queue.defer(job, now + IN_CALL_RECHECK, payload)
            return False
        if status is CallRequestStatus.completed:
            await self.queue.complete(job)  # the payer paid by call
            return False
        if status in (CallRequestStatus.declined, CallRequestStatus.cancelled):
            # "auto" is not noted, so this is not our own cancellation: never charge
            await self._end_declined(job, row, payload, req)
            return False
        if row.mode == "consent":
            await self.queue.complete(job)  # unanswered: nothing is charged without a call
            return False
        if not await self._take_over(job, payload, req.id):
            await self.queue.defer(job, now, payload)  # it changed meanwhile: look again
            return False
        return True

    async def _take_over(self, job: Job, payload: dict[str, Any], request_id: str) -> bool:
        """Close the payer's turn: cancel a request still open (no late call can pay
        it after the automatic charge) and note ``auto`` in the job, in one transaction
        under the request's row lock. False if the request moved meanwhile (a call came
        in just now)."""
        async with self.db.transaction() as s:
            req = await s.get(CallRequest, request_id, with_for_update=True)
            if req is None:
                raise NotFound(f"call request {request_id} not found")
            status = CallRequestStatus(req.status)
            if status in OPEN:
                await self.requests.transition_in(
                    s, request_id, CallRequestStatus.cancelled, actor="scheduler"
                )
            elif status not in (CallRequestStatus.failed, CallRequestStatus.expired):
                return False
            payload["auto"] = True  # from here on: charge automatically, once
            if not await self.queue.save_payload_in(s, job, payload):
                raise LostClaim("the job's claim was lost")  # rolls the cancellation back
        return True

    async def _end_declined(
        self, job: Job, row: Schedule, payload: dict[str, Any], req: CallRequest
    ) -> None:
        """End the cycle without a charge — the payer said no in the call, or the
        request was cancelled — and tell the merchant (``schedule.cycle_declined``), in
        one transaction: once, and only while the job is still ours."""
        reason = (
            "payer_declined"
            if req.status == CallRequestStatus.declined.value
            else "request_cancelled"
        )
        async with self.db.transaction() as s:
            held = (await self.queue.held_in(s, [job])).get(job.id)
            if held is None:
                raise LostClaim("the job's claim was lost")
            payload["outcome"] = reason
            held.payload = payload
            self.queue.complete_in(held)
            data = {
                "schedule_id": row.id,
                "cycle": payload.get("cycle"),
                "mode": row.mode,
                "reason": reason,
                "call_request_id": req.id,
                "customer_id": row.customer_id,
                "amount": row.amount,
            }
            audit_row(s, self.clock, "scheduler", "schedule.cycle_declined", row,
                      {k: data[k] for k in ("cycle", "reason", "call_request_id")})  # fmt: skip
            await schedule_cycle_declined_in(s, self.clock, row.merchant_id, data)

    async def _consent_request(
        self, job: Job, row: Schedule, payload: dict[str, Any]
    ) -> CallRequest:
        hours = SchedulePlan.of(row).consent_hours
        return await self._request_once(
            job,
            row,
            payload,
            "request_id",
            actor="scheduler",
            lease_minutes=min(hours * 60, MAX_LEASE_MINUTES),
        )

    async def _request_once(
        self,
        job: Job,
        row: Schedule,
        payload: dict[str, Any],
        key: str,
        *,
        actor: str,
        lease_minutes: int | None = None,
    ) -> CallRequest:
        """The cycle's payment call request named by ``payload[key]``, created once.

        Its id is reserved in the job *before* the request (and its SMS) exists; a
        worker that dies in between is replaced by one that creates the request with the
        same id — never a second request and a second SMS to the payer."""
        rid = payload.get(key)
        if rid is None:
            rid = new_id("creq")
            payload[key] = rid
            async with self.db.transaction() as s:
                if not await self.queue.save_payload_in(s, job, payload):
                    raise LostClaim("the job's claim was lost")
        try:
            return await self.requests.get(None, rid)
        except NotFound:
            pass
        new = await self.requests.create(
            row.merchant_id, row.customer_id, CallRequestKind.payment,
            product_name=row.order_name, amount=row.amount, lease_minutes=lease_minutes,
            actor=actor, request_id=rid,
        )  # fmt: skip
        return new.request

    async def _auto(self, job: Job, row: Schedule, payload: dict[str, Any]) -> None:
        intents: list[str] = list(payload.get("intents", []))
        status = None
        if intents:
            status = await self.charger.drive(intents[-1])
        if status is None or (status is PaymentIntentStatus.failed and payload.get("retry_due")):
            payload["retry_due"] = False
            intent_id = await self._new_intent(job, row, payload)
            intents = payload["intents"]
            status = await self.charger.drive(intent_id)
        if status is PaymentIntentStatus.succeeded:  # its notice came with the charge
            await self.queue.complete(job)
            return
        if status in (PaymentIntentStatus.processing, PaymentIntentStatus.created):
            at = self.clock.now() + timedelta(seconds=self.charger.policy.recheck_s)
            await self.queue.defer(job, at, payload)  # look the outcome up again
            return
        decision = await self._after_failure(row, intents)
        if decision.next is Next.retry and decision.at is not None:
            payload["retry_due"] = True
            await self._record_failure(job, row, payload, retry_at=decision.at)
            return
        await self._request_once(job, row, payload, "dunning_request_id", actor="scheduler:dunning")
        await self._record_failure(job, row, payload, retry_at=None)

    async def _record_failure(
        self, job: Job, row: Schedule, payload: dict[str, Any], *, retry_at: datetime | None
    ) -> None:
        """Note the cycle's failure decision in its job — deferred to the retry, or done
        after dunning — and tell the merchant (``schedule.charge_failed``), in one
        transaction: once per failed charge, and only while the job is still ours."""
        async with self.db.transaction() as s:
            held = (await self.queue.held_in(s, [job])).get(job.id)
            if held is None:
                raise LostClaim("the job's claim was lost")
            intent_id = payload["intents"][-1]
            last = await last_attempt(s, intent_id)
            held.payload = payload
            if retry_at is not None:
                self.queue.defer_in(held, retry_at)
            else:
                self.queue.complete_in(held)
            await schedule_charge_failed_in(s, self.clock, row.merchant_id, {
                "schedule_id": row.id,
                "cycle": payload.get("cycle"),
                "payment_id": intent_id,
                "attempt": len(payload["intents"]),
                "decline": {"code": last.decline_code if last else None,
                            "kind": last.decline_class if last else None},
                "will_retry": retry_at is not None,
                "next_retry_at": retry_at.isoformat() if retry_at else None,
                "dunning_request_id": payload.get("dunning_request_id"),
            })  # fmt: skip

    async def _new_intent(self, job: Job, row: Schedule, payload: dict[str, Any]) -> str:
        """Create the cycle's next intent and record it in the job, in one transaction."""
        if row.card_id is None:
            raise Conflict(f"schedule {row.id} has no card to charge")
        async with self.db.transaction() as s:
            intent = await self.payments.create_intent_in(
                s, row.merchant_id, row.card_id, amount=row.amount, order_name=row.order_name,
                source="schedule", schedule_id=row.id, actor="scheduler",
            )  # fmt: skip
            payload["intents"] = [*payload.get("intents", []), intent.id]
            if not await self.queue.save_payload_in(s, job, payload):
                raise LostClaim("the job's claim was lost")  # rolls the intent back
        return intent.id

    async def _after_failure(self, row: Schedule, intents: list[str]) -> Decision:
        now = self.clock.now()
        async with self.db.sessions() as s:
            cycle: list[Attempt] = []
            for iid in intents:
                intent = await s.get(PaymentIntent, iid)
                last = await last_attempt(s, iid)
                if intent is not None:
                    kind = last.decline_class if last is not None else None
                    reason = last.decline_code if last is not None else None
                    cycle.append(Attempt(intent.created_at, kind or "soft", reason))
            card = await s.get(Card, row.card_id) if row.card_id else None
            card_attempts = list(
                await s.scalars(
                    select(PaymentAttempt.created_at)
                    .join(PaymentIntent, PaymentIntent.id == PaymentAttempt.intent_id)
                    .where(
                        PaymentIntent.card_id == row.card_id,
                        PaymentAttempt.created_at >= now - timedelta(days=31),
                    )
                )
            )
        brand = lookup(card.bin6).brand if card is not None else "unknown"
        policy = SchedulePlan.of(row).retry
        return after_failure(policy, cycle, card_attempts, brand=brand, now=now)


async def pending_requests_for(db: Database, schedule_id: str) -> list[CallRequest]:
    """Helper for tests and the console: call requests a schedule created (via jobs)."""
    async with db.sessions() as s:
        jobs = list(await s.scalars(select(Job).where(Job.kind == CYCLE)))
        ids = [
            rid
            for j in jobs
            if j.payload.get("schedule_id") == schedule_id
            for rid in (j.payload.get("request_id"), j.payload.get("dunning_request_id"))
            if rid
        ]
        if not ids:
            return []
        return list(await s.scalars(select(CallRequest).where(CallRequest.id.in_(ids))))
