"""The API's common behaviour: auth, problem+json, pagination, the main resources."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import Api, problem

pytestmark = pytest.mark.anyio


async def test_no_key_bad_key_and_revoked_key_are_401(api: Api) -> None:
    a = await api.tenant("행복치과")
    bare = httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url="http://t")
    async with bare:
        r = await bare.get("/v1/customers")
        assert r.status_code == 401
        assert problem(r)["code"] == "unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")
        r = await bare.get("/v1/customers", headers={"Authorization": "Bearer ak_nope"})
        assert problem(r)["code"] == "unauthorized"
    key = await api.runtime.services.merchants.create_api_key(a.merchant_id, "2nd", actor="t")
    r = await a.client.get("/v1/customers", headers={"Authorization": f"Bearer {key.key}"})
    assert r.status_code == 200
    await api.runtime.services.merchants.revoke_api_key(a.merchant_id, key.id, actor="t")
    r = await a.client.get("/v1/customers", headers={"Authorization": f"Bearer {key.key}"})
    assert r.status_code == 401
    assert (await a.client.get("/v1/customers")).status_code == 200  # the other key still works


async def test_customer_create_get_list_with_cursor_pagination(api: Api) -> None:
    a = await api.tenant("행복치과")
    made = []
    for i in range(5):
        r = await a.client.post(
            "/v1/customers", json={"mobile": f"010-2222-{i:04d}", "external_ref": f"m{i}"}
        )
        assert r.status_code == 201, r.text
        made.append(r.json()["id"])
    assert r.json()["mobile"] == "010-2222-0004"
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await a.client.get("/v1/customers", params=params)).json()
        seen += [c["id"] for c in page["data"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    assert seen == sorted([*made, a.customer_id], reverse=True)  # newest first, no gaps
    r = await a.client.get("/v1/customers", params={"cursor": "!!bad"})
    assert problem(r)["code"] == "invalid-cursor"
    r = await a.client.get(f"/v1/customers/{made[0]}")
    assert r.json()["external_ref"] == "m0"
    r = await a.client.post("/v1/customers", json={"mobile": "010-2222-0000", "external_ref": "m0"})
    assert r.status_code == 409
    assert problem(r)["code"] == "conflict"


async def test_validation_errors_are_problems_that_never_echo_input(api: Api) -> None:
    a = await api.tenant("행복치과")
    r = await a.client.post(
        "/v1/charges", json={"card_id": a.card_id, "amount": "4111111111111111"}
    )
    body = problem(r)
    assert r.status_code == 422
    assert body["code"] == "validation-failed"
    assert {tuple(e["loc"]) for e in body["errors"]} >= {("body", "amount"), ("body", "order_name")}
    assert "4111111111111111" not in r.text
    r = await a.client.post("/v1/customers", json={"mobile": "02-123-4567"})
    assert problem(r)["code"] == "invalid-input"
    r = await a.client.get("/v1/nope")
    assert r.status_code == 404
    assert problem(r)["code"] == "not-found"


async def test_charge_refund_and_payment_listing(api: Api) -> None:
    a = await api.tenant("행복치과")
    r = await a.client.post(
        "/v1/charges",
        json={"card_id": a.card_id, "amount": 60_000, "order_name": "3월 진료비",
              "installment_months": 3},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    pay = r.json()
    assert pay["status"] == "succeeded"
    assert pay["amount"] == 60_000
    assert pay["attempts"][0]["approval_no"]
    r = await a.client.post(f"/v1/payments/{pay['id']}/refunds", json={"amount": 10_000})
    assert r.status_code == 201
    assert r.json()["status"] == "succeeded"
    r = await a.client.get(f"/v1/payments/{pay['id']}")
    assert r.json()["status"] == "partially_refunded"
    assert r.json()["refunded_amount"] == 10_000
    r = await a.client.post(f"/v1/payments/{pay['id']}/refunds", json={"amount": 60_000})
    assert problem(r)["code"] == "invalid-input"
    r = await a.client.post(f"/v1/payments/{pay['id']}/refunds", json={})
    assert r.json()["amount"] == 50_000
    r = await a.client.get("/v1/payments", params={"status": "refunded"})
    assert [p["id"] for p in r.json()["data"]] == [pay["id"]]
    r = await a.client.post(
        "/v1/charges",
        json={"card_id": a.card_id, "amount": 10_000, "order_name": "x", "installment_months": 3},
    )
    assert problem(r)["code"] == "invalid-input"  # installments from 50,000 KRW


async def test_declined_charge_is_a_payment_with_a_decline(api: Api) -> None:
    from tests.api.conftest import add_card

    a = await api.tenant("행복치과")
    soft = await add_card(api, a.merchant_id, a.customer_id, "4000000000009995")
    r = await a.client.post(
        "/v1/charges", json={"card_id": soft, "amount": 5_000, "order_name": "교재비"}
    )
    assert r.status_code == 201
    pay = r.json()
    assert pay["status"] == "failed"
    assert pay["attempts"][-1]["decline_class"] == "soft"


async def test_registration_request_sends_sms_and_can_be_cancelled(api: Api) -> None:
    a = await api.tenant("행복치과")
    r = await a.client.post("/v1/registration-requests", json={"customer_id": a.customer_id})
    assert r.status_code == 201, r.text
    req = r.json()
    assert req["status"] == "created"
    assert req["did"].startswith("0505-")
    r = await a.client.post(
        "/v1/payment-requests",
        json={"customer_id": a.customer_id, "product_name": "치료비", "amount": 53_000},
    )
    assert r.status_code == 201
    assert r.json()["amount"] == 53_000
    r = await a.client.get("/v1/call-requests", params={"kind": "registration"})
    assert [x["id"] for x in r.json()["data"]] == [req["id"]]
    r = await a.client.post(f"/v1/call-requests/{req['id']}/cancel")
    assert r.json()["status"] == "cancelled"
    r = await a.client.post(f"/v1/call-requests/{req['id']}/cancel")
    assert r.status_code == 200
    assert (await a.client.get(f"/v1/call-requests/{req['id']}/sessions")).json() == []
    consent = (await a.client.get(f"/v1/call-requests/{req['id']}/consent")).json()
    assert consent["records"] == []


async def test_cards_are_masked_and_delete_is_idempotent(api: Api) -> None:
    a = await api.tenant("행복치과")
    r = await a.client.get("/v1/cards", params={"customer_id": a.customer_id})
    card = r.json()["data"][0]
    assert card["bin"] == "411111"
    assert card["last4"] == "1111"
    assert "4111111111111111" not in r.text
    r = await a.client.delete(f"/v1/cards/{a.card_id}")
    assert r.status_code == 200
    assert r.json()["status"] == "deleted"
    r = await a.client.delete(f"/v1/cards/{a.card_id}")
    assert r.status_code == 200
    r = await a.client.post(
        "/v1/charges", json={"card_id": a.card_id, "amount": 1_000, "order_name": "x"}
    )
    assert r.status_code == 409


async def test_a_card_locked_for_phone_payments_shows_and_can_be_unlocked(api: Api) -> None:
    """Too many wrong birth dates in payment calls lock a card for phone payments
    (issue #26); the card says until when, and the merchant lifts it (audited)."""
    from datetime import timedelta

    from sqlalchemy import select

    from ivr.cards.verification import VerifyLimits
    from ivr.store.tables import AuditLog

    a = await api.tenant("행복치과")
    r = await a.client.get(f"/v1/cards/{a.card_id}")
    assert r.json()["phone_payments_locked_until"] is None
    limits = VerifyLimits(max_failures=5, window=timedelta(hours=24))
    await api.runtime.deps.verification.lock(a.card_id, limits, actor="engine:call:creq_1")
    r = await a.client.get("/v1/cards", params={"customer_id": a.customer_id})
    until = r.json()["data"][0]["phone_payments_locked_until"]
    assert until.startswith((api.clock.now() + timedelta(hours=24)).date().isoformat())
    other = await api.tenant("다른가게")
    assert (await other.client.post(f"/v1/cards/{a.card_id}/unlock")).status_code == 404
    r = await a.client.post(f"/v1/cards/{a.card_id}/unlock")
    assert r.status_code == 200, r.text
    assert r.json()["phone_payments_locked_until"] is None
    assert (await a.client.post(f"/v1/cards/{a.card_id}/unlock")).status_code == 200  # again
    assert await api.runtime.deps.verification.is_locked(a.card_id) is None
    async with api.db.sessions() as s:
        actors = list(await s.scalars(
            select(AuditLog.actor).where(AuditLog.action == "card.verify_unlock")
        ))  # fmt: skip
    assert len(actors) == 2
    assert all(x.startswith("api:") for x in actors)


async def test_rate_limit_per_key(api: Api) -> None:
    from ivr.api.deps import ApiDeps
    from ivr.web.app import create_app

    a = await api.tenant("행복치과")
    deps = ApiDeps.from_runtime(api.runtime)
    deps = ApiDeps(**{**deps.__dict__, "settings": deps.settings.model_copy(
        update={"rate_limit_per_minute": 3})})  # fmt: skip
    app = create_app(deps)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", headers=a.auth
    ) as c:
        codes = [(await c.get("/v1/customers")).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = await c.get("/v1/customers")
        assert problem(r)["code"] == "rate-limited"
        assert int(r.headers["retry-after"]) >= 1


async def test_a_refund_the_pg_did_not_answer_is_accepted_not_created(api: Api) -> None:
    """A refund whose outcome is unknown (the PG dropped the request) answers 202 with
    its open status: the merchant looks again; it is never reported as done."""
    a = await api.tenant("행복치과")
    r = await a.client.post(
        "/v1/charges", json={"card_id": a.card_id, "amount": 30_000, "order_name": "진료비"}
    )
    assert r.status_code == 201, r.text
    pay = r.json()
    await api.sandbox.fault("cancel", "drop_before_record")
    r = await a.client.post(f"/v1/payments/{pay['id']}/refunds", json={"amount": 10_000})
    assert r.status_code == 202, r.text
    assert r.json()["status"] in ("pending", "unknown")
    r = await a.client.get(f"/v1/payments/{pay['id']}")
    assert r.json()["status"] == "succeeded"
    assert r.json()["refunded_amount"] == 0
