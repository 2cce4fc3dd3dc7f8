"""POST /v1/pg/portone-v2/webhooks: the engine on PortOne V2 (against the sandbox's /v2
mount) settles an order when a verified webhook names it — by asking the PG, never by
believing the body — and refuses bad signatures, old timestamps and replays."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from ivr.store.db import Database
from ivr.store.tables import PaymentAttempt
from ivr.web.app import create_app
from ivr.webhooks.signing import headers_for, new_secret
from tests.api.conftest import Api, problem, serving_api
from tests.gateways.support import Sandbox
from tests.gateways.v2_support import CHANNEL, STORE

pytestmark = pytest.mark.anyio

SECRET = new_secret()
PATH = "/v1/pg/portone-v2/webhooks"


def v2_env(sandbox: Sandbox) -> dict[str, str]:
    return {
        "ARSPAY_GATEWAY_KIND": "portone_v2",
        "ARSPAY_GATEWAY_BASE_URL": f"{sandbox.url}/v2",
        "ARSPAY_GATEWAY_STORE_ID": STORE,
        "ARSPAY_GATEWAY_CHANNEL_KEY": CHANNEL,
        "ARSPAY_GATEWAY_WEBHOOK_SECRET": SECRET,
        "ARSPAY_GATEWAY_TIMEOUT_S": "0.5",  # a late PG answer becomes an unknown outcome
    }


@pytest.fixture
async def v2api(db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with serving_api(db, tmp_path, v2_env) as a:
        yield a


def notice(event: str, payment_id: str, *, msg_id: str = "msg_1", at: float | None = None,
           secret: str = SECRET) -> tuple[bytes, dict[str, str]]:  # fmt: skip
    body = json.dumps({"type": event, "timestamp": "2026-12-07T00:00:00Z",
                       "data": {"paymentId": payment_id, "storeId": STORE,
                                "transactionId": "tx", "amount": 1}}).encode()  # fmt: skip
    stamp = int(time.time() if at is None else at)
    return body, {"content-type": "application/json", **headers_for([secret], msg_id, stamp, body)}


async def post(api: Api, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api.app), base_url="http://t"
    ) as c:
        return await c.post(PATH, content=body, headers=headers)


async def unknown_charge(api: Api) -> tuple[str, str]:
    """A charge whose answer came too late: the payment is processing, the PG records
    it paid a moment after the engine looked. Returns (payment id, order id)."""
    t = await api.tenant("행복치과")
    await api.sandbox.fault("charge", "late", delay_ms=1_500)
    r = await t.client.post(
        "/v1/charges", json={"card_id": t.card_id, "amount": 5_000, "order_name": "x"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "processing"
    await api.sandbox.settled()  # now the PG has it paid; the engine does not know yet
    async with api.db.sessions() as s:
        order_id = await s.scalar(
            select(PaymentAttempt.order_id).where(PaymentAttempt.intent_id == r.json()["id"])
        )
    assert order_id is not None
    return r.json()["id"], order_id


async def status_of(api: Api, payment_id: str) -> str:
    r = await api.tenants[0].client.get(f"/v1/payments/{payment_id}")
    status: str = r.json()["status"]
    return status


async def test_a_verified_webhook_settles_the_order_from_the_pg(v2api: Api) -> None:
    payment_id, order_id = await unknown_charge(v2api)
    r = await post(v2api, *notice("Transaction.Paid", order_id))
    assert r.status_code == 200, r.text
    assert r.json() == {"result": "settled"}
    assert await status_of(v2api, payment_id) == "succeeded"
    assert (await v2api.sandbox.ledger(order_id))["paid"] == 1


async def test_the_body_is_not_believed(v2api: Api) -> None:
    """A "paid" notice for an order the PG never charged changes nothing."""
    t = await v2api.tenant("행복치과")
    await v2api.sandbox.fault("charge", "drop_before_record")
    r = await t.client.post(
        "/v1/charges", json={"card_id": t.card_id, "amount": 5_000, "order_name": "x"}
    )
    async with v2api.db.sessions() as s:
        order_id = await s.scalar(
            select(PaymentAttempt.order_id).where(PaymentAttempt.intent_id == r.json()["id"])
        )
    assert order_id is not None
    answer = await post(v2api, *notice("Transaction.Paid", order_id))
    assert answer.json() == {"result": "settled"}  # looked up: the PG does not have it
    assert await status_of(v2api, r.json()["id"]) == "processing"


async def test_a_bad_signature_is_refused_and_changes_nothing(v2api: Api) -> None:
    payment_id, order_id = await unknown_charge(v2api)
    r = await post(v2api, *notice("Transaction.Paid", order_id, secret=new_secret()))
    assert r.status_code == 400
    assert problem(r)["code"] == "invalid-webhook-signature"
    body, headers = notice("Transaction.Paid", order_id)
    r = await post(v2api, body.replace(b"tx", b"ty"), headers)
    assert r.status_code == 400
    assert await status_of(v2api, payment_id) == "processing"


async def test_an_old_timestamp_is_refused(v2api: Api) -> None:
    payment_id, order_id = await unknown_charge(v2api)
    r = await post(v2api, *notice("Transaction.Paid", order_id, at=time.time() - 3_600))
    assert r.status_code == 400
    assert problem(r)["code"] == "invalid-webhook-signature"
    assert await status_of(v2api, payment_id) == "processing"


async def test_a_replay_is_answered_but_not_handled_again(v2api: Api) -> None:
    _, order_id = await unknown_charge(v2api)
    body, headers = notice("Transaction.Paid", order_id, msg_id="msg_replayed")
    assert (await post(v2api, body, headers)).json() == {"result": "settled"}
    assert (await post(v2api, body, headers)).json() == {"result": "duplicate"}
    fresh, fresh_headers = notice("Transaction.Paid", order_id, msg_id="msg_other")
    assert (await post(v2api, fresh, fresh_headers)).json() == {"result": "nothing_open"}


async def test_other_notices_and_unknown_orders_are_ignored(v2api: Api) -> None:
    r = await post(v2api, *notice("Transaction.Paid", "ord_NOT_OURS", msg_id="m1"))
    assert r.json() == {"result": "unknown_order"}
    body = b'{"type": "BillingKey.Deleted", "data": {"billingKey": "billing-key-1"}}'
    r = await post(v2api, body, headers_for([SECRET], "m2", int(time.time()), body))
    assert r.json() == {"result": "ignored"}


async def test_without_a_webhook_secret_the_route_answers_404(v2api: Api) -> None:
    app = create_app(dataclasses.replace(v2api.deps, portone_webhooks=None), key_cache_s=0.0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post(PATH, content=b"{}", headers={"content-type": "application/json"})
    assert r.status_code == 404
    assert problem(r)["code"] == "not-found"


async def test_a_stored_account_has_its_own_route_and_secret(v2api: Api) -> None:
    """``/webhooks/{account_id}`` verifies with that account's secret; the order is
    still settled by asking the account it went to."""
    second = new_secret()
    accounts = v2api.runtime.services.pg_accounts
    await accounts.create("v2-second", actor="test", kind="portone_v2",
                          base_url=f"{v2api.sandbox.url}/v2", api_secret="v2-api-secret",
                          webhook_secret=second,
                          options={"store_id": STORE, "channel_key": CHANNEL})  # fmt: skip
    await accounts.create("v1-other", actor="test", kind="sandbox", base_url=v2api.sandbox.url,
                          api_key="k", api_secret="s")  # fmt: skip
    payment_id, order_id = await unknown_charge(v2api)

    async def to(path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=v2api.app), base_url="http://t"
        ) as c:
            return await c.post(path, content=body, headers=headers)

    route = f"{PATH}/v2-second"
    wrong = await to(route, *notice("Transaction.Paid", order_id, secret=SECRET))
    assert wrong.status_code == 400  # the default account's secret does not sign for it
    for path in (f"{PATH}/nope-acct", f"{PATH}/v1-other", f"{PATH}/default"):
        assert (await to(path, *notice("Transaction.Paid", order_id))).status_code == 404
    assert await status_of(v2api, payment_id) == "processing"
    r = await to(route, *notice("Transaction.Paid", order_id, secret=second, msg_id="m2"))
    assert r.status_code == 200, r.text
    assert r.json() == {"result": "settled"}
    assert await status_of(v2api, payment_id) == "succeeded"
    again = await to(route, *notice("Transaction.Paid", order_id, secret=second, msg_id="m2"))
    assert again.json() == {"result": "duplicate"}
