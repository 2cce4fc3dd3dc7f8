"""Unknown outcomes resolved by lookup, under injected faults: every order ends paid
exactly once in the sandbox ledger, however many times it was retried."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ivr.gateways.contract import BillingKeyRequest, ChargeRequest, PgState
from ivr.gateways.errors import GatewayUnavailable, OutcomeUnknown
from ivr.gateways.portone import PortOneGateway
from tests.gateways.support import card, connector, order, running_sandbox

pytestmark = pytest.mark.anyio


async def charge_exactly_once(pg: PortOneGateway, req: ChargeRequest) -> int:
    """The engine's rule in miniature: on an unknown outcome, look the order up before
    retrying it (with the same order id). Returns the number of charge requests sent."""
    sent = 0
    while True:
        sent += 1
        try:
            result = await pg.charge_billing_key(req)
        except (OutcomeUnknown, GatewayUnavailable):
            while True:
                try:
                    found = await pg.find(req.order_id)
                    break
                except GatewayUnavailable:
                    await asyncio.sleep(0)
            if found is not None and found.state is PgState.paid:
                return sent
            continue
        assert result.succeeded
        return sent


async def test_faults_never_double_charge(tmp_path: Path) -> None:
    async with (
        running_sandbox(tmp_path / "l.db", error_rate=0.2, timeout_rate=0.2, seed=7) as sbx,
        connector(sbx.url) as pg,
    ):
        await pg.register_billing_key(BillingKeyRequest("cus_x1", card()))
        requests = [ChargeRequest("cus_x1", order(), 1_000 + i, "x") for i in range(60)]
        sent = await asyncio.gather(*(charge_exactly_once(pg, r) for r in requests))
        summary = await sbx.summary()
        assert sum(sent) > len(requests)  # faults really happened and were retried
        assert summary["injected_charge_error_before"] > 0
        assert summary["injected_charge_record_then_drop"] > 0
        assert summary["payments"] == summary["paid"] == len(requests)
        assert summary["paid_amount"] == sum(r.amount for r in requests)
        for r in requests[:10]:
            assert len((await sbx.ledger(r.order_id))["payments"]) == 1


async def test_error_rate_one_never_records(tmp_path: Path) -> None:
    async with (
        running_sandbox(tmp_path / "l.db", error_rate=1.0) as sbx,
        connector(sbx.url) as pg,
    ):
        await pg.register_billing_key(BillingKeyRequest("cus_x2", card()))
        req = ChargeRequest("cus_x2", order(), 1_000, "x")
        with pytest.raises(OutcomeUnknown):
            await pg.charge_billing_key(req)
        assert await pg.find(req.order_id) is None
        assert (await sbx.summary())["payments"] == 0
