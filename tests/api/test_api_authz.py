"""Merchant B cannot read or change merchant A's objects, on every endpoint.

The table lists every route of the app (a test fails when a route is added without a
row). Each row is a request B makes with A's object ids; the answer must be 404 — the
same as for an id that does not exist, so B learns nothing — or, for list endpoints,
a page without any of A's objects. Afterwards A's objects are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from ivr.api.app import ROUTERS
from ivr.api.route import ApiRoute
from ivr.webhooks.events import emit_in
from tests.api.conftest import Api, Tenant

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # a route path; {names} are filled with A's ids
    body: dict[str, Any] | None = None
    listing: bool = False  # 200 with none of A's ids instead of 404
    file: bool = False  # 200 with a file (not JSON) naming none of A's ids


def _a_card_row(ids: dict[str, str]) -> dict[str, Any]:
    return {"ref": "r1", "card_id": ids["card_id"], "amount": 1000, "order_name": "x"}


TABLE = [
    Row("POST", "/v1/customers", {"mobile": "010-5555-6666"}, listing=True),
    Row("GET", "/v1/customers", listing=True),
    Row("GET", "/v1/customers/{customer_id}"),
    Row("PATCH", "/v1/customers/{customer_id}", {"mobile": "010-5555-7777"}),
    Row("DELETE", "/v1/customers/{customer_id}"),
    Row("POST", "/v1/registration-requests", {"customer_id": "{customer_id}"}),
    Row(
        "POST",
        "/v1/payment-requests",
        {"customer_id": "{customer_id}", "product_name": "x", "amount": 1000},
    ),
    Row("GET", "/v1/call-requests", listing=True),
    Row("GET", "/v1/call-requests/{request_id}"),
    Row("POST", "/v1/call-requests/{request_id}/cancel"),
    Row("GET", "/v1/call-requests/{request_id}/sessions"),
    Row("GET", "/v1/call-requests/{request_id}/consent"),
    Row("POST", "/v1/charges", {"card_id": "{card_id}", "amount": 1000, "order_name": "x"}),
    Row("GET", "/v1/payments", listing=True),
    Row("GET", "/v1/payments/{payment_id}"),
    Row("POST", "/v1/payments/{payment_id}/refunds", {"amount": 100}),
    Row("GET", "/v1/cards", listing=True),
    Row("GET", "/v1/cards/{card_id}"),
    Row("DELETE", "/v1/cards/{card_id}"),
    Row("POST", "/v1/cards/{card_id}/unlock"),
    Row(
        "POST",
        "/v1/schedules",
        {
            "customer_id": "{customer_id}",
            "card_id": "{card_id}",
            "amount": 1000,
            "order_name": "x",
            "plan": {"rule": {"every": "month", "day": 1}, "start": "2027-01-01"},
        },
    ),
    Row("GET", "/v1/schedules", listing=True),
    Row("GET", "/v1/schedules/{schedule_id}"),
    Row("GET", "/v1/schedules/{schedule_id}/timeline"),
    Row("POST", "/v1/schedules/{schedule_id}/pause"),
    Row("POST", "/v1/schedules/{schedule_id}/resume"),
    Row("POST", "/v1/schedules/{schedule_id}/cancel"),
    Row("POST", "/v1/bulk-jobs", {"rows": ["{a_card_row}"]}, listing=True),
    Row("POST", "/v1/bulk-jobs/upload", listing=True),
    Row("GET", "/v1/bulk-jobs/{bulk_id}"),
    Row("GET", "/v1/bulk-jobs/{bulk_id}/results"),
    Row("GET", "/v1/bulk-templates/{kind}", file=True),  # the same for every merchant
    Row("POST", "/v1/card-migrations", {"to_account": "default"}, listing=True),
    Row("GET", "/v1/card-migrations/{migration_id}"),
    Row("POST", "/v1/webhook-endpoints", {"url": "https://b.example/hook"}, listing=True),
    Row("GET", "/v1/webhook-endpoints", listing=True),
    Row("GET", "/v1/webhook-endpoints/{endpoint_id}"),
    Row("PATCH", "/v1/webhook-endpoints/{endpoint_id}", {"url": "https://evil.example/h"}),
    Row("DELETE", "/v1/webhook-endpoints/{endpoint_id}"),
    Row("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"),
    Row("GET", "/v1/notice-settings", listing=True),  # each merchant's own
    Row("PATCH", "/v1/notice-settings", {"refund": False}, listing=True),
    Row("GET", "/v1/events", listing=True),
    Row("GET", "/v1/events/{event_id}"),
    Row("POST", "/v1/events/{event_id}/redeliver", {}),
    Row("GET", "/v1/pg-accounts", listing=True),
    Row(
        "POST",
        "/v1/pg-accounts",
        {"id": "b-own-pg", "kind": "sandbox", "api_key": "k", "api_secret": "s"},
        listing=True,  # a new account of the caller's own: no other merchant's id in it
    ),
    Row("GET", "/v1/pg-accounts/{account_id}"),
    Row("PATCH", "/v1/pg-accounts/{account_id}", {"name": "x"}),
    Row("GET", "/v1/pg-routes", listing=True),  # the caller's own: no object id to fill in
    Row("PUT", "/v1/pg-routes", {"primary": "default", "secondary": None}, listing=True),
]


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        if value == "{a_card_row}":
            return _a_card_row(ids)
        return value.format(**ids) if "{" in value else value
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


def request_kw(row: Row, ids: dict[str, str]) -> dict[str, Any]:
    """The body (or file) of ``row``'s request, A's ids filled in."""
    kw: dict[str, Any] = {}
    if row.body is not None:
        kw["json"] = _fill(row.body, ids)
    if row.path.endswith("/upload"):
        csv = f"ref,card_id,amount,order_name\nr1,{ids['card_id']},1000,x\n"
        kw["files"] = {"file": ("rows.csv", csv.encode(), "text/csv")}
    return kw


async def a_objects(api: Api, a: Tenant) -> dict[str, str]:
    """One of every object, owned by A."""
    c = a.client
    pay = (
        await c.post("/v1/charges", json={"card_id": a.card_id, "amount": 5000, "order_name": "x"})
    ).json()
    req = (await c.post("/v1/registration-requests", json={"customer_id": a.customer_id})).json()
    sch = (
        await c.post(
            "/v1/schedules",
            json={
                "customer_id": a.customer_id,
                "card_id": a.card_id,
                "amount": 1000,
                "order_name": "월회비",
                "plan": {"rule": {"every": "month", "day": 5}, "start": "2027-01-05"},
            },
        )
    ).json()
    bulk = await c.post("/v1/bulk-jobs", json={"rows": [_a_card_row({"card_id": a.card_id})]})
    ep = (await c.post("/v1/webhook-endpoints", json={"url": "https://a.example/hook"})).json()
    moving = (await c.post("/v1/card-migrations", json={"to_account": "default"})).json()
    own_id = f"own-{a.merchant_id[-8:].lower()}"  # account ids are one namespace
    own = {"id": own_id, "kind": "sandbox", "api_key": "k", "api_secret": "s"}
    assert (await c.post("/v1/pg-accounts", json=own)).status_code == 201
    async with api.db.transaction() as s:
        event = await emit_in(s, api.clock, a.merchant_id, "payment.succeeded", {"id": pay["id"]})
    return {
        "customer_id": a.customer_id,
        "card_id": a.card_id,
        "payment_id": pay["id"],
        "request_id": req["id"],
        "schedule_id": sch["id"],
        "bulk_id": bulk.json()["id"],
        "endpoint_id": ep["id"],
        "event_id": event.id,
        "migration_id": moving["id"],
        "account_id": own_id,
    }


# Routes no API key opens: the PG calls them, signed (tests/api/test_api_pg_webhooks.py).
NOT_A_MERCHANTS = {
    ("POST", "/v1/pg/portone-v2/webhooks"),
    ("POST", "/v1/pg/portone-v2/webhooks/{account_id}"),
}


async def test_the_table_covers_every_route(api: Api) -> None:
    routes = {
        (m, r.path)
        for router in ROUTERS
        for r in router.routes
        if isinstance(r, ApiRoute)
        for m in r.methods
    }
    documented = {
        (method.upper(), path)
        for path, ops in api.app.openapi()["paths"].items()
        for method in ops
        if path not in ("/health", "/ready")  # the operator's probes (ivr/api/probes.py)
    }
    assert routes == documented - NOT_A_MERCHANTS
    assert routes == {(row.method, row.path) for row in TABLE}


async def snapshot(a: Tenant, ids: dict[str, str]) -> list[Any]:
    c = a.client
    return [
        (await c.get(f"/v1/customers/{ids['customer_id']}")).json(),
        (await c.get(f"/v1/cards/{ids['card_id']}")).json(),
        (await c.get(f"/v1/payments/{ids['payment_id']}")).json(),
        (await c.get(f"/v1/call-requests/{ids['request_id']}")).json(),
        (await c.get(f"/v1/schedules/{ids['schedule_id']}")).json(),
        (await c.get(f"/v1/webhook-endpoints/{ids['endpoint_id']}")).json(),
        (await c.get(f"/v1/events/{ids['event_id']}")).json(),
    ]


async def test_merchant_b_cannot_touch_merchant_a(api: Api) -> None:
    a = await api.tenant("행복치과")
    b = await api.tenant("푸른학원")
    ids = await a_objects(api, a)
    before = await snapshot(a, ids)
    for row in TABLE:
        path = row.path.format(**ids, kind="charges")
        r = await b.client.request(row.method, path, **request_kw(row, ids))
        where = f"{row.method} {row.path}: {r.status_code} {r.text[:200]}"
        if row.file:
            assert r.status_code == 200, where
            assert not any(i.encode() in r.content for i in ids.values()), where
        elif row.listing:
            assert r.status_code in (200, 201), where
            assert not set(ids.values()) & set(_ids_in(r.json())), where
        else:
            assert r.status_code == 404, where
            assert r.json()["code"] == "not-found", where
    await api.runtime.bulk.charges.run(until_idle=True)  # B's bulk rows name A's card
    after = await snapshot(a, ids)
    assert after == before
    assert (await b.client.get("/v1/payments")).json()["data"] == []
    a_paid = (await a.client.get("/v1/payments")).json()["data"]
    assert len(a_paid) == 2  # A's charge and A's own bulk row; nothing from B


def _ids_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _ids_in(v)]
    if isinstance(value, list):
        return [x for v in value for x in _ids_in(v)]
    return [value] if isinstance(value, str) else []
