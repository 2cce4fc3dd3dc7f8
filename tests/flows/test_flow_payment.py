"""Payment-consent call (docs/product.md §4.2) on a FakeCall against the real store, vault and
sandbox PG."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from ivr.domain.states import CallRequestKind, CallRequestStatus
from ivr.store.tables import Card, ConsentRecord, Merchant, PaymentAttempt, PaymentIntent
from ivr.telephony.fake import HangUp, Listen, Press, Silence

from .conftest import Stack
from .test_flow_registration import BIRTH, SlowConsent, card_keys

# The knowledge factor (pay.verify_birth) after key 1: the registered card's birth date,
# 6 digits then a pause (taken ~1.5 s after the 6th key on a real line).
VERIFY = [Press(BIRTH), Silence()]
KB_CARD = "4518000000000007"  # sandbox issuer KB국민카드; not in the vault's BIN table

pytestmark = pytest.mark.anyio


async def register(stack: Stack, number: str = "4111111111111111") -> None:
    await stack.request(CallRequestKind.registration)
    outcome, _ = await stack.call([Press("1"), *card_keys(number)])
    assert outcome == "completed"


async def intents(stack: Stack) -> list[PaymentIntent]:
    async with stack.db.sessions() as s:
        return list(await s.scalars(select(PaymentIntent).order_by(PaymentIntent.created_at)))


async def succeeded_attempt(stack: Stack, intent_id: str) -> PaymentAttempt:
    async with stack.db.sessions() as s:
        rows = list(
            await s.scalars(select(PaymentAttempt).where(PaymentAttempt.intent_id == intent_id))
        )
    [won] = [a for a in rows if a.status == "succeeded"]
    return won


async def set_policy(stack: Stack, **settings: object) -> None:
    async with stack.db.transaction() as s:
        m = await s.get(Merchant, stack.merchant_id)
        assert m is not None
        m.settings = dict(settings)


async def test_60000_with_the_registered_card_in_3_months(stack: Stack) -> None:
    await register(stack)
    req = await stack.request(CallRequestKind.payment, amount=60_000)
    outcome, call = await stack.call([Press("1"), *VERIFY, Press("2"), Press("3#"), Press("1")])
    assert outcome == "completed"
    assert "arspay/pay.installment" in call.played
    assert "arspay/pay.confirm.installment" in call.played
    assert call.played[-1] == "arspay/pay.done"
    [intent] = await intents(stack)
    assert (intent.amount, intent.installment_months, intent.status) == (60_000, 3, "succeeded")
    attempt = await succeeded_attempt(stack, intent.id)
    [paid] = (await stack.sandbox.ledger(attempt.order_id))["payments"]
    assert (paid["amount"], paid["card_quota"], paid["status"]) == (60_000, 3, "paid"), paid
    row = await stack.reload(req.id)
    assert (row.status, row.payment_intent_id) == (CallRequestStatus.completed.value, intent.id)
    async with stack.db.sessions() as s:
        consent = await s.scalar(
            select(ConsentRecord).where(ConsentRecord.kind == "payment_confirmation")
        )
    assert consent is not None
    assert consent.key_pressed == "1"
    assert consent.details["installment_months"] == 3
    assert consent.details["amount"] == 60_000
    played = [p["prompt_id"] for p in consent.prompts["played"]]
    assert played[:3] == ["pay.greeting", "pay.details", "pay.card_choice"]
    assert "pay.confirm.installment" in played


async def test_30000_never_offers_installments(stack: Stack) -> None:
    await register(stack)
    await stack.request(CallRequestKind.payment, amount=30_000)
    outcome, call = await stack.call([Press("1"), *VERIFY, Press("1")])
    assert outcome == "completed"
    assert "arspay/pay.installment" not in call.played
    assert "arspay/pay.confirm.lump_sum" in call.played
    [intent] = await intents(stack)
    assert intent.installment_months == 0


async def test_no_charge_before_the_payment_consent_is_recorded(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The confirmation's consent record is written behind the wait prompt; the charge
    waits for it, and a write that fails charges nothing."""
    await register(stack)
    slow = SlowConsent(stack, monkeypatch)
    slow.delay_s, slow.fail = 0.05, True
    req = await stack.request(CallRequestKind.payment, amount=30_000)
    before = await stack.sandbox.summary()
    outcome, call = await stack.call([Press("1"), *VERIFY, Press("1")])
    assert outcome == "error"
    assert "arspay/common.wait" in call.played
    assert await intents(stack) == []
    assert await stack.sandbox.summary() == before
    assert (await stack.reload(req.id)).status == CallRequestStatus.sms_sent.value


async def test_check_card_never_offers_installments(stack: Stack) -> None:
    await register(stack, "5555555555554444")
    await stack.request(CallRequestKind.payment, amount=60_000)
    outcome, call = await stack.call([Press("1"), *VERIFY, Press("1")])
    assert outcome == "completed"
    assert "arspay/pay.installment" not in call.played
    async with stack.db.sessions() as s:
        [card] = list(await s.scalars(select(Card)))
    assert card.card_type == "check"


@pytest.mark.parametrize("merchant_pays", [False, True])
async def test_interest_free_is_announced_and_sent_only_when_the_merchant_pays(
    stack: Stack, merchant_pays: bool
) -> None:
    """A card company's promotion is announced, and the issuer applies it: nothing is sent
    (PortOne interest_free_by_merchant excludes it). A merchant-paid one is sent."""
    promo = {"issuer": "테스트카드", "min_months": 2, "max_months": 3}
    await set_policy(stack, interest_free=[promo | {"merchant_pays": merchant_pays}])
    await register(stack)
    await stack.request(CallRequestKind.payment, amount=60_000)
    script = [Press("1"), *VERIFY, Listen(), Listen(), Press("2"), Press("3#"), Press("1")]
    outcome, call = await stack.call(script)
    assert outcome == "completed"
    assert "arspay/pay.interest_free" in call.played
    [intent] = await intents(stack)
    assert intent.interest_free is merchant_pays
    async with stack.db.sessions() as s:
        heard = await s.scalar(
            select(ConsentRecord).where(ConsentRecord.kind == "installment_months")
        )
    assert heard is not None
    assert heard.details["interest_free"] is True  # what the payer was told
    assert heard.details["interest_paid_by"] == ("merchant" if merchant_pays else "issuer")


async def test_a_card_of_unknown_type_pays_at_once(stack: Stack) -> None:
    """Inicis billing answers card_type null: the card is recorded as unknown, not as
    credit, and is not offered installments (a check card would be declined mid-call;
    a credit card paid at once can be split with the card company afterwards)."""
    stack.sandbox.state.config = replace(stack.sandbox.state.config, pg="inicis")
    await register(stack, KB_CARD)  # a BIN the vault's table does not know either
    async with stack.db.sessions() as s:
        [card] = list(await s.scalars(select(Card)))
    assert card.card_type == "unknown"
    await stack.request(CallRequestKind.payment, amount=60_000)
    outcome, call = await stack.call([Press("1"), *VERIFY, Press("1")])
    assert outcome == "completed"
    assert "arspay/pay.installment" not in call.played
    assert "arspay/pay.confirm.lump_sum" in call.played
    [intent] = await intents(stack)
    assert (intent.installment_months, intent.status) == (0, "succeeded")


async def test_the_same_card_reported_as_credit_is_offered_installments(stack: Stack) -> None:
    await register(stack, KB_CARD)
    async with stack.db.sessions() as s:
        [card] = list(await s.scalars(select(Card)))
    assert card.card_type == "credit"
    await stack.request(CallRequestKind.payment, amount=60_000)
    outcome, call = await stack.call([Press("1"), *VERIFY, Press("1"), Press("1")])
    assert outcome == "completed"
    assert "arspay/pay.installment" in call.played


async def test_months_beyond_the_merchant_maximum_are_refused(stack: Stack) -> None:
    await set_policy(stack, max_installment_months=6)
    await register(stack)
    await stack.request(CallRequestKind.payment, amount=60_000)
    outcome, call = await stack.call(
        [Press("1"), *VERIFY, Press("2"), Press("12"), Press("6#"), Press("1")]
    )
    assert outcome == "completed"
    assert "arspay/err.invalid_months" in call.played
    [intent] = await intents(stack)
    assert intent.installment_months == 6


async def test_another_card_without_a_registered_one_and_not_saved(stack: Stack) -> None:
    req = await stack.request(CallRequestKind.payment, amount=10_000)
    outcome, call = await stack.call([Press("1"), *card_keys(), Press("2"), Press("1")])
    assert outcome == "completed"
    assert "arspay/pay.card_choice" not in call.played
    assert call.played[2:4] == ["arspay/pay.enter_or_decline", "arspay/card.number"]
    assert "arspay/pay.save_card" in call.played
    async with stack.db.sessions() as s:
        [card] = list(await s.scalars(select(Card)))
    assert card.status == "deleted"  # one-off: not kept for automatic payment
    assert (await stack.runtime.vault.status()).records == 0  # vault record erased
    assert (await stack.reload(req.id)).status == CallRequestStatus.completed.value


async def test_another_card_saved_becomes_the_registered_card(stack: Stack) -> None:
    await register(stack)
    await stack.request(CallRequestKind.payment, amount=10_000)
    outcome, _ = await stack.call(
        [Press("2"), *card_keys("4012888888881881"), Press("1"), Press("1")]
    )
    assert outcome == "completed"
    active = await stack.runtime.deps.cards.active_for(stack.merchant_id, stack.customer_id)
    assert [c.last4 for c in active] == ["1881", "1111"]


async def test_soft_decline_plays_the_prompt_and_offers_another_card(stack: Stack) -> None:
    await stack.request(CallRequestKind.payment, amount=10_000)
    script = [Press("1"), *card_keys("4000000000009995"), Press("2"), Press("1"),  # funds
              Press("2"), *card_keys(), Press("2"), Press("1")]  # fmt: skip
    outcome, call = await stack.call(script)
    assert outcome == "completed"
    # the decline prompt, then (keys typed ahead may cut it) the offer of another card
    failed = call.played.index("arspay/pay.failed.insufficient_funds")
    assert call.played[failed + 1] in ("arspay/pay.retry", "arspay/card.number")
    statuses = [i.status for i in await intents(stack)]
    assert statuses == ["failed", "succeeded"]


async def test_decline_then_end_keeps_the_request_open(stack: Stack) -> None:
    req = await stack.request(CallRequestKind.payment, amount=10_000)
    script = [Press("1"), *card_keys("4000000000009995"), Press("2"), Press("1"), Press("3")]
    outcome, _ = await stack.call(script)
    assert outcome == "payment_failed"
    assert (await stack.reload(req.id)).status == CallRequestStatus.sms_sent.value


async def test_payer_says_no(stack: Stack) -> None:
    await register(stack)
    req = await stack.request(CallRequestKind.payment, amount=10_000)
    outcome, call = await stack.call([Press("3")])
    assert outcome == "declined"
    assert call.played[-1] == "arspay/pay.declined"
    assert (await stack.reload(req.id)).status == CallRequestStatus.declined.value
    assert await intents(stack) == []


async def test_unknown_outcome_is_resolved_without_a_second_charge(stack: Stack) -> None:
    await register(stack, "4000000000003220")  # first charge times out after recording
    req = await stack.request(CallRequestKind.payment, amount=20_000)
    outcome, call = await stack.call([Press("1"), *VERIFY, Press("1")])
    assert outcome == "completed", call.played
    [intent] = await intents(stack)
    assert intent.status == "succeeded"
    summary = await stack.sandbox.summary()
    assert (summary["paid"], summary["paid_amount"]) == (1, 20_000), summary
    attempt = await succeeded_attempt(stack, intent.id)
    view = await stack.sandbox.ledger(attempt.order_id)
    assert view["charge_requests"] == 1  # looked up, never sent twice
    assert (await stack.reload(req.id)).status == CallRequestStatus.completed.value


async def test_hang_up_during_the_charge_keeps_the_charge_and_a_call_back_reports_it(
    stack: Stack,
) -> None:
    await register(stack)
    req = await stack.request(CallRequestKind.payment, amount=10_000)
    outcome, _ = await stack.call([Press("1"), *VERIFY, Press("1"), HangUp()])
    assert outcome == "caller_hung_up"
    [intent] = await intents(stack)
    assert intent.status == "succeeded"
    assert (await stack.reload(req.id)).status == CallRequestStatus.completed.value


@pytest.mark.parametrize(
    ("approval", "played"),
    [
        ("12345678", "arspay/pay.done"),
        (None, "arspay/pay.done_plain"),
        ("A1-2", "arspay/pay.done_plain"),
    ],
)
async def test_success_without_a_numeric_approval_number_is_still_announced(
    approval: str | None, played: str
) -> None:
    from types import SimpleNamespace

    from ivr.domain.states import PaymentIntentStatus
    from ivr.flows.payment import Charged, announce
    from ivr.flows.voice import Voice
    from ivr.merchants.policy import CallTiming, MerchantPolicy
    from ivr.settings import CallSettings
    from ivr.telephony.fake import FakeCall

    from .conftest import FakeBook

    call = FakeCall()
    voice = Voice(call, FakeBook(), CallTiming.effective(CallSettings(), MerchantPolicy()))
    run = SimpleNamespace(voice=voice)
    outcome = await announce(run, Charged(PaymentIntentStatus.succeeded, approval_no=approval))  # type: ignore[arg-type]
    assert (outcome, call.played) == ("completed", [played])
