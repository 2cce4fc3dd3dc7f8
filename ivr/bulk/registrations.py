"""Bulk registrations (docs/product.md §8): a CSV or JSON list of payers to ask for a card
registration by phone — each valid row becomes a registration call request (a leased
number and the SMS), exactly once; :class:`~ivr.bulk.registration_worker.RegistrationWorker`
processes the rows.

Rows: ``customer_id`` of an existing customer, or ``mobile`` (with optional ``name``
and ``external_ref``: a customer with that ref is reused, else one is created); plus
optional ``product_name``, ``lease_minutes`` and ``ref``. The ids of the customer and
the request a row creates are reserved when the job is submitted, so a worker killed
mid-row finds them on the retry instead of sending a second SMS.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ivr.bulk.files import EXTRA_FIELDS
from ivr.bulk.rows import row_ref, unknown_columns
from ivr.domain.ids import new_id
from ivr.domain.states import CallRequestKind
from ivr.domain.text import check_text, clean_text
from ivr.errors import Conflict, InvalidInput
from ivr.merchants.service import CustomerService
from ivr.phone import PhoneError, normalize_mobile
from ivr.requests.service import CallRequestService
from ivr.store.db import Database
from ivr.store.tables import CallRequest, Customer

FIELDS = ("customer_id", "mobile", "name", "external_ref", "product_name", "lease_minutes", "ref")


def check_registration_row(raw: dict[str, Any]) -> dict[str, Any]:
    """A clean registration row, or InvalidInput naming the field (never the value)."""
    if EXTRA_FIELDS in raw:
        raise InvalidInput("the row has more fields than the header")
    unknown_columns(raw, FIELDS)
    customer_id = str(raw.get("customer_id") or "").strip()
    mobile = str(raw.get("mobile") or "").strip()
    if bool(customer_id) == bool(mobile):
        raise InvalidInput("give either customer_id or mobile")
    if customer_id and (not customer_id.startswith("cus_") or len(customer_id) > 40):
        raise InvalidInput("customer_id must be a customer id (cus_…)")
    if mobile:
        try:
            mobile = normalize_mobile(mobile).digits
        except PhoneError:
            raise InvalidInput("mobile is not a Korean mobile number") from None
    product = clean_text(str(raw.get("product_name") or "자동결제"), "product_name")
    name = clean_text(str(raw.get("name") or ""), "name", required=False)
    external_ref = check_text(str(raw.get("external_ref") or ""), "external_ref").strip()
    if len(external_ref) > 100:
        raise InvalidInput("external_ref must be 0-100 characters")
    ref = row_ref(raw)
    minutes_raw = str(raw.get("lease_minutes") or "").strip()
    # ASCII digits only, and short: "²".isdigit() is true but int() refuses it
    plain = minutes_raw.isascii() and minutes_raw.isdigit() and len(minutes_raw) <= 4
    if minutes_raw and (not plain or not 5 <= int(minutes_raw) <= 1440):
        raise InvalidInput("lease_minutes must be 5-1440")
    return {
        "customer_id": customer_id or None,
        "mobile": mobile or None,
        "name": name,
        "external_ref": external_ref or None,
        "product_name": product,
        "lease_minutes": int(minutes_raw) if minutes_raw else None,
        "ref": ref,
        # reserved now, so a retried row finds what it created
        "new_customer_id": new_id("cus"),
        "request_id": new_id("creq"),
    }


async def register_row(
    db: Database,
    customers: CustomerService,
    requests: CallRequestService,
    payload: dict[str, Any],
    *,
    actor: str,
) -> dict[str, Any]:
    """Create the row's registration request (idempotent); returns its result fields."""
    merchant_id = payload["merchant_id"]
    async with db.sessions() as s:
        done = await s.get(CallRequest, payload["request_id"])
        if done is not None:
            return {"result": "requested", "request_id": done.id, "customer_id": done.customer_id}
        customer_id = payload["customer_id"]
        if customer_id is None and payload["external_ref"]:
            customer_id = await _by_ref(db, merchant_id, payload["external_ref"])
        if customer_id is None:
            existing = await s.get(Customer, payload["new_customer_id"])
            customer_id = existing.id if existing is not None else None
    if customer_id is None:
        try:
            row = await customers.create(
                merchant_id,
                mobile=payload["mobile"],
                name=payload["name"],
                external_ref=payload["external_ref"],
                actor=actor,
                customer_id=payload["new_customer_id"],
            )
            customer_id = row.id
        except Conflict:  # another row created the customer with this ref just now
            customer_id = await _by_ref(db, merchant_id, payload["external_ref"])
            if customer_id is None:
                raise
    if payload["mobile"] is not None:
        async with db.sessions() as s:
            customer = await s.get(Customer, customer_id)
        if customer is not None and customer.mobile != payload["mobile"]:
            raise InvalidInput("external_ref belongs to a customer with another mobile")
    new = await requests.create(
        merchant_id,
        customer_id,
        CallRequestKind.registration,
        product_name=payload["product_name"],
        lease_minutes=payload["lease_minutes"],
        actor=actor,
        request_id=payload["request_id"],
    )
    return {"result": "requested", "request_id": new.request.id, "customer_id": customer_id}


async def _by_ref(db: Database, merchant_id: str, external_ref: str | None) -> str | None:
    if external_ref is None:
        return None
    async with db.sessions() as s:
        found: str | None = await s.scalar(
            select(Customer.id).where(
                Customer.merchant_id == merchant_id, Customer.external_ref == external_ref
            )
        )
        return found
