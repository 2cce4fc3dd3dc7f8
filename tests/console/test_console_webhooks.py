"""Console pages for webhooks: secrets shown once, bad URLs refused, rotation, disable /
enable / delete, events with their deliveries and redelivery."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ivr.audit import audit
from ivr.store.tables import (
    AuditLog,
    WebhookDelivery,
    WebhookEndpoint,
)
from tests.console.config_support import (
    HOOK,
    make_endpoint,
    make_event,
    operator,
    shown_secret,
)
from tests.console.conftest import Console, post

pytestmark = pytest.mark.anyio


# ------------------------------------------------------------------ webhooks


async def test_a_new_endpoints_secret_is_shown_once(console: Console) -> None:
    a, c = await console.tenant("행복치과")
    endpoint_id, secret = await make_endpoint(c)
    assert secret.startswith("whsec_")
    async with console.api.db.sessions() as s:
        row = await s.get(WebhookEndpoint, endpoint_id)
        assert row is not None
        assert row.merchant_id == a.merchant_id
        assert row.secret.split(" ")[0] == secret  # the key the dispatcher signs with
        made = await s.scalar(select(AuditLog).where(AuditLog.action == "webhook_endpoint.create"))
        assert made is not None
        assert made.actor.startswith("console:")
    for again in (f"/console/webhooks/endpoints/{endpoint_id}", "/console/webhooks"):
        r = await c.get(again)
        assert r.status_code == 200
        assert endpoint_id in r.text
        assert secret not in r.text
        assert 'class="secret"' not in r.text
    # the API lists it too (the same service)
    listed = (await a.client.get("/v1/webhook-endpoints")).json()
    assert [e["id"] for e in listed] == [endpoint_id]


async def test_a_bad_endpoint_url_is_refused_on_the_page(console: Console) -> None:
    _, c = await console.tenant("행복치과")
    r = await post(c, "/console/webhooks", "/console/webhooks/endpoints",
                   {"url": "ftp://nowhere", "event_types": "payment.succeeded"})  # fmt: skip
    assert r.status_code == 422
    assert 'data-testid="error"' in r.text
    assert "ftp://nowhere" in r.text
    r = await post(c, "/console/webhooks", "/console/webhooks/endpoints",
                   {"url": HOOK, "event_types": "no.such.type"})  # fmt: skip
    assert r.status_code == 422
    async with console.api.db.sessions() as s:
        assert list(await s.scalars(select(WebhookEndpoint))) == []


async def test_an_operator_picks_the_merchant_of_a_new_endpoint(console: Console) -> None:
    a, _ = await console.tenant("행복치과")
    op = await operator(console)
    r = await post(op, "/console/webhooks", "/console/webhooks/endpoints", {"url": HOOK})
    assert r.status_code == 422  # no merchant chosen
    endpoint_id, _ = await make_endpoint(op, merchant_id=a.merchant_id)
    async with console.api.db.sessions() as s:
        row = await s.get(WebhookEndpoint, endpoint_id)
        assert row is not None
        assert row.merchant_id == a.merchant_id
    listing = await op.get("/console/webhooks")
    assert "행복치과" in listing.text  # the merchant column


async def test_rotating_shows_the_new_secret_once_and_keeps_the_old_one_valid(
    console: Console,
) -> None:
    _, c = await console.tenant("행복치과")
    endpoint_id, old = await make_endpoint(c)
    path = f"/console/webhooks/endpoints/{endpoint_id}"
    r = await post(c, path, path + "/rotate", {})
    assert r.status_code == 200
    new = shown_secret(r.text)
    assert new != old
    assert new.startswith("whsec_")
    async with console.api.db.sessions() as s:
        row = await s.get(WebhookEndpoint, endpoint_id)
        assert row is not None
        packed = row.secret.split(" ")
        assert packed[0] == new
        assert packed[1].startswith(old + "@")
    again = await c.get(path)
    assert new not in again.text
    assert old not in again.text


async def test_disable_shows_why_enable_reschedules_and_delete(console: Console) -> None:
    a, c = await console.tenant("행복치과")
    endpoint_id, _ = await make_endpoint(c)
    path = f"/console/webhooks/endpoints/{endpoint_id}"
    assert (await post(c, path, path + "/disable", {})).status_code == 303
    r = await c.get(path)
    assert 'data-testid="endpoint-status">중지' in r.text
    assert "console:" in r.text  # disabled by whom
    # the dispatcher's automatic disable after persistent failure says so
    assert (await post(c, path, path + "/enable", {})).status_code == 303
    event_id = await make_event(console, a.merchant_id)
    async with console.api.db.transaction() as s:
        d = await s.scalar(select(WebhookDelivery).where(WebhookDelivery.event_id == event_id))
        assert d is not None
        d.status, d.attempts, d.last_status_code = "failed", 9, 503
        ep = await s.get(WebhookEndpoint, endpoint_id)
        assert ep is not None
        ep.status, ep.disabled_at = "disabled", console.api.clock.now()
        audit(s, console.api.clock, actor="system", action="webhook_endpoint.disable",
              object_type="webhook_endpoint", object_id=ep.id, merchant_id=ep.merchant_id,
              details={"reason": "failing", "hours": 72})  # fmt: skip
    c.cookies.set("arspay_lang", "en")
    r = await c.get(path)
    assert "deliveries kept failing for 72 h" in r.text
    assert 'data-testid="enable"' in r.text
    assert (await post(c, path, path + "/enable", {})).status_code == 303
    async with console.api.db.sessions() as s:
        ep = await s.get(WebhookEndpoint, endpoint_id)
        d = await s.scalar(select(WebhookDelivery).where(WebhookDelivery.event_id == event_id))
        assert ep is not None
        assert ep.status == "enabled"
        assert ep.disabled_at is None
        assert d is not None
        assert d.status == "pending"
        assert d.attempts == 0
    r = await post(c, path, path + "/delete", {})
    assert r.status_code == 303
    assert r.headers["location"] == "/console/webhooks"
    assert (await c.get(path)).status_code == 404


async def test_events_show_their_deliveries_and_can_be_redelivered(console: Console) -> None:
    a, c = await console.tenant("행복치과")
    endpoint_id, _ = await make_endpoint(c)
    event_id = await make_event(console, a.merchant_id)
    async with console.api.db.transaction() as s:
        d = await s.scalar(select(WebhookDelivery).where(WebhookDelivery.event_id == event_id))
        assert d is not None
        d.status, d.attempts, d.last_status_code, d.next_attempt_at = "failed", 7, 502, None
    c.cookies.set("arspay_lang", "en")
    r = await c.get("/console/webhooks")
    assert event_id in r.text
    assert "payment.succeeded" in r.text
    row = r.text[r.text.index(f'data-id="{event_id}"') :]
    assert 'data-testid="delivery-status">failed' in row
    assert 'data-testid="attempts">7<' in row
    assert "502" in row
    r = await post(c, "/console/webhooks", f"/console/webhooks/events/{event_id}/redeliver", {})
    assert r.status_code == 303
    assert r.headers["location"] == "/console/webhooks?queued=1"
    assert "1 deliveries queued again" in (await c.get(r.headers["location"])).text
    async with console.api.db.sessions() as s:
        d = await s.scalar(select(WebhookDelivery).where(WebhookDelivery.event_id == event_id))
        assert d is not None
        assert d.status == "pending"
        assert d.attempts == 0
        assert d.next_attempt_at is not None
        done = await s.scalar(select(AuditLog).where(AuditLog.action == "webhook_event.redeliver"))
        assert done is not None
        assert done.actor.startswith("console:")
    fragment = await c.get("/console/webhooks/events")
    assert 'data-testid="delivery-status">pending' in fragment.text
    # to one endpoint, from its page
    path = f"/console/webhooks/endpoints/{endpoint_id}"
    r = await post(c, path, f"/console/webhooks/events/{event_id}/redeliver",
                   {"endpoint_id": endpoint_id})  # fmt: skip
    assert r.status_code == 303
