"""Charges of a registered card with no call, payments, refunds, and cards."""

from __future__ import annotations

from fastapi import Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.api import schemas as S
from ivr.api.route import actor, new_object_id
from ivr.api.routes.common import WRITE_ERRORS, ByCustomer, Deps, Me, Paging, owned, value
from ivr.api.routes.common import router as make_router
from ivr.api.routes.listing import listed
from ivr.cards.queries import cards
from ivr.domain.states import CardStatus, PaymentIntentStatus
from ivr.domain.terms import check_installments
from ivr.errors import Conflict
from ivr.payments import queries
from ivr.payments.sends import OPEN
from ivr.store.scope import Scope
from ivr.store.tables import Card, PaymentIntent, Refund
from ivr.web import views
from ivr.web.pagination import fetch_page

router = make_router("payments")


async def payment_view(s: AsyncSession, intent: PaymentIntent) -> S.PaymentOut:
    attempts = await queries.attempts_of(s, intent.id)
    refunds = await queries.refunds_of(s, intent.id)
    return views.payment(intent, attempts, refunds)


@router.post(
    "/charges",
    status_code=201,
    responses=WRITE_ERRORS,
    summary="Charge a registered card now, with no call (answers when the PG has)",
)
async def create_charge(body: S.ChargeIn, request: Request, d: Deps, me: Me) -> S.PaymentOut:
    rid = new_object_id(request, "pi")
    async with d.db.transaction() as s:
        found = await Scope.of(me.merchant_id).get(s, PaymentIntent, rid)
        if found is None:
            card = await owned(s, Card, body.card_id, me.merchant_id, "card")
            if card.status != CardStatus.active.value:
                raise Conflict(f"card {card.id} is {card.status}")
            check_installments(body.amount, body.installment_months, card.card_type)
            await d.payments.create_intent_in(
                s,
                me.merchant_id,
                card.id,
                amount=body.amount,
                order_name=body.order_name,
                installment_months=body.installment_months,
                source="api",
                actor=actor(me),
                intent_id=rid,
            )
    # A retry after a crash drives the same intent: its open attempt is looked up at
    # the PG, never sent blindly again.
    await d.charger.drive(rid)
    async with d.db.sessions() as s:
        intent = await owned(s, PaymentIntent, rid, me.merchant_id, "payment")
        return await payment_view(s, intent)


@router.get("/payments")
async def list_payments(
    d: Deps,
    me: Me,
    page: Paging,
    status: PaymentIntentStatus | None = None,
    customer_id: ByCustomer = None,
) -> S.Page[S.PaymentOut]:
    q = queries.payments(Scope.of(me.merchant_id), status=value(status), customer_id=customer_id)
    async with d.db.sessions() as s:
        rows, nxt = await fetch_page(s, q, PaymentIntent.id, page.cursor, page.limit)
        data = [await payment_view(s, r) for r in rows]
    return S.Page[S.PaymentOut].of(data, nxt)


@router.get("/payments/{payment_id}")
async def get_payment(payment_id: str, d: Deps, me: Me) -> S.PaymentOut:
    async with d.db.sessions() as s:
        intent = await owned(s, PaymentIntent, payment_id, me.merchant_id, "payment")
        return await payment_view(s, intent)


@router.post(
    "/payments/{payment_id}/refunds",
    status_code=201,
    responses={
        **WRITE_ERRORS,
        202: {
            "model": S.RefundOut,
            "description": "the PG's answer did not come (status unknown): the engine looks "
            "the order up and the refund ends succeeded (payment.refunded) or failed",
        },
        409: {
            "description": "a refund of this payment is in progress, or the PG refused "
            "the cancel (the refund is failed; nothing was refunded)"
        },
    },
    summary="Refund all that is left, or part of it",
)
async def create_refund(
    payment_id: str, body: S.RefundIn, request: Request, response: Response, d: Deps, me: Me
) -> S.RefundOut:
    rid = new_object_id(request, "rf")
    async with d.db.sessions() as s:
        await owned(s, PaymentIntent, payment_id, me.merchant_id, "payment")
        done = await s.get(Refund, rid)
    if done is not None and done.intent_id == payment_id:  # a retry: where it stands now
        row = await d.payments.refunds.settle(done.id, actor=actor(me))
    else:
        row = await d.payments.refunds.refund(
            me.merchant_id,
            payment_id,
            amount=body.amount,
            reason=body.reason,
            actor=actor(me),
            refund_id=rid,
        )
    if row.status in OPEN:  # not settled yet: 202, the merchant looks again
        response.status_code = 202
    return views.refund(row)


# ---------------------------------------------------------------------- cards


@router.get("/cards", tags=["cards"])
async def list_cards(
    d: Deps,
    me: Me,
    page: Paging,
    customer_id: ByCustomer = None,
    status: CardStatus | None = None,
) -> S.Page[S.CardOut]:
    q = cards(Scope.of(me.merchant_id), customer_id=customer_id, status=value(status))
    now = d.clock.now()
    return await listed(d, page, S.Page[S.CardOut], q, Card.id, lambda r: views.card(r, now))


@router.get("/cards/{card_id}", tags=["cards"])
async def get_card(card_id: str, d: Deps, me: Me) -> S.CardOut:
    async with d.db.sessions() as s:
        return views.card(await owned(s, Card, card_id, me.merchant_id, "card"), d.clock.now())


@router.delete(
    "/cards/{card_id}",
    responses=WRITE_ERRORS,
    tags=["cards"],
    summary="Delete a card: the row is marked deleted and its vault record erased",
)
async def delete_card(card_id: str, d: Deps, me: Me) -> S.CardOut:
    # Idempotent: deleting again retries the vault erase of a half-finished delete.
    row = await d.cards.delete(me.merchant_id, card_id, actor=actor(me), why="api delete")
    return views.card(row, d.clock.now())


@router.post(
    "/cards/{card_id}/unlock",
    responses=WRITE_ERRORS,
    tags=["cards"],
    summary="Let a card pay by phone again after too many wrong birth dates in calls",
)
async def unlock_card(card_id: str, d: Deps, me: Me) -> S.CardOut:
    # Idempotent: unlocking a card that is not locked clears its failures, no error.
    row = await d.verification.unlock(me.merchant_id, card_id, actor=actor(me))
    return views.card(row, d.clock.now())
