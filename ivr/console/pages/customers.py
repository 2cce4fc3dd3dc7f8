"""Customers: list (search by the merchant's external ref or the mobile's last 4
digits), detail with the customer's cards, call requests, payments and schedules, and
the form that adds a customer (:meth:`CustomerService.create`, as the API does), and
on the detail page the forms that edit and delete one (:class:`CustomerChanges`, as
the API's PATCH and DELETE; the delete asks for its confirmation box).

A mobile number is shown masked everywhere (``010-****-5678``); a card only as BIN +
last 4."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from ivr.console.access import Deps, Reader, Viewer, Writer
from ivr.console.pages.cards import labels as card_labels
from ivr.console.pages.common import (
    echoable,
    fetch_owned,
    merchant_names,
    owned,
    page_of,
    refused_text,
    scope_of,
)
from ivr.console.pages.fields import ConfirmField, CursorParam, FlagParam, IdField
from ivr.console.pages.payments import labels as payment_labels
from ivr.console.pages.schedules import labels as schedule_labels
from ivr.console.render import page
from ivr.errors import Conflict, CustomerInCall, InvalidInput, NotFound
from ivr.merchants.customer_changes import CustomerChanges
from ivr.merchants.queries import customers, newest_of_customer
from ivr.store.tables import CallRequest, Card, Customer, PaymentIntent, Schedule

router = APIRouter()
RELATED = 50  # rows of each kind on the detail page (newest first)


@router.get("/customers")
async def list_customers(
    request: Request,
    deps: Deps,
    who: Reader,
    q: Annotated[str, Query(max_length=100)] = "",
    cursor: CursorParam = None,
) -> Response:
    term = q.strip()
    query = customers(scope_of(who), search=term)
    async with deps.api.db.sessions() as s:
        rows, nxt = await page_of(s, query, Customer.id, cursor)
        names = await merchant_names(s, who)
    return page(request, who, "customers.html", rows=rows, names=names, next_cursor=nxt, q=term,
                form=None)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CustomerForm:
    merchant_id: str = ""
    mobile: str = ""
    name: str = ""
    external_ref: str = ""
    error: str | None = None


async def _form(request: Request, deps: Deps, who: Viewer, form: CustomerForm,
                status_code: int = 200) -> Response:  # fmt: skip
    async with deps.api.db.sessions() as s:
        names = await merchant_names(s, who)
    return page(request, who, "customers.html", status_code=status_code, form=form,
                names=names, rows=[], next_cursor=None, q="")  # fmt: skip


@router.get("/customers/new")
async def new_customer(request: Request, deps: Deps, who: Reader) -> Response:
    return await _form(request, deps, who, CustomerForm())


@router.post("/customers")
async def create_customer(
    request: Request,
    deps: Deps,
    who: Writer,
    mobile: Annotated[str, Form(max_length=40)] = "",
    name: Annotated[str, Form(max_length=100)] = "",
    external_ref: Annotated[str, Form(max_length=100)] = "",
    merchant_id: IdField = "",
) -> Response:
    form = CustomerForm(merchant_id, mobile, name, external_ref)
    chosen = who.scope or merchant_id
    async with deps.api.db.sessions() as s:
        allowed = chosen in await merchant_names(s, who)
    if not allowed:
        return await _form(request, deps, who, _failed(form, who.t("cus.choose_merchant")), 422)
    try:
        row = await deps.api.customers.create(
            chosen, mobile=mobile, name=name, external_ref=external_ref.strip() or None,
            actor=who.actor,
        )  # fmt: skip
    except InvalidInput as exc:
        key = "cus.bad_mobile" if exc.message.startswith("mobile") else "cus.bad_input"
        if refused_text(mobile, name, external_ref):
            key = "common.text_refused"
        return await _form(request, deps, who, _failed(form, who.t(key)), 422)
    except Conflict:
        return await _form(request, deps, who, _failed(form, who.t("cus.ref_taken")), 422)
    except NotFound:
        return await _form(request, deps, who, _failed(form, who.t("cus.choose_merchant")), 422)
    return RedirectResponse(f"/console/customers/{row.id}?created=1", status_code=303)


def _failed(form: CustomerForm, error: str) -> CustomerForm:
    return CustomerForm(form.merchant_id, echoable(form.mobile), echoable(form.name),
                        echoable(form.external_ref), error)  # fmt: skip


@router.get("/customers/{customer_id}")
async def show_customer(
    customer_id: str,
    request: Request,
    deps: Deps,
    who: Reader,
    created: FlagParam = None,
    updated: FlagParam = None,
) -> Response:
    flash = "cus.created" if created else "cus.updated" if updated else None
    return await _show(request, deps, who, customer_id, flash=flash)


async def _show(request: Request, deps: Deps, who: Viewer, customer_id: str, *,
                flash: str | None = None, error: str | None = None,
                status_code: int = 200) -> Response:  # fmt: skip
    async with deps.api.db.sessions() as s:
        row = await owned(s, Customer, customer_id, who, "customer")
        scope = scope_of(who)
        cards = await newest_of_customer(s, scope, Card, row.id, RELATED)
        requests = await newest_of_customer(s, scope, CallRequest, row.id, RELATED)
        payments = await newest_of_customer(s, scope, PaymentIntent, row.id, RELATED)
        schedules = await newest_of_customer(s, scope, Schedule, row.id, RELATED)
        names = await merchant_names(s, who)
    return page(
        request, who, "customer.html", status_code=status_code, c=row, cards=cards,
        requests=requests, payments=payments, schedules=schedules, names=names,
        flash=flash, error=error,
        **payment_labels(who), **schedule_labels(who), **card_labels(who),
    )  # fmt: skip


def _changes(deps: Deps) -> CustomerChanges:
    api = deps.api
    return CustomerChanges(api.db, api.clock, api.requests, api.cards)


@router.post("/customers/{customer_id}/edit")
async def edit_customer(
    customer_id: str,
    request: Request,
    deps: Deps,
    who: Writer,
    mobile: Annotated[str, Form(max_length=40)] = "",
    name: Annotated[str, Form(max_length=100)] = "",
    external_ref: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Name and external ref as given; the mobile only when a new one is typed (the
    page shows it masked). A new mobile cancels the open call requests (see
    :mod:`ivr.merchants.customer_changes`)."""
    row = await fetch_owned(deps.api.db, Customer, customer_id, who, "customer")
    fields: dict[str, str | None] = {"name": name, "external_ref": external_ref.strip() or None}
    if mobile.strip():
        fields["mobile"] = mobile
    try:
        await _changes(deps).update(row.merchant_id, row.id, fields=fields, actor=who.actor)
    except InvalidInput as exc:
        key = "cus.bad_mobile" if exc.message.startswith("mobile") else "cus.bad_input"
        if refused_text(mobile, name, external_ref):
            key = "common.text_refused"
        return await _show(request, deps, who, row.id, error=who.t(key), status_code=422)
    except CustomerInCall:
        return await _show(request, deps, who, row.id, error=who.t("cus.in_call"), status_code=409)
    except Conflict:
        return await _show(
            request, deps, who, row.id, error=who.t("cus.ref_taken"), status_code=409
        )
    return RedirectResponse(f"/console/customers/{row.id}?updated=1", status_code=303)


@router.post("/customers/{customer_id}/delete")
async def delete_customer(
    customer_id: str,
    request: Request,
    deps: Deps,
    who: Writer,
    confirm: ConfirmField = "",
) -> Response:
    """Delete after the confirmation box (:meth:`CustomerChanges.delete`, as the API's
    ``DELETE /v1/customers/{id}``)."""
    row = await fetch_owned(deps.api.db, Customer, customer_id, who, "customer")
    if confirm != "yes":
        error = who.t("cus.confirm_needed")
        return await _show(request, deps, who, row.id, error=error, status_code=422)
    try:
        await _changes(deps).delete(row.merchant_id, row.id, actor=who.actor)
    except CustomerInCall:
        return await _show(request, deps, who, row.id, error=who.t("cus.in_call"), status_code=409)
    return RedirectResponse(f"/console/customers/{row.id}?updated=1", status_code=303)
