"""The knowledge factor of a registered-card payment (docs/product.md §2 item 3, §4.2
``pay.verify_birth``): caller ID can be spoofed, so before the registered card is
charged in a call the payer keys the card's birth date (6 digits, taken about 1.5 s
after the 6th key) or, for a corporate card, its business number and ``#``; the vault
compares it with the stored one (``verify_birth``, constant time, audited).

- A wrong answer plays ``err.verify_mismatch`` and asks again; the ``max_tries``-th
  wrong answer in a call ends it politely (``err.too_many``): the request stays open
  for the real payer's call back.
- Every check is counted on the card before the vault is asked
  (:class:`~ivr.cards.verification.CardVerification`): ``verify_max_failures`` wrong
  answers within ``verify_lock_hours``, over any number of calls, lock the card for
  phone payments (``pay.verify_locked``; the payer may still pay with another card).
- A pass writes an ``identity_verification`` consent record (which factor, how many
  tries — never the digits).

The digits keyed live in this function's locals and the vault call only: they reach
no log, record, metric or exception (the transcript counts keys).
"""

from __future__ import annotations

import asyncio
import contextlib

from ivr.cards.verification import VerifyLimits
from ivr.flows.card_entry import birth_error, birth_spec
from ivr.flows.run import CallRun
from ivr.flows.voice import Say, TooManyTries, say
from ivr.store.tables import Card
from vault.errors import VerifyLimited

WHY = "knowledge factor: payment call"


async def verify_holder(run: CallRun, card: Card) -> bool:
    """True once the payer keyed the card's birth date or business number; False when
    the card is (or has just become) locked for phone payments. Raises
    :class:`TooManyTries` after ``max_tries`` wrong answers in this call."""
    deps = run.deps
    a = run.admission
    limits = VerifyLimits.of(a.policy)
    corporate = card.owner_type == "corporate"
    spec = birth_spec(run.voice, settle=not corporate)
    before: list[Say] = []
    wrong = 0
    if await deps.verification.is_locked(card.id) is not None:
        return False  # locked by earlier calls: ask nothing
    while True:
        keyed = await run.voice.ask([*before, say("pay.verify_birth")], spec, birth_error)
        if not await deps.verification.reserve(card.id, limits):
            return False
        try:
            check = await deps.vault.verify_birth(
                card.vault_token, a.merchant_id, birth=keyed, who=run.who, why=WHY
            )
        except VerifyLimited:  # the vault's own ceiling: keep the reservation, lock
            await deps.verification.lock(card.id, limits, actor=run.who)
            return False
        except BaseException:  # the vault failed or the engine stops: not a guess
            with contextlib.suppress(Exception):
                await asyncio.shield(deps.verification.give_back(card.id))
            raise
        finally:
            del keyed
        if check.matched:
            await deps.verification.give_back(card.id)
            run.record_consent(
                "identity_verification",
                "",
                {
                    "product": a.product_name,
                    "amount": a.amount,
                    "card_id": card.id,
                    "last4": card.last4,
                    "issuer": card.issuer,
                    "factor": "business_number" if corporate else "birth_date",
                    "tries": wrong + 1,
                    "result": "passed",
                },
            )
            return True
        if await deps.verification.failed(card.id, limits, actor=run.who):
            return False
        wrong += 1
        if wrong >= run.timing.max_tries:
            raise TooManyTries
        before = [say("err.verify_mismatch")]
