"""The payment-consent call (docs/product.md §4.2): details, card choice, the knowledge factor
for the registered card (:mod:`ivr.flows.knowledge`), installments, confirmation,
charge, approval number.

A payer with no registered card first hears ``pay.enter_or_decline`` (1 key a card, 3
do not pay) before any card step. After an ``installment_unavailable`` decline of an
installment charge, ``pay.retry_lump_sum`` offers the same card at once (일시불, 1)
besides another card (2) and the end (3) (issue #28).

Every choice that moves money or stores a card writes a consent record (docs/product.md §4.3):
``card_choice`` (1/2/3, or 1/3 with no registered card), ``identity_verification``, ``save_card``,
``installment_choice``, ``installment_months`` and ``payment_confirmation``; what
acts on a choice (the vault, the PG, the request's end) waits for its record.

Money rules: the charge goes through :class:`~ivr.payments.charger.Charger` (order id
committed before the PG request; an unknown outcome is looked up, never re-sent). The
request remembers its payment intent, so a payer who calls back after a call that
ended mid-charge hears that charge's result instead of being charged again.
"""

from __future__ import annotations

from dataclasses import dataclass

from ivr.clock import SEOUL
from ivr.domain.states import AttemptStatus, CallRequestStatus, PaymentIntentStatus
from ivr.domain.terms import LUMP_SUM, MIN_INSTALLMENT_MONTHS, installments_possible
from ivr.flows.card_entry import enter_card
from ivr.flows.knowledge import verify_holder
from ivr.flows.registration import attach, decline_prompt, spoken_issuer, tokenize_and_verify
from ivr.flows.run import CallRun, Outcome
from ivr.flows.voice import TooManyTries, say
from ivr.gateways.declines import DeclineReason, Stage
from ivr.payments.queries import attempts_of
from ivr.store.tables import CallRequest, Card


@dataclass(frozen=True, slots=True)
class Charged:
    status: PaymentIntentStatus
    approval_no: str | None = None
    decline_code: str | None = None


async def payment_call(run: CallRun) -> Outcome:
    a = run.admission
    voice = run.voice
    assert a.amount is not None
    if a.payment_intent_id is not None:  # an earlier call started a charge
        earlier = await run.while_waiting(settle_intent(run, a.payment_intent_id))
        said = await announce(run, earlier)
        if said is not None:
            return said
        # failed: nothing was charged; the payer may pay now

    # Not interruptible: the payer must hear who is charging and how much.
    await voice.say("pay.greeting", barge_in=False, merchant=a.merchant_name)
    await voice.say("pay.details", barge_in=False, product=a.product_name, amount=a.amount)
    cards = await run.deps.cards.active_for(a.merchant_id, a.customer_id)
    registered = cards[0] if cards else None
    use_other = registered is None
    verified = not a.policy.verify_registered_card
    if registered is None:  # no card to offer: key one, or say no before any card step
        choice = await voice.menu([say("pay.enter_or_decline")], "13")
        run.record_consent("card_choice", choice, _choice(run, None, choice))
        if choice == "3":
            return await _declined(run)
    failures = 0
    while True:
        if failures >= run.timing.max_tries:
            raise TooManyTries
        card: Card | None = None
        if not use_other:
            assert registered is not None
            choice = await voice.menu(
                [
                    say(
                        "pay.card_choice",
                        issuer=spoken_issuer(registered.issuer),
                        last4=registered.last4,
                    )
                ],
                "123",
            )
            run.record_consent("card_choice", choice, _choice(run, registered, choice))
            if choice == "3":
                return await _declined(run)
            if choice == "1" and not verified:
                verified = await verify_holder(run, registered)
                if not verified:  # locked for phone payments: another card, or the end
                    await voice.say("pay.verify_locked", barge_in=False)
                    if await voice.menu([say("pay.retry")], "23") == "3":
                        await voice.say("common.goodbye", barge_in=False)
                        return "card_locked"
                    choice = "2"
            if choice == "1":
                card = registered
            else:
                use_other = True
        if card is None:
            keyed = await other_card(run)
            if isinstance(keyed, str):
                failures += 1
                await voice.say(decline_prompt(run, Stage.payment, keyed))
                if await voice.menu([say("pay.retry")], "23") == "3":
                    await voice.say("common.goodbye", barge_in=False)
                    return "card_declined"
                continue
            card = keyed
        months, interest_free, merchant_pays = await choose_installments(run, card)
        while True:
            confirm = (
                say("pay.confirm.installment", amount=a.amount, months=months)
                if months
                else say("pay.confirm.lump_sum", amount=a.amount)
            )
            key = await voice.menu([confirm], "1")
            details = _details(run, card, months, interest_free)
            run.record_consent("payment_confirmation", key, details)
            charged = await run.while_waiting(charge(run, card, months, merchant_pays))
            said = await announce(run, charged)
            if said is not None:
                return said
            failures += 1
            await voice.say(decline_prompt(run, Stage.payment, charged.decline_code))
            if not (months and charged.decline_code == DeclineReason.installment_unavailable):
                next_key = await voice.menu([say("pay.retry")], "23")
                break
            # The card refused installments: the same card at once (일시불) is offered too.
            next_key = await voice.menu([say("pay.retry_lump_sum")], "123")
            if next_key != "1":
                break
            if failures >= run.timing.max_tries:
                raise TooManyTries
            run.record_consent("installment_choice", next_key, _payment(run) | _card(card) | {
                "choice": "lump_sum", "after_decline": DeclineReason.installment_unavailable.value,
            })  # fmt: skip
            months, interest_free, merchant_pays = LUMP_SUM, False, False
        if next_key == "3":
            await voice.say("common.goodbye", barge_in=False)
            return "payment_failed"
        use_other = True


async def _declined(run: CallRun) -> Outcome:
    """The payer chose not to pay (3): the request ends ``declined``."""
    await run.finish(CallRequestStatus.declined)
    await run.voice.say("pay.declined", barge_in=False)
    return "declined"


async def announce(run: CallRun, charged: Charged) -> Outcome | None:
    """Tell the payer a charge's result; None when it failed (the caller offers more)."""
    if charged.status is PaymentIntentStatus.succeeded:
        approval = charged.approval_no or ""
        if approval.isascii() and approval.isdigit():
            await run.voice.say("pay.done", barge_in=False, approval=approval)
        else:  # the PG gave no (or no numeric) approval number
            await run.voice.say("pay.done_plain", barge_in=False)
        return "completed"
    if charged.status is PaymentIntentStatus.processing:
        await run.voice.say("pay.pending", barge_in=False)
        return "payment_pending"
    return None


CHOICES = {"1": "registered_card", "2": "other_card", "3": "no_payment"}
# pay.enter_or_decline (no registered card): 1 keys a card, 3 does not pay
NO_CARD_CHOICES = {"1": "other_card", "3": "no_payment"}


def _payment(run: CallRun) -> dict[str, object]:
    """What every record of the payment call names: the product and the amount."""
    a = run.admission
    return {"product": a.product_name, "amount": a.amount}


def _card(card: Card) -> dict[str, object]:
    return {"card_id": card.id, "last4": card.last4, "issuer": card.issuer}


def _choice(run: CallRun, registered: Card | None, key: str) -> dict[str, object]:
    """``card_choice``: the registered card offered (None: none was, the payer heard
    ``pay.enter_or_decline``), and what the payer chose."""
    if registered is None:
        return _payment(run) | {"choice": NO_CARD_CHOICES[key], "offered": None}
    return _payment(run) | {"choice": CHOICES[key], "offered": _card(registered)}


def _details(
    run: CallRun, card: Card | None, months: int, interest_free: bool = False
) -> dict[str, object]:
    out: dict[str, object] = _payment(run) | {"installment_months": months}
    if card is not None:
        out |= _card(card)
        out["interest_free"] = interest_free
    return out


async def other_card(run: CallRun) -> Card | str:
    """Card steps, PG verification, optional save. Returns the card or a decline code."""
    a = run.admission
    entered = await enter_card(run.voice, run.now(), readback=run.timing.readback)
    meta, key, account = await run.while_waiting(tokenize_and_verify(run, entered, why="payment"))
    entered.forget_password()
    if not key.ok:
        return key.decline_code or DeclineReason.rejected.value
    save = False
    if a.policy.allow_save_card:
        key_pressed = await run.voice.menu([say("pay.save_card")], "12")
        save = key_pressed == "1"
        run.record_consent("save_card", key_pressed, _payment(run) | {
            "save": save,
            "bin6": meta.bin6,
            "last4": meta.last4,
            "issuer": key.card_issuer or meta.issuer,
        })  # fmt: skip
        await run.consent_recorded()  # the card is stored (or not) on this record
    return await attach(run, meta, key, account, complete=False, save=save)


async def choose_installments(run: CallRun, card: Card) -> tuple[int, bool, bool]:
    """(months, interest free for the payer, the merchant pays that interest). Asked only
    where docs/product.md §4.2 allows installments. Only the merchant-paid interest goes
    to the PG (PortOne interest_free_by_merchant excludes card companies' promotions,
    which the issuer applies by itself)."""
    a = run.admission
    policy = a.policy
    assert a.amount is not None
    eligible = (
        installments_possible(a.amount, card.card_type)
        and policy.installments
        and (card.owner_type == "personal" or policy.corporate_installments)
    )
    if not eligible:
        return LUMP_SUM, False, False
    today = run.now().astimezone(SEOUL).date()
    promo = policy.interest_free_for(card.issuer, today)
    prompts = [say("pay.installment")]
    offer: dict[str, object] = {}
    if promo is not None:
        heard = {
            "min_months": promo.min_months,
            "max_months": min(promo.max_months, policy.max_installment_months),
        }
        prompts.append(say("pay.interest_free", issuer=spoken_issuer(card.issuer), **heard))
        offer = {"interest_free_offer": heard}
    choice = await run.voice.menu(prompts, "12")
    run.record_consent("installment_choice", choice, _payment(run) | _card(card) | {
        "choice": "lump_sum" if choice == "1" else "installments", **offer,
    })  # fmt: skip
    if choice == "1":
        return LUMP_SUM, False, False
    top = policy.max_installment_months

    def check(r: object) -> str | None:
        digits = getattr(r, "digits", "")
        ok = digits.isdigit() and MIN_INSTALLMENT_MONTHS <= int(digits) <= top
        return None if ok else "err.invalid_months"

    months = int(
        await run.voice.ask(
            [say("pay.installment_months")], run.voice.spec(2, terminator="#"), check
        )
    )
    free = promo is not None and promo.min_months <= months <= promo.max_months
    merchant_pays = free and promo is not None and promo.merchant_pays
    run.record_consent("installment_months", "", _payment(run) | _card(card) | {
        "installment_months": months, "interest_free": free,
        "interest_paid_by": ("merchant" if merchant_pays else "issuer") if free else None,
    })  # fmt: skip
    return months, free, merchant_pays


async def charge(run: CallRun, card: Card, months: int, merchant_pays: bool) -> Charged:
    """Create the intent (linked to the request first), drive it, complete the request;
    nothing before the payer's consent is recorded."""
    await run.consent_recorded()
    a = run.admission
    assert a.amount is not None
    deps = run.deps
    intent = await deps.payments.create_intent(
        a.merchant_id,
        card.id,
        amount=a.amount,
        order_name=a.product_name,
        installment_months=months,
        interest_free=merchant_pays,  # the intent's flag is what the PG is asked to do
        source="call",
        actor=run.who,
        one_off_card=card.status != "active",
    )
    async with deps.services.db.transaction() as s:
        req = await s.get(CallRequest, a.request_id, with_for_update=True)
        assert req is not None
        req.payment_intent_id = intent.id
        req.card_id = card.id
    return await settle_intent(run, intent.id)


async def settle_intent(run: CallRun, intent_id: str) -> Charged:
    """Drive the intent to an end (or leave it processing) and complete the request
    when it succeeded."""
    deps = run.deps
    status = await deps.charger.drive(intent_id)
    async with deps.services.db.sessions() as s:
        attempts = await attempts_of(s, intent_id)
    won = next((x for x in attempts if x.status == AttemptStatus.succeeded.value), None)
    if status is PaymentIntentStatus.succeeded:
        await run.finish(CallRequestStatus.completed)
        return Charged(status, approval_no=won.approval_no if won else None)
    code = next((x.decline_code for x in reversed(attempts) if x.decline_code), None)
    if code == "not_at_pg":
        code = DeclineReason.pg_error.value
    return Charged(status, decline_code=code)
