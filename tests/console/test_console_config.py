"""Across the console's configuration pages: merchant scoping (another merchant's ids give
404), CSRF on every POST, and every page in Korean and English."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from ivr.store.tables import (
    ApiKey,
    Merchant,
    WebhookEndpoint,
)
from tests.console.config_support import (
    HOOK,
    make_consent,
    make_endpoint,
    make_event,
    operator,
    policy_form,
    stored_policy,
)
from tests.console.conftest import Console, post

pytestmark = pytest.mark.anyio


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
