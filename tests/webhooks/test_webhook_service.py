"""The merchant-facing service: scoping (another merchant's objects are NotFound),
subscriptions, secret rotation, manual redelivery, paging, and ``emit_in`` refusing
card-like digits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import standardwebhooks
from sqlalchemy import func, select

from ivr.clock import FakeClock
from ivr.domain.states import DeliveryStatus
from ivr.errors import Conflict, InvalidInput, NotFound
from ivr.settings import WebhookSettings
from ivr.store.db import Database
from ivr.store.tables import WebhookEvent
from ivr.webhooks.delivery import WebhookDispatcher
from ivr.webhooks.events import EVENT_TYPES, emit_in
from ivr.webhooks.service import WebhookService
from tests.webhooks.conftest import Receiver, make_merchant, merchant_hooked

pytestmark = pytest.mark.anyio
SETTINGS = WebhookSettings(timeout_s=2, allow_private_targets=True)


async def test_given_two_merchants_then_neither_sees_the_others_objects(
    db: Database, clock: FakeClock
) -> None:
    a, b = await make_merchant(db, clock, "A"), await make_merchant(db, clock, "B")
    svc = WebhookService(db, clock)
    ep, _ = await svc.create_endpoint(a, "https://a.example/hook", None, actor="test")
    async with db.transaction() as s:
        event = await emit_in(s, clock, a, "registration.completed", {"card_id": "card_1"})
    assert [e.id for e in await svc.list_endpoints(a)] == [ep.id]
    assert await svc.list_endpoints(b) == []
    assert await svc.list_events(b, after=None, limit=10) == []
    for call in (
        svc.get_endpoint(b, ep.id),
        svc.update_endpoint(b, ep.id, url="https://b.example", actor="t"),
        svc.rotate_secret(b, ep.id, actor="t"),
        svc.delete_endpoint(b, ep.id, actor="t"),
        svc.get_event(b, event.id),
        svc.deliveries(b, event.id),
        svc.redeliver(b, event.id, actor="t"),
        svc.redeliver(a, event.id, endpoint_id="whe_nope", actor="t"),
    ):
        with pytest.raises(NotFound):
            await call
    assert (await svc.get_endpoint(a, ep.id)).url == "https://a.example/hook"


@pytest.mark.parametrize(
    "data",
    [
        {"card": "4111111111111111"},
        {"note": "card 4111-1111-1111-1111 used"},
        {"nested": {"x": ["4111 1111 1111 1111"]}},
        {"n": 4111111111111},
    ],
)
async def test_given_card_like_digits_when_emitting_then_refused_and_nothing_written(
    db: Database, clock: FakeClock, data: dict[str, object]
) -> None:
    merchant = await make_merchant(db, clock)
    with pytest.raises(InvalidInput):
        async with db.transaction() as s:
            await emit_in(s, clock, merchant, "payment.succeeded", data)
    async with db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(WebhookEvent)) == 0


async def test_given_ordinary_data_and_types_when_emitting_then_checked(
    db: Database, clock: FakeClock
) -> None:
    merchant = await make_merchant(db, clock)
    svc = WebhookService(db, clock)
    ok = {"mobile": "010-1234-5678", "amount": 1_530_000, "card": {"last4": "1111"}}
    async with db.transaction() as s:
        await emit_in(s, clock, merchant, "payment.succeeded", ok)
        with pytest.raises(InvalidInput):
            await emit_in(s, clock, merchant, "payment.exploded", ok)
    with pytest.raises(InvalidInput):
        await svc.create_endpoint(merchant, "https://x.example", ["nope"], actor="t")
    with pytest.raises(InvalidInput):
        await svc.create_endpoint(merchant, "ftp://x.example", None, actor="t")
    assert len(EVENT_TYPES) == 13


async def test_given_subscriptions_then_only_wanted_types_get_deliveries(
    db: Database, clock: FakeClock
) -> None:
    merchant = await make_merchant(db, clock)
    svc = WebhookService(db, clock)
    pay, _ = await svc.create_endpoint(
        merchant, "https://a.example", ["payment.succeeded"], actor="t"
    )
    every, _ = await svc.create_endpoint(merchant, "https://b.example", None, actor="t")
    async with db.transaction() as s:
        e1 = await emit_in(s, clock, merchant, "payment.succeeded", {})
        e2 = await emit_in(s, clock, merchant, "bulk_job.completed", {})
    assert {d.endpoint_id for d in await svc.deliveries(merchant, e1.id)} == {pay.id, every.id}
    assert {d.endpoint_id for d in await svc.deliveries(merchant, e2.id)} == {every.id}
    await svc.update_endpoint(merchant, pay.id, event_types=[], actor="t")
    async with db.transaction() as s:
        e3 = await emit_in(s, clock, merchant, "bulk_job.completed", {})
    assert len(await svc.deliveries(merchant, e3.id)) == 2
    await svc.delete_endpoint(merchant, every.id, actor="t")
    assert [e.id for e in await svc.list_endpoints(merchant)] == [pay.id]
    assert {d.endpoint_id for d in await svc.deliveries(merchant, e3.id)} == {pay.id}


async def test_given_many_events_then_the_cursor_pages_through_them(
    db: Database, clock: FakeClock
) -> None:
    merchant = await make_merchant(db, clock)
    svc = WebhookService(db, clock)
    async with db.transaction() as s:
        ids = [
            (await emit_in(s, clock, merchant, "call_request.expired", {"i": i})).id
            for i in range(7)
        ]
    seen: list[str] = []
    after = None
    while page := await svc.list_events(merchant, after=after, limit=3):
        seen += [e.id for e in page]
        after = page[-1].id
    assert seen == sorted(ids)
    with pytest.raises(InvalidInput):
        await svc.list_events(merchant, after=None, limit=0)


async def test_given_a_rotated_secret_then_deliveries_verify_with_old_and_new(
    db: Database, receiver: Receiver
) -> None:
    clock = FakeClock(datetime.now(UTC))
    svc, merchant, ep, old = await merchant_hooked(db, clock, receiver.url)
    new = await svc.rotate_secret(merchant, ep.id, actor="t")
    assert new != old
    assert new.startswith("whsec_")
    async with db.transaction() as s:
        await emit_in(s, clock, merchant, "payment.refunded", {"amount": 1000})
    async with WebhookDispatcher(db, clock, SETTINGS) as d:
        assert await d.run_once() == 1
    [hit] = receiver.hits
    assert len(hit.headers["webhook-signature"].split()) == 2
    standardwebhooks.Webhook(old).verify(hit.body, hit.headers)
    standardwebhooks.Webhook(new).verify(hit.body, hit.headers)


async def test_given_a_sent_event_when_redelivered_then_sent_again_with_the_same_id(
    db: Database, clock: FakeClock, receiver: Receiver
) -> None:
    svc, merchant, ep, _ = await merchant_hooked(db, clock, receiver.url)
    async with db.transaction() as s:
        event = await emit_in(s, clock, merchant, "schedule.charge_failed", {"sch": "sch_1"})
    async with WebhookDispatcher(db, clock, SETTINGS) as d:
        assert await d.run_once() == 1
        assert await svc.redeliver(merchant, event.id, endpoint_id=ep.id, actor="t") == 1
        [row] = await svc.deliveries(merchant, event.id)
        assert row.status == DeliveryStatus.pending.value
        assert row.attempts == 0
        assert await d.run_once() == 1
    assert [h.headers["webhook-id"] for h in receiver.hits] == [event.id, event.id]
    [row] = await svc.deliveries(merchant, event.id)
    assert row.status == DeliveryStatus.sent.value
    await svc.update_endpoint(merchant, ep.id, enabled=False, actor="t")
    with pytest.raises(Conflict):
        await svc.redeliver(merchant, event.id, endpoint_id=ep.id, actor="t")
    assert await svc.redeliver(merchant, event.id, actor="t") == 0


@pytest.mark.parametrize(
    "value",
    ["pi_01KX1234567890123ABCDEFGH", "ord_01M8J2T3CN1234567890123", "evt_0123456789012X"],
)
async def test_given_an_id_with_a_long_digit_run_when_emitting_then_it_goes_out(
    db: Database, clock: FakeClock, value: str
) -> None:
    """A ULID's random part can hold 13 digits in a row; that is an id, not a card (the
    100,000-row bulk bench once failed a whole batch on one)."""
    merchant = await make_merchant(db, clock)
    async with db.transaction() as s:
        event = await emit_in(s, clock, merchant, "payment.succeeded", {"payment_id": value})
    assert event.payload["data"]["payment_id"] == value
