"""The notice kinds and the per-merchant switches (``merchants.settings["notices"]``).

Kept free of engine imports: :class:`~ivr.merchants.policy.MerchantPolicy` embeds
:class:`NoticeSettings`."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

MAX_PRENOTICE_DAYS = 14


class NoticeKind(StrEnum):
    registration_completed = "registration_completed"
    payment_approved = "payment_approved"
    payment_failed = "payment_failed"
    payment_settled = "payment_settled"  # a charge left pending in a call, settled later
    refund = "refund"
    schedule_prenotice = "schedule_prenotice"
    request_expired = "request_expired"


class NoticeSettings(BaseModel):
    """Which notices a merchant's payers get (each kind on or off) and how many days
    before an automatic scheduled charge the pre-notice goes."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    registration_completed: bool = Field(
        True, description="card registered in a call: issuer and last 4 digits"
    )
    payment_approved: bool = Field(
        True,
        description="payment approved (call, API, bulk, schedule): amount, 일시불 or N개월, "
        "issuer and last 4, approval number",
    )
    payment_failed: bool = Field(
        True,
        description="payment declined (call, API, bulk): why in plain words and what to do "
        "next; a scheduled charge's decline is not told (its retries and dunning request are)",
    )
    payment_settled: bool = Field(
        True,
        description="a charge left pending when its call ended (the payer heard the result "
        "would come by SMS), settled later: approved or declined",
    )
    refund: bool = Field(True, description="refund applied: full or partial, amount")
    schedule_prenotice: bool = Field(
        True,
        description="an automatic (mode auto) scheduled charge is coming in prenotice_days: "
        "date, amount, card",
    )
    request_expired: bool = Field(
        False, description="a registration or payment request expired without an outcome"
    )
    prenotice_days: int = Field(
        3, ge=1, le=MAX_PRENOTICE_DAYS, description="days before a scheduled charge"
    )
    alimtalk: bool = Field(
        True,
        description="KakaoTalk 알림톡 first, the SMS/LMS when it is refused, where the "
        "deployment has 알림톡 set up (a template code for the kind); off: SMS/LMS only",
    )

    def enabled(self, kind: NoticeKind) -> bool:
        return bool(getattr(self, kind.value))
