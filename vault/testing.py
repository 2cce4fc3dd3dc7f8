"""Fakes of the vault's adapters, shipped so tests and benchmarks share one of each.

:class:`RecordingGateway` is a :class:`~vault.forwarding.CardGateway` that answers
success at once and keeps what it was given (a test asserts on it; a benchmark measures
the vault without a PG). Never configured in a running vault: it keeps card data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from vault.card import CardData
from vault.forwarding import BillingKeyResult, ChargeResult, Order, Route


@dataclass
class Received:
    op: str
    card: CardData
    password2: str
    args: dict[str, Any]
    route: Route | None = None


class RecordingGateway:
    """A CardGateway that records what it was given and answers success."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.fail_with: Exception | None = None
        self.closed = False

    async def issue_billing_key(
        self, card: CardData, password2: str, customer_uid: str, *, route: Route | None = None
    ) -> BillingKeyResult:
        received = Received("billing_key", card, password2, {"uid": customer_uid}, route)
        self.received.append(received)
        if self.fail_with is not None:
            raise self.fail_with
        return BillingKeyResult(ok=True, customer_uid=customer_uid, card_issuer="테스트카드",
                                card_type="credit")  # fmt: skip

    async def keyed_charge(
        self, card: CardData, password2: str, order: Order, *, route: Route | None = None
    ) -> ChargeResult:
        self.received.append(Received("keyed_charge", card, password2, asdict(order), route))
        if self.fail_with is not None:
            raise self.fail_with
        return ChargeResult(status="succeeded", order_id=order.order_id, amount=order.amount,
                            pg_transaction_id="imp_1", approval_number="12345678")  # fmt: skip

    async def aclose(self) -> None:
        self.closed = True
