"""Any DTMF a payer can key never crashes a call: hypothesis drives both flows with
random key sequences, silences and hang-ups, on the real store, vault and sandbox PG.

Invariants after every call: the outcome is a known word (never ``error``), the request
is never left ``in_call``, a request completes only with a card (registration) or a
succeeded payment (payment), and no payment intent is charged twice."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from ivr.domain.states import CallRequestKind, CallRequestStatus
from ivr.store.tables import PaymentAttempt
from ivr.telephony.fake import Action, HangUp, Listen, Press, Silence

from .conftest import Stack

pytestmark = pytest.mark.anyio

OUTCOMES = {
    "completed", "declined", "card_declined", "card_locked", "payment_failed",
    "payment_pending", "too_many_tries", "caller_hung_up", "agent",
}  # fmt: skip
USEFUL = ["1", "2", "3", "4111111111111111", "1230", "880101#", "880101", "12", "00", "3#", "*",
          "0", "#"]  # fmt: skip

actions = st.lists(
    st.one_of(
        st.builds(Press, st.sampled_from(USEFUL)),
        st.builds(Press, st.text(alphabet="0123456789*#", min_size=1, max_size=18)),
        st.just(Silence()),
        st.just(Listen()),
        st.just(HangUp()),
    ),
    max_size=25,
)


async def _one_call(stack: Stack, kind: CallRequestKind, script: list[Action]) -> None:
    amount = 60_000 if kind is CallRequestKind.payment else None
    req = await stack.request(kind, amount=amount)
    outcome, _ = await stack.call(script)
    assert outcome in OUTCOMES, outcome
    row = await stack.reload(req.id)
    assert row.status != CallRequestStatus.in_call.value
    if row.status == CallRequestStatus.completed.value:
        if kind is CallRequestKind.registration:
            assert row.card_id is not None
        else:
            assert row.payment_intent_id is not None
    async with stack.db.sessions() as s:
        charged = await s.scalar(
            select(func.count())
            .select_from(PaymentAttempt)
            .where(PaymentAttempt.status == "succeeded")
            .group_by(PaymentAttempt.intent_id)
            .order_by(func.count().desc())
            .limit(1)
        )
    assert (charged or 0) <= 1
    if row.status in (CallRequestStatus.created.value, CallRequestStatus.sms_sent.value):
        await stack.runtime.services.requests.transition(
            req.id, CallRequestStatus.cancelled, actor="test"
        )
    stack.clock.advance(11 * 60)  # past the DID cool-down for this mobile


async def test_random_keys_never_crash_a_call(stack: Stack) -> None:
    loop = asyncio.get_running_loop()

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(kind=st.sampled_from(list(CallRequestKind)), script=actions)
    def run(kind: CallRequestKind, script: list[Action]) -> None:
        # hypothesis drives from a thread; each call runs on the test's event loop
        asyncio.run_coroutine_threadsafe(_one_call(stack, kind, script), loop).result()

    await asyncio.to_thread(run)
