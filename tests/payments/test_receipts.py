"""The engine keeps the PG's receipt link on the paid attempt: from the charge's answer,
and from the lookup that resolves an unknown outcome (SQLite and PostgreSQL, the
sandbox PG over HTTP); a link off the allowed hosts never reaches the row."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ivr.domain.states import PaymentIntentStatus
from ivr.gateways.portone import PortOneGateway
from ivr.store.db import Database
from tests.gateways.support import Sandbox, connector, running_sandbox
from tests.payments.test_charger import OK, TIMEOUT_ONCE, attempts, charge

pytestmark = pytest.mark.anyio


@pytest.fixture
async def pg(sandbox: Sandbox) -> AsyncIterator[PortOneGateway]:
    async with connector(sandbox.url, timeout_s=1.0) as gateway:
        yield gateway


async def test_a_paid_charge_keeps_the_receipt_link(
    db: Database, pg: PortOneGateway, sandbox: Sandbox
) -> None:
    _, intent, _, _, status = await charge(db, pg, OK)
    assert status is PaymentIntentStatus.succeeded
    [attempt] = await attempts(db, intent.id)
    assert attempt.receipt_url == f"{sandbox.url}/sandbox/receipts/{attempt.pg_tx_id}"


async def test_an_unknown_outcome_resolved_by_lookup_keeps_the_receipt_link(
    db: Database, pg: PortOneGateway, sandbox: Sandbox
) -> None:
    _, intent, _, _, status = await charge(db, pg, TIMEOUT_ONCE)
    assert status is PaymentIntentStatus.succeeded
    [attempt] = await attempts(db, intent.id)  # unknown -> succeeded by find
    assert attempt.sends == 1
    assert attempt.receipt_url == f"{sandbox.url}/sandbox/receipts/{attempt.pg_tx_id}"


async def test_a_receipt_link_off_the_allowed_hosts_is_not_stored(
    db: Database, tmp_path: Path
) -> None:
    """A PG answer linking a host that is neither a known receipt host nor the
    configured PG's own origin: the payment is recorded, the link is not."""
    evil = "https://receipts.evil.example"
    async with (
        running_sandbox(tmp_path / "evil.db", receipt_base=evil) as sbx,
        connector(sbx.url, timeout_s=1.0) as pg,
    ):
        _, intent, _, _, status = await charge(db, pg, OK)
    assert status is PaymentIntentStatus.succeeded
    [attempt] = await attempts(db, intent.id)
    assert attempt.approval_no
    assert attempt.receipt_url is None
