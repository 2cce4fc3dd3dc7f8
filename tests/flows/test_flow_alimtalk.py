"""A real event, told by KakaoTalk 알림톡 first: a registration call on the in-process
stack records its notice; the runtime's Alimtalk dispatcher (built from the
``alimtalk`` settings) sends it over HTTP to the local fake NHN provider — delivered, or,
for a payer without KakaoTalk, the SMS with the notice's exact text instead."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from ivr.domain.states import AlimtalkStatus
from ivr.notify.alimtalk import fake as fake_nhn
from ivr.notify.alimtalk.fake import FakeNhn
from ivr.store.tables import AlimtalkMessage, SmsMessage

from .conftest import MOBILE, Stack, make_stack
from .test_flow_notices import CANARY, leaks, the_card
from .test_flow_payment import register

pytestmark = pytest.mark.anyio


@pytest.fixture
async def told(tmp_path: Path) -> AsyncIterator[tuple[Stack, FakeNhn]]:
    fake = FakeNhn(templates={"REG_DONE": {"merchant", "card"}})
    secret = tmp_path / "nhn.secret"
    secret.write_text(fake_nhn.SECRET)
    secret.chmod(0o600)
    env = {
        "ARSPAY_ALIMTALK_PROVIDER": "nhn",
        "ARSPAY_ALIMTALK_BASE_URL": await fake.start(),
        "ARSPAY_ALIMTALK_APP_KEY": fake_nhn.APP_KEY,
        "ARSPAY_ALIMTALK_SECRET_KEY_FILE": str(secret),
        "ARSPAY_ALIMTALK_SENDER_KEY": fake_nhn.SENDER_KEY,
        "ARSPAY_ALIMTALK_TEMPLATES": json.dumps({"registration_completed": "REG_DONE"}),
    }
    try:
        async with make_stack(tmp_path, **env) as stack:
            yield stack, fake
    finally:
        await fake.stop()


async def rows(stack: Stack) -> tuple[list[AlimtalkMessage], list[SmsMessage]]:
    async with stack.db.sessions() as s:
        atk = list(await s.scalars(select(AlimtalkMessage)))
        sms = list(await s.scalars(select(SmsMessage).where(SmsMessage.kind == "notice")))
    return atk, sms


async def test_a_registration_is_told_by_alimtalk(told: tuple[Stack, FakeNhn]) -> None:
    stack, fake = told
    dispatcher = stack.runtime.alimtalk
    assert dispatcher is not None
    await register(stack, CANARY)
    card = await the_card(stack)
    for _ in range(3):
        await dispatcher.run_once()
    [atk], sms = await rows(stack)
    assert (atk.status, atk.template_code, sms) == (AlimtalkStatus.delivered, "REG_DONE", [])
    [sent] = fake.delivered_to(MOBILE)
    assert sent.parameters == {"merchant": "행복치과", "card": f"{card.issuer} 끝자리 1881"}
    assert not leaks(repr(sent.parameters))


async def test_a_payer_without_kakaotalk_gets_the_sms(told: tuple[Stack, FakeNhn]) -> None:
    stack, fake = told
    fake.plan[MOBILE] = "no_kakao"
    dispatcher = stack.runtime.alimtalk
    assert dispatcher is not None
    await register(stack, CANARY)
    card = await the_card(stack)
    for _ in range(3):
        await dispatcher.run_once()
    [atk], [sms] = await rows(stack)
    assert (atk.status, atk.result_code, atk.fallback_sms_id) == ("fallback", "3018", sms.id)
    assert (
        sms.body == f"[행복치과] 자동결제 카드 등록이 완료되었습니다. ({card.issuer} 끝자리 1881)"
    )
    assert fake.delivered_to(MOBILE) == []
