"""Bulk charges (PRODUCT §8): a CSV or JSON list of charges of registered cards,
processed concurrently within the PG's rate limit, exactly once per row.

Storage is the jobs table: the bulk job is one ``bulk`` row (its payload: merchant,
counts, invalid rows) and each valid row is one ``bulk.charge`` job with dedupe key
``bulk:<id>:<row>``, all inserted in one transaction with the submission. A row job
creates its payment intent in the same transaction that records the intent id in the
job's payload (and only while the job is still this worker's claim), then drives it
through the charging engine (order id committed before the request; unknown outcomes
looked up). A worker killed at any point leaves either no intent (the row is redone)
or a recorded one (it is driven, never re-created): one charge per row.

Rows are processed in batches (:class:`~ivr.payments.batch.ChargeBatch`): one
transaction claims a batch of rows and opens their intents, first attempts and job
notes, the PG requests go out concurrently (paced to the rate limit), and one
transaction records the answers and finishes the jobs — two transactions per batch
instead of several per row. :meth:`BulkCharges.run` keeps ``concurrency`` rows in
flight and sizes the batches to the load (see there). Rows that already have an
intent (a crash, an unknown outcome) take the one-by-one path through
:meth:`Charger.drive`, which looks open attempts up first.

Rows: ``card_id, amount, order_name[, installment_months][, ref]`` — CSV with a header,
or a JSON list of objects. Invalid rows are reported with their row number and the
reason; valid rows are processed.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import io
import json
import logging
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.audit import audit
from ivr.bulk.registrations import REGISTER, check_registration_row, register_row
from ivr.bulk.rows import row_ref, safe_ref, unknown_columns
from ivr.clock import Clock
from ivr.domain.ids import new_id
from ivr.domain.states import JOB, JobStatus, PaymentIntentStatus
from ivr.domain.terms import check_amount, check_months
from ivr.domain.text import clean_text
from ivr.errors import ArspayError, ConfigError, InvalidInput, NotFound, PoolExhausted
from ivr.jobs.pacing import Pacer
from ivr.jobs.queue import JobQueue
from ivr.merchants.service import CustomerService
from ivr.payments.batch import Answer, ChargeBatch, NewCharge, Opened
from ivr.payments.charger import Charger
from ivr.payments.service import PaymentService
from ivr.requests.service import CallRequestService
from ivr.store.db import Database
from ivr.store.tables import Job, PaymentAttempt
from ivr.webhooks.notices import bulk_completed_in

log = logging.getLogger(__name__)

PARENT = "bulk"
ROW = "bulk.charge"
ROWS = (ROW, REGISTER)  # the row job kinds a bulk worker claims
KINDS = ("charges", "registrations")
MAX_ROWS = 100_000
MAX_BYTES = 20 * 1024 * 1024
FIELDS = ("card_id", "amount", "order_name", "installment_months", "ref")


@dataclass(frozen=True)
class Submitted:
    bulk_id: str
    valid: int
    invalid: list[dict[str, Any]]  # {"row": n, "error": "..."}


_Opened = dict[int, Opened]  # job id -> its opened charge
_Notes = dict[int, dict[str, Any]]  # job id -> its payload with the intent id

EXTRA_FIELDS = "\x00extra"  # DictReader's key for fields beyond the header


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):  # json.loads would keep the last value, drop the others
        raise InvalidInput("bulk JSON names a key twice in one object")
    return obj


def parse_rows(
    data: bytes, fmt: str, required: Sequence[str] = ("card_id", "amount", "order_name")
) -> list[dict[str, Any]]:
    """Raw rows from CSV (a header naming at least ``required``) or JSON (a list of
    objects)."""
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"bulk file is larger than {MAX_BYTES // (1024 * 1024)} MB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("bulk file must be UTF-8") from None
    if fmt == "json":
        try:
            rows = json.loads(text, object_pairs_hook=_json_object)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"bulk JSON is malformed at line {exc.lineno}") from None
        except (ValueError, RecursionError):  # an int of > 4300 digits; deep nesting
            raise InvalidInput("bulk JSON is malformed") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise InvalidInput("bulk JSON must be a list of objects")
    elif fmt == "csv":
        # newline="" semantics: quoted fields may hold line breaks; a stray CR is an error
        reader = csv.DictReader(io.StringIO(text, newline=""), restkey=EXTRA_FIELDS)
        try:
            if reader.fieldnames is None or not set(required) <= set(reader.fieldnames):
                raise InvalidInput(f"bulk CSV needs a header with {', '.join(required)}")
            if len(set(reader.fieldnames)) != len(reader.fieldnames):  # DictReader keeps one
                raise InvalidInput("bulk CSV header names a column twice")
            rows = [dict(r) for r in reader]
        except csv.Error as exc:
            raise InvalidInput(f"bulk CSV is malformed at line {reader.line_num}: {exc}") from None
    else:
        raise InvalidInput("bulk format must be csv or json")
    if not rows:
        raise InvalidInput("bulk file has no rows")
    if len(rows) > MAX_ROWS:
        raise InvalidInput(f"bulk file has more than {MAX_ROWS} rows")
    return rows


def check_row(raw: dict[str, Any]) -> dict[str, Any]:
    """A clean charge row, or InvalidInput naming the field (never echoing values)."""
    if EXTRA_FIELDS in raw:
        raise InvalidInput("the row has more fields than the header")
    unknown_columns(raw, FIELDS)
    card_id = str(raw.get("card_id") or "").strip()
    if not card_id.startswith("card_") or len(card_id) > 40:
        raise InvalidInput("card_id must be a card id (card_…)")
    try:
        amount = int(str(raw.get("amount", "")).replace(",", "").strip())
    except ValueError:
        raise InvalidInput("amount must be an integer number of KRW") from None
    check_amount(amount)
    order_name = clean_text(str(raw.get("order_name") or ""), "order_name")
    months_raw = str(raw.get("installment_months") or "0").strip()
    try:
        months = int(months_raw) if months_raw.isdigit() else -1
    except ValueError:  # digits int() refuses: "²", more than 4300 of them
        months = -1
    check_months(months)
    ref = row_ref(raw)
    return {"card_id": card_id, "amount": amount, "order_name": order_name,
            "installment_months": months, "ref": ref}  # fmt: skip


class BulkCharges:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        queue: JobQueue,
        payments: PaymentService,
        charger: Charger,
        *,
        rate_per_s: float = 50.0,
        concurrency: int = 16,
        lease_s: float = 120.0,
        customers: CustomerService | None = None,
        requests: CallRequestService | None = None,
    ) -> None:
        """``concurrency``: rows in flight at once (sent, or waiting to be)."""
        self.db = db
        self.clock = clock
        self.queue = queue
        self.payments = payments
        self.charger = charger
        self.rate_per_s = rate_per_s
        self.concurrency = concurrency
        self.lease_s = lease_s
        self.customers = customers
        self.requests = requests
        self.pacer = Pacer()
        db.on_commit([Job.__tablename__], lambda: self.pacer.wake())  # a new bulk's rows
        self._next_slot = 0.0

    # ------------------------------------------------------------------ submitting

    async def submit(
        self,
        merchant_id: str,
        data: bytes,
        fmt: str,
        *,
        actor: str,
        bulk_id: str | None = None,
        kind: str = "charges",
    ) -> Submitted:
        """Store a bulk job: ``kind`` ``charges`` (registered cards charged) or
        ``registrations`` (registration call requests, see ivr/bulk/registrations.py)."""
        if kind not in KINDS:
            raise InvalidInput(f"bulk kind must be one of {', '.join(KINDS)}")
        check = check_row if kind == "charges" else self._check_registration
        row_kind = ROW if kind == "charges" else REGISTER
        rows = parse_rows(data, fmt, () if kind == "registrations" else FIELDS[:3])
        valid: list[tuple[int, dict[str, Any]]] = []
        invalid: list[dict[str, Any]] = []
        for n, raw in enumerate(rows, start=1):
            try:
                valid.append((n, check(raw)))
            except ArspayError as exc:
                invalid.append({"row": n, "ref": safe_ref(raw), "error": exc.message})
        bulk_id = bulk_id or new_id("bulk")
        now = self.clock.now()
        async with self.db.transaction() as s:
            s.add(
                Job(
                    kind=PARENT,
                    dedupe_key=bulk_id,
                    payload={
                        "bulk_id": bulk_id,
                        "merchant_id": merchant_id,
                        "kind": kind,
                        "rows": len(rows),
                        "valid": len(valid),
                        "invalid": invalid,
                    },
                    status=JOB.initial.value,
                    run_at=now,
                    attempts=0,
                    max_attempts=1,
                    created_at=now,
                )
            )
            await self.queue.enqueue_many_in(
                s,
                row_kind,
                [
                    (
                        {"bulk_id": bulk_id, "merchant_id": merchant_id, "row": n, **row},
                        f"bulk:{bulk_id}:{n}",
                    )
                    for n, row in valid
                ],
                max_attempts=20,
            )
            audit(s, self.clock, actor=actor, action="bulk.submit", object_type="bulk",
                  object_id=bulk_id, merchant_id=merchant_id,
                  details={"rows": len(rows), "invalid": len(invalid)})  # fmt: skip
        if not valid:  # nothing for a worker to do: the job is done now (and says so)
            await self._finish_parents({bulk_id})
        return Submitted(bulk_id, len(valid), invalid)

    # ------------------------------------------------------------------ processing

    @functools.cached_property
    def batch(self) -> ChargeBatch:
        return ChargeBatch(self.clock, self.charger.gateway, self.payments, self.charger.policy)

    async def run_once(self) -> int:
        """Claim one batch of row jobs and process it; returns how many."""
        jobs, opened, notes = await self._claim_and_open(self.concurrency)
        if jobs:
            await self._batch(jobs, opened, notes)
            await self._finish_parents({j.payload["bulk_id"] for j in jobs})
        return len(jobs)

    async def run(
        self, *, poll_s: float = 1.0, idle_poll_s: float = 5.0, until_idle: bool = False
    ) -> None:
        """Process rows until cancelled, keeping ``concurrency`` rows in flight.
        ``until_idle``: return when no row is claimable (tests, ``--here``). With nothing
        to do it looks again after ``poll_s``, backing off to ``idle_poll_s``, or at
        once when a transaction of this process adds jobs (:class:`Pacer`).

        One loop owns the writes (SQLite has one writer): each turn settles, in one
        transaction, every answer that came back since the last turn, then claims
        and opens as many new rows as there is room for, in another. Batches size
        themselves: the busier the writer, the more answers wait for the next turn
        and the fewer transactions per row. The requests run as tasks in between, so
        no batch waits for its slowest request."""
        self.pacer = Pacer(poll_s, max(poll_s, idle_poll_s))
        flow = _Flow()
        touched: set[str] = set()  # bulk jobs worked on since the last finish check
        async with asyncio.TaskGroup() as tg:
            while True:
                if flow.answers:
                    await self._settle_answers(flow.take_answers())
                room = self.concurrency - flow.in_flight
                jobs = await self._claim_more(tg, flow, room) if room else []
                touched |= {j.payload["bulk_id"] for j in jobs}
                idle = not (flow.in_flight or flow.answers)
                if len(jobs) < room and idle and touched:
                    # The queue is draining and every row taken is done: are those
                    # bulk jobs finished? (Counting a job's rows costs a scan, so not
                    # after every turn.)
                    try:
                        await self._finish_parents(touched)
                        touched.clear()
                    except Exception:
                        log.exception("bulk finish check failed")
                if not idle:
                    await flow.wait(poll_s)
                elif until_idle and not jobs:
                    return
                elif not jobs:
                    await self.pacer.wait(found_work=False)

    async def _claim_more(self, tg: asyncio.TaskGroup, flow: _Flow, room: int) -> list[Job]:
        """Claim and open up to ``room`` rows and start them: each new charge's request
        (its answer goes to ``flow``), each row that already has an intent one by one,
        the registration rows in file order."""
        try:
            jobs, opened, notes = await self._claim_and_open_or_claim(room)
        except Exception:
            log.exception("bulk claim failed")
            return []
        by_id = {j.id: j for j in jobs}
        for job_id, o in opened.items():
            flow.start(tg, self._answer(by_id[job_id], o, notes[job_id]))
        for job in jobs:
            if job.kind == ROW and not _fresh(job):
                flow.start(tg, self._logged(self._row(job)))
        registrations = [j for j in jobs if j.kind == REGISTER]
        if registrations:
            flow.start(tg, self._logged(self._registrations(registrations)))
        return jobs

    async def _answer(self, job: Job, o: Opened, note: dict[str, Any]) -> _Answered:
        """One new charge's request (paced); an unexpected error makes its outcome
        unknown (it is looked up, never sent again)."""
        await self._pace()
        try:
            return job, await self.batch.send(o), note
        except Exception:
            log.exception("bulk charge request failed")
            return job, Answer(o, None), note

    @staticmethod
    async def _logged(work: Awaitable[None]) -> None:
        """One-by-one work of the loop: an error is logged; the row's claim lapses and
        it is taken up again."""
        try:
            await work
        except Exception:
            log.exception("bulk row failed")

    async def _settle_answers(self, answered: Sequence[_Answered]) -> None:
        """Step 3 for answers of many batches at once. If the transaction fails, the
        attempts stay ``pending`` and their rows' claims lapse: the rows are taken up
        again and the orders looked up, never charged again."""
        try:
            await self._settle(
                [job for job, _, _ in answered],
                [answer for _, answer, _ in answered],
                {job.id: note for job, _, note in answered},
            )
        except Exception:
            log.exception("bulk settle failed")

    async def _claim_and_open(self, size: int) -> tuple[list[Job], _Opened, _Notes]:
        """Claim up to ``size`` rows and open the new charges among them (step 1 of
        :class:`ChargeBatch`) in one transaction: the claims commit with the intents,
        and no second transaction has to check they are still held."""
        async with self.db.transaction() as s:
            jobs = await self.queue.claim_in(s, ROWS, limit=size, lease_s=self.lease_s)
            opened, notes = await self._open_in(s, [j for j in jobs if _fresh(j)])
        return jobs, opened, notes

    async def _claim_and_open_or_claim(self, size: int) -> tuple[list[Job], _Opened, _Notes]:
        """:meth:`_claim_and_open`; if that transaction fails, the rows are claimed on
        their own and opened in a second one: a batch that cannot be opened keeps its
        claims until they lapse instead of coming back at once and stalling the rows
        behind it. (Rows not opened are left to their claims' lapse.)"""
        try:
            return await self._claim_and_open(size)
        except Exception:
            log.exception("bulk batch failed to open: claiming it on its own")
        jobs = await self.queue.claim(ROWS, limit=size, lease_s=self.lease_s)
        try:
            opened, notes = await self._open([j for j in jobs if _fresh(j)])
        except Exception:
            log.exception("bulk batch failed to open")
            opened, notes = {}, {}
        return jobs, opened, notes

    async def _batch(self, jobs: Sequence[Job], opened: _Opened, notes: _Notes) -> None:
        """New charge rows (already opened) in one batch; charge rows that already have
        an intent one by one; registration rows one by one (each is a lease and an
        SMS)."""
        await asyncio.gather(
            self._send_and_settle(jobs, opened, notes),
            *(self._row(j) for j in jobs if j.kind == ROW and not _fresh(j)),
            self._registrations([j for j in jobs if j.kind == REGISTER]),
        )

    async def _registrations(self, jobs: Sequence[Job]) -> None:
        for job in sorted(jobs, key=lambda j: int(j.payload["row"])):  # in file order:
            await self._register(job)  # the first row with a new external_ref creates it

    @staticmethod
    def _check_registration(raw: dict[str, Any]) -> dict[str, Any]:
        return check_registration_row(raw, EXTRA_FIELDS)

    async def _register(self, job: Job) -> None:
        if self.customers is None or self.requests is None:
            raise ConfigError("bulk registrations need the customer and request services")
        payload = dict(job.payload)
        try:
            payload |= await register_row(
                self.db, self.customers, self.requests, payload,
                actor=f"bulk:{payload['bulk_id']}",
            )  # fmt: skip
        except PoolExhausted:  # every number is leased to this mobile now: try later
            await self.queue.fail(job, "did-pool-exhausted", retry_in_s=300)
            return
        except ArspayError as exc:
            payload["result"], payload["error"] = "invalid", exc.message
        async with self.db.transaction() as s:
            held = await self.queue.held_in(s, [job])
            if job.id in held:
                held[job.id].payload = payload
                self.queue.complete_in(held[job.id])

    async def _open(self, jobs: Sequence[Job]) -> tuple[_Opened, _Notes]:
        """:meth:`_open_in` in a transaction of its own, for the rows still held (the
        others' claims lapsed)."""
        async with self.db.transaction() as s:
            held = await self.queue.held_ids_in(s, jobs)
            return await self._open_in(s, [j for j in jobs if j.id in held])

    async def _open_in(self, s: AsyncSession, jobs: Sequence[Job]) -> tuple[_Opened, _Notes]:
        """Step 1 of a batch (see :class:`ChargeBatch`) for new charge rows this
        transaction holds: job id -> the opened charge, and job id -> its payload with
        the intent id (committed with the intent). Refused rows (card not found /
        deleted) end ``invalid``."""
        opened: _Opened = {}
        notes: _Notes = {}
        refused: dict[int, dict[str, Any]] = {}
        results = await self.batch.open_in(s, [
            NewCharge(p["merchant_id"], p["card_id"], p["amount"], p["order_name"],
                      p["installment_months"], "bulk", f"bulk:{p['bulk_id']}")
            for p in (j.payload for j in jobs)
        ])  # fmt: skip
        for job, result in zip(jobs, results, strict=True):
            if isinstance(result, ArspayError):
                refused[job.id] = job.payload | {"result": "invalid", "error": result.message}
            else:
                opened[job.id] = result
                notes[job.id] = job.payload | {"intent_id": result.intent_id}
        await self.queue.save_payloads_in(s, notes)
        await self.queue.complete_many_in(s, refused)
        return opened, notes

    async def _send_and_settle(self, jobs: Sequence[Job], opened: _Opened, notes: _Notes) -> None:
        """Steps 2 and 3 of one batch (:meth:`run_once`): the requests go out, then
        :meth:`_settle`."""
        if not opened:
            return

        async def send(o: Opened) -> Answer:
            await self._pace()
            return await self.batch.send(o)

        answers = await asyncio.gather(*(send(o) for o in opened.values()))
        held = [j for j in jobs if j.id in opened]
        await self._settle(held, answers, notes)

    async def _settle(self, jobs: Sequence[Job], answers: Sequence[Answer], notes: _Notes) -> None:
        """One transaction records the answers and ends the jobs still held (an
        unknown outcome defers its job to the one-by-one path, which looks the order
        up). ``jobs[i]`` is the row of ``answers[i]``."""
        async with self.db.transaction() as s:
            statuses = await self.batch.settle_in(s, answers)
            held = await self.queue.held_ids_in(s, jobs)
            done: dict[int, dict[str, Any]] = {}
            later: list[int] = []
            for job, answer in zip(jobs, answers, strict=True):
                if job.id not in held:
                    continue  # its new owner drives the intent and records the result
                status = statuses[answer.opened.intent_id]
                if status in (PaymentIntentStatus.succeeded, PaymentIntentStatus.failed):
                    # who finished it: monitoring
                    done[job.id] = notes[job.id] | {
                        "result": status.value,
                        "worker": self.queue.worker_id,
                    }
                else:  # unknown outcome: looked up by the one-by-one path
                    later.append(job.id)
            await self.queue.complete_many_in(s, done)
            await self.queue.defer_many_in(s, later, self.clock.now())

    async def _pace(self) -> None:
        """The PG rate limit: start at most ``rate_per_s`` new charges per second. A
        start due within a millisecond goes at once (sleeping that little costs more
        than it paces; the slots still add up to the rate)."""
        now = time.monotonic()
        slot = max(now, self._next_slot)
        self._next_slot = slot + 1.0 / self.rate_per_s
        if slot > now + 0.001:
            await asyncio.sleep(slot - now)

    async def _row(self, job: Job) -> None:
        payload = dict(job.payload)
        try:
            intent_id = payload.get("intent_id")
            if intent_id is None:
                await self._pace()
                async with self.db.transaction() as s:
                    intent = await self.payments.create_intent_in(
                        s, payload["merchant_id"], payload["card_id"],
                        amount=payload["amount"], order_name=payload["order_name"],
                        installment_months=payload["installment_months"], source="bulk",
                        actor=f"bulk:{payload['bulk_id']}",
                    )  # fmt: skip
                    payload["intent_id"] = intent.id
                    if not await self.queue.save_payload_in(s, job, payload):
                        raise _Lost
                intent_id = intent.id
            status = await self.charger.drive(intent_id)
            if status in (PaymentIntentStatus.created, PaymentIntentStatus.processing):
                recheck = timedelta(seconds=self.charger.policy.recheck_s)
                await self.queue.defer(job, self.clock.now() + recheck, payload)
                return
            payload["result"] = status.value
            payload["worker"] = self.queue.worker_id  # who finished it (monitoring)
            async with self.db.transaction() as s:
                if not await self.queue.save_payload_in(s, job, payload):
                    return
            await self.queue.complete(job)
        except _Lost:
            return
        except ArspayError as exc:  # e.g. card not found / deleted: the row's result
            payload["result"] = "invalid"
            payload["error"] = exc.message
            async with self.db.transaction() as s:
                if not await self.queue.save_payload_in(s, job, payload):
                    return
            await self.queue.complete(job)

    async def _finish_parents(self, bulk_ids: set[str]) -> None:
        for bulk_id in bulk_ids:
            p = await self.progress_of(bulk_id)
            if p["pending"] == 0:
                async with self.db.transaction() as s:
                    parent = await s.scalar(
                        select(Job).where(Job.dedupe_key == bulk_id).with_for_update()
                    )
                    if parent is not None and parent.status == JobStatus.queued.value:
                        parent.status = JOB.check(parent.status, JobStatus.running).value
                        parent.status = JOB.check(parent.status, JobStatus.done).value
                        parent.finished_at = self.clock.now()
                        counts = await self._counts_in(s, bulk_id, parent)
                        await bulk_completed_in(
                            s, self.clock, parent.payload["merchant_id"],
                            {**p, "status": "done", "total": p["rows"], **counts},
                        )  # fmt: skip

    @staticmethod
    async def _counts_in(s: AsyncSession, bulk_id: str, parent: Job) -> dict[str, int]:
        """Rows by result — ``succeeded``, ``failed``, ``invalid`` (at submission or when
        processed), ``requested`` (registrations), ``error`` (rows given up on) — so
        that they add up to the job's total rows."""
        result = Job.payload["result"].as_string()
        rows = await s.execute(
            select(result, func.count())
            .where(Job.dedupe_key.like(f"bulk:{bulk_id}:%"))
            .group_by(result)
        )
        counts = {"succeeded": 0, "failed": 0, "invalid": len(parent.payload["invalid"])}
        for value, n in rows.all():
            key = str(value or "error")
            counts[key] = counts.get(key, 0) + int(n)
        return counts

    # ------------------------------------------------------------------ reading

    async def pending_rows(self) -> int:
        """Row jobs of every bulk job not finished yet (queued or running)."""
        async with self.db.sessions() as s:
            n = await s.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.kind.in_(ROWS), Job.status.in_(["queued", "running"]))
            )
        return int(n or 0)

    async def _parent(self, merchant_id: str | None, bulk_id: str) -> Job:
        async with self.db.sessions() as s:
            parent = await s.scalar(
                select(Job).where(Job.kind == PARENT, Job.dedupe_key == bulk_id)
            )
        if parent is None or (
            merchant_id is not None and parent.payload["merchant_id"] != merchant_id
        ):
            raise NotFound(f"bulk job {bulk_id} not found")
        return parent

    async def progress(self, merchant_id: str, bulk_id: str) -> dict[str, Any]:
        await self._parent(merchant_id, bulk_id)
        return await self.progress_of(bulk_id)

    async def progress_of(self, bulk_id: str) -> dict[str, Any]:
        parent = await self._parent(None, bulk_id)
        like = f"bulk:{bulk_id}:%"
        async with self.db.sessions() as s:
            by_status = dict(
                (
                    await s.execute(
                        select(Job.status, func.count())
                        .where(Job.dedupe_key.like(like))
                        .group_by(Job.status)
                    )
                ).all()
            )
        done = by_status.get("done", 0) + by_status.get("dead", 0)
        valid = int(parent.payload["valid"])
        return {
            "bulk_id": bulk_id,
            "kind": parent.payload.get("kind", "charges"),
            "status": "done" if parent.status == JobStatus.done.value else "running",
            "rows": parent.payload["rows"],
            "invalid": len(parent.payload["invalid"]),
            "valid": valid,
            "processed": done,
            "pending": valid - done,
        }

    async def results(self, merchant_id: str, bulk_id: str) -> list[dict[str, Any]]:
        """Per-row results (the result file): invalid rows and processed rows."""
        parent = await self._parent(merchant_id, bulk_id)
        out: list[dict[str, Any]] = [
            {"row": r["row"], "ref": r.get("ref", ""), "result": "invalid", "error": r["error"]}
            for r in parent.payload["invalid"]
        ]
        async with self.db.sessions() as s:
            jobs = list(
                await s.scalars(select(Job).where(Job.dedupe_key.like(f"bulk:{bulk_id}:%")))
            )
            approvals = dict(
                (
                    await s.execute(
                        select(PaymentAttempt.intent_id, PaymentAttempt.approval_no).where(
                            PaymentAttempt.intent_id.in_(
                                [j.payload["intent_id"] for j in jobs if j.payload.get("intent_id")]
                            ),
                            PaymentAttempt.status == "succeeded",
                        )
                    )
                ).all()
            )
        for j in jobs:
            p = j.payload
            intent_id = p.get("intent_id")
            out.append({
                "row": p["row"], "ref": p.get("ref", ""), "card_id": p.get("card_id"),
                "amount": p.get("amount"), "result": p.get("result") or j.status,
                "intent_id": intent_id, "approval_no": approvals.get(intent_id or ""),
                "customer_id": p.get("customer_id") if p.get("result") else None,
                "request_id": p.get("request_id") if p.get("result") else None,
                "error": p.get("error"),
            })  # fmt: skip
        return sorted(out, key=lambda r: int(r["row"]))

    @staticmethod
    def results_csv(rows: Sequence[dict[str, Any]]) -> str:
        buf = io.StringIO()
        cols = ["row", "ref", "card_id", "amount", "result", "intent_id", "approval_no",
                "customer_id", "request_id", "error"]  # fmt: skip
        writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: r.get(k) for k in cols})
        return buf.getvalue()


class _Lost(Exception):
    pass


_Answered = tuple[Job, Answer, dict[str, Any]]  # a row, its answer, its payload note


class _Flow:
    """The rows :meth:`BulkCharges.run` has in flight and the answers waiting to be
    settled."""

    def __init__(self) -> None:
        self.in_flight = 0  # rows started and not settled (or finished) yet
        self.answers: list[_Answered] = []
        self._arrived = asyncio.Event()

    def start(self, tg: asyncio.TaskGroup, work: Awaitable[_Answered | None]) -> None:
        """Run one row's work as a task (it must not raise); the row is in flight until
        the work is done or, if it returns an answer, until that is settled."""
        self.in_flight += 1

        async def run() -> None:
            answered = None
            try:
                answered = await work
            finally:
                if answered is None:
                    self.in_flight -= 1
                else:
                    self.answers.append(answered)
                self._arrived.set()

        tg.create_task(run())

    def take_answers(self) -> list[_Answered]:
        taken, self.answers = self.answers, []
        self.in_flight -= len(taken)
        return taken

    async def wait(self, timeout_s: float) -> None:
        """Until an answer comes back or a row finishes (or ``timeout_s``)."""
        if not self.answers:
            try:
                async with asyncio.timeout(timeout_s):
                    await self._arrived.wait()
            except TimeoutError:
                pass
        self._arrived.clear()


def _fresh(job: Job) -> bool:
    """A charge row with no intent yet (its first try, or a crash before it had one)."""
    return job.kind == ROW and job.payload.get("intent_id") is None
