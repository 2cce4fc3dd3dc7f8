"""PG accounts as a merchant sees them (GET /v1/pg-accounts, GET/PUT /v1/pg-routes):
no credential ever leaves the API, routes are the caller's own and audited."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from ivr.api.app import ROUTERS
from ivr.api.route import ApiRoute
from ivr.store.tables import AuditLog, IdempotencyKey
from tests.api.conftest import Api, problem
from tests.stored import stored

pytestmark = pytest.mark.anyio

API_SECRET = "sk_live_CANARY_api_0123456789"
WEBHOOK_SECRET = "whsec_CANARY_hook_9876543210"
API_KEY = "imp_CANARY_key_55667788"


async def _accounts(api: Api) -> None:
    pg = api.runtime.services.pg_accounts
    await pg.create("ksnet-main", actor="ops", kind="portone", api_key=API_KEY,
                    api_secret=API_SECRET, webhook_secret=WEBHOOK_SECRET,
                    options={"channel_key": "channel-key-1", "pg": "ksnet"})  # fmt: skip
    await pg.create("backup-pg", actor="ops", kind="sandbox", api_key="k", api_secret="s")
    await pg.create("old-pg", actor="ops", kind="sandbox", api_key="k", api_secret="s")
    await pg.update("old-pg", actor="ops", status="disabled")


async def test_the_secrets_never_leave_the_api(api: Api) -> None:
    """A canary secret: created, then every GET of the API and the routes' writes (and
    their idempotency records and audit) — the canaries appear nowhere."""
    a = await api.tenant("행복치과")
    await _accounts(api)
    bodies = []
    put = await a.client.put("/v1/pg-routes", json={"primary": "ksnet-main", "secondary": None},
                             headers={"Idempotency-Key": "routes-1"})  # fmt: skip
    assert put.status_code == 200, put.text
    bodies.append(put.text)
    gets = sorted(
        r.path
        for router in ROUTERS
        for r in router.routes
        if isinstance(r, ApiRoute) and "GET" in (r.methods or ()) and "{" not in r.path
    )
    assert {"/v1/pg-accounts", "/v1/pg-routes"} <= set(gets)
    for path in gets:
        r = await a.client.get(path)
        assert r.status_code == 200, (path, r.text)
        bodies.append(r.text)
    refused = await a.client.put("/v1/pg-routes", json={"primary": "ksnet-main",
                                                        "secondary": "ksnet-main"})  # fmt: skip
    bodies.append(refused.text)
    seen = "\n".join(bodies)
    for canary in (API_SECRET, WEBHOOK_SECRET, API_KEY, API_SECRET[-8:], WEBHOOK_SECRET[-8:]):
        assert canary not in seen
    async with api.db.sessions() as s:
        audits = [json.dumps(a.details) for a in (await s.scalars(select(AuditLog))).all()]
        records = (await s.scalars(select(IdempotencyKey))).all()
    assert records
    assert not [x for x in audits + [str(r.__dict__) for r in records] if API_SECRET in x]
    assert await stored(api.db, [API_SECRET, WEBHOOK_SECRET]) == []  # sealed, not in clear


async def test_a_merchant_lists_the_accounts_it_can_route_to(api: Api) -> None:
    a = await api.tenant("행복치과")
    await _accounts(api)
    listed = (await a.client.get("/v1/pg-accounts")).json()
    assert [x["id"] for x in listed] == ["default", "backup-pg", "ksnet-main"]  # not disabled
    ksnet = listed[2]
    assert ksnet["api_key"] == "••••7788"
    assert set(ksnet) == {"id", "name", "kind", "status", "default", "api_key", "updated_at",
                          "owned"}  # fmt: skip
    assert listed[0]["default"] is True


async def test_routes_are_the_callers_own_and_audited(api: Api) -> None:
    a = await api.tenant("행복치과")
    b = await api.tenant("푸른학원")
    await _accounts(api)
    assert (await a.client.get("/v1/pg-routes")).json() == {"primary": "default",
                                                            "secondary": None}  # fmt: skip
    r = await a.client.put("/v1/pg-routes", json={"primary": "ksnet-main", "secondary": "default"})
    assert r.status_code == 200, r.text
    assert r.json() == {"primary": "ksnet-main", "secondary": "default"}
    assert (await a.client.get("/v1/pg-routes")).json() == r.json()
    assert (await b.client.get("/v1/pg-routes")).json()["primary"] == "default"
    async with api.db.sessions() as s:
        audit = (
            await s.scalars(select(AuditLog).where(AuditLog.action == "merchant.pg_routes"))
        ).one()
    assert (audit.object_id, audit.merchant_id) == (a.merchant_id, a.merchant_id)
    assert audit.actor.startswith("api:")
    assert audit.details == {"primary": "ksnet-main", "secondary": "default"}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"primary": "nope-pg"}, 422, "invalid-input"),
        ({"primary": "ksnet-main", "secondary": "nope-pg"}, 422, "invalid-input"),
        ({"primary": "backup-pg", "secondary": "backup-pg"}, 422, "invalid-input"),
        ({"primary": "old-pg"}, 409, "conflict"),
        ({"primary": "Bad Id"}, 422, "validation-failed"),
        ({"primary": "4000056655665556"}, 422, "validation-failed"),
        ({"secondary": "backup-pg"}, 422, "validation-failed"),
        ({"primary": "default", "colour": "red"}, 422, "validation-failed"),
    ],
)
async def test_refused_routes(api: Api, body: dict[str, str], status: int, code: str) -> None:
    a = await api.tenant("행복치과")
    await _accounts(api)
    r = await a.client.put("/v1/pg-routes", json=body)
    assert r.status_code == status, r.text
    assert problem(r)["code"] == code
    assert "4000056655665556" not in r.text
    assert (await a.client.get("/v1/pg-routes")).json()["primary"] == "default"  # unchanged


async def test_a_retried_put_is_replayed(api: Api) -> None:
    a = await api.tenant("행복치과")
    await _accounts(api)
    h = {"Idempotency-Key": "routes-2"}
    body = {"primary": "backup-pg", "secondary": None}
    first = await a.client.put("/v1/pg-routes", json=body, headers=h)
    again = await a.client.put("/v1/pg-routes", json=body, headers=h)
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json()
    other = await a.client.put("/v1/pg-routes", json={"primary": "default"}, headers=h)
    assert other.status_code == 422
    async with api.db.sessions() as s:
        q = select(AuditLog).where(AuditLog.action == "merchant.pg_routes")
        assert len((await s.scalars(q)).all()) == 1


async def test_a_merchant_brings_its_own_pg_account(api: Api) -> None:
    """POST/PATCH /v1/pg-accounts: the merchant's own contract, seen and routable by it
    alone; the secrets go in and never come out, not even in a refusal."""
    a = await api.tenant("행복치과")
    b = await api.tenant("다른치과")
    body = {"id": "my-ksnet", "name": "우리 KSNET", "kind": "portone", "api_key": API_KEY,
            "api_secret": API_SECRET, "webhook_secret": WEBHOOK_SECRET,
            "options": {"channel_key": "channel-key-9", "pg": "ksnet"}}  # fmt: skip
    seen: list[str] = []
    bad = await a.client.post("/v1/pg-accounts", json={**body, "kind": "toss"})
    assert bad.status_code == 422
    seen.append(bad.text)
    made = await a.client.post("/v1/pg-accounts", json=body, headers={"Idempotency-Key": "k1"})
    assert made.status_code == 201, made.text
    seen.append(made.text)
    assert made.json()["owned"] is True
    assert made.json()["api_key"] == "••••7788"
    again = await a.client.post("/v1/pg-accounts", json=body, headers={"Idempotency-Key": "k1"})
    assert again.json() == made.json()  # replayed, not a second account
    assert (await a.client.post("/v1/pg-accounts", json=body)).status_code == 409
    stored_account = await api.runtime.services.pg_accounts.get("my-ksnet")
    assert stored_account.api_secret == API_SECRET
    assert stored_account.merchant_id == a.merchant_id
    # the other merchant neither sees it nor routes to it nor changes it
    assert "my-ksnet" not in [x["id"] for x in (await b.client.get("/v1/pg-accounts")).json()]
    assert (await b.client.get("/v1/pg-accounts/my-ksnet")).status_code == 404
    assert (await b.client.patch("/v1/pg-accounts/my-ksnet", json={"name": "x"})).status_code == 404
    assert (await b.client.put("/v1/pg-routes", json={"primary": "my-ksnet"})).status_code == 422
    # its owner does, and changes it without resending the secret
    assert "my-ksnet" in [x["id"] for x in (await a.client.get("/v1/pg-accounts")).json()]
    routed = await a.client.put("/v1/pg-routes", json={"primary": "my-ksnet", "secondary": None})
    assert routed.status_code == 200, routed.text
    patched = await a.client.patch("/v1/pg-accounts/my-ksnet", json={"name": "KSNET 본점"})
    assert patched.status_code == 200, patched.text
    seen.append(patched.text)
    kept = await api.runtime.services.pg_accounts.get("my-ksnet")
    assert (kept.name, kept.api_secret, kept.options["pg"]) == ("KSNET 본점", API_SECRET, "ksnet")
    # an operators' account is not the merchant's to change
    await _accounts(api)
    assert (
        await a.client.patch("/v1/pg-accounts/backup-pg", json={"name": "x"})
    ).status_code == 404
    for path in ("/v1/pg-accounts", "/v1/pg-accounts/my-ksnet", "/v1/pg-routes"):
        seen.append((await a.client.get(path)).text)
    text = "\n".join(seen)
    for canary in (API_SECRET, WEBHOOK_SECRET, API_KEY, API_SECRET[-8:], WEBHOOK_SECRET[-8:]):
        assert canary not in text
    async with api.db.sessions() as s:
        audits = [json.dumps(x.details) for x in (await s.scalars(select(AuditLog))).all()]
        records = (await s.scalars(select(IdempotencyKey))).all()
    assert not [x for x in audits + [str(r.__dict__) for r in records] if API_SECRET in x]
    assert await stored(api.db, [API_SECRET, WEBHOOK_SECRET]) == []
