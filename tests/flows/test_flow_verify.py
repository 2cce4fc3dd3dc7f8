"""The knowledge factor of registered-card payments (docs/product.md §2 item 3, §4.2
``pay.verify_birth``; issue #26): a caller ID matching the lease and the keys 1, 1 no
longer pay. The payer keys the card's birth date (or business number); the vault
compares; wrong answers are limited per call and, durably, per card.

FakeCall against the real store, the vault in-process and the sandbox PG."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from ivr.domain.states import CallRequestKind, CallRequestStatus
from ivr.store.tables import AuditLog, Card, ConsentRecord, PaymentIntent, WebhookEvent
from ivr.telephony.fake import Action, Listen, Press, Silence
from vault.errors import VaultUnavailable

from .conftest import Stack
from .test_flow_payment import register, set_policy
from .test_flow_registration import BIRTH, card_keys

pytestmark = pytest.mark.anyio

WRONG = "770707"  # a valid date, not the card's (BIRTH = 880101)


def keyed(birth: str) -> list[Action]:
    """A birth date as a payer keys it: 6 digits and a pause (no #)."""
    return [Press(birth), Silence()]


def holding(root: Path, needles: list[bytes]) -> tuple[list[Path], int]:
    """Files under ``root`` holding any needle, and how many files were read."""
    found, scanned = [], 0
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            scanned += 1
            data = path.read_bytes()
            if any(n in data for n in needles):
                found.append(path)
    return found, scanned


async def card_row(stack: Stack) -> Card:
    async with stack.db.sessions() as s:
        return (await s.scalars(select(Card).where(Card.status == "active"))).one()


async def intents(stack: Stack) -> list[PaymentIntent]:
    async with stack.db.sessions() as s:
        return list(await s.scalars(select(PaymentIntent)))


async def records(stack: Stack, kind: str) -> list[ConsentRecord]:
    async with stack.db.sessions() as s:
        q = select(ConsentRecord).where(ConsentRecord.kind == kind).order_by(ConsentRecord.seq)
        return list(await s.scalars(q))


async def audit_actions(stack: Stack, prefix: str) -> list[str]:
    async with stack.db.sessions() as s:
        rows = await s.scalars(
            select(AuditLog.action).where(AuditLog.action.like(f"{prefix}%")).order_by(AuditLog.id)
        )
        return list(rows)


async def test_a_registered_card_pays_only_after_its_birth_date(stack: Stack) -> None:
    await register(stack)
    req = await stack.request(CallRequestKind.payment, amount=30_000)
    outcome, call = await stack.call([Press("1"), *keyed(BIRTH), Press("1")])
    assert outcome == "completed"
    i = call.played.index("arspay/pay.card_choice")
    assert call.played[i + 1] == "arspay/pay.verify_birth"
    assert "arspay/err.verify_mismatch" not in call.played
    # a 6-digit birth date is taken after a short pause: no # needed (docs/product.md §4.1)
    [spec] = [sp for sp in call.specs if sp.settle_after == 6 and sp.max_digits == 11][-1:]
    assert spec.settle_s == 1.5
    [intent] = await intents(stack)
    assert intent.status == "succeeded"
    assert (await stack.reload(req.id)).status == CallRequestStatus.completed.value
    card = await card_row(stack)
    assert (card.verify_failures, card.verify_locked_until) == (0, None)
    [record] = await records(stack, "identity_verification")
    assert record.key_pressed == ""
    assert record.details == {"product": "임플란트 치료", "amount": 30_000, "card_id": card.id,
                              "last4": "1111", "issuer": card.issuer, "factor": "birth_date",
                              "tries": 1, "result": "passed"}  # fmt: skip
    assert [p["prompt_id"] for p in record.prompts["played"]][-1] == "pay.verify_birth"
    vault = [e.action for e in await stack.runtime.vault.audit(token=card.vault_token)]
    assert vault[:2] == ["verify_birth.ok", "verify_birth"]


async def test_without_the_birth_date_nothing_is_charged(stack: Stack) -> None:
    """The review's attack: the lease's caller ID and the keys 1, 1."""
    await register(stack)
    req = await stack.request(CallRequestKind.payment, amount=30_000)
    before = await stack.sandbox.summary()
    outcome, call = await stack.call([Press("1"), Press("1")])
    assert outcome == "too_many_tries"
    assert "arspay/pay.confirm.lump_sum" not in call.played
    assert await intents(stack) == []
    assert await stack.sandbox.summary() == before
    assert (await stack.reload(req.id)).status == CallRequestStatus.sms_sent.value


async def test_a_wrong_answer_is_told_and_asked_again(stack: Stack) -> None:
    await register(stack)
    await stack.request(CallRequestKind.payment, amount=30_000)
    script = [Press("1"), *keyed(WRONG), Listen(), Listen(), *keyed(BIRTH), Press("1")]
    outcome, call = await stack.call(script)
    assert outcome == "completed"
    i = call.played.index("arspay/err.verify_mismatch")
    assert call.played[i - 1 : i + 2] == [
        "arspay/pay.verify_birth", "arspay/err.verify_mismatch", "arspay/pay.verify_birth"
    ]  # fmt: skip
    card = await card_row(stack)
    assert card.verify_failures == 1  # the wrong answer stays counted (the right one not)
    [record] = await records(stack, "identity_verification")
    assert record.details["tries"] == 2
    assert await audit_actions(stack, "card.verify") == ["card.verify_failed"]
    vault = [e.action for e in await stack.runtime.vault.audit(token=card.vault_token)]
    assert vault[:4] == ["verify_birth.ok", "verify_birth", "verify_birth.mismatch", "verify_birth"]


async def test_a_malformed_entry_is_not_a_guess(stack: Stack) -> None:
    """Not a date (or a bad business number check digit): the format error prompt, and
    nothing counted against the card or asked of the vault."""
    await register(stack)
    await stack.request(CallRequestKind.payment, amount=30_000)
    outcome, call = await stack.call([Press("1"), *keyed("881301"), *keyed(BIRTH), Press("1")])
    assert outcome == "completed"
    assert "arspay/err.invalid_birth" in call.played
    assert "arspay/err.verify_mismatch" not in call.played
    card = await card_row(stack)
    assert card.verify_failures == 0
    vault = [e.action for e in await stack.runtime.vault.audit(token=card.vault_token)]
    assert vault.count("verify_birth") == 1


async def test_three_wrong_answers_end_the_call_and_keep_the_request_open(stack: Stack) -> None:
    await register(stack)
    req = await stack.request(CallRequestKind.payment, amount=30_000)
    outcome, call = await stack.call([Press("1"), *keyed(WRONG) * 3])
    assert outcome == "too_many_tries"
    assert call.played.count("arspay/err.verify_mismatch") == 2
    assert call.played[-1] == "arspay/err.too_many"
    assert await intents(stack) == []
    row = await stack.reload(req.id)
    assert row.status == CallRequestStatus.sms_sent.value  # the real payer may call back
    card = await card_row(stack)
    assert (card.verify_failures, card.verify_locked_until) == (3, None)
    # ... and does
    outcome, _ = await stack.call([Press("1"), *keyed(BIRTH), Press("1")])
    assert outcome == "completed"


async def test_five_failures_across_calls_lock_the_card_for_phone_payments(
    stack: Stack,
) -> None:
    """Calling again does not give a guesser fresh tries: the 5th wrong answer in 24 h
    locks the card (audited, webhook); even the right answer is then not asked for;
    another card still pays; the lock ends after 24 h or when the merchant lifts it."""
    await register(stack)
    req = await stack.request(CallRequestKind.payment, amount=30_000)
    outcome, _ = await stack.call([Press("1"), *keyed(WRONG) * 3])
    assert outcome == "too_many_tries"
    outcome, call = await stack.call([Press("1"), *keyed(WRONG) * 2, Press("3")])
    assert outcome == "card_locked"
    i = call.played.index("arspay/pay.verify_locked")
    assert call.played[i + 1 :] == ["arspay/pay.retry", "arspay/common.goodbye"]
    assert (await stack.reload(req.id)).status == CallRequestStatus.sms_sent.value
    card = await card_row(stack)
    assert card.verify_failures == 5
    assert card.verify_locked_until == stack.clock.now() + timedelta(hours=24)
    assert await audit_actions(stack, "card.verify_locked") == ["card.verify_locked"]
    async with stack.db.sessions() as s:
        [event] = list(
            await s.scalars(select(WebhookEvent).where(WebhookEvent.type == "card.verify_locked"))
        )
    assert event.payload["data"]["card_id"] == card.id
    assert event.payload["data"]["failures"] == 5

    # locked: the right birth date is not even asked for
    stack.clock.advance(timedelta(minutes=5))
    outcome, call = await stack.call([Press("1"), Press("3")])
    assert outcome == "card_locked"
    assert "arspay/pay.verify_birth" not in call.played
    assert "arspay/pay.verify_locked" in call.played
    vault = [e.action for e in await stack.runtime.vault.audit(token=card.vault_token)]
    assert vault.count("verify_birth") == 5
    assert await intents(stack) == []

    # another card still pays (PG-verified card data), on a new request
    await stack.runtime.services.requests.transition(req.id, CallRequestStatus.cancelled,
                                                     actor="test")  # fmt: skip
    stack.clock.advance(timedelta(minutes=11))  # past the DID cool-down
    await stack.request(CallRequestKind.payment, amount=30_000)
    script = [Press("1"), Press("2"), *card_keys("4012888888881881"), Press("2"), Press("1")]
    outcome, call = await stack.call(script)
    assert outcome == "completed"
    assert "arspay/pay.verify_locked" in call.played
    assert [i.status for i in await intents(stack)] == ["succeeded"]

    # 24 h after the lock it lifts by itself
    stack.clock.advance(timedelta(hours=24))
    await stack.request(CallRequestKind.payment, amount=30_000)
    outcome, _ = await stack.call([Press("1"), *keyed(BIRTH), Press("1")])
    assert outcome == "completed"
    assert (await card_row(stack)).verify_locked_until is None


async def test_the_merchant_can_lift_the_lock(stack: Stack) -> None:
    await register(stack)
    await stack.request(CallRequestKind.payment, amount=30_000)
    await stack.call([Press("1"), *keyed(WRONG) * 3])
    outcome, _ = await stack.call([Press("1"), *keyed(WRONG) * 2, Press("3")])
    assert outcome == "card_locked"
    card = await card_row(stack)
    await stack.runtime.deps.verification.unlock(stack.merchant_id, card.id, actor="console:usr_1")
    assert await audit_actions(stack, "card.verify_unlock") == ["card.verify_unlock"]
    outcome, _ = await stack.call([Press("1"), *keyed(BIRTH), Press("1")])
    assert outcome == "completed"


async def test_policy_off_pays_without_the_question(stack: Stack) -> None:
    await set_policy(stack, verify_registered_card=False)
    await register(stack)
    await stack.request(CallRequestKind.payment, amount=30_000)
    outcome, call = await stack.call([Press("1"), Press("1")])
    assert outcome == "completed"
    assert "arspay/pay.verify_birth" not in call.played
    assert await records(stack, "identity_verification") == []


async def test_merchant_limits_apply(stack: Stack) -> None:
    await set_policy(stack, verify_max_failures=2, verify_lock_hours=2)
    await register(stack)
    await stack.request(CallRequestKind.payment, amount=30_000)
    outcome, _ = await stack.call([Press("1"), *keyed(WRONG) * 2, Press("3")])
    assert outcome == "card_locked"
    card = await card_row(stack)
    assert card.verify_locked_until == stack.clock.now() + timedelta(hours=2)


async def test_a_corporate_card_answers_with_its_business_number(stack: Stack) -> None:
    brn = "1208147521"
    await stack.request(CallRequestKind.registration)
    outcome, _ = await stack.call([Press("1"), *card_keys(birth=brn)])
    assert outcome == "completed"
    await stack.request(CallRequestKind.payment, amount=30_000)
    outcome, call = await stack.call([Press("1"), Press(brn + "#"), Press("1")])
    assert outcome == "completed"
    verify_spec = call.specs[1]  # card choice, then the knowledge factor
    assert (verify_spec.max_digits, verify_spec.settle_after) == (11, None)  # to the #
    [record] = await records(stack, "identity_verification")
    assert record.details["factor"] == "business_number"


async def test_the_vaults_own_ceiling_locks_the_card(stack: Stack) -> None:
    """If the vault stops answering for the card (its own ceiling), the engine locks it
    for phone payments instead of asking again."""
    stack.runtime.vault.verify_limit = 2  # type: ignore[attr-defined]
    await register(stack)
    await stack.request(CallRequestKind.payment, amount=30_000)
    outcome, call = await stack.call([Press("1"), *keyed(WRONG) * 2, *keyed(BIRTH), Press("3")])
    assert outcome == "card_locked"
    assert "arspay/pay.verify_locked" in call.played
    assert (await card_row(stack)).verify_locked_until is not None


async def test_a_vault_failure_is_not_counted_as_a_guess(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    await register(stack)
    req = await stack.request(CallRequestKind.payment, amount=30_000)

    async def down(*args: object, **kwargs: object) -> None:
        raise VaultUnavailable("cannot reach the vault socket")

    monkeypatch.setattr(stack.runtime.vault, "verify_birth", down)
    outcome, call = await stack.call([Press("1"), *keyed(BIRTH)])
    assert outcome == "error"
    assert call.played[-1] == "arspay/err.system"
    assert (await card_row(stack)).verify_failures == 0
    assert (await stack.reload(req.id)).status == CallRequestStatus.sms_sent.value


async def test_the_digits_keyed_reach_no_database_log_or_transcript(
    stack: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Canary: a right and a wrong birth date keyed at pay.verify_birth appear in no file
    the stack wrote (engine and vault databases with their WAL, the PG ledger), no log
    line at DEBUG and no transcript line."""
    birth, wrong = "530714", "460923"  # only ever keyed here
    caplog.set_level(logging.DEBUG)
    await stack.request(CallRequestKind.registration)
    outcome, _ = await stack.call([Press("1"), *card_keys(birth=birth)])
    assert outcome == "completed"
    await stack.request(CallRequestKind.payment, amount=30_000)
    outcome, _ = await stack.call([Press("1"), *keyed(wrong), *keyed(birth), Press("1")])
    assert outcome == "completed"
    await stack.runtime.engine(ari=False, agi=False).session_log.flush()
    needles = [n for d in (birth, wrong) for n in (d.encode(), d.encode("utf-16-le"))]
    found, scanned = holding(tmp_path, needles)
    assert found == []
    assert scanned >= 3
    for text in (caplog.text, "\n".join(stack.transcript)):
        assert birth not in text
        assert wrong not in text
    assert "verify_birth" in caplog.text  # the vault did log the check (ids only)
