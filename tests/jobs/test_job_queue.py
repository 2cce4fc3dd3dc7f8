"""The jobs table as a queue, on SQLite and PostgreSQL: dedupe, claims that never
overlap (also between concurrent claimers), expired locks reclaimed, retries, dead."""

from __future__ import annotations

import asyncio

import pytest

from ivr.clock import FakeClock
from ivr.errors import InvalidInput
from ivr.jobs.queue import JobQueue
from ivr.store.db import Database

pytestmark = pytest.mark.anyio


async def test_dedupe_key_makes_one_job(db: Database, clock: FakeClock) -> None:
    q = JobQueue(db, clock, worker_id="w1")
    assert await q.enqueue("charge", {"row": 1}, dedupe_key="bulk:1:row:1")
    assert not await q.enqueue("charge", {"row": 1}, dedupe_key="bulk:1:row:1")
    assert await q.counts("charge") == {"queued": 1}


async def test_many_jobs_go_in_chunks_and_dedupe_like_one(db: Database, clock: FakeClock) -> None:
    q = JobQueue(db, clock, worker_id="w1")
    assert await q.enqueue("charge", {"row": 3}, dedupe_key="b:3")
    jobs = [({"row": n}, f"b:{n}") for n in range(1, 8)]
    async with db.transaction() as s:
        await q.enqueue_many_in(s, "charge", jobs, max_attempts=20, chunk=3)
    async with db.transaction() as s:  # the same upload again: nothing more
        await q.enqueue_many_in(s, "charge", jobs, chunk=3)
    assert await q.counts("charge") == {"queued": 7}
    claimed = await q.claim(["charge"], limit=10)
    assert sorted(j.payload["row"] for j in claimed) == list(range(1, 8))
    assert {j.max_attempts for j in claimed if j.payload["row"] != 3} == {20}
    with pytest.raises(InvalidInput, match="dedupe_key"):
        async with db.transaction() as s:
            await q.enqueue_many_in(s, "charge", [({"row": 9}, "")])


async def test_only_due_jobs_of_the_kinds_asked_are_claimed(db: Database, clock: FakeClock) -> None:
    q = JobQueue(db, clock, worker_id="w1")
    await q.enqueue("charge", {"n": 1})
    await q.enqueue("charge", {"n": 2}, run_at=clock.now().replace(year=2030))
    await q.enqueue("sms", {"n": 3})
    [job] = await q.claim(["charge"])
    assert job.payload == {"n": 1}
    assert (job.status, job.attempts) == ("running", 1)
    assert job.locked_by is not None
    assert job.locked_by.startswith("w1/")
    assert await q.claim(["charge"]) == []
    assert await q.complete(job)
    assert await q.counts("charge") == {"done": 1, "queued": 1}


async def test_concurrent_claimers_never_share_a_job(db: Database, clock: FakeClock) -> None:
    q0 = JobQueue(db, clock, worker_id="seed")
    for n in range(60):
        await q0.enqueue("charge", {"n": n})
    workers = [JobQueue(db, clock, worker_id=f"w{i}") for i in range(4)]
    taken: dict[str, list[int]] = {w.worker_id: [] for w in workers}

    async def drain(w: JobQueue) -> None:
        while jobs := await w.claim(["charge"], limit=5):
            for job in jobs:
                taken[w.worker_id].append(job.payload["n"])
                assert await w.complete(job)
            await asyncio.sleep(0)

    await asyncio.gather(*(drain(w) for w in workers))
    all_taken = [n for ns in taken.values() for n in ns]
    assert sorted(all_taken) == list(range(60))  # each exactly once
    assert await q0.counts("charge") == {"done": 60}


async def test_a_dead_workers_job_is_reclaimed_and_its_late_result_refused(
    db: Database, clock: FakeClock
) -> None:
    a = JobQueue(db, clock, worker_id="a")
    b = JobQueue(db, clock, worker_id="b")
    await a.enqueue("charge", {"n": 1})
    [job] = await a.claim(["charge"], lease_s=30)
    assert await b.claim(["charge"]) == []  # still locked
    clock.advance(31)
    [again] = await b.claim(["charge"])
    assert (again.id, again.attempts) == (job.id, 2)
    assert again.locked_by is not None
    assert again.locked_by.startswith("b/")
    assert not await a.complete(job)  # a's claim is gone
    assert await b.complete(again)


async def test_failures_retry_with_delay_then_the_job_is_dead(
    db: Database, clock: FakeClock
) -> None:
    q = JobQueue(db, clock, worker_id="w")
    await q.enqueue("charge", {"n": 1}, max_attempts=2)
    [job] = await q.claim(["charge"])
    assert await q.fail(job, "pg-unavailable", retry_in_s=120) == "queued"
    assert await q.claim(["charge"]) == []
    clock.advance(121)
    [job] = await q.claim(["charge"])
    assert await q.fail(job, "pg-unavailable") == "dead"
    assert await q.counts("charge") == {"dead": 1}


async def test_a_worker_reclaiming_its_own_expired_job_holds_a_new_claim(
    db: Database, clock: FakeClock
) -> None:
    """The old claim (a task still running in the same process) can no longer record
    anything: only the newest claim can."""
    q = JobQueue(db, clock, worker_id="same")
    await q.enqueue("charge", {"n": 1})
    [old] = await q.claim(["charge"], lease_s=5)
    clock.advance(6)
    [new] = await q.claim(["charge"], lease_s=5)
    assert old.id == new.id
    async with db.transaction() as s:
        assert not await q.save_payload_in(s, old, {"n": 1, "intent_id": "pi_old"})
    async with db.transaction() as s:
        assert await q.save_payload_in(s, new, {"n": 1, "intent_id": "pi_new"})
    assert not await q.complete(old)
    assert await q.complete(new)
