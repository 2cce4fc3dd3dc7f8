"""Cancels against the sandbox: partial then full, and every way an over-refund is
refused (locally by the contract, at the PG by checksum and by amount)."""

from __future__ import annotations

import pytest

from ivr.errors import InvalidInput
from ivr.gateways.contract import (
    BillingKeyRequest,
    CancelRequest,
    ChargeRequest,
    KeyedChargeRequest,
    PgState,
)
from ivr.gateways.errors import CancelRefusal, CancelRefused
from ivr.gateways.portone import PortOneGateway
from tests.gateways.support import Sandbox, card, order

pytestmark = pytest.mark.anyio


async def paid_order(pg: PortOneGateway, amount: int = 10_000) -> str:
    await pg.register_billing_key(BillingKeyRequest("cus_refund", card()))
    oid = order()
    result = await pg.charge_billing_key(ChargeRequest("cus_refund", oid, amount, "x"))
    assert result.succeeded
    return oid


async def test_partial_then_full_refund(pg: PortOneGateway, sandbox: Sandbox) -> None:
    oid = await paid_order(pg)
    part = await pg.cancel(CancelRequest(oid, "부분 환불", checksum=10_000, amount=3_000))
    assert (part.cancelled_now, part.cancelled_total, part.refundable) == (3_000, 3_000, 7_000)
    assert part.state is PgState.paid  # PortOne keeps a partly cancelled payment "paid"
    assert part.cancelled_at is not None
    found = await pg.find(oid)
    assert found is not None
    assert (found.cancelled_amount, found.refundable) == (3_000, 7_000)

    rest = await pg.cancel(CancelRequest(oid, "전액 환불", checksum=7_000))
    assert (rest.cancelled_now, rest.cancelled_total, rest.refundable) == (7_000, 10_000, 0)
    assert rest.state is PgState.cancelled
    found = await pg.find(oid)
    assert found is not None
    assert found.state is PgState.cancelled
    assert found.refundable == 0
    ledger = await sandbox.ledger(oid)
    history = ledger["payments"][0]["cancel_history"]
    assert [h["amount"] for h in history] == [3_000, 7_000]
    assert (await sandbox.summary())["cancelled_amount"] == 10_000


def test_an_over_refund_is_refused_before_it_is_sent() -> None:
    with pytest.raises(InvalidInput):
        CancelRequest(order(), "x", checksum=7_000, amount=8_000)


async def test_a_stale_checksum_is_refused_by_the_pg(pg: PortOneGateway) -> None:
    oid = await paid_order(pg)
    await pg.cancel(CancelRequest(oid, "x", checksum=10_000, amount=3_000))
    # The caller missed the first refund and believes 10,000 is still refundable.
    with pytest.raises(CancelRefused) as err:
        await pg.cancel(CancelRequest(oid, "x", checksum=10_000, amount=10_000))
    assert err.value.reason is CancelRefusal.checksum_mismatch
    assert err.value.pg_code == "CHECKSUM_MISMATCH"
    found = await pg.find(oid)
    assert found is not None
    assert found.cancelled_amount == 3_000  # nothing more was refunded


async def test_an_amount_over_the_balance_is_refused_by_the_pg(
    pg: PortOneGateway, sandbox: Sandbox
) -> None:
    oid = await paid_order(pg)
    await pg.cancel(CancelRequest(oid, "x", checksum=10_000, amount=6_000))
    token = await pg.tokens.get()
    # Without a checksum only the PG's own balance check stands between us and an over-refund.
    async with sandbox.http.post(
        f"{sandbox.url}/payments/cancel",
        json={"merchant_uid": oid, "amount": 5_000, "reason": "x"},
        headers={"Authorization": f"Bearer {token}"},
    ) as resp:
        body = await resp.json()
    assert resp.status == 200
    assert body["code"] != 0
    assert body["message"].startswith("[EXCEEDS_REFUNDABLE]")
    found = await pg.find(oid)
    assert found is not None
    assert found.refundable == 4_000


async def test_cancelling_twice_unknown_or_failed_orders_is_refused(pg: PortOneGateway) -> None:
    oid = await paid_order(pg, 5_000)
    await pg.cancel(CancelRequest(oid, "x", checksum=5_000))
    with pytest.raises(CancelRefused) as err:
        await pg.cancel(CancelRequest(oid, "x", checksum=0))
    assert err.value.reason is CancelRefusal.already_cancelled

    with pytest.raises(CancelRefused) as err:
        await pg.cancel(CancelRequest(order(), "x", checksum=0))
    assert err.value.reason is CancelRefusal.not_found

    failed = order()
    result = await pg.keyed_charge(KeyedChargeRequest(card("4000000000009987"), failed, 900, "x"))
    assert not result.succeeded
    with pytest.raises(CancelRefused) as err:
        await pg.cancel(CancelRequest(failed, "x", checksum=0))
    assert err.value.reason is CancelRefusal.not_paid
