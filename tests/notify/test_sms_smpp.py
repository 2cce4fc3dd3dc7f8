"""Acceptance (issue #7 item 3): a Korean SMS longer than one segment goes through the
SmsDispatcher and the SMPP adapter to a loopback SMSC, which joins the parts back
into exactly the original text; its delivery receipts mark the message delivered."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from ivr.domain.states import CallRequestStatus, DeliveryStatus
from ivr.notify.sms import SmsSendError, part_count
from ivr.notify.sms.dispatch import SmsDispatcher
from ivr.notify.sms.smpp import SmppSender
from tests.notify.conftest import MOBILE, MakeWorld, World
from tests.notify.loopback_smsc import LoopbackSmsc

pytestmark = pytest.mark.anyio


def dispatcher(world: World) -> tuple[SmsDispatcher, SmppSender]:
    return world.dispatcher(SmppSender)


async def until(check: Callable[[], Awaitable[bool]], limit_s: float = 10.0) -> None:
    for _ in range(int(limit_s / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def test_given_long_korean_payment_sms_when_dispatched_over_smpp_then_smsc_joins_it(
    make_world: MakeWorld,
) -> None:
    async with LoopbackSmsc() as smsc:
        smsc.receipts_gate.clear()
        world = await make_world(adapter="smpp", smpp_port=str(smsc.port), timeout_s="5")
        req, sms = await world.payment_request()
        assert part_count(sms.body) >= 2
        d, sender = dispatcher(world)
        try:
            assert await d.run_once() == 1
            row = await world.sms(sms.id)
            assert row.status == DeliveryStatus.sent.value
            assert row.attempts == 1
            assert row.last_error is None
            assert (await world.request(req.id)).status == CallRequestStatus.sms_sent.value

            assert smsc.texts() == [sms.body]
            parts = smsc.submitted
            assert len(parts) == part_count(sms.body)
            assert all(p.data_coding == 0x08 and p.esm_class & 0x40 for p in parts)
            assert all(p.registered_delivery == 1 for p in parts)
            assert {p.source for p in parts} == {"15880000"}  # sms.sender, as digits
            assert {p.destination for p in parts} == {MOBILE}
            assert row.provider_ref == ",".join(p.message_id for p in parts)

            smsc.receipts_gate.set()

            async def delivered() -> bool:
                await d.match_receipts()
                return (await world.sms(sms.id)).status == DeliveryStatus.delivered.value

            await until(delivered)
            row = await world.sms(sms.id)
            assert row.delivered_at is not None
        finally:
            await sender.close()


async def test_given_undelivered_receipt_then_message_failed_with_reason(
    make_world: MakeWorld,
) -> None:
    async with LoopbackSmsc(receipt_state="UNDELIV") as smsc:
        world = await make_world(adapter="smpp", smpp_port=str(smsc.port), timeout_s="5")
        _, sms = await world.payment_request()
        d, sender = dispatcher(world)
        try:
            await d.run_once()

            async def failed() -> bool:
                await d.match_receipts()
                return (await world.sms(sms.id)).status == DeliveryStatus.failed.value

            await until(failed)
            row = await world.sms(sms.id)
            assert row.last_error == "receipt UNDELIV err 000"
        finally:
            await sender.close()


async def test_given_smsc_refuses_submit_then_permanent_error_fails_at_once(
    make_world: MakeWorld,
) -> None:
    async with LoopbackSmsc() as smsc:
        smsc.reject_status = 0x0B  # ESME_RINVDSTADR
        world = await make_world(adapter="smpp", smpp_port=str(smsc.port), timeout_s="5")
        _, sms = await world.payment_request()
        d, sender = dispatcher(world)
        try:
            await d.run_once()
            row = await world.sms(sms.id)
            assert row.status == DeliveryStatus.failed.value
            assert row.last_error == "smpp: submit_sm refused, status 0x0000000b"
            assert sms.body not in (row.last_error or "")
        finally:
            await sender.close()


async def test_given_no_smsc_then_send_fails_fast_and_reconnects_later(
    make_world: MakeWorld,
) -> None:
    smsc = LoopbackSmsc()
    world = await make_world(adapter="smpp", smpp_port=str(smsc.port), timeout_s="2")
    sender = SmppSender(world.settings.sms, reconnect_s=0.1)
    try:
        with pytest.raises(SmsSendError, match="cannot bind"):
            await sender.send(MOBILE, "1588-0000", "hello", ref="sms_x")
        async with smsc:
            result = await sender.send(MOBILE, "1588-0000", "안녕하세요", ref="sms_y")
            assert result.parts == 1
            assert result.provider_ref == "M000001"
            assert smsc.texts() == ["안녕하세요"]
    finally:
        await sender.close()
