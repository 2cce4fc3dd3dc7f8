"""The dispatcher with the outbox adapter and fakes: claims, adapter filter, ended
requests, crash recovery, early receipts, run() until stopped; the factory."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from ivr.domain.states import CallRequestStatus, DeliveryStatus
from ivr.errors import ConfigError
from ivr.jobs.pacing import Pacer
from ivr.notify.sms import Receipt, SendResult, build_sender
from ivr.notify.sms.backoff import Backoff
from ivr.notify.sms.dispatch import SmsDispatcher
from ivr.notify.sms.http import HttpSender
from ivr.notify.sms.outbox import OutboxSender
from ivr.notify.sms.smpp import SmppSender
from ivr.settings import SmsSettings
from ivr.store.tables import SmsMessage
from tests.notify.conftest import MakeWorld, World

pytestmark = pytest.mark.anyio


def outbox_dispatcher(world: World) -> tuple[SmsDispatcher, OutboxSender]:
    return world.dispatcher(OutboxSender)


async def test_given_outbox_adapter_then_message_kept_sent_and_request_sms_sent(
    make_world: MakeWorld,
) -> None:
    world = await make_world()  # default adapter: outbox
    req, sms = await world.payment_request()
    d, sender = outbox_dispatcher(world)
    assert await d.run_once() == 1
    assert await d.run_once() == 0
    row = await world.sms(sms.id)
    assert (row.status, row.provider_ref, row.adapter) == ("sent", "outbox", "outbox")
    assert row.sent_at == world.clock.now()
    assert sender.kept == [sms.id]
    assert (await world.request(req.id)).status == CallRequestStatus.sms_sent.value


async def test_messages_of_another_adapter_are_left_alone(make_world: MakeWorld) -> None:
    world = await make_world()
    _, sms = await world.payment_request()
    other = SmsSettings(adapter="http", http_url="http://127.0.0.1:9/")
    d = SmsDispatcher(world.db, world.clock, OutboxSender(), other, world.services.requests)
    assert await d.run_once() == 0
    assert (await world.sms(sms.id)).status == DeliveryStatus.pending.value


async def test_given_request_cancelled_before_sending_then_message_failed_unsent(
    make_world: MakeWorld,
) -> None:
    world = await make_world()
    req, sms = await world.payment_request()
    await world.services.requests.transition(req.id, CallRequestStatus.cancelled, actor="test")
    d, sender = outbox_dispatcher(world)
    await d.run_once()
    row = await world.sms(sms.id)
    assert (row.status, row.last_error) == ("failed", "call request already cancelled")
    assert sender.kept == []


async def test_given_message_left_sending_by_a_crash_then_recover_retries_it(
    make_world: MakeWorld,
) -> None:
    world = await make_world()
    _, sms = await world.payment_request()
    async with world.db.transaction() as s:
        row = await s.get(SmsMessage, sms.id)
        assert row is not None
        row.status = DeliveryStatus.sending.value
    d, _ = outbox_dispatcher(world)
    assert await d.recover() == 1
    row = await world.sms(sms.id)
    assert (row.status, row.attempts) == ("retrying", 1)
    assert row.last_error == "interrupted while sending"
    world.clock.advance(30)
    assert await d.run_once() == 1
    assert (await world.sms(sms.id)).status == "sent"


class RefSender:
    """Sends nothing; answers with a fixed provider ref."""

    async def send(self, to: str, sender: str, body: str, *, ref: str) -> SendResult:
        return SendResult(provider_ref="A1,A2", parts=2)

    async def close(self) -> None:
        return None


async def test_receipt_heard_before_the_send_is_recorded_waits_then_matches(
    make_world: MakeWorld,
) -> None:
    world = await make_world()
    _, sms = await world.payment_request()
    d = SmsDispatcher(
        world.db, world.clock, RefSender(), world.settings.sms, world.services.requests
    )
    d.receive(Receipt(provider_ref="A2", delivered=True, state="DELIVRD"))
    assert await d.match_receipts() == 0  # no message has ref A2 yet: kept
    assert await d.run_once() == 1  # sends, then matches the kept receipt
    row = await world.sms(sms.id)
    assert row.status == "delivered"
    # a second part's receipt and an unknown one change nothing
    assert await d.record_receipt(Receipt(provider_ref="A1", delivered=False, state="UNDELIV"))
    assert not await d.record_receipt(Receipt(provider_ref="A", delivered=True, state="DELIVRD"))
    assert (await world.sms(sms.id)).status == "delivered"


async def test_unmatched_receipts_are_dropped_after_the_wait(make_world: MakeWorld) -> None:
    world = await make_world()
    d, _ = outbox_dispatcher(world)
    d.receive(Receipt(provider_ref="nope", delivered=True, state="DELIVRD"))
    await d.match_receipts()
    world.clock.advance(timedelta(minutes=11))
    await d.match_receipts()
    assert not d._receipts


async def test_run_sends_until_stopped(make_world: MakeWorld) -> None:
    world = await make_world()
    _, sms = await world.payment_request()
    d, _ = outbox_dispatcher(world)
    d.pacer = Pacer(0.01, 0.01)
    stop = asyncio.Event()
    task = asyncio.create_task(d.run(stop))
    for _ in range(200):
        if (await world.sms(sms.id)).status == "sent":
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert (await world.sms(sms.id)).status == "sent"


async def test_an_idle_dispatcher_sends_a_new_message_at_once_not_at_its_next_poll(
    make_world: MakeWorld,
) -> None:
    """The commit that queued the message wakes it (Database.on_commit); its poll is
    30 s away."""
    world = await make_world()
    sender = build_sender(world.settings.sms)
    d = SmsDispatcher(
        world.db, world.clock, sender, world.settings.sms, world.services.requests,
        poll_s=30, idle_poll_s=30,
    )  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(d.run(stop))
    try:
        await asyncio.sleep(0.2)  # its first round found nothing: it sleeps
        assert d.pacer.wakes == 0
        _, sms = await world.payment_request()
        for _ in range(300):
            if (await world.sms(sms.id)).status == "sent":
                break
            await asyncio.sleep(0.01)
        assert (await world.sms(sms.id)).status == "sent"
        assert d.pacer.wakes >= 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


def test_backoff_doubles_and_caps() -> None:
    b = Backoff(base_s=30, cap_s=100)
    assert [b.delay(k).total_seconds() for k in (1, 2, 3, 4)] == [30, 60, 100, 100]
    t0 = __import__("datetime").datetime(2026, 1, 1)
    assert b.next_attempt_at(t0, 0) == t0
    assert b.next_attempt_at(t0, 2) == t0 + timedelta(seconds=90)


def test_build_sender_picks_the_adapter() -> None:
    assert isinstance(build_sender(SmsSettings()), OutboxSender)
    assert isinstance(build_sender(SmsSettings(adapter="smpp")), SmppSender)
    assert isinstance(build_sender(SmsSettings(adapter="http", http_url="http://x/")), HttpSender)
    with pytest.raises(ConfigError):
        build_sender(SmsSettings(adapter="http"))


async def test_a_body_over_255_parts_fails_at_once(make_world: MakeWorld) -> None:
    world = await make_world()
    _, sms = await world.payment_request()
    async with world.db.transaction() as s:
        row = await s.get(SmsMessage, sms.id)
        assert row is not None
        row.body = "가" * (67 * 256)
    smpp = SmppSender(SmsSettings(adapter="outbox", smpp_port=9, timeout_s=1))
    d = SmsDispatcher(world.db, world.clock, smpp, world.settings.sms, world.services.requests)
    try:
        await d.run_once()
    finally:
        await smpp.close()
    row = await world.sms(sms.id)
    assert row.status == "failed"
    assert row.last_error == "SMS needs 256 parts; at most 255 are possible"
