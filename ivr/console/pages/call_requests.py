"""Call requests: list (live), create a payment or registration request, detail with
each call's step timeline (live until the request ends), cancel.

A step shows its prompt id, its outcome and how long it took; where the payer keyed
something the page shows "•" marks, never digits (the engine never stored them)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from ivr.console.access import Deps, Reader, Writer
from ivr.console.pages.common import acting_merchant, fetch_owned, merchant_names, owned, scope_of
from ivr.console.pages.fields import IdField, StatusParam
from ivr.console.pages.lists import Asked, StatusPage, status_rows
from ivr.console.render import STOP_POLLING, page
from ivr.domain.states import CALL_REQUEST, CallRequestKind, CallRequestStatus
from ivr.merchants.queries import newest_customers
from ivr.requests.queries import call_requests, calls_of_in
from ivr.store.tables import CallRequest, CallStep, Customer

router = APIRouter()
STATUSES = [s.value for s in CallRequestStatus]
KEYED = frozenset({"max_digits", "terminator", "inter_digit_timeout", "repeat"})
SETTLE = timedelta(seconds=60)  # after the request ends, wait this long for its calls' ends


def keyed(step: CallStep) -> bool:
    """Whether the payer keyed something in this step (a collect that ended on keys):
    shown as "•••", never the digits, which the engine does not keep."""
    return step.step == "collect" and step.outcome in KEYED


Rows = list[tuple[CallRequest, Customer]]


async def _rows(deps: Deps, who: Reader, asked: StatusPage
                ) -> tuple[Rows, str | None, dict[str, str]]:  # fmt: skip
    found = await status_rows(deps, who, asked, query=call_requests, id_column=CallRequest.id,
                              statuses=STATUSES)  # fmt: skip
    rows = [(r, found.customers[r.customer_id]) for r in found.rows]
    return rows, found.next_cursor, found.names


@router.get("/call-requests")
async def list_requests(
    request: Request,
    deps: Deps,
    who: Reader,
    asked: Asked,
) -> Response:
    rows, nxt, names = await _rows(deps, who, asked)
    return page(request, who, "call_requests.html", rows=rows, next_cursor=nxt, names=names,
                status=asked.status or "", statuses=STATUSES,
                live=asked.cursor is None)  # fmt: skip


@router.get("/call-requests/rows")
async def list_rows(
    request: Request,
    deps: Deps,
    who: Reader,
    status: StatusParam = None,
) -> Response:
    rows, _, names = await _rows(deps, who, StatusPage(status, None))
    return page(request, who, "fragments/call_request_rows.html", rows=rows, names=names)


@router.get("/call-requests/new")
async def new_request(request: Request, deps: Deps, who: Reader) -> Response:
    async with deps.api.db.sessions() as s:
        customers = await newest_customers(s, scope_of(who), 500)
        names = await merchant_names(s, who)
    return page(request, who, "call_request_new.html", customers=customers, names=names,
                error=None)  # fmt: skip


@router.post("/call-requests")
async def create_request(
    request: Request,
    deps: Deps,
    who: Writer,
    customer_id: IdField,
    kind: Annotated[str, Form(max_length=16)],
    product_name: Annotated[str, Form(max_length=100)],
    amount: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    customer = await fetch_owned(deps.api.db, Customer, customer_id, who, "customer")
    merchant_id = acting_merchant(who, customer.merchant_id)
    kind_ = CallRequestKind.payment if kind == "payment" else CallRequestKind.registration
    value = int(amount) if amount.strip().isdigit() else None
    new = await deps.api.requests.create(
        merchant_id, customer.id, kind_, product_name=product_name,
        amount=value if kind_ is CallRequestKind.payment else None, actor=who.actor,
    )  # fmt: skip
    return RedirectResponse(f"/console/call-requests/{new.request.id}", status_code=303)


async def _detail(deps: Deps, who: Reader, request_id: str) -> dict[str, Any]:
    async with deps.api.db.sessions() as s:
        row = await owned(s, CallRequest, request_id, who, "call request")
        customer = await scope_of(who).get(s, Customer, row.customer_id)
        calls = await calls_of_in(s, row.id)
    sessions = [x for x, _ in calls]
    terminal = CALL_REQUEST.is_terminal(row.status)
    # Live until the request has ended and so have its calls (a call's last steps are
    # logged a moment after the request's outcome), or for SETTLE at most.
    calls_open = any(x.ended_at is None for x in sessions)
    ended_long_ago = row.ended_at is not None and deps.api.clock.now() - row.ended_at > SETTLE
    return {
        "r": row,
        "customer": customer,
        "sessions": calls,
        "terminal": terminal,
        "settled": terminal and (not calls_open or ended_long_ago),
        "keyed": keyed,
    }


@router.get("/call-requests/{request_id}")
async def show_request(request_id: str, request: Request, deps: Deps, who: Reader) -> Response:
    return page(request, who, "call_request.html", **await _detail(deps, who, request_id))


@router.get("/call-requests/{request_id}/live")
async def live_request(request_id: str, request: Request, deps: Deps, who: Reader) -> Response:
    """The live part of the detail page; once the request and its calls have ended,
    htmx is told to stop polling."""
    values = await _detail(deps, who, request_id)
    code = STOP_POLLING if values["settled"] else 200
    return page(request, who, "fragments/call_request_live.html", status_code=code, **values)


@router.post("/call-requests/{request_id}/cancel")
async def cancel_request(request_id: str, deps: Deps, who: Writer) -> Response:
    row = await fetch_owned(deps.api.db, CallRequest, request_id, who, "call request")
    if row.status != CallRequestStatus.cancelled.value:
        await deps.api.requests.transition(row.id, CallRequestStatus.cancelled, actor=who.actor)
    return RedirectResponse(f"/console/call-requests/{row.id}", status_code=303)
