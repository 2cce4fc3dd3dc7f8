"""The scrape-time gauges follow the rows: queue depth, oldest age and dead items of
jobs, SMS, webhook deliveries and notices; the DID pool's use and its refusals. And
each runtime counts in its own registry."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ivr.domain.ids import new_id
from ivr.errors import PoolExhausted
from ivr.observability.registry import Metrics
from ivr.observability.scrape import Samples
from ivr.store.tables import AlimtalkMessage, Job, Notice, SmsMessage
from ivr.telephony.fake import Press
from ivr.webhooks.events import emit_in
from tests.flows.conftest import MOBILE

from .conftest import Ops

pytestmark = pytest.mark.anyio


@pytest.fixture
def ops_db_url(db_url: str) -> str:
    return db_url  # the counting queries on SQLite and PostgreSQL


async def add_rows(ops: Ops) -> None:
    """Two due jobs (one 10 minutes late), one not due yet, one dead; two SMS waiting
    (the older from 5 minutes ago) and one failed; one notice pending 3 minutes; one
    webhook delivery pending (an endpoint and an event); 알림톡: one sent 7 minutes ago
    awaiting its result, one retrying not due for a minute, one delivered."""
    st = ops.stack
    now, mid = st.clock.now(), st.merchant_id
    sms = {"kind": "notice", "to": MOBILE, "sender": "0212345678", "body": "x", "adapter": "log",
           "attempts": 0, "merchant_id": mid}  # fmt: skip
    async with st.db.transaction() as s:
        for late, status in ((10, "queued"), (1, "queued"), (-5, "queued"), (30, "dead")):
            s.add(Job(kind="test", payload={}, status=status, run_at=now - timedelta(minutes=late),
                      attempts=0, max_attempts=3, created_at=now))  # fmt: skip
        for ago, status in ((5, "pending"), (2, "retrying"), (9, "failed")):
            s.add(SmsMessage(id=new_id("sms"), status=status,
                             created_at=now - timedelta(minutes=ago), **sms))  # fmt: skip
        s.add(Notice(id=new_id("ntc"), merchant_id=mid, kind="test", dedupe_key="test:1",
                     subject_id="x", mobile=MOBILE, variables={}, status="pending",
                     created_at=now - timedelta(minutes=3)))  # fmt: skip
        talk = {"merchant_id": mid, "to": MOBILE, "template_code": "T", "parameters": {},
                "fallback_text": "x", "attempts": 0}  # fmt: skip
        for ago, due, status in ((7, 0, "sent"), (4, -1, "retrying"), (20, 0, "delivered")):
            s.add(AlimtalkMessage(id=new_id("atk"), notice_id=new_id("ntc"), status=status,
                                  created_at=now - timedelta(minutes=ago),
                                  next_try_at=now - timedelta(minutes=due), **talk))  # fmt: skip
    await st.runtime.services.endpoints.create_endpoint(
        mid, "https://hooks.example.com/a", None, actor="test"
    )
    async with st.db.transaction() as s:
        await emit_in(s, st.clock, mid, "payment.succeeded", {"id": "pi_x"})


async def test_queue_gauges_reflect_the_rows(ops: Ops) -> None:
    empty = await ops.metrics()
    for queue in ("jobs", "sms", "webhooks", "notices", "alimtalk"):
        assert empty.value("arspay_queue_depth", queue=queue) == 0, queue
        assert empty.value("arspay_queue_oldest_age_seconds", queue=queue) == 0, queue
    await add_rows(ops)
    got = await ops.metrics()

    def of(name: str, queue: str) -> float:
        return got.value(name, queue=queue)

    assert of("arspay_queue_depth", "jobs") == 3  # due or not, waiting
    assert of("arspay_queue_oldest_age_seconds", "jobs") == 600  # how late the oldest is
    assert of("arspay_queue_dead", "jobs") == 1
    assert of("arspay_queue_depth", "sms") == 2
    assert of("arspay_queue_oldest_age_seconds", "sms") == 300
    assert of("arspay_queue_dead", "sms") == 1
    assert of("arspay_queue_depth", "notices") == 1
    assert of("arspay_queue_oldest_age_seconds", "notices") == 180
    assert of("arspay_queue_depth", "webhooks") == 1
    assert of("arspay_queue_depth", "alimtalk") == 2  # sent and retrying; delivered ended
    assert of("arspay_queue_oldest_age_seconds", "alimtalk") == 420  # the retry is not due
    ops.stack.clock.advance(timedelta(minutes=1))
    later = await ops.metrics()
    assert later.value("arspay_queue_oldest_age_seconds", queue="sms") == 360


async def test_did_pool_use_and_exhaustion(ops: Ops) -> None:
    pool = ops.stack.runtime.services.dids
    got = await ops.metrics()
    assert got.value("arspay_did_pool_numbers", status="active") == 3
    assert got.value("arspay_did_pool_max_mobile_utilisation") == 0
    await pool.lease(MOBILE, "test")
    await pool.lease("01099998888", "test")
    got = await ops.metrics()
    assert got.value("arspay_did_pool_active_leases") == 2
    assert got.value("arspay_did_pool_mobiles") == 2
    assert got.value("arspay_did_pool_max_mobile_utilisation") == pytest.approx(1 / 3)
    await pool.lease(MOBILE, "test")
    third = await pool.lease(MOBILE, "test")
    with pytest.raises(PoolExhausted):
        await pool.lease(MOBILE, "test")
    got = await ops.metrics()
    assert got.value("arspay_did_pool_max_mobile_utilisation") == 1
    assert got.value("arspay_did_pool_exhausted_total") == 1
    await pool.release(third.id)  # ended, but cooling down for that mobile: still blocked
    got = await ops.metrics()
    assert got.value("arspay_did_pool_max_mobile_utilisation") == 1
    assert got.value("arspay_did_pool_active_leases") == 3
    ops.stack.clock.advance(pool.cooldown + timedelta(seconds=1))
    got = await ops.metrics()
    assert got.value("arspay_did_pool_max_mobile_utilisation") == pytest.approx(2 / 3)


async def test_each_runtime_counts_in_its_own_registry(ops: Ops) -> None:
    """A second registry (another runtime in the same process) sees none of the calls;
    the engine never touches the library's global registry."""
    from prometheus_client import REGISTRY, generate_latest

    other = Metrics(process=False)
    outcome, _ = await ops.stack.call([Press("1")], did="05059999999")
    assert outcome is not None
    mine = await ops.metrics()
    assert mine.value("arspay_calls_total") == 1
    theirs = Samples.parse(generate_latest(other.registry).decode())
    assert theirs.value("arspay_calls_total") == 0
    assert b"arspay_" not in generate_latest(REGISTRY)
