"""Payments: list (filter by status), detail with every attempt at the PG and every
refund, and the refund form (all that is left, or part of it).

A refund goes through :meth:`PaymentService.refund`, as the API's refund route does;
the form carries a refund id made when the page was shown, so a second submit of the
same form (a double click, a reload) finds the refund already made instead of making
another. A refund larger than what is left is refused by the service: the page shows
why, with status 422, and nothing changes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from sqlalchemy.exc import IntegrityError
from starlette.responses import RedirectResponse, Response

from ivr.console.access import Deps, Reader, Viewer, Writer
from ivr.console.i18n import CATALOG
from ivr.console.pages.common import echoable, merchant_names, owned, refused_text, scope_of
from ivr.console.pages.fields import IdField, IdParam
from ivr.console.pages.lists import Asked, status_list
from ivr.console.render import money, page
from ivr.domain.ids import new_id
from ivr.domain.states import PaymentIntentStatus
from ivr.domain.terms import LUMP_SUM
from ivr.errors import Conflict, InvalidInput
from ivr.gateways.errors import GatewayError
from ivr.payments import queries
from ivr.store.tables import Card, Customer, PaymentIntent, Refund
from ivr.web.views import receipt_of

router = APIRouter()
STATUSES = [s.value for s in PaymentIntentStatus]
REFUNDABLE = (PaymentIntentStatus.succeeded.value, PaymentIntentStatus.partially_refunded.value)
REFUND_ID = re.compile(r"^rf_[0-9A-Z]{26}$")


def word(who: Viewer, prefix: str, value: str | None) -> str:
    """The text for ``prefix.value`` if the catalog has it, else the value itself."""
    if value is None:
        return "—"
    key = f"{prefix}.{value}"
    return who.t(key) if key in CATALOG else value


def installments(who: Viewer, months: int) -> str:
    return who.t("pay.lump_sum") if months == LUMP_SUM else who.t("pay.months", n=months)


def labels(who: Viewer) -> dict[str, Any]:
    """Helpers templates use to show payment words in the viewer's language."""
    return {
        "installments": lambda months: installments(who, months),
        "source": lambda value: word(who, "pay.source", value),
        "decline_class": lambda value: word(who, "pay.decline", value),
    }


@router.get("/payments")
async def list_payments(
    request: Request,
    deps: Deps,
    who: Reader,
    asked: Asked,
) -> Response:
    return await status_list(request, deps, who, "payments.html", asked,
                             query=queries.payments, id_column=PaymentIntent.id,
                             statuses=STATUSES, **labels(who))  # fmt: skip


@dataclass(frozen=True, slots=True)
class RefundForm:
    refund_id: str
    amount: str = ""
    reason: str = ""
    error: str | None = None


async def _detail(
    request: Request, deps: Deps, who: Viewer, payment_id: str, form: RefundForm,
    *, status_code: int = 200, refunded: str | None = None,
) -> Response:  # fmt: skip
    async with deps.api.db.sessions() as s:
        intent = await owned(s, PaymentIntent, payment_id, who, "payment")
        scope = scope_of(who)
        customer = await scope.get(s, Customer, intent.customer_id)
        card = await scope.get(s, Card, intent.card_id) if intent.card_id else None
        attempts = await queries.attempts_of(s, intent.id)
        refunds = await queries.refunds_of(s, intent.id)
        names = await merchant_names(s, who)
    return page(
        request, who, "payment.html", status_code=status_code, p=intent, customer=customer,
        card=card, attempts=attempts, refunds=refunds, names=names, form=form,
        receipt=receipt_of(attempts),
        done=next((r for r in refunds if r.id == refunded), None),
        left=intent.amount - intent.refunded_amount, refundable=intent.status in REFUNDABLE,
        **labels(who),
    )  # fmt: skip


@router.get("/payments/{payment_id}")
async def show_payment(
    payment_id: str,
    request: Request,
    deps: Deps,
    who: Reader,
    refunded: IdParam = None,
) -> Response:
    return await _detail(request, deps, who, payment_id, RefundForm(new_id("rf")),
                         refunded=refunded)  # fmt: skip


def _amount(raw: str) -> int | None:
    """The amount typed in the form (``10,000`` is fine); empty: all that is left."""
    cleaned = raw.replace(",", "").replace(" ", "").removesuffix("원")
    if not cleaned:
        return None
    if not cleaned.isdigit() or len(cleaned) > 12:
        raise ValueError("not an amount")
    return int(cleaned)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the refund form was refused: a text key, the answer's status, its values."""

    key: str
    status_code: int
    values: dict[str, object]


async def _refund(deps: Deps, who: Viewer, intent: PaymentIntent, form: RefundForm
                  ) -> Refund | Refusal:  # fmt: skip
    try:
        value = _amount(form.amount)
    except ValueError:
        return Refusal("pay.bad_amount", 422, {})
    left = intent.amount - intent.refunded_amount
    try:
        return await deps.api.payments.refunds.refund(
            intent.merchant_id, intent.id, amount=value,
            reason=form.reason.strip() or who.t("pay.default_reason"),
            actor=who.actor, refund_id=form.refund_id,
        )  # fmt: skip
    except InvalidInput:
        if refused_text(form.reason):
            return Refusal("common.text_refused", 422, {})
        if value is not None and value > left:
            return Refusal("pay.refund_too_much", 422, {"left": money(left, who.lang)})
        return Refusal("pay.bad_amount", 422, {})
    except Conflict:
        return Refusal("pay.not_refundable", 409, {})
    except GatewayError:
        return Refusal("pay.gateway_failed", 502, {})


@router.post("/payments/{payment_id}/refund")
async def refund_payment(
    payment_id: str,
    request: Request,
    deps: Deps,
    who: Writer,
    amount: Annotated[str, Form(max_length=40)] = "",
    reason: Annotated[str, Form(max_length=200)] = "",
    refund_id: IdField = "",
) -> Response:
    known = REFUND_ID.match(refund_id) is not None
    async with deps.api.db.sessions() as s:
        intent = await owned(s, PaymentIntent, payment_id, who, "payment")
        done = await s.get(Refund, refund_id) if known else None
    target = f"/console/payments/{intent.id}"
    if done is not None:  # this form was sent before: show what it did
        if done.intent_id != intent.id:
            raise InvalidInput("this form belongs to another payment")
        return RedirectResponse(f"{target}?refunded={done.id}", status_code=303)
    form = RefundForm(refund_id if known else new_id("rf"), amount, reason)
    try:
        result = await _refund(deps, who, intent, form)
    except IntegrityError:  # the same form sent twice at once: the other one refunded
        return RedirectResponse(f"{target}?refunded={form.refund_id}", status_code=303)
    if isinstance(result, Refund):
        return RedirectResponse(f"{target}?refunded={result.id}", status_code=303)
    # A refund the PG failed keeps its id (a failed refund row); the form gets a new one.
    fresh = new_id("rf") if result.status_code == 502 else form.refund_id
    shown = RefundForm(fresh, amount, echoable(reason), who.t(result.key, **result.values))
    return await _detail(request, deps, who, intent.id, shown, status_code=result.status_code)
