"""The card steps shared by both calls (docs/product.md §4.1): number, expiry, birth date or
business number, the first two password digits, and the optional readback.

Each field is validated as it is keyed (Luhn, MMYY not past, a real YYMMDD date or a
BRN with a valid check digit, two digits), with the vault's own validators so the call
and the vault can never disagree. The result lives in memory for the rest of the call
only; the password is never stored (it goes to the vault's PG forwarding call).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from ivr.flows.voice import Say, Voice, say
from ivr.telephony.call import CollectEnd, CollectResult, CollectSpec
from vault.card import CardData
from vault.errors import InvalidCard
from vault.validation import validate_birth_or_brn, validate_expiry, validate_pan


class Field(Enum):
    """Where a re-entry starts (a wrong password needs only the password again)."""

    number = 1
    birth = 2
    password = 3


@dataclass(repr=False)
class EnteredCard:
    number: str = ""
    expiry: str = ""
    birth: str = ""
    password2: str = ""

    def card(self) -> CardData:
        return CardData(pan=self.number, expiry=self.expiry, birth=self.birth)

    def __repr__(self) -> str:
        return "EnteredCard(<hidden>)"

    def forget_password(self) -> None:
        self.password2 = ""


def _valid(check: object, value: str) -> bool:
    try:
        check(value)  # type: ignore[operator]
    except InvalidCard:
        return False
    return True


async def enter_card(
    voice: Voice,
    now: datetime,
    *,
    start: Field = Field.number,
    entered: EnteredCard | None = None,
    readback: bool = True,
) -> EnteredCard:
    """Ask for the card from ``start`` on (earlier fields are kept from ``entered``)."""
    card = entered or EnteredCard()
    while True:
        if start is Field.number:
            card.number = await _number(voice)
            card.expiry = await _expiry(voice, now)
        if start in (Field.number, Field.birth):
            card.birth = await _birth(voice)
        card.password2 = await _password(voice)
        if not readback:
            return card
        choice = await voice.menu([say("card.confirm", last4=card.number[-4:])], "12")
        if choice == "1":
            return card
        start = Field.number  # 2: key the card again from the start


async def _number(voice: Voice) -> str:
    def check(r: CollectResult) -> str | None:
        return None if _valid(validate_pan, r.digits) else "err.invalid_number"

    return await voice.ask([Say("card.number")], voice.spec(16, terminator="#"), check)


async def _expiry(voice: Voice, now: datetime) -> str:
    def check(r: CollectResult) -> str | None:
        return None if _valid(lambda v: validate_expiry(v, now), r.digits) else "err.invalid_expiry"

    return await voice.ask([Say("card.expiry")], voice.spec(4, terminator="#"), check)


def birth_spec(voice: Voice, *, settle: bool = True) -> CollectSpec:
    """A birth date or business number field: 6 digits taken about 1.5 s after the 6th
    key (``settle``), or 10 digits and the ``#`` the prompt asks for — room for 11 keys,
    so that ``#`` ends this field instead of being left over for the next one."""
    return voice.spec(11, terminator="#", settle_after=6 if settle else None)


def birth_error(r: CollectResult) -> str | None:
    """A birth date (6 digits) or business number (10) as keyed, checked like the
    vault checks it; the error prompt, or None."""
    if r.end is CollectEnd.max_digits:
        return "err.invalid_birth"  # 11 keys without a #
    return None if _valid(validate_birth_or_brn, r.digits) else "err.invalid_birth"


async def _birth(voice: Voice) -> str:
    """6 digits (taken ~1.5 s after the 6th key, or at #) or a 10-digit business
    number (+ #)."""
    return await voice.ask([Say("card.birth")], birth_spec(voice), birth_error)


async def _password(voice: Voice) -> str:
    def check(r: CollectResult) -> str | None:
        ok = r.count == 2 and r.digits.isdigit()
        return None if ok else "err.invalid_password"

    return await voice.ask([Say("card.password")], voice.spec(2, terminator="#"), check)
