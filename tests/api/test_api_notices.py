"""``/v1/notice-settings``: a merchant's payer-notice switches (docs/notices.md), the
same settings the CLI and the engine read."""

from __future__ import annotations

import pytest

from ivr.merchants.policy import MerchantPolicy

from .conftest import Api, problem

pytestmark = pytest.mark.anyio

DEFAULTS = {
    "registration_completed": True,
    "payment_approved": True,
    "payment_failed": True,
    "payment_settled": True,
    "refund": True,
    "schedule_prenotice": True,
    "request_expired": False,
    "prenotice_days": 3,
    "alimtalk": True,
}


async def test_switches_are_read_and_changed_per_merchant(api: Api) -> None:
    a = await api.tenant("행복치과")
    b = await api.tenant("푸른학원")
    r = await a.client.get("/v1/notice-settings")
    assert (r.status_code, r.json()) == (200, DEFAULTS)
    r = await a.client.patch(
        "/v1/notice-settings", json={"request_expired": True, "prenotice_days": 5}
    )
    assert r.status_code == 200, r.text
    assert r.json() == DEFAULTS | {"request_expired": True, "prenotice_days": 5}
    r = await a.client.patch("/v1/notice-settings", json={"refund": False, "alimtalk": False})
    changed = DEFAULTS | {"request_expired": True, "prenotice_days": 5, "refund": False,
                          "alimtalk": False}  # fmt: skip
    assert r.json() == changed
    assert (await a.client.get("/v1/notice-settings")).json() == changed
    assert (await b.client.get("/v1/notice-settings")).json() == DEFAULTS
    stored = await api.runtime.services.merchants.get(a.merchant_id)
    assert MerchantPolicy.parse(stored.settings).notices.model_dump() == changed


@pytest.mark.parametrize("body", [{"refunds": False}, {"prenotice_days": 0}, {"refund": "x"}])
async def test_a_wrong_switch_is_refused(api: Api, body: dict[str, object]) -> None:
    a = await api.tenant("행복치과")
    r = await a.client.patch("/v1/notice-settings", json=body)
    assert r.status_code == 422
    assert problem(r)["code"] == "validation-failed"
    assert (await a.client.get("/v1/notice-settings")).json() == DEFAULTS
