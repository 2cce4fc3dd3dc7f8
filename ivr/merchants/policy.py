"""Per-merchant call policy, read from ``merchants.settings`` (a JSON object).

Every key is optional; a missing key falls back to the operator's defaults in
:class:`~ivr.settings.CallSettings` or to docs/product.md §4's defaults. Unknown keys and wrong
types are refused with a message naming the key, so a typo never silently changes how
payers are treated.

Registered-card payments ask for the card's birth date or business number first
(``verify_registered_card``, default on; docs/product.md §2 item 3): ``verify_max_failures``
wrong answers within ``verify_lock_hours`` lock the card for phone payments that long
(:mod:`ivr.cards.verification`).

Interest-free (무이자) promotions: a list of ``{issuer, min_months, max_months, starts,
ends, merchant_pays}`` entries; the call announces the one matching the card's issuer on
the day of the call. Only a promotion the merchant pays for (``merchant_pays``) makes the
charge interest-free at the PG; a card company's own promotion needs nothing sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ivr.domain.terms import MAX_INSTALLMENT_MONTHS, MIN_INSTALLMENT_MONTHS
from ivr.domain.text import GuardedStr
from ivr.errors import InvalidInput
from ivr.notify.notices.kinds import NoticeSettings
from ivr.settings import CallSettings
from ivr.telephony.call import parse_destination


class InterestFree(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    issuer: GuardedStr = Field(min_length=1, max_length=40)
    min_months: int = Field(
        MIN_INSTALLMENT_MONTHS, ge=MIN_INSTALLMENT_MONTHS, le=MAX_INSTALLMENT_MONTHS
    )
    max_months: int = Field(ge=MIN_INSTALLMENT_MONTHS, le=MAX_INSTALLMENT_MONTHS)
    starts: date | None = None
    ends: date | None = None
    # Who pays the interest. False (the default): the card company's own promotion
    # (카드사 무이자) — announced in the call, applied by the issuer, nothing sent to the
    # PG. True: the merchant pays it under its contract with the PG (상점분담 무이자) —
    # sent as PortOne interest_free_by_merchant, which excludes issuer promotions.
    merchant_pays: bool = False

    @model_validator(mode="after")
    def _ranges(self) -> InterestFree:
        if self.min_months > self.max_months:
            raise ValueError("min_months must not exceed max_months")
        if self.starts and self.ends and self.starts > self.ends:
            raise ValueError("starts must not be after ends")
        return self

    def applies(self, issuer: str, day: date) -> bool:
        return (
            self.issuer == issuer
            and (self.starts is None or self.starts <= day)
            and (self.ends is None or day <= self.ends)
        )


class MerchantPolicy(BaseModel):
    """What a merchant may override (stored in ``merchants.settings``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    installments: bool = True
    # the charge terms' range; a merchant may lower the top, never raise it
    max_installment_months: int = Field(12, ge=MIN_INSTALLMENT_MONTHS, le=MAX_INSTALLMENT_MONTHS)
    corporate_installments: bool = False
    allow_save_card: bool = True
    senior_mode: bool | None = None
    readback: bool | None = None
    agent_destination: str | None = None
    first_digit_timeout_s: float | None = Field(None, gt=0, le=60)
    inter_digit_timeout_s: float | None = Field(None, gt=0, le=60)
    lease_minutes: int | None = Field(None, ge=1, le=7 * 24 * 60)
    interest_free: tuple[InterestFree, ...] = ()
    # the knowledge factor of registered-card payments (docs/product.md §2 item 3)
    verify_registered_card: bool = True
    verify_max_failures: int = Field(5, ge=1, le=10)
    verify_lock_hours: int = Field(24, ge=1, le=7 * 24)
    # the payer notices (docs/notices.md): each kind on/off, the pre-notice's lead days
    notices: NoticeSettings = NoticeSettings()

    @model_validator(mode="after")
    def _destination(self) -> MerchantPolicy:
        if self.agent_destination:
            parse_destination(self.agent_destination)
        return self

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> MerchantPolicy:
        try:
            return cls.model_validate(dict(raw or {}))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
                for e in exc.errors()
            )
            raise InvalidInput(f"merchant settings: {problems}") from None

    def interest_free_for(self, issuer: str, day: date) -> InterestFree | None:
        for promo in self.interest_free:
            if promo.applies(issuer, day) and promo.min_months <= self.max_installment_months:
                return promo
        return None


class CallTiming(BaseModel):
    """The effective per-call knobs: merchant overrides over the operator's defaults."""

    model_config = ConfigDict(frozen=True)
    first_digit_timeout_s: float
    inter_digit_timeout_s: float
    max_tries: int
    agent_destination: str
    readback: bool
    senior_mode: bool

    @classmethod
    def effective(cls, defaults: CallSettings, policy: MerchantPolicy) -> CallTiming:
        senior = defaults.senior_mode if policy.senior_mode is None else policy.senior_mode
        factor = 2.0 if senior else 1.0
        first = policy.first_digit_timeout_s or defaults.first_digit_timeout_s
        inter = policy.inter_digit_timeout_s or defaults.inter_digit_timeout_s
        return cls(
            first_digit_timeout_s=first * factor,
            inter_digit_timeout_s=inter * factor,
            max_tries=defaults.max_wrong_entries,
            agent_destination=(
                defaults.agent_destination
                if policy.agent_destination is None
                else policy.agent_destination
            ),
            readback=defaults.readback if policy.readback is None else policy.readback,
            senior_mode=senior,
        )
