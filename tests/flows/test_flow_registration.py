"""Registration call (docs/product.md §4.1) on a FakeCall against the real store, vault and
sandbox PG."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from ivr.consent.ledger import ConsentInput
from ivr.domain.states import CallRequestKind, CallRequestStatus
from ivr.store.tables import CallSession, Card, ConsentRecord
from ivr.telephony.fake import HangUp, Press, Silence

from .conftest import DID, Stack

pytestmark = pytest.mark.anyio

CARD = "4111111111111111"
EXPIRY = "1230"
BIRTH = "880101"


def card_keys(number: str = CARD, birth: str = BIRTH, password: str = "12") -> list[Press]:  # noqa: S107
    return [Press(number), Press(EXPIRY), Press(birth + "#"), Press(password), Press("1")]


async def cards(stack: Stack) -> list[Card]:
    async with stack.db.sessions() as s:
        return list(await s.scalars(select(Card)))


async def consents(stack: Stack) -> list[ConsentRecord]:
    async with stack.db.sessions() as s:
        return list(await s.scalars(select(ConsentRecord).order_by(ConsentRecord.seq)))


async def test_registration_with_a_success_card(stack: Stack) -> None:
    req = await stack.request(CallRequestKind.registration)
    outcome, call = await stack.call([Press("1"), *card_keys()])
    assert outcome == "completed"
    assert call.played[:3] == ["arspay/reg.greeting", "arspay/reg.consent", "arspay/card.number"]
    assert call.played[-1] == "arspay/reg.done"
    row = await stack.reload(req.id)
    assert row.status == CallRequestStatus.completed.value
    [card] = await cards(stack)
    assert (card.bin6, card.last4, card.status, card.card_type) == (
        "411111",
        "1111",
        "active",
        "credit",
    )
    assert row.card_id == card.id
    assert card.customer_id == stack.customer_id
    assert (card.billing_key_ref and card.vault_token.startswith("tok_")) or card.vault_token
    meta = await stack.runtime.vault.metadata(card.vault_token, stack.merchant_id)
    assert meta.last4 == "1111"
    [consent] = await consents(stack)
    assert (consent.kind, consent.key_pressed, consent.did) == ("registration_consent", "1", DID)
    played = [p["prompt_id"] for p in consent.prompts["played"]]
    assert played == ["reg.greeting", "reg.consent"]
    assert all(len(p["sha256"]) == 64 for p in consent.prompts["played"])
    assert (await stack.runtime.services.consent.verify()).ok
    # the lease is released with the request
    assert await stack.runtime.services.dids.match(DID, "01012345678") is None


async def test_declining_consent_ends_the_request_declined(stack: Stack) -> None:
    req = await stack.request(CallRequestKind.registration)
    outcome, call = await stack.call([Press("2")])
    assert outcome == "declined"
    assert call.played[-1] == "arspay/reg.declined"
    assert (await stack.reload(req.id)).status == CallRequestStatus.declined.value
    assert await cards(stack) == []
    [consent] = await consents(stack)
    assert consent.key_pressed == "2"


class SlowConsent:
    """Wraps the consent ledger's ``append``: waits for ``gate`` (or ``delay_s``)
    before writing, or fails; records when each write ended."""

    def __init__(self, stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
        self.ledger = stack.runtime.services.consent
        self.real = self.ledger.append
        self.gate: asyncio.Event | None = None
        self.delay_s = 0.0
        self.fail = False
        self.written = 0
        monkeypatch.setattr(self.ledger, "append", self.append)

    async def append(self, item: ConsentInput) -> ConsentRecord:
        if self.gate is not None:
            await asyncio.wait_for(self.gate.wait(), 5)
        await asyncio.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("database is gone")
        row = await self.real(item)
        self.written += 1
        return row


async def test_the_card_prompt_does_not_wait_for_the_consent_write(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #10: the consent commit was the slowest prompt turnaround; it now goes on
    behind the next prompt (the write here waits until card.number is on its way)."""
    slow = SlowConsent(stack, monkeypatch)
    slow.gate = asyncio.Event()
    book = stack.runtime.deps.book
    real_render = book.render

    async def render(prompt_id: str, **values: Any) -> list[str]:
        if prompt_id == "card.number":
            assert slow.written == 0
            assert slow.gate is not None
            slow.gate.set()
        return await real_render(prompt_id, **values)

    monkeypatch.setattr(book, "render", render)
    req = await stack.request(CallRequestKind.registration)
    outcome, _ = await stack.call([Press("1"), *card_keys()])
    assert outcome == "completed"
    assert slow.written == 1
    [consent] = await consents(stack)
    assert [p["prompt_id"] for p in consent.prompts["played"]] == ["reg.greeting", "reg.consent"]
    assert (await stack.reload(req.id)).status == CallRequestStatus.completed.value


async def test_a_hang_up_right_after_the_consent_key_keeps_the_record(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = SlowConsent(stack, monkeypatch)
    slow.delay_s = 0.3
    await stack.request(CallRequestKind.registration)
    outcome, _ = await stack.call([Press("1"), HangUp()])
    assert outcome == "caller_hung_up"
    [consent] = await consents(stack)  # written before the call's end was reported
    assert consent.key_pressed == "1"


@pytest.mark.parametrize("keys", [[Press("1"), *card_keys()], [Press("2")]])
async def test_nothing_acts_on_a_consent_that_was_not_recorded(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, keys: list[Press]
) -> None:
    slow = SlowConsent(stack, monkeypatch)
    slow.delay_s, slow.fail = 0.05, True
    req = await stack.request(CallRequestKind.registration)
    pg_before = await stack.sandbox.summary()
    outcome, call = await stack.call(keys)
    assert outcome == "error"
    assert call.played[-1] == "arspay/err.system"
    assert await consents(stack) == []
    assert await cards(stack) == []
    assert (await stack.runtime.vault.status()).records == 0
    assert await stack.sandbox.summary() == pg_before  # no billing key asked for
    assert (await stack.reload(req.id)).status == CallRequestStatus.sms_sent.value


async def test_the_wait_prompt_is_on_its_way_before_the_pg_work_starts(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    book, vault = stack.runtime.deps.book, stack.runtime.deps.vault
    real_render, real_tokenize = book.render, vault.tokenize
    rendered: list[str] = []
    order: list[str] = []

    async def render(prompt_id: str, **values: Any) -> list[str]:
        rendered.append(prompt_id)
        return await real_render(prompt_id, **values)

    async def tokenize(*args: Any, **kwargs: Any) -> Any:
        order.append(rendered[-1])
        return await real_tokenize(*args, **kwargs)

    monkeypatch.setattr(book, "render", render)
    monkeypatch.setattr(vault, "tokenize", tokenize)
    await stack.request(CallRequestKind.registration)
    outcome, _ = await stack.call([Press("1"), *card_keys()])
    assert outcome == "completed"
    assert order == ["common.wait"]


@pytest.mark.parametrize(
    ("did", "caller", "prompt"),
    [(DID, "01099990000", "auth.rejected"), ("05059999999", "01012345678", "auth.rejected"),
     (DID, "anonymous", "auth.withheld"), (DID, "", "auth.withheld")],
)  # fmt: skip
async def test_wrong_caller_or_number_is_rejected_and_nothing_changes(
    stack: Stack, did: str, caller: str, prompt: str
) -> None:
    req = await stack.request(CallRequestKind.registration)
    outcome, call = await stack.call([Press("1"), *card_keys()], did=did, caller_id=caller)
    assert outcome.startswith("rejected:")
    assert call.played == [f"arspay/{prompt}"]
    row = await stack.reload(req.id)
    assert (row.status, row.calls) == (CallRequestStatus.sms_sent.value, 0)
    assert await cards(stack) == []
    async with stack.db.sessions() as s:
        [session] = list(await s.scalars(select(CallSession)))
    assert session.status == "rejected"


async def test_expired_lease_is_rejected(stack: Stack) -> None:
    req = await stack.request(CallRequestKind.registration)
    stack.clock.advance(31 * 60)
    outcome, call = await stack.call([Press("1"), *card_keys()])
    assert outcome == "rejected:lease_expired"
    assert call.played == ["arspay/auth.rejected"]
    assert await cards(stack) == []
    assert (await stack.reload(req.id)).status == CallRequestStatus.sms_sent.value


async def test_wrong_password_then_another_password_succeeds(stack: Stack) -> None:
    req = await stack.request(CallRequestKind.registration)
    script = [Press("1"), *card_keys(password="00"), Press("1"), Press("12"), Press("1")]
    outcome, call = await stack.call(script)
    assert outcome == "completed"
    assert "arspay/reg.failed.wrong_password" in call.played
    # only the password is asked again
    after = call.played[call.played.index("arspay/reg.failed.wrong_password") :]
    assert "arspay/card.number" not in after
    assert "arspay/card.password" in after
    assert (await stack.reload(req.id)).status == CallRequestStatus.completed.value
    assert len(await cards(stack)) == 1
    # the refused attempt left nothing in the vault
    assert (await stack.runtime.vault.status()).records == 1


async def test_identity_mismatch_asks_the_birth_date_again(stack: Stack) -> None:
    await stack.request(CallRequestKind.registration)
    script = [Press("1"), *card_keys(birth="000101"), Press("1"), Press("880101#"), Press("12"),
              Press("1")]  # fmt: skip
    outcome, call = await stack.call(script)
    assert outcome == "completed"
    assert "arspay/reg.failed.identity_mismatch" in call.played


async def test_hang_up_mid_card_number_keeps_the_request_open_then_call_back(
    stack: Stack,
) -> None:
    req = await stack.request(CallRequestKind.registration)
    outcome, _ = await stack.call([Press("1"), Press("41111"), HangUp()])
    assert outcome == "caller_hung_up"
    row = await stack.reload(req.id)
    assert (row.status, row.calls) == (CallRequestStatus.sms_sent.value, 1)
    assert await cards(stack) == []
    assert (await stack.runtime.vault.status()).records == 0
    outcome, _ = await stack.call([Press("1"), *card_keys()])
    assert outcome == "completed"
    row = await stack.reload(req.id)
    assert (row.status, row.calls) == (CallRequestStatus.completed.value, 2)


async def test_invalid_entries_repeat_with_an_error_then_too_many_ends_politely(
    stack: Stack,
) -> None:
    req = await stack.request(CallRequestKind.registration)
    bad = "4111111111111112"  # Luhn fails
    outcome, call = await stack.call([Press("1"), Press(bad), Press(bad), Press(bad)])
    assert outcome == "too_many_tries"
    assert call.played.count("arspay/err.invalid_number") == 2
    assert call.played[-1] == "arspay/err.too_many"
    assert (await stack.reload(req.id)).status == CallRequestStatus.sms_sent.value


async def test_star_repeats_and_silence_times_out(stack: Stack) -> None:
    await stack.request(CallRequestKind.registration)
    outcome, call = await stack.call([Press("*"), Silence(), Press("1"), *card_keys()])
    assert outcome == "completed"
    # '*' during the consent prompt plays it again; the silence then earns err.timeout
    # (whose playback the next key cuts short, so the prompt is not replayed a third time)
    assert call.played[:4] == [
        "arspay/reg.greeting", "arspay/reg.consent", "arspay/reg.consent", "arspay/err.timeout"
    ]  # fmt: skip


async def test_zero_in_a_menu_transfers_to_the_agent_when_configured(stack: Stack) -> None:
    services = stack.runtime.services
    async with stack.db.transaction() as s:
        from ivr.store.tables import Merchant

        m = await s.get(Merchant, stack.merchant_id)
        assert m is not None
        m.settings = {"agent_destination": "agents,100,1"}
    req = await stack.request(CallRequestKind.registration)
    outcome, call = await stack.call([Press("0")])
    assert outcome == "agent"
    assert call.transferred_to == "agents,100,1"
    assert (await stack.reload(req.id)).status == CallRequestStatus.sms_sent.value
    del services


async def test_zero_without_an_agent_is_an_invalid_choice(stack: Stack) -> None:
    await stack.request(CallRequestKind.registration)
    outcome, call = await stack.call([Press("0"), Press("1"), *card_keys()])
    assert outcome == "completed"
    assert "arspay/err.invalid_choice" in call.played


async def test_corporate_card_with_business_number(stack: Stack) -> None:
    await stack.request(CallRequestKind.registration)
    outcome, call = await stack.call([Press("1"), *card_keys(birth="1208147521")])
    assert outcome == "completed"
    # the # after the 10 digits ends the business number: it is not left over to make
    # the password field fail
    assert "arspay/err.invalid_password" not in call.played
    [card] = await cards(stack)
    assert card.owner_type == "corporate"


async def test_readback_2_rekeys_the_card(stack: Stack) -> None:
    await stack.request(CallRequestKind.registration)
    keys = card_keys()
    script = [Press("1"), *keys[:-1], Press("2"), *keys]
    outcome, call = await stack.call(script)
    assert outcome == "completed"
    assert call.played.count("arspay/card.number") == 2
