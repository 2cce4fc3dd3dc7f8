"""The engine's state changes emit webhook events: in the transaction of the change
(none if it rolls back), once per change (re-driving a finished object emits nothing),
and the engine's dispatcher delivers them signed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import standardwebhooks
from sqlalchemy import select

from ivr.domain.states import CallRequestKind, CallRequestStatus
from ivr.gateways.declines import PROMPT_TEXT, DeclineReason
from ivr.gateways.fake import Outcome
from ivr.store.tables import WebhookEvent
from ivr.webhooks.notices import masked
from ivr.webhooks.service import WebhookService
from tests.api.conftest import Api, add_card, api  # noqa: F401 - the fixture
from tests.billing.conftest import Billing, billing  # noqa: F401 - the fixture
from tests.webhooks.conftest import Receiver, receiver  # noqa: F401 - the fixture

pytestmark = pytest.mark.anyio


async def events(db: Any, type_: str | None = None) -> list[WebhookEvent]:
    async with db.sessions() as s:
        q = select(WebhookEvent).order_by(WebhookEvent.id)
        if type_ is not None:
            q = q.where(WebhookEvent.type == type_)
        return list(await s.scalars(q))


async def test_charges_and_refunds_emit_payment_events_once(api: Api) -> None:  # noqa: F811
    a = await api.tenant("행복치과")
    pay = (
        await a.client.post(
            "/v1/charges", json={"card_id": a.card_id, "amount": 9_000, "order_name": "교재"}
        )
    ).json()
    soft = await add_card(api, a.merchant_id, a.customer_id, "4000000000009995")
    bad = (
        await a.client.post(
            "/v1/charges", json={"card_id": soft, "amount": 9_000, "order_name": "교재"}
        )
    ).json()
    await api.deps.charger.drive(pay["id"])  # again: nothing new
    await api.deps.charger.drive(bad["id"])
    ok, failed = await events(api.db, "payment.succeeded"), await events(api.db, "payment.failed")
    assert [e.payload["data"]["payment_id"] for e in ok] == [pay["id"]]
    assert ok[0].payload["data"]["approval_no"] == pay["attempts"][0]["approval_no"]
    assert ok[0].payload["data"]["receipt_url"] == pay["receipt_url"]
    assert pay["receipt_url"]  # the sandbox PG links its receipt page
    assert [e.payload["data"]["payment_id"] for e in failed] == [bad["id"]]
    assert failed[0].payload["data"]["decline"]["kind"] == "soft"
    await a.client.post(f"/v1/payments/{pay['id']}/refunds", json={"amount": 4_000})
    [refunded] = await events(api.db, "payment.refunded")
    assert refunded.payload["data"]["refunded_amount"] == 4_000
    assert refunded.payload["data"]["status"] == "partially_refunded"


async def test_request_endings_emit_registration_and_expiry_events(api: Api) -> None:  # noqa: F811
    a = await api.tenant("행복치과")
    requests = api.runtime.services.requests
    done = (await requests.create(a.merchant_id, a.customer_id, CallRequestKind.registration,
                                  product_name="정기결제")).request  # fmt: skip
    await requests.transition(done.id, CallRequestStatus.in_call, actor="t")
    await requests.transition(done.id, CallRequestStatus.completed, actor="t")
    left = (await requests.create(a.merchant_id, a.customer_id, CallRequestKind.registration,
                                  product_name="정기결제")).request  # fmt: skip
    pay = (await requests.create(a.merchant_id, a.customer_id, CallRequestKind.payment,
                                 product_name="치료비", amount=5_000)).request  # fmt: skip
    api.clock.advance(timedelta(hours=2))
    assert await requests.expire_due() == 2
    assert await requests.expire_due() == 0
    types = [(e.type, e.payload["data"]["call_request_id"]) for e in await events(api.db)]
    assert types == [
        ("registration.completed", done.id),
        ("registration.expired", left.id),
        ("call_request.expired", left.id),
        ("call_request.expired", pay.id),
    ]


async def test_no_event_when_the_change_rolls_back(api: Api) -> None:  # noqa: F811
    a = await api.tenant("행복치과")
    requests = api.runtime.services.requests
    req = (await requests.create(a.merchant_id, a.customer_id, CallRequestKind.registration,
                                 product_name="정기결제")).request  # fmt: skip

    async def expire_then_fail() -> None:
        async with api.db.transaction() as s:
            await requests.transition_in(s, req.id, CallRequestStatus.expired, actor="t")
            raise RuntimeError("the caller failed after the transition")

    with pytest.raises(RuntimeError):
        await expire_then_fail()
    assert await events(api.db) == []
    assert (await requests.get(None, req.id)).status == CallRequestStatus.created.value


async def test_failed_schedule_charges_and_bulk_completion_emit_events(
    billing: Billing,  # noqa: F811
) -> None:
    b = billing
    await b.schedules.create(
        b.merchant_id, b.customer_id, card_id=b.card_id, amount=30_000, order_name="월회비",
        plan={"rule": {"every": "month", "day": 1}, "start": "2026-12-01", "count": 1},
    )  # fmt: skip
    b.pg.script("charge_billing_key", Outcome.soft_decline, Outcome.hard_decline)
    await b.run_until(b.clock.now() + timedelta(days=3))
    failed = [e.payload["data"] for e in await events(b.db, "schedule.charge_failed")]
    assert [(f["will_retry"], f["decline"]["kind"]) for f in failed] == [
        (True, "soft"),
        (False, "hard"),
    ]
    assert failed[0]["next_retry_at"] is not None
    assert failed[1]["dunning_request_id"] is not None
    assert len(await events(b.db, "payment.failed")) == 2

    from ivr.bulk.charges import ChargeWorker
    from ivr.bulk.submit import BulkSubmissions
    from ivr.jobs.queue import JobQueue

    queue = JobQueue(b.db, b.clock, worker_id="w")
    bulk = ChargeWorker(b.db, b.clock, queue, b.payments, b.charger)
    rows = f'[{{"card_id": "{b.card_id}", "amount": 1000, "order_name": "x"}}, {{"x": 1}}]'
    sub = await BulkSubmissions(b.db, b.clock, queue).submit(
        b.merchant_id, rows.encode(), "json", actor="t"
    )
    await bulk.run(until_idle=True, poll_s=0.01)
    await bulk.run(until_idle=True, poll_s=0.01)  # finishing again emits nothing
    [done] = await events(b.db, "bulk_job.completed")
    assert done.payload["data"]["bulk_id"] == sub.bulk_id
    assert (done.payload["data"]["valid"], done.payload["data"]["invalid"]) == (1, 1)


async def test_the_engine_delivers_events_signed(api: Api, receiver: Receiver) -> None:  # noqa: F811
    api.clock.advance(datetime.now(UTC) - api.clock.now())  # the library checks the time
    a = await api.tenant("행복치과")
    _, secret = await WebhookService(api.db, api.clock).create_endpoint(
        a.merchant_id, receiver.url, ["payment.succeeded"], actor="t"
    )
    pay = (
        await a.client.post(
            "/v1/charges", json={"card_id": a.card_id, "amount": 9_000, "order_name": "교재"}
        )
    ).json()
    assert await api.runtime.webhooks.run_once() == 1
    [hit] = receiver.hits
    body = standardwebhooks.Webhook(secret).verify(hit.body, hit.headers)
    assert body["type"] == "payment.succeeded"
    assert body["data"]["payment_id"] == pay["id"]
    assert "4111111111111111" not in hit.body.decode()
    assert "webhooks" in api.runtime.engine(ari=False, agi=False).workers


async def test_a_card_like_order_name_is_refused_and_notices_mask_one_anyway(
    api: Api,  # noqa: F811
) -> None:
    """A card number typed into free text would reach our database, the PG's ledger and
    the payer's SMS: the API refuses it. The notices still mask card-like runs, should
    such text reach them some other way."""
    a = await api.tenant("행복치과")
    r = await a.client.post(
        "/v1/charges",
        json={"card_id": a.card_id, "amount": 9_000, "order_name": "주문 4111111111111111"},
    )
    assert r.status_code == 422
    assert "card number" in r.json()["detail"]
    r = await a.client.post(
        "/v1/payment-requests",
        json={"customer_id": a.customer_id, "amount": 9_000,
              "product_name": "상품 4111-1111-1111-1111"},
    )  # fmt: skip
    assert r.status_code == 422
    assert await events(api.db) == []
    _, _, data = masked(("mer_x", "payment.succeeded", {"order_name": "주문 4111111111111111"}))
    assert data["order_name"] == "주문 " + "•" * 16


async def test_registration_declined_and_failed_emit_their_events(api: Api) -> None:  # noqa: F811
    a = await api.tenant("행복치과")
    requests = api.runtime.services.requests

    async def in_call() -> str:
        req = (await requests.create(a.merchant_id, a.customer_id, CallRequestKind.registration,
                                     product_name="정기결제")).request  # fmt: skip
        await requests.transition(req.id, CallRequestStatus.in_call, actor="t")
        return req.id

    declined = await in_call()
    await requests.transition(declined, CallRequestStatus.declined, actor="t")
    failed = await in_call()
    assert await requests.release_call(failed, max_calls=1) is CallRequestStatus.failed
    got = [(e.type, e.payload["data"]["call_request_id"], e.payload["data"]["status"])
           for e in await events(api.db)]  # fmt: skip
    assert got == [
        ("registration.declined", declined, "declined"),
        ("registration.failed", failed, "failed"),
    ]


async def test_a_payment_failed_event_says_why_in_words(api: Api) -> None:  # noqa: F811
    a = await api.tenant("행복치과")
    soft = await add_card(api, a.merchant_id, a.customer_id, "4000000000009995")
    await a.client.post("/v1/charges", json={"card_id": soft, "amount": 9_000, "order_name": "x"})
    [failed] = await events(api.db, "payment.failed")
    decline = failed.payload["data"]["decline"]
    assert decline["kind"] == "soft"
    assert decline["message"] == PROMPT_TEXT[DeclineReason(decline["code"])]


async def test_two_workers_finishing_a_bulk_job_together_emit_one_event(
    billing: Billing,  # noqa: F811
) -> None:
    """The parent's status transition, under its row lock, decides who reports it."""
    import asyncio

    from ivr.bulk.charges import ChargeWorker
    from ivr.bulk.submit import BulkSubmissions
    from ivr.jobs.queue import JobQueue

    b = billing

    def worker(name: str) -> ChargeWorker:
        return ChargeWorker(b.db, b.clock, JobQueue(b.db, b.clock, worker_id=name), b.payments,
                            b.charger)  # fmt: skip

    one, two = worker("w1"), worker("w2")
    rows = [{"card_id": b.card_id, "amount": 1000 + n, "order_name": "x"} for n in range(3)]
    rows += [{"card_id": "card_missing", "amount": 1000, "order_name": "x"}, {"x": 1}]
    sub = await BulkSubmissions(b.db, b.clock, one.queue).submit(
        b.merchant_id, json.dumps(rows).encode(), "json", actor="t"
    )
    b.pg.script("charge_billing_key", Outcome.hard_decline)

    async def no_finish(bulk_ids: set[str]) -> None:
        return None

    one.completion.finish = no_finish  # type: ignore[method-assign]  # rows only, first
    while await one.run_once():
        pass
    assert await events(b.db, "bulk_job.completed") == []
    del one.completion.finish  # back to the class's
    await asyncio.gather(one.completion.finish({sub.bulk_id}), two.completion.finish({sub.bulk_id}))
    await two.completion.finish({sub.bulk_id})
    [done] = await events(b.db, "bulk_job.completed")
    data = done.payload["data"]
    assert data["status"] == "done"
    counts = {k: data[k] for k in ("total", "succeeded", "failed", "invalid")}
    assert counts == {"total": 5, "succeeded": 2, "failed": 1, "invalid": 2}


async def test_customer_names_refs_and_refund_reasons_refuse_card_numbers(
    api: Api,  # noqa: F811
) -> None:
    a = await api.tenant("행복치과")
    for body in ({"mobile": "010-2222-3333", "name": "홍 4111111111111111"},
                 {"mobile": "010-2222-3334", "external_ref": "4111-1111-1111-1111"}):  # fmt: skip
        r = await a.client.post("/v1/customers", json=body)
        assert r.status_code == 422
        assert "card number" in r.json()["detail"]
    paid = await a.client.post(
        "/v1/charges", json={"card_id": a.card_id, "amount": 9_000, "order_name": "진료비"}
    )
    assert paid.status_code == 201
    r = await a.client.post(
        f"/v1/payments/{paid.json()['id']}/refunds",
        json={"amount": 1_000, "reason": "card 4111111111111111"},
    )
    assert r.status_code == 422
    assert "card number" in r.json()["detail"]
