"""The SMS outbox: every message the engine queued (the ``sms_messages`` table, which
carries the merchant of each message), newest first, with its delivery status.

The texts are the engine's templates (ivr/notify/templates.py): the merchant's name, a
product and an amount, the number to call, and for receipts the issuer, the last 4
digits and the approval number — never card data, so the body is shown. The recipient's
mobile is shown masked. Each row names its channel: SMS or LMS (by the body's EUC-KR
length), and whether it is the fallback (대체 발송) of a KakaoTalk 알림톡 that could not
carry the notice (the 알림톡 outbox, pages/alimtalk.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from ivr.console.access import Deps, Reader
from ivr.console.pages.common import merchant_names, page_of, scope_of
from ivr.console.pages.fields import CursorParam, StatusParam
from ivr.console.render import page
from ivr.domain.states import DeliveryStatus
from ivr.notify.queries import fallbacks_of, sms_messages
from ivr.notify.sms.segments import sms_format
from ivr.store.tables import SmsMessage

router = APIRouter()
STATUSES = [s.value for s in DeliveryStatus]
KINDS = ["registration", "payment", "receipt", "notice"]


@router.get("/sms")
async def outbox(
    request: Request,
    deps: Deps,
    who: Reader,
    status: StatusParam = None,
    kind: Annotated[str | None, Query(max_length=24)] = None,
    cursor: CursorParam = None,
) -> Response:
    status = status if status in STATUSES else None
    kind = kind if kind in KINDS else None
    q = sms_messages(scope_of(who), status=status, kind=kind)
    async with deps.api.db.sessions() as s:
        rows, nxt = await page_of(s, q, SmsMessage.id, cursor)
        names = await merchant_names(s, who)
        fallback_of = {
            a.fallback_sms_id: a.id
            for a in await s.scalars(fallbacks_of(scope_of(who), [r.id for r in rows]))
        }
    channels = {r.id: sms_format(r.body) for r in rows}
    filters = "".join(f"&{k}={v}" for k, v in (("status", status), ("kind", kind)) if v)
    return page(request, who, "sms.html", rows=rows, next_cursor=nxt, names=names,
                status=status or "", kind=kind or "", statuses=STATUSES, kinds=KINDS,
                filters=filters, channels=channels, fallback_of=fallback_of)  # fmt: skip
