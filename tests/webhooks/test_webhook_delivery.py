"""Delivery through a loopback receiver on SQLite and PostgreSQL: a receiver that is
down (503, then not listening) gets every event later, once per event id; retries
span 24 h then fail; a persistently failing endpoint is disabled and enabling it
delivers what waited; a delivery left ``sending`` by a dead process is sent again."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import standardwebhooks
from sqlalchemy import func, select

from ivr.clock import FakeClock
from ivr.domain.states import DeliveryStatus, EndpointStatus
from ivr.settings import WebhookSettings
from ivr.store.db import Database
from ivr.store.tables import WebhookDelivery
from ivr.webhooks import backoff
from ivr.webhooks.delivery import WebhookDispatcher
from ivr.webhooks.events import emit_in
from ivr.webhooks.service import WebhookService
from ivr.webhooks.signing import verify
from tests.webhooks.conftest import Receiver, make_merchant, merchant_hooked

pytestmark = pytest.mark.anyio
SETTINGS = WebhookSettings(
    timeout_s=2, retry_hours=26, disable_after_hours=72, workers=4, allow_private_targets=True
)


@pytest.fixture
async def dispatcher(db: Database, clock: FakeClock) -> AsyncIterator[WebhookDispatcher]:
    async with WebhookDispatcher(db, clock, SETTINGS) as d:
        yield d


async def emit(db: Database, clock: FakeClock, merchant_id: str, n: int = 1) -> list[str]:
    ids = []
    async with db.transaction() as s:
        for i in range(n):
            event = await emit_in(
                s, clock, merchant_id, "payment.succeeded",
                {"payment_id": f"pi_{i}", "amount": 53_000, "mobile": "010-1234-5678"},
            )  # fmt: skip
            ids.append(event.id)
    return ids


async def jump_to_next_due(db: Database, clock: FakeClock, *, all_: bool = False) -> bool:
    """Move the clock to the next due delivery (or to when every waiting one is due);
    False if nothing is waiting."""
    agg = func.max if all_ else func.min
    async with db.sessions() as s:
        due = await s.scalar(
            select(agg(WebhookDelivery.next_attempt_at)).where(
                WebhookDelivery.status.in_(
                    [DeliveryStatus.pending.value, DeliveryStatus.retrying.value]
                )
            )
        )
    if due is None:
        return False
    if due > clock.now():
        clock.advance(due - clock.now())
    return True


async def rows(db: Database) -> list[WebhookDelivery]:
    async with db.sessions() as s:
        return list(await s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


async def test_given_a_receiver_down_for_a_while_then_it_gets_every_event_once(
    db: Database, clock: FakeClock, receiver: Receiver, dispatcher: WebhookDispatcher
) -> None:
    _, merchant, _, secret = await merchant_hooked(db, clock, receiver.url)
    events = await emit(db, clock, merchant, 5)

    receiver.status = 503
    assert await dispatcher.run_once() == 5
    assert await jump_to_next_due(db, clock, all_=True)
    assert await dispatcher.run_once() == 5
    await receiver.stop()  # not listening: connection refused
    for _ in range(2):
        assert await jump_to_next_due(db, clock, all_=True)
        assert await dispatcher.run_once() == 5
    assert not receiver.accepted
    receiver.status = 200
    await receiver.start()  # same port
    assert await jump_to_next_due(db, clock, all_=True)
    assert await dispatcher.run_once() == 5
    assert not await jump_to_next_due(db, clock)

    got = Counter(h.headers["webhook-id"] for h in receiver.accepted)
    assert set(got) == set(events)
    assert all(count == 1 for count in got.values())  # no duplicates: no 2xx was lost
    for hit in receiver.accepted:
        verify(secret, hit.headers, hit.body, now=clock.now().timestamp())
    # the same webhook-id on every attempt of one event
    per_id = Counter(h.headers["webhook-id"] for h in receiver.hits)
    assert all(count == 3 for count in per_id.values())  # 2 x 503 + 1 x 200
    for row in await rows(db):
        assert row.status == DeliveryStatus.sent.value
        assert row.attempts == 5
        assert row.last_status_code == 200
        assert row.delivered_at == clock.now()


async def test_given_a_real_time_delivery_then_the_reference_library_verifies_it(
    db: Database, receiver: Receiver
) -> None:
    clock = FakeClock(datetime.now(UTC))
    _, merchant, _, secret = await merchant_hooked(db, clock, receiver.url, [])
    [event_id] = await emit(db, clock, merchant)
    async with WebhookDispatcher(db, clock, SETTINGS) as d:
        assert await d.run_once() == 1
    [hit] = receiver.hits
    payload = standardwebhooks.Webhook(secret).verify(hit.body, hit.headers)
    assert hit.headers["webhook-id"] == event_id
    assert payload["type"] == "payment.succeeded"
    assert payload["data"]["amount"] == 53_000
    assert datetime.fromisoformat(payload["timestamp"]) == clock.now()
    assert hit.headers["content-type"] == "application/json"


async def test_given_an_idle_dispatcher_then_a_new_event_goes_out_at_once(
    db: Database, clock: FakeClock, receiver: Receiver
) -> None:
    """The commit that emitted the event wakes the dispatcher; its poll is 30 s away."""
    merchant = await make_merchant(db, clock)
    await WebhookService(db, clock).create_endpoint(merchant, receiver.url, None, actor="test")
    stop = asyncio.Event()
    async with WebhookDispatcher(db, clock, SETTINGS, poll_s=30, idle_poll_s=30) as d:
        task = asyncio.create_task(d.run(stop))
        try:
            await asyncio.sleep(0.2)  # its first round found nothing: it sleeps
            [event_id] = await emit(db, clock, merchant)
            for _ in range(300):
                if receiver.accepted:
                    break
                await asyncio.sleep(0.01)
            assert [h.headers["webhook-id"] for h in receiver.accepted] == [event_id]
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)


async def test_given_a_receiver_that_never_answers_then_retries_span_24h_then_fail(
    db: Database, clock: FakeClock, receiver: Receiver, dispatcher: WebhookDispatcher
) -> None:
    svc, merchant, _, _ = await merchant_hooked(db, clock, receiver.url)
    receiver.status = 500
    start = clock.now()
    await emit(db, clock, merchant)
    tries = 0
    while await jump_to_next_due(db, clock):
        tries += await dispatcher.run_once()
    [row] = await rows(db)
    assert row.status == DeliveryStatus.failed.value
    assert row.attempts == tries == len(backoff.schedule(SETTINGS.retry_hours))
    assert row.last_status_code == 500
    assert row.last_error == "HTTP 500"
    assert clock.now() - start >= timedelta(hours=24)
    assert len(receiver.hits) == tries
    # 26 h of failure is not yet 72 h: the endpoint stays enabled
    [ep] = await svc.list_endpoints(merchant)
    assert ep.status == EndpointStatus.enabled.value


async def test_given_72h_of_failure_then_the_endpoint_is_disabled_and_enabling_delivers(
    db: Database, clock: FakeClock, receiver: Receiver, dispatcher: WebhookDispatcher
) -> None:
    svc, merchant, ep, _ = await merchant_hooked(db, clock, receiver.url)
    receiver.status = 503
    start = clock.now()
    events: list[str] = []
    for at_hours in (0, 30, 60, 73):
        clock.advance(start + timedelta(hours=at_hours) - clock.now())
        events += await emit(db, clock, merchant)
        await dispatcher.run_once()
        ep = await svc.get_endpoint(merchant, ep.id)
        expected = EndpointStatus.disabled if at_hours >= 72 else EndpointStatus.enabled
        assert ep.status == expected.value, at_hours
        if at_hours < 72:  # let this event's retries run out while time passes
            while await jump_to_next_due(db, clock):
                if clock.now() - start >= timedelta(hours=72):
                    break
                await dispatcher.run_once()
    assert ep.disabled_at == clock.now()

    # disabled: its deliveries wait, and new events get no delivery
    clock.advance(timedelta(days=2))
    assert await dispatcher.run_once() == 0
    late = await emit(db, clock, merchant)
    assert len(await svc.deliveries(merchant, late[0])) == 0

    # the way back: enable it, everything that waited is delivered once
    receiver.status = 200
    ep = await svc.update_endpoint(merchant, ep.id, enabled=True, actor="console:usr_1")
    assert ep.status == EndpointStatus.enabled.value
    assert ep.disabled_at is None
    assert await dispatcher.run_once() == 4
    accepted = Counter(h.headers["webhook-id"] for h in receiver.accepted)
    assert set(accepted) == set(events)
    assert set(accepted.values()) == {1}
    # the late event, emitted while disabled, is sent by a manual redelivery
    assert await svc.redeliver(merchant, late[0], actor="console:usr_1") == 1
    assert await dispatcher.run_once() == 1
    assert receiver.accepted[-1].headers["webhook-id"] == late[0]


async def test_given_a_dispatcher_died_mid_send_then_the_delivery_is_sent_again(
    db: Database, clock: FakeClock, receiver: Receiver, dispatcher: WebhookDispatcher
) -> None:
    merchant = (await merchant_hooked(db, clock, receiver.url)).merchant
    [event_id] = await emit(db, clock, merchant)
    claimed = await dispatcher._claim()  # claimed, then the process "dies"
    assert [j.event_id for j in claimed] == [event_id]
    assert await dispatcher.run_once() == 0  # leased to the dead process
    clock.advance(timedelta(seconds=SETTINGS.timeout_s + 31))
    assert await dispatcher.run_once() == 1
    assert [h.headers["webhook-id"] for h in receiver.accepted] == [event_id]
    [row] = await rows(db)
    assert row.status == DeliveryStatus.sent.value


async def test_given_private_targets_are_not_allowed_then_nothing_reaches_them(
    db: Database, receiver: Receiver
) -> None:
    """A merchant's URL must not reach the operator's own network (SSRF): loopback by
    IP and by name, private and link-local addresses are refused at connect time."""
    clock = FakeClock(datetime.now(UTC))
    merchant = await make_merchant(db, clock)
    svc = WebhookService(db, clock)
    port = receiver.port
    for url in (receiver.url, f"http://localhost:{port}/hook", "http://169.254.169.254/x",
                "http://10.1.2.3/x", "http://[::1]:9/x"):  # fmt: skip
        await svc.create_endpoint(merchant, url, [], actor="test")
    await emit(db, clock, merchant)
    strict = WebhookSettings(timeout_s=2, allow_private_targets=False)
    async with WebhookDispatcher(db, clock, strict) as d:
        assert await d.run_once() == 5
    assert receiver.hits == []
    for row in await rows(db):
        assert row.status == DeliveryStatus.retrying.value
        assert "public address" in (row.last_error or "")
