"""Asking a PG account for a card's billing key, through the vault, with failover
(issue #27): the merchant's primary account, or its secondary while the primary's
circuit breaker is open or when the primary does not answer.

Each account asked gets its own ``customer_uid`` (:func:`~ivr.cards.sweep.billing_key_uid`
of the token and the account), noted in ``billing_key_requests`` with the account before
the vault forwards the card: a key the primary issued but never reported (it timed out)
is deleted there later by the key-request sweep, whatever the secondary did.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from ivr.cards.key_requests import BillingKeyRequests
from ivr.cards.sweep import billing_key_uid
from ivr.gateways.breaker import CircuitBreaker
from ivr.gateways.errors import GatewayUnavailable
from ivr.pg_accounts.model import DEFAULT, stored_id
from vault.client import VaultClient
from vault.forwarding import BillingKeyResult, Route
from vault.models import CardMetadata


class Accounts(Protocol):
    """Where a merchant's cards go (:class:`ivr.pg_accounts.book.GatewayBook`)."""

    async def registration_accounts(self, merchant_id: str) -> list[str]: ...

    def breaker(self, account_id: str | None) -> CircuitBreaker: ...

    async def vault_route(self, account_id: str | None) -> Route | None: ...


class NoAccountAnswers(GatewayUnavailable, error_id="pg-accounts-down"):
    """Neither the merchant's primary nor its secondary PG account answers now."""

    def __init__(self, merchant_id: str) -> None:
        super().__init__(f"no PG account of merchant {merchant_id} answers", retry_safe=True)


class Issued(NamedTuple):
    key: BillingKeyResult
    account_id: str | None  # as rows store it: None is the default account


async def issue_billing_key(
    vault: VaultClient,
    key_requests: BillingKeyRequests,
    accounts: Accounts | None,
    meta: CardMetadata,
    *,
    password2: str,
    who: str,
    why: str,
) -> Issued:
    """The billing key of the tokenized card ``meta``, from the first account that
    answers (``accounts`` None: the vault's own gateway, the default account). A decline
    is an answer: it is returned, not tried elsewhere. Raises :class:`NoAccountAnswers`
    when no account answered."""
    merchant_id = meta.merchant_id
    order = await accounts.registration_accounts(merchant_id) if accounts else [DEFAULT]
    for account in order:
        uid = billing_key_uid(meta.token, stored_id(account))
        breaker = accounts.breaker(account) if accounts else None
        if breaker is not None and not breaker.allow():
            continue  # opened meanwhile, or its one probe is in flight
        try:
            route = await accounts.vault_route(account) if accounts else None
            await key_requests.note(merchant_id, uid, stored_id(account))
            key = await vault.issue_billing_key(
                meta.token, merchant_id, password2=password2, customer_uid=uid,
                who=who, why=why, route=route,
            )  # fmt: skip
        except BaseException:
            if breaker is not None:
                breaker.release()
            raise
        if key.pg_down:  # no answer: a key may exist there; the key-request sweep deletes it
            if breaker is not None:
                breaker.record_failure()
            continue
        if breaker is not None:
            breaker.record_success()
        if key.ok:
            await key_requests.issued(uid)
        else:
            await key_requests.declined(uid)
        return Issued(key, stored_id(account))
    raise NoAccountAnswers(merchant_id)
