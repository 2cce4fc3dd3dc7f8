"""FakeGateway: the in-process PG of the unit tests (the benchmarks use the sandbox PG).

The sandbox PG (:mod:`ivr.gateways.sandbox`) is the real protocol over HTTP; this fake
is the :class:`~ivr.gateways.contract.Gateway` without any network, for tests that care
about what the *engine* does with an answer, not how PortOne spells it.

    pg = FakeGateway()                                   # approves everything
    pg.script("charge_billing_key", Outcome.soft_decline, Outcome.timeout)
    pg.always("delete_billing_key", GatewayUnavailable("PG down", retry_safe=True))
    pg = FakeGateway(inner=sandbox_connector)            # the sandbox, plus the script

Each call takes the next scripted outcome of its operation (``script``: one call each,
in order), else the standing one (``always``), else it goes to ``inner`` when there is
one, else the fake approves it in memory (billing keys and paid orders are kept, so
``find``, ``cancel`` and ``delete_billing_key`` answer consistently). An outcome is an
:class:`Outcome` or an exception to raise. Every call is logged in ``calls``, whoever
answered it. Card data is never logged: a call records only the operation and the
order id or customer uid.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Literal

from ivr.clock import Clock, SystemClock
from ivr.domain.states import CardType
from ivr.gateways.contract import (
    BillingKey,
    BillingKeyRequest,
    CancelRequest,
    CancelResult,
    ChargeRequest,
    ChargeStatus,
    Gateway,
    GatewayCharge,
    KeyedChargeRequest,
    OrderStatus,
    PgState,
)
from ivr.gateways.declines import Decline, DeclineReason, Stage, decline
from ivr.gateways.errors import CardDeclined, GatewayUnavailable, OutcomeUnknown

Op = Literal[
    "register_billing_key",
    "charge_billing_key",
    "keyed_charge",
    "cancel",
    "find",
    "delete_billing_key",
]
ISSUER = "FAKE카드"
PG_CODE = "fake"  # the ``pg_code`` of the declines this fake makes up


class Outcome(StrEnum):
    approve = "approve"  # answered by the fake in memory, even with an ``inner``
    soft_decline = "soft_decline"  # insufficient funds: retry later
    hard_decline = "hard_decline"  # lost or stolen card: never retry
    timeout = "timeout"  # OutcomeUnknown: the request may or may not have been recorded
    unavailable = "unavailable"  # GatewayUnavailable(retry_safe=True): nothing was sent


Scripted = Outcome | BaseException


@dataclass(frozen=True)
class Call:
    op: Op
    ref: str  # the order id, or the customer uid for billing-key operations


def declined(reason: DeclineReason, stage: Stage = Stage.payment) -> Decline:
    return decline(reason, stage, PG_CODE)


def approved_charge(
    order_id: str, amount: int, *, installment_months: int = 0, paid_at: datetime | None = None
) -> GatewayCharge:
    """What a PG answers for a paid charge (``pg_tx_id`` derived from the order id)."""
    return GatewayCharge(
        order_id=order_id,
        status=ChargeStatus.succeeded,
        amount=amount,
        pg_tx_id=f"imp_{order_id}",
        approval_no="12345678",
        card_issuer=ISSUER,
        card_last4=None,
        card_type=CardType.credit,
        installment_months=installment_months,
        paid_at=paid_at,
    )


def declined_charge(order_id: str, amount: int, reason: Decline) -> GatewayCharge:
    return GatewayCharge.declined(order_id, amount, reason)


_SOFT, _HARD = DeclineReason.insufficient_funds, DeclineReason.lost_or_stolen


class FakeGateway:
    """A scripted in-memory :class:`Gateway`; see the module docstring."""

    def __init__(self, inner: Gateway | None = None, *, clock: Clock | None = None) -> None:
        self.inner = inner
        self.clock: Clock = clock or SystemClock()
        self.calls: list[Call] = []
        self.keys: dict[str, BillingKey] = {}  # customer uid -> key (in-memory answers)
        self.orders: dict[str, OrderStatus] = {}  # order id -> status (in-memory answers)
        self._script: dict[str, list[Scripted]] = defaultdict(list)
        self._always: dict[str, Scripted] = {}
        # play a PG that wants the card password to issue a billing key (pgs.py)
        self.register_password = False
        # the receipt link paid charges (and their lookups) carry; None: the PG gives none
        self.receipt_url: str | None = None

    # --- configuration ---------------------------------------------------------------
    def script(self, op: Op, *outcomes: Scripted) -> FakeGateway:
        """The next calls of ``op`` get these outcomes, one each, in order."""
        self._script[op].extend(outcomes)
        return self

    def always(self, op: Op, outcome: Scripted | None) -> FakeGateway:
        """Every call of ``op`` gets ``outcome`` once the script is used up (``None``
        clears it)."""
        if outcome is None:
            self._always.pop(op, None)
        else:
            self._always[op] = outcome
        return self

    def count(self, op: Op) -> int:
        return sum(1 for c in self.calls if c.op == op)

    def _next(self, op: Op, ref: str) -> Scripted | None:
        self.calls.append(Call(op, ref))
        if self._script[op]:
            return self._script[op].pop(0)
        return self._always.get(op)

    @staticmethod
    def _fail(outcome: Scripted, order_id: str | None) -> None:
        """Raise what a failure outcome stands for; return for approve and declines."""
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome is Outcome.timeout:
            raise OutcomeUnknown("fake PG: timed out", order_id=order_id)
        if outcome is Outcome.unavailable:
            raise GatewayUnavailable("fake PG: unavailable", retry_safe=True)

    # --- the Gateway -----------------------------------------------------------------
    async def register_billing_key(self, req: BillingKeyRequest) -> BillingKey:
        outcome = self._next("register_billing_key", req.customer_uid)
        if outcome is None and self.inner is not None:
            return await self.inner.register_billing_key(req)
        outcome = outcome or Outcome.approve
        self._fail(outcome, None)
        if outcome is Outcome.approve and self.register_password and not req.card.has_password:
            why = declined(DeclineReason.password_required, Stage.registration)
            raise CardDeclined("fake PG: password required", decline=why)
        if outcome is not Outcome.approve:
            why = declined(_SOFT if outcome is Outcome.soft_decline else _HARD, Stage.registration)
            raise CardDeclined("fake PG: card refused", decline=why)
        key = BillingKey(
            customer_uid=req.customer_uid,
            issuer=ISSUER,
            issuer_code="99",
            last4=req.card.last4,
            card_type=CardType.credit,
            pg_provider="fake",
            registered_at=self.clock.now(),
        )
        self.keys[req.customer_uid] = key
        return key

    async def charge_billing_key(self, req: ChargeRequest) -> GatewayCharge:
        outcome = self._next("charge_billing_key", req.order_id)
        if outcome is None and self.inner is not None:
            return await self.inner.charge_billing_key(req)
        return self._charge(
            outcome or Outcome.approve, req.order_id, req.amount, req.installment_months
        )

    async def keyed_charge(self, req: KeyedChargeRequest) -> GatewayCharge:
        outcome = self._next("keyed_charge", req.order_id)
        if outcome is None and self.inner is not None:
            return await self.inner.keyed_charge(req)
        outcome = outcome or Outcome.approve
        result = self._charge(outcome, req.order_id, req.amount, req.installment_months)
        if result.succeeded and req.save_as_customer_uid is not None:
            self.keys[req.save_as_customer_uid] = BillingKey(
                req.save_as_customer_uid, ISSUER, "99", req.card.last4, CardType.credit,
                "fake", self.clock.now(),
            )  # fmt: skip
        return result

    def _charge(self, outcome: Scripted, order_id: str, amount: int, months: int) -> GatewayCharge:
        self._fail(outcome, order_id)
        now = self.clock.now()
        if outcome is Outcome.approve:
            result = approved_charge(order_id, amount, installment_months=months, paid_at=now)
            result = replace(result, receipt_url=self.receipt_url)
            state, failed_at = PgState.paid, None
        else:
            why = declined(_SOFT if outcome is Outcome.soft_decline else _HARD)
            result = declined_charge(order_id, amount, why)
            state, failed_at = PgState.failed, now
        previous = self.orders.get(order_id)
        if previous is None or previous.state is not PgState.paid:
            self.orders[order_id] = OrderStatus(
                order_id, state, amount, 0, result.pg_tx_id, result.approval_no,
                result.card_issuer, None, result.paid_at, failed_at, None, result.decline,
                result.receipt_url,
            )  # fmt: skip
        return result

    async def cancel(self, req: CancelRequest) -> CancelResult:
        outcome = self._next("cancel", req.order_id)
        if outcome is None and self.inner is not None:
            return await self.inner.cancel(req)
        self._fail(outcome or Outcome.approve, req.order_id)
        order = self.orders[req.order_id]
        now_amount = req.amount if req.amount is not None else order.refundable
        total = order.cancelled_amount + now_amount
        state = PgState.cancelled if total >= order.amount else PgState.paid
        at = self.clock.now()
        self.orders[req.order_id] = replace(
            order, state=state, cancelled_amount=total, cancelled_at=at
        )
        return CancelResult(
            req.order_id, order.pg_tx_id, now_amount, total, order.amount - total, state, at
        )

    async def find(self, order_id: str) -> OrderStatus | None:
        outcome = self._next("find", order_id)
        if outcome is None and self.inner is not None:
            return await self.inner.find(order_id)
        self._fail(outcome or Outcome.approve, order_id)
        return self.orders.get(order_id)

    async def delete_billing_key(self, customer_uid: str, *, reason: str) -> bool:
        outcome = self._next("delete_billing_key", customer_uid)
        if outcome is None and self.inner is not None:
            return await self.inner.delete_billing_key(customer_uid, reason=reason)
        self._fail(outcome or Outcome.approve, None)
        return self.keys.pop(customer_uid, None) is not None


def _check_protocol(fake: FakeGateway) -> Gateway:
    return fake  # mypy proves FakeGateway satisfies the Gateway protocol


__all__ = [
    "Call",
    "FakeGateway",
    "Outcome",
    "approved_charge",
    "declined",
    "declined_charge",
]
