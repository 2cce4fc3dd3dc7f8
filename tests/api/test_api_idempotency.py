"""``Idempotency-Key`` (docs/product.md §6): replay, a different body → 422, a concurrent
duplicate → 409, 24 h lifetime, and a retry after a crash finding what was created."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from ivr.api.deps import ApiDeps
from ivr.api.idempotency import LOCK, IdempotencyStore, fingerprint
from ivr.payments.charger import Charger
from ivr.payments.refunds import Refunder
from ivr.payments.service import PaymentService
from ivr.store.tables import Customer, PaymentIntent
from ivr.web.app import create_app
from tests.api.conftest import Api, Tenant, problem

pytestmark = pytest.mark.anyio


def charge_body(t: Tenant, amount: int = 7_000) -> dict[str, object]:
    return {"card_id": t.card_id, "amount": amount, "order_name": "4월 수강료"}


async def paid_orders(api: Api) -> int:
    """Charges the sandbox PG itself recorded as paid (its own ledger)."""
    summary = await api.sandbox.summary()
    return summary["paid"] + summary["cancelled"]


async def test_replay_returns_the_same_response_and_charges_once(api: Api) -> None:
    a = await api.tenant("행복치과")
    h = {"Idempotency-Key": "order-2026-0001"}
    first = await a.client.post("/v1/charges", json=charge_body(a), headers=h)
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    # the same body with keys in another order and other spacing is the same request
    again = await a.client.post(
        "/v1/charges",
        content=b'{ "order_name": "4\xec\x9b\x94 \xec\x88\x98\xea\xb0\x95\xeb\xa3\x8c",'
        + f'"amount": 7000, "card_id": "{a.card_id}"}}'.encode(),
        headers={**h, "content-type": "application/json"},
    )
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    async with api.db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(PaymentIntent)) == 1
    assert await paid_orders(api) == 1


async def test_same_key_different_body_is_422_and_other_merchants_keys_are_separate(
    api: Api,
) -> None:
    a = await api.tenant("행복치과")
    b = await api.tenant("푸른학원")
    h = {"Idempotency-Key": "k1"}
    assert (await a.client.post("/v1/charges", json=charge_body(a), headers=h)).status_code == 201
    r = await a.client.post("/v1/charges", json=charge_body(a, 8_000), headers=h)
    assert r.status_code == 422
    assert problem(r)["code"] == "idempotency-key-reused"
    r = await a.client.post("/v1/customers", json={"mobile": "010-1111-2222"}, headers=h)
    assert problem(r)["code"] == "idempotency-key-reused"  # another endpoint, same key
    r = await b.client.post("/v1/charges", json=charge_body(b), headers=h)
    assert r.status_code == 201  # merchant B's "k1" is its own
    assert await paid_orders(api) == 2


class GatedCharger(Charger):
    """Holds every charge until the test opens the gate."""

    def __init__(self, inner: Charger) -> None:
        super().__init__(inner.db, inner.clock, inner.gateway)
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def drive(self, intent_id: str):  # type: ignore[no-untyped-def]
        self.entered.set()
        await self.gate.wait()
        return await super().drive(intent_id)


async def test_a_concurrent_duplicate_is_409_then_the_replay_is_the_first_answer(
    api: Api,
) -> None:
    a = await api.tenant("행복치과")
    gated = GatedCharger(api.deps.charger)
    app = create_app(ApiDeps(**{**api.deps.__dict__, "charger": gated}), key_cache_s=0)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", headers=a.auth
    ) as c:
        h = {"Idempotency-Key": "dup-1"}
        first = asyncio.create_task(c.post("/v1/charges", json=charge_body(a), headers=h))
        await asyncio.wait_for(gated.entered.wait(), 10)
        dup = await c.post("/v1/charges", json=charge_body(a), headers=h)
        assert dup.status_code == 409
        assert problem(dup)["code"] == "idempotency-in-progress"
        assert dup.headers["retry-after"] == "1"
        gated.gate.set()
        done = await first
        assert done.status_code == 201
        replay = await c.post("/v1/charges", json=charge_body(a), headers=h)
        assert replay.json() == done.json()
    assert await paid_orders(api) == 1


async def test_a_retry_after_a_crash_drives_the_same_intent_instead_of_charging_again(
    api: Api,
) -> None:
    """The process died after creating (and maybe sending) the charge but before the
    answer was stored: the key is ``in_progress`` with a lapsed lock. The retry finds
    the intent by the key's reserved id and resolves it — one charge at the PG."""
    a = await api.tenant("행복치과")
    body = charge_body(a)
    store = IdempotencyStore(api.db, api.clock)
    path = "/v1/charges"
    begun = await store.begin(
        a.merchant_id,
        "crash-1",
        method="POST",
        path=path,
        fingerprint=fingerprint("POST", path, "", "application/json", json.dumps(body).encode()),
    )
    # what the dead process had done: the intent with the reserved id, charged at the PG
    payments = PaymentService(api.db, api.clock, api.runtime.gateway)
    intent = await payments.create_intent(
        a.merchant_id, a.card_id, amount=7_000, order_name="4월 수강료",
        intent_id=f"pi_{begun.resource_id}",
    )  # fmt: skip
    await api.deps.charger.drive(intent.id)
    assert await paid_orders(api) == 1
    h = {"Idempotency-Key": "crash-1"}
    r = await a.client.post(path, json=body, headers=h)
    assert r.status_code == 409  # the dead run's lock has not lapsed yet
    api.clock.advance(LOCK + timedelta(seconds=1))
    r = await a.client.post(path, json=body, headers=h)
    assert r.status_code == 201
    assert r.json()["id"] == intent.id
    assert r.json()["status"] == "succeeded"
    assert await paid_orders(api) == 1
    assert (await a.client.post(path, json=body, headers=h)).json() == r.json()


async def test_keys_live_24_hours_and_5xx_answers_are_not_stored(api: Api) -> None:
    a = await api.tenant("행복치과")
    h = {"Idempotency-Key": "cust-1"}
    one = await a.client.post("/v1/customers", json={"mobile": "010-3333-4444"}, headers=h)
    api.clock.advance(timedelta(hours=23))
    assert (
        await a.client.post("/v1/customers", json={"mobile": "010-3333-4444"}, headers=h)
    ).json()["id"] == one.json()["id"]
    api.clock.advance(timedelta(hours=2))
    two = await a.client.post("/v1/customers", json={"mobile": "010-3333-4444"}, headers=h)
    assert two.status_code == 201
    assert two.json()["id"] != one.json()["id"]  # expired: a new request
    assert await IdempotencyStore(api.db, api.clock).purge() == 0  # replaced, not left over

    class Broken(Refunder):
        async def refund(self, *args: object, **kw: object):  # type: ignore[no-untyped-def]
            raise RuntimeError("disk on fire")

    pay = (await a.client.post("/v1/charges", json=charge_body(a))).json()
    payments = PaymentService(api.db, api.clock, api.runtime.gateway)
    payments.refunds = Broken(api.db, api.clock, api.runtime.gateway)
    broken = ApiDeps(**{**api.deps.__dict__, "payments": payments})
    app = create_app(broken, key_cache_s=0)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", headers=a.auth
    ) as c:
        h = {"Idempotency-Key": "refund-1"}
        r = await c.post(f"/v1/payments/{pay['id']}/refunds", json={}, headers=h)
        assert r.status_code == 500
        assert problem(r)["code"] == "internal-error"
        assert "disk on fire" not in r.text
    r = await a.client.post(f"/v1/payments/{pay['id']}/refunds", json={}, headers=h)
    assert r.status_code == 201  # the retry ran again at once, on the healthy app
    async with api.db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Customer)) == 3


async def test_bad_keys_are_refused(api: Api) -> None:
    a = await api.tenant("행복치과")
    r = await a.client.post(
        "/v1/customers", json={"mobile": "010-1111-2222"}, headers={"Idempotency-Key": "x" * 256}
    )
    assert r.status_code == 400
    assert problem(r)["code"] == "invalid-idempotency-key"
