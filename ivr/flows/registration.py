"""The registration call (docs/product.md §4.1): consent, card steps, PG verification, result.

Business effects happen in :meth:`CallRun.register`, which runs to its end even if the
payer hangs up while the wait prompt plays: a card the PG accepted is attached and the
request completed, whatever the line does.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from ivr.cards.sweep import billing_key_uid, check_attachable
from ivr.domain.states import CallRequestStatus, CardStatus
from ivr.flows.card_entry import EnteredCard, Field, enter_card
from ivr.flows.run import CallRun, Outcome
from ivr.flows.voice import TooManyTries, say
from ivr.gateways.declines import DeclineReason, Stage, prompt_id
from ivr.gateways.errors import OutcomeUnknown
from ivr.store.tables import CallRequest, Card
from vault.forwarding import BillingKeyResult
from vault.models import CardMetadata


def spoken_issuer(issuer: str) -> str:
    """The issuer as read before the word 카드 ("신한카드" -> "신한": "신한 카드 끝자리…")."""
    return issuer.removesuffix("카드").strip() or issuer


def restart_field(reason: str | None) -> Field:
    """Which field a re-entry starts from after a decline."""
    if reason == DeclineReason.wrong_password.value:
        return Field.password
    if reason == DeclineReason.identity_mismatch.value:
        return Field.birth
    return Field.number


def decline_prompt(run: CallRun, stage: Stage, code: str | None) -> str:
    try:
        reason = DeclineReason(code or "rejected")
    except ValueError:
        reason = DeclineReason.rejected
    pid = prompt_id(reason, stage)
    return pid if run.deps.book.has(pid) else prompt_id(DeclineReason.rejected, stage)


async def registration_call(run: CallRun) -> Outcome:
    a = run.admission
    voice = run.voice
    await voice.say("reg.greeting", barge_in=False, merchant=a.merchant_name)
    choice = await voice.menu(
        [say("reg.consent", merchant=a.merchant_name, product=a.product_name)], "12"
    )
    run.record_consent("registration_consent", choice, {"product": a.product_name})
    if choice == "2":
        await run.finish(CallRequestStatus.declined)
        await voice.say("reg.declined", barge_in=False)
        return "declined"

    entered: EnteredCard | None = None
    start = Field.number
    for _ in range(run.timing.max_tries):
        entered = await enter_card(
            voice, run.now(), start=start, entered=entered, readback=run.timing.readback
        )
        outcome = await run.while_waiting(run_registration(run, entered))
        entered.forget_password()
        if isinstance(outcome, tuple):
            issuer, last4 = outcome
            await voice.say("reg.done", barge_in=False, issuer=spoken_issuer(issuer), last4=last4)
            return "completed"
        await voice.say(decline_prompt(run, Stage.registration, outcome))
        if await voice.menu([say("reg.retry")], "12") == "2":
            await voice.say("common.goodbye", barge_in=False)
            return "card_declined"
        start = restart_field(outcome)
    raise TooManyTries


async def run_registration(run: CallRun, entered: EnteredCard) -> tuple[str, str] | str | None:
    """Tokenize, ask the PG for a billing key (through the vault), attach the card and
    complete the request. Returns (issuer, last4) or the decline reason code."""
    meta, key = await tokenize_and_verify(run, entered, why="registration")
    if not key.ok:
        return key.decline_code or DeclineReason.rejected.value
    card = await attach(run, meta, key, complete=True)
    return card.issuer, card.last4


async def tokenize_and_verify(
    run: CallRun, entered: EnteredCard, *, why: str
) -> tuple[CardMetadata, BillingKeyResult]:
    """Store the card in the vault and have the PG verify it by issuing a billing key.
    A card the PG refused is erased from the vault at once. The key's ``customer_uid``
    is noted in the engine database before the PG is asked, so a key issued for a call
    that fails here is deleted at the PG later (:mod:`ivr.cards.key_requests`). A PG
    that did not answer (``pg_down``) fails the call as an error did: the key it may
    have issued stays noted for that sweep (failing over to another PG account is the
    routing's, not this function's)."""
    await run.consent_recorded()
    a = run.admission
    vault = run.deps.vault
    meta = await vault.tokenize(a.merchant_id, entered.card(), who=run.who)
    uid = billing_key_uid(meta.token)
    try:
        await run.deps.key_requests.note(a.merchant_id, uid)
        key = await vault.issue_billing_key(
            meta.token,
            a.merchant_id,
            password2=entered.password2,
            customer_uid=uid,
            who=run.who,
            why=why,
        )
        if key.pg_down:  # no answer from the PG: a system error, as a raised one was
            raise OutcomeUnknown("billing key: the PG did not answer")
    except BaseException:
        # The PG failed or never answered (or the engine is stopping): no card row will
        # refer to this record. Erase it now; if that fails too, the orphan sweep will.
        # A key the PG issued anyway is the billing-key requests' sweep's to delete.
        with contextlib.suppress(Exception):
            await asyncio.shield(
                vault.delete(meta.token, a.merchant_id, who=run.who, why="billing key not issued")
            )
        raise
    if key.ok:
        await run.deps.key_requests.issued(uid)
    else:
        await run.deps.key_requests.declined(uid)
        await vault.delete(meta.token, a.merchant_id, who=run.who, why="declined by the PG")
    return meta, key


async def attach(
    run: CallRun,
    meta: CardMetadata,
    key: BillingKeyResult,
    *,
    complete: bool,
    save: bool = True,
) -> Card:
    """Attach the verified card to the customer (and complete the request). A card the
    payer did not save (``save=False``) gets a ``deleted`` row — kept only so the payment
    can name it — and its vault record is erased at once: the PG's billing key is all the
    one-off charge needs."""
    a = run.admission
    services = run.deps.services
    grace = timedelta(minutes=services.settings.vault.orphan_grace_minutes)
    check_attachable(meta, services.clock.now(), grace)  # the orphan sweep's other side
    async with services.db.transaction() as s:
        card = await run.deps.cards.add_in(
            s,
            meta,
            customer_id=a.customer_id,
            billing_key_ref=key.customer_uid,
            issuer=key.card_issuer,
            card_type=key.card_type,
            actor=run.who,
            status=CardStatus.active if save else CardStatus.deleted,
        )
        await run.deps.key_requests.attached_in(s, key.customer_uid)
        if complete:
            req = await s.get(CallRequest, a.request_id, with_for_update=True)
            assert req is not None
            req.card_id = card.id
            await services.requests.transition_in(
                s, a.request_id, CallRequestStatus.completed, actor="call"
            )
    run.card_id = card.id
    if not save:
        await run.deps.vault.delete(meta.token, a.merchant_id, who=run.who, why="one-off card")
    return card
