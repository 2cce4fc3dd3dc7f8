"""KakaoTalk 알림톡 with the SMS/LMS fallback, over real HTTP against the local fake
NHN provider (ivr/notify/alimtalk/fake.py), on SQLite and PostgreSQL: one payer message
per notice, whatever the provider does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ivr.clock import FakeClock
from ivr.domain.states import AlimtalkStatus
from ivr.errors import ConfigError
from ivr.notify.alimtalk import fake as fake_nhn
from ivr.notify.alimtalk.contract import AlimtalkRequest
from ivr.notify.alimtalk.dispatch import AlimtalkDispatcher
from ivr.notify.alimtalk.fake import FakeNhn
from ivr.notify.alimtalk.nhn import NhnAlimtalk
from ivr.notify.notices.kinds import NoticeKind
from ivr.notify.notices.record import record_in
from ivr.notify.notices.texts import sms_text
from ivr.notify.sms.dispatch import SmsDispatcher
from ivr.notify.sms.outbox import OutboxSender
from ivr.runtime import build
from ivr.settings import Settings, load_settings
from ivr.store.db import Database
from ivr.store.tables import AlimtalkMessage, Merchant, Notice, SmsMessage
from ivr.wiring import Services

pytestmark = pytest.mark.anyio
A = AlimtalkStatus
APPROVED = "ARSPAY_PAY_OK"
REFUND = "ARSPAY_REFUND"
TEMPLATES = {
    APPROVED: {"merchant", "amount", "terms", "card", "approval_no"},
    REFUND: {"merchant", "amount", "refund_type", "paid_amount", "remaining", "not_sent"},
}
CARD_VARS = {"amount": 1_530_000, "months": 3, "issuer": "신한카드",
             "last4": "1111", "approval_no": "30012345"}  # fmt: skip


@dataclass
class World:
    settings: Settings
    services: Services
    clock: FakeClock
    fake: FakeNhn
    merchant_id: str
    seq: int = 0

    @property
    def db(self) -> Database:
        return self.services.db

    def dispatcher(self) -> AlimtalkDispatcher:
        return AlimtalkDispatcher(
            self.db, self.clock, NhnAlimtalk(self.settings.alimtalk), self.settings.alimtalk,
            self.settings.sms, notices=self.services.notices,
        )  # fmt: skip

    async def notice(
        self, mobile: str, kind: NoticeKind = NoticeKind.payment_approved,
        variables: dict[str, Any] | None = None,
    ) -> str:  # fmt: skip
        self.seq += 1
        async with self.db.transaction() as s:
            merchant = await s.get(Merchant, self.merchant_id)
            assert merchant is not None
            added = await record_in(
                s, self.clock, kind, merchant=merchant, mobile=mobile,
                subject_id=f"pi_{self.seq}", dedupe_key=f"test:{self.seq}",
                variables=CARD_VARS if variables is None else variables,
            )  # fmt: skip
            assert added
            notice_id = await s.scalar(
                select(Notice.id).where(Notice.dedupe_key == f"test:{self.seq}")
            )
        assert notice_id is not None
        return notice_id

    async def message(self, notice_id: str) -> AlimtalkMessage:
        async with self.db.sessions() as s:
            row = await s.scalar(
                select(AlimtalkMessage).where(AlimtalkMessage.notice_id == notice_id)
            )
        assert row is not None
        return row

    async def sms_of(self, notice_id: str) -> list[SmsMessage]:
        async with self.db.sessions() as s:
            return list(
                await s.scalars(select(SmsMessage).where(SmsMessage.notice_id == notice_id))
            )

    async def rounds(self, d: AlimtalkDispatcher, n: int, step_s: float = 0.0) -> None:
        for _ in range(n):
            await d.run_once()
            self.clock.advance(timedelta(seconds=step_s))


@pytest.fixture
async def world(db: Database, tmp_path: Path) -> AsyncIterator[World]:
    fake = FakeNhn(templates={k: set(v) for k, v in TEMPLATES.items()}, slow_s=0.8)
    base = await fake.start()
    secret = tmp_path / "nhn-secret"
    secret.write_text(fake_nhn.SECRET + "\n")
    secret.chmod(0o600)
    settings = load_settings(env={
        "ARSPAY_CONFIG": "/nonexistent.toml",
        "ARSPAY_PATHS_VAR_DIR": str(tmp_path / "var"),
    })  # fmt: skip
    settings = settings.model_copy(update={"alimtalk": settings.alimtalk.model_copy(update={
        "provider": "nhn", "base_url": base, "app_key": fake_nhn.APP_KEY,
        "secret_key_file": secret, "sender_key": fake_nhn.SENDER_KEY,
        "templates": {"payment_approved": APPROVED, "refund": REFUND},
        "timeout_s": 0.3, "max_attempts": 3, "retry_base_s": 10.0, "result_wait_s": 120.0,
    })})  # fmt: skip
    clock = FakeClock()
    services = build(settings, clock=clock, db=db)
    merchant = await services.merchants.create("행복한미소치과")
    yield World(settings, services, clock, fake, merchant.id)
    await fake.stop()


async def test_given_a_kakaotalk_user_when_dispatched_then_alimtalk_delivered_and_no_sms(
    world: World,
) -> None:
    notice = await world.notice("01011112222")
    d = world.dispatcher()
    await world.rounds(d, 2)
    row = await world.message(notice)
    assert (row.status, row.result_code, row.fallback_sms_id) == (A.delivered, "1000", None)
    assert row.request_id
    assert row.recipient_seq == 1
    assert await world.sms_of(notice) == []
    [sent] = world.fake.delivered_to("01011112222")
    assert sent.template_code == APPROVED
    assert sent.grouping_key == row.id
    # the card as issuer + last 4, never more; amounts as the SMS prints them
    assert sent.parameters["card"] == "신한카드 끝자리 1111"
    assert sent.parameters["amount"] == "1,530,000"
    assert sent.parameters["terms"] == "3개월 할부"
    assert "4111111111111111" not in repr(sent.parameters) + repr(row.parameters)
    assert sent.buttons == []
    await d.provider.close()


async def test_given_a_receipt_link_then_the_button_goes_with_it(world: World) -> None:
    url = "https://receipt.example/r/1"
    notice = await world.notice("01011113333", variables=CARD_VARS | {"receipt_url": url})
    d = world.dispatcher()
    await world.rounds(d, 2)
    assert (await world.message(notice)).status == A.delivered
    [sent] = world.fake.delivered_to("01011113333")
    assert sent.parameters["receipt_url"] == url
    assert sent.buttons == [{"ordering": 1, "target": "out"}]
    await d.provider.close()


@pytest.mark.parametrize(
    ("plan", "kind", "code"),
    [
        ("no_kakao", NoticeKind.payment_approved, "3018"),  # not a KakaoTalk user
        ("deliver", NoticeKind.refund, "3016"),  # the template needs a parameter we lack
        ("blocked_sender", NoticeKind.payment_approved, "-1027"),  # refused at once
    ],
)
async def test_given_a_refusal_then_exactly_one_sms_with_the_notice_text(
    world: World, plan: str, kind: NoticeKind, code: str
) -> None:
    mobile = "01022223333"
    world.fake.plan[mobile] = plan
    variables = (
        {"amount": 50_000, "full": False, "paid_amount": 80_000, "refunded_amount": 50_000}
        if kind is NoticeKind.refund
        else CARD_VARS
    )
    notice = await world.notice(mobile, kind, variables)
    d = world.dispatcher()
    await world.rounds(d, 3)
    row = await world.message(notice)
    assert (row.status, row.result_code) == (A.fallback, code)
    [sms] = await world.sms_of(notice)
    assert row.fallback_sms_id == sms.id
    merchant_vars = {"merchant": "행복한미소치과", **variables}
    assert sms.body == sms_text(kind, merchant_vars) == row.fallback_text
    assert (sms.kind, sms.to, sms.status) == ("notice", mobile, "pending")
    # the SMS outbox takes it from there, once
    sms_d = SmsDispatcher(world.db, world.clock, OutboxSender(), world.settings.sms,
                          world.services.requests)  # fmt: skip
    await sms_d.run_once()
    [sms] = await world.sms_of(notice)
    assert sms.status == "sent"
    await d.run_once()
    assert len(await world.sms_of(notice)) == 1
    assert world.fake.delivered_to(mobile) == []
    await d.provider.close()


async def test_given_the_provider_down_then_retries_with_backoff_then_delivers(
    world: World,
) -> None:
    mobile = "01033334444"
    world.fake.plan[mobile], world.fake.down_for = "down", 2
    notice = await world.notice(mobile)
    d = world.dispatcher()
    await d.run_once()
    row = await world.message(notice)
    assert (row.status, row.attempts) == (A.retrying, 1)
    await d.run_once()  # not due yet: backoff
    assert (await world.message(notice)).attempts == 1
    await world.rounds(d, 6, step_s=30)
    row = await world.message(notice)
    assert (row.status, row.attempts) == (A.delivered, 3)
    assert await world.sms_of(notice) == []
    await d.provider.close()


async def test_given_the_provider_down_for_good_then_sms_after_max_attempts(world: World) -> None:
    mobile = "01033335555"
    world.fake.plan[mobile], world.fake.down_for = "down", 99
    notice = await world.notice(mobile)
    d = world.dispatcher()
    await world.rounds(d, 8, step_s=60)
    row = await world.message(notice)
    assert (row.status, row.attempts) == (A.fallback, 3)
    assert row.last_error == "nhn: status 500"
    assert len(await world.sms_of(notice)) == 1
    assert world.fake.sends == 3
    await d.provider.close()


async def test_given_a_timeout_after_the_provider_accepted_then_lookup_finds_it_no_fallback(
    world: World,
) -> None:
    mobile = "01044445555"
    world.fake.plan[mobile] = "slow_accept"
    notice = await world.notice(mobile)
    d = world.dispatcher()
    await d.run_once()
    row = await world.message(notice)
    assert row.status == A.unknown
    assert row.request_id is None
    await world.rounds(d, 4, step_s=15)
    row = await world.message(notice)
    assert row.status == A.delivered
    assert row.request_id is not None
    assert world.fake.sends == 1
    assert world.fake.lookups >= 1
    assert len(world.fake.messages) == 1
    assert await world.sms_of(notice) == []
    await d.provider.close()


async def test_given_a_lost_send_then_lookup_finds_nothing_and_it_is_sent_again(
    world: World,
) -> None:
    mobile = "01044446666"
    world.fake.plan[mobile], world.fake.down_for = "lost", 1
    notice = await world.notice(mobile)
    d = world.dispatcher()
    await d.run_once()
    assert (await world.message(notice)).status == A.unknown
    await world.rounds(d, 5, step_s=15)
    row = await world.message(notice)
    assert (row.status, row.attempts) == (A.delivered, 2)
    assert len(world.fake.delivered_to(mobile)) == 1
    assert await world.sms_of(notice) == []
    await d.provider.close()


async def test_given_no_result_within_the_wait_then_unconfirmed_and_no_fallback(
    world: World,
) -> None:
    world.fake.ready_polls = 1000
    notice = await world.notice("01055556666")
    d = world.dispatcher()
    await world.rounds(d, 4, step_s=60)
    row = await world.message(notice)
    assert row.status == A.unconfirmed
    assert await world.sms_of(notice) == []
    await d.provider.close()


async def test_given_a_dispatcher_died_mid_send_then_recover_looks_it_up(world: World) -> None:
    mobile = "01066667777"
    notice = await world.notice(mobile)
    d = world.dispatcher()
    await world.services.notices.route_pending()
    jobs = await d._claim()
    assert [j.status for j in jobs] == [A.sending]
    row = await world.message(notice)
    # the request went out; the process died before recording the answer
    await d.provider.send(AlimtalkRequest(ref=row.id, to=row.to,
                                          template_code=row.template_code,
                                          parameters=row.parameters))  # fmt: skip
    assert await d.recover() == 1
    assert (await world.message(notice)).status == A.unknown
    await world.rounds(d, 4, step_s=15)
    assert (await world.message(notice)).status == A.delivered
    assert len(world.fake.messages) == 1
    assert await world.sms_of(notice) == []
    await d.provider.close()


async def test_given_two_dispatchers_at_once_then_one_message_per_notice(world: World) -> None:
    refused = ["01077770001", "01077770002", "01077770003"]
    accepted = ["01077770011", "01077770012", "01077770013"]
    for m in refused:
        world.fake.plan[m] = "no_kakao"
    notices = [await world.notice(m) for m in refused + accepted]
    d1, d2 = world.dispatcher(), world.dispatcher()
    for _ in range(3):
        await asyncio.gather(d1.run_once(), d2.run_once())
    for notice, mobile in zip(notices, refused + accepted, strict=True):
        row = await world.message(notice)
        sms = await world.sms_of(notice)
        if mobile in refused:
            assert row.status == A.fallback
            assert len(sms) == 1
        else:
            assert row.status == A.delivered
            assert sms == []
    by_key: dict[str | None, int] = {}
    for m in world.fake.messages:
        by_key[m.grouping_key] = by_key.get(m.grouping_key, 0) + 1
    assert sorted(by_key.values()) == [1] * 6
    async with world.db.sessions() as s:
        rows = list(await s.scalars(select(AlimtalkMessage)))
    assert len(rows) == 6
    await d1.provider.close()
    await d2.provider.close()


async def test_given_a_kind_without_a_template_then_it_goes_by_sms(world: World) -> None:
    notice = await world.notice(
        "01088889999", NoticeKind.registration_completed, {"issuer": "KB국민", "last4": "1234"}
    )
    await world.services.notices.route_pending()
    [sms] = await world.sms_of(notice)
    assert "KB국민 끝자리 1234" in sms.body
    async with world.db.sessions() as s:
        assert await s.scalar(select(AlimtalkMessage.id)) is None


def test_templates_come_from_toml_or_json_and_name_notice_kinds(tmp_path: Path) -> None:
    env = {"ARSPAY_CONFIG": "/nonexistent.toml", "ARSPAY_ALIMTALK_PROVIDER": "nhn",
           "ARSPAY_ALIMTALK_TEMPLATES": '{"refund": "T_REFUND"}'}  # fmt: skip
    got = load_settings(env=env).alimtalk
    assert got.enabled
    assert got.template_for("refund") == "T_REFUND"
    assert got.template_for("payment_approved") is None
    with pytest.raises(ConfigError, match="unknown notice kind"):
        load_settings(env=env | {"ARSPAY_ALIMTALK_TEMPLATES": '{"refnud": "T"}'})
    assert not load_settings(env={"ARSPAY_CONFIG": "/nonexistent.toml"}).alimtalk.enabled


def test_a_secret_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    settings = load_settings(env={"ARSPAY_CONFIG": "/nonexistent.toml"}).alimtalk
    loose = settings.model_copy(update={"secret_key_file": secret})
    with pytest.raises(ConfigError, match="owner only"):
        loose.secret_key()
    secret.chmod(0o600)
    assert loose.secret_key().get_secret_value() == "s3cret"
    assert "s3cret" not in repr(loose.secret_key())


async def test_given_a_merchant_that_switched_alimtalk_off_then_sms_only(world: World) -> None:
    async with world.db.transaction() as s:
        merchant = await s.get(Merchant, world.merchant_id)
        assert merchant is not None
        merchant.settings = {"notices": {"alimtalk": False}}
    notice = await world.notice("01099990000")
    d = world.dispatcher()
    await world.rounds(d, 2)
    [sms] = await world.sms_of(notice)
    assert sms.body == sms_text(NoticeKind.payment_approved, {"merchant": "행복한미소치과",
                                                             **CARD_VARS})  # fmt: skip
    async with world.db.sessions() as s:
        assert await s.scalar(select(AlimtalkMessage.id)) is None
    assert world.fake.sends == 0
    await d.provider.close()


async def test_given_the_provider_unreachable_then_retried_as_not_sent(
    world: World, tmp_path: Path
) -> None:
    notice = await world.notice("01012120000")
    await world.fake.stop()  # nothing listens on its port now: connection refused
    d = world.dispatcher()
    await d.run_once()
    row = await world.message(notice)
    assert (row.status, row.attempts) == (A.retrying, 1)
    assert row.last_error is not None
    assert row.last_error.startswith("nhn: cannot connect")
    await d.provider.close()
