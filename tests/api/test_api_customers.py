"""Customers: update (a new mobile cancels open requests and releases their leases),
delete (cards and vault records erased, personal data removed, consent evidence kept)
and search by name, mobile and external_ref (#31 item 4)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ivr.domain.states import CallRequestStatus, LeaseStatus
from ivr.store.tables import AuditLog, CallRequest, Card, Customer, Lease, WebhookEvent
from tests.api.conftest import Api, problem
from tests.api.test_api_consent_evidence import consented_request

pytestmark = pytest.mark.anyio


async def test_update_changes_name_and_ref_and_refuses_a_taken_ref(api: Api) -> None:
    t = await api.tenant("행복치과")
    other = await t.client.post(
        "/v1/customers", json={"mobile": "010-2222-3333", "external_ref": "p-2"}
    )
    assert other.status_code == 201
    r = await t.client.patch(
        f"/v1/customers/{t.customer_id}", json={"name": "김민수", "external_ref": "p-1"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["name"], body["external_ref"], body["cancelled_call_requests"]) == (
        "김민수",
        "p-1",
        [],
    )
    taken = await t.client.patch(f"/v1/customers/{t.customer_id}", json={"external_ref": "p-2"})
    assert taken.status_code == 409
    assert problem(taken)["code"] == "conflict"
    bad = await t.client.patch(f"/v1/customers/{t.customer_id}", json={"mobile": "02-123-4567"})
    assert bad.status_code == 422
    empty = await t.client.patch(f"/v1/customers/{t.customer_id}", json={})
    assert empty.status_code == 422
    cleared = await t.client.patch(f"/v1/customers/{t.customer_id}", json={"external_ref": None})
    assert cleared.json()["external_ref"] is None
    async with api.db.sessions() as s:
        rows = list(await s.scalars(select(AuditLog).where(AuditLog.action == "customer.update")))
    assert len(rows) == 2
    assert "김민수" not in str([r.details for r in rows])  # which fields, not their values


async def test_a_new_mobile_cancels_open_requests_and_releases_their_leases(api: Api) -> None:
    t = await api.tenant("행복치과")
    made = [
        (
            await t.client.post("/v1/registration-requests", json={"customer_id": t.customer_id})
        ).json()["id"]
        for _ in range(2)
    ]
    r = await t.client.patch(f"/v1/customers/{t.customer_id}", json={"mobile": "010 7777 8888"})
    assert r.status_code == 200, r.text
    assert r.json()["mobile"] == "010-7777-8888"
    assert r.json()["cancelled_call_requests"] == sorted(made)
    async with api.db.sessions() as s:
        reqs = list(await s.scalars(select(CallRequest).where(CallRequest.id.in_(made))))
        leases = list(await s.scalars(select(Lease).where(Lease.call_request_id.in_(made))))
    assert {x.status for x in reqs} == {CallRequestStatus.cancelled.value}
    assert {x.status for x in leases} == {LeaseStatus.released.value}
    # a new request goes to the new mobile
    new = await t.client.post("/v1/registration-requests", json={"customer_id": t.customer_id})
    assert new.json()["mobile"] == "010-7777-8888"
    # the same mobile again changes nothing and cancels nothing
    same = await t.client.patch(f"/v1/customers/{t.customer_id}", json={"mobile": "01077778888"})
    assert same.json()["cancelled_call_requests"] == []


async def test_a_customer_in_a_call_keeps_the_mobile_and_is_not_deleted(api: Api) -> None:
    t = await api.tenant("행복치과")
    rid = (
        await t.client.post("/v1/registration-requests", json={"customer_id": t.customer_id})
    ).json()["id"]
    await api.runtime.services.requests.transition(rid, CallRequestStatus.in_call, actor="call")
    r = await t.client.patch(f"/v1/customers/{t.customer_id}", json={"mobile": "010-7777-8888"})
    assert r.status_code == 409
    assert problem(r)["code"] == "customer-in-call"
    d = await t.client.delete(f"/v1/customers/{t.customer_id}")
    assert problem(d)["code"] == "customer-in-call"
    got = (await t.client.get(f"/v1/customers/{t.customer_id}")).json()
    assert got["mobile"] == "010-9000-5678"
    assert got["deleted_at"] is None


async def test_search_by_name_mobile_and_ref_in_the_merchant_scope(api: Api) -> None:
    a = await api.tenant("행복치과")
    b = await api.tenant("튼튼헬스")
    for c, body in [
        (a, {"mobile": "010-3333-4444", "name": "김민수", "external_ref": "m-1"}),
        (a, {"mobile": "010-3333-5555", "name": "이민수"}),
        (a, {"mobile": "010-3333-6666", "name": "박영희"}),
        (b, {"mobile": "010-3333-4444", "name": "김민수", "external_ref": "m-1"}),
    ]:
        assert (await c.client.post("/v1/customers", json=body)).status_code == 201

    async def names(**params: str) -> list[str]:
        r = await a.client.get("/v1/customers", params=params)
        assert r.status_code == 200, r.text
        return sorted(x["name"] for x in r.json()["data"])

    assert await names(name="민수") == ["김민수", "이민수"]
    assert await names(name="김") == ["김민수"]
    assert await names(name="%") == []  # LIKE wildcards are literal
    assert await names(mobile="01033334444") == ["김민수"]
    assert await names(mobile="+82 10-3333-4444") == ["김민수"]
    assert await names(external_ref="m-1") == ["김민수"]
    assert await names(name="민수", mobile="010-3333-5555") == ["이민수"]
    for bad in ("02-123-4567", "010-3333"):  # not a mobile: refused, not "no match"
        r = await a.client.get("/v1/customers", params={"mobile": bad})
        assert r.status_code == 422


async def test_delete_erases_cards_removes_personal_data_and_keeps_consent(api: Api) -> None:
    t = await api.tenant("행복치과")
    await t.client.patch(
        f"/v1/customers/{t.customer_id}", json={"name": "김민수", "external_ref": "p-1"}
    )
    rid = await consented_request(api, t)
    sch = await t.client.post(
        "/v1/schedules",
        json={
            "customer_id": t.customer_id,
            "card_id": t.card_id,
            "amount": 1000,
            "order_name": "월회비",
            "plan": {"rule": {"every": "month", "day": 5}, "start": "2027-01-05"},
        },
    )
    assert sch.status_code == 201, sch.text
    before = (await api.runtime.vault.status()).records
    r = await t.client.delete(f"/v1/customers/{t.customer_id}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["name"], body["mobile"], body["external_ref"]) == ("", "", None)
    assert body["deleted_at"] is not None
    assert body["cancelled_call_requests"] == [rid]
    assert (await api.runtime.vault.status()).records == before - 1
    async with api.db.sessions() as s:
        card = await s.get(Card, t.card_id)
        row = await s.get(Customer, t.customer_id)
        req = await s.get(CallRequest, rid)
        events = list(
            await s.scalars(select(WebhookEvent).where(WebhookEvent.type == "customer.deleted"))
        )
    assert card is not None
    assert card.status == "deleted"
    assert row is not None
    assert (row.name, row.mobile, row.external_ref) == ("", "", None)
    assert req is not None
    assert req.status == CallRequestStatus.cancelled.value
    assert len(events) == 1
    assert t.customer_id in str(events[0].payload)
    schedule = (await t.client.get(f"/v1/schedules/{sch.json()['id']}")).json()
    assert schedule["status"] == "cancelled"
    # the consent evidence stays verifiable (what `arspay consent verify` runs)
    verified = await api.runtime.services.consent.verify()
    assert verified.ok, verified.problem
    assert verified.records == 2
    export = await t.client.get(f"/v1/call-requests/{rid}/consent")
    assert export.status_code == 200
    assert len(export.json()["records"]) == 2
    # gone from lists and searches; nothing new is made for it; deleting again is fine
    listed = (await t.client.get("/v1/customers")).json()["data"]
    assert t.customer_id not in [x["id"] for x in listed]
    assert (await t.client.get("/v1/customers", params={"external_ref": "p-1"})).json()[
        "data"
    ] == []
    again = await t.client.post("/v1/registration-requests", json={"customer_id": t.customer_id})
    assert problem(again)["code"] == "customer-deleted"
    edit = await t.client.patch(f"/v1/customers/{t.customer_id}", json={"name": "x"})
    assert problem(edit)["code"] == "customer-deleted"
    twice = await t.client.delete(f"/v1/customers/{t.customer_id}")
    assert twice.status_code == 200
    # the ref is free for a new customer
    new = await t.client.post(
        "/v1/customers", json={"mobile": "010-9000-5678", "external_ref": "p-1"}
    )
    assert new.status_code == 201
