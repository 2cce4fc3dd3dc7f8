"""FakeGateway, the in-memory PG every unit test uses: scripted outcomes in order, the
standing outcome after them, delegation to ``inner``, consistent in-memory answers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ivr.clock import FakeClock
from ivr.gateways.contract import (
    BillingKeyRequest,
    CancelRequest,
    ChargeRequest,
    ChargeStatus,
    KeyedCard,
    KeyedChargeRequest,
    PgState,
)
from ivr.gateways.declines import DeclineKind, DeclineReason
from ivr.gateways.errors import CardDeclined, GatewayUnavailable, OutcomeUnknown
from ivr.gateways.fake import Call, FakeGateway, Outcome

pytestmark = pytest.mark.anyio

CARD = KeyedCard("4111111111111111", "2030-12", "800101", "12")


def charge(order_id: str, amount: int = 1_000) -> ChargeRequest:
    return ChargeRequest("cus_1", order_id, amount, "test")


async def test_unscripted_calls_are_approved_and_remembered() -> None:
    pg = FakeGateway(clock=FakeClock(datetime(2030, 1, 1, tzinfo=UTC)))
    key = await pg.register_billing_key(BillingKeyRequest("cus_1", CARD))
    assert (key.customer_uid, key.last4) == ("cus_1", "1111")
    paid = await pg.charge_billing_key(charge("o_1"))
    assert paid.succeeded
    assert paid.pg_tx_id == "imp_o_1"
    status = await pg.find("o_1")
    assert status is not None
    assert (status.state, status.refundable) == (PgState.paid, 1_000)
    cancelled = await pg.cancel(CancelRequest("o_1", "test", checksum=1_000, amount=400))
    assert (cancelled.cancelled_now, cancelled.refundable, cancelled.state) == (
        400, 600, PgState.paid,
    )  # fmt: skip
    assert await pg.find("o_2") is None
    assert await pg.delete_billing_key("cus_1", reason="t") is True
    assert await pg.delete_billing_key("cus_1", reason="t") is False
    assert pg.calls[:2] == [
        Call("register_billing_key", "cus_1"),
        Call("charge_billing_key", "o_1"),
    ]


async def test_scripted_outcomes_come_in_order_then_the_standing_one() -> None:
    pg = FakeGateway()
    pg.script("charge_billing_key", Outcome.soft_decline, Outcome.hard_decline, Outcome.timeout)
    pg.always("charge_billing_key", Outcome.unavailable)
    soft = await pg.charge_billing_key(charge("o_1"))
    assert soft.status is ChargeStatus.failed
    assert soft.decline is not None
    assert (soft.decline.kind, soft.decline.reason) == (
        DeclineKind.soft, DeclineReason.insufficient_funds,
    )  # fmt: skip
    hard = await pg.charge_billing_key(charge("o_2"))
    assert hard.decline is not None
    assert hard.decline.kind is DeclineKind.hard
    with pytest.raises(OutcomeUnknown) as unknown:
        await pg.charge_billing_key(charge("o_3"))
    assert unknown.value.order_id == "o_3"
    for _ in range(2):
        with pytest.raises(GatewayUnavailable):
            await pg.charge_billing_key(charge("o_4"))
    pg.always("charge_billing_key", None)
    assert (await pg.charge_billing_key(charge("o_4"))).succeeded
    assert pg.count("charge_billing_key") == 6


async def test_a_refused_registration_raises_card_declined_and_exceptions_are_raised() -> None:
    pg = FakeGateway().script("register_billing_key", Outcome.hard_decline, ConnectionError("x"))
    with pytest.raises(CardDeclined):
        await pg.register_billing_key(BillingKeyRequest("cus_1", CARD))
    with pytest.raises(ConnectionError):
        await pg.register_billing_key(BillingKeyRequest("cus_1", CARD))
    assert pg.keys == {}


async def test_unscripted_calls_go_to_inner_and_are_logged() -> None:
    inner = FakeGateway()
    pg = FakeGateway(inner=inner).script("keyed_charge", Outcome.soft_decline)
    declined = await pg.keyed_charge(KeyedChargeRequest(CARD, "o_1", 1_000, "t"))
    assert not declined.succeeded
    assert inner.calls == []
    saved = KeyedChargeRequest(CARD, "o_2", 1_000, "t", save_as_customer_uid="cus_9")
    assert (await pg.keyed_charge(saved)).succeeded
    assert "cus_9" in inner.keys
    assert (await pg.find("o_2")) is not None
    assert pg.count("keyed_charge") == 2
    assert inner.count("keyed_charge") == 1
