"""Console pages for webhooks, consent evidence and settings: secrets shown once,
rotation, redelivery, the consent export and chain check, API keys, the call policy,
operator-only parts, merchant scoping, CSRF and both languages."""

from __future__ import annotations

import json
import re
import socket
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from ivr.audit import audit
from ivr.consent.ledger import ConsentInput, PlayedPrompt
from ivr.consent.records import record_hash
from ivr.console.pages.settings import health, reachable
from ivr.merchants.policy import MerchantPolicy
from ivr.store.tables import (
    ApiKey,
    AuditLog,
    ConsentRecord,
    Merchant,
    WebhookDelivery,
    WebhookEndpoint,
)
from ivr.webhooks.events import emit_in
from tests.api.conftest import Tenant
from tests.console.conftest import Console, post

pytestmark = pytest.mark.anyio

HOOK = "https://hooks.example.test/arspay"
_SECRET = re.compile(r'data-testid="new-secret">([^<]+)<')
_KEY = re.compile(r'data-testid="new-api-key">([^<]+)<')


def shown_secret(html: str) -> str:
    found = _SECRET.search(html)
    assert found, "no secret on the page"
    return found.group(1)


async def make_endpoint(c: httpx.AsyncClient, **extra: str) -> tuple[str, str]:
    """Create an endpoint through the console: (endpoint id, the secret shown)."""
    r = await post(c, "/console/webhooks", "/console/webhooks/endpoints", {"url": HOOK, **extra})
    assert r.status_code == 200, r.text
    found = re.search(r"/console/webhooks/endpoints/(whe_[0-9A-Z]+)/rotate", r.text)
    assert found
    return found.group(1), shown_secret(r.text)


async def make_event(console: Console, merchant_id: str) -> str:
    async with console.api.db.transaction() as s:
        event = await emit_in(s, console.api.clock, merchant_id, "payment.succeeded",
                              {"payment_id": "pay_1", "amount": 53_000})  # fmt: skip
    return event.id


async def make_consent(console: Console, t: Tenant, n: int = 2) -> tuple[str, list[str]]:
    """A payment request through the API and ``n`` consent records of its calls."""
    r = await t.client.post(
        "/v1/payment-requests",
        json={"customer_id": t.customer_id, "product_name": "치료비", "amount": 53_000},
    )
    assert r.status_code == 201, r.text
    request_id = r.json()["id"]
    ids = []
    for i in range(n):
        now = console.api.clock.now()
        row = await console.api.deps.consent.append(
            ConsentInput(
                t.merchant_id,
                request_id,
                "payment_confirmation",
                "05051110000",
                "01012345678",
                f"chan-{i}",
                now,
                now,
                (PlayedPrompt("pay.confirm", f"{i + 10:064x}", "pay-confirm-1"),),
                "1",
                {"amount": 53_000, "installments": 0},
            )
        )
        ids.append(row.id)
        console.api.clock.advance(timedelta(seconds=5))
    return request_id, ids


async def operator(console: Console) -> httpx.AsyncClient:
    await console.user("op@arspay.test")
    return await console.login("op@arspay.test")


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


# ------------------------------------------------------------------ consent


async def test_consent_records_list_page_and_export_equal_the_api_export(
    console: Console,
) -> None:
    a, ca = await console.tenant("행복치과")
    b, _cb = await console.tenant("튼튼정형외과")
    request_id, ids = await make_consent(console, a)
    _, b_ids = await make_consent(console, b, 1)
    listing = await ca.get("/console/consent")
    assert listing.status_code == 200
    assert all(i in listing.text for i in ids)
    assert b_ids[0] not in listing.text
    assert "010-****-5678" in listing.text
    assert "01012345678" not in listing.text
    filtered = await ca.get("/console/consent", params={"call_request_id": "creq_nothing"})
    assert ids[0] not in filtered.text
    page = await ca.get(f"/console/consent/{ids[1]}")
    assert page.status_code == 200
    assert "pay.confirm" in page.text
    assert f"{11:064x}" in page.text
    assert 'data-testid="key-pressed">1<' in page.text
    async with console.api.db.sessions() as s:
        rec = await s.scalar(select(ConsentRecord).where(ConsentRecord.id == ids[1]))
        assert rec is not None
    assert rec.hash in page.text
    assert rec.prev_hash in page.text
    assert 'data-testid="hash-valid">일치' in page.text
    assert rec.mac is not None
    assert rec.mac in page.text
    assert 'data-testid="mac-valid">일치' in page.text
    exported = await ca.get(f"/console/consent/{ids[1]}/export")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/json")
    assert "attachment" in exported.headers["content-disposition"]
    from_api = await a.client.get(f"/v1/call-requests/{request_id}/consent")
    assert from_api.status_code == 200
    assert json.loads(exported.text) == from_api.json()
    assert len(from_api.json()["records"]) == 2
    assert from_api.json()["records"][1]["mac"] == rec.mac
    assert from_api.json()["checkpoint"]["ledger"] == "consent"
    assert from_api.json()["attestation"]["records"][1]["mac"] == rec.mac
    async with console.api.db.sessions() as s:
        logged = await s.scalar(select(AuditLog).where(AuditLog.action == "consent.export"))
        assert logged is not None
        assert logged.object_id == request_id


async def test_operators_verify_the_chain_and_see_where_it_broke(console: Console) -> None:
    a, ca = await console.tenant("행복치과")
    _, ids = await make_consent(console, a, 3)
    op = await operator(console)
    op.cookies.set("arspay_lang", "en")
    r = await post(op, "/console/consent", "/console/consent/verify", {})
    assert r.status_code == 200
    assert 'data-ok="true"' in r.text
    assert "all 3 records link up" in r.text
    db = console.api.db
    async with db.transaction() as s:  # tamper underneath the triggers
        if db.is_postgres:
            await s.execute(text("ALTER TABLE consent_records DISABLE TRIGGER USER"))
        else:
            await s.execute(text("DROP TRIGGER consent_records_no_update"))
        await s.execute(text("UPDATE consent_records SET key_pressed = '3' WHERE seq = 2"))
    r = await post(op, "/console/consent", "/console/consent/verify", {})
    assert r.status_code == 200
    assert 'data-ok="false"' in r.text
    assert "Broken at seq 2 (hash does not match content)" in r.text
    assert f"/console/consent/{ids[1]}" in r.text  # a link to the record
    assert "<li>record 2: hash does not match content</li>" in r.text
    page = await op.get(f"/console/consent/{ids[1]}")
    assert 'data-testid="hash-valid">does not match' in page.text
    # the hash recomputed too (the review's attack): the keyed MAC gives it away
    async with db.transaction() as s:
        if db.is_postgres:
            await s.execute(text("ALTER TABLE consent_records DISABLE TRIGGER USER"))
        row = await s.get(ConsentRecord, 2)
        assert row is not None
        row.hash = record_hash(row)
        await s.flush()
        later = await s.get(ConsentRecord, 3)
        assert later is not None
        later.prev_hash = row.hash
        later.hash = record_hash(later)
        await s.flush()
        if db.is_postgres:
            await s.execute(text("ALTER TABLE consent_records ENABLE TRIGGER USER"))
    r = await post(op, "/console/consent", "/console/consent/verify", {})
    assert (
        "Broken at seq 2 (MAC does not match: rewritten, inserted, or sealed with another key)"
        in r.text
    )
    page = await op.get(f"/console/consent/{ids[1]}")
    assert 'data-testid="hash-valid">matches' in page.text
    assert 'data-testid="mac-valid">does not match' in page.text
    async with console.api.db.sessions() as s:
        checks = list(await s.scalars(select(AuditLog).where(AuditLog.action == "consent.verify")))
    assert [x.details["ok"] for x in checks] == [True, False, False]
    # merchant users neither see nor use the check (the chain spans every merchant)
    assert 'data-testid="verify-chain"' not in (await ca.get("/console/consent")).text
    assert (await post(ca, "/console/consent", "/console/consent/verify", {})).status_code == 403


# ------------------------------------------------------------------ settings


async def test_an_api_key_is_shown_once_works_and_stops_when_revoked(console: Console) -> None:
    a, c = await console.tenant("행복치과")
    r = await post(c, "/console/settings", "/console/settings/api-keys", {"name": "ERP 연동"})
    assert r.status_code == 200
    found = _KEY.search(r.text)
    assert found
    assert 'class="secret"' in r.text
    key = found.group(1)
    api = httpx.AsyncClient(transport=httpx.ASGITransport(app=console.api.app),
                            base_url="http://api.test",
                            headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    console.clients.append(api)
    assert (await api.get("/v1/customers")).status_code == 200
    page = await c.get("/console/settings")
    assert key not in page.text
    assert "ERP 연동" in page.text
    async with console.api.db.sessions() as s:
        row = await s.scalar(select(ApiKey).where(ApiKey.name == "ERP 연동"))
        assert row is not None
        assert row.merchant_id == a.merchant_id
    assert row.secret_sha256 not in page.text
    assert f"ak_{row.prefix}_…" in page.text
    r = await post(c, "/console/settings", f"/console/settings/api-keys/{row.id}/revoke", {})
    assert r.status_code == 303
    assert r.headers["location"] == "/console/settings"
    assert (await api.get("/v1/customers")).status_code == 401
    async with console.api.db.sessions() as s:
        row2 = await s.get(ApiKey, row.id)
        assert row2 is not None
        assert row2.status == "revoked"
        revoked = await s.scalar(select(AuditLog).where(AuditLog.action == "api_key.revoke"))
        assert revoked is not None
        assert revoked.actor.startswith("console:")
    r = await post(c, "/console/settings", "/console/settings/api-keys", {"name": "   "})
    assert r.status_code == 422
    assert 'data-testid="key-error"' in r.text


async def test_an_operator_manages_a_chosen_merchants_keys(console: Console) -> None:
    a, _ = await console.tenant("행복치과")
    op = await operator(console)
    page = await op.get("/console/settings")
    assert page.status_code == 200
    assert 'data-testid="merchant-picker"' in page.text
    assert 'data-testid="api-keys"' not in page.text  # nothing until a merchant is chosen
    r = await post(op, f"/console/settings?merchant={a.merchant_id}",
                   "/console/settings/api-keys",
                   {"name": "ops", "merchant_id": a.merchant_id})  # fmt: skip
    assert r.status_code == 200
    assert _KEY.search(r.text)
    async with console.api.db.sessions() as s:
        row = await s.scalar(select(ApiKey).where(ApiKey.name == "ops"))
        assert row is not None
        assert row.merchant_id == a.merchant_id


def policy_form(**changes: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "installments": "on", "max_installment_months": "6", "allow_save_card": "on",
        "senior_mode": "true", "readback": "", "agent_destination": "agents,100,1",
        "first_digit_timeout_s": "", "inter_digit_timeout_s": "7.5", "lease_minutes": "60",
        "verify_registered_card": "on", "verify_max_failures": "3", "verify_lock_hours": "",
        "if_issuer": ["신한카드", ""], "if_min_months": ["2", ""],
        "if_max_months": ["3", ""], "if_starts": ["2026-11-01", ""],
        "if_ends": ["2026-12-31", ""],
    }  # fmt: skip
    form.update(changes)
    return form


async def stored_policy(console: Console, merchant_id: str) -> dict[str, Any]:
    async with console.api.db.sessions() as s:
        m = await s.get(Merchant, merchant_id)
        assert m is not None
        return dict(m.settings)


async def test_the_call_policy_form_saves_and_refuses_bad_values(console: Console) -> None:
    a, c = await console.tenant("행복치과")
    page = await c.get("/console/settings")
    assert 'data-testid="policy-form"' in page.text
    assert 'data-testid="engine-lease">30분' in page.text
    assert "arspay.toml" in page.text
    r = await post(c, "/console/settings", "/console/settings/policy", policy_form())
    assert r.status_code == 303, r.text
    saved = await stored_policy(console, a.merchant_id)
    policy = MerchantPolicy.parse(saved)
    assert policy.max_installment_months == 6
    assert policy.senior_mode is True
    assert policy.readback is None
    assert policy.corporate_installments is False
    assert policy.agent_destination == "agents,100,1"
    assert policy.lease_minutes == 60
    assert policy.inter_digit_timeout_s == 7.5
    assert policy.first_digit_timeout_s is None
    assert (policy.verify_registered_card, policy.verify_max_failures) == (True, 3)
    assert policy.verify_lock_hours == 24  # empty: the default
    [promo] = policy.interest_free
    assert (promo.issuer, promo.min_months, promo.max_months) == ("신한카드", 2, 3)
    shown = await c.get(r.headers["location"])
    assert 'data-testid="flash"' in shown.text
    assert 'value="신한카드"' in shown.text
    bad_values: list[dict[str, Any]] = [
        {"max_installment_months": "99"},
        {"max_installment_months": "six"},
        {"agent_destination": "agents"},
        {"lease_minutes": "0"},
        {"if_min_months": ["6", ""], "if_max_months": ["3", ""]},
        {"if_issuer": ["", "국민카드"], "if_max_months": ["3", "1"]},
        {"senior_mode": "maybe"},
        {"verify_max_failures": "0"},
        {"verify_lock_hours": "1000"},
    ]
    for bad in bad_values:
        r = await post(c, "/console/settings", "/console/settings/policy", policy_form(**bad))
        assert r.status_code == 422, bad
        assert 'data-testid="policy-error"' in r.text
        assert await stored_policy(console, a.merchant_id) == saved, bad
    r = await post(c, "/console/settings", "/console/settings/policy",
                   policy_form(max_installment_months="99"))  # fmt: skip
    assert 'name="max_installment_months" inputmode="numeric" maxlength="4" value="99"' in r.text
    # an empty field goes back to the default
    r = await post(c, "/console/settings", "/console/settings/policy",
                   policy_form(lease_minutes="", senior_mode=""))  # fmt: skip
    assert r.status_code == 303
    policy = MerchantPolicy.parse(await stored_policy(console, a.merchant_id))
    assert policy.lease_minutes is None
    assert policy.senior_mode is None
    # the identity check is on by default and shown so; unticking turns it off
    assert (
        'name="verify_registered_card" value="on" checked'
        in (await c.get("/console/settings")).text
    )
    del_form = policy_form()
    del del_form["verify_registered_card"]
    r = await post(c, "/console/settings", "/console/settings/policy", del_form)
    assert r.status_code == 303
    assert (
        MerchantPolicy.parse(await stored_policy(console, a.merchant_id)).verify_registered_card
        is False
    )


async def test_operators_suspend_and_activate_merchants(console: Console) -> None:
    a, ca = await console.tenant("행복치과")
    op = await operator(console)
    page = await op.get("/console/settings")
    assert 'data-testid="merchants"' in page.text
    assert a.merchant_id in page.text
    path = f"/console/settings/merchants/{a.merchant_id}/status"
    r = await post(op, "/console/settings", path, {"status": "suspended"})
    assert r.status_code == 303
    assert (await a.client.get("/v1/customers")).status_code == 401  # suspended: no API
    assert (await post(op, "/console/settings", path, {"status": "paused"})).status_code == 422
    r = await post(op, "/console/settings", path, {"status": "active"})
    assert r.status_code == 303
    assert (await a.client.get("/v1/customers")).status_code == 200
    async with console.api.db.sessions() as s:
        by_console = AuditLog.object_id == a.merchant_id, AuditLog.actor.startswith("console:")
        actions = list(await s.scalars(select(AuditLog.action).where(*by_console)))
    assert actions == ["merchant.suspended", "merchant.active"]
    # a merchant user has no such part and no such routes
    mine = await ca.get("/console/settings")
    assert 'data-testid="merchants"' not in mine.text
    assert 'data-testid="health"' not in mine.text
    assert 'data-testid="merchant-picker"' not in mine.text
    assert (await post(ca, "/console/settings", path, {"status": "suspended"})).status_code == 403
    assert (await ca.get("/console/settings/health")).status_code == 403


async def test_the_health_box_reports_without_raising(console: Console) -> None:
    op = await operator(console)
    op.cookies.set("arspay_lang", "en")
    r = await op.get("/console/settings/health")
    assert r.status_code == 200
    db_line = r.text[r.text.index('data-check="settings.health_db"') :]
    assert db_line.split("</dd>")[0].count('data-testid="health-ok"') == 1
    pg_line = r.text[r.text.index('data-check="settings.health_pg"') :]
    assert 'data-testid="health-ok"' in pg_line.split("</dd>")[0]  # the sandbox PG runs
    assert 'data-check="settings.health_ari"' in r.text  # reachable or not, it is shown
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = console.api.settings
    down = settings.model_copy(update={
        "asterisk": settings.asterisk.model_copy(update={"ari_url": closed}),
        "gateway": settings.gateway.model_copy(update={"base_url": "http://[bad"}),
    })  # fmt: skip
    checks = await health(console.api.db, down)
    assert [(x.key, x.ok) for x in checks] == [
        ("settings.health_db", True), ("settings.health_pg", False),
        ("settings.health_ari", False),
    ]  # fmt: skip
    assert await reachable("not a url") is False


# ------------------------------------------------------------------ scoping, CSRF, languages


async def test_merchant_b_gets_404_on_merchant_a_objects(console: Console) -> None:
    a, ca = await console.tenant("행복치과")
    _, cb = await console.tenant("튼튼정형외과")
    endpoint_id, _ = await make_endpoint(ca)
    event_id = await make_event(console, a.merchant_id)
    _, consent_ids = await make_consent(console, a, 1)
    async with console.api.db.sessions() as s:
        key = await s.scalar(select(ApiKey).where(ApiKey.merchant_id == a.merchant_id))
        assert key is not None
    ep = f"/console/webhooks/endpoints/{endpoint_id}"
    reads = [
        ep,
        f"/console/consent/{consent_ids[0]}",
        f"/console/consent/{consent_ids[0]}/export",
        f"/console/settings?merchant={a.merchant_id}",
    ]
    for path in reads:
        assert (await ca.get(path)).status_code == 200, path
        assert (await cb.get(path)).status_code == 404, path
    writes: list[tuple[str, dict[str, str]]] = [
        (ep + "/rotate", {}),
        (ep + "/disable", {}),
        (ep + "/enable", {}),
        (ep + "/delete", {}),
        (f"/console/webhooks/events/{event_id}/redeliver", {}),
        (f"/console/settings/api-keys/{key.id}/revoke", {}),
        ("/console/settings/api-keys", {"name": "x", "merchant_id": a.merchant_id}),
        ("/console/settings/policy", {"merchant_id": a.merchant_id, **policy_form()}),
    ]
    before = await stored_policy(console, a.merchant_id)
    for path, data in writes:
        assert (await post(cb, "/console/settings", path, data)).status_code == 404, path
    assert await stored_policy(console, a.merchant_id) == before
    async with console.api.db.sessions() as s:
        row = await s.get(WebhookEndpoint, endpoint_id)
        assert row is not None
        assert row.status == "enabled"
        still = await s.get(ApiKey, key.id)
        assert still is not None
        assert still.status == "active"
        keys = list(await s.scalars(select(ApiKey).where(ApiKey.merchant_id == a.merchant_id)))
        assert len(keys) == 1
    for listing in ("/console/webhooks", "/console/consent", "/console/settings"):
        shown = (await cb.get(listing)).text
        assert endpoint_id not in shown
        assert event_id not in shown
        assert consent_ids[0] not in shown
        assert key.id not in shown


async def test_posts_without_the_csrf_token_are_refused(console: Console) -> None:
    a, c = await console.tenant("행복치과")
    op = await operator(console)
    endpoint_id, _ = await make_endpoint(c)
    event_id = await make_event(console, a.merchant_id)
    async with console.api.db.sessions() as s:
        key = await s.scalar(select(ApiKey).where(ApiKey.merchant_id == a.merchant_id))
        assert key is not None
    ep = f"/console/webhooks/endpoints/{endpoint_id}"
    merchant_posts: list[tuple[str, dict[str, Any]]] = [
        ("/console/webhooks/endpoints", {"url": HOOK}),
        (ep + "/rotate", {}),
        (ep + "/disable", {}),
        (ep + "/delete", {}),
        (f"/console/webhooks/events/{event_id}/redeliver", {}),
        ("/console/settings/api-keys", {"name": "x"}),
        (f"/console/settings/api-keys/{key.id}/revoke", {}),
        ("/console/settings/policy", policy_form()),
    ]
    operator_posts: list[tuple[str, dict[str, Any]]] = [
        ("/console/consent/verify", {}),
        (f"/console/settings/merchants/{a.merchant_id}/status", {"status": "suspended"}),
    ]
    for client, posts in ((c, merchant_posts), (op, operator_posts)):
        for path, data in posts:
            assert (await client.post(path, data=data)).status_code == 403, path
            forged = {**data, "csrf_token": "forged"}
            assert (await client.post(path, data=forged)).status_code == 403, path
    async with console.api.db.sessions() as s:
        assert len(list(await s.scalars(select(WebhookEndpoint)))) == 1
        row = await s.get(ApiKey, key.id)
        assert row is not None
        assert row.status == "active"
        m = await s.get(Merchant, a.merchant_id)
        assert m is not None
        assert m.status == "active"
        assert m.settings == {}


async def test_every_page_renders_in_korean_and_english(console: Console) -> None:
    a, c = await console.tenant("행복치과")
    op = await operator(console)
    endpoint_id, _ = await make_endpoint(c)
    await make_event(console, a.merchant_id)
    _, consent_ids = await make_consent(console, a, 1)
    pages = [
        "/console/webhooks",
        f"/console/webhooks/endpoints/{endpoint_id}",
        "/console/webhooks/events",
        "/console/consent",
        f"/console/consent/{consent_ids[0]}",
        "/console/settings",
    ]
    words = {
        "ko": ("웹훅", "동의 기록", "설정"),
        "en": ("Webhooks", "Consent evidence", "Settings"),
    }
    for client, extra in ((c, []), (op, [f"/console/settings?merchant={a.merchant_id}",
                                         "/console/settings/health"])):  # fmt: skip
        for lang in ("ko", "en"):
            if lang == "en":
                client.cookies.set("arspay_lang", "en")
            else:
                client.cookies.delete("arspay_lang")
            for path in pages + extra:
                r = await client.get(path)
                assert r.status_code == 200, (path, lang, r.text[-500:])
            assert words[lang][0] in (await client.get("/console/webhooks")).text
            assert words[lang][1] in (await client.get("/console/consent")).text
            assert words[lang][2] in (await client.get("/console/settings")).text
    op.cookies.set("arspay_lang", "en")
    r = await op.get(f"/console/settings?merchant={a.merchant_id}")
    assert "Interest-free promotions" in r.text
    assert "System health" in r.text
