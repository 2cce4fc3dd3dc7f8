"""The console's PG accounts page (operators): accounts listed masked with their circuit
breakers, added and changed with write-only secrets, disabled and enabled; a merchant's
primary and secondary account on its settings page."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from ivr.web.app import create_app
from tests.console.config_support import operator
from tests.console.conftest import Console, post
from tests.stored import stored

pytestmark = pytest.mark.anyio

API_SECRET = "sk_live_CANARY_console_0123456789"
WEBHOOK_SECRET = "whsec_CANARY_console_9876543210"
LIST = "/console/pg-accounts"
BREAKER = re.compile(r'class="status ?([^"]*)" data-testid="breaker"')


def new_account(**changes: str) -> dict[str, str]:
    form = {
        "account_id": "ksnet-main", "kind": "portone", "name": "KSNET 본계약",
        "base_url": "", "api_key": "imp_1234567890", "api_secret": API_SECRET,
        "webhook_secret": WEBHOOK_SECRET, "pg": "ksnet", "channel_key": "channel-key-1",
        "store_id": "", "product_type": "", "buyer_email": "",
    }  # fmt: skip
    return {**form, **changes}


def no_secret(html: str) -> None:
    for canary in (API_SECRET, WEBHOOK_SECRET, API_SECRET[:-4], WEBHOOK_SECRET[:-4]):
        assert canary not in html


async def test_an_operator_adds_and_changes_an_account_secrets_write_only(
    console: Console,
) -> None:
    op = await operator(console)
    r = await post(op, LIST, LIST, new_account())
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"{LIST}/ksnet-main?saved=1"
    page = await op.get(r.headers["location"])
    assert page.status_code == 200
    no_secret(page.text)
    assert "••••6789" in page.text  # the API secret, masked
    assert 'data-testid="flash"' in page.text
    assert 'type="password" name="api_secret"' in page.text
    assert (
        re.search(r'name="(api_key|api_secret|webhook_secret)"[^>]*value="[^"]', page.text) is None
    )
    assert "imp_1234567890" not in page.text  # the API key is shown masked too
    listed = await op.get(LIST)
    no_secret(listed.text)
    assert "KSNET 본계약" in listed.text
    assert 'data-id="default"' in listed.text

    pg = console.api.runtime.services.pg_accounts
    edit = f"{LIST}/ksnet-main"
    form = new_account(name="KSNET", api_key="", api_secret="", webhook_secret="", pg="")
    r = await post(op, edit, edit, form)
    assert r.status_code == 303, r.text
    account = await pg.get("ksnet-main")
    assert (account.name, account.api_secret, account.webhook_secret) == (
        "KSNET", API_SECRET, WEBHOOK_SECRET,
    )  # fmt: skip
    assert "pg" not in account.options  # the options are the form's, as a whole
    assert account.api_key == "imp_1234567890"
    r = await post(op, edit, edit, new_account(api_secret="sk_live_rotated_secret_0000",
                                               api_key="imp_0000000001"))  # fmt: skip
    assert r.status_code == 303
    account = await pg.get("ksnet-main")
    assert (account.api_secret, account.api_key) == (
        "sk_live_rotated_secret_0000",
        "imp_0000000001",
    )
    assert await stored(console.api.db, [API_SECRET, WEBHOOK_SECRET]) == []


async def test_a_refused_form_comes_back_without_its_secrets(console: Console) -> None:
    op = await operator(console)
    r = await post(op, LIST, LIST, new_account(channel_key=""))  # portone needs one
    assert r.status_code == 422
    assert "channel_key" in r.text
    assert 'value="KSNET 본계약"' in r.text  # the texts typed are shown back
    assert "imp_1234567890" not in r.text  # but not the key and secrets
    no_secret(r.text)
    r = await post(op, LIST, LIST, new_account(name="4000 0566 5566 5556"))
    assert r.status_code == 422
    assert "4000 0566 5566 5556" not in r.text
    assert await console.api.runtime.services.pg_accounts.list() == [
        console.api.runtime.services.pg_accounts.default
    ]
    await post(op, LIST, LIST, new_account())
    r = await post(op, LIST, LIST, new_account())
    assert r.status_code == 409
    no_secret(r.text)


async def test_operators_only(console: Console) -> None:
    _, merchant = await console.tenant("행복치과")
    assert (await merchant.get(LIST)).status_code == 403
    assert (await merchant.get(f"{LIST}/default")).status_code == 403
    shown = await merchant.get("/console/settings")
    token = re.search(r'name="csrf_token" value="([^"]+)"', shown.text)
    assert token
    r = await merchant.post(LIST, data={**new_account(), "csrf_token": token.group(1)})
    assert r.status_code == 403
    assert "/console/pg-accounts" not in shown.text  # not in a merchant user's menu
    op = await operator(console)
    r = await op.post(LIST, data=new_account())  # no CSRF token
    assert r.status_code == 403
    assert len(await console.api.runtime.services.pg_accounts.list()) == 1


async def test_default_is_shown_not_changed(console: Console) -> None:
    op = await operator(console)
    page = await op.get(f"{LIST}/default")
    assert page.status_code == 200
    assert 'data-testid="from-settings"' in page.text
    assert 'data-testid="pg-account-edit"' not in page.text
    r = await post(op, f"{LIST}/default", f"{LIST}/default/status", {"status": "disabled"})
    assert r.status_code == 409


async def test_routes_on_the_settings_page_and_disabling(console: Console) -> None:
    a, merchant = await console.tenant("행복치과")
    b, _ = await console.tenant("푸른학원")
    op = await operator(console)
    await post(op, LIST, LIST, new_account())
    settings = f"/console/settings?merchant={a.merchant_id}"
    page = await op.get(settings)
    assert f'hx-get="/console/settings/pg-routes?merchant={a.merchant_id}"' in page.text
    box = await op.get(f"/console/settings/pg-routes?merchant={a.merchant_id}")
    assert 'data-testid="pg-routes-form"' in box.text
    assert '<option value="ksnet-main"' in box.text
    no_secret(box.text)
    routes = {"merchant_id": a.merchant_id, "primary": "ksnet-main", "secondary": "default"}
    r = await post(op, settings, "/console/settings/pg-routes", routes)
    assert (r.status_code, r.headers["location"]) == (303, settings)
    pg = console.api.runtime.services.pg_accounts
    assert (await pg.routes(a.merchant_id)).primary == "ksnet-main"
    assert (await pg.routes(b.merchant_id)).primary == "default"

    edit = f"{LIST}/ksnet-main"
    r = await post(op, edit, f"{edit}/status", {"status": "disabled"})
    assert r.status_code == 409  # a merchant routes to it
    assert a.merchant_id in r.text

    # a merchant user sets its own routes, never another merchant's
    r = await post(merchant, "/console/settings", "/console/settings/pg-routes",
                   {"primary": "default", "secondary": ""})  # fmt: skip
    assert (r.status_code, r.headers["location"]) == (303, "/console/settings")
    assert (await pg.routes(a.merchant_id)).secondary is None
    r = await post(merchant, "/console/settings", "/console/settings/pg-routes",
                   {"merchant_id": b.merchant_id, "primary": "ksnet-main"})  # fmt: skip
    assert r.status_code == 404
    assert (
        await merchant.get(f"/console/settings/pg-routes?merchant={b.merchant_id}")
    ).status_code == 404
    r = await post(merchant, "/console/settings", "/console/settings/pg-routes",
                   {"primary": "default", "secondary": "default"})  # fmt: skip
    assert r.status_code == 422
    assert 'data-testid="pg-routes-error"' in r.text

    r = await post(op, edit, f"{edit}/status", {"status": "disabled"})
    assert r.status_code == 303
    listed = await op.get(LIST)
    assert re.search(r'data-id="ksnet-main">.*?status-disabled', listed.text, re.S)
    box = await op.get(f"/console/settings/pg-routes?merchant={a.merchant_id}")
    assert "ksnet-main" not in box.text  # a disabled account is no choice
    r = await post(op, edit, f"{edit}/status", {"status": "active"})
    assert r.status_code == 303


@dataclass(frozen=True)
class Snapshot:
    name: str
    state: str
    consecutive_failures: int
    opened_at: datetime | None
    retry_at: datetime | None


async def test_breaker_states_from_the_wired_view(console: Console) -> None:
    """The page shows what the view it is handed says: open with its retry time,
    half-open, closed, and "no calls yet" for an account without a breaker."""
    pg = console.api.runtime.services.pg_accounts
    for name in ("down-pg", "trying-pg", "idle-pg"):
        await pg.create(name, actor="t", kind="sandbox", api_key="k", api_secret="s")
    opened = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)
    snapshots = [
        Snapshot("default", "closed", 0, None, None),
        Snapshot("down-pg", "open", 5, opened, opened + timedelta(seconds=30)),
        Snapshot("trying-pg", "half_open", 5, opened, None),
    ]
    deps = replace(console.deps, breakers=lambda: snapshots)
    app = create_app(console.api.deps, key_cache_s=0.0, console=deps)
    wired = Console(replace(console.api, app=app), deps)
    await wired.user("op@arspay.test")
    op = await wired.login("op@arspay.test")
    try:
        listed = (await op.get(LIST)).text
        rows = dict(re.findall(r'<tr data-id="([^"]+)">(.*?)</tr>', listed, re.S))
        css = {k: BREAKER.findall(v) for k, v in rows.items()}
        assert css == {"default": ["status-active"], "down-pg": ["status-failed"],
                       "trying-pg": ["status-processing"], "idle-pg": [""]}  # fmt: skip
        assert "12:00:30" in rows["down-pg"]  # the retry time, in Seoul
        assert 'data-testid="breaker-retry"' in rows["down-pg"]
        assert 'data-testid="breaker-retry"' not in rows["trying-pg"]
        page = await op.get(f"{LIST}/down-pg")
        assert 'data-testid="breaker-retry"' in page.text
        assert "5" in page.text
    finally:
        for client in wired.clients:
            await client.aclose()
    default_view = (await (await console.login("op@arspay.test")).get(LIST)).text
    assert default_view.count('data-testid="breaker"') == 4  # every account: no calls yet
    assert "status-failed" not in default_view


async def test_every_page_in_both_languages(console: Console) -> None:
    op = await operator(console)
    await post(op, LIST, LIST, new_account())
    for lang in ("en", "ko"):
        op.cookies.set("arspay_lang", lang)
        for url in (LIST, f"{LIST}/ksnet-main", f"{LIST}/default"):
            r = await op.get(url)
            assert r.status_code == 200, (lang, url)
            no_secret(r.text)
