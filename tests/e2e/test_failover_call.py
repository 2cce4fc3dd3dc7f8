"""Issue #27 goal on the real Asterisk 22 with a SIPp caller: the merchant's primary PG
(a separate sandbox process) is SIGKILLed while the payer keys the card; the
registration completes at the secondary account and the card remembers it."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from ivr.domain.states import CallRequestKind, CallRequestStatus
from tests.gateways.support import KEY, SECRET
from tests.payments.support import start_sandbox

# the call stack fixtures of the call tests (pytest finds fixtures imported into a module)
from .test_calls import Calls, Dialogue, calls  # noqa: F401

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_registration_completes_on_the_secondary_when_the_primary_pg_dies(
    calls: Calls,  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    primary, url = start_sandbox(tmp_path / "primary-ledger.db", faults="")
    try:
        accounts = calls.runtime.gateways.accounts
        await accounts.create("main-pg", actor="test", kind="sandbox", base_url=url,
                              api_key=KEY, api_secret=SECRET)  # fmt: skip
        # the primary is the sandbox process; the secondary the [gateway] settings' one
        await accounts.set_routes(
            calls.merchant_id, primary="main-pg", secondary="default", actor="test"
        )
        req = await calls.request(CallRequestKind.registration)
        talk = asyncio.create_task(calls.talk(req, Dialogue().at("reg.consent", "1").card()))
        await calls.harness.wait_for_prompt("card.password", timeout_s=60)
        primary.send_signal(signal.SIGKILL)  # mid-call, before the card goes to the PG
        primary.communicate()
        result = await talk
    finally:
        if primary.poll() is None:
            primary.kill()
            primary.communicate()
    assert result.ok, result.errors
    [session] = await calls.harness.wait_sessions_closed(1)
    assert session.outcome == "completed"
    row = await calls.reload(req.id)
    assert row.status == CallRequestStatus.completed.value
    [card] = await calls.cards()
    assert card.pg_account_id is None  # the default account: the secondary
    assert card.billing_key_ref
    assert await calls.sandbox.state.ledger.customer(card.billing_key_ref) is not None
    assert calls.runtime.gateways.breaker("main-pg").consecutive_failures >= 1
