"""Bulk charges: CSV/JSON parsing with per-row errors, concurrent processing within a
rate limit, one charge per row even when a worker dies mid-row, progress and results."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from sqlalchemy import func, select

from ivr.bulk.charge_rows import check_row
from ivr.bulk.files import parse_rows
from ivr.bulk.results import results_csv
from ivr.bulk.wiring import Bulk, build_bulk
from ivr.errors import InvalidInput
from ivr.jobs.queue import JobQueue
from ivr.store.tables import Job, PaymentAttempt, PaymentIntent, WebhookEvent

from .conftest import Billing

pytestmark = pytest.mark.anyio


def bulk(b: Billing, worker: str = "w1", **options: float) -> Bulk:
    sv = b.services
    return build_bulk(b.db, b.clock, JobQueue(b.db, b.clock, worker_id=worker), b.payments,
                      b.charger, sv.customers, sv.requests, rate_per_s=options.get("rate", 1000.0),
                      concurrency=int(options.get("concurrency", 8)))  # fmt: skip


def test_rows_are_checked_field_by_field() -> None:
    ok = check_row({"card_id": "card_1", "amount": "55,000", "order_name": " 헬스  정기권 "})
    assert (ok["amount"], ok["order_name"], ok["installment_months"]) == (55000, "헬스 정기권", 0)
    for raw, field in [
        ({"card_id": "x", "amount": "1000", "order_name": "a"}, "card_id"),
        ({"card_id": "card_1", "amount": "12.5", "order_name": "a"}, "amount"),
        ({"card_id": "card_1", "amount": "50", "order_name": "a"}, "100"),
        ({"card_id": "card_1", "amount": "1000", "order_name": ""}, "order_name"),
        ({"card_id": "card_1", "amount": "1000", "order_name": "a", "installment_months": "1"},
         "installment_months"),
        ({"card_id": "card_1", "amount": "1000", "order_name": "a", "pan": "4111"}, "unknown"),
    ]:  # fmt: skip
        with pytest.raises(InvalidInput, match=field):
            check_row(raw)
    with pytest.raises(InvalidInput, match="header"):
        parse_rows(b"a,b\n1,2\n", "csv")
    with pytest.raises(InvalidInput, match="malformed"):
        parse_rows(b"[{", "json")


async def test_csv_with_invalid_rows_processes_the_valid_ones(billing: Billing) -> None:
    b = billing
    lines = ["card_id,amount,order_name,installment_months,ref"]
    for n in range(40):
        lines.append(f"{b.card_id},{1000 + n},정기권,0,r{n}")
    lines.append(f"{b.card_id},abc,정기권,0,bad1")
    lines.append("card_missing,1000,정기권,0,bad2")  # valid shape, unknown card
    runner = bulk(b)
    sub = await runner.submissions.submit(
        b.merchant_id, "\n".join(lines).encode(), "csv", actor="t"
    )
    assert (sub.valid, [i["row"] for i in sub.invalid]) == (41, [41])
    while await runner.charges.run_once():
        pass
    progress = await runner.jobs.progress(b.merchant_id, sub.bulk_id)
    assert progress | {} == progress
    assert progress["pending"] == 0
    assert progress["status"] == "done"
    results = await runner.results.rows(b.merchant_id, sub.bulk_id)
    assert [r["result"] for r in results].count("succeeded") == 40
    assert {r["row"]: r["result"] for r in results}[41] == "invalid"
    assert {r["row"]: r["result"] for r in results}[42] == "invalid"
    assert all(r["approval_no"] for r in results if r["result"] == "succeeded")
    csv_text = results_csv(results)
    assert csv_text.splitlines()[0].startswith("row,ref,card_id")
    async with b.db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(PaymentIntent)) == 40


async def test_a_worker_dying_mid_row_never_charges_twice(billing: Billing) -> None:
    b = billing
    rows = [{"card_id": b.card_id, "amount": 2000 + n, "order_name": "회비"} for n in range(10)]
    first = bulk(b, "dies")
    sub = await first.submissions.submit(
        b.merchant_id, json.dumps(rows).encode(), "json", actor="t"
    )
    # the first worker claims everything, creates the intents, then "dies" before charging
    jobs = await first.charges.queue.claim(["bulk.charge"], limit=10, lease_s=60)
    for job in jobs:
        payload = dict(job.payload)
        async with b.db.transaction() as s:
            intent = await b.payments.create_intent_in(
                s, b.merchant_id, payload["card_id"], amount=payload["amount"],
                order_name=payload["order_name"], source="bulk")  # fmt: skip
            payload["intent_id"] = intent.id
            assert await first.charges.queue.save_payload_in(s, job, payload)
    b.clock.advance(61)  # its claims expire
    second = bulk(b, "takes-over")
    while await second.charges.run_once():
        pass
    async with b.db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(PaymentIntent)) == 10
        assert await s.scalar(select(func.count()).select_from(PaymentAttempt)) == 10
        parent = await s.scalar(select(Job).where(Job.dedupe_key == sub.bulk_id))
    assert parent is not None
    assert parent.status == "done"
    assert b.pg.count("charge_billing_key") == 10


async def test_an_idle_runner_starts_a_new_bulk_at_once_not_at_its_next_poll(
    billing: Billing,
) -> None:
    """The commit that submitted the rows wakes the runner; its poll is 30 s away."""
    b = billing
    rows = [{"card_id": b.card_id, "amount": 4000 + n, "order_name": "회비"} for n in range(3)]
    runner = bulk(b)
    task = asyncio.create_task(runner.charges.run(poll_s=30, idle_poll_s=30))
    try:
        await asyncio.sleep(0.2)  # its first round found nothing: it sleeps
        sub = await runner.submissions.submit(
            b.merchant_id, json.dumps(rows).encode(), "json", actor="t"
        )
        for _ in range(500):
            if (await runner.jobs.progress(b.merchant_id, sub.bulk_id))["status"] == "done":
                break
            await asyncio.sleep(0.01)
        assert (await runner.jobs.progress(b.merchant_id, sub.bulk_id))["status"] == "done"
        assert b.pg.count("charge_billing_key") == 3
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_rate_limit_paces_charges(billing: Billing) -> None:
    import time

    b = billing
    rows = [{"card_id": b.card_id, "amount": 3000 + n, "order_name": "회비"} for n in range(10)]
    runner = bulk(b, rate=20.0, concurrency=10)
    await runner.submissions.submit(b.merchant_id, json.dumps(rows).encode(), "json", actor="t")
    started = time.monotonic()
    while await runner.charges.run_once():
        pass
    assert time.monotonic() - started >= 9 / 20 - 0.05  # 10 starts at 20/s


async def test_another_merchant_cannot_see_a_bulk_job(billing: Billing) -> None:
    from ivr.errors import NotFound

    b = billing
    runner = bulk(b)
    rows = [{"card_id": b.card_id, "amount": 1000, "order_name": "a"}]
    sub = await runner.submissions.submit(
        b.merchant_id, json.dumps(rows).encode(), "json", actor="t"
    )
    with pytest.raises(NotFound):
        await runner.jobs.progress("mer_other", sub.bulk_id)


async def test_a_job_with_no_valid_row_is_done_at_once(billing: Billing) -> None:
    """No row for a worker to finish: the job is done when submitted, with its
    ``bulk_job.completed`` event (it used to stay ``running`` for ever)."""
    b = billing
    rows = f"card_id,amount,order_name\n{b.card_id},abc,회비\n{b.card_id},-5,회비\n"
    runner = bulk(b)
    sub = await runner.submissions.submit(b.merchant_id, rows.encode(), "csv", actor="t")
    assert sub.valid == 0
    progress = await runner.jobs.progress(b.merchant_id, sub.bulk_id)
    assert (progress["status"], progress["pending"]) == ("done", 0)
    async with b.db.sessions() as s:
        [event] = list(
            await s.scalars(select(WebhookEvent).where(WebhookEvent.type == "bulk_job.completed"))
        )
    data = event.payload.get("data", event.payload)
    assert (data["invalid"], data["total"]) == (2, 2)
