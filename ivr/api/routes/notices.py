"""The merchant's payer-notice switches (docs/notices.md): which notices its payers get
(by KakaoTalk 알림톡 first where the deployment has it and ``alimtalk`` is on, else by
SMS/LMS), and how many days ahead a scheduled charge is pre-noticed. Stored in the
merchant's settings (``notices``), as the CLI (``arspay merchants policy``) sets them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ivr.api.route import actor
from ivr.api.routes.common import WRITE_ERRORS, Deps, Me
from ivr.api.routes.common import router as make_router
from ivr.merchants.policy import MerchantPolicy
from ivr.notify.notices.kinds import MAX_PRENOTICE_DAYS, NoticeSettings

router = make_router("notices")


class NoticeSettingsPatch(BaseModel):
    """The switches to change; the others keep their values."""

    model_config = ConfigDict(extra="forbid")
    registration_completed: bool | None = None
    payment_approved: bool | None = None
    payment_failed: bool | None = None
    payment_settled: bool | None = None
    refund: bool | None = None
    schedule_prenotice: bool | None = None
    request_expired: bool | None = None
    prenotice_days: int | None = Field(None, ge=1, le=MAX_PRENOTICE_DAYS)
    alimtalk: bool | None = None


@router.get("/notice-settings", summary="The payer notices this merchant sends")
async def get_notice_settings(d: Deps, me: Me) -> NoticeSettings:
    return MerchantPolicy.parse((await d.merchants.get(me.merchant_id)).settings).notices


@router.patch("/notice-settings", responses=WRITE_ERRORS, summary="Switch payer notices on or off")
async def update_notice_settings(body: NoticeSettingsPatch, d: Deps, me: Me) -> NoticeSettings:
    current = MerchantPolicy.parse((await d.merchants.get(me.merchant_id)).settings).notices
    merged = current.model_dump() | body.model_dump(exclude_none=True)
    policy = await d.merchants.set_policy(me.merchant_id, {"notices": merged}, actor=actor(me))
    return policy.notices
