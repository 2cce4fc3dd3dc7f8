"""Issue #6 acceptance on the real Asterisk 22, driven by SIPp with real DTMF: the
registration and payment calls with generated Korean prompts, the real vault (key-file
KEK), and the sandbox PG in-process over HTTP.

Each caller step waits until the engine is *playing* the named prompt (from the
call-session log), then keys its digits — as a payer who waits for the question.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select

from ivr.domain.ids import new_id
from ivr.domain.states import CallRequestKind, CallRequestStatus, CardStatus
from ivr.engine import running
from ivr.runtime import Runtime, open_runtime
from ivr.settings import Settings, load_settings
from ivr.store import migrate
from ivr.store.db import Database
from ivr.store.tables import CallRequest, Card, ConsentRecord, PaymentAttempt, PaymentIntent
from ivr.testing.asterisk import Asterisk
from ivr.testing.sipp import CallResult, CallScript, DtmfMethod, SippCall, start_call
from tests.flows.test_flow_rejections import TEXTS as REJECTION_TEXTS
from tests.gateways.support import Sandbox, running_sandbox
from tests.stack import engine_env
from vault.card import CardData
from vault.factory import init_keys

from .conftest import CANARY_DIRS, SENT_DIGITS, EngineHarness

pytestmark = pytest.mark.anyio

MOBILE = "01077776666"
DIDS = ["05052220001", "05052220002", "05052220003"]
CARD = "4111111111111111"
EXPIRY = "1230"
BIRTH = "880101"
CANARY_NEEDLES = {CARD, "4000000000009995", "4012888888881881", "5555555555554444",
                  EXPIRY + BIRTH}  # fmt: skip


@dataclass
class Calls:
    runtime: Runtime
    harness: EngineHarness
    sandbox: Sandbox
    merchant_id: str
    customer_id: str
    workdir: Path
    transcript: list[str] = field(default_factory=list)

    @property
    def db(self) -> Database:
        return self.runtime.services.db

    async def request(self, kind: CallRequestKind, amount: int | None = None) -> CallRequest:
        services = self.runtime.services
        new = await services.requests.create(
            self.merchant_id, self.customer_id, kind, product_name="임플란트", amount=amount
        )
        await services.outbox.deliver_pending()
        return new.request

    async def reload(self, request_id: str) -> CallRequest:
        async with self.db.sessions() as s:
            row = await s.get(CallRequest, request_id)
        assert row is not None
        return row

    async def cards(self) -> list[Card]:
        async with self.db.sessions() as s:
            return list(await s.scalars(select(Card).order_by(Card.created_at)))

    async def register_directly(self, number: str) -> Card:
        """A registered card without a call (as the API will do): vault + billing key."""
        vault = self.runtime.vault
        meta = await vault.tokenize(self.merchant_id, CardData(number, EXPIRY, BIRTH), who="test")
        key = await vault.issue_billing_key(
            meta.token, self.merchant_id, password2="12", customer_uid=new_id("bk"),
            who="test", why="test setup",
        )  # fmt: skip
        assert key.ok, key
        async with self.db.transaction() as s:
            card = await self.runtime.deps.cards.add_in(
                s, meta, customer_id=self.customer_id, billing_key_ref=key.customer_uid,
                issuer=key.card_issuer, card_type=key.card_type, actor="test",
            )  # fmt: skip
        return card

    async def talk(
        self, req: CallRequest, dialogue: Dialogue, *, caller: str = MOBILE
    ) -> CallResult:
        call = SippCall(did=req.did, caller_id=caller, script=dialogue.script(),
                        headers=dialogue.headers)  # fmt: skip
        try:
            async with start_call(call, workdir=self.workdir, timeout_s=180) as handle:
                for signal, prompt_id in dialogue.waits:
                    await self.harness.wait_for_prompt(prompt_id, timeout_s=45)
                    await handle.release(signal)
                return await handle.wait()
        finally:
            print("transcript:\n  " + "\n  ".join(self.transcript))  # no digits in it
            for ses in await self.harness.sessions():  # shown when a test fails
                for st in await self.harness.steps(ses.id):
                    print(f"step {st.seq} {st.step} {st.prompt_id} {st.outcome} {st.started_at}")


@dataclass
class Dialogue:
    """What the payer keys, and at which prompt."""

    method: DtmfMethod = "info"
    gap_ms: int = 400
    headers: dict[str, str] = field(default_factory=lambda: {"X-Arspay-Endpoint": "sipp-info"})
    waits: list[tuple[str, str]] = field(default_factory=list)
    _script: CallScript = field(default_factory=CallScript)
    _end: str = "expect_hangup"

    def at(self, prompt_id: str, digits: str) -> Dialogue:
        signal = f"s{len(self.waits)}"
        self.waits.append((signal, prompt_id))
        script = self._script.wait_for(signal, timeout_ms=60_000)
        if self.method == "info":
            self._script = script.dtmf(digits, "info", gap_ms=self.gap_ms)
        else:
            self._script = script.dtmf(digits, "rfc4733")
        SENT_DIGITS.append(digits)
        return self

    def until(self, prompt_id: str) -> Dialogue:
        """Wait, keying nothing, until the engine plays ``prompt_id``."""
        signal = f"s{len(self.waits)}"
        self.waits.append((signal, prompt_id))
        self._script = self._script.wait_for(signal, timeout_ms=60_000)
        return self

    def card(
        self,
        number: str = CARD,
        *,
        birth: str = BIRTH,
        password: str = "12",  # noqa: S107
        hash_: bool = True,
    ) -> Dialogue:
        return (
            self.at("card.number", number)
            .at("card.expiry", EXPIRY)
            .at("card.birth", birth + ("#" if hash_ else ""))
            .at("card.password", password)
            .at("card.confirm", "1")
        )

    def hang_up(self) -> Dialogue:
        self._end = "hangup"
        return self

    def script(self) -> CallScript:
        if self._end == "hangup":
            return self._script.wait(300).hangup()
        return self._script.expect_hangup(timeout_ms=90_000)


@contextlib.asynccontextmanager
async def open_calls(
    prompts_dir: Path, tmp_path: Path, *, dids: list[str] = DIDS, **extra_env: str
) -> AsyncIterator[Calls]:
    """An engine on the real Asterisk, its sandbox PG and one merchant and payer;
    ``extra_env`` adds ``ARSPAY_*`` settings (e.g. a lower call limit)."""
    CANARY_DIRS.append(tmp_path)
    async with running_sandbox(tmp_path / "pg" / "ledger.db") as sandbox:
        env = {k: v for k, v in os.environ.items() if k.startswith("ARSPAY_")}
        env.pop("ARSPAY_DATABASE_URL", None)
        env |= engine_env(
            tmp_path, sandbox.url, ARSPAY_PROMPTS_SOUNDS_DIR=str(prompts_dir), **extra_env
        )
        settings: Settings = load_settings(env=env)
        init_keys(settings)
        db = Database(settings.database_url)
        await migrate.upgrade(db)
        lines: list[str] = []
        runtime = await open_runtime(
            settings, db=db, transcript=lambda _call, line: lines.append(line)
        )
        services = runtime.services
        await services.dids.import_numbers(dids)
        merchant = await services.merchants.create("행복치과")
        customer = await services.customers.create(merchant.id, mobile=MOBILE)
        engine = runtime.engine(sweep_interval_s=3600)
        harness = EngineHarness(engine, services)
        try:
            async with running(engine):
                yield Calls(runtime, harness, sandbox, merchant.id, customer.id, tmp_path,
                            lines)  # fmt: skip
        finally:
            await runtime.close()


@pytest.fixture
async def calls(asterisk: Asterisk, prompts_dir: Path, tmp_path: Path) -> AsyncIterator[Calls]:
    async with open_calls(prompts_dir, tmp_path) as stack:
        yield stack


# --------------------------------------------------------------------------- registration


async def test_registration_with_a_success_card(calls: Calls) -> None:
    """The birth date keyed without # (issue #28): taken within 2 s of its 6th key."""
    req = await calls.request(CallRequestKind.registration)
    dialogue = Dialogue().at("reg.consent", "1").card(hash_=False)
    result = await calls.talk(req, dialogue)
    assert result.ok, result.errors
    [session] = await calls.harness.wait_sessions_closed(1)
    assert session.outcome == "completed"
    steps = await calls.harness.steps(session.id)
    at = next(n for n, st in enumerate(steps) if st.prompt_id == "card.birth")
    field = next(st for st in steps[at:] if st.step == "collect")
    assert field.outcome == "inter_digit_timeout"  # 6 keys, then the short pause
    assert field.ended_at is not None
    took = (field.ended_at - field.started_at).total_seconds()
    # the 1st key cut the prompt; 5 more came dialogue.gap_ms apart, then 1.5 s of silence
    last_key_within = 5 * dialogue.gap_ms / 1000 + 0.5
    assert took < last_key_within + 2.0, took
    after = [st.prompt_id for st in steps[at:] if st.step == "play"]
    assert after[1] == "card.password", after
    row = await calls.reload(req.id)
    assert row.status == CallRequestStatus.completed.value
    [card] = await calls.cards()
    assert (card.bin6, card.last4, card.status, row.card_id) == (
        "411111",
        "1111",
        "active",
        card.id,
    )
    meta = await calls.runtime.vault.metadata(card.vault_token, calls.merchant_id)
    assert meta.last4 == "1111"
    async with calls.db.sessions() as s:
        [consent] = list(await s.scalars(select(ConsentRecord)))
    assert (consent.kind, consent.key_pressed, consent.did) == (
        "registration_consent",
        "1",
        req.did,
    )
    played = consent.prompts["played"]
    assert {p["prompt_id"] for p in played} == {"reg.greeting", "reg.consent"}
    # the evidence hashes are those of the files Asterisk played
    book = calls.runtime.book
    assert all(book.sha256(p["sound"]) == p["sha256"] for p in played)
    assert (await calls.runtime.services.consent.verify()).ok


async def test_registration_over_fastagi(calls: Calls) -> None:
    """The same flow through the dialplan's AGI() route (FastAGI server in the engine)."""
    req = await calls.request(CallRequestKind.registration)
    dialogue = Dialogue(headers={"X-Arspay-Endpoint": "sipp-agi-info"})
    result = await calls.talk(req, dialogue.at("reg.consent", "1").card())
    assert result.ok, result.errors
    [session] = await calls.harness.wait_sessions_closed(1)
    assert session.outcome == "completed"
    assert session.channel_id  # the AGI unique id
    assert (await calls.reload(req.id)).status == CallRequestStatus.completed.value
    [card] = await calls.cards()
    assert card.last4 == "1111"


async def test_wrong_caller_is_rejected(calls: Calls) -> None:
    req = await calls.request(CallRequestKind.registration)
    dialogue = Dialogue()
    result = await calls.talk(req, dialogue, caller="01011112222")
    assert result.ok, result.errors
    [session] = await calls.harness.wait_sessions_closed(1)
    assert (session.status, session.outcome) == ("rejected", "rejected:no_lease")
    steps = await calls.harness.steps(session.id)
    assert [s.prompt_id for s in steps if s.step == "play"] == ["auth.rejected"]
    assert calls.transcript == [f"♪ auth.rejected: {REJECTION_TEXTS['auth.rejected']}"]
    assert (await calls.reload(req.id)).status == CallRequestStatus.sms_sent.value
    assert await calls.cards() == []


async def test_correct_caller_on_an_expired_lease_is_rejected(calls: Calls) -> None:
    req = await calls.request(CallRequestKind.registration)
    async with calls.db.transaction() as s:  # the lease ran out (as if 30 min passed)
        from ivr.store.tables import Lease

        lease = await s.get(Lease, req.lease_id)
        assert lease is not None
        lease.expires_at = calls.runtime.services.clock.now()
    result = await calls.talk(req, Dialogue())  # auth.rejected, then we hang up
    assert result.ok, result.errors
    [session] = await calls.harness.wait_sessions_closed(1)
    assert session.outcome == "rejected:lease_expired"
    assert calls.transcript == [f"♪ auth.rejected: {REJECTION_TEXTS['auth.rejected']}"]
    assert await calls.cards() == []


async def test_a_cancelled_request_says_so_and_whom_to_ask(calls: Calls) -> None:
    """Issue #28: the rejection says why, in its own prompt, to the lease's caller."""
    req = await calls.request(CallRequestKind.payment, amount=30_000)
    await calls.runtime.services.requests.transition(
        req.id, CallRequestStatus.cancelled, actor="test"
    )
    result = await calls.talk(req, Dialogue())  # auth.cancelled, then the engine hangs up
    assert result.ok, result.errors
    [session] = await calls.harness.wait_sessions_closed(1)
    assert (session.status, session.outcome) == ("rejected", "rejected:request_cancelled")
    steps = await calls.harness.steps(session.id)
    plays = [(st.prompt_id, st.outcome) for st in steps if st.step == "play"]
    assert plays == [("auth.cancelled", "done")]  # played to its end on the line
    assert calls.transcript == [
        "♪ auth.cancelled: 취소된 요청입니다. 자세한 내용은 행복치과에 문의해 주세요."
    ]


async def test_wrong_password_then_another_password(calls: Calls) -> None:
    req = await calls.request(CallRequestKind.registration)
    dialogue = (
        Dialogue(method="rfc4733", headers={})
        .at("reg.consent", "1")
        .card(password="00")
        .at("reg.retry", "1")
        .at("card.password", "12")
        .at("card.confirm", "1")
    )
    result = await calls.talk(req, dialogue)
    assert result.ok, result.errors
    [session] = await calls.harness.wait_sessions_closed(1)
    steps = [s.prompt_id for s in await calls.harness.steps(session.id)]
    assert "reg.failed.wrong_password" in steps
    assert session.outcome == "completed"
    assert (await calls.reload(req.id)).status == CallRequestStatus.completed.value
    assert len(await calls.cards()) == 1


async def test_hang_up_mid_card_number_then_call_back(calls: Calls) -> None:
    req = await calls.request(CallRequestKind.registration)
    first = Dialogue().at("reg.consent", "1").at("card.number", "411111").hang_up()
    result = await calls.talk(req, first)
    assert result.ok, result.errors
    [session] = await calls.harness.wait_sessions_closed(1)
    assert session.outcome == "caller_hung_up"
    row = await calls.reload(req.id)
    assert (row.status, row.calls) == (CallRequestStatus.sms_sent.value, 1)
    assert await calls.cards() == []
    assert (await calls.runtime.vault.status()).records == 0
    result = await calls.talk(req, Dialogue().at("reg.consent", "1").card())
    assert result.ok, result.errors
    await calls.harness.wait_sessions_closed(2)
    row = await calls.reload(req.id)
    assert (row.status, row.calls) == (CallRequestStatus.completed.value, 2)


# --------------------------------------------------------------------------- payment


async def _intents(calls: Calls) -> list[PaymentIntent]:
    async with calls.db.sessions() as s:
        return list(await s.scalars(select(PaymentIntent).order_by(PaymentIntent.created_at)))


async def test_payment_60000_registered_card_3_months(calls: Calls) -> None:
    await calls.register_directly(CARD)
    req = await calls.request(CallRequestKind.payment, amount=60_000)
    dialogue = (
        Dialogue()
        .at("pay.card_choice", "1")
        .at("pay.verify_birth", BIRTH)  # the knowledge factor: 6 digits, no # (issue #26)
        .at("pay.installment", "2")
        .at("pay.installment_months", "3#")
        .at("pay.confirm.installment", "1")
    )
    result = await calls.talk(req, dialogue)
    assert result.ok, result.errors
    [session] = await calls.harness.wait_sessions_closed(1)
    assert session.outcome == "completed"
    [intent] = await _intents(calls)
    assert (intent.status, intent.installment_months) == ("succeeded", 3)
    async with calls.db.sessions() as s:
        [attempt] = list(
            await s.scalars(select(PaymentAttempt).where(PaymentAttempt.intent_id == intent.id))
        )
    [paid] = (await calls.sandbox.ledger(attempt.order_id))["payments"]
    assert (paid["amount"], paid["card_quota"], paid["status"]) == (60_000, 3, "paid")
    steps = [s.prompt_id for s in await calls.harness.steps(session.id)]
    assert steps[-1] == "pay.done"
    assert (await calls.reload(req.id)).status == CallRequestStatus.completed.value


@pytest.mark.parametrize(("number", "amount"), [(CARD, 30_000), ("5555555555554444", 60_000)])
async def test_no_installment_prompt_under_50000_or_for_a_check_card(
    calls: Calls, number: str, amount: int
) -> None:
    await calls.register_directly(number)
    req = await calls.request(CallRequestKind.payment, amount=amount)
    dialogue = (
        Dialogue()
        .at("pay.card_choice", "1")
        .at("pay.verify_birth", BIRTH)
        .at("pay.confirm.lump_sum", "1")
    )
    result = await calls.talk(req, dialogue)
    assert result.ok, result.errors
    [session] = await calls.harness.wait_sessions_closed(1)
    steps = [s.prompt_id for s in await calls.harness.steps(session.id)]
    assert "pay.installment" not in steps
    assert session.outcome == "completed"
    [intent] = await _intents(calls)
    assert (intent.status, intent.installment_months, intent.amount) == ("succeeded", 0, amount)


async def test_payment_with_another_card_soft_decline_offers_another(calls: Calls) -> None:
    await calls.register_directly(CARD)
    req = await calls.request(CallRequestKind.payment, amount=10_000)
    dialogue = (
        Dialogue()
        .at("pay.card_choice", "2")
        .card("4000000000009995")  # registers; charges soft-decline (insufficient funds)
        .at("pay.save_card", "2")
        .at("pay.confirm.lump_sum", "1")
        .at("pay.retry", "2")  # another card
        .card("4012888888881881")
        .at("pay.save_card", "1")
        .at("pay.confirm.lump_sum", "1")
    )
    result = await calls.talk(req, dialogue)
    assert result.ok, result.errors
    [session] = await calls.harness.wait_sessions_closed(1)
    steps = [s.prompt_id for s in await calls.harness.steps(session.id)]
    assert "pay.failed.insufficient_funds" in steps
    assert steps.index("pay.retry") > steps.index("pay.failed.insufficient_funds")
    assert session.outcome == "completed"
    assert [i.status for i in await _intents(calls)] == ["failed", "succeeded"]
    cards = {c.last4: c.status for c in await calls.cards()}
    assert cards == {"1111": "active", "9995": CardStatus.deleted.value, "1881": "active"}
    assert (await calls.reload(req.id)).status == CallRequestStatus.completed.value
