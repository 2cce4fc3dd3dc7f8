"""Payment intents (charged by :mod:`ivr.payments.charger`) and refunds (made by
:mod:`ivr.payments.refunds`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from ivr.audit import audit_row
from ivr.domain.ids import new_id
from ivr.domain.states import PAYMENT_INTENT, CardStatus
from ivr.domain.terms import check_amount, check_months
from ivr.domain.text import clean_text
from ivr.errors import Conflict, NotFound
from ivr.payments.charger import PgRole
from ivr.payments.refunds import Refunder
from ivr.store.scope import Scope
from ivr.store.tables import Card, PaymentIntent


def check_terms(amount: int, installment_months: int, order_name: str) -> str:
    """Refuse a charge's terms (InvalidInput); returns the order name as stored (runs
    of whitespace made one space). Shared by the one-by-one and the batch paths."""
    check_amount(amount)
    check_months(installment_months)
    # it would reach our database, the PG and the SMS
    return clean_text(order_name, "order_name")


class CardFacts(Protocol):
    """What charging needs to know of a card (an ORM row or a Core result row)."""

    @property
    def merchant_id(self) -> str: ...

    @property
    def status(self) -> str: ...


def check_card(
    card: CardFacts | None, merchant_id: str, card_id: str, *, one_off_card: bool = False
) -> None:
    """Refuse charging a card of another merchant (NotFound) or a deleted one."""
    if card is None or card.merchant_id != merchant_id:
        raise NotFound(f"card {card_id} not found")
    if card.status != CardStatus.active.value and not one_off_card:
        raise Conflict(f"card {card_id} is {card.status}")


@dataclass(eq=False)
class PaymentService(PgRole):
    """Payment intents; ``refunds`` (a :class:`Refunder`) makes refunds of them."""

    refunds: Refunder = field(init=False)

    def __post_init__(self) -> None:
        self.refunds = Refunder(self.db, self.clock, self.gateway, self.policy)

    async def create_intent(self, merchant_id: str, card_id: str, **options: Any) -> PaymentIntent:
        """A new intent to charge ``card_id`` (see :meth:`create_intent_in`)."""
        async with self.db.transaction() as s:
            return await self.create_intent_in(s, merchant_id, card_id, **options)

    async def create_intent_in(
        self,
        s: AsyncSession,
        merchant_id: str,
        card_id: str,
        *,
        amount: int,
        order_name: str,
        installment_months: int = 0,
        interest_free: bool = False,
        source: str = "api",
        schedule_id: str | None = None,
        actor: str = "cli",
        one_off_card: bool = False,
        intent_id: str | None = None,
    ) -> PaymentIntent:
        """A new intent to charge ``card_id``. ``one_off_card``: the payer keyed a card in
        a call without saving it; its row is ``deleted`` from the start, but its billing
        key may be charged for this intent."""
        order_name = check_terms(amount, installment_months, order_name)
        now = self.clock.now()
        card = await Scope.of(merchant_id).one(s, Card, card_id, "card")
        check_card(card, merchant_id, card_id, one_off_card=one_off_card)
        intent = PaymentIntent(
            id=intent_id or new_id("pi"),
            merchant_id=merchant_id,
            customer_id=card.customer_id,
            card_id=card.id,
            schedule_id=schedule_id,
            source=source,
            order_name=order_name,
            amount=amount,
            currency="KRW",
            installment_months=installment_months,
            interest_free=interest_free and installment_months > 0,
            refunded_amount=0,
            status=PAYMENT_INTENT.initial.value,
            created_at=now,
            updated_at=now,
        )
        s.add(intent)
        audit_row(s, self.clock, actor, "payment_intent.create", intent, {"amount": amount})
        return intent
