"""Customers: the merchant's payers (a mobile number and the merchant's own ref)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request

from ivr.api import schemas as S
from ivr.api.route import actor
from ivr.api.routes.common import WRITE_ERRORS, Deps, Me, Paging, owned, retried
from ivr.api.routes.common import router as make_router
from ivr.api.routes.listing import listed
from ivr.errors import InvalidInput
from ivr.merchants.customer_changes import CustomerChanges
from ivr.merchants.queries import customers
from ivr.phone import PhoneError, normalize_mobile
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


@router.get("/customers", summary="List or search customers (deleted ones are left out)")
async def list_customers(
    d: Deps,
    me: Me,
    page: Paging,
    external_ref: Annotated[str | None, Query(max_length=100)] = None,
    name: Annotated[str, Query(max_length=100, description="a part of the name")] = "",
    mobile: Annotated[str, Query(max_length=20, description="exact, any format")] = "",
) -> S.Page[S.CustomerOut]:
    digits = ""
    if mobile:
        try:
            digits = normalize_mobile(mobile).digits
        except PhoneError as exc:
            raise InvalidInput(f"mobile: {exc}") from None
    q = customers(Scope.of(me.merchant_id), external_ref=external_ref, name=name, mobile=digits)
    return await listed(d, page, S.Page[S.CustomerOut], q, Customer.id, views.customer)


@router.get("/customers/{customer_id}")
async def get_customer(customer_id: str, d: Deps, me: Me) -> S.CustomerOut:
    async with d.db.sessions() as s:
        return views.customer(await owned(s, Customer, customer_id, me.merchant_id, "customer"))


def _changes(d: Deps) -> CustomerChanges:
    return CustomerChanges(d.db, d.clock, d.requests, d.cards)


@router.patch(
    "/customers/{customer_id}",
    responses=WRITE_ERRORS,
    summary="Change name, mobile or external_ref (a new mobile cancels open requests)",
)
async def update_customer(
    customer_id: str, body: S.CustomerPatch, d: Deps, me: Me
) -> S.CustomerChangeOut:
    given = body.model_dump(include=body.model_fields_set)
    if given.get("mobile", "") is None or given.get("name", "") is None:
        raise InvalidInput("mobile and name cannot be null")
    done = await _changes(d).update(me.merchant_id, customer_id, fields=given, actor=actor(me))
    return views.customer_change(done.customer, done.cancelled)


@router.delete(
    "/customers/{customer_id}",
    responses=WRITE_ERRORS,
    summary="Delete: cards and vault records erased, open requests and schedules "
    "cancelled, personal data removed; payments and consent evidence kept",
)
async def delete_customer(customer_id: str, d: Deps, me: Me) -> S.CustomerChangeOut:
    done = await _changes(d).delete(me.merchant_id, customer_id, actor=actor(me))
    return views.customer_change(done.customer, done.cancelled)
