"""Customers: the merchant's payers (a mobile number and the merchant's own ref)."""

from __future__ import annotations

from fastapi import Request

from ivr.api import schemas as S
from ivr.api.route import actor
from ivr.api.routes.common import WRITE_ERRORS, Deps, Me, Paging, owned, retried
from ivr.api.routes.common import router as make_router
from ivr.api.routes.listing import listed
from ivr.merchants.queries import customers
from ivr.store.scope import Scope
from ivr.store.tables import Customer
from ivr.web import views

router = make_router("customers")


@router.post("/customers", status_code=201, responses=WRITE_ERRORS)
async def create_customer(body: S.CustomerIn, request: Request, d: Deps, me: Me) -> S.CustomerOut:
    rid, done = await retried(request, d, me, Customer, "cus")
    if done is not None:
        return views.customer(done)
    row = await d.customers.create(
        me.merchant_id,
        mobile=body.mobile,
        name=body.name,
        external_ref=body.external_ref,
        actor=actor(me),
        customer_id=rid,
    )
    return views.customer(row)


@router.get("/customers")
async def list_customers(
    d: Deps, me: Me, page: Paging, external_ref: str | None = None
) -> S.Page[S.CustomerOut]:
    q = customers(Scope.of(me.merchant_id), external_ref=external_ref)
    return await listed(d, page, S.Page[S.CustomerOut], q, Customer.id, views.customer)


@router.get("/customers/{customer_id}")
async def get_customer(customer_id: str, d: Deps, me: Me) -> S.CustomerOut:
    async with d.db.sessions() as s:
        return views.customer(await owned(s, Customer, customer_id, me.merchant_id, "customer"))
