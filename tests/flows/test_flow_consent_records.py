"""A consent record for every choice in a call that moves money or stores a card
(docs/product.md §4.3, issue #26): registration consent, card choice (1/2/3), the knowledge
factor passing, save card, lump sum or installments, the months, the confirmation —
each with the prompts played up to that choice (and the sha256 of every audio file),
the key, the call's identity; the chain verifies.

FakeCall against the real store, vault and sandbox PG."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ivr.consent.ledger import ConsentInput
from ivr.domain.states import CallRequestKind
from ivr.store.tables import Card, ConsentRecord
from ivr.telephony.fake import Action, Listen, Press, Silence

from .conftest import MOBILE, Stack
from .test_flow_payment import register, set_policy
from .test_flow_registration import BIRTH, card_keys

pytestmark = pytest.mark.anyio

VERIFY = [Press(BIRTH), Silence()]
OTHER = "4012888888881881"


async def records_of(stack: Stack, request_id: str) -> list[ConsentRecord]:
    async with stack.db.sessions() as s:
        q = (
            select(ConsentRecord)
            .where(ConsentRecord.call_request_id == request_id)
            .order_by(ConsentRecord.seq)
        )
        return list(await s.scalars(q))


async def pay_call(
    stack: Stack, script: list[Action], *, amount: int = 60_000
) -> tuple[str | None, list[ConsentRecord]]:
    req = await stack.request(CallRequestKind.payment, amount=amount)
    outcome, _ = await stack.call(script)
    return outcome, await records_of(stack, req.id)


def kinds(rows: list[ConsentRecord]) -> list[tuple[str, str]]:
    return [(r.kind, r.key_pressed) for r in rows]


def last_prompt(row: ConsentRecord) -> str:
    return str(row.prompts["played"][-1]["prompt_id"])


async def check_evidence(stack: Stack, rows: list[ConsentRecord]) -> None:
    """What every record carries (docs/product.md §4.3), and the chain still verifies."""
    for row in rows:
        assert (row.did, row.caller_id) == (stack.last_did, MOBILE)  # the leased pair
        assert row.merchant_id == stack.merchant_id
        assert row.call_id.startswith("fake-")
        assert row.call_started_at <= row.decided_at
        played = row.prompts["played"]
        assert played
        assert [p["prompt_id"] for p in played][:2] == ["pay.greeting", "pay.details"]
        assert all(len(p["sha256"]) == 64 for p in played)
        assert row.details["amount"] is not None
    assert (await stack.runtime.services.consent.verify()).ok


async def test_registered_card_in_installments(stack: Stack) -> None:
    await register(stack)
    script = [Press("1"), *VERIFY, Press("2"), Press("3#"), Press("1")]
    outcome, rows = await pay_call(stack, script)
    assert outcome == "completed"
    assert kinds(rows) == [
        ("card_choice", "1"),
        ("identity_verification", ""),
        ("installment_choice", "2"),
        ("installment_months", ""),
        ("payment_confirmation", "1"),
    ]
    choice, verified, plan, months, confirm = rows
    assert [last_prompt(r) for r in rows] == [
        "pay.card_choice", "pay.verify_birth", "pay.installment", "pay.installment_months",
        "pay.confirm.installment",
    ]  # fmt: skip
    card_id = verified.details["card_id"]
    assert choice.details["choice"] == "registered_card"
    assert choice.details["offered"]["card_id"] == card_id
    assert plan.details["choice"] == "installments"
    assert (months.details["installment_months"], months.details["card_id"]) == (3, card_id)
    assert confirm.details["installment_months"] == 3
    await check_evidence(stack, rows)


async def test_registered_card_lump_sum_chosen_at_the_installment_menu(stack: Stack) -> None:
    await register(stack)
    outcome, rows = await pay_call(stack, [Press("1"), *VERIFY, Press("1"), Press("1")])
    assert outcome == "completed"
    assert kinds(rows) == [
        ("card_choice", "1"), ("identity_verification", ""), ("installment_choice", "1"),
        ("payment_confirmation", "1"),
    ]  # fmt: skip
    assert rows[2].details["choice"] == "lump_sum"
    await check_evidence(stack, rows)


async def test_an_interest_free_offer_is_part_of_the_installment_record(stack: Stack) -> None:
    await set_policy(  # the promotion runs to 24 months, the merchant allows 12
        stack, interest_free=[{"issuer": "테스트카드", "min_months": 2, "max_months": 24}]
    )
    await register(stack)
    script = [Press("1"), *VERIFY, Listen(), Listen(), Press("2"), Press("3#"), Press("1")]
    outcome, rows = await pay_call(stack, script)
    assert outcome == "completed"
    plan = next(r for r in rows if r.kind == "installment_choice")
    assert last_prompt(plan) == "pay.interest_free"  # the offer was heard before the key
    assert plan.details["interest_free_offer"] == {"min_months": 2, "max_months": 12}  # heard
    months = next(r for r in rows if r.kind == "installment_months")
    assert months.details["interest_free"] is True


async def test_another_card_saved(stack: Stack) -> None:
    await register(stack)
    script = [Press("2"), *card_keys(OTHER), Press("1"), Press("1")]
    outcome, rows = await pay_call(stack, script, amount=10_000)
    assert outcome == "completed"
    assert kinds(rows) == [("card_choice", "2"), ("save_card", "1"), ("payment_confirmation", "1")]
    choice, save, _ = rows
    assert choice.details["choice"] == "other_card"
    assert last_prompt(save) == "pay.save_card"
    assert save.details | {"issuer": None} == {
        "product": "임플란트 치료", "amount": 10_000, "save": True, "bin6": "401288",
        "last4": "1881", "issuer": None,
    }  # fmt: skip
    await check_evidence(stack, rows)


async def test_another_card_not_saved_without_a_registered_one(stack: Stack) -> None:
    outcome, rows = await pay_call(
        stack, [Press("1"), *card_keys(OTHER), Press("2"), Press("1")], amount=10_000
    )
    assert outcome == "completed"
    assert kinds(rows) == [("card_choice", "1"), ("save_card", "2"), ("payment_confirmation", "1")]
    assert rows[0].details == {"product": "임플란트 치료", "amount": 10_000,
                               "choice": "other_card", "offered": None}  # fmt: skip
    assert last_prompt(rows[0]) == "pay.enter_or_decline"
    assert rows[1].details["save"] is False
    await check_evidence(stack, rows)


async def test_no_save_question_no_save_record(stack: Stack) -> None:
    await set_policy(stack, allow_save_card=False)
    script = [Press("1"), *card_keys(OTHER), Press("1")]
    outcome, rows = await pay_call(stack, script, amount=10_000)
    assert outcome == "completed"
    assert kinds(rows) == [("card_choice", "1"), ("payment_confirmation", "1")]


async def test_saying_no_is_recorded_as_the_card_choice(stack: Stack) -> None:
    await register(stack)
    outcome, rows = await pay_call(stack, [Press("3")], amount=10_000)
    assert outcome == "declined"
    assert kinds(rows) == [("card_choice", "3")]
    assert rows[0].details["choice"] == "no_payment"
    await check_evidence(stack, rows)


async def test_a_card_is_stored_only_once_its_save_choice_is_recorded(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The save choice's record is written before the card is attached as the payer's
    automatic-payment card; a write that fails stores nothing and charges nothing."""
    ledger = stack.runtime.services.consent
    real = ledger.append

    async def append(item: ConsentInput) -> ConsentRecord:
        if item.kind == "save_card":
            raise RuntimeError("database is gone")
        return await real(item)

    monkeypatch.setattr(ledger, "append", append)
    script = [Press("1"), *card_keys(OTHER), Press("1"), Press("1")]
    outcome, _ = await pay_call(stack, script, amount=10_000)
    assert outcome == "error"
    async with stack.db.sessions() as s:
        assert list(await s.scalars(select(Card))) == []
    assert (await stack.sandbox.summary())["paid"] == 0


async def test_registration_consent_is_recorded_either_way(stack: Stack) -> None:
    for key in ("1", "2"):
        req = await stack.request(CallRequestKind.registration)
        script = [Press(key), *card_keys()] if key == "1" else [Press(key)]
        await stack.call(script)
        [row] = await records_of(stack, req.id)
        assert (row.kind, row.key_pressed, last_prompt(row)) == (
            "registration_consent", key, "reg.consent"
        )  # fmt: skip
        stack.clock.advance(11 * 60)  # past the DID cool-down
