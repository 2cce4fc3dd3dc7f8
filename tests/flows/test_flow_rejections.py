"""Rejections say why and what to do, one prompt each (issue #28, docs/product.md §4.1):
each made by the real event, heard with its text, and kept in the session log as
``rejected:<reason>`` with the prompt id played. Nothing is told about a request to a
caller whose number holds no lease on the called DID."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from ivr.domain.states import CallRequestKind, CallRequestStatus
from ivr.store.tables import CallSession, CallStep
from ivr.telephony.fake import FakeCall, HangUp, Press

from .conftest import MOBILE, Stack
from .test_flow_registration import card_keys

pytestmark = pytest.mark.anyio

OTHER_MOBILE = "01099990000"
TEXTS = {
    "auth.rejected": "등록되지 않은 번호이거나 유효 시간이 지났습니다. "
    "문자로 받으신 번호로 다시 걸어 주세요.",
    "auth.completed": "이미 처리된 요청입니다. 궁금하신 점은 행복치과에 문의해 주세요.",
    "auth.cancelled": "취소된 요청입니다. 자세한 내용은 행복치과에 문의해 주세요.",
    "auth.busy": "이 요청으로 이미 통화 중입니다. 먼저 하신 통화를 마치신 후 다시 걸어 주세요.",
    "auth.limit": "통화 횟수를 초과했습니다. 다시 진행하시려면 행복치과에 문의해 주세요.",
    "auth.withheld": "발신번호가 표시되지 않아 확인할 수 없습니다. "
    "발신번호 표시를 켜고 다시 걸어 주세요.",
}


async def rejected(
    stack: Stack, reason: str, prompt_id: str, *, did: str | None = None, caller: str = MOBILE
) -> FakeCall:
    """Call (keys ready, as a payer would), expect one prompt and the hang-up; check the
    prompt's text and what the session log kept."""
    heard = len(stack.transcript)
    outcome, call = await stack.call([Press("1"), *card_keys()], did=did, caller_id=caller)
    assert outcome == f"rejected:{reason}"
    assert call.played == [f"arspay/{prompt_id}"]
    assert call.hung_up
    assert stack.transcript[heard:] == [f"♪ {prompt_id}: {TEXTS[prompt_id]}"]
    async with stack.db.sessions() as s:
        session = await s.scalar(select(CallSession).where(CallSession.channel_id == call.call_id))
        assert session is not None
        steps = list(await s.scalars(select(CallStep).where(CallStep.session_id == session.id)))
    assert (session.status, session.outcome) == ("rejected", f"rejected:{reason}")
    assert session.call_request_id is None
    assert [st.prompt_id for st in steps if st.step == "play"] == [prompt_id]
    return call


async def completed_registration(stack: Stack) -> str:
    req = await stack.request(CallRequestKind.registration)
    outcome, _ = await stack.call([Press("1"), *card_keys()])
    assert outcome == "completed"
    return req.id


@pytest.mark.parametrize(("caller", "reason"), [
    ("anonymous", "caller_id_withheld"), ("", "caller_id_missing"),
    ("sip:restricted@pbx", "caller_id_withheld"),
])  # fmt: skip
async def test_a_withheld_caller_id_is_told_to_show_it(
    stack: Stack, caller: str, reason: str
) -> None:
    req = await stack.request(CallRequestKind.registration)
    await rejected(stack, reason, "auth.withheld", caller=caller)
    assert (await stack.reload(req.id)).calls == 0


async def test_a_number_not_leased_to_the_caller_or_expired(stack: Stack) -> None:
    req = await stack.request(CallRequestKind.registration)
    await rejected(stack, "no_lease", "auth.rejected", caller=OTHER_MOBILE)
    await rejected(stack, "no_lease", "auth.rejected", did="05059999999")
    stack.clock.advance(timedelta(minutes=31))  # the lease ran out (the request not yet)
    await rejected(stack, "lease_expired", "auth.rejected")
    await stack.runtime.services.requests.expire_due()
    assert (await stack.reload(req.id)).status == CallRequestStatus.expired.value
    await rejected(stack, "lease_expired", "auth.rejected")


async def test_a_completed_request_is_told_to_its_payer_only(stack: Stack) -> None:
    request_id = await completed_registration(stack)
    await rejected(stack, "request_completed", "auth.completed")
    # Another phone calling the same number learns nothing of that request.
    await stack.runtime.services.customers.create(stack.merchant_id, mobile=OTHER_MOBILE)
    await rejected(stack, "no_lease", "auth.rejected", caller=OTHER_MOBILE)
    row = await stack.reload(request_id)
    assert (row.status, row.calls) == (CallRequestStatus.completed.value, 1)
    # Told while the lease's lifetime or cool-down lasts (30 min here), not forever.
    stack.clock.advance(timedelta(minutes=29))
    await rejected(stack, "request_completed", "auth.completed")
    stack.clock.advance(timedelta(minutes=2))
    await rejected(stack, "no_lease", "auth.rejected")


async def test_a_declined_request_is_already_processed(stack: Stack) -> None:
    await stack.request(CallRequestKind.registration)
    outcome, _ = await stack.call([Press("2")])
    assert outcome == "declined"
    await rejected(stack, "request_declined", "auth.completed")


async def test_a_cancelled_request_says_whom_to_ask(stack: Stack) -> None:
    req = await stack.request(CallRequestKind.payment, amount=30_000)
    await stack.runtime.services.requests.transition(
        req.id, CallRequestStatus.cancelled, actor="test"
    )
    await rejected(stack, "request_cancelled", "auth.cancelled")
    await rejected(stack, "no_lease", "auth.rejected", caller=OTHER_MOBILE)


async def test_a_second_call_while_one_is_in_progress(stack: Stack) -> None:
    req = await stack.request(CallRequestKind.registration)
    services = stack.runtime.services
    await services.requests.transition(req.id, CallRequestStatus.in_call, actor="test")
    await rejected(stack, "busy", "auth.busy")
    row = await stack.reload(req.id)
    assert (row.status, row.calls) == (CallRequestStatus.in_call.value, 1)  # untouched
    await rejected(stack, "no_lease", "auth.rejected", caller=OTHER_MOBILE)


async def test_the_call_limit_is_told_after_the_last_allowed_call(stack: Stack) -> None:
    req = await stack.request(CallRequestKind.registration)
    for _ in range(5):
        outcome, _ = await stack.call([HangUp()])
        assert outcome == "caller_hung_up"
    row = await stack.reload(req.id)
    assert (row.status, row.calls) == (CallRequestStatus.failed.value, 5)
    await rejected(stack, "too_many_calls", "auth.limit")
    await rejected(stack, "no_lease", "auth.rejected", caller=OTHER_MOBILE)


async def test_a_payers_newer_request_on_the_same_number_wins(stack: Stack) -> None:
    """A completed request's note never shadows the payer's newer lease on that DID."""
    first = await completed_registration(stack)
    stack.clock.advance(timedelta(minutes=11))  # past the cool-down
    services = stack.runtime.services
    for _ in range(3):  # one lease per DID: the pool is 3 numbers
        new = await services.requests.create(
            stack.merchant_id, stack.customer_id, CallRequestKind.payment,
            product_name="스케일링", amount=30_000,
        )  # fmt: skip
        if new.request.did == (await stack.reload(first)).did:
            break
    else:
        pytest.fail("the first request's DID was not leased again")
    await services.outbox.deliver_pending()
    outcome, call = await stack.call([Press("3")], did=new.request.did)
    assert outcome == "declined"
    assert "arspay/pay.greeting" in call.played
