"""The console shows both channels of a payer notice: the 알림톡 outbox (status, result
code, the fallback SMS it queued) and, on the SMS outbox, each message's channel (SMS or
LMS) and whether it is an 알림톡's fallback. The messages are made for real: notices
routed to 알림톡 and sent to the local fake NHN provider over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.notify.alimtalk import fake as fake_nhn
from ivr.notify.alimtalk.dispatch import AlimtalkDispatcher
from ivr.notify.alimtalk.fake import FakeNhn
from ivr.notify.alimtalk.nhn import NhnAlimtalk
from ivr.notify.notices.kinds import NoticeKind
from ivr.notify.notices.record import record_in
from ivr.notify.notices.router import NoticeRouter
from ivr.settings import AlimtalkSettings
from ivr.store.tables import Merchant
from tests.console.conftest import Console

pytestmark = pytest.mark.anyio

VARS = {"amount": 53_000, "months": 0, "issuer": "신한카드", "last4": "1234",
        "approval_no": "30012345"}  # fmt: skip


async def test_both_channels_are_shown_with_the_fallback_link(
    console: Console, tmp_path: Path
) -> None:
    a, ca = await console.tenant("행복치과")
    _, cb = await console.tenant("튼튼정형외과")
    fake = FakeNhn(templates={"PAY_OK": {"merchant", "amount", "terms", "card", "approval_no"}})
    fake.plan["01077778888"] = "no_kakao"
    secret = tmp_path / "secret"
    secret.write_text(fake_nhn.SECRET)
    secret.chmod(0o600)
    settings = AlimtalkSettings(
        provider="nhn", base_url=await fake.start(), app_key=fake_nhn.APP_KEY,
        secret_key_file=secret, sender_key=fake_nhn.SENDER_KEY,
        templates={"payment_approved": "PAY_OK"},
    )  # fmt: skip
    api, clock = console.api, console.api.clock
    sms = api.settings.sms
    router = NoticeRouter(api.db, clock, sms.sender, sms.adapter, alimtalk=settings)
    async with api.db.transaction() as s:
        merchant = await s.get(Merchant, a.merchant_id)
        assert merchant is not None
        for n, mobile in enumerate(["01066667777", "01077778888"]):
            await record_in(s, clock, NoticeKind.payment_approved, merchant=merchant,
                            mobile=mobile, subject_id=f"pi_{n}", dedupe_key=f"t:{n}",
                            variables=VARS)  # fmt: skip
    d = AlimtalkDispatcher(api.db, clock, NhnAlimtalk(settings), settings, sms, notices=router)
    try:
        for _ in range(3):
            await d.run_once()
    finally:
        await d.provider.close()
        await fake.stop()

    page = (await ca.get("/console/alimtalk")).text
    assert "PAY_OK" in page
    assert "010-****-7777" in page
    assert "01066667777" not in page
    assert "3018" in page  # the refused one's result code, and its fallback SMS
    assert page.count('data-testid="fallback"><a href="/console/sms') == 1
    assert "status-delivered" in page
    assert "status-fallback" in page
    shown = await ca.get("/console/sms?kind=notice")
    assert "알림톡 대체 발송" in shown.text
    assert 'data-testid="channel">SMS' in shown.text or 'data-testid="channel">LMS' in shown.text
    assert "53,000원" in shown.text
    assert "PAY_OK" not in (await cb.get("/console/alimtalk")).text  # b: its own only
    ca.cookies.set("arspay_lang", "en")
    assert "KakaoTalk Alimtalk outbox" in (await ca.get("/console/alimtalk")).text
    assert "Alimtalk fallback" in (await ca.get("/console/sms")).text
