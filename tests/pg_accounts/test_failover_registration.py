"""Issue #27 failover, in-process: a registration goes to the merchant's secondary PG
account when the primary does not answer or its breaker is open; the card then lives
there (its charges go there), and the key the primary may have issued is deleted there
by the key-request sweep."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from ivr.domain.states import CallRequestKind, PaymentIntentStatus
from ivr.gateways.breaker import BreakerState
from ivr.store.tables import BillingKeyRequest, PaymentAttempt
from ivr.telephony.fake import Action, Press
from tests.flows.conftest import Stack
from tests.flows.test_flow_registration import card_keys, cards
from tests.gateways.support import KEY, SECRET, Sandbox, running_sandbox

pytestmark = pytest.mark.anyio

SETTLE = timedelta(seconds=121)


@pytest.fixture
async def backup(stack: Stack, tmp_path: Path) -> AsyncIterator[Sandbox]:
    """A second sandbox PG, the merchant's secondary account ``backup``."""
    async with running_sandbox(tmp_path / "backup-ledger.db") as sandbox:
        accounts = stack.runtime.gateways.accounts
        await accounts.create("backup", actor="test", kind="sandbox", base_url=sandbox.url,
                              api_key=KEY, api_secret=SECRET)  # fmt: skip
        await accounts.set_routes(
            stack.merchant_id, primary="default", secondary="backup", actor="test"
        )
        yield sandbox


async def at(sandbox: Sandbox, uid: str | None) -> bool:
    """Whether ``sandbox`` holds the billing key ``uid``."""
    await sandbox.settled()
    return uid is not None and await sandbox.state.ledger.customer(uid) is not None


def after_consent() -> list[Action]:
    return [Press("1"), *card_keys()]


async def key_requests(stack: Stack) -> list[BillingKeyRequest]:
    async with stack.db.sessions() as s:
        return list(
            await s.scalars(select(BillingKeyRequest).order_by(BillingKeyRequest.created_at))
        )


async def test_a_primary_that_does_not_answer_fails_over_to_the_secondary(
    stack: Stack, backup: Sandbox
) -> None:
    await stack.sandbox.fault("billing_key", "record_then_drop")  # issued, answer lost
    await stack.request(CallRequestKind.registration)
    outcome, _ = await stack.call(after_consent())
    assert outcome == "completed"
    [card] = await cards(stack)
    assert card.pg_account_id == "backup"
    assert await at(backup, card.billing_key_ref)
    # the primary's key (issued, never reported) is noted at the primary: deleted there
    primary_row, backup_row = await key_requests(stack)
    assert (primary_row.pg_account_id, primary_row.status) == (None, "pending")
    assert (backup_row.pg_account_id, backup_row.status) == ("backup", "attached")
    assert await at(stack.sandbox, primary_row.customer_uid)
    stack.clock.advance(SETTLE)
    assert await stack.runtime.deps.key_requests.sweep() == 1
    assert not await at(stack.sandbox, primary_row.customer_uid)
    # the card's charges go to the account holding its key, and only there
    intent = await stack.runtime.payments.create_intent(
        stack.merchant_id, card.id, amount=12_000, order_name="치료비", source="api"
    )
    assert await stack.runtime.charger.drive(intent.id) is PaymentIntentStatus.succeeded
    async with stack.db.sessions() as s:
        [attempt] = list(await s.scalars(select(PaymentAttempt)))
    assert attempt.pg_account_id == "backup"
    assert (await backup.ledger(attempt.order_id))["payments"]
    assert not (await stack.sandbox.ledger(attempt.order_id))["payments"]


async def test_an_open_primary_breaker_sends_registrations_straight_to_the_secondary(
    stack: Stack, backup: Sandbox
) -> None:
    breaker = stack.runtime.gateways.breaker(None)
    for _ in range(breaker.policy.failures):
        breaker.record_failure()
    assert breaker.state is BreakerState.open
    await stack.request(CallRequestKind.registration)
    outcome, _ = await stack.call(after_consent())
    assert outcome == "completed"
    [card] = await cards(stack)
    assert card.pg_account_id == "backup"
    [row] = await key_requests(stack)  # nothing was asked of the primary
    assert row.pg_account_id == "backup"
    assert not await at(stack.sandbox, card.billing_key_ref)


async def test_no_account_answering_ends_the_call_as_an_error(
    stack: Stack, backup: Sandbox
) -> None:
    await stack.sandbox.fault("billing_key", "record_then_drop")
    await backup.fault("billing_key", "record_then_drop")
    await stack.request(CallRequestKind.registration)
    outcome, _ = await stack.call(after_consent())
    assert outcome == "error"
    assert await cards(stack) == []
    rows = await key_requests(stack)
    assert [(r.pg_account_id, r.status) for r in rows] == [(None, "pending"), ("backup", "pending")]
    stack.clock.advance(SETTLE)
    assert await stack.runtime.deps.key_requests.sweep() == 2  # both keys deleted, each at its PG
    for r in rows:
        assert not await at(stack.sandbox, r.customer_uid)
        assert not await at(backup, r.customer_uid)


async def test_the_default_account_can_be_the_secondary(stack: Stack) -> None:
    """A primary account nobody listens at (connection refused: nothing sent), the
    [gateway] settings' account as the secondary."""
    accounts = stack.runtime.gateways.accounts
    await accounts.create("main-pg", actor="test", kind="sandbox", base_url="http://127.0.0.1:9",
                          api_key=KEY, api_secret=SECRET)  # fmt: skip
    routes = await accounts.set_routes(
        stack.merchant_id, primary="main-pg", secondary="default", actor="test"
    )
    assert await accounts.routes(stack.merchant_id) == routes
    await stack.request(CallRequestKind.registration)
    outcome, _ = await stack.call(after_consent())
    assert outcome == "completed"
    [card] = await cards(stack)
    assert card.pg_account_id is None
    assert await at(stack.sandbox, card.billing_key_ref)
    assert stack.runtime.gateways.breaker("main-pg").consecutive_failures == 1
