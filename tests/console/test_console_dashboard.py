"""The dashboard's figures come from the merchant's own data (operators: everyone's)."""

from __future__ import annotations

import re

import pytest

from tests.api.conftest import add_card
from tests.console.conftest import Console

pytestmark = pytest.mark.anyio


def tile(html: str, testid: str) -> str:
    found = re.search(rf'data-testid="{testid}"><h2>[^<]*</h2><b>([^<]*)</b>', html)
    assert found, f"no {testid} tile"
    return found.group(1)


async def test_dashboard_figures(console: Console) -> None:
    a, ca = await console.tenant("행복치과")
    _, cb = await console.tenant("튼튼정형외과")
    soft = await add_card(console.api, a.merchant_id, a.customer_id, "4000000000009995")
    for card, amount in ((a.card_id, 10_000), (a.card_id, 25_000), (soft, 7_000)):
        r = await a.client.post("/v1/charges", json={"card_id": card, "amount": amount,
                                                     "order_name": "진료비"})  # fmt: skip
        assert r.status_code in (201, 402), r.text
    request = {"customer_id": a.customer_id, "product_name": "상담", "amount": 5000}
    assert (await a.client.post("/v1/payment-requests", json=request)).status_code == 201

    mine = (await ca.get("/console/")).text
    assert tile(mine, "success-rate") == "66.7%"  # 2 of 3 attempts
    assert "35,000원" in mine  # collected today: 10,000 + 25,000
    assert 'data-testid="did-usage"' not in mine  # the DID pool is the operator's
    assert "진행 중인 ARS 요청: 1" in mine

    theirs = (await cb.get("/console/")).text
    assert tile(theirs, "success-rate") == "—"  # nothing charged: no rate, not 0 %
    assert "35,000원" not in theirs

    await console.user("op@arspay.test")
    op = await console.login("op@arspay.test")
    everyone = (await op.get("/console/")).text
    assert tile(everyone, "did-usage") == "5.0%"  # 1 of the 20 numbers leased
    figures = await op.get("/console/dashboard/figures", headers={"HX-Request": "true"})
    assert figures.status_code == 200
    assert "<html" not in figures.text  # a fragment for htmx
