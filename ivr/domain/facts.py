"""What the reports of a payment's end read of it — the merchant's webhook event
(:mod:`ivr.webhooks.notices`) and the payer's notice (:mod:`ivr.notify.notices`): a
:class:`~ivr.store.tables.PaymentIntent` row and its deciding attempt, or the values a
batch writer inserted (it reads nothing back, ivr/payments/batch.py)."""

from __future__ import annotations

from typing import Protocol


class IntentFacts(Protocol):
    """What a payment event tells of an intent: a :class:`PaymentIntent` row, or the
    values a batch writer inserted (it reads nothing back)."""

    @property
    def id(self) -> str: ...
    @property
    def merchant_id(self) -> str: ...
    @property
    def customer_id(self) -> str: ...
    @property
    def card_id(self) -> str | None: ...
    @property
    def schedule_id(self) -> str | None: ...
    @property
    def source(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def amount(self) -> int: ...
    @property
    def currency(self) -> str: ...
    @property
    def order_name(self) -> str: ...
    @property
    def installment_months(self) -> int: ...


class AttemptFacts(Protocol):
    """What a payment event tells of the deciding attempt (see :class:`IntentFacts`)."""

    @property
    def order_id(self) -> str: ...
    @property
    def approval_no(self) -> str | None: ...
    @property
    def receipt_url(self) -> str | None: ...  # the PG's receipt page, when it gave one
    @property
    def decline_code(self) -> str | None: ...
    @property
    def decline_class(self) -> str | None: ...
