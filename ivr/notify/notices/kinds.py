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
    registration_completed: bool = True
    payment_approved: bool = True
    payment_failed: bool = True
    payment_settled: bool = True
    refund: bool = True
    schedule_prenotice: bool = True
    request_expired: bool = False
    prenotice_days: int = Field(3, ge=1, le=MAX_PRENOTICE_DAYS)

    def enabled(self, kind: NoticeKind) -> bool:
        return bool(getattr(self, kind.value))
