"""Issue #28 on the real Asterisk 22, over SIPp: each call-side rejection says why, in its
own prompt heard on the line to its end, and the payment choices of item 5 (3 = no
payment before card entry for a payer with no card; 일시불 offered again after an
installment decline) work with real DTMF. The texts are the ones the in-process flow
tests pin (tests/flows/test_flow_rejections.py, test_flow_pay_choices.py); here the
point is that the real call hears them, and the session log keeps the reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from ivr.domain.states import CallRequestKind, CallRequestStatus
from ivr.store.tables import CallRequest, Card, PaymentAttempt
from ivr.testing.asterisk import Asterisk
from tests.flows.test_flow_pay_choices import CHECK_CARD
from tests.flows.test_flow_pay_choices import TEXTS as PAY_TEXTS
from tests.flows.test_flow_rejections import TEXTS as REJECTION_TEXTS

from .test_calls import BIRTH, MOBILE, Calls, Dialogue, _intents, open_calls

pytestmark = pytest.mark.anyio

# more numbers than test_calls: every request of the one payer holds its own DID
LINE_DIDS = [f"0505222010{n}" for n in range(6)]


@pytest.fixture
async def line(asterisk: Asterisk, prompts_dir: Path, tmp_path: Path) -> AsyncIterator[Calls]:
    # one call per request, so the limit is reached by one real call
    async with open_calls(
        prompts_dir, tmp_path, dids=LINE_DIDS, ARSPAY_CALLS_MAX_CALLS_PER_REQUEST="1"
    ) as stack:
        yield stack


async def heard_rejection(
    calls: Calls, req: CallRequest, reason: str, prompt_id: str, *, caller: str = MOBILE
) -> None:
    """A real call that keys nothing: one prompt, played to its end, then the engine hangs
    up; the session log keeps ``rejected:<reason>`` and the prompt."""
    before = len(calls.transcript)
    opened = len(await calls.harness.sessions())
    result = await calls.talk(req, Dialogue(), caller=caller)
    assert result.ok, result.errors
    session = (await calls.harness.wait_sessions_closed(opened + 1))[-1]
    assert (session.status, session.outcome) == ("rejected", f"rejected:{reason}")
    steps = await calls.harness.steps(session.id)
    plays = [(st.prompt_id, st.outcome) for st in steps if st.step == "play"]
    assert plays == [(prompt_id, "done")]
    assert calls.transcript[before:] == [f"♪ {prompt_id}: {REJECTION_TEXTS[prompt_id]}"]


async def test_each_rejection_is_said_on_the_line(line: Calls) -> None:
    services = line.runtime.services
    req = await line.request(CallRequestKind.registration)
    await heard_rejection(line, req, "caller_id_withheld", "auth.withheld", caller="anonymous")
    assert (await line.reload(req.id)).calls == 0  # a withheld number uses up nothing

    await services.requests.transition(req.id, CallRequestStatus.in_call, actor="test")
    await heard_rejection(line, req, "busy", "auth.busy")  # another call holds it
    assert (await line.reload(req.id)).status == CallRequestStatus.in_call.value

    await services.requests.transition(req.id, CallRequestStatus.completed, actor="test")
    await heard_rejection(line, req, "request_completed", "auth.completed")

    limited = await line.request(CallRequestKind.registration)
    opened = len(await line.harness.sessions())
    result = await line.talk(limited, Dialogue().until("reg.greeting").hang_up())
    assert result.ok, result.errors
    session = (await line.harness.wait_sessions_closed(opened + 1))[-1]
    assert session.outcome == "caller_hung_up"
    row = await line.reload(limited.id)
    assert (row.status, row.calls) == (CallRequestStatus.failed.value, 1)  # the limit is 1
    await heard_rejection(line, limited, "too_many_calls", "auth.limit")


async def test_pay_choices_on_the_line(line: Calls) -> None:
    # A payer with no registered card says no before any card step.
    req = await line.request(CallRequestKind.payment, amount=30_000)
    result = await line.talk(req, Dialogue().at("pay.enter_or_decline", "3"))
    assert result.ok, result.errors
    [session] = await line.harness.wait_sessions_closed(1)
    assert session.outcome == "declined"
    said = [st.prompt_id for st in await line.harness.steps(session.id) if st.step == "play"]
    assert "card.number" not in said
    text = PAY_TEXTS["pay.enter_or_decline"]
    assert f"♪ pay.enter_or_decline: {text}" in line.transcript
    assert (await line.reload(req.id)).status == CallRequestStatus.declined.value

    # An installment the issuer refuses: the same card again, 일시불, on the same call.
    await line.register_directly(CHECK_CARD)
    async with line.db.transaction() as s:  # the engine believes it a credit card
        await s.execute(update(Card).values(card_type="credit"))
    req = await line.request(CallRequestKind.payment, amount=60_000)
    dialogue = (
        Dialogue()
        .at("pay.card_choice", "1")
        .at("pay.verify_birth", BIRTH)
        .at("pay.installment", "2")
        .at("pay.installment_months", "3#")
        .at("pay.confirm.installment", "1")
        .at("pay.retry_lump_sum", "1")
        .at("pay.confirm.lump_sum", "1")
    )
    result = await line.talk(req, dialogue)
    assert result.ok, result.errors
    session = (await line.harness.wait_sessions_closed(2))[-1]
    assert session.outcome == "completed"
    for pid in ("pay.failed.installment_unavailable", "pay.retry_lump_sum"):
        assert f"♪ {pid}: {PAY_TEXTS[pid]}" in line.transcript
    first, second = await _intents(line)
    assert (first.installment_months, first.status) == (3, "failed")
    assert (second.installment_months, second.status) == (0, "succeeded")
    assert first.card_id == second.card_id
    async with line.db.sessions() as s:
        q = select(PaymentAttempt).where(
            PaymentAttempt.intent_id == second.id, PaymentAttempt.status == "succeeded"
        )
        [won] = list(await s.scalars(q))
    [paid] = (await line.sandbox.ledger(won.order_id))["payments"]
    assert (paid["amount"], paid["card_quota"], paid["status"]) == (60_000, 0, "paid")
    assert (await line.reload(req.id)).status == CallRequestStatus.completed.value
