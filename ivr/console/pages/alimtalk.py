"""The KakaoTalk 알림톡 outbox (the ``alimtalk_messages`` table): each payer notice
sent as 알림톡, newest first — its template code, status, the provider's result code,
and, when 알림톡 could not carry it, the SMS/LMS that did (대체 발송, on the SMS page).

Template parameters hold the merchant, amounts and the card as issuer + last 4 — never
card data; the recipient's mobile is shown masked."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ivr.console.access import Deps, Reader
from ivr.console.pages.common import merchant_names, page_of, scope_of
from ivr.console.pages.fields import CursorParam, StatusParam
from ivr.console.render import page
from ivr.domain.states import AlimtalkStatus
from ivr.notify.queries import alimtalk_messages
from ivr.store.tables import AlimtalkMessage

router = APIRouter()
STATUSES = [s.value for s in AlimtalkStatus]


@router.get("/alimtalk")
async def outbox(
    request: Request, deps: Deps, who: Reader, status: StatusParam = None,
    cursor: CursorParam = None,
) -> Response:  # fmt: skip
    status = status if status in STATUSES else None
    q = alimtalk_messages(scope_of(who), status=status)
    async with deps.api.db.sessions() as s:
        rows, nxt = await page_of(s, q, AlimtalkMessage.id, cursor)
        names = await merchant_names(s, who)
    filters = f"&status={status}" if status else ""
    return page(request, who, "alimtalk.html", rows=rows, next_cursor=nxt, names=names,
                status=status or "", statuses=STATUSES, filters=filters)  # fmt: skip
