"""Console settings: API keys shown once and revoked, an operator's view of a merchant's
keys, the call policy form, merchants suspended and activated, the health box."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ivr.console.pages.settings import health, reachable
from ivr.merchants.policy import MerchantPolicy
from ivr.store.tables import (
    ApiKey,
    AuditLog,
)
from tests.console.config_support import (
    KEY_SHOWN,
    operator,
    policy_form,
    stored_policy,
)
from tests.console.conftest import Console, post

pytestmark = pytest.mark.anyio


# ------------------------------------------------------------------ settings


async def test_an_api_key_is_shown_once_works_and_stops_when_revoked(console: Console) -> None:
    a, c = await console.tenant("행복치과")
    r = await post(c, "/console/settings", "/console/settings/api-keys", {"name": "ERP 연동"})
    assert r.status_code == 200
    found = KEY_SHOWN.search(r.text)
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
    assert KEY_SHOWN.search(r.text)
    async with console.api.db.sessions() as s:
        row = await s.scalar(select(ApiKey).where(ApiKey.name == "ops"))
        assert row is not None
        assert row.merchant_id == a.merchant_id


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
