"""The HTTP provider adapter against a loopback aiohttp server, through the
dispatcher: accepted, 500 -> retried after backoff -> failed after max_attempts with
``last_error`` visible and free of the body; 4xx fails at once; callbacks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web

from ivr.domain.states import CallRequestStatus, DeliveryStatus
from ivr.notify.sms import build_sender
from ivr.notify.sms.dispatch import SmsDispatcher
from ivr.notify.sms.http import HttpSender, receipt_from_callback
from tests.notify.conftest import MOBILE, MakeWorld, World

pytestmark = pytest.mark.anyio
KEY = "test-key-123"


@dataclass
class Provider:
    url: str = ""
    status: int = 200
    seen: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    p = Provider()

    async def handle(request: web.Request) -> web.Response:
        p.seen.append(await request.json())
        p.headers.append(dict(request.headers))
        if p.status != 200:
            return web.json_response({"error": "boom"}, status=p.status)
        return web.json_response({"id": f"P{len(p.seen)}"})

    app = web.Application()
    app.router.add_post("/sms", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    p.url = f"http://127.0.0.1:{port}/sms"
    try:
        yield p
    finally:
        await runner.cleanup()


async def setup(make_world: MakeWorld, provider: Provider) -> tuple[World, SmsDispatcher]:
    world = await make_world(
        adapter="http", http_url=provider.url, http_api_key=KEY, max_attempts="3", timeout_s="5"
    )
    d, _ = world.dispatcher(HttpSender)
    return world, d


async def test_given_2xx_with_id_then_sent_with_provider_ref(
    make_world: MakeWorld, provider: Provider
) -> None:
    world, d = await setup(make_world, provider)
    req, sms = await world.payment_request()
    try:
        assert await d.run_once() == 1
    finally:
        await d.sender.close()
    row = await world.sms(sms.id)
    assert (row.status, row.provider_ref, row.attempts) == (DeliveryStatus.sent.value, "P1", 1)
    assert (await world.request(req.id)).status == CallRequestStatus.sms_sent.value
    assert provider.seen == [
        {"to": MOBILE, "from": "15880000", "text": sms.body, "ref": sms.id, "type": "LMS"}
    ]
    assert provider.headers[0]["Authorization"] == f"Bearer {KEY}"
    assert provider.headers[0]["Idempotency-Key"] == sms.id

    receipt = receipt_from_callback({"id": "P1", "status": "delivered"})
    assert receipt is not None
    assert await d.record_receipt(receipt)
    row = await world.sms(sms.id)
    assert row.status == DeliveryStatus.delivered.value
    assert row.delivered_at is not None


async def test_given_500_then_retried_after_backoff_then_failed_after_max_attempts(
    make_world: MakeWorld, provider: Provider
) -> None:
    world, d = await setup(make_world, provider)
    req, sms = await world.payment_request()
    provider.status = 500
    try:
        assert await d.run_once() == 1
        row = await world.sms(sms.id)
        assert (row.status, row.attempts) == (DeliveryStatus.retrying.value, 1)
        assert row.last_error == "http: status 500"

        assert await d.run_once() == 0  # not due before the backoff
        world.clock.advance(timedelta(seconds=29))
        assert await d.run_once() == 0
        world.clock.advance(timedelta(seconds=1))
        assert await d.run_once() == 1  # 30 s after the first try
        assert (await world.sms(sms.id)).attempts == 2

        world.clock.advance(timedelta(seconds=59))
        assert await d.run_once() == 0
        world.clock.advance(timedelta(seconds=1))
        assert await d.run_once() == 1  # 60 s later: the third and last attempt
    finally:
        await d.sender.close()
    row = await world.sms(sms.id)
    assert (row.status, row.attempts) == (DeliveryStatus.failed.value, 3)
    assert row.last_error == "http: status 500"
    assert sms.body not in row.last_error
    assert "원" not in row.last_error
    assert len(provider.seen) == 3
    # the request still waits (it will expire); the failure is on the message
    assert (await world.request(req.id)).status == CallRequestStatus.created.value
    world.clock.advance(timedelta(hours=5))
    assert await d.run_once() == 0


async def test_given_500_then_recovering_provider_sends_on_retry(
    make_world: MakeWorld, provider: Provider
) -> None:
    world, d = await setup(make_world, provider)
    _, sms = await world.payment_request()
    provider.status = 503
    try:
        await d.run_once()
        provider.status = 200
        world.clock.advance(timedelta(seconds=30))
        assert await d.run_once() == 1
    finally:
        await d.sender.close()
    row = await world.sms(sms.id)
    assert (row.status, row.attempts, row.last_error) == (DeliveryStatus.sent.value, 2, None)


async def test_given_400_then_failed_at_once(make_world: MakeWorld, provider: Provider) -> None:
    world, d = await setup(make_world, provider)
    _, sms = await world.payment_request()
    provider.status = 400
    try:
        await d.run_once()
    finally:
        await d.sender.close()
    row = await world.sms(sms.id)
    assert (row.status, row.attempts, row.last_error) == (
        DeliveryStatus.failed.value, 1, "http: status 400",
    )  # fmt: skip


async def test_given_no_server_then_connection_error_is_retried(make_world: MakeWorld) -> None:
    world = await make_world(adapter="http", http_url="http://127.0.0.1:9/sms", timeout_s="2")
    sender = build_sender(world.settings.sms)
    d = SmsDispatcher(world.db, world.clock, sender, world.settings.sms, world.services.requests)
    _, sms = await world.payment_request()
    try:
        await d.run_once()
    finally:
        await sender.close()
    row = await world.sms(sms.id)
    assert row.status == DeliveryStatus.retrying.value
    assert row.last_error is not None
    assert row.last_error.startswith("http: Client")


def test_callback_payloads() -> None:
    assert receipt_from_callback({"id": 7, "status": "failed", "error": "E12"}) == (
        receipt_from_callback({"id": "7", "status": "failed", "error": "E12"})
    )
    assert receipt_from_callback({"id": "7", "status": "queued"}) is None
    assert receipt_from_callback([1]) is None
