"""The payment resource shows the PG's receipt (매출전표) link of a paid charge: the
sandbox PG links its own receipt page, which the connector keeps (the configured PG's
origin); a declined charge has none."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import Api, add_card

pytestmark = pytest.mark.anyio


async def test_a_paid_charge_shows_its_receipt_link(api: Api) -> None:
    a = await api.tenant("행복치과")
    r = await a.client.post(
        "/v1/charges", json={"card_id": a.card_id, "amount": 33_000, "order_name": "진료비"}
    )
    assert r.status_code == 201, r.text
    pay = r.json()
    assert pay["status"] == "succeeded"
    url = pay["receipt_url"]
    assert url.startswith(f"{api.sandbox.url}/sandbox/receipts/imp")
    assert pay["attempts"][0]["receipt_url"] == url
    r = await a.client.get(f"/v1/payments/{pay['id']}")
    assert r.json()["receipt_url"] == url
    r = await a.client.get("/v1/payments")
    assert [p["receipt_url"] for p in r.json()["data"]] == [url]
    async with httpx.AsyncClient() as http:  # the page the link opens, over HTTP
        page = await http.get(url)
    assert page.status_code == 200
    assert "33,000원" in page.text
    assert pay["attempts"][0]["approval_no"] in page.text


async def test_a_declined_charge_has_no_receipt(api: Api) -> None:
    a = await api.tenant("행복치과")
    soft = await add_card(api, a.merchant_id, a.customer_id, "4000000000009995")
    r = await a.client.post(
        "/v1/charges", json={"card_id": soft, "amount": 5_000, "order_name": "교재비"}
    )
    pay = r.json()
    assert pay["status"] == "failed"
    assert pay["receipt_url"] is None
    assert pay["attempts"][-1]["receipt_url"] is None
