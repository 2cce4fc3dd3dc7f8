"""Helpers of the console's configuration-page tests (webhooks, consent, settings,
scoping): secrets read off a page, endpoints, events and consent records made the way
the application makes them, an operator's client."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx

from ivr.consent.ledger import ConsentInput, PlayedPrompt
from ivr.store.tables import Merchant
from ivr.webhooks.events import emit_in
from tests.api.conftest import Tenant
from tests.console.conftest import Console, post

HOOK = "https://hooks.example.test/arspay"
SECRET_SHOWN = re.compile(r'data-testid="new-secret">([^<]+)<')
KEY_SHOWN = re.compile(r'data-testid="new-api-key">([^<]+)<')


def shown_secret(html: str) -> str:
    found = SECRET_SHOWN.search(html)
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
