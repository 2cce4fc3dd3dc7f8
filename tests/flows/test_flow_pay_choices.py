"""Issue #28 in the calls: a payer with no registered card may say no before any card
step (``pay.enter_or_decline``); an installment charge the card refused
(``installment_unavailable``) offers the same card at once (``pay.retry_lump_sum``);
a 6-digit birth date is taken within 2 s of its 6th key without ``#``, senior mode
too, while a 10-digit business number still goes on to its ``#``."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from ivr.domain.states import CallRequestKind, CallRequestStatus
from ivr.store.tables import Card, ConsentRecord
from ivr.telephony.fake import Action, FakeCall, Press, Silence

from .conftest import Stack
from .test_flow_payment import VERIFY, intents, register, set_policy, succeeded_attempt
from .test_flow_registration import BIRTH, EXPIRY, card_keys

pytestmark = pytest.mark.anyio

CHECK_CARD = "5310000000000004"  # sandbox: a 하나카드 check card, refused installments
TEXTS = {
    "pay.enter_or_decline": "카드 정보를 입력하시려면 1번, 결제를 원하지 않으시면 3번을 "
    "눌러 주세요.",
    "pay.retry_lump_sum": "일시불로 결제하시려면 1번, 다른 카드로 결제하시려면 2번, "
    "결제를 끝내시려면 3번을 눌러 주세요.",
    "pay.failed.installment_unavailable": "이 카드 또는 금액으로는 할부 결제를 할 수 없습니다.",
    "pay.confirm.lump_sum": "육만원을 일시불로 결제합니다. 맞으면 1번을 눌러 주세요.",
}


def heard(stack: Stack, prompt_id: str) -> list[str]:
    return [line for line in stack.transcript if line.startswith(f"♪ {prompt_id}: ")]


async def pay_call(stack: Stack, script: list[Action]) -> tuple[str | None, list[str]]:
    """A call; the prompt ids the flow said, in order (from the transcript: a prompt
    the payer's typed-ahead keys skip is still said there)."""
    start = len(stack.transcript)
    outcome, _ = await stack.call(script)
    said = [line[2:].split(":")[0] for line in stack.transcript[start:] if line[:2] == "♪ "]
    return outcome, [p for p in said if p != "common.wait"]


async def records(stack: Stack, request_id: str) -> list[ConsentRecord]:
    async with stack.db.sessions() as s:
        q = select(ConsentRecord).where(ConsentRecord.call_request_id == request_id)
        return list(await s.scalars(q.order_by(ConsentRecord.seq)))


# ------------------------------------------------------------------ no registered card


async def test_no_registered_card_can_say_no_before_any_card_step(stack: Stack) -> None:
    req = await stack.request(CallRequestKind.payment, amount=30_000)
    outcome, call = await stack.call([Press("3")])
    assert outcome == "declined"
    assert call.played == ["arspay/pay.greeting", "arspay/pay.details",
                           "arspay/pay.enter_or_decline", "arspay/pay.declined"]  # fmt: skip
    assert heard(stack, "pay.enter_or_decline") == [
        f"♪ pay.enter_or_decline: {TEXTS['pay.enter_or_decline']}"
    ]
    assert (await stack.reload(req.id)).status == CallRequestStatus.declined.value
    [choice] = await records(stack, req.id)
    assert (choice.kind, choice.key_pressed) == ("card_choice", "3")
    assert (choice.details["choice"], choice.details["offered"]) == ("no_payment", None)
    assert call.collects == 1  # no card field was asked
    assert (await stack.runtime.vault.status()).records == 0


async def test_no_registered_card_keys_one_after_a_wrong_key(stack: Stack) -> None:
    req = await stack.request(CallRequestKind.payment, amount=30_000)
    script = [Press("2"), Press("1"), *card_keys(), Press("2"), Press("1")]
    outcome, said = await pay_call(stack, script)
    assert outcome == "completed"
    i = said.index("pay.enter_or_decline")
    # (the key typed ahead cuts the error prompt and the question after it)
    assert said[i + 1 : i + 3] == ["err.invalid_choice", "card.number"]
    assert (await stack.reload(req.id)).status == CallRequestStatus.completed.value


# ------------------------------------------------------------------ 일시불 after a decline


async def registered_check_card_said_credit(stack: Stack) -> None:
    """A registered card the engine believes is a credit card but the issuer refuses
    installments for (as a card-type change at the issuer would)."""
    await register(stack, CHECK_CARD)
    async with stack.db.transaction() as s:
        await s.execute(update(Card).values(card_type="credit"))


INSTALLMENT_DECLINED: list[Action] = [Press("1"), *VERIFY, Press("2"), Press("3#"), Press("1")]


async def test_an_installment_decline_offers_lump_sum_with_the_same_card(stack: Stack) -> None:
    await registered_check_card_said_credit(stack)
    req = await stack.request(CallRequestKind.payment, amount=60_000)
    outcome, said = await pay_call(stack, [*INSTALLMENT_DECLINED, Press("1"), Press("1")])
    assert outcome == "completed"
    i = said.index("pay.failed.installment_unavailable")
    assert said[i:] == ["pay.failed.installment_unavailable", "pay.retry_lump_sum",
                        "pay.confirm.lump_sum", "pay.done"]  # fmt: skip
    for pid in ("pay.failed.installment_unavailable", "pay.retry_lump_sum"):
        assert heard(stack, pid) == [f"♪ {pid}: {TEXTS[pid]}"]
    assert heard(stack, "pay.confirm.lump_sum") == [
        f"♪ pay.confirm.lump_sum: {TEXTS['pay.confirm.lump_sum']}"
    ]
    first, second = await intents(stack)
    assert (first.installment_months, first.status) == (3, "failed")
    assert (second.installment_months, second.status) == (0, "succeeded")
    assert first.card_id == second.card_id  # the same card, no card entry
    assert "card.number" not in said
    won = await succeeded_attempt(stack, second.id)
    [paid] = (await stack.sandbox.ledger(won.order_id))["payments"]
    assert (paid["amount"], paid["card_quota"], paid["status"]) == (60_000, 0, "paid"), paid
    row = await stack.reload(req.id)
    assert (row.status, row.payment_intent_id) == (CallRequestStatus.completed.value, second.id)
    rows = [(r.kind, r.key_pressed) for r in await records(stack, req.id)]
    assert rows == [("card_choice", "1"), ("identity_verification", ""),
                    ("installment_choice", "2"), ("installment_months", ""),
                    ("payment_confirmation", "1"), ("installment_choice", "1"),
                    ("payment_confirmation", "1")]  # fmt: skip
    again = (await records(stack, req.id))[5]
    assert again.details["choice"] == "lump_sum"
    assert again.details["after_decline"] == "installment_unavailable"
    assert (await records(stack, req.id))[6].details["installment_months"] == 0


async def test_an_installment_decline_can_still_take_another_card(stack: Stack) -> None:
    await registered_check_card_said_credit(stack)
    req = await stack.request(CallRequestKind.payment, amount=60_000)
    other = [*card_keys(), Press("2"), Press("1"), Press("1")]  # not saved, 일시불, confirm
    outcome, said = await pay_call(stack, [*INSTALLMENT_DECLINED, Press("2"), *other])
    assert outcome == "completed"
    i = said.index("pay.retry_lump_sum")
    assert said[i + 1] == "card.number"
    statuses = [(x.installment_months, x.status) for x in await intents(stack)]
    assert statuses == [(3, "failed"), (0, "succeeded")]
    assert (await stack.reload(req.id)).status == CallRequestStatus.completed.value


async def test_an_installment_decline_then_end_keeps_the_request_open(stack: Stack) -> None:
    await registered_check_card_said_credit(stack)
    req = await stack.request(CallRequestKind.payment, amount=60_000)
    outcome, said = await pay_call(stack, [*INSTALLMENT_DECLINED, Press("3")])
    assert outcome == "payment_failed"
    assert said[-3:] == ["pay.failed.installment_unavailable", "pay.retry_lump_sum",
                         "common.goodbye"]  # fmt: skip
    assert (await stack.reload(req.id)).status == CallRequestStatus.sms_sent.value


async def test_other_declines_offer_no_lump_sum(stack: Stack) -> None:
    await register(stack, "4000000000009995")  # soft decline: insufficient funds
    await stack.request(CallRequestKind.payment, amount=60_000)
    outcome, said = await pay_call(stack, [Press("1"), *VERIFY, Press("1"), Press("1"),
                                           Press("3")])  # fmt: skip
    assert outcome == "payment_failed"
    assert "pay.retry_lump_sum" not in said
    i = said.index("pay.failed.insufficient_funds")
    assert said[i + 1] == "pay.retry"


# ------------------------------------------------------------------ birth date: 2 s


def birth_waits(call: FakeCall) -> list[float]:
    """The waits of the (first) birth date field: its spec takes 6 keys after a pause."""
    i = next(n for n, sp in enumerate(call.specs) if sp.settle_after == 6)
    return call.waits[i]


@pytest.mark.parametrize(("senior", "first", "between"), [(False, 8.0, 5.0),
                                                          (True, 16.0, 10.0)])  # fmt: skip
async def test_six_birth_digits_are_taken_within_2_s_without_hash(
    stack: Stack, senior: bool, first: float, between: float
) -> None:
    await set_policy(stack, senior_mode=senior)
    req = await stack.request(CallRequestKind.registration)
    script = [Press("1"), Press("4111111111111111"), Press(EXPIRY), Press(BIRTH), Silence(),
              Press("12"), Press("1")]  # fmt: skip
    outcome, call = await stack.call(script)
    assert outcome == "completed"
    *waits, settle = birth_waits(call)
    assert waits == [first] + [between] * 5  # the first key, then between keys
    assert settle <= 2.0  # after the 6th key: 1.5 s, 2 s in senior mode
    assert settle == (2.0 if senior else 1.5)
    i = call.played.index("arspay/card.birth")
    assert call.played[i + 1] == "arspay/card.password"  # no error, no # asked
    assert (await stack.reload(req.id)).status == CallRequestStatus.completed.value


async def test_a_business_number_still_ends_with_hash_in_senior_mode(stack: Stack) -> None:
    await set_policy(stack, senior_mode=True)
    await stack.request(CallRequestKind.registration)
    script = [Press("1"), Press("4111111111111111"), Press(EXPIRY), Press("1234567891#"),
              Press("12"), Press("1")]  # fmt: skip
    outcome, call = await stack.call(script)
    assert outcome == "completed"
    # the 2 s pause after the 6th key is not taken when a 7th key comes; the # ends it
    assert birth_waits(call) == [16.0] + [10.0] * 5 + [2.0] + [10.0] * 4
    async with stack.db.sessions() as s:
        [card] = list(await s.scalars(select(Card)))
    assert card.owner_type == "corporate"
