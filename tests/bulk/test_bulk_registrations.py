"""Bulk registrations: each valid row becomes one registration call request (a leased
number and one SMS), exactly once even when a row is processed again."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from ivr.bulk.registrations import register_row
from ivr.bulk.results import results_csv
from ivr.bulk.wiring import Bulk, build_bulk
from ivr.jobs.queue import JobQueue
from ivr.store.tables import CallRequest, Customer, SmsMessage

from .conftest import Billing

pytestmark = pytest.mark.anyio


def runner(b: Billing) -> Bulk:
    sv = b.services
    return build_bulk(b.db, b.clock, JobQueue(b.db, b.clock, worker_id="w"), b.payments,
                      b.charger, sv.customers, sv.requests)  # fmt: skip


async def count(b: Billing, model: type) -> int:
    async with b.db.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_registration_rows_become_requests_once(billing: Billing) -> None:
    b = billing
    csv = (
        "ref,customer_id,mobile,name,external_ref,product_name\n"
        f"r1,{b.customer_id},,,,\n"
        "r2,,010-7777-0001,홍길동,m-1,요가 정기권\n"
        "r3,,010-7777-0001,,m-1,\n"  # the same external_ref: the customer of r2
        "r4,,02-123-4567,,,\n"  # not a mobile
        f"r5,{b.customer_id},010-7777-0003,,,\n"  # both
        "r6,,010-7777-0009,,m-1,\n"  # r2's ref with another mobile: refused
    ).encode()
    bulk = runner(b)
    sub = await bulk.submissions.submit(b.merchant_id, csv, "csv", actor="t", kind="registrations")
    assert sub.valid == 4
    assert [r["row"] for r in sub.invalid] == [4, 5]
    customers_before = await count(b, Customer)
    await bulk.registrations.run(until_idle=True, poll_s=0.01)
    results = await bulk.results.rows(b.merchant_id, sub.bulk_id)
    assert [r["result"] for r in results] == ["requested", "requested", "requested", "invalid",
                                              "invalid", "invalid"]  # fmt: skip
    assert "another mobile" in results[5]["error"]
    assert results[1]["customer_id"] == results[2]["customer_id"] != b.customer_id
    assert await count(b, Customer) == customers_before + 1
    assert await count(b, CallRequest) == 3
    assert await count(b, SmsMessage) == 3
    progress = await bulk.jobs.progress(b.merchant_id, sub.bulk_id)
    assert progress["status"] == "done"
    assert "request_id" in results_csv(results).splitlines()[0]


async def test_a_row_processed_again_sends_no_second_sms(billing: Billing) -> None:
    b = billing
    bulk = runner(b)
    sub = await bulk.submissions.submit(
        b.merchant_id, b'[{"mobile": "010-8888-0001"}]', "json", actor="t", kind="registrations"
    )
    await bulk.registrations.run(until_idle=True, poll_s=0.01)
    (row,) = await bulk.results.rows(b.merchant_id, sub.bulk_id)
    from ivr.store.tables import Job

    async with b.db.sessions() as s:
        job = await s.scalar(select(Job).where(Job.dedupe_key == f"bulk:{sub.bulk_id}:1"))
    assert job is not None
    # what a worker killed after creating the request but before noting it would redo
    payload = {k: v for k, v in job.payload.items() if k not in ("result",)}
    again = await register_row(b.db, b.services.customers, b.services.requests, payload,
                               actor="t")  # fmt: skip
    assert again["request_id"] == row["request_id"]
    assert await count(b, SmsMessage) == 1
    assert await count(b, CallRequest) == 1
